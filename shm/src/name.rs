//! Lane names and their namespaced shared-memory object names.
//!
//! A lane name is 1 to [`MAX_NAME_LEN`] characters from `[A-Za-z0-9._-]`, not starting
//! with `.` or `-`. The object name is `/tensorlane.<name>`, so `list` and `purge`
//! touch only this library's segments.

use std::ffi::CString;
use std::fmt;

/// Prefix of every segment name, after the leading `/`.
pub const PREFIX: &str = "tensorlane.";

/// Longest lane name (the object name stays well under NAME_MAX = 255).
pub const MAX_NAME_LEN: usize = 200;

/// A validated lane name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaneName(String);

/// Why a lane name was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameError {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid lane name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for NameError {}

impl LaneName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let reject = |reason| {
            Err(NameError {
                name: name.to_string(),
                reason,
            })
        };
        if name.is_empty() {
            return reject("empty");
        }
        if name.len() > MAX_NAME_LEN {
            return reject("longer than 200 bytes");
        }
        if name.starts_with('.') || name.starts_with('-') {
            return reject("starts with '.' or '-'");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return reject("only ASCII letters, digits, '.', '_' and '-' are allowed");
        }
        Ok(LaneName(name.to_string()))
    }

    /// The lane name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The POSIX shared-memory object name, `/tensorlane.<name>`.
    pub fn object_name(&self) -> CString {
        CString::new(format!("/{PREFIX}{}", self.0)).expect("validated names have no NUL")
    }

    /// The lane name of a `/dev/shm` entry, if it is one of ours.
    pub fn from_object_file(file_name: &str) -> Option<Self> {
        LaneName::new(file_name.strip_prefix(PREFIX)?).ok()
    }
}

impl fmt::Display for LaneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            LaneName::new("camera.left_0")
                .unwrap()
                .object_name()
                .to_str(),
            Ok("/tensorlane.camera.left_0")
        );
        for bad in ["", "a/b", ".hidden", "-x", "sp ace", "é", &"x".repeat(201)] {
            assert!(LaneName::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            LaneName::from_object_file("tensorlane.cam").map(|n| n.0),
            Some("cam".into())
        );
        assert_eq!(LaneName::from_object_file("other.cam"), None);
    }
}
