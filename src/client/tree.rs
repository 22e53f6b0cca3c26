//! Recursive transfers (`ul -r`, `dl -r`): a local tree walked, or a
//! remote one listed a level at a time, then every directory and file as
//! jobs of one pipeline.

use std::path::{Path, PathBuf};

use super::extended::{Job, Outcome};
use super::{Client, ClientError, Progress, TreeSummary, local, unexpected};
use crate::operation::Operation;

/// The deepest a downloaded tree may go. The server shows links to
/// directories as directories, so a link loop on its side would otherwise
/// make a tree without end.
const MAX_TREE_DEPTH: usize = 64;

/// The most directories a downloaded tree may hold, for the same reason (two
/// loops in one directory double the walk at every level).
const MAX_TREE_DIRECTORIES: usize = 100_000;

impl Client {
    /// `ul -r`: uploads the directory `local` into the remote directory
    /// `remote` (made, with its parents, if missing), with everything below:
    /// empty directories included, links to files as files (links to
    /// directories are not followed and are listed as failures). Frames
    /// for many files are in flight at once. Files that cannot be read or
    /// stored are in the summary's failures; the other files still go.
    /// Extended protocol only.
    pub async fn upload_tree(
        &mut self,
        local: &Path,
        remote: &str,
        progress: impl FnMut(Progress) + Send,
    ) -> Result<TreeSummary, ClientError> {
        if !self.is_extended() {
            return Err(self.needs_extended("ul -r"));
        }
        let root = local.to_owned();
        let tree = tokio::task::spawn_blocking(move || local::walk(&root))
            .await
            .map_err(|error| ClientError::Local {
                path: local.to_owned(),
                source: std::io::Error::other(error),
            })??;
        let mut summary = TreeSummary {
            failures: tree.skipped,
            ..TreeSummary::default()
        };
        let total: u64 = tree.files.iter().map(|(_, _, size)| size).sum();
        // The root first, alone: a refusal there (a read-only server, a
        // file in the way) would hit every file, so it ends the transfer
        // at once, as one error.
        self.make_directories(remote).await?;
        let mut names = Vec::new();
        let mut jobs = Vec::new();
        for directory in tree.directories {
            jobs.push(Job::Request(Operation::MakeDirectory {
                path: join_remote(remote, &directory),
                parents: true,
            }));
            names.push(directory);
        }
        let directories = jobs.len();
        for (relative, path, _) in tree.files {
            jobs.push(Job::Upload {
                remote: join_remote(remote, &relative),
                local: path,
            });
            names.push(relative);
        }
        let start = Progress {
            done: 0,
            total: Some(total),
            ..Progress::default()
        };
        let mut progress = progress;
        let results = self.pipeline("ul -r", jobs, start, &mut progress).await?;
        for (index, (name, result)) in names.into_iter().zip(results).enumerate() {
            match result {
                Ok(Outcome::Transferred(bytes)) => {
                    summary.files += 1;
                    summary.bytes += bytes;
                }
                Ok(_) if index < directories => summary.directories += 1,
                Ok(other) => summary.failures.push((name, unexpected(other))),
                Err(error) => summary.failures.push((name, error)),
            }
        }
        Ok(summary)
    }

    /// `dl -r`: downloads the remote directory `remote` into the local
    /// directory `local` (made, with its parents, if missing), with
    /// everything below: empty directories included. The tree is listed a
    /// level at a time and the files are fetched with many requests in
    /// flight; each file is verified and appears under its name only when
    /// complete; an existing file of the same name is replaced. The local
    /// disk is flushed once at the end rather than after each file. Names
    /// that would not be safe locally (`..`, with a `/`) are failures, as
    /// are files that cannot be fetched or written; the others still go.
    /// Extended protocol only. The same as [`Client::list_tree`] then
    /// [`Client::download_listed_tree`] (which lets a caller see what would
    /// be replaced first).
    pub async fn download_tree(
        &mut self,
        remote: &str,
        local: &Path,
        progress: impl FnMut(Progress) + Send,
    ) -> Result<TreeSummary, ClientError> {
        let tree = self.list_tree(remote).await?;
        self.download_listed_tree(tree, local, progress).await
    }

    /// Lists the remote directory `remote` with everything below it, a
    /// level at a time (each level's listings pipelined), for
    /// [`Client::download_listed_tree`]. A listing that fails below the top,
    /// a name that would not be safe locally and a tree without end are in
    /// the tree's failures. Extended protocol only.
    pub async fn list_tree(&mut self, remote: &str) -> Result<RemoteTree, ClientError> {
        if !self.is_extended() {
            return Err(self.needs_extended("dl -r"));
        }
        let mut tree = RemoteTree {
            root: remote.to_owned(),
            ..RemoteTree::default()
        };
        // Breadth first: every listing of a level in one pipeline.
        let mut level = vec![String::new()];
        let mut first = true;
        let mut depth = 0;
        while !level.is_empty() {
            depth += 1;
            if depth > MAX_TREE_DEPTH || tree.directories.len() > MAX_TREE_DIRECTORIES {
                let reason = format!(
                    "the tree goes deeper than {MAX_TREE_DEPTH} levels or holds more than \
                     {MAX_TREE_DIRECTORIES} directories (a loop of links on the server?); \
                     stopped there"
                );
                tree.failures
                    .push((level[0].clone(), ClientError::Protocol(reason)));
                break;
            }
            let jobs = level
                .iter()
                .map(|relative| {
                    Job::Request(Operation::List {
                        path: join_remote(remote, relative),
                    })
                })
                .collect();
            let results = self
                .pipeline("dl -r", jobs, Progress::default(), &mut |_| {})
                .await?;
            let mut next = Vec::new();
            for (relative, result) in level.into_iter().zip(results) {
                let entries = match result {
                    Ok(Outcome::Listing(entries)) => entries,
                    Ok(other) => return Err(unexpected(other)),
                    Err(error) if first => return Err(error),
                    Err(error) => {
                        tree.failures.push((relative, error));
                        continue;
                    }
                };
                for entry in entries {
                    let child = match relative.is_empty() {
                        true => entry.name.clone(),
                        false => format!("{relative}/{}", entry.name),
                    };
                    if !safe_local_name(&entry.name) {
                        let reason = format!(
                            "unsafe name from the server: \"{}\"",
                            crate::protocol::text::escape(&entry.name)
                        );
                        tree.failures.push((child, ClientError::Protocol(reason)));
                    } else if entry.is_directory() {
                        tree.directories.push(child.clone());
                        next.push(child);
                    } else {
                        tree.files.push((child, entry.size));
                    }
                }
            }
            level = next;
            first = false;
        }
        Ok(tree)
    }

    /// Downloads a tree listed by [`Client::list_tree`] into the local
    /// directory `local`; see [`Client::download_tree`].
    pub async fn download_listed_tree(
        &mut self,
        tree: RemoteTree,
        local: &Path,
        progress: impl FnMut(Progress) + Send,
    ) -> Result<TreeSummary, ClientError> {
        let RemoteTree {
            root: remote,
            directories,
            mut files,
            failures,
        } = tree;
        let mut summary = TreeSummary {
            failures,
            ..TreeSummary::default()
        };
        let root = local.to_owned();
        let made = {
            let directories = directories.clone();
            tokio::task::spawn_blocking(move || make_local_directories(&root, &directories))
                .await
                .map_err(|error| ClientError::Local {
                    path: local.to_owned(),
                    source: std::io::Error::other(error),
                })?
        };
        let made = made?;
        let mut failed_directories = Vec::new();
        for (relative, result) in directories.iter().zip(made) {
            match result {
                Ok(()) => summary.directories += 1,
                Err(error) => {
                    failed_directories.push(format!("{relative}/"));
                    summary.failures.push((relative.clone(), error));
                }
            }
        }
        files.retain(|(relative, _)| {
            !failed_directories
                .iter()
                .any(|directory| relative.starts_with(directory.as_str()))
        });
        let total = files.iter().map(|(_, size)| size).sum();
        let jobs = files
            .iter()
            .map(|(relative, _)| Job::Download {
                remote: join_remote(&remote, relative),
                local: local_path(local, relative),
            })
            .collect();
        let start = Progress {
            done: 0,
            total: Some(total),
            ..Progress::default()
        };
        let mut progress = progress;
        let results = self.pipeline("dl -r", jobs, start, &mut progress).await?;
        for ((name, _), result) in files.into_iter().zip(results) {
            match result {
                Ok(Outcome::Transferred(bytes)) => {
                    summary.files += 1;
                    summary.bytes += bytes;
                }
                Ok(other) => summary.failures.push((name, unexpected(other))),
                Err(error) => summary.failures.push((name, error)),
            }
        }
        if self.config.durable_downloads {
            flush_local_disk(local).await;
        }
        Ok(summary)
    }
}

/// A remote directory tree listed for a download ([`Client::list_tree`]).
#[derive(Debug, Default)]
pub struct RemoteTree {
    /// The remote directory listed.
    root: String,
    /// Directories below it, parents first, as relative paths with `/`
    /// between names.
    directories: Vec<String>,
    /// Files below it: relative path and size.
    files: Vec<(String, u64)>,
    /// What could not be listed, or would not be safe locally, and why.
    failures: Vec<(String, ClientError)>,
}

impl RemoteTree {
    /// The files below the root: relative path (names joined by `/`) and
    /// size.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64)> {
        self.files.iter().map(|(path, size)| (path.as_str(), *size))
    }

    /// Where a file of the tree goes below the local directory `local`.
    pub fn local_path(&self, local: &Path, relative: &str) -> PathBuf {
        local_path(local, relative)
    }
}

/// `remote/relative`, or either alone when the other is empty.
fn join_remote(remote: &str, relative: &str) -> String {
    match (remote.is_empty(), relative.is_empty()) {
        (_, true) => remote.to_owned(),
        (true, false) => relative.to_owned(),
        (false, false) => format!("{}/{relative}", remote.trim_end_matches('/')),
    }
}

/// A relative `/`-separated path below a local root.
fn local_path(root: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .fold(root.to_owned(), |path, name| path.join(name))
}

/// Whether a name from a listing can be used as one local path component.
fn safe_local_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && !name.contains(['/', '\0'])
}

/// Makes `root` and the directories below it, parents first (blocking).
fn make_local_directories(
    root: &Path,
    directories: &[String],
) -> Result<Vec<Result<(), ClientError>>, ClientError> {
    let local = |path: PathBuf, source| ClientError::Local { path, source };
    std::fs::create_dir_all(root).map_err(|source| local(root.to_owned(), source))?;
    Ok(directories
        .iter()
        .map(|relative| {
            let path = local_path(root, relative);
            match std::fs::create_dir(&path) {
                Err(error)
                    if !(error.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir()) =>
                {
                    Err(local(path, error))
                }
                _ => Ok(()),
            }
        })
        .collect())
}

/// Flushes the file system holding `path` (the group commit of a recursive
/// download). Best effort: a failure leaves the files in the page cache.
async fn flush_local_disk(path: &Path) {
    let path = path.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        let directory = std::fs::File::open(path)?;
        rustix::fs::syncfs(&directory).map_err(std::io::Error::from)
    })
    .await;
}
