//! The shared tree on disk, behind one jail.
//!
//! Every client path is first resolved lexically into a [`VirtualPath`]
//! (no `..`, no odd names), then reaches the disk only through a `cap_std`
//! directory capability for the root, which refuses `..` and symbolic links
//! that lead outside, even if the tree changes during a request. The small
//! interface mirrors our operations (list, stat, read, write atomically,
//! mkdir, remove, rename) and knows nothing of the wire or of sessions.
//!
//! Uploads are written to a private temporary file under
//! [`path::PRIVATE_DIR`], flushed, and renamed into place only when whole.

pub mod path;
#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions, OpenOptionsExt};
use rand::Rng;
use rand::distr::Alphanumeric;

pub use path::VirtualPath;

/// Where temporary uploads live, relative to the private directory.
const UPLOAD_DIR: &str = "uploads";

/// Where interrupted extended-protocol uploads wait to be resumed, relative
/// to the private directory.
const PARTIAL_DIR: &str = "partial";

/// The deepest path whose `stat` runs in place on the session's worker
/// rather than on the blocking pool.
const IN_PLACE_DEPTH: usize = 32;

/// How long an interrupted upload is kept for resuming.
pub const PARTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// What went wrong with a storage operation. The `Display` text is what a
/// client sees (before the path it named).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The client sees: "no such file or directory".
    #[error("no such file or directory")]
    NotFound,
    /// The client sees: "already exists".
    #[error("already exists")]
    AlreadyExists,
    /// The client sees: "not a directory".
    #[error("not a directory")]
    NotADirectory,
    /// The client sees: "is a directory".
    #[error("is a directory")]
    IsADirectory,
    /// The client sees: "not a regular file".
    #[error("not a regular file")]
    NotAFile,
    /// The client sees: "directory not empty".
    #[error("directory not empty")]
    NotEmpty,
    /// The client sees: "path leads outside the shared root".
    #[error("path leads outside the shared root")]
    OutsideRoot,
    /// The client sees: "permission denied".
    #[error("permission denied")]
    PermissionDenied,
    /// The client sees: "invalid name (control characters are not allowed)".
    #[error("invalid name (control characters are not allowed)")]
    InvalidName,
    /// The client sees: "empty name".
    #[error("empty name")]
    EmptyName,
    /// The client sees: "name too long".
    #[error("name too long")]
    NameTooLong,
    /// The client sees: "name is reserved by the server".
    #[error("name is reserved by the server")]
    Reserved,
    /// The client sees: "cannot remove the root directory".
    #[error("cannot remove the root directory")]
    RemoveRoot,
    /// The client sees: "cannot remove '.' or '..'".
    #[error("cannot remove '.' or '..'")]
    RemoveDot,
    /// The client sees: "cannot move a directory into itself".
    #[error("cannot move a directory into itself")]
    IntoItself,
    /// The client sees: "file too large".
    #[error("file too large")]
    TooLarge,
    /// The client sees: "no space left on the server".
    #[error("no space left on the server")]
    NoSpace,
    /// The client sees: "too many levels of symbolic links".
    #[error("too many levels of symbolic links")]
    LinkLoop,
    /// The client sees: "permission denied (read-only access)".
    #[error("permission denied (read-only access)")]
    ReadOnly,
    /// The client sees: "i/o error ({0})".
    #[error("i/o error ({0})")]
    Io(io::ErrorKind),
}

impl From<io::Error> for StorageError {
    fn from(error: io::Error) -> StorageError {
        use io::ErrorKind as Kind;
        match error.raw_os_error() {
            Some(libc::EXDEV) => return StorageError::OutsideRoot,
            Some(libc::ELOOP) => return StorageError::LinkLoop,
            Some(libc::ENOTEMPTY) => return StorageError::NotEmpty,
            Some(libc::ENOTDIR) => return StorageError::NotADirectory,
            Some(libc::EISDIR) => return StorageError::IsADirectory,
            Some(libc::ENAMETOOLONG) => return StorageError::NameTooLong,
            _ => {}
        }
        match error.kind() {
            Kind::NotFound => StorageError::NotFound,
            Kind::AlreadyExists => StorageError::AlreadyExists,
            // cap-std reports an escape attempt as a PermissionDenied with no errno.
            Kind::PermissionDenied if error.raw_os_error().is_none() => StorageError::OutsideRoot,
            Kind::PermissionDenied => StorageError::PermissionDenied,
            Kind::StorageFull | Kind::QuotaExceeded => StorageError::NoSpace,
            Kind::FileTooLarge => StorageError::TooLarge,
            kind => StorageError::Io(kind),
        }
    }
}

/// A storage result.
pub type Result<T> = std::result::Result<T, StorageError>;

/// What an entry is, as a client sees it (links are shown as their target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
}

/// How much [`Storage::remove`] may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A file, a link, or an empty directory (`rm`).
    Entry,
    /// Also a directory with everything below it (`rm -r`).
    Tree,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name (non-UTF-8 bytes replaced, as such a name is unreachable anyway).
    pub name: String,
    /// Directory or file.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification, when the filesystem knows it.
    pub modified: Option<SystemTime>,
}

/// The shared root, or a part of it (an account's home), as one client may
/// use it. Cheap to clone: clones share the capabilities.
#[derive(Clone)]
pub struct Storage {
    /// The tree this storage shows: the root, or a home under it.
    root: Arc<Dir>,
    /// The root's private directory, where uploads are prepared.
    private: Arc<Dir>,
    /// Names the tree among the root's subtrees (empty for the root), so
    /// that partial uploads of two homes never meet.
    scope: Arc<str>,
    /// Refuse every change.
    read_only: bool,
}

impl Storage {
    /// Opens `root` for sharing, creating the private upload directory and
    /// removing uploads left behind by a crash.
    pub fn open(root: &Path) -> io::Result<Storage> {
        let root = Dir::open_ambient_dir(root, ambient_authority())?;
        root.create_dir_all(path::PRIVATE_DIR)?;
        let private = root.open_dir(path::PRIVATE_DIR)?;
        private.create_dir_all(UPLOAD_DIR)?;
        let uploads = private.open_dir(UPLOAD_DIR)?;
        for entry in uploads.entries()? {
            let name = entry?.file_name();
            if let Err(error) = uploads.remove_file(&name) {
                tracing::warn!(?name, %error, "could not remove a leftover upload");
            }
        }
        private.create_dir_all(PARTIAL_DIR)?;
        prune_partials(&private.open_dir(PARTIAL_DIR)?, PARTIAL_MAX_AGE);
        Ok(Storage {
            root: Arc::new(root),
            private: Arc::new(private),
            scope: Arc::from(""),
            read_only: false,
        })
    }

    /// The same tree, with every change refused ([`StorageError::ReadOnly`]).
    pub fn read_only(&self) -> Storage {
        Storage {
            read_only: true,
            ..self.clone()
        }
    }

    /// The directory `home` of this tree as a tree of its own, the jail
    /// closing around it: an account's view. Created (with its parents)
    /// if missing, unless the storage is read-only. Links on the way are
    /// followed only within this tree.
    pub async fn subtree(&self, home: &VirtualPath) -> Result<Storage> {
        let home = home.clone();
        let create = !self.read_only;
        let (dir, resolved) = self
            .blocking(move |root| {
                let home = resolve_links(root, &home, true)?;
                if !home.is_root() && create {
                    root.create_dir_all(home.relative())?;
                }
                let dir = match home.is_root() {
                    true => root.try_clone()?,
                    false => root.open_dir(home.relative())?,
                };
                Ok((dir, home))
            })
            .await?;
        Ok(Storage {
            root: Arc::new(dir),
            private: Arc::clone(&self.private),
            scope: Arc::from(format!("{}{}", self.scope, resolved)),
            read_only: self.read_only,
        })
    }

    /// Refuses a change when the storage is read-only.
    fn check_writable(&self) -> Result<()> {
        match self.read_only {
            true => Err(StorageError::ReadOnly),
            false => Ok(()),
        }
    }

    /// Runs a short filesystem operation (a few metadata calls) in place.
    async fn in_place<T>(&self, operation: impl FnOnce(&Dir) -> Result<T>) -> Result<T> {
        operation(&self.root)
    }

    /// Runs a blocking filesystem operation on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Dir) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || operation(&root))
            .await
            .unwrap_or_else(|_| Err(StorageError::Io(io::ErrorKind::Other)))
    }

    /// Lists a directory: its directories and regular files, links shown as
    /// what they point to when that stays inside the root and not at all
    /// otherwise; private entries never. The entries come a batch at a
    /// time, in the order the directory yields them, so that a directory of
    /// any size is listed in bounded memory.
    pub async fn list(&self, directory: &VirtualPath) -> Result<Listing> {
        let directory = directory.clone();
        self.blocking(move |root| {
            let directory = resolve_links(root, &directory, true)?;
            let entries = root.read_dir(directory.relative())?;
            Ok(Listing {
                next: Some(Box::new((entries, directory))),
                storage: None,
            })
        })
        .await
        .map(|listing| Listing {
            storage: Some(self.clone()),
            ..listing
        })
    }

    /// Every entry of a directory at once, for the few that need them all
    /// (the classic welcome is one message, sorted).
    pub async fn list_all(&self, directory: &VirtualPath) -> Result<Vec<Entry>> {
        let mut listing = self.list(directory).await?;
        let mut entries = Vec::new();
        while let Some(batch) = listing.next_batch().await? {
            entries.extend(batch);
        }
        Ok(entries)
    }

    /// Describes what `path` names, following links that stay inside.
    pub async fn stat(&self, path: &VirtualPath) -> Result<Entry> {
        // A few metadata calls on a local disk take microseconds: done in
        // place, as the handoff to the blocking pool would cost more. But
        // links are resolved one component at a time, each from the root, so
        // the cost grows with the square of the depth (a 2,048-level path
        // takes a third of a second): deep paths go to the blocking pool,
        // never stalling the other sessions' worker.
        if path.components().count() > IN_PLACE_DEPTH {
            let path = path.clone();
            let storage = self.clone();
            return self
                .blocking(move |root| storage.stat_now(root, &path))
                .await;
        }
        self.in_place(|root| self.stat_now(root, path)).await
    }

    /// [`Storage::stat`]'s work, on whichever thread.
    fn stat_now(&self, root: &Dir, path: &VirtualPath) -> Result<Entry> {
        {
            let (resolved, known) = resolve_links_keeping(root, path, true)?;
            let metadata = match known {
                Some(metadata) => metadata,
                None => root.metadata(resolved.relative())?,
            };
            let kind = if metadata.is_dir() {
                EntryKind::Directory
            } else if metadata.is_file() {
                EntryKind::File
            } else {
                return Err(StorageError::NotAFile);
            };
            Ok(Entry {
                name: path.name().unwrap_or("/").to_owned(),
                kind,
                size: if kind == EntryKind::File {
                    metadata.len()
                } else {
                    0
                },
                modified: metadata.modified().ok().map(|time| time.into_std()),
            })
        }
    }

    /// Checks that `path` is a directory one can change into.
    pub async fn check_directory(&self, path: &VirtualPath) -> Result<()> {
        match self.stat(path).await?.kind {
            EntryKind::Directory => Ok(()),
            EntryKind::File => Err(StorageError::NotADirectory),
        }
    }

    /// Opens a regular file for reading; returns it with its size.
    pub async fn open_file(&self, path: &VirtualPath) -> Result<(tokio::fs::File, u64)> {
        let path = path.clone();
        self.blocking(move |root| {
            let relative = resolve_links(root, &path, true)?.relative();
            // The name may have changed since the links were resolved: it is
            // opened without blocking (a FIFO would wait for a writer) and
            // without following a link, and what was opened is checked.
            let file = root.open_with(
                &relative,
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW),
            )?;
            let metadata = file.metadata()?;
            if metadata.is_dir() {
                return Err(StorageError::IsADirectory);
            }
            if !metadata.is_file() {
                return Err(StorageError::NotAFile);
            }
            Ok((tokio::fs::File::from_std(file.into_std()), metadata.len()))
        })
        .await
    }

    /// Starts an upload to `path`: a private temporary file that becomes
    /// visible only through [`Upload::commit`]. Refuses early what the
    /// commit would refuse (a directory, a missing parent).
    pub async fn create_upload(&self, path: &VirtualPath) -> Result<Upload> {
        self.check_writable()?;
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let target = path.clone();
        let temporary = format!("{}.part", random_name());
        let temporary_path = format!("{UPLOAD_DIR}/{temporary}");
        let (file, target) = self
            .blocking({
                let temporary_path = temporary_path.clone();
                let private = Arc::clone(&self.private);
                move |root| {
                    let target = check_upload_target(root, &target)?;
                    let file = private.open_with(
                        &temporary_path,
                        OpenOptions::new().write(true).create_new(true),
                    )?;
                    Ok((file.into_std(), target))
                }
            })
            .await?;
        Ok(Upload {
            file: Some(tokio::fs::File::from_std(file)),
            temporary_path,
            target,
            storage: self.clone(),
            keep_on_drop: false,
        })
    }

    /// Starts or resumes an upload of a `size`-byte file to `path`: returns
    /// the upload, positioned after the bytes already held from an earlier
    /// interrupted attempt, and how many those are. Such a partial file is
    /// private, kept for [`PARTIAL_MAX_AGE`], and locked while in use (a
    /// second client resuming the same upload starts afresh instead).
    pub async fn resume_upload(&self, path: &VirtualPath, size: u64) -> Result<(Upload, u64)> {
        self.check_writable()?;
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let key = blake3::hash(format!("{}\0{path}\0{size}", self.scope).as_bytes()).to_hex();
        let partial_path = format!("{PARTIAL_DIR}/{}", &key[..32]);
        let target = path.clone();
        let opened = self
            .blocking({
                let partial_path = partial_path.clone();
                let private = Arc::clone(&self.private);
                move |root| {
                    let target = check_upload_target(root, &target)?;
                    // Interrupted uploads are bounded in age while the
                    // server runs, not only at start.
                    if let Ok(partials) = private.open_dir(PARTIAL_DIR) {
                        prune_partials(&partials, PARTIAL_MAX_AGE);
                    }
                    let file = private.open_with(
                        &partial_path,
                        OpenOptions::new().read(true).write(true).create(true),
                    )?;
                    let file = file.into_std();
                    if rustix::fs::flock(
                        &file,
                        rustix::fs::FlockOperation::NonBlockingLockExclusive,
                    )
                    .is_err()
                    {
                        return Ok(None);
                    }
                    let mut held = file.metadata()?.len();
                    if held > size {
                        file.set_len(0)?;
                        held = 0;
                    }
                    Ok(Some((file, held, target)))
                }
            })
            .await?;
        let Some((file, held, target)) = opened else {
            return Ok((self.create_upload(path).await?, 0));
        };
        let mut file = tokio::fs::File::from_std(file);
        tokio::io::AsyncSeekExt::seek(&mut file, io::SeekFrom::Start(held)).await?;
        let upload = Upload {
            file: Some(file),
            temporary_path: partial_path,
            target,
            storage: self.clone(),
            keep_on_drop: true,
        };
        Ok((upload, held))
    }

    /// Creates a directory and any missing parents; an existing directory
    /// is fine.
    pub async fn make_directories(&self, path: &VirtualPath) -> Result<()> {
        self.check_writable()?;
        let path = path.clone();
        self.blocking(move |root| {
            let path = resolve_links(root, &path, true)?;
            root.create_dir_all(path.relative())?;
            match root.metadata(path.relative())?.is_dir() {
                true => Ok(()),
                false => Err(StorageError::NotADirectory),
            }
        })
        .await
    }

    /// Creates one directory; its parent must exist.
    pub async fn make_directory(&self, path: &VirtualPath) -> Result<()> {
        self.check_writable()?;
        if path.is_root() {
            return Err(StorageError::AlreadyExists);
        }
        let path = path.clone();
        self.blocking(move |root| {
            let path = resolve_links(root, &path, false)?;
            Ok(root.create_dir(path.relative())?)
        })
        .await
    }

    /// Removes a file, a link (never its target) or an empty directory;
    /// with [`Removal::Tree`], a directory with everything below it.
    pub async fn remove(&self, path: &VirtualPath, removal: Removal) -> Result<()> {
        self.check_writable()?;
        let Some(name) = path.name().map(str::to_owned) else {
            return Err(StorageError::RemoveRoot);
        };
        let path = path.clone();
        self.blocking(move |root| {
            let path = resolve_links(root, &path, false)?;
            let parent = root.open_dir(path.parent().relative())?;
            match (parent.symlink_metadata(&name)?.is_dir(), removal) {
                (true, Removal::Entry) => parent.remove_dir(&name)?,
                (true, Removal::Tree) => parent.remove_dir_all(&name)?,
                (false, _) => parent.remove_file(&name)?,
            }
            sync_directory(&parent);
            Ok(())
        })
        .await
    }

    /// Moves `from` into `to` when `to` is an existing directory, otherwise
    /// renames it to `to`; never replaces an existing entry. With
    /// `to_names_directory` (a trailing `/`), `to` must be a directory.
    /// Returns where the entry now is.
    pub async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        to_names_directory: bool,
    ) -> Result<VirtualPath> {
        self.check_writable()?;
        let Some(name) = from.name().map(str::to_owned) else {
            return Err(StorageError::PermissionDenied);
        };
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |root| {
            let from = resolve_links(root, &from, false)?;
            let to = resolve_links(root, &to, true)?;
            let source = root.symlink_metadata(from.relative())?;
            let destination = match root.metadata(to.relative()) {
                Ok(existing) if existing.is_dir() => to.child(&name),
                Ok(_) if to_names_directory => return Err(StorageError::NotADirectory),
                Ok(_) => return Err(StorageError::AlreadyExists),
                Err(_) if to_names_directory => return Err(StorageError::NotADirectory),
                Err(_) => to,
            };
            if source.is_dir() && destination.starts_with(&from) {
                return Err(StorageError::IntoItself);
            }
            let Some(destination_name) = destination.name() else {
                return Err(StorageError::AlreadyExists);
            };
            let source_parent = root.open_dir(from.parent().relative())?;
            let destination_parent = root.open_dir(destination.parent().relative())?;
            rename_no_replace(&source_parent, &name, &destination_parent, destination_name)?;
            sync_directory(&source_parent);
            sync_directory(&destination_parent);
            Ok(destination)
        })
        .await
    }
}

/// How many entries [`Listing::next_batch`] reads at a time: at most about
/// 70 KiB of names, whatever the directory holds.
const LISTING_BATCH: usize = 256;

/// A directory being listed: [`Listing::next_batch`] reads the next
/// entries on the blocking pool, and nothing is read ahead of the caller,
/// so a caller that waits (for a client to read) holds one batch at most.
pub struct Listing {
    /// The directory still being read, and what it is as a virtual path;
    /// `None` once it is done.
    next: Option<Box<(cap_std::fs::ReadDir, VirtualPath)>>,
    storage: Option<Storage>,
}

impl Listing {
    /// The next entries, or `None` when the directory has no more.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        let (Some(mut next), Some(storage)) = (self.next.take(), self.storage.as_ref()) else {
            return Ok(None);
        };
        let (next, batch) = storage
            .blocking(move |root| {
                let (entries, directory) = &mut *next;
                let mut batch = Vec::new();
                let mut finished = true;
                for entry in entries.by_ref() {
                    if let Some(entry) = describe_listed(root, directory, entry?)? {
                        batch.push(entry);
                    }
                    if batch.len() == LISTING_BATCH {
                        finished = false;
                        break;
                    }
                }
                Ok(((!finished).then_some(next), batch))
            })
            .await?;
        self.next = next;
        match (batch.is_empty(), self.next.is_some()) {
            // Entries skipped (private, or links leading out) made an empty
            // batch: go on to the next.
            (true, true) => Box::pin(self.next_batch()).await,
            (true, false) => Ok(None),
            (false, _) => Ok(Some(batch)),
        }
    }
}

/// One directory entry as a client sees it, or `None` when it is not shown
/// (the private directory, a link that leads outside or nowhere, anything
/// but a directory or a regular file).
fn describe_listed(
    root: &Dir,
    directory: &VirtualPath,
    entry: cap_std::fs::DirEntry,
) -> Result<Option<Entry>> {
    let name = entry.file_name();
    if directory.is_root() && name == OsStr::new(path::PRIVATE_DIR) {
        return Ok(None);
    }
    let metadata = match entry.file_type()?.is_symlink() {
        // Follows the link inside the capability: an escape or a dangling
        // link is an error, and the entry is not listed; nor is a link into
        // the private directory.
        true => {
            let linked = name
                .to_str()
                .map(|name| resolve_links(root, &directory.child(name), true));
            match linked.map(|resolved| {
                root.metadata(resolved?.relative())
                    .map_err(StorageError::from)
            }) {
                Some(Ok(metadata)) => metadata,
                _ => return Ok(None),
            }
        }
        false => match entry.metadata() {
            Ok(metadata) => metadata,
            // Removed since the directory was read.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        },
    };
    let kind = if metadata.is_dir() {
        EntryKind::Directory
    } else if metadata.is_file() {
        EntryKind::File
    } else {
        return Ok(None);
    };
    Ok(Some(Entry {
        name: name.to_string_lossy().into_owned(),
        kind,
        size: if kind == EntryKind::File {
            metadata.len()
        } else {
            0
        },
        modified: metadata.modified().ok().map(|time| time.into_std()),
    }))
}

/// An upload in progress: write to [`Upload::writer`], then
/// [`Upload::commit`]. Dropped without a commit, it leaves nothing behind.
pub struct Upload {
    file: Option<tokio::fs::File>,
    temporary_path: String,
    target: VirtualPath,
    storage: Storage,
    /// A resumable upload's partial file outlives a failed attempt.
    keep_on_drop: bool,
}

impl Upload {
    /// Where the upload goes once committed.
    pub fn target(&self) -> &VirtualPath {
        &self.target
    }

    /// Where the upload's bytes go.
    pub fn writer(&mut self) -> &mut tokio::fs::File {
        self.file
            .as_mut()
            .expect("an upload's file lives until commit")
    }

    /// Flushes the data to disk and renames it into place, replacing any
    /// file (or link) of that name; then flushes the directory, so that an
    /// acknowledged upload survives a crash.
    pub async fn commit(mut self) -> Result<()> {
        let mut file = self.file.take().expect("commit runs once");
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        file.sync_all().await?;
        // The file (and a resumable upload's lock on it) stays open until
        // it is in place: no second resumer can open and truncate it.
        let temporary_path = std::mem::take(&mut self.temporary_path);
        let target = self.target.clone();
        let result = self
            .storage
            .blocking({
                let temporary_path = temporary_path.clone();
                let private = Arc::clone(&self.storage.private);
                move |root| {
                    private.rename(&temporary_path, root, target.relative())?;
                    if let Ok(parent) = root.open_dir(target.parent().relative()) {
                        sync_directory(&parent);
                    }
                    Ok(())
                }
            })
            .await;
        drop(file);
        if result.is_err() {
            self.temporary_path = temporary_path;
        }
        result
    }
}

impl Storage {
    /// Puts finished uploads in place as one group, with two filesystem
    /// flushes in all instead of two per file (a group commit, as databases
    /// do): every file's data is flushed, then all are renamed into place,
    /// then the renames are flushed. When it returns, each upload that
    /// succeeded survives a crash. One result per upload, in order.
    pub async fn commit_group(&self, uploads: Vec<Upload>) -> Vec<Result<()>> {
        let mut prepared = Vec::with_capacity(uploads.len());
        // Held open until the renames are done, as in `Upload::commit`.
        let mut files = Vec::with_capacity(uploads.len());
        for mut upload in uploads {
            let mut file = upload.file.take().expect("commit runs once");
            let flushed = tokio::io::AsyncWriteExt::flush(&mut file).await;
            files.push(file);
            prepared.push((upload, flushed));
        }
        let private = Arc::clone(&self.private);
        let (prepared, results) = self
            .blocking(move |root| {
                let flushed = sync_filesystem(root);
                let mut results = Vec::with_capacity(prepared.len());
                for (upload, written) in &mut prepared {
                    let result = match (written.as_ref(), flushed.as_ref()) {
                        (Err(error), _) | (_, Err(error)) => {
                            Err(io::Error::new(error.kind(), error.to_string()).into())
                        }
                        (Ok(()), Ok(())) => private
                            .rename(&upload.temporary_path, root, upload.target.relative())
                            .map_err(StorageError::from),
                    };
                    if result.is_ok() {
                        // In place: nothing left for the drop to remove.
                        upload.temporary_path.clear();
                    }
                    results.push(result);
                }
                if let Err(error) = sync_filesystem(root) {
                    tracing::warn!(%error, "could not flush a group of uploads");
                }
                Ok((prepared, results))
            })
            .await
            .unwrap_or_else(|_| (Vec::new(), Vec::new()));
        drop(prepared);
        drop(files);
        results
    }
}

impl Upload {
    /// Abandons the upload and its bytes, even a resumable one (e.g. when
    /// its digest did not match).
    pub fn discard(mut self) {
        self.keep_on_drop = false;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.temporary_path.is_empty() && !self.keep_on_drop {
            // A single unlink: cheap enough to do inline.
            let _ = self.storage.private.remove_file(&self.temporary_path);
        }
    }
}

/// What an upload to `target` needs: an existing parent directory, and no
/// directory in the way. Returns the target with the links on its way
/// resolved (a link at the end is replaced, not written through).
fn check_upload_target(root: &Dir, target: &VirtualPath) -> Result<VirtualPath> {
    let target = resolve_links(root, target, false)?;
    if !root.metadata(target.parent().relative())?.is_dir() {
        return Err(StorageError::NotADirectory);
    }
    match root.metadata(target.relative()) {
        Ok(existing) if existing.is_dir() => Err(StorageError::IsADirectory),
        _ => Ok(target),
    }
}

/// Removes interrupted uploads older than `max_age`.
fn prune_partials(partials: &Dir, max_age: std::time::Duration) {
    let Ok(entries) = partials.entries() else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .map(|modified| modified.into_std().elapsed().unwrap_or_default() > max_age)
            .unwrap_or(true);
        if old {
            let _ = partials.remove_file(entry.file_name());
        }
    }
}

/// The most links followed while checking one path, as the kernel's `ELOOP` limit.
const MAX_LINK_HOPS: usize = 40;

/// Resolves the links along `path` the way the kernel would, as seen from
/// inside the root, and returns the path with them replaced by where they
/// lead. It refuses a path that reaches the private directory through a
/// link (e.g. `priv -> .miniftp`, made by the owner of the tree), and one
/// whose link leads outside the root (`..` above it, or an absolute target
/// elsewhere). An absolute target inside the root (`/srv/share/photos` when
/// sharing `/srv/share`) is followed like a relative one, which the
/// capability alone would refuse. With `follow_last` false, a link in the
/// last component is kept (`rm` and `mv` act on the link itself, and an
/// upload replaces it). What does not exist is left in place for the
/// operation to report; the capability still confines whatever it does.
fn resolve_links(root: &Dir, path: &VirtualPath, follow_last: bool) -> Result<VirtualPath> {
    resolve_links_keeping(root, path, follow_last).map(|(path, _)| path)
}

/// [`resolve_links`], keeping the metadata of the last component when it
/// was looked at and is no link: what a `stat` would fetch again (the
/// second look costs an open, a stat and a close, most of a `stat`'s time).
fn resolve_links_keeping(
    root: &Dir,
    path: &VirtualPath,
    follow_last: bool,
) -> Result<(VirtualPath, Option<Metadata>)> {
    let mut pending: Vec<String> = path.components().rev().map(str::to_owned).collect();
    let mut reached = VirtualPath::root();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if reached.is_root() && name == path::PRIVATE_DIR {
            return Err(StorageError::Reserved);
        }
        let candidate = reached.child(&name);
        let last = pending.is_empty();
        match root.symlink_metadata(candidate.relative()) {
            Ok(metadata) if metadata.is_symlink() && (follow_last || !last) => {}
            Ok(metadata) => {
                reached = candidate;
                if last && !metadata.is_symlink() {
                    return Ok((reached, Some(metadata)));
                }
                continue;
            }
            Err(_) => {
                // Missing: the rest cannot be resolved; the operation says so.
                reached = candidate;
                while let Some(name) = pending.pop() {
                    reached = reached.child(&name);
                }
                return Ok((reached, None));
            }
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Err(StorageError::LinkLoop);
        }
        let target = root.read_link_contents(candidate.relative())?;
        let target = target.to_str().ok_or(StorageError::InvalidName)?;
        let (start, relative) = match target.strip_prefix('/') {
            Some(_) => (VirtualPath::root(), inside_root(root, target)?),
            None => (reached.clone(), target.to_owned()),
        };
        let resolved = start.resolve_within(&relative)?;
        pending.extend(resolved.components().rev().map(str::to_owned));
        reached = VirtualPath::root();
    }
    Ok((reached, None))
}

/// An absolute link target as a path relative to the root, if it lies
/// inside it.
fn inside_root(root: &Dir, target: &str) -> Result<String> {
    use std::os::fd::AsRawFd;
    // The root's real path, as the kernel knows the open directory.
    let real = std::fs::read_link(format!("/proc/self/fd/{}", root.as_raw_fd()))?;
    let real = real.to_str().ok_or(StorageError::OutsideRoot)?;
    let rest = if real == "/" {
        Some(target)
    } else {
        target.strip_prefix(real)
    };
    match rest {
        Some("") => Ok(".".to_owned()),
        Some(rest) if rest.starts_with('/') => Ok(rest.trim_start_matches('/').to_owned()),
        _ => Err(StorageError::OutsideRoot),
    }
}

/// A random file name for a private temporary file.
fn random_name() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// Flushes everything written to the root's filesystem (`syncfs`).
fn sync_filesystem(root: &Dir) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    // As in `sync_directory`: the capability is an `O_PATH` descriptor.
    let directory = rustix::fs::openat(
        root,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::syncfs(directory)?;
    Ok(())
}

/// Flushes a directory's entries to disk; failures only cost durability.
fn sync_directory(directory: &Dir) {
    use rustix::fs::{Mode, OFlags};
    // cap-std holds directories as `O_PATH` descriptors, which cannot be
    // flushed: reopen the directory itself for reading.
    let flushed = rustix::fs::openat(
        directory,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .and_then(rustix::fs::fsync);
    if let Err(error) = flushed {
        tracing::warn!(%error, "could not flush a directory");
    }
}

/// `renameat2(RENAME_NOREPLACE)` between two single-component names, with a
/// check-then-rename fallback for filesystems that lack it.
fn rename_no_replace(from_dir: &Dir, from: &str, to_dir: &Dir, to: &str) -> Result<()> {
    match rustix::fs::renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        // EINVAL: either the flag is unsupported, or a directory would move
        // below itself (through a link, which the lexical check cannot see);
        // a plain rename tells the two apart.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if to_dir.symlink_metadata(to).is_ok() {
                return Err(StorageError::AlreadyExists);
            }
            match from_dir.rename(from, to_dir, to) {
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    Err(StorageError::IntoItself)
                }
                renamed => Ok(renamed?),
            }
        }
        Err(errno) => Err(io::Error::from(errno).into()),
    }
}
