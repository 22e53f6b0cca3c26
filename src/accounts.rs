//! Accounts: the users file (TOML, argon2id password hashes), loaded by the
//! server and managed by `miniftp user`.
//!
//! ```toml
//! # miniftp users file: manage with `miniftp user`.
//! [users.alice]
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! home = "alice"
//! access = "read-write"   # or "read-only"
//! ```
//!
//! Every entry is checked when the file is loaded (name, home, hash), so the
//! server starts with a valid file or not at all. Passwords and hashes never
//! appear in errors, logs or `Debug` output: a syntax error gives its line,
//! column and key, never the offending text, which may be a password typed
//! into the file by mistake.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

/// What a client may do once in: read only, or read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// List, stat and download only.
    ReadOnly,
    /// Everything, uploads and removals included.
    ReadWrite,
}

/// Longest account name, in characters.
pub const MAX_NAME_LEN: usize = 32;

/// Longest password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Longest home, in bytes.
const MAX_HOME_LEN: usize = 1024;

/// The server's own directory under the root, which no home may be or enter.
const STATE_DIR: &str = ".miniftp";

/// The first lines of every users file written.
const HEADER: &str = "# miniftp users file: manage with `miniftp user`.\n\
    # Passwords are argon2id hashes; homes are relative to the shared root.\n";

/// What an unknown name is checked against, so that it costs as much as a
/// wrong password and timing does not tell which names exist. Default
/// parameters, like every hash `add` writes; its password is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$BARbskSBK/k0NJfbJ1snTw$\
    s0Vnp3KZPpi24yq16ptScA4bCT4PMaRklyDYZEuqXoY";

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// Its home, relative to the shared root, normalized (see
    /// [`normalize_home`]); `.` is the root itself.
    pub home: String,
    /// What it may do.
    pub access: Access,
}

/// The accounts of a users file, in name order.
#[derive(Clone, Default)]
pub struct Accounts {
    users: BTreeMap<String, Entry>,
}

/// An account with its password hash (a PHC string, checked on the way in).
#[derive(Clone)]
struct Entry {
    account: Account,
    hash: String,
}

/// Why a users file or an operation on it failed. Never holds a password or
/// a hash.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The file could not be read.
    #[error("cannot read users file {}", path.display())]
    Read {
        /// The users file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, or an entry in it is not valid.
    #[error("users file {}: line {line}, column {column}{}: {message}",
        path.display(), key.as_ref().map(|key| format!(", `{key}`")).unwrap_or_default())]
    Syntax {
        /// The users file.
        path: PathBuf,
        /// Where, counted from 1.
        line: usize,
        /// Where in the line, in characters, counted from 1.
        column: usize,
        /// The key there (`users.alice.home`), when it can be told.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write users file {}", path.display())]
    Write {
        /// The users file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A name outside the rules of [`validate_name`].
    #[error("invalid user name {name:?}: {reason}")]
    InvalidName {
        /// The name refused.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A home outside the rules of [`normalize_home`].
    #[error("invalid home {home:?}: {reason}")]
    InvalidHome {
        /// The home refused.
        home: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An empty or over-long password.
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// `add` of a name already there.
    #[error("user {0:?} already exists")]
    Exists(String),
    /// An operation on a name not there.
    #[error("no user {0:?}")]
    Unknown(String),
    /// Hashing failed (no randomness for the salt, say).
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
}

impl Accounts {
    /// No accounts.
    pub fn new() -> Accounts {
        Accounts::default()
    }

    /// Reads and checks a users file.
    pub fn load(path: &Path) -> Result<Accounts, AccountsError> {
        let text = fs::read_to_string(path).map_err(|source| AccountsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Accounts::parse(&text, path)
    }

    /// Like [`load`](Self::load), but a file that does not exist yet is no
    /// accounts (for the first `miniftp user add`).
    pub fn load_or_empty(path: &Path) -> Result<Accounts, AccountsError> {
        match fs::read_to_string(path) {
            Ok(text) => Accounts::parse(&text, path),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Accounts::new()),
            Err(source) => Err(AccountsError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<Accounts, AccountsError> {
        let file: UsersFile = toml::from_str(text).map_err(|error| {
            let (line, column, key) = position(text, error.span().map_or(0, |span| span.start));
            AccountsError::Syntax {
                path: path.to_owned(),
                line,
                column,
                key,
                message: error.message().to_owned(),
            }
        })?;
        let users = file
            .users
            .into_iter()
            .map(|(Name(name), user)| {
                let home = user.home.map_or_else(|| name.clone(), |Home(home)| home);
                let account = Account {
                    name: name.clone(),
                    home,
                    access: user.access,
                };
                let hash = user.password.0;
                (name, Entry { account, hash })
            })
            .collect();
        Ok(Accounts { users })
    }

    /// Writes the accounts to `path` atomically (a temporary file in the same
    /// directory, synced, then renamed over it), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), AccountsError> {
        write_atomically(path, self.to_toml().as_bytes()).map_err(|source| AccountsError::Write {
            path: path.to_owned(),
            source,
        })
    }

    fn to_toml(&self) -> String {
        let users = self
            .users
            .iter()
            .map(|(name, entry)| {
                let user = StoredUserRef {
                    password: &entry.hash,
                    home: &entry.account.home,
                    access: entry.account.access,
                };
                (name.as_str(), user)
            })
            .collect();
        let body = toml::to_string(&UsersFileRef { users })
            .expect("names, homes and hashes are plain strings");
        format!("{HEADER}\n{body}")
    }

    /// The accounts, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.users.values().map(|entry| &entry.account)
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The account named `name`.
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.users.get(name).map(|entry| &entry.account)
    }

    /// Checks a password (slow by design, tens of milliseconds: run it on
    /// the blocking pool). `None` for an unknown name or a wrong password
    /// alike, and both take the same time.
    pub fn verify(&self, name: &str, password: &str) -> Option<Account> {
        let entry = self.users.get(name);
        let hash = entry.map_or(DUMMY_HASH, |entry| entry.hash.as_str());
        let matches = PasswordHash::new(hash).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        });
        entry.filter(|_| matches).map(|entry| entry.account.clone())
    }

    /// Adds an account, its home by default a directory named after it;
    /// refuses a name already there. Hashes the password (slow).
    pub fn add(
        &mut self,
        name: &str,
        password: &str,
        home: Option<&str>,
        access: Access,
    ) -> Result<&Account, AccountsError> {
        validate_name(name)?;
        if self.users.contains_key(name) {
            return Err(AccountsError::Exists(name.to_owned()));
        }
        let home = normalize_home(home.unwrap_or(name))?;
        let hash = hash_password(password)?;
        let account = Account {
            name: name.to_owned(),
            home,
            access,
        };
        let entry = self
            .users
            .entry(name.to_owned())
            .or_insert(Entry { account, hash });
        Ok(&entry.account)
    }

    /// Removes an account; the account it was.
    pub fn remove(&mut self, name: &str) -> Result<Account, AccountsError> {
        self.users
            .remove(name)
            .map(|entry| entry.account)
            .ok_or_else(|| AccountsError::Unknown(name.to_owned()))
    }

    /// Replaces an account's password. Hashes it (slow).
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), AccountsError> {
        let Some(entry) = self.users.get_mut(name) else {
            return Err(AccountsError::Unknown(name.to_owned()));
        };
        entry.hash = hash_password(password)?;
        Ok(())
    }
}

/// Names and homes only: hashes stay out of logs.
impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Checks an account name: 1 to 32 characters among `A-Z a-z 0-9 . _ -`,
/// not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), AccountsError> {
    let refuse = |reason| {
        Err(AccountsError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty");
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
    {
        return refuse("only letters, digits, '.', '_' and '-' are allowed");
    }
    if name.len() > MAX_NAME_LEN {
        return refuse("longer than 32 characters");
    }
    if name.starts_with(['.', '-']) {
        return refuse("starts with '.' or '-'");
    }
    Ok(())
}

/// Checks a home and gives its normal form: a relative path under the
/// shared root, `/`-separated, without `.` components or a trailing `/`;
/// `.` alone is the root itself. Refused: an empty or absolute path, `..`,
/// empty components (`a//b`), control characters, and `.miniftp` (the
/// server's own directory) or anything under it.
pub fn normalize_home(home: &str) -> Result<String, AccountsError> {
    let refuse = |reason| {
        Err(AccountsError::InvalidHome {
            home: home.to_owned(),
            reason,
        })
    };
    if home.is_empty() {
        return refuse("empty");
    }
    if home.len() > MAX_HOME_LEN {
        return refuse("longer than 1024 bytes");
    }
    if home.starts_with('/') {
        return refuse("absolute; give a path relative to the shared root");
    }
    if home.chars().any(char::is_control) {
        return refuse("control characters");
    }
    let trimmed = home.strip_suffix('/').unwrap_or(home);
    let mut components = Vec::new();
    for component in trimmed.split('/') {
        match component {
            "" => return refuse("empty component"),
            "." => {}
            ".." => return refuse("'..' would leave the shared root"),
            component => components.push(component),
        }
    }
    if components
        .first()
        .is_some_and(|first| first.eq_ignore_ascii_case(STATE_DIR))
    {
        return refuse("'.miniftp' is the server's own directory");
    }
    if components.is_empty() {
        return Ok(".".to_owned());
    }
    Ok(components.join("/"))
}

fn validate_password(password: &str) -> Result<(), AccountsError> {
    if password.is_empty() {
        return Err(AccountsError::InvalidPassword("empty"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AccountsError::InvalidPassword("longer than 1,024 bytes"));
    }
    Ok(())
}

/// Hashes with argon2id, the crate's default parameters and a random salt.
fn hash_password(password: &str) -> Result<String, AccountsError> {
    validate_password(password)?;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(AccountsError::Hash)
}

/// Why a stored hash could not be checked against, or `Ok`.
fn check_hash(hash: &str) -> Result<(), &'static str> {
    let parsed = PasswordHash::new(hash).map_err(|_| "not a PHC string")?;
    argon2::Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| "not an argon2 hash")?;
    if let Some(version) = parsed.version {
        argon2::Version::try_from(version).map_err(|_| "unknown argon2 version")?;
    }
    argon2::Params::try_from(&parsed).map_err(|_| "invalid argon2 parameters")?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("no salt or no hash output");
    }
    Ok(())
}

/// The line and column (from 1) of byte `offset` in `text`, and the key
/// there as far as the text tells: the last table header before it, and the
/// key of a `key = value` line. A guess good enough to point at; the line's
/// text itself is never shown, since it may hold a password.
fn position(text: &str, offset: usize) -> (usize, usize, Option<String>) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");

    let table = text[..line_start]
        .lines()
        .chain([line_text])
        .filter_map(table_header)
        .next_back();
    let key = match (table_header(line_text), line_text.split_once('=')) {
        (Some(header), _) => Some(header.to_owned()),
        (None, Some((key, _))) if !key.trim().is_empty() && !key.trim().starts_with('#') => {
            Some(match table {
                Some(table) => format!("{table}.{}", key.trim()),
                None => key.trim().to_owned(),
            })
        }
        _ => None,
    };
    (line, column, key)
}

/// `users.alice` for a line `[users.alice]` (or `[[...]]`).
fn table_header(line: &str) -> Option<&str> {
    let inner = line.trim_start().strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.rfind(']')?;
    Some(inner[..end].trim_end_matches(']').trim())
}

/// Writes `contents` to a new file beside `path`, syncs it, renames it over
/// `path`, and syncs the directory; mode 0600.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ));
    };
    let temporary = directory.join(format!(
        ".{}.{:016x}.tmp",
        file_name.to_string_lossy(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)?;
        File::open(directory)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// The file as read; every field checked as it is deserialized, so that an
/// error carries its place in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: BTreeMap<Name, StoredUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredUser {
    password: StoredHash,
    home: Option<Home>,
    access: Access,
}

#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
struct Name(String);

impl TryFrom<String> for Name {
    type Error = AccountsError;

    fn try_from(name: String) -> Result<Name, AccountsError> {
        validate_name(&name)?;
        Ok(Name(name))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Home(String);

impl TryFrom<String> for Home {
    type Error = AccountsError;

    fn try_from(home: String) -> Result<Home, AccountsError> {
        normalize_home(&home).map(Home)
    }
}

/// Taken as any TOML value, so that the error for a number or a bad string
/// never quotes it (serde's own "invalid type" errors would).
#[derive(Deserialize)]
#[serde(try_from = "toml::Value")]
struct StoredHash(String);

impl TryFrom<toml::Value> for StoredHash {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<StoredHash, String> {
        let toml::Value::String(hash) = value else {
            return Err("`password` must be an argon2 hash, a string".to_owned());
        };
        check_hash(&hash)
            .map_err(|reason| format!("`password` is not a usable argon2 hash: {reason}"))?;
        Ok(StoredHash(hash))
    }
}

/// The file as written.
#[derive(Serialize)]
struct UsersFileRef<'a> {
    users: BTreeMap<&'a str, StoredUserRef<'a>>,
}

#[derive(Serialize)]
struct StoredUserRef<'a> {
    password: &'a str,
    home: &'a str,
    access: Access,
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tempfile::TempDir;

    use super::*;

    /// The hash of "open sesame", default parameters: tests that only read
    /// need not pay for hashing.
    const OPEN_SESAME: &str = "$argon2id$v=19$m=19456,t=2,p=1$KI3UDrxoskz49tE2BKZFzQ$\
        mXK5U7BEuuOIqLhnrgf8YewPic/nBcGhLxFVTt6SPqo";

    fn file(users: &str) -> String {
        format!("# a comment\n{users}")
    }

    fn parse(text: &str) -> Result<Accounts, AccountsError> {
        Accounts::parse(text, Path::new("users.toml"))
    }

    fn syntax_error(text: &str) -> (usize, Option<String>, String) {
        match parse(text) {
            Err(AccountsError::Syntax {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn add_save_load_round_trip() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("users.toml");
        let mut accounts = Accounts::load_or_empty(&path).unwrap();
        assert!(accounts.is_empty());
        let added = accounts
            .add("zed", "pass zed", None, Access::ReadWrite)
            .unwrap()
            .clone();
        assert_eq!(
            added,
            Account {
                name: "zed".into(),
                home: "zed".into(),
                access: Access::ReadWrite
            }
        );
        let text = format!(
            "[users.\"a.b\"]\npassword = \"{OPEN_SESAME}\"\nhome = \"./shared/a.b/\"\naccess = \"read-only\"\n"
        );
        let other = parse(&text).unwrap();
        assert_eq!(other.get("a.b").unwrap().home, "shared/a.b");
        accounts.users.extend(other.users);
        accounts.save(&path).unwrap();

        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(HEADER), "{text}");
        assert!(!text.contains("pass zed"), "{text}");
        let loaded = Accounts::load(&path).unwrap();
        let names: Vec<_> = loaded.iter().map(|account| account.name.as_str()).collect();
        assert_eq!(names, ["a.b", "zed"]);
        assert_eq!(loaded.get("zed"), Some(&added));
        assert_eq!(
            loaded.get("a.b"),
            Some(&Account {
                name: "a.b".into(),
                home: "shared/a.b".into(),
                access: Access::ReadOnly
            })
        );
        assert_eq!(loaded.users["zed"].hash, accounts.users["zed"].hash);
        assert_eq!(loaded.users["a.b"].hash, OPEN_SESAME);
        assert_eq!(Accounts::load(&path).unwrap().to_toml(), text);
    }

    #[test]
    fn verify_right_wrong_and_unknown() {
        let text = format!(
            "[users.alice]\npassword = \"{OPEN_SESAME}\"\nhome = \"alice\"\naccess = \"read-write\"\n"
        );
        let accounts = parse(&text).unwrap();
        assert_eq!(
            accounts.verify("alice", "open sesame"),
            accounts.get("alice").cloned()
        );
        assert_eq!(accounts.verify("alice", "open sesame!"), None);
        assert_eq!(accounts.verify("bob", "open sesame"), None);
    }

    #[test]
    fn set_password_replaces_the_hash_and_remove_forgets() {
        let text = format!(
            "[users.alice]\npassword = \"{OPEN_SESAME}\"\nhome = \"alice\"\naccess = \"read-write\"\n"
        );
        let mut accounts = parse(&text).unwrap();
        accounts.set_password("alice", "new one").unwrap();
        assert_ne!(accounts.users["alice"].hash, OPEN_SESAME);
        check_hash(&accounts.users["alice"].hash).unwrap();
        assert!(matches!(
            accounts.set_password("bob", "x"),
            Err(AccountsError::Unknown(_))
        ));
        assert!(matches!(
            accounts.set_password("alice", ""),
            Err(AccountsError::InvalidPassword(_))
        ));
        assert!(matches!(
            accounts.set_password("alice", &"x".repeat(1025)),
            Err(AccountsError::InvalidPassword(_))
        ));
        assert_eq!(accounts.remove("alice").unwrap().name, "alice");
        assert!(matches!(
            accounts.remove("alice"),
            Err(AccountsError::Unknown(_))
        ));
        assert!(accounts.is_empty());
    }

    #[test]
    fn add_refuses_before_hashing() {
        let text = format!(
            "[users.alice]\npassword = \"{OPEN_SESAME}\"\nhome = \"alice\"\naccess = \"read-write\"\n"
        );
        let mut accounts = parse(&text).unwrap();
        let mut add = |name, home| accounts.add(name, "pw", home, Access::ReadOnly).map(|_| ());
        assert!(matches!(add("alice", None), Err(AccountsError::Exists(_))));
        assert!(matches!(
            add("-bob", None),
            Err(AccountsError::InvalidName { .. })
        ));
        assert!(matches!(
            add("bob", Some("../x")),
            Err(AccountsError::InvalidHome { .. })
        ));
        assert_eq!(accounts.len(), 1);
    }

    #[test]
    fn the_dummy_hash_costs_what_a_new_hash_costs() {
        check_hash(DUMMY_HASH).unwrap();
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        let params = argon2::Params::try_from(&dummy).unwrap();
        let default = argon2::Params::default();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (default.m_cost(), default.t_cost(), default.p_cost())
        );
        assert_eq!(
            params.output_len(),
            Some(argon2::Params::DEFAULT_OUTPUT_LEN)
        );
    }

    #[test]
    fn names() {
        for good in [
            "a",
            "alice",
            "Bob_2",
            "a.b",
            "a-b",
            "x_",
            "_x",
            "0",
            &"n".repeat(32),
        ] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            ".alice",
            "-alice",
            "al ice",
            "alice/",
            "a:b",
            "é",
            "a\nb",
            ".miniftp",
            &"n".repeat(33),
        ] {
            assert!(
                matches!(validate_name(bad), Err(AccountsError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn homes() {
        for (home, normal) in [
            ("alice", "alice"),
            ("alice/", "alice"),
            ("./alice", "alice"),
            ("shared/team a/", "shared/team a"),
            ("a/./b", "a/b"),
            (".", "."),
            ("./", "."),
            (".miniftpx", ".miniftpx"),
            ("x/.miniftp", "x/.miniftp"),
            ("données", "données"),
        ] {
            assert_eq!(normalize_home(home).unwrap(), normal, "{home:?}");
        }
        for bad in [
            "",
            "/",
            "/alice",
            "..",
            "../alice",
            "a/../b",
            "a/..",
            "a//b",
            "//",
            ".miniftp",
            ".miniftp/x",
            "./.miniftp",
            ".MiniFTP",
            "a\nb",
            "a\0b",
            &"h".repeat(1025),
        ] {
            assert!(
                matches!(normalize_home(bad), Err(AccountsError::InvalidHome { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let (line, key, message) = syntax_error(&file(&format!(
            "[users.alice]\npassword = \"{OPEN_SESAME}\"\naccess = \"read-only\"\nhoem = \"x\"\n"
        )));
        assert_eq!(line, 5);
        assert_eq!(key.as_deref(), Some("users.alice.hoem"));
        assert!(message.contains("unknown field `hoem`"), "{message}");

        let (line, key, _) = syntax_error("user = 1\n");
        assert_eq!((line, key.as_deref()), (1, Some("user")));
    }

    #[test]
    fn a_bad_hash_is_named_with_its_line_and_never_shown() {
        for value in [
            "\"hunter2\"",
            "hunter2",
            "12345",
            "\"$argon2id$v=19$m=19456\"",
        ] {
            let text = file(&format!(
                "[users.alice]\naccess = \"read-only\"\npassword = {value}\n"
            ));
            let error = parse(&text).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("12345"),
                "{shown}"
            );
            assert!(!shown.contains("argon2id$"), "{shown}");
            let AccountsError::Syntax { line, key, .. } = error else {
                panic!("{shown}");
            };
            assert_eq!(line, 4, "{shown}");
            assert_eq!(key.as_deref(), Some("users.alice.password"), "{shown}");
            assert!(
                shown.starts_with("users file users.toml: line 4, column "),
                "{shown}"
            );
        }
    }

    #[test]
    fn invalid_entries_are_refused_with_their_line() {
        let entry = |name: &str, rest: &str| {
            file(&format!(
                "[users.ok]\npassword = \"{OPEN_SESAME}\"\naccess = \"read-only\"\n\n\
                 [users.{name}]\npassword = \"{OPEN_SESAME}\"\n{rest}"
            ))
        };
        let (line, key, message) = syntax_error(&entry("\"-x\"", "access = \"read-only\"\n"));
        assert_eq!((line, key.as_deref()), (6, Some("users.\"-x\"")));
        assert!(message.contains("invalid user name"), "{message}");

        let (line, key, message) =
            syntax_error(&entry("x", "home = \"../up\"\naccess = \"read-only\"\n"));
        assert_eq!((line, key.as_deref()), (8, Some("users.x.home")));
        assert!(message.contains("invalid home"), "{message}");

        let (line, key, message) = syntax_error(&entry("x", "access = \"all\"\n"));
        assert_eq!((line, key.as_deref()), (8, Some("users.x.access")));
        assert!(message.contains("read-only"), "{message}");

        let (line, key, message) = syntax_error(&entry("x", ""));
        assert_eq!((line, key.as_deref()), (6, Some("users.x")));
        assert!(message.contains("missing field `access`"), "{message}");

        let (line, _, message) = syntax_error(&entry("ok", "access = \"read-only\"\n"));
        assert_eq!(line, 6);
        assert!(message.contains("duplicate"), "{message}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("missing.toml");
        let error = Accounts::load(&path).unwrap_err();
        assert!(error.to_string().contains("missing.toml"), "{error}");
        assert!(Accounts::load_or_empty(&path).unwrap().is_empty());

        fs::write(&path, "[users.alice]\npassword = 1\n").unwrap();
        let error = Accounts::load(&path).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("users file {}: line 2, ", path.display())),
            "{error}"
        );
        assert!(Accounts::load_or_empty(&path).is_err());
    }

    #[test]
    fn save_is_atomic_and_private() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("users.toml");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let accounts = parse(&format!(
            "[users.alice]\npassword = \"{OPEN_SESAME}\"\naccess = \"read-write\"\n"
        ))
        .unwrap();
        accounts.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let entries: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["users.toml"], "no temporary file left");
        assert_eq!(
            Accounts::load(&path).unwrap().get("alice").unwrap().home,
            "alice"
        );

        let error = accounts
            .save(&dir.path().join("no such dir/users.toml"))
            .unwrap_err();
        assert!(error.to_string().contains("no such dir"), "{error}");
    }

    #[test]
    fn debug_shows_no_hash() {
        let accounts = parse(&format!(
            "[users.alice]\npassword = \"{OPEN_SESAME}\"\naccess = \"read-write\"\n"
        ))
        .unwrap();
        let shown = format!("{accounts:?}");
        assert!(
            shown.contains("alice") && !shown.contains("argon2"),
            "{shown}"
        );
    }

    #[test]
    fn an_empty_file_is_no_accounts() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse(HEADER).unwrap().is_empty());
        assert!(parse(&Accounts::new().to_toml()).unwrap().is_empty());
    }
}
