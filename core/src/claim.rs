//! Single-writer claims.
//!
//! A claim word holds the owner token of a role (writer, producer, consumer), or 0
//! when the role is free. Tokens are chosen by the layer above (the shm crate uses
//! process-unique values); this crate only requires them to be non-zero. A second
//! claimant gets [`ClaimError::Held`], never a shared role. Deciding that an owner is
//! dead is not this crate's business: [`takeover`] replaces a given owner, and the
//! caller vouches that it is gone.
//!
//! # What makes a take-over safe
//! A claim word orders a hand-over only when the previous owner gave the role back:
//! its Release in [`release`] pairs with the next claimant's Acquire. An owner that
//! died never stored to the word after claiming it, and its claim was a plain Acquire
//! compare-exchange, so a take-over's compare-exchange that reads the dead owner's
//! token synchronises with nothing. What orders the dead owner's last stores before
//! the successor's first loads is outside this crate: the kernel, which releases the
//! dead process's lock (`fcntl` record lock or `flock`) only after the process has
//! stopped, and whose lock acquisition by the successor is a synchronising operation
//! (the shm layer takes the role's lock before every take-over). Within one process
//! the same holds when the previous handle was dropped or forgotten by code that
//! happens-before the take-over (program order or a thread join). Every take-over
//! call states this requirement in its contract.

use crate::error::Corruption;
use crate::sync::{AtomicU64, Ordering};

/// Why a role could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimError {
    /// Owner tokens must be non-zero (0 marks a free role).
    ZeroToken,
    /// The role is held by another owner.
    Held {
        /// The token of the current owner.
        owner: u64,
    },
    /// The role could be taken over, but the state it would start from is impossible
    /// (a broadcast producer's tail that its slot refutes); the role was left to its
    /// previous owner token.
    Corrupt(Corruption),
}

impl core::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClaimError::ZeroToken => f.write_str("owner token must be non-zero"),
            ClaimError::Held { owner } => write!(f, "role is held by owner {owner:#x}"),
            ClaimError::Corrupt(c) => write!(f, "role not taken over: {c}"),
        }
    }
}

impl core::error::Error for ClaimError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ClaimError::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

/// Replaces owner `previous` by `token`; `previous == 0` claims a free role.
pub(crate) fn takeover(word: &AtomicU64, previous: u64, token: u64) -> Result<(), ClaimError> {
    if token == 0 {
        return Err(ClaimError::ZeroToken);
    }
    // Acquire on success pairs with the Release in `release` when the previous owner
    // gave the role back. When it died holding the role, this Acquire reads its claim
    // (which released nothing) and orders nothing: the caller's contract (module docs)
    // supplies the happens-before edge, through the kernel-released lock.
    word.compare_exchange(previous, token, Ordering::Acquire, Ordering::Relaxed)
        .map(|_| ())
        .map_err(|owner| ClaimError::Held { owner })
}

/// Undoes a take-over that found the state impossible: the role goes back to
/// `previous` if `token` still holds it, so that the caller is where it was before.
pub(crate) fn undo_takeover(word: &AtomicU64, previous: u64, token: u64) {
    // Release (partner: the next claimant's Acquire): this handle stored nothing
    // since its take-over, so the Release orders only its loads (of the tail it
    // refused) before the next owner's stores: it guards against load buffering only,
    // which loom does not model, and so no suite can catch its removal
    // (VERIFICATION.md, "Every ordering needed"). Kept, per that rule.
    let _ = word.compare_exchange(token, previous, Ordering::Release, Ordering::Relaxed);
}

/// Gives the role back if `token` still holds it (a role taken over stays taken).
pub(crate) fn release(word: &AtomicU64, token: u64) {
    // Release pairs with the Acquire of the next `claim`: everything this owner did
    // happens-before the next owner's first operation.
    let _ = word.compare_exchange(token, 0, Ordering::Release, Ordering::Relaxed);
}
