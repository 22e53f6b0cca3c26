//! How remote entries look (`ls`, `ls -l`, `stat`) and which of them a
//! pattern picks (`dl logs/*.txt`). Pure.

use miniftp::client::Entry;
use miniftp::protocol::text::escape;

/// How patterns match names: `*` and `?` never match `/` nor a leading
/// `.`, as in a shell.
pub const MATCHING: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// `ls`: the name, with a `/` after a directory's.
pub fn short(entry: &Entry) -> String {
    let mut line = escape(&entry.name);
    if entry.is_directory() {
        line.push('/');
    }
    line
}

/// `ls -l`: type, size, modification time (UTC), name.
pub fn long(entry: &Entry) -> String {
    let (kind, size) = match entry.is_directory() {
        true => ('d', "-".to_owned()),
        false => ('-', entry.size.to_string()),
    };
    let time = entry
        .modified_seconds()
        .map_or_else(|| "-".to_owned(), |time| utc(time, false));
    format!("{kind} {size:>12}  {time:<16}  {}", short(entry))
}

/// `stat`: `PATH: file, N bytes, modified TIME UTC`.
pub fn describe(path: &str, entry: &Entry) -> String {
    let mut line = format!("{}: ", escape(path));
    match entry.is_directory() {
        true => line.push_str("directory"),
        false => line.push_str(&format!("file, {} bytes", entry.size)),
    }
    if let Some(time) = entry.modified_seconds() {
        line.push_str(&format!(", modified {} UTC", utc(time, true)));
    }
    line
}

/// A Unix time as `YYYY-MM-DD HH:MM` (`:SS` with `seconds`), in UTC.
pub fn utc(time: i64, seconds: bool) -> String {
    let (days, second_of_day) = (time.div_euclid(86_400), time.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    );
    match seconds {
        true => format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"),
        false => format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}"),
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A remote pattern split into the directory to list (literal) and the
/// pattern for names in it; `None` when the directory part has pattern
/// characters too, which is not supported.
pub fn split_remote_pattern<'p>(text: &'p str, pattern: &'p str) -> Option<(&'p str, &'p str)> {
    let Some((directory, names)) = pattern.rsplit_once('/') else {
        return Some(("", pattern));
    };
    let literal = directory
        .replace("[*]", "")
        .replace("[?]", "")
        .replace("[[]", "")
        .replace("[]]", "");
    if literal.contains(['*', '?', '[']) {
        return None;
    }
    // The directory as typed: the text up to the same last `/`.
    let (typed, _) = text.rsplit_once('/')?;
    Some((if typed.is_empty() { "/" } else { typed }, names))
}

/// The entries whose names match `pattern`, directories only if asked.
pub fn matching<'e>(
    entries: &'e [Entry],
    pattern: &glob::Pattern,
    directories: bool,
) -> Vec<&'e Entry> {
    entries
        .iter()
        .filter(|entry| directories || !entry.is_directory())
        .filter(|entry| pattern.matches_with(&entry.name, MATCHING))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, is_directory: bool, size: u64, modified: Option<i64>) -> Entry {
        Entry {
            name: name.to_owned(),
            kind: match is_directory {
                true => miniftp::client::EntryKind::Directory,
                false => miniftp::client::EntryKind::File,
            },
            size,
            modified: modified.map(|seconds| {
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.unsigned_abs())
            }),
        }
    }

    #[test]
    fn dates_are_utc_and_right_across_eras() {
        let cases = [
            (0, "1970-01-01 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"),
            (1_738_671_300, "2025-02-04 12:15:00"),
            (4_107_542_399, "2100-02-28 23:59:59"),
            (-1, "1969-12-31 23:59:59"),
        ];
        for (time, expected) in cases {
            assert_eq!(utc(time, true), expected, "{time}");
        }
        assert_eq!(utc(1_738_671_300, false), "2025-02-04 12:15");
    }

    #[test]
    fn entries_show_their_kind_size_and_time() {
        let file = entry("a b.jpg", false, 12_345, Some(1_738_671_300));
        let directory = entry("photos", true, 0, None);
        assert_eq!(short(&file), "a b.jpg");
        assert_eq!(short(&directory), "photos/");
        assert_eq!(long(&file), "-        12345  2025-02-04 12:15  a b.jpg");
        assert_eq!(
            long(&directory),
            "d            -  -                 photos/"
        );
        assert_eq!(
            describe("x/a b.jpg", &file),
            "x/a b.jpg: file, 12345 bytes, modified 2025-02-04 12:15:00 UTC"
        );
        assert_eq!(describe("photos", &directory), "photos: directory");
        // A name cannot forge a line.
        assert_eq!(short(&entry("evil\nname", false, 0, None)), "evil\\nname");
    }

    #[test]
    fn remote_patterns_split_at_the_last_slash() {
        assert_eq!(split_remote_pattern("*.txt", "*.txt"), Some(("", "*.txt")));
        assert_eq!(
            split_remote_pattern("logs/*.txt", "logs/*.txt"),
            Some(("logs", "*.txt"))
        );
        assert_eq!(
            split_remote_pattern("/*.txt", "/*.txt"),
            Some(("/", "*.txt"))
        );
        // A quoted star in the directory is part of its name.
        assert_eq!(
            split_remote_pattern("a*b/*.txt", "a[*]b/*.txt"),
            Some(("a*b", "*.txt"))
        );
        assert_eq!(split_remote_pattern("*/x.txt", "*/x.txt"), None);
    }

    #[test]
    fn patterns_pick_names_as_a_shell_does() {
        let entries = [
            entry("sub", true, 0, None),
            entry(".hidden.txt", false, 1, None),
            entry("a.txt", false, 1, None),
            entry("b.log", false, 1, None),
            entry("c d.txt", false, 1, None),
        ];
        let names = |pattern: &str, directories: bool| -> Vec<String> {
            let pattern = glob::Pattern::new(pattern).unwrap();
            matching(&entries, &pattern, directories)
                .into_iter()
                .map(|entry| entry.name.clone())
                .collect()
        };
        assert_eq!(names("*.txt", false), ["a.txt", "c d.txt"]);
        assert_eq!(names("*", false), ["a.txt", "b.log", "c d.txt"]);
        assert_eq!(names("*", true), ["sub", "a.txt", "b.log", "c d.txt"]);
        assert_eq!(names(".*", false), [".hidden.txt"]);
        assert_eq!(names("[ab].*", false), ["a.txt", "b.log"]);
    }
}
