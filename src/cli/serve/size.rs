//! Byte counts as people write them: `1048576`, `512K`, `10M`, `1G`, in
//! binary multiples (`1K` = 1,024), on the command line and in the
//! configuration file (where a plain integer works too).

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// What a size may end with, and its multiplier. Decimal units (`KB`) are
/// left out on purpose: `10MB` would read as 10,000,000 to some and as
/// 10,485,760 to others.
const UNITS: [(&str, u32); 5] = [("", 0), ("K", 10), ("M", 20), ("G", 30), ("T", 40)];

/// Parses a byte count: digits, then optionally `K`, `M`, `G` or `T` (any
/// case, also written `Ki`/`KiB`...), each 1,024 times the one before; `B`
/// alone is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size '{text}': expected a number of bytes, optionally with a \
             K, M, G or T suffix (binary: 1K = 1024)"
        )
    };
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(invalid());
    }
    let unit = unit.to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .filter(|letter| !letter.is_empty())
        .or_else(|| unit.strip_suffix('I').filter(|letter| !letter.is_empty()))
        .unwrap_or(if unit == "B" { "" } else { &unit });
    let shift = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, shift)| *shift)
        .ok_or_else(invalid)?;
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(1 << shift))
        .ok_or_else(|| format!("invalid size '{text}': too large"))
}

/// Deserializes an optional size: an integer, or a string for
/// [`parse_size`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_any(SizeVisitor).map(Some)
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a number of bytes, or a string such as \"10M\"")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &"a size of 0 or more"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        parse_size(value).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes_in_any_case() {
        for (text, bytes) in [
            ("0", 0),
            ("1048576", 1_048_576),
            ("100B", 100),
            ("512K", 512 * 1024),
            ("512k", 512 * 1024),
            ("10M", 10 << 20),
            ("10MiB", 10 << 20),
            ("10Mi", 10 << 20),
            ("10mib", 10 << 20),
            ("1G", 1 << 30),
            ("2T", 2 << 40),
            ("16777215T", 16_777_215 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_text() {
        for text in [
            "", "K", "-1", "1.5M", "10 M", " 10M", "10MB", "10KB", "10X", "10Mx", "10iB", "10I",
            "M10", "0x10",
        ] {
            let error = parse_size(text).unwrap_err();
            assert!(error.contains(&format!("'{text}'")), "{text}: {error}");
            assert!(error.contains("1K = 1024"), "{text}: {error}");
        }
    }

    #[test]
    fn overflow_is_refused() {
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        assert!(
            parse_size("18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }
}
