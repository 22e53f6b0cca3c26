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
mod progress;
pub mod script;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use miniftp::client::{Client, ClientError};
use tokio::runtime::Runtime;

use command::{COMMANDS, Command, help_for};
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
    /// Ctrl-C; the connection was dropped.
    Cancelled,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Command(message) | Failure::Connection(message) => f.write_str(message),
            Failure::Cancelled => f.write_str("cancelled"),
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

/// A connected client and how to show things.
pub struct Shell {
    runtime: Runtime,
    client: Client,
    /// Whether standard output is a terminal (progress bars).
    animated: bool,
}

impl Shell {
    pub fn new(runtime: Runtime, client: Client) -> Shell {
        Shell {
            runtime,
            client,
            animated: std::io::stdout().is_terminal(),
        }
    }

    /// The remote directory, for the prompt.
    pub fn directory(&self) -> &str {
        self.client.directory()
    }

    /// The welcome, as a few lines.
    pub fn welcome(&self) -> String {
        let welcome = self.client.welcome();
        let mut text = format!(
            "Connected to {}.\nCurrent directory: {}",
            self.client.address(),
            welcome.directory
        );
        for name in &welcome.entries {
            text.push_str("\n  ");
            text.push_str(name);
        }
        text
    }

    /// Reads and runs one command given as words.
    pub fn run_words(&mut self, words: &[String]) -> Result<Flow, Failure> {
        let command = Command::parse(words).map_err(Failure::Command)?;
        self.execute(&command)
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
                self.remote(async |c| c.change_directory(path).await)?
            }
            Command::MakeDirectory(path) => self.remote(async |c| c.make_directory(path).await)?,
            Command::Remove(path) => self.remote(async |c| c.remove(path).await)?,
            Command::Rename(from, to) => self.remote(async |c| c.rename(from, to).await)?,
            Command::Size(path) => {
                let size = self.remote(async |c| c.size(path).await)?;
                println!("{path}: {size} bytes");
            }
            Command::Upload { local, remote } => self.upload(local, remote.as_deref())?,
            Command::Download { remote, local } => self.download(remote, local.as_deref())?,
            Command::LocalChangeDirectory(dir) => local_change_directory(dir.as_deref())?,
            Command::LocalDirectory => println!("{}", current_dir()?.display()),
            Command::LocalList(dir) => local_list(dir.as_deref().unwrap_or("."))?,
            Command::Help(name) => help(name.as_deref())?,
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

    fn upload(&mut self, local: &str, remote: Option<&str>) -> Result<(), Failure> {
        let path = Path::new(local);
        let remote = match remote {
            Some(remote) => remote.to_owned(),
            None => file_name(local)?,
        };
        let display = TransferDisplay::start(&remote, self.animated);
        let result =
            self.remote(async |c| c.upload_file(path, &remote, |p| display.update(p)).await);
        let elapsed = display.finish();
        let bytes = result?;
        println!(
            "uploaded {local} -> {remote}: {}",
            progress::summary(bytes, elapsed)
        );
        Ok(())
    }

    fn download(&mut self, remote: &str, local: Option<&str>) -> Result<(), Failure> {
        let name = file_name(remote)?;
        let target = match local {
            None => PathBuf::from(&name),
            Some(local) if Path::new(local).is_dir() => Path::new(local).join(&name),
            Some(local) => PathBuf::from(local),
        };
        let display = TransferDisplay::start(&name, self.animated);
        let result = self.remote(async |c| {
            c.download_file(remote, &target, |p| display.update(p))
                .await
        });
        let elapsed = display.finish();
        let bytes = result?;
        println!(
            "downloaded {remote} -> {}: {}",
            target.display(),
            progress::summary(bytes, elapsed)
        );
        Ok(())
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
        () = interrupted => Err(Failure::Cancelled),
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
    std::env::current_dir()
        .map_err(|error| Failure::Command(format!("cannot tell the local directory: {error}")))
}

fn local_change_directory(dir: Option<&str>) -> Result<(), Failure> {
    let target = match dir {
        Some(dir) => PathBuf::from(dir),
        None => dirs::home_dir().ok_or_else(|| Failure::Command("no home directory".to_owned()))?,
    };
    std::env::set_current_dir(&target)
        .map_err(|error| Failure::Command(format!("{}: {error}", target.display())))
}

fn local_list(dir: &str) -> Result<(), Failure> {
    let failed = |error: std::io::Error| Failure::Command(format!("{dir}: {error}"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
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
                println!("  {:<20} {}", command.usage, command.summary);
            }
            println!("Quote names with spaces: ul 'my file.jpg'. Separate commands with ;.");
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
    fn file_names_come_from_the_last_component() {
        assert_eq!(file_name("a.jpg").unwrap(), "a.jpg");
        assert_eq!(file_name("/x/y/a b.jpg").unwrap(), "a b.jpg");
        assert_eq!(file_name("dir/").unwrap(), "dir");
        for bad in ["", "/", "..", "x/.."] {
            assert!(file_name(bad).is_err(), "{bad}");
        }
    }
}
