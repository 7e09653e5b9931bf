//! Parsing docs/LAYOUT.md's tables, and the document's own definitions (its
//! checksum, slot stride, names of kinds and dtypes), for the checks of
//! `layout_doc.rs`.

use super::DOC;
use tensorlane_shm::{DType, Kind};

// ---------------------------------------------------------------------------------
// Parsing the document's tables.

/// One markdown table of the document.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

pub(crate) fn cells(line: &str) -> Vec<String> {
    let line = line.trim();
    let line = line.strip_prefix('|').unwrap_or(line);
    let line = line.strip_suffix('|').unwrap_or(line);
    line.split('|')
        .map(|c| c.trim().trim_matches('`').trim().to_string())
        .collect()
}

/// The table following the marker `<!-- layout:NAME -->`.
pub(crate) fn table(name: &'static str) -> Table {
    let marker = format!("<!-- layout:{name} -->");
    assert_eq!(
        DOC.lines().filter(|l| l.trim() == marker).count(),
        1,
        "docs/LAYOUT.md must hold exactly one {marker}"
    );
    let mut lines = DOC
        .lines()
        .skip_while(|l| l.trim() != marker)
        .skip(1)
        .skip_while(|l| l.trim().is_empty());
    let header = lines
        .next()
        .filter(|l| l.trim_start().starts_with('|'))
        .unwrap_or_else(|| panic!("{marker} is not followed by a table"));
    let separator = lines.next().unwrap_or_default();
    assert!(
        cells(separator)
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':'))),
        "table {name}: second line is not a separator"
    );
    let columns = cells(header);
    let rows: Vec<Vec<String>> = lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(cells)
        .collect();
    for row in &rows {
        assert_eq!(row.len(), columns.len(), "table {name}: row {row:?}");
    }
    assert!(!rows.is_empty(), "table {name} is empty");
    Table {
        name,
        columns,
        rows,
    }
}

/// A number as the document writes it: decimal, `0x` hex or `0o` octal.
pub(crate) fn parse_num(text: &str) -> Option<u64> {
    let text = text.replace('_', "");
    if let Some(hex) = text.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else if let Some(octal) = text.strip_prefix("0o") {
        u64::from_str_radix(octal, 8).ok()
    } else {
        text.parse().ok()
    }
}

impl Table {
    pub(crate) fn col(&self, column: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| panic!("table {} has no column {column}", self.name))
    }

    pub(crate) fn text<'a>(&self, row: &'a [String], column: &str) -> &'a str {
        &row[self.col(column)]
    }

    pub(crate) fn num(&self, row: &[String], column: &str) -> u64 {
        let text = self.text(row, column);
        parse_num(text).unwrap_or_else(|| {
            panic!(
                "table {}: {column} {text:?} of row {row:?} is not a number",
                self.name
            )
        })
    }

    /// The one row whose `key` column is `value`.
    pub(crate) fn row(&self, key: &str, value: &str) -> &[String] {
        let mut found = self.rows.iter().filter(|r| self.text(r, key) == value);
        let row = found
            .next()
            .unwrap_or_else(|| panic!("table {}: no row {key} = {value}", self.name));
        assert!(
            found.next().is_none(),
            "table {}: two rows {key} = {value}",
            self.name
        );
        row
    }

    /// `offset` of the row named `name`.
    pub(crate) fn offset(&self, name: &str) -> u64 {
        self.num(self.row("name", name), "offset")
    }
}

/// Checks an `| offset | size | name | ... |` table: its rows tile `0..total` in order,
/// without gap or overlap (a row of non-numeric size may only come last, and then
/// `total` is not checked); every row of `expected` (name, offset, size; `None` for a
/// variable size) is there once with that offset and size; every other row is
/// `reserved`.
pub(crate) fn check_layout(
    table: &Table,
    total: Option<usize>,
    expected: &[(&str, usize, Option<usize>)],
) {
    let mut cursor = Some(0u64);
    for row in &table.rows {
        let name = table.text(row, "name");
        let offset = table.num(row, "offset");
        let at = cursor.unwrap_or_else(|| {
            panic!(
                "table {}: row {name} follows a row of variable size",
                table.name
            )
        });
        assert_eq!(
            offset, at,
            "table {}: row {name} starts at {offset}, the previous row ends at {at}",
            table.name
        );
        cursor = parse_num(table.text(row, "size")).map(|size| offset + size);
        if name == "reserved" {
            continue;
        }
        let &(_, want_offset, want_size) = expected
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("table {}: unknown row {name}", table.name));
        assert_eq!(
            offset, want_offset as u64,
            "table {}: offset of {name}",
            table.name
        );
        assert_eq!(
            parse_num(table.text(row, "size")),
            want_size.map(|s| s as u64),
            "table {}: size of {name}",
            table.name
        );
    }
    if let Some(total) = total {
        assert_eq!(
            cursor,
            Some(total as u64),
            "table {}: rows must end at {total}",
            table.name
        );
    }
    for (name, _, _) in expected {
        table.row("name", name);
    }
}

/// The `value` of constant `name` in the constants table.
pub(crate) fn constant(name: &str) -> u64 {
    let t = table("constants");
    t.num(t.row("name", name), "value")
}

/// FNV-1a 64 as the document defines it, with the document's constants.
pub(crate) fn doc_fnv(words: &[u64]) -> u64 {
    let prime = constant("FNV_PRIME");
    let mut hash = constant("FNV_OFFSET_BASIS");
    for word in words {
        for byte in word.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(prime);
        }
    }
    hash
}

/// The document's slot stride: `round_up(2 + ceil(slot_bytes / 8), 16)` words.
pub(crate) fn doc_stride(slot_bytes: u64) -> u64 {
    (2 + slot_bytes.div_ceil(8)).div_ceil(16) * 16
}

pub(crate) fn kind_of(name: &str) -> Kind {
    match name {
        "stream" => Kind::Stream,
        "queue" => Kind::Queue,
        "topic" => Kind::Topic,
        other => panic!("unknown kind {other}"),
    }
}

pub(crate) fn dtype_of(name: &str) -> DType {
    DType::from_name(name).unwrap_or_else(|| panic!("unknown dtype {name}"))
}

pub(crate) fn shape_of(text: &str) -> Vec<u64> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or_else(|| panic!("shape {text:?} is not [d, ...]"));
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| parse_num(d).unwrap_or_else(|| panic!("dimension {d:?}")))
        .collect()
}
