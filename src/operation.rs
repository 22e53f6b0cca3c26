//! The model: what a client can ask of a server, what it is answered, and
//! how it fails. No wire and no disk: the classic words and the extended
//! frames (`protocol`) are two encodings of an [`Operation`]; the executor
//! runs one against storage; the client builds one per method.
//!
//! Adding an operation is its variant here, its function in the executor,
//! its client method and its shell line; every `match` on operations is
//! exhaustive, so the compiler names each place that must learn of it.

use std::time::SystemTime;

/// One request, whichever protocol carried it. Paths are virtual, as the
/// client wrote them (relative to the session's directory unless they
/// begin with `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Change the session's directory (`cd`).
    ChangeDirectory {
        /// The directory to change to.
        path: String,
    },
    /// Make a directory (`mkdir`); with `parents`, its missing parents
    /// too, and an existing directory is fine (`mkdir -p`).
    MakeDirectory {
        /// The directory to make.
        path: String,
        /// Make missing parents; accept an existing directory.
        parents: bool,
    },
    /// Remove a file, a link or an empty directory (`rm`); with
    /// `recursive`, a directory with everything below it (`rm -r`).
    Remove {
        /// The entry to remove.
        path: String,
        /// Also a directory with everything in it.
        recursive: bool,
    },
    /// Move `from` into `to` when that is a directory, otherwise rename it
    /// to `to` (`mv`); never replaces an entry.
    Rename {
        /// What to move.
        from: String,
        /// A new name, or an existing directory to move into.
        to: String,
    },
    /// Describe one entry.
    Stat {
        /// The entry to describe.
        path: String,
    },
    /// List a directory's entries.
    List {
        /// The directory to list.
        path: String,
    },
    /// A file's size (`info`).
    Size {
        /// The file.
        path: String,
    },
    /// Store a file (`ul`): its bytes follow the request.
    Upload {
        /// Where to store it.
        path: String,
        /// Its size, when the protocol says it up front (the classic one
        /// does not: the payload ends where its token is).
        size: Option<u64>,
        /// Continue what an interrupted upload of the same path and size
        /// left on the server.
        resume: bool,
    },
    /// Fetch a file (`dl`), from `offset` on.
    Download {
        /// The file.
        path: String,
        /// The first byte wanted (non-zero to resume).
        offset: u64,
    },
    /// Log in to an account.
    Login {
        /// The account's name.
        user: String,
        /// Its password.
        password: Password,
    },
    /// End the session (`exit`).
    Exit,
}

impl Operation {
    /// The operation's name in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::ChangeDirectory { .. } => "change-directory",
            Operation::MakeDirectory { .. } => "make-directory",
            Operation::Remove { .. } => "remove",
            Operation::Rename { .. } => "rename",
            Operation::Stat { .. } => "stat",
            Operation::List { .. } => "list",
            Operation::Size { .. } => "size",
            Operation::Upload { .. } => "upload",
            Operation::Download { .. } => "download",
            Operation::Login { .. } => "login",
            Operation::Exit => "exit",
        }
    }

    /// The paths it names, as the client wrote them: the first and, for a
    /// rename, the second. A login and an exit name none.
    pub fn paths(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Operation::ChangeDirectory { path }
            | Operation::MakeDirectory { path, .. }
            | Operation::Remove { path, .. }
            | Operation::Stat { path }
            | Operation::List { path }
            | Operation::Size { path }
            | Operation::Upload { path, .. }
            | Operation::Download { path, .. } => (Some(path), None),
            Operation::Rename { from, to } => (Some(from), Some(to)),
            Operation::Login { .. } | Operation::Exit => (None, None),
        }
    }

    /// What it is answered when it succeeds.
    pub fn answer(&self) -> Answer {
        match self {
            Operation::ChangeDirectory { .. }
            | Operation::MakeDirectory { .. }
            | Operation::Remove { .. }
            | Operation::Rename { .. }
            | Operation::Login { .. } => Answer::Done,
            Operation::Stat { .. } | Operation::Size { .. } => Answer::Entry,
            Operation::List { .. } => Answer::Listing,
            Operation::Upload { .. } | Operation::Download { .. } => Answer::Transfer,
            Operation::Exit => Answer::Closed,
        }
    }

    /// Whether the operation changes the tree (refused on read-only access).
    pub fn changes_the_tree(&self) -> bool {
        match self {
            Operation::MakeDirectory { .. }
            | Operation::Remove { .. }
            | Operation::Rename { .. }
            | Operation::Upload { .. } => true,
            Operation::ChangeDirectory { .. }
            | Operation::Stat { .. }
            | Operation::List { .. }
            | Operation::Size { .. }
            | Operation::Download { .. }
            | Operation::Login { .. }
            | Operation::Exit => false,
        }
    }
}

/// The shape of what a successful operation is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Done, nothing more (a directory made, an entry removed).
    Done,
    /// One entry (stat, size).
    Entry,
    /// A directory's entries.
    Listing,
    /// A file's bytes travel (upload, download), then the outcome.
    Transfer,
    /// The session ends.
    Closed,
}

/// A password: its `Debug` never shows it, so that it cannot reach a log
/// by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself, for checking or sending it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Password(***)")
    }
}

/// What an entry is, as a client sees it (links are shown as their target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
}

/// One entry of a directory, or the answer to a stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name (the last component of its path; `/` for the root).
    pub name: String,
    /// Directory or file.
    pub kind: EntryKind,
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// When it last changed, if known.
    pub modified: Option<SystemTime>,
}

impl Entry {
    /// Whether it is a directory.
    pub fn is_directory(&self) -> bool {
        self.kind == EntryKind::Directory
    }

    /// When it last changed, in whole seconds since the Unix epoch
    /// (negative before it).
    pub fn modified_seconds(&self) -> Option<i64> {
        let time = self.modified?;
        Some(match time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
        })
    }
}

/// Why an operation failed, for programs: stable, and the same whichever
/// way the client came in (the extended protocol sends it as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// The request is malformed or not allowed in this state.
    BadRequest = 1,
    /// No such file or directory.
    NotFound = 2,
    /// The destination already exists.
    AlreadyExists = 3,
    /// A directory was expected.
    NotADirectory = 4,
    /// A file was expected.
    IsADirectory = 5,
    /// The directory is not empty.
    NotEmpty = 6,
    /// The path is invalid, reserved, or leads outside the root.
    InvalidPath = 7,
    /// Not permitted.
    PermissionDenied = 8,
    /// Over a size limit.
    TooLarge = 9,
    /// The server's storage is full.
    NoSpace = 10,
    /// The received bytes do not match the sender's digest.
    DigestMismatch = 11,
    /// Any other failure on the server.
    Internal = 12,
    /// A login failed: unknown name or wrong password (never said which),
    /// or the address is banned for failing too often.
    LoginFailed = 13,
    /// The server has accounts and this session has not logged in.
    LoginRequired = 14,
}

impl ErrorCode {
    /// The code for its number; an unknown number (from a newer peer) is
    /// still a failure, [`ErrorCode::Internal`].
    pub fn from_number(value: u16) -> ErrorCode {
        use ErrorCode::*;
        match value {
            1 => BadRequest,
            2 => NotFound,
            3 => AlreadyExists,
            4 => NotADirectory,
            5 => IsADirectory,
            6 => NotEmpty,
            7 => InvalidPath,
            8 => PermissionDenied,
            9 => TooLarge,
            10 => NoSpace,
            11 => DigestMismatch,
            13 => LoginFailed,
            14 => LoginRequired,
            _ => Internal,
        }
    }
}

/// A failed operation: its code, and the reason for people (one line,
/// anything a client sent in it escaped and bounded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The stable code.
    pub code: ErrorCode,
    /// The reason.
    pub message: String,
}

impl Failure {
    /// A failure of `code` for `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}
