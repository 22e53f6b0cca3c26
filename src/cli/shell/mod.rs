//! The client shell: commands typed at a prompt ([`interactive`]) or read
//! from a script ([`script`]), run through the library's `Client`.
//!
//! Ctrl-C during any remote command cancels it: the client drops the
//! connection (a classic message cannot be abandoned half-way), then the
//! shell reconnects and returns to the remote directory.

mod command;
mod complete;
pub mod interactive;
mod line;
mod listing;
mod progress;
pub mod script;

use miniftp::protocol::text::escape;
use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use miniftp::client::{
    Client, ClientError, Entry, ErrorCode, Progress, RESUMABLE_SUFFIX, TransferOptions,
    TreeSummary, plain_io,
};
use tokio::runtime::Runtime;

use command::{COMMANDS, Command, help_for};
use line::Word;
use progress::TransferDisplay;

/// Whether the session goes on after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// It failed; the connection is fine.
    Command(String),
    /// The connection is gone or out of step.
    Connection(String),
    /// Not connected, and connecting again failed (the message says why);
    /// there is nothing to recover until the server is back.
    Unreachable(String),
    /// Ctrl-C; the connection was dropped. With what was kept of an
    /// interrupted transfer, and how to resume it.
    Cancelled(Option<String>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Command(message) | Failure::Connection(message) => f.write_str(message),
            Failure::Unreachable(reason) => write!(
                f,
                "not connected, and cannot reconnect: {reason}\n\
                 type reconnect (or any remote command) to try again, exit to leave"
            ),
            Failure::Cancelled(None) => f.write_str("cancelled"),
            Failure::Cancelled(Some(note)) => write!(f, "cancelled; {note}"),
        }
    }
}

impl Failure {
    /// The failure of a transfer that can be resumed, with `note` saying
    /// what was kept and how (only a cancel or a lost connection can be
    /// resumed; a refusal stays as it is).
    fn interrupted(self, note: String) -> Failure {
        match self {
            Failure::Cancelled(_) => Failure::Cancelled(Some(note)),
            Failure::Connection(message) => Failure::Connection(format!("{message}; {note}")),
            failure => failure,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        match error.is_connection_lost() {
            true => Failure::Connection(error.to_string()),
            false => Failure::Command(error.to_string()),
        }
    }
}

/// Whether the shell may ask the user to confirm (`rm -r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Ask on the terminal.
    Ask,
    /// There is no terminal to ask on (a script without one): refuse
    /// what needs a confirmation, unless forced.
    Refuse,
}

/// How many failed files of one command are named, before a count.
const FAILURES_SHOWN: usize = 20;

/// How many entries of the root the welcome names, before a count (the
/// classic welcome lists them all, however many).
const WELCOME_SHOWN: usize = 10;

/// In a script, a connection that answered this recently is not probed for
/// a close before the next command: commands that follow each other at
/// once cannot have met an idle timeout, and the probe (a turn of the
/// runtime's I/O driver) would be a good part of a small request's cost.
const RECENTLY_ANSWERED: Duration = Duration::from_millis(100);

/// A connected client and how to show things.
pub struct Shell {
    runtime: Runtime,
    client: Client,
    /// Whether standard output is a terminal (progress bars).
    animated: bool,
    confirm: Confirm,
    /// Whether a connection that answered [`RECENTLY_ANSWERED`] ago is
    /// still probed before each command (an interactive user may pause
    /// for any time; a script's commands follow each other).
    probe_always: bool,
    /// When the last remote command ended.
    last_remote: Option<Instant>,
}

impl Shell {
    pub fn new(runtime: Runtime, client: Client, confirm: Confirm) -> Shell {
        Shell {
            runtime,
            client,
            animated: std::io::stdout().is_terminal(),
            confirm,
            probe_always: true,
            last_remote: None,
        }
    }

    /// Runs the commands of a script: one right after another, so that a
    /// connection that has just answered is not probed for a close.
    pub fn for_script(mut self) -> Shell {
        self.probe_always = false;
        self
    }

    /// Whether the connection may have been closed by the server since the
    /// last command (an idle timeout), so that it must be probed.
    fn may_have_idled(&self) -> bool {
        self.probe_always
            || self
                .last_remote
                .is_none_or(|ended| ended.elapsed() >= RECENTLY_ANSWERED)
    }

    /// The remote directory, for the prompt.
    pub fn directory(&self) -> &str {
        self.client.directory()
    }

    /// The welcome, as a few lines.
    pub fn welcome(&self) -> String {
        let welcome = self.client.welcome();
        let protocol = match self.client.is_extended() {
            true => "extended",
            false => "classic",
        };
        let mut text = format!(
            "Connected to {} ({protocol} protocol).\nCurrent directory: {}",
            self.client.address(),
            escape(&welcome.directory)
        );
        // A server's text never reaches the terminal raw (no escape
        // sequences, no forged lines).
        for name in welcome.entries.iter().take(WELCOME_SHOWN) {
            text.push_str("\n  ");
            text.push_str(&escape(name));
        }
        if let Some(more) = welcome.entries.len().checked_sub(WELCOME_SHOWN)
            && more > 0
        {
            text.push_str(&format!("\n  ... and {} more", thousands(more as u64)));
            if self.client.is_extended() {
                text.push_str("; ls to see all");
            }
        }
        text
    }

    /// Reads and runs one command given as words. A connection the server
    /// closed meanwhile (an idle timeout) is opened again first, and said
    /// so, so that the command runs.
    pub fn run_words(&mut self, words: &[Word]) -> Result<Flow, Failure> {
        let command = Command::parse(words).map_err(Failure::Command)?;
        if command.is_remote() && !self.is_connected() {
            eprintln!("reconnecting...");
            self.reconnect().map_err(|failure| match failure {
                Failure::Connection(reason) => Failure::Unreachable(reason),
                failure => failure,
            })?;
            eprintln!("reconnected; remote directory {}", escape(self.directory()));
        } else if command.is_remote() && self.may_have_idled() {
            let client = &mut self.client;
            let reconnected = self
                .runtime
                .block_on(cancellable(async || client.reconnect_if_closed().await))?;
            if reconnected {
                eprintln!(
                    "the server had closed the connection (idle for too long?); reconnected, \
                     remote directory {}",
                    escape(self.client.directory())
                );
            }
        }
        let flow = self.execute(&command);
        if command.is_remote() {
            self.last_remote = Some(Instant::now());
        }
        flow
    }

    /// Opens a new connection and returns to the remote directory.
    pub fn reconnect(&mut self) -> Result<(), Failure> {
        let client = &mut self.client;
        self.runtime
            .block_on(cancellable(async || client.reconnect().await))
    }

    /// Whether the connection is usable.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The entries of a remote directory, for completion: empty when it
    /// cannot be listed (a classic connection, a missing directory).
    pub fn remote_entries(&mut self, directory: &str) -> Vec<Entry> {
        if !self.client.is_extended() {
            return Vec::new();
        }
        let client = &mut self.client;
        self.runtime
            .block_on(client.list(directory))
            .unwrap_or_default()
    }

    /// Says goodbye to the server.
    pub fn close(self) {
        let Shell {
            runtime, client, ..
        } = self;
        runtime.block_on(client.close());
    }

    /// Runs one command.
    fn execute(&mut self, command: &Command) -> Result<Flow, Failure> {
        match command {
            Command::ChangeDirectory(path) => {
                let path = self.one_directory(path)?;
                self.remote(async |c| c.change_directory(&path).await)?
            }
            Command::RemoteDirectory => println!("{}", escape(self.client.directory())),
            Command::List { path, long } => self.list(path.as_ref(), *long)?,
            Command::Stat(path) => match &path.pattern {
                None => {
                    let entry = self.remote(async |c| c.stat(&path.text).await)?;
                    println!("{}", listing::describe(&path.text, &entry));
                }
                Some(pattern) => {
                    for (path, entry) in self.remote_matches(&path.text, pattern)? {
                        println!("{}", listing::describe(&path, &entry));
                    }
                }
            },
            Command::MakeDirectory { path, parents } => match parents {
                true => self.remote(async |c| c.make_directories(path).await)?,
                false => self.remote(async |c| c.make_directory(path).await)?,
            },
            Command::Remove {
                path,
                recursive,
                force,
            } => match &path.pattern {
                None => self.remove(&path.text, *recursive, *force)?,
                Some(pattern) => self.remove_matches(&path.text, pattern, *recursive, *force)?,
            },
            Command::Rename(from, to) => match &from.pattern {
                None => self.remote(async |c| c.rename(&from.text, to).await)?,
                Some(pattern) => self.rename_matches(&from.text, pattern, to)?,
            },
            Command::Size(path) => {
                let sizes = match &path.pattern {
                    None => vec![(
                        path.text.clone(),
                        self.remote(async |c| c.size(&path.text).await)?,
                    )],
                    Some(pattern) => self
                        .expand_remote(&path.text, pattern, false)?
                        .into_iter()
                        .map(|(path, entry)| (path, entry.size))
                        .collect(),
                };
                for (path, size) in sizes {
                    println!("{}: {size} bytes", escape(&path));
                }
            }
            Command::Upload {
                local,
                remote,
                recursive,
            } => self.upload(local, remote.as_deref(), *recursive)?,
            Command::Download {
                remote,
                local,
                recursive,
                force,
            } => self.download(remote, local.as_deref(), *recursive, *force)?,
            Command::LocalChangeDirectory(dir) => local_change_directory(dir.as_deref())?,
            Command::LocalDirectory => {
                println!("{}", escape(&current_dir()?.display().to_string()))
            }
            Command::LocalList(dir) => local_list(dir.as_deref().unwrap_or("."))?,
            Command::Help(name) => help(name.as_deref())?,
            Command::Reconnect => {
                self.reconnect()?;
                eprintln!("reconnected; remote directory {}", escape(self.directory()));
            }
            Command::Exit => return Ok(Flow::Exit),
        }
        Ok(Flow::Continue)
    }

    /// Runs a remote operation; Ctrl-C cancels it.
    fn remote<T>(
        &mut self,
        operation: impl AsyncFnOnce(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, Failure> {
        let client = &mut self.client;
        self.runtime
            .block_on(cancellable(async || operation(client).await))
    }

    /// `rm [-r] [-f]`: a directory with everything in it only once
    /// confirmed (or forced).
    fn remove(&mut self, path: &str, recursive: bool, force: bool) -> Result<(), Failure> {
        let removed = match recursive {
            false => self.remote(async |c| c.remove(path).await),
            true if !self.client.is_extended() => {
                Err(ClientError::NeedsExtended { operation: "rm -r" }.into())
            }
            true => {
                // What the server would refuse is refused before the question.
                if let Some(refusal) = unremovable(self.client.directory(), path) {
                    return Err(Failure::Command(refusal));
                }
                if !force && self.remote(async |c| c.stat(path).await)?.is_directory() {
                    self.confirm_removal(path)?;
                }
                self.remote(async |c| c.remove_tree(path).await)
            }
        };
        match removed {
            // -f: what is not there is removed already.
            Err(Failure::Command(_)) if force && self.missing(path) => Ok(()),
            removed => removed,
        }
    }

    /// Whether a remote path is certainly missing (only the extended
    /// protocol says so with a code).
    fn missing(&mut self, path: &str) -> bool {
        self.client.is_extended()
            && matches!(
                self.runtime.block_on(self.client.stat(path)),
                Err(error) if error.code() == Some(ErrorCode::NotFound)
            )
    }

    /// Asks before a recursive removal; refuses if there is no one to ask.
    fn confirm_removal(&mut self, path: &str) -> Result<(), Failure> {
        self.confirm(
            &format!(
                "remove the directory {} and everything in it? [y/N] ",
                escape(path)
            ),
            || {
                format!(
                    "{path} is a directory: rm -r asks before removing it, and a script does \
                     not ask; use rm -rf to remove it without asking"
                )
            },
            || format!("{path}: not removed"),
        )
    }

    /// `ul [-r] LOCAL [REMOTE]`, LOCAL perhaps a pattern.
    fn upload(
        &mut self,
        local: &Word,
        remote: Option<&str>,
        recursive: bool,
    ) -> Result<(), Failure> {
        let sources = match &local.pattern {
            Some(pattern) => expand_local(pattern)?,
            None => vec![PathBuf::from(&local.text)],
        };
        // Several files (or a pattern) go into REMOTE as a directory.
        let into = local.pattern.is_some();
        let mut failed = Vec::new();
        for source in &sources {
            let shown = source.display().to_string();
            let result = self.upload_one(source, &shown, remote, into, recursive);
            match result {
                Ok(()) => {}
                Err(Failure::Command(reason)) if sources.len() > 1 => {
                    failed.push((shown, reason));
                }
                Err(failure) => return Err(failure),
            }
        }
        report_failures("uploaded", sources.len(), failed)
    }

    fn upload_one(
        &mut self,
        source: &Path,
        shown: &str,
        remote: Option<&str>,
        into: bool,
        recursive: bool,
    ) -> Result<(), Failure> {
        let is_directory = source.is_dir();
        if is_directory && !recursive {
            return Err(Failure::Command(format!(
                "{shown}: is a directory (ul -r uploads a directory)"
            )));
        }
        let target = self.remote_target(remote, shown, into)?;
        let display = TransferDisplay::start(&target, self.animated);
        if is_directory {
            let result =
                self.remote(async |c| c.upload_tree(source, &target, |p| display.update(p)).await);
            let finished = display.finish_for(&result);
            return tree_outcome("uploaded", shown, &target, result?, finished.elapsed);
        }
        let options = TransferOptions { resume: true };
        let resumable = self.client.is_extended();
        let result = self.remote(async |c| {
            c.upload_file(source, &target, options, |p| display.update(p))
                .await
        });
        let finished = display.finish_for(&result);
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(failure) if resumable && finished.last.done > 0 => {
                let Progress { done, total, .. } = finished.last;
                let note = format!(
                    "the transfer can be resumed: the server keeps what it received of {} \
                     (up to {} of {}) for a day, and the same ul goes on from there",
                    escape(&target),
                    progress::size(done as f64),
                    progress::size(total.unwrap_or(done) as f64)
                );
                return Err(failure.interrupted(note));
            }
            Err(failure) => return Err(failure),
        };
        println!(
            "uploaded {} -> {}: {}",
            escape(shown),
            escape(&target),
            progress::resumed_summary(bytes, &finished, "sent")
        );
        Ok(())
    }

    /// Where an upload of `local` goes: REMOTE itself, or inside it (under
    /// LOCAL's name) when it ends with `/`, is an existing remote
    /// directory, or `into` is set.
    fn remote_target(
        &mut self,
        remote: Option<&str>,
        local: &str,
        into: bool,
    ) -> Result<String, Failure> {
        let Some(remote) = remote else {
            return file_name(local);
        };
        let inside = into
            || remote.ends_with('/')
            || (self.client.is_extended()
                && self
                    .remote(async |c| c.stat(remote).await)
                    .is_ok_and(|entry| entry.is_directory()));
        Ok(match inside {
            true => format!("{}/{}", remote.trim_end_matches('/'), file_name(local)?),
            false => remote.to_owned(),
        })
    }

    /// `dl [-r] [-f] REMOTE [LOCAL]`, REMOTE perhaps ending with a
    /// pattern. Local files that would be replaced are asked about first
    /// (once for all), unless `force`.
    fn download(
        &mut self,
        remote: &Word,
        local: Option<&str>,
        recursive: bool,
        force: bool,
    ) -> Result<(), Failure> {
        let sources = match &remote.pattern {
            Some(pattern) => self
                .expand_remote(&remote.text, pattern, recursive)?
                .into_iter()
                .map(|(path, _)| path)
                .collect(),
            None => vec![remote.text.clone()],
        };
        let into = remote.pattern.is_some();
        let several = sources.len() > 1;
        let mut failed = Vec::new();
        let mut plans = Vec::new();
        for source in &sources {
            match self.plan_download(source, local, into, recursive) {
                Ok(plan) => plans.push(plan),
                Err(Failure::Command(reason)) if several => failed.push((source.clone(), reason)),
                Err(failure) => return Err(failure),
            }
        }
        if !force {
            let replaced: Vec<PathBuf> = plans.iter().flat_map(Download::replaced).collect();
            self.confirm_replacing(&replaced)?;
        }
        for plan in plans {
            let source = plan.remote.clone();
            match self.download_one(plan) {
                Ok(()) => {}
                Err(Failure::Command(reason)) if several => failed.push((source, reason)),
                Err(failure) => return Err(failure),
            }
        }
        report_failures("downloaded", sources.len(), failed)
    }

    /// Where a download of `remote` goes, and, for a directory with `-r`,
    /// its tree listed.
    fn plan_download(
        &mut self,
        remote: &str,
        local: Option<&str>,
        into: bool,
        recursive: bool,
    ) -> Result<Download, Failure> {
        let target = match local {
            None => PathBuf::from(file_name(remote)?),
            Some(local) if into || local.ends_with('/') || Path::new(local).is_dir() => {
                Path::new(local).join(file_name(remote)?)
            }
            Some(local) => PathBuf::from(local),
        };
        let is_directory = recursive
            && self.client.is_extended()
            && self.remote(async |c| c.stat(remote).await)?.is_directory();
        let tree = match is_directory {
            true => Some(self.remote(async |c| c.list_tree(remote).await)?),
            false => None,
        };
        Ok(Download {
            remote: remote.to_owned(),
            target,
            tree,
        })
    }

    /// Asks before local files are replaced, once for all; refuses if
    /// there is no one to ask.
    fn confirm_replacing(&self, replaced: &[PathBuf]) -> Result<(), Failure> {
        let Some(first) = replaced.first() else {
            return Ok(());
        };
        let first = escape(&first.display().to_string());
        let (question, refusal) = match replaced.len() {
            1 => (
                format!("overwrite {first}? [y/N] "),
                format!("{first} exists; dl -f (or --force) replaces it"),
            ),
            count => {
                let count = thousands(count as u64);
                (
                    format!("overwrite {count} existing files ({first}, ...)? [y/N] "),
                    format!(
                        "{count} of these files exist here ({first}, ...); dl -f (or --force) \
                         replaces them"
                    ),
                )
            }
        };
        self.confirm(
            &question,
            || format!("{refusal} (a script does not ask)"),
            || "not downloaded".to_owned(),
        )
    }

    fn download_one(&mut self, plan: Download) -> Result<(), Failure> {
        let Download {
            remote,
            target,
            tree,
        } = plan;
        let name = target.display().to_string();
        let display = TransferDisplay::start(&name, self.animated);
        if let Some(tree) = tree {
            let result = self.remote(async |c| {
                c.download_listed_tree(tree, &target, |p| display.update(p))
                    .await
            });
            let finished = display.finish_for(&result);
            let shown = target.display().to_string();
            return tree_outcome("downloaded", &remote, &shown, result?, finished.elapsed);
        }
        let options = TransferOptions { resume: true };
        let resumable = self.client.is_extended();
        let result = self.remote(async |c| {
            c.download_file(&remote, &target, options, |p| display.update(p))
                .await
        });
        let finished = display.finish_for(&result);
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(failure) if resumable && finished.last.done > 0 => {
                let part = target
                    .file_name()
                    .map(|name| format!(".{}{RESUMABLE_SUFFIX}", name.to_string_lossy()));
                let note = format!(
                    "the transfer can be resumed: {} of {} is kept in {}, and the same dl \
                     goes on from there",
                    progress::size(finished.last.done as f64),
                    escape(&name),
                    escape(&part.unwrap_or_default())
                );
                return Err(failure.interrupted(note));
            }
            Err(failure) => return Err(failure),
        };
        println!(
            "downloaded {} -> {}: {}",
            escape(&remote),
            escape(&name),
            progress::resumed_summary(bytes, &finished, "received")
        );
        Ok(())
    }

    /// The remote entries a pattern in the last component picks (files,
    /// and directories if asked), by listing the directory before it: each
    /// path as the pattern would name it, and its entry. None is an error.
    fn expand_remote(
        &mut self,
        text: &str,
        pattern: &str,
        directories: bool,
    ) -> Result<Vec<(String, Entry)>, Failure> {
        let mut found = self.remote_matches(text, pattern)?;
        if !directories {
            found.retain(|(_, entry)| !entry.is_directory());
        }
        if found.is_empty() {
            return Err(Failure::Command(format!("{text}: no match")));
        }
        Ok(found)
    }

    /// Every remote entry a pattern picks, directories included (none is
    /// an error); in listing order, directories first.
    fn remote_matches(
        &mut self,
        text: &str,
        pattern: &str,
    ) -> Result<Vec<(String, Entry)>, Failure> {
        let (directory, names) = listing::split_remote_pattern(text, pattern).ok_or_else(|| {
            Failure::Command(format!(
                "{text}: a pattern may only be in the last part of a remote path"
            ))
        })?;
        let names = glob::Pattern::new(names)
            .map_err(|error| Failure::Command(format!("{text}: {error}")))?;
        if !self.client.is_extended() {
            return Err(ClientError::NeedsExtended {
                operation: "a remote pattern",
            }
            .into());
        }
        let listed = match directory {
            "" => ".",
            directory => directory,
        };
        let entries = self.remote(async |c| c.list(listed).await)?;
        let found: Vec<(String, Entry)> = listing::matching(&entries, &names, true)
            .into_iter()
            .map(|entry| {
                let path = match directory {
                    "" => entry.name.clone(),
                    "/" => format!("/{}", entry.name),
                    directory => format!("{directory}/{}", entry.name),
                };
                (path, entry.clone())
            })
            .collect();
        if found.is_empty() {
            return Err(Failure::Command(format!("{text}: no match")));
        }
        Ok(found)
    }

    /// `ls [-l] [PATH]`: a directory's entries, or the entries a pattern
    /// picks (themselves, not what is in the directories among them).
    fn list(&mut self, path: Option<&Word>, long: bool) -> Result<(), Failure> {
        let entries = match path {
            Some(Word {
                text,
                pattern: Some(pattern),
            }) => self
                .remote_matches(text, pattern)?
                .into_iter()
                .map(|(path, entry)| Entry {
                    name: path,
                    ..entry
                })
                .collect(),
            path => {
                let path = path.map_or(".", |path| path.text.as_str());
                self.remote(async |c| c.list(path).await)?
            }
        };
        for entry in &entries {
            match long {
                true => println!("{}", listing::long(entry)),
                false => println!("{}", listing::short(entry)),
            }
        }
        Ok(())
    }

    /// The directory `cd` goes to: the path, or the one directory a
    /// pattern picks.
    fn one_directory(&mut self, path: &Word) -> Result<String, Failure> {
        let Some(pattern) = &path.pattern else {
            return Ok(path.text.clone());
        };
        let mut directories: Vec<String> = self
            .remote_matches(&path.text, pattern)?
            .into_iter()
            .filter(|(_, entry)| entry.is_directory())
            .map(|(path, _)| path)
            .collect();
        match directories.len() {
            1 => Ok(directories.remove(0)),
            0 => Err(Failure::Command(format!(
                "{}: no directory matches",
                path.text
            ))),
            count => Err(Failure::Command(format!(
                "{}: {count} directories match ({}, ...); cd goes to one",
                path.text,
                escape(&directories[0])
            ))),
        }
    }

    /// `rm [-r] [-f] PATTERN`: every file the pattern picks (directories
    /// too with `-r`); when that is more than one, or a directory, asked
    /// once first unless `force`.
    fn remove_matches(
        &mut self,
        text: &str,
        pattern: &str,
        recursive: bool,
        force: bool,
    ) -> Result<(), Failure> {
        let found = match self.expand_remote(text, pattern, recursive) {
            // -f: nothing to remove is no failure, as with a missing path.
            Err(Failure::Command(_)) if force => return Ok(()),
            found => found?,
        };
        if let [(path, entry)] = found.as_slice()
            && !entry.is_directory()
        {
            let path = path.clone();
            return self.remove(&path, false, force);
        }
        if !force {
            let directories = found
                .iter()
                .filter(|(_, entry)| entry.is_directory())
                .count();
            let what = match directories {
                0 => format!("{} files", thousands(found.len() as u64)),
                _ => format!(
                    "{} entries ({} of them directories, with everything in them)",
                    thousands(found.len() as u64),
                    thousands(directories as u64)
                ),
            };
            let first = escape(&found[0].0);
            self.confirm(
                &format!("remove {what} matching {text} ({first}, ...)? [y/N] "),
                || {
                    format!(
                        "{text} matches {what}: rm asks before removing them, and a script \
                         does not ask; use rm -f to remove them without asking"
                    )
                },
                || format!("{text}: nothing removed"),
            )?;
        }
        let mut failed = Vec::new();
        for (path, entry) in &found {
            let removed = match entry.is_directory() {
                true => self.remote(async |c| c.remove_tree(path).await),
                false => self.remote(async |c| c.remove(path).await),
            };
            match removed {
                Ok(()) => {}
                Err(Failure::Command(_)) if force && self.missing(path) => {}
                Err(Failure::Command(reason)) => failed.push((path.clone(), reason)),
                Err(failure) => return Err(failure),
            }
        }
        report_failures("removed", found.len(), failed)
    }

    /// `mv PATTERN DEST`: one match is renamed; several move into DEST,
    /// which must be a directory.
    fn rename_matches(&mut self, text: &str, pattern: &str, to: &str) -> Result<(), Failure> {
        let found = self.remote_matches(text, pattern)?;
        if found.len() > 1 && !self.remote(async |c| c.stat(to).await)?.is_directory() {
            return Err(Failure::Command(format!(
                "{to}: not a directory, and {text} matches {}: they can only move into one",
                thousands(found.len() as u64)
            )));
        }
        let mut failed = Vec::new();
        for (path, _) in &found {
            match self.remote(async |c| c.rename(path, to).await) {
                Ok(()) => {}
                Err(Failure::Command(reason)) if found.len() > 1 => {
                    failed.push((path.clone(), reason));
                }
                Err(failure) => return Err(failure),
            }
        }
        report_failures("moved", found.len(), failed)
    }

    /// Asks `question`, unless nobody can be asked (a script): then fails
    /// with `refused`. A no is the failure `declined`.
    fn confirm(
        &self,
        question: &str,
        refused: impl FnOnce() -> String,
        declined: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        if self.confirm == Confirm::Refuse {
            return Err(Failure::Command(refused()));
        }
        match super::ask::yes(question) {
            true => Ok(()),
            false => Err(Failure::Command(declined())),
        }
    }
}

/// Why `rm` refuses `path` whatever the tree holds (as the server would,
/// in its words): the root, or a path ending with `.` or `..`. `directory`
/// is the remote directory `path` is relative to.
fn unremovable(directory: &str, path: &str) -> Option<String> {
    let last = path.trim_end_matches('/').rsplit('/').next();
    if matches!(last, Some("." | "..")) {
        return Some(format!("cannot remove '.' or '..': {path}"));
    }
    let mut depth = match path.starts_with('/') {
        true => 0,
        false => directory.split('/').filter(|name| !name.is_empty()).count(),
    };
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => depth = depth.saturating_sub(1),
            _ => depth += 1,
        }
    }
    (depth == 0).then(|| format!("cannot remove the root directory: {path}"))
}

/// One download, planned: what, where to, and the tree of a directory.
struct Download {
    remote: String,
    target: PathBuf,
    tree: Option<miniftp::client::RemoteTree>,
}

impl Download {
    /// The local files it would replace.
    fn replaced(&self) -> Vec<PathBuf> {
        let exists = |path: &Path| path.symlink_metadata().is_ok_and(|m| !m.is_dir());
        match &self.tree {
            None => exists(&self.target)
                .then(|| self.target.clone())
                .into_iter()
                .collect(),
            Some(tree) => tree
                .files()
                .map(|(relative, _)| tree.local_path(&self.target, relative))
                .filter(|path| exists(path))
                .collect(),
        }
    }
}

/// The local paths a pattern picks, in name order.
fn expand_local(pattern: &str) -> Result<Vec<PathBuf>, Failure> {
    let paths = glob::glob_with(pattern, listing::MATCHING)
        .map_err(|error| Failure::Command(format!("{pattern}: {error}")))?;
    let found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
    if found.is_empty() {
        return Err(Failure::Command(format!("{pattern}: no match")));
    }
    Ok(found)
}

/// Prints a recursive transfer's summary and names what failed.
fn tree_outcome(
    verb: &str,
    from: &str,
    to: &str,
    summary: TreeSummary,
    elapsed: std::time::Duration,
) -> Result<(), Failure> {
    // Nothing done and something failed: no line that reads as a success.
    let nothing_done = summary.files == 0 && summary.directories == 0;
    if !nothing_done || summary.failures.is_empty() {
        println!(
            "{verb} {} -> {}: {}, {}, {}",
            escape(from),
            escape(to),
            plural(summary.files, "file", "files"),
            plural(summary.directories, "directory", "directories"),
            progress::summary(summary.bytes, elapsed)
        );
    }
    let total = summary.files as usize + summary.failures.len();
    let failed = summary
        .failures
        .into_iter()
        .map(|(name, error)| (name, error.to_string()))
        .collect();
    report_failures(verb, total, failed)
}

/// A count with thousands separated: `2,990`.
fn thousands(count: u64) -> String {
    let digits = count.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `1 file`, `2 files`.
fn plural(count: u64, one: &str, many: &str) -> String {
    match count {
        1 => format!("1 {one}"),
        count => format!("{count} {many}"),
    }
}

/// Names the failures of a command that transferred several things (out
/// of `total`), and fails it if there were any. Failures for one and the
/// same reason are one line.
fn report_failures(verb: &str, total: usize, failed: Vec<(String, String)>) -> Result<(), Failure> {
    let Some((first, reason)) = failed.first() else {
        return Ok(());
    };
    let count = thousands(failed.len() as u64);
    let total = thousands(total as u64);
    let common = without_name(reason, first);
    if failed.len() > 1
        && failed
            .iter()
            .all(|(name, reason)| without_name(reason, name) == common)
    {
        return Err(Failure::Command(format!(
            "{count} of {total} could not be {verb} ({}, ...): {}",
            escape(first),
            escape(common)
        )));
    }
    for (name, reason) in failed.iter().take(FAILURES_SHOWN) {
        eprintln!("  not {verb}: {}: {}", escape(name), escape(reason));
    }
    if failed.len() > FAILURES_SHOWN {
        eprintln!(
            "  ... and {} more",
            thousands((failed.len() - FAILURES_SHOWN) as u64)
        );
    }
    Err(Failure::Command(format!(
        "{count} of {total} could not be {verb}"
    )))
}

/// A refusal without the path it ends with (`permission denied: x/a.txt`
/// for the file `a.txt` of a tree), to tell refusals for one reason.
fn without_name<'r>(reason: &'r str, name: &str) -> &'r str {
    // The server may have quoted the name escaped.
    let escaped = escape(name);
    match reason
        .strip_suffix(name)
        .or_else(|| reason.strip_suffix(escaped.as_str()))
    {
        Some(head) if !name.is_empty() => {
            head.rsplit_once(": ").map_or(reason, |(reason, _)| reason)
        }
        _ => reason,
    }
}

/// Runs `operation` unless Ctrl-C comes first.
async fn cancellable<T>(
    operation: impl AsyncFnOnce() -> Result<T, ClientError>,
) -> Result<T, Failure> {
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = operation() => result.map_err(Failure::from),
        () = interrupted => Err(Failure::Cancelled(None)),
    }
}

/// The last component of a path, which names the file on the other side.
fn file_name(path: &str) -> Result<String, Failure> {
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !matches!(name, "" | "." | "..") => Ok(name.to_owned()),
        _ => Err(Failure::Command(format!(
            "{path}: cannot tell a file name from this; name the other side too"
        ))),
    }
}

fn current_dir() -> Result<PathBuf, Failure> {
    std::env::current_dir().map_err(|error| {
        Failure::Command(format!(
            "cannot tell the local directory: {}",
            plain_io(&error)
        ))
    })
}

fn local_change_directory(dir: Option<&str>) -> Result<(), Failure> {
    let target = match dir {
        Some(dir) => PathBuf::from(dir),
        None => dirs::home_dir().ok_or_else(|| Failure::Command("no home directory".to_owned()))?,
    };
    std::env::set_current_dir(&target)
        .map_err(|error| Failure::Command(format!("{}: {}", target.display(), plain_io(&error))))
}

fn local_list(dir: &str) -> Result<(), Failure> {
    let failed = |error: std::io::Error| Failure::Command(format!("{dir}: {}", plain_io(&error)));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let mut name = escape(&entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

fn help(name: Option<&str>) -> Result<(), Failure> {
    match name {
        None => {
            for command in COMMANDS {
                println!("  {:<24} {}", command.usage, command.summary);
            }
            println!("Quote names with spaces: ul 'my file.jpg'. Separate commands with ;.");
            println!("Patterns (*.txt, a?.log, [ab]*) work in ls, stat, info, rm, mv, cd, ul and");
            println!(
                "dl; quote them to mean the name itself. Remote ones need the extended protocol."
            );
            println!("Type help COMMAND for more. Commands marked (extended protocol) need a");
            println!("miniftp server; the original Mini-FTP speaks only the classic protocol.");
        }
        Some(name) => {
            let command = help_for(name)
                .ok_or_else(|| Failure::Command(format!("unknown command: {name}")))?;
            println!("{}: {}", command.usage, command.summary);
            if !command.details.is_empty() {
                println!("{}", command.details);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_and_dot_names_are_never_removed() {
        let cases = [
            ("/", "/", Some("cannot remove the root directory: /")),
            ("/a", "/", Some("cannot remove the root directory: /")),
            ("/a", "..", Some("cannot remove '.' or '..': ..")),
            ("/a", ".", Some("cannot remove '.' or '..': .")),
            ("/a", "x/..", Some("cannot remove '.' or '..': x/..")),
            ("/a", "x/../", Some("cannot remove '.' or '..': x/../")),
            ("/a", "../", Some("cannot remove '.' or '..': ../")),
            (
                "/a/b",
                "../..//",
                Some("cannot remove '.' or '..': ../..//"),
            ),
            (
                "/a",
                "../../b/..//",
                Some("cannot remove '.' or '..': ../../b/..//"),
            ),
            ("/", "//", Some("cannot remove the root directory: //")),
            ("/a", "../a", None),
            ("/", "x", None),
            ("/a", "/a", None),
            ("/", "..x", None),
        ];
        for (directory, path, expected) in cases {
            assert_eq!(
                unremovable(directory, path).as_deref(),
                expected,
                "{directory} {path}"
            );
        }
    }

    #[test]
    fn a_refusal_is_told_apart_from_the_name_it_ends_with() {
        assert_eq!(
            without_name(
                "permission denied (read-only access): up/a b.txt",
                "a b.txt"
            ),
            "permission denied (read-only access)"
        );
        assert_eq!(without_name("file too large", "a.txt"), "file too large");
        assert_eq!(
            without_name("invalid name: up/new\\nline", "new\nline"),
            "invalid name"
        );
        assert_eq!(
            without_name("no such file: a.txt", ""),
            "no such file: a.txt"
        );
    }

    #[test]
    fn counts_group_their_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (2990, "2,990"),
            (1_234_567, "1,234,567"),
        ];
        for (count, expected) in cases {
            assert_eq!(thousands(count), expected);
        }
    }

    #[test]
    fn file_names_come_from_the_last_component() {
        assert_eq!(file_name("a.jpg").unwrap(), "a.jpg");
        assert_eq!(file_name("/x/y/a b.jpg").unwrap(), "a b.jpg");
        assert_eq!(file_name("dir/").unwrap(), "dir");
        for bad in ["", "/", "..", "x/.."] {
            assert!(file_name(bad).is_err(), "{bad}");
        }
    }
}
