//! The shared tree on the local disk, behind a directory capability.
//!
//! The disk is reached only through a `cap_std` directory for the root,
//! which refuses `..` and symbolic links that lead outside, even if the
//! tree changes during a request; links inside are followed one component
//! at a time by one resolver (`resolve_links`), so that absolute links
//! into the root work and links into the private directory do not.
//!
//! Uploads are written to a private temporary file under
//! [`path::PRIVATE_DIR`], hashed as they are written, flushed, and renamed
//! into place only when whole. Interrupted resumable uploads wait in the
//! private directory, locked while in use, for [`PARTIAL_MAX_AGE`].

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions, OpenOptionsExt};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWrite};
use tokio::sync::Semaphore;

use super::{
    Backend, DigestJob, Download, DownloadSource, Entry, EntryKind, Listing, ListingSource,
    Removal, Result, StorageError, UploadSink, VirtualPath, path,
};
use crate::digest::{self, Digest, Hasher};

mod digests;
#[cfg(test)]
mod tests;

/// Where temporary uploads live, relative to the private directory.
const UPLOAD_DIR: &str = "uploads";

/// Where interrupted extended-protocol uploads wait to be resumed, relative
/// to the private directory.
const PARTIAL_DIR: &str = "partial";

/// Where dead properties live, relative to the private directory: a tree
/// of directories mirroring the shared one (homes included, by their path
/// from the root), each entry's properties in a file [`PROPERTIES_FILE`]
/// in its directory there, so that a rename or a removal moves or removes
/// an entry's and its descendants' properties in one call.
const PROPERTIES_DIR: &str = "properties";

/// The file of an entry's properties in its mirror directory: a control
/// character in its name keeps it from meeting any name a client can give.
const PROPERTIES_FILE: &str = "\u{1}properties";

/// The deepest path whose `stat` runs in place on the session's worker
/// rather than on the blocking pool.
const IN_PLACE_DEPTH: usize = 32;

/// How many entries a listing reads at a time: at most about 200 KiB of
/// names, whatever the directory holds.
const LISTING_BATCH: usize = 256;

/// The most bytes of an upload taken in one chunk: each chunk is hashed as
/// it arrives, then is one trip to the blocking pool (written), and a slice
/// twice the connection's default halves those trips. With the chunk being
/// written and the next being read, an upload holds about 1 MiB on the way.
const UPLOAD_SLICE: usize = 512 * 1024;

/// How long an interrupted upload is kept for resuming.
pub const PARTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// The shared root on the local disk, or a home under it.
#[derive(Clone)]
pub struct LocalDisk {
    /// The tree this backend shows: the root, or a home under it.
    root: Arc<Dir>,
    /// The root's private directory, where uploads are prepared.
    private: Arc<PrivateArea>,
    /// Names the tree among the root's subtrees (empty for the root), so
    /// that partial uploads of two homes never meet.
    scope: Arc<str>,
    /// Slots for the digests computed beside downloads, one per core, so
    /// that a thousand downloads do not become a thousand blocking threads.
    hashing: Arc<Semaphore>,
    /// Whether uploads wait for the disk before they are put in place.
    flushes: bool,
}

/// The server's private directory under the root, made again if someone
/// removes it while the server runs (a cleanup job, say).
struct PrivateArea {
    /// The shared root itself, where the area lives.
    root: Dir,
    current: RwLock<Arc<Dir>>,
}

impl PrivateArea {
    fn open(root: Dir) -> io::Result<PrivateArea> {
        let current = Self::make(&root)?;
        Ok(PrivateArea {
            root,
            current: RwLock::new(Arc::new(current)),
        })
    }

    fn make(root: &Dir) -> io::Result<Dir> {
        root.create_dir_all(path::PRIVATE_DIR)?;
        let private = root.open_dir(path::PRIVATE_DIR)?;
        private.create_dir_all(UPLOAD_DIR)?;
        private.create_dir_all(PARTIAL_DIR)?;
        private.create_dir_all(digests::DIGEST_DIR)?;
        Ok(private)
    }

    fn get(&self) -> Arc<Dir> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Whether the area is still where it belongs (an open directory that
    /// was removed keeps its descriptor, but nothing can be made in it).
    fn is_intact(&self, private: &Dir) -> bool {
        private.metadata(UPLOAD_DIR).is_ok() && private.metadata(PARTIAL_DIR).is_ok()
    }

    /// Makes the area again after it was removed; says so in the log.
    fn restore(&self) -> io::Result<Arc<Dir>> {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if self.is_intact(&current) {
            return Ok(Arc::clone(&current));
        }
        tracing::warn!(
            "the server's private directory {} was removed while the server runs; made it again",
            path::PRIVATE_DIR
        );
        *current = Arc::new(Self::make(&self.root)?);
        Ok(Arc::clone(&current))
    }

    /// Runs `operation` in the area; if it fails because the area is gone,
    /// makes it again and runs it once more.
    fn with<T>(&self, operation: impl Fn(&Dir) -> io::Result<T>) -> io::Result<T> {
        let private = self.get();
        match operation(&private) {
            Err(error) if error.kind() == io::ErrorKind::NotFound && !self.is_intact(&private) => {
                operation(&*self.restore()?)
            }
            result => result,
        }
    }
}

impl LocalDisk {
    /// Opens `root` for sharing, creating the private directory and
    /// removing uploads left behind by a crash.
    pub fn open(root: &Path) -> io::Result<LocalDisk> {
        let root = Dir::open_ambient_dir(root, ambient_authority())?;
        let area = PrivateArea::open(root.try_clone()?)?;
        let private = area.get();
        let uploads = private.open_dir(UPLOAD_DIR)?;
        for entry in uploads.entries()? {
            let name = entry?.file_name();
            if let Err(error) = uploads.remove_file(&name) {
                tracing::warn!(?name, %error, "could not remove a leftover upload");
            }
        }
        prune_partials(&private.open_dir(PARTIAL_DIR)?, PARTIAL_MAX_AGE);
        digests::prune(&private, &root);
        Ok(LocalDisk {
            root: Arc::new(root),
            private: Arc::new(area),
            scope: Arc::from(""),
            hashing: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            flushes: true,
        })
    }

    /// The same disk, with uploads put in place without waiting for the
    /// disk to hold them (no `fsync`, no group barrier): still whole or not
    /// at all, and verified, but a power cut may lose the last ones.
    pub fn without_flushes(self) -> LocalDisk {
        LocalDisk {
            flushes: false,
            ..self
        }
    }

    /// The mirror directory of `resolved`'s properties, relative to the
    /// private area.
    fn properties_node(&self, resolved: &VirtualPath) -> String {
        let path = match resolved.is_root() {
            true => String::new(),
            false => resolved.to_string(),
        };
        format!("{PROPERTIES_DIR}{}{path}", self.scope)
    }

    /// Removes the properties of `resolved` and everything below it.
    fn forget_properties(&self, resolved: &VirtualPath) {
        let node = self.properties_node(resolved);
        if let Err(error) = self.private.get().remove_dir_all(&node)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(%error, path = %resolved, "could not remove dead properties");
        }
    }

    /// Moves the properties of `from` and everything below it to `to`.
    fn move_properties(&self, from: &VirtualPath, to: &VirtualPath) {
        let (from_node, to_node) = (self.properties_node(from), self.properties_node(to));
        let private = self.private.get();
        if private.symlink_metadata(&from_node).is_err() {
            return;
        }
        let moved = (|| {
            let _ = private.remove_dir_all(&to_node);
            if let Some((parent, _)) = to_node.rsplit_once('/') {
                private.create_dir_all(parent)?;
            }
            private.rename(&from_node, &private, &to_node)
        })();
        if let Err(error) = moved {
            tracing::warn!(%error, %from, %to, "could not move dead properties");
        }
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

    /// [`Backend::stat`]'s work, on whichever thread.
    fn stat_now(root: &Dir, path: &VirtualPath) -> Result<Entry> {
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

    /// A fresh private file for an upload that will not be resumed.
    async fn temporary_upload(&self, path: &VirtualPath) -> Result<LocalUpload> {
        let target = path.clone();
        let temporary_path = format!("{UPLOAD_DIR}/{}.part", random_name());
        let private = Arc::clone(&self.private);
        let (file, target) = self
            .blocking({
                let temporary_path = temporary_path.clone();
                move |root| {
                    let target = check_upload_target(root, &target)?;
                    let file = private.with(|private| {
                        private.open_with(
                            &temporary_path,
                            OpenOptions::new().write(true).create_new(true),
                        )
                    })?;
                    Ok((file.into_std(), target))
                }
            })
            .await?;
        Ok(LocalUpload::new(
            self,
            file,
            temporary_path,
            target,
            0,
            Hasher::new(),
            false,
        ))
    }

    /// An upload of a `size`-byte file that may be resumed: its private
    /// file is kept by path and size, locked while in use (a second client
    /// resuming the same upload starts afresh instead), and its bytes so
    /// far hashed again to continue.
    async fn resumable_upload(&self, path: &VirtualPath, size: u64) -> Result<LocalUpload> {
        let key = blake3::hash(format!("{}\0{path}\0{size}", self.scope).as_bytes()).to_hex();
        let partial_path = format!("{PARTIAL_DIR}/{}", &key[..32]);
        let target = path.clone();
        let private = Arc::clone(&self.private);
        let opened = self
            .blocking({
                let partial_path = partial_path.clone();
                move |root| {
                    let target = check_upload_target(root, &target)?;
                    let file = private.with(|private| {
                        // Interrupted uploads are bounded in age while the
                        // server runs, not only at start.
                        if let Ok(partials) = private.open_dir(PARTIAL_DIR) {
                            prune_partials(&partials, PARTIAL_MAX_AGE);
                        }
                        private.open_with(
                            &partial_path,
                            OpenOptions::new().read(true).write(true).create(true),
                        )
                    })?;
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
            return self.temporary_upload(path).await;
        };
        // The bytes kept are hashed again: what resume needs is on disk,
        // not in any session's memory.
        let mut hasher = Hasher::new();
        let mut file = tokio::fs::File::from_std(file);
        let hashed = async {
            file.seek(io::SeekFrom::Start(0)).await?;
            digest::hash_prefix(&mut file, held, &mut hasher).await
        };
        let held = match hashed.await {
            Ok(()) => held,
            Err(error) => {
                tracing::warn!(%error, "cannot resume an upload; starting afresh");
                hasher = Hasher::new();
                file.set_len(0).await?;
                file.seek(io::SeekFrom::Start(0)).await?;
                0
            }
        };
        let file = file.into_std().await;
        Ok(LocalUpload::new(
            self,
            file,
            partial_path,
            target,
            held,
            hasher,
            true,
        ))
    }
}

#[async_trait::async_trait]
impl Backend for LocalDisk {
    async fn stat(&self, path: &VirtualPath) -> Result<Entry> {
        // A few metadata calls on a local disk take microseconds: done in
        // place, as the handoff to the blocking pool would cost more. But
        // links are resolved one component at a time, each from the root, so
        // the cost grows with the square of the depth (a 2,048-level path
        // takes a third of a second): deep paths go to the blocking pool,
        // never stalling the other sessions' worker.
        if path.components().count() > IN_PLACE_DEPTH {
            let path = path.clone();
            return self
                .blocking(move |root| LocalDisk::stat_now(root, &path))
                .await;
        }
        LocalDisk::stat_now(&self.root, path)
    }

    async fn list(&self, directory: &VirtualPath) -> Result<Listing> {
        let directory = directory.clone();
        let entries = self
            .blocking(move |root| {
                let directory = resolve_links(root, &directory, true)?;
                let entries = root.read_dir(directory.relative())?;
                Ok((entries, directory))
            })
            .await?;
        Ok(Listing::new(Box::new(LocalListing {
            next: Some(Box::new(entries)),
            disk: self.clone(),
        })))
    }

    async fn open(&self, path: &VirtualPath) -> Result<Download> {
        let path = path.clone();
        let (scope, private) = (Arc::clone(&self.scope), Arc::clone(&self.private));
        let opened = self
            .blocking(move |root| {
                let resolved = resolve_links(root, &path, true)?;
                // The name may have changed since the links were resolved: it
                // is opened without blocking (a FIFO would wait for a writer)
                // and without following a link, and what was opened is checked.
                let file = root.open_with(
                    resolved.relative(),
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
                let file = file.into_std();
                let stamp = digests::Stamp::of(&file)?;
                let kept_as = format!("{scope}{resolved}");
                let known = (stamp.size() >= digests::KEPT_FROM)
                    .then(|| digests::lookup(&private, &kept_as, stamp))
                    .flatten();
                Ok((file, stamp, kept_as, known))
            })
            .await?;
        let (file, stamp, kept_as, known) = opened;
        Ok(Download::new(
            stamp.size(),
            Box::new(LocalFile {
                file: Arc::new(file),
                stamp,
                kept_as,
                known,
                private: Arc::clone(&self.private),
                hashing: Arc::clone(&self.hashing),
            }),
        ))
    }

    async fn create_upload(
        &self,
        path: &VirtualPath,
        size: Option<u64>,
        resume: bool,
    ) -> Result<Box<dyn UploadSink>> {
        // Only an upload that may be resumed needs a private file kept by
        // path and size; others (pipelined small files) take a plain
        // temporary one.
        Ok(Box::new(match (size, resume) {
            (Some(size), true) => self.resumable_upload(path, size).await?,
            _ => self.temporary_upload(path).await?,
        }))
    }

    async fn barrier(&self) -> Result<()> {
        if !self.flushes {
            return Ok(());
        }
        self.blocking(|root| Ok(sync_filesystem(root)?)).await
    }

    async fn make_directory(&self, path: &VirtualPath, parents: bool) -> Result<()> {
        let path = path.clone();
        self.blocking(move |root| match parents {
            true => {
                let path = resolve_links(root, &path, true)?;
                root.create_dir_all(path.relative())?;
                match root.metadata(path.relative())?.is_dir() {
                    true => Ok(()),
                    false => Err(StorageError::NotADirectory),
                }
            }
            false => {
                let path = resolve_links(root, &path, false)?;
                Ok(root.create_dir(path.relative())?)
            }
        })
        .await
    }

    async fn remove(&self, path: &VirtualPath, removal: Removal) -> Result<()> {
        let Some(name) = path.name().map(str::to_owned) else {
            return Err(StorageError::RemoveRoot);
        };
        let (path, disk) = (path.clone(), self.clone());
        self.blocking(move |root| {
            let path = resolve_links(root, &path, false)?;
            let parent = root.open_dir(path.parent().relative())?;
            match (parent.symlink_metadata(&name)?.is_dir(), removal) {
                (true, Removal::Entry) => parent.remove_dir(&name)?,
                (true, Removal::Tree) => parent.remove_dir_all(&name)?,
                (false, _) => parent.remove_file(&name)?,
            }
            sync_directory(&parent);
            disk.forget_properties(&path);
            Ok(())
        })
        .await
    }

    async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        to_names_directory: bool,
    ) -> Result<VirtualPath> {
        let Some(name) = from.name().map(str::to_owned) else {
            return Err(StorageError::PermissionDenied);
        };
        let (from, to, disk) = (from.clone(), to.clone(), self.clone());
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
            disk.move_properties(&from, &destination);
            Ok(destination)
        })
        .await
    }

    async fn properties(&self, path: &VirtualPath) -> Result<Option<Vec<u8>>> {
        let (path, disk) = (path.clone(), self.clone());
        self.blocking(move |root| {
            let resolved = resolve_links(root, &path, true)?;
            root.metadata(resolved.relative())?;
            let file = format!("{}/{PROPERTIES_FILE}", disk.properties_node(&resolved));
            match disk.private.get().read(&file) {
                Ok(properties) => Ok(Some(properties)),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(error.into()),
            }
        })
        .await
    }

    /// Written to a temporary name, then renamed over the old file: a
    /// crash leaves the old properties or the new, never half of them.
    async fn set_properties(&self, path: &VirtualPath, properties: Option<Vec<u8>>) -> Result<()> {
        let (path, disk) = (path.clone(), self.clone());
        self.blocking(move |root| {
            let resolved = resolve_links(root, &path, true)?;
            root.metadata(resolved.relative())?;
            let node = disk.properties_node(&resolved);
            let file = format!("{node}/{PROPERTIES_FILE}");
            Ok(disk.private.with(|private| match &properties {
                None => match private.remove_file(&file) {
                    Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
                Some(properties) => {
                    private.create_dir_all(&node)?;
                    let temporary = format!("{node}/{PROPERTIES_FILE}.{}", random_name());
                    private.write(&temporary, properties)?;
                    private.rename(&temporary, private, &file)
                }
            })?)
        })
        .await
    }

    async fn subtree(&self, home: &VirtualPath, create: bool) -> Result<Arc<dyn Backend>> {
        let home = home.clone();
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
        Ok(Arc::new(LocalDisk {
            root: Arc::new(dir),
            private: Arc::clone(&self.private),
            scope: Arc::from(format!("{}{}", self.scope, resolved)),
            hashing: Arc::clone(&self.hashing),
            flushes: self.flushes,
        }))
    }
}

/// A directory being read: the next batch is read on the blocking pool,
/// nothing ahead of the caller.
struct LocalListing {
    /// The directory still being read, and what it is as a virtual path;
    /// `None` once it is done.
    next: Option<Box<(cap_std::fs::ReadDir, VirtualPath)>>,
    disk: LocalDisk,
}

#[async_trait::async_trait]
impl ListingSource for LocalListing {
    async fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        let Some(mut next) = self.next.take() else {
            return Ok(None);
        };
        let (next, batch) = self
            .disk
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
        Ok(match (batch.is_empty(), self.next.is_some()) {
            (true, false) => None,
            // Entries skipped (private, links leading out) may empty a batch.
            _ => Some(batch),
        })
    }
}

/// A regular file opened for download.
struct LocalFile {
    file: Arc<std::fs::File>,
    /// The file as it was opened.
    stamp: digests::Stamp,
    /// Its path from the shared root, under which its digest is kept.
    kept_as: String,
    /// Its digest, when one was kept for it as it is.
    known: Option<Digest>,
    private: Arc<PrivateArea>,
    hashing: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl DownloadSource for LocalFile {
    fn local_file(&self) -> Option<&std::fs::File> {
        Some(&self.file)
    }

    async fn reader(&self, offset: u64) -> Result<Box<dyn AsyncRead + Send + Unpin>> {
        let mut file = tokio::fs::File::from_std(self.file.try_clone()?);
        file.seek(io::SeekFrom::Start(offset)).await?;
        Ok(Box::new(file))
    }

    /// The digest kept for the file, or one computed now on the blocking
    /// pool (one slot per core), and kept for next time if the file did
    /// not change meanwhile.
    fn digest(&self) -> DigestJob {
        if let Some(known) = self.known {
            return DigestJob::ready(known);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let (file, stamp, slots) = (
            Arc::clone(&self.file),
            self.stamp,
            Arc::clone(&self.hashing),
        );
        let (private, kept_as) = (Arc::clone(&self.private), self.kept_as.clone());
        let job = tokio::spawn({
            let cancel = Arc::clone(&cancel);
            async move {
                let _slot = slots.acquire_owned().await;
                tokio::task::spawn_blocking(move || {
                    let digest = digest::hash_file_blocking(&file, stamp.size(), &cancel)?;
                    if digests::Stamp::of(&*file).is_ok_and(|now| now == stamp) {
                        digests::keep(&private, &kept_as, stamp, &digest);
                    }
                    Ok::<_, io::Error>(digest)
                })
                .await
            }
        });
        DigestJob::running(
            async move {
                match job.await {
                    Ok(Ok(Ok(digest))) => Ok(digest),
                    Ok(Ok(Err(error))) => Err(error.into()),
                    _ => Err(StorageError::Io(io::ErrorKind::Other)),
                }
            },
            cancel,
        )
    }
}

/// An upload to a private file. Each chunk is hashed as it is taken, on
/// the session's thread while it is still in that core's cache, and
/// written on the blocking pool, without a copy, while the session
/// receives and hashes the next; the disk is asked to start writing them
/// out as they come ([`super::write_back::EVERY`]), so that the flush at the
/// commit finds little left to do. Bytes written through [`AsyncWrite`]
/// (the classic protocol, the web front), which come a few KiB at a time,
/// are gathered into slices of [`UPLOAD_SLICE`] first: one trip to the pool
/// per slice, not per read of the connection.
struct LocalUpload {
    /// The file, when no write is under way.
    file: Option<std::fs::File>,
    /// The write under way, which gives it back.
    in_flight: Option<tokio::task::JoinHandle<io::Result<std::fs::File>>>,
    /// Bytes taken by [`AsyncWrite::poll_write`] (hashed already), not yet
    /// handed to the pool: at most [`UPLOAD_SLICE`].
    gathered: bytes::BytesMut,
    /// The hash of every byte taken so far, hashed as it is taken.
    hasher: Hasher,
    temporary_path: String,
    target: VirtualPath,
    root: Arc<Dir>,
    private: Arc<PrivateArea>,
    /// Names this backend's tree among the root's (see [`LocalDisk`]).
    scope: Arc<str>,
    held: u64,
    /// Bytes handed to the pool (the gathered ones not counted).
    written: u64,
    /// The digest, once sealed.
    sealed: Option<Digest>,
    /// Whether the commit waits for the disk.
    flushes: bool,
    /// A resumable upload's partial file outlives a failed attempt.
    keep_on_drop: bool,
}

impl LocalUpload {
    fn new(
        disk: &LocalDisk,
        file: std::fs::File,
        temporary_path: String,
        target: VirtualPath,
        held: u64,
        hasher: Hasher,
        keep_on_drop: bool,
    ) -> LocalUpload {
        // A resumed upload's file is positioned after what it holds.
        LocalUpload {
            file: Some(file),
            in_flight: None,
            gathered: bytes::BytesMut::new(),
            hasher,
            temporary_path,
            target,
            root: Arc::clone(&disk.root),
            private: Arc::clone(&disk.private),
            scope: Arc::clone(&disk.scope),
            held,
            written: 0,
            sealed: None,
            flushes: disk.flushes,
            keep_on_drop,
        }
    }

    /// Waits for the write under way, if any; `Ready` with the file once
    /// none is.
    fn poll_file(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(in_flight) = &mut self.in_flight {
            let done = std::task::ready!(Pin::new(in_flight).poll(context));
            self.in_flight = None;
            self.file = Some(done.map_err(io::Error::other)??);
        }
        Poll::Ready(Ok(()))
    }

    /// Hands the gathered bytes to the pool, and waits until every byte
    /// taken is written; `Ready` with the file free.
    fn poll_all_written(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_file(context))?;
        if self.gathered.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let slice = self.gathered.split().freeze();
        self.start_write(slice);
        self.poll_file(context)
    }

    /// [`LocalUpload::poll_all_written`], awaited.
    async fn all_written(&mut self) -> io::Result<()> {
        std::future::poll_fn(|context| self.poll_all_written(context)).await
    }

    /// Starts writing `chunk` on the blocking pool (the file is free).
    fn start_write(&mut self, chunk: bytes::Bytes) {
        let mut file = self.file.take().expect("no write under way");
        let before = self.written;
        self.written += chunk.len() as u64;
        let after = self.written;
        let flushes = self.flushes;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write;
            file.write_all(&chunk)?;
            if flushes && super::write_back::due(before, after) {
                super::write_back::start(&file);
            }
            Ok(file)
        }));
    }

    /// Renames the private file into place (replacing any file or link of
    /// that name); says so in words when the private directory was removed
    /// under the upload.
    fn rename_into_place(&mut self) -> Result<()> {
        let private = self.private.get();
        let placed = match self.exchange_with_existing(&private) {
            true => Ok(()),
            false => private.rename(&self.temporary_path, &self.root, self.target.relative()),
        };
        match placed {
            Ok(()) => {
                // In place: nothing left for the drop to remove.
                self.temporary_path.clear();
                // Its digest is known: kept, so that no download of it needs
                // to read it twice.
                if let (true, Some(file), Some(digest)) =
                    (self.len() >= digests::KEPT_FROM, &self.file, self.sealed)
                    && let Ok(stamp) = digests::Stamp::of(file)
                {
                    let kept_as = format!("{}{}", self.scope, self.target);
                    digests::keep(&self.private, &kept_as, stamp, &digest);
                }
                Ok(())
            }
            Err(error)
                if error.kind() == io::ErrorKind::NotFound && !self.private.is_intact(&private) =>
            {
                let _ = self.private.restore();
                Err(StorageError::PrivateAreaLost)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Puts the file in place of a regular file of the target's name by
    /// exchanging the two names (`renameat2(RENAME_EXCHANGE)`, atomic like
    /// a rename), and removes the file replaced later, on the blocking pool.
    /// A rename over a file frees the old file's pages and blocks inside the
    /// rename, before the upload can be acknowledged (0.2 s for a GiB here),
    /// and on ext4 first writes out the new file's bytes if they are not on
    /// the disk yet (its `auto_da_alloc`: 0.5 s more for a GiB uploaded
    /// with `--no-fsync`); the exchange takes a tenth of a millisecond.
    /// `false` when there is no regular file to replace or the exchange
    /// cannot be done, with nothing in the tree changed (a resumable
    /// upload's file may have moved to a fresh private name): a rename does
    /// it then.
    fn exchange_with_existing(&mut self, private: &Dir) -> bool {
        use rustix::fs::{RenameFlags, renameat_with};
        let Some(name) = self.target.name() else {
            return false;
        };
        let Ok(parent) = self.root.open_dir(self.target.parent().relative()) else {
            return false;
        };
        if !parent
            .symlink_metadata(name)
            .is_ok_and(|found| found.is_file())
        {
            return false;
        }
        let Ok(uploads) = private.open_dir(UPLOAD_DIR) else {
            return false;
        };
        // A resumable upload's file leaves its name first, so that the file
        // replaced never sits where a resuming upload would look for it.
        let in_uploads = self.temporary_path.strip_prefix(&format!("{UPLOAD_DIR}/"));
        let Some(temporary) = in_uploads.map(str::to_owned) else {
            let moved = format!("{}.part", random_name());
            if private
                .rename(&self.temporary_path, &uploads, &moved)
                .is_err()
            {
                return false;
            }
            self.temporary_path = format!("{UPLOAD_DIR}/{moved}");
            self.keep_on_drop = false;
            return self.exchange_with_existing(private);
        };
        let exchange = || renameat_with(&uploads, &temporary, &parent, name, RenameFlags::EXCHANGE);
        if exchange().is_err() {
            return false;
        }
        // The name held a regular file a moment ago; if something else was
        // put there since (a directory, a link), it goes back, and the
        // rename refuses or replaces it as it would have.
        if !uploads
            .symlink_metadata(&temporary)
            .is_ok_and(|found| found.is_file())
        {
            if let Err(error) = exchange() {
                tracing::error!(%error, target = %self.target, "could not give back what an upload's exchange took");
                return true;
            }
            return false;
        }
        let replaced = temporary;
        let remove = move || {
            if let Err(error) = uploads.remove_file(&replaced) {
                tracing::warn!(%error, "could not remove a file an upload replaced");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
        true
    }
}

impl AsyncWrite for LocalUpload {
    /// The classic path and the web front's: the bytes are copied into the
    /// slice being gathered, which goes to the pool once full (while the
    /// next is gathered).
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.gathered.len() >= UPLOAD_SLICE {
            // Full while the write before it was under way: it goes once
            // that one is done, and gathering goes on meanwhile.
            std::task::ready!(this.poll_file(context))?;
            let slice = this.gathered.split().freeze();
            this.start_write(slice);
        }
        if this.gathered.capacity() == 0 {
            this.gathered.reserve(UPLOAD_SLICE);
        }
        let taken = &buffer[..buffer.len().min(UPLOAD_SLICE - this.gathered.len())];
        this.hasher.update(taken);
        this.gathered.extend_from_slice(taken);
        if this.gathered.len() >= UPLOAD_SLICE && this.in_flight.is_none() {
            let slice = this.gathered.split().freeze();
            this.start_write(slice);
        }
        Poll::Ready(Ok(taken.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_all_written(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_all_written(context)
    }
}

#[async_trait::async_trait]
impl UploadSink for LocalUpload {
    fn target(&self) -> &VirtualPath {
        &self.target
    }

    fn held(&self) -> u64 {
        self.held
    }

    fn digest(&self) -> Digest {
        match self.sealed {
            Some(digest) => digest,
            None => self.hasher.finalize().into(),
        }
    }

    fn len(&self) -> u64 {
        self.held + self.written + self.gathered.len() as u64
    }

    fn slice_size(&self) -> usize {
        UPLOAD_SLICE
    }

    async fn write_chunk(&mut self, chunk: bytes::Bytes) -> io::Result<()> {
        // Hashed here, while the write before it is under way, and while
        // it is still in this core's cache.
        self.hasher.update(&chunk);
        // After any bytes gathered before it.
        self.all_written().await?;
        self.start_write(chunk);
        Ok(())
    }

    async fn seal(&mut self) -> Result<Digest> {
        self.all_written().await?;
        let digest = self.hasher.finalize().into();
        self.sealed = Some(digest);
        Ok(digest)
    }

    /// Flushes the data to disk and renames it into place; then flushes the
    /// directory, so that an acknowledged upload survives a crash.
    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.seal().await?;
        // The file (and a resumable upload's lock on it) stays open until
        // it is in place: no second resumer can open and truncate it.
        let target = self.target.clone();
        tokio::task::spawn_blocking(move || {
            let mut upload = self;
            if let (true, Some(file)) = (upload.flushes, &upload.file) {
                file.sync_all()?;
            }
            upload.rename_into_place()?;
            if upload.flushes
                && let Ok(parent) = upload.root.open_dir(target.parent().relative())
            {
                sync_directory(&parent);
            }
            Ok(())
        })
        .await
        .unwrap_or(Err(StorageError::Io(io::ErrorKind::Other)))
    }

    async fn prepare(&mut self) -> Result<()> {
        self.seal().await.map(drop)
    }

    /// A rename is a single metadata call: done in place, like a stat.
    async fn publish(mut self: Box<Self>) -> Result<()> {
        self.rename_into_place()
    }

    fn discard(mut self: Box<Self>) {
        self.keep_on_drop = false;
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if !self.temporary_path.is_empty() && !self.keep_on_drop {
            // A single unlink: cheap enough to do inline.
            let _ = self.private.get().remove_file(&self.temporary_path);
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
