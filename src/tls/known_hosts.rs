//! The known-hosts file: the servers a client trusted on first use, each
//! with the fingerprint of the certificate it presented then.
//!
//! Plain text, one `HOST:PORT FINGERPRINT` per line (the host lowercase, an
//! IPv6 address in brackets, the fingerprint as [`Fingerprint`] displays
//! it); lines starting with `#` and blank lines are ignored. A line that
//! cannot be read is an error naming it: skipping it could turn a changed
//! certificate into an unknown one.

use std::io;
use std::path::{Path, PathBuf};

use super::private_files::{create_private_dir, write_atomically};
use super::{AskUser, Fingerprint, HostChanged, TlsError};

/// Written at the top of a new file.
const HEADER: &str = "# miniftp known hosts: servers trusted on first use.\n\
                      # One `HOST:PORT SHA-256-FINGERPRINT` per line; remove a line to forget a server.\n";

/// Where clients record servers trusted on first use by default:
/// `miniftp/known_hosts` under the user's data directory (on Linux
/// `~/.local/share/miniftp/known_hosts`), with the fallbacks of
/// [`default_state_dir`](super::default_state_dir).
pub fn default_known_hosts() -> PathBuf {
    super::identity::data_dir().join("known_hosts")
}

/// One recorded server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// Its line in the file, from 1.
    pub line: usize,
    /// `HOST:PORT`, lowercase.
    pub address: String,
    /// The fingerprint recorded.
    pub fingerprint: Fingerprint,
    /// The line as written, for the message that asks to remove it.
    pub text: String,
}

/// What the file says of a server and the certificate it presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    /// Recorded with this fingerprint.
    Known,
    /// Not recorded.
    Unknown,
    /// Recorded with another fingerprint (the first such entry).
    Changed(Entry),
}

/// Parses the file's text; `path` is for the errors.
pub(super) fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, TlsError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (address, fingerprint) =
            parse_line(trimmed).map_err(|reason| TlsError::KnownHostsSyntax {
                path: path.to_owned(),
                line: index + 1,
                reason,
            })?;
        entries.push(Entry {
            line: index + 1,
            address,
            fingerprint,
            text: trimmed.to_owned(),
        });
    }
    Ok(entries)
}

fn parse_line(line: &str) -> Result<(String, Fingerprint), String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [address, fingerprint] = fields[..] else {
        return Err(format!(
            "expected 'HOST:PORT FINGERPRINT', found {} field(s)",
            fields.len()
        ));
    };
    let bad_address = || format!("'{address}' is not HOST:PORT");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad_address)?;
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if host.is_empty()
        || port.parse::<u16>().is_err()
        || (host.contains(':') && !bracketed)
        || (host.starts_with('[') && !bracketed)
    {
        return Err(bad_address());
    }
    let fingerprint = fingerprint
        .parse()
        .map_err(|error| format!("'{fingerprint}': {error}"))?;
    Ok((address.to_ascii_lowercase(), fingerprint))
}

/// What `entries` say of the server at `address` presenting `fingerprint`.
pub(super) fn status(entries: &[Entry], address: &str, fingerprint: &Fingerprint) -> Status {
    let mut recorded = entries.iter().filter(|entry| entry.address == address);
    if recorded
        .clone()
        .any(|entry| entry.fingerprint == *fingerprint)
    {
        return Status::Known;
    }
    match recorded.next() {
        Some(entry) => Status::Changed(entry.clone()),
        None => Status::Unknown,
    }
}

/// The file's text and entries; a missing file has none.
fn read(path: &Path) -> Result<(String, Vec<Entry>), TlsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(TlsError::Read {
                path: path.to_owned(),
                error,
            });
        }
    };
    let entries = parse(&text, path)?;
    Ok((text, entries))
}

/// Decides whether to trust the server at `address` (`HOST:PORT`, as
/// [`host_port`](super::host_port) makes it) presenting a certificate that
/// no root vouches for: known and equal, yes; changed, never; unknown,
/// recorded if `accept_new` or if `ask` says yes. Blocks (files, `ask`).
pub(super) fn decide(
    path: &Path,
    address: &str,
    fingerprint: &Fingerprint,
    accept_new: bool,
    ask: Option<&AskUser>,
) -> Result<(), TlsError> {
    let (_, entries) = read(path)?;
    match status(&entries, address, fingerprint) {
        Status::Known => return Ok(()),
        Status::Changed(entry) => return Err(changed(path, address, fingerprint, entry)),
        Status::Unknown => {}
    }
    if !accept_new {
        let Some(ask) = ask else {
            return Err(TlsError::UnknownHost {
                address: address.to_owned(),
                fingerprint: *fingerprint,
                known_hosts: path.to_owned(),
            });
        };
        if !ask(address, fingerprint) {
            return Err(TlsError::NotTrusted {
                address: address.to_owned(),
                fingerprint: *fingerprint,
            });
        }
    }
    record(path, address, fingerprint)
}

/// Appends `address fingerprint` to the file (created with its directory
/// if need be), rewriting it atomically. The file is read again first, as
/// another client may have written it meanwhile (while the user was asked).
fn record(path: &Path, address: &str, fingerprint: &Fingerprint) -> Result<(), TlsError> {
    let (mut text, entries) = read(path)?;
    match status(&entries, address, fingerprint) {
        Status::Known => return Ok(()),
        Status::Changed(entry) => return Err(changed(path, address, fingerprint, entry)),
        Status::Unknown => {}
    }
    if text.is_empty() {
        text.push_str(HEADER);
    } else if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{address} {fingerprint}\n"));
    let write_error = |error| TlsError::Write {
        path: path.to_owned(),
        error,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        create_private_dir(parent).map_err(|error| TlsError::Write {
            path: parent.to_owned(),
            error,
        })?;
    }
    write_atomically(path, text.as_bytes(), 0o600).map_err(write_error)?;
    tracing::debug!(%address, %fingerprint, known_hosts = %path.display(), "recorded a server's certificate");
    Ok(())
}

fn changed(path: &Path, address: &str, presented: &Fingerprint, entry: Entry) -> TlsError {
    TlsError::HostChanged(Box::new(HostChanged {
        address: address.to_owned(),
        presented: *presented,
        recorded: entry.fingerprint,
        known_hosts: path.to_owned(),
        line: entry.line,
        entry: entry.text,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/home/someone/known_hosts";

    fn fingerprint(byte: u8) -> Fingerprint {
        Fingerprint([byte; 32])
    }

    fn syntax_error(text: &str) -> (usize, String) {
        match parse(text, Path::new(PATH)) {
            Err(TlsError::KnownHostsSyntax { line, reason, .. }) => (line, reason),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn comments_blank_lines_and_entries() {
        let text = format!(
            "# a comment\n\n   \n  # indented comment\nLocalHost:7878 {}\n[::1]:21  {}\r\n192.168.1.2:7878\t{}\n",
            fingerprint(1),
            fingerprint(2).to_string().to_lowercase(),
            fingerprint(3).to_string().replace(':', ""),
        );
        let entries = parse(&text, Path::new(PATH)).unwrap();
        let summary: Vec<_> = entries
            .iter()
            .map(|entry| (entry.line, entry.address.as_str(), entry.fingerprint))
            .collect();
        assert_eq!(
            summary,
            [
                (5, "localhost:7878", fingerprint(1)),
                (6, "[::1]:21", fingerprint(2)),
                (7, "192.168.1.2:7878", fingerprint(3)),
            ]
        );
        assert_eq!(
            entries[0].text,
            format!("LocalHost:7878 {}", fingerprint(1))
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let good = format!("localhost:7878 {}\n", fingerprint(1));
        let cases = [
            ("localhost:7878\n", "found 1 field"),
            ("localhost:7878 AB:CD extra\n", "found 3 field"),
            ("localhost AB\n", "not HOST:PORT"),
            ("localhost:http AB\n", "not HOST:PORT"),
            ("localhost:70000 AB\n", "not HOST:PORT"),
            (":7878 AB\n", "not HOST:PORT"),
            ("::1:7878 AB\n", "not HOST:PORT"),
            ("[::1:7878 AB\n", "not HOST:PORT"),
            ("localhost:7878 AB:CD\n", "not a SHA-256 fingerprint"),
        ];
        for (bad, expected) in cases {
            let text = format!("# header\n{good}{bad}{good}");
            let (line, reason) = syntax_error(&text);
            assert_eq!(line, 3, "{bad:?}");
            assert!(reason.contains(expected), "{bad:?}: {reason}");
        }
        let message = parse("x\n", Path::new(PATH)).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{PATH}, line 1: ")),
            "{message}"
        );
    }

    #[test]
    fn status_known_unknown_changed() {
        let text = format!(
            "a:1 {}\nb:1 {}\nb:1 {}\n",
            fingerprint(1),
            fingerprint(2),
            fingerprint(3)
        );
        let entries = parse(&text, Path::new(PATH)).unwrap();
        assert_eq!(status(&entries, "a:1", &fingerprint(1)), Status::Known);
        assert_eq!(status(&entries, "b:1", &fingerprint(3)), Status::Known);
        assert_eq!(status(&entries, "a:2", &fingerprint(1)), Status::Unknown);
        assert_eq!(status(&entries, "c:1", &fingerprint(1)), Status::Unknown);
        match status(&entries, "a:1", &fingerprint(9)) {
            Status::Changed(entry) => {
                assert_eq!(entry.line, 1);
                assert_eq!(entry.fingerprint, fingerprint(1));
            }
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    #[test]
    fn record_creates_the_file_and_its_directory_private_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("known_hosts");
        decide(&path, "a:1", &fingerprint(1), true, None).unwrap();
        decide(&path, "b:2", &fingerprint(2), true, None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER));
        let entries = parse(&text, &path).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].address, "b:2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["known_hosts"]);
    }

    #[test]
    fn a_file_without_final_newline_is_appended_to_on_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, format!("a:1 {}", fingerprint(1))).unwrap();
        decide(&path, "b:1", &fingerprint(2), true, None).unwrap();
        let entries = parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        assert_eq!(entries.len(), 2);
    }
}
