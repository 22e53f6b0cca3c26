//! The log line of one operation, and the summary of a session.
//!
//! Every operation ends in exactly one line, whichever way the client came
//! in: its name, the path(s) it named (escaped and bounded), bytes moved
//! for a transfer, how long it took and its outcome. The connection's span
//! adds the peer, the connection's id and the user. A transfer the session
//! abandons (the connection lost, the server shutting down) still logs how
//! far it got, as interrupted.

use std::time::Duration;

use tokio::time::Instant;

use crate::operation::{Failure, Operation};
use crate::protocol::text::excerpt;

/// An operation under way; logs its line when it ends (or is dropped).
#[derive(Debug)]
pub(super) struct Record {
    name: &'static str,
    /// The path(s) as the client gave them (escaped when written).
    path: String,
    to: Option<String>,
    started: Instant,
    /// Bytes moved, for a transfer.
    pub(super) bytes: u64,
    /// Where a transfer started (resumed).
    pub(super) resumed_from: u64,
    /// Entries sent, for a listing.
    pub(super) entries: Option<u64>,
    /// How many uploads were committed together with this one.
    pub(super) grouped: usize,
    transfer: bool,
    /// Whether the line is still to be written.
    armed: bool,
}

impl Record {
    /// Starts the record of `operation`.
    pub(super) fn start(operation: &Operation) -> Record {
        let (path, to) = match operation {
            // The name only if it could be one: a log line must not carry a
            // megabyte of whatever the client sent.
            Operation::Login { user, .. } => match crate::accounts::validate_name(user) {
                Ok(()) => (user.clone(), None),
                Err(_) => (format!("(not a valid name, {} bytes)", user.len()), None),
            },
            operation => {
                let (path, to) = operation.paths();
                (path.unwrap_or_default().to_owned(), to.map(str::to_owned))
            }
        };
        Record {
            name: operation.name(),
            path,
            to,
            started: Instant::now(),
            bytes: 0,
            resumed_from: 0,
            entries: None,
            grouped: 0,
            transfer: operation.answer() == crate::operation::Answer::Transfer,
            armed: true,
        }
    }

    /// Starts the record of a request that is no [`Operation`] of the
    /// protocols (WebDAV's properties), named `name`, on `path`.
    pub(super) fn named(name: &'static str, path: &str) -> Record {
        let mut record = Record::default();
        record.name = name;
        record.path = excerpt(path);
        record.armed = true;
        record
    }

    /// Ends the record: `None` for success, or the failure.
    pub(super) fn end(mut self, failure: Option<&Failure>) {
        self.armed = false;
        let outcome = failure.map_or("ok", |failure| failure.message.as_str());
        self.write(outcome);
    }

    fn write(&self, outcome: &str) {
        // Paths are escaped and bounded only for a line that is written.
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let elapsed: Duration = self.started.elapsed();
        let bytes = self.transfer.then_some(self.bytes);
        let resumed_from = (self.resumed_from > 0).then_some(self.resumed_from);
        let group = (self.grouped > 1).then_some(self.grouped);
        let path = (!self.path.is_empty()).then(|| excerpt(&self.path));
        let to = self.to.as_deref().map(excerpt);
        tracing::info!(
            operation = self.name,
            path,
            to,
            bytes,
            resumed_from,
            entries = self.entries,
            group,
            ?elapsed,
            outcome,
        );
    }
}

impl Default for Record {
    /// A record that logs nothing (what is left of one taken apart).
    fn default() -> Record {
        Record {
            name: "",
            path: String::new(),
            to: None,
            started: Instant::now(),
            bytes: 0,
            resumed_from: 0,
            entries: None,
            grouped: 0,
            transfer: false,
            armed: false,
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.armed {
            self.write("interrupted");
        }
    }
}

/// What a session did, for the line that closes it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations that succeeded.
    pub succeeded: u64,
    /// Operations that failed (or requests refused unread).
    pub failed: u64,
    /// File bytes received.
    pub bytes_received: u64,
    /// File bytes sent.
    pub bytes_sent: u64,
}
