//! The shared tree, behind one interface and one jail.
//!
//! Every client path is first resolved lexically into a [`VirtualPath`]
//! (no `..`, no odd names); a [`Backend`] then holds the tree: the local
//! disk ([`local::LocalDisk`], through a directory capability), or a bucket
//! of S3-compatible object storage ([`s3::S3Bucket`], on OpenDAL), which
//! several servers may share. Its small interface mirrors our operations (stat, list, a
//! download as a size and a reader, an upload as a writer that appears only
//! when committed, mkdir, remove, rename) and knows nothing of the wire or
//! of sessions; the contract every backend keeps is the test suite
//! `tests/it/storage_contract.rs`.
//!
//! [`Storage`] is what the executor holds: a backend (the whole tree, or an
//! account's home as a tree of its own), read-only or not.

pub mod local;
pub mod path;
pub mod s3;
pub mod write_back;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::digest::Digest;
pub use crate::operation::{Entry, EntryKind};
pub use local::LocalDisk;
pub use path::VirtualPath;
pub use s3::S3Bucket;

/// What went wrong with a storage operation. The `Display` text is what a
/// client sees (before the path it named).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// The client sees: "the server's private directory was removed during
    /// the upload; send it again".
    #[error("the server's private directory was removed during the upload; send it again")]
    PrivateAreaLost,
    /// The client sees: "directory too large to move on object storage
    /// (more than 10,000 objects): move what it holds in parts".
    #[error(
        "directory too large to move on object storage (more than 10,000 objects): move what it holds in parts"
    )]
    TooManyToMove,
    /// The client sees: "the object store failed (try again: an upload
    /// resumes)".
    #[error("the object store failed (try again: an upload resumes)")]
    StoreFailed,
    /// The client sees: "i/o error (...)".
    #[error("i/o error ({0})")]
    Io(io::ErrorKind),
}

impl From<io::Error> for StorageError {
    fn from(error: io::Error) -> StorageError {
        use io::ErrorKind as Kind;
        // A writer of a backend's may fail with the storage error itself
        // (an upload sink is an `AsyncWrite`).
        if let Some(storage) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<StorageError>())
        {
            return storage.clone();
        }
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

/// How much [`Storage::remove`] may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A file, a link, or an empty directory (`rm`).
    Entry,
    /// Also a directory with everything below it (`rm -r`).
    Tree,
}

/// A place the shared tree is kept. Paths are virtual and already checked
/// lexically; what they reach is the backend's to confine (links on a disk,
/// the private prefix of a bucket). Each method mirrors one operation.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Describes what `path` names (a link as what it points to).
    async fn stat(&self, path: &VirtualPath) -> Result<Entry>;

    /// Lists a directory a batch at a time, in the order it is read; the
    /// server's private entries never.
    async fn list(&self, directory: &VirtualPath) -> Result<Listing>;

    /// Opens a regular file for reading.
    async fn open(&self, path: &VirtualPath) -> Result<Download>;

    /// Starts an upload to `path`: nothing appears there before it is
    /// committed. With `resume` (and a known `size`), continues what an
    /// interrupted upload of the same path and size left, if anything:
    /// the upload then already holds those bytes and their digest state.
    /// Refuses early what the commit would refuse (a directory in the way,
    /// a missing parent).
    async fn create_upload(
        &self,
        path: &VirtualPath,
        size: Option<u64>,
        resume: bool,
    ) -> Result<Box<dyn UploadSink>>;

    /// Waits until everything published before it survives a crash (a
    /// group commit's barrier; free where every write is durable at once).
    async fn barrier(&self) -> Result<()>;

    /// Makes a directory; with `parents`, its missing parents too (and an
    /// existing directory is fine).
    async fn make_directory(&self, path: &VirtualPath, parents: bool) -> Result<()>;

    /// Removes a file, a link (never its target) or an empty directory; with
    /// [`Removal::Tree`], a directory with everything below it.
    async fn remove(&self, path: &VirtualPath, removal: Removal) -> Result<()>;

    /// Moves `from` into `to` when `to` is an existing directory, otherwise
    /// renames it to `to`; never replaces an entry. With
    /// `to_names_directory` (a trailing `/`), `to` must be a directory.
    /// Returns where the entry now is.
    async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        to_names_directory: bool,
    ) -> Result<VirtualPath>;

    /// The directory `home` as a tree of its own, the jail closing around
    /// it: an account's view. Made (with its parents) if missing and
    /// `create`.
    async fn subtree(&self, home: &VirtualPath, create: bool) -> Result<Arc<dyn Backend>>;

    /// The dead properties of what `path` names (WebDAV's PROPPATCH), as
    /// the opaque bytes last given to [`Backend::set_properties`]; `None`
    /// when it has none. They live in the private area, and `rename` and
    /// `remove` move and remove them with their entry (on object storage,
    /// a prefix of the private area mirroring the tree). The default keeps
    /// none.
    async fn properties(&self, path: &VirtualPath) -> Result<Option<Vec<u8>>> {
        self.stat(path).await?;
        Ok(None)
    }

    /// Replaces the dead properties of what `path` names (`None` removes
    /// them). The default keeps none, and refuses
    /// ([`StorageError::PermissionDenied`]).
    async fn set_properties(&self, path: &VirtualPath, properties: Option<Vec<u8>>) -> Result<()> {
        let _ = (path, properties);
        Err(StorageError::PermissionDenied)
    }
}

/// An upload in progress, as a backend keeps it: a writer that hashes what
/// it takes, and knows what it held already when resumed.
#[async_trait::async_trait]
pub trait UploadSink: AsyncWrite + Send + Unpin {
    /// Where it goes once committed.
    fn target(&self) -> &VirtualPath;

    /// Bytes it held before this attempt's first write (resumed).
    fn held(&self) -> u64;

    /// The digest of everything it holds, held bytes included, once
    /// [`UploadSink::seal`]ed.
    fn digest(&self) -> Digest;

    /// Takes the next bytes as an owned chunk (a backend can keep it without
    /// a copy).
    async fn write_chunk(&mut self, chunk: bytes::Bytes) -> io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, &chunk).await
    }

    /// The largest chunk it wants from [`UploadSink::write_chunk`]: the
    /// connection reads an upload's data in slices of at most this much.
    fn slice_size(&self) -> usize {
        crate::connection::DATA_CHUNK
    }

    /// Waits until everything written is in the backend's hands; the
    /// digest of all it holds.
    async fn seal(&mut self) -> Result<Digest> {
        tokio::io::AsyncWriteExt::flush(self).await?;
        Ok(self.digest())
    }

    /// Bytes it holds in all.
    fn len(&self) -> u64;

    /// Whether it holds nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Commits it alone: durable, then visible under its name, replacing
    /// any file there.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// The first half of a group commit: everything written is handed to
    /// the backend (the group's barrier then makes it durable).
    async fn prepare(&mut self) -> Result<()>;

    /// The second half: visible under its name, after the barrier.
    async fn publish(self: Box<Self>) -> Result<()>;

    /// Abandons it and its bytes, even those a resume would have kept.
    fn discard(self: Box<Self>);
}

/// An upload in progress: write to it, then [`Storage::commit`] (or
/// [`Storage::commit_group`]). Dropped without a commit it leaves nothing
/// visible (a resumable one keeps its bytes privately for a later resume).
pub struct Upload(Box<dyn UploadSink>);

impl Upload {
    /// Where it goes once committed.
    pub fn target(&self) -> &VirtualPath {
        self.0.target()
    }

    /// Bytes held before this attempt (from an interrupted upload).
    pub fn held(&self) -> u64 {
        self.0.held()
    }

    /// Bytes held in all.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether it holds nothing yet.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes the next bytes as an owned chunk (without a copy where the
    /// backend can keep it).
    pub async fn write_chunk(&mut self, chunk: bytes::Bytes) -> io::Result<()> {
        self.0.write_chunk(chunk).await
    }

    /// The largest chunk it wants at a time (see [`UploadSink::slice_size`]).
    pub fn slice_size(&self) -> usize {
        self.0.slice_size()
    }

    /// Waits until everything written is in storage's hands; the digest of
    /// everything held.
    pub async fn seal(&mut self) -> Result<Digest> {
        self.0.seal().await
    }

    /// Abandons it, even a resumable one's kept bytes (e.g. when its digest
    /// did not match).
    pub fn discard(self) {
        self.0.discard();
    }
}

impl AsyncWrite for Upload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(context)
    }
}

/// A file opened for download: its size when opened, its bytes from any
/// offset, and its digest, computed beside the sending.
pub struct Download {
    /// The file's size.
    pub size: u64,
    source: Box<dyn DownloadSource>,
}

/// What a backend gives for a [`Download`].
#[async_trait::async_trait]
pub trait DownloadSource: Send + Sync {
    /// The local file behind it, when there is one: it may then be sent
    /// straight from the page cache (`sendfile`).
    fn local_file(&self) -> Option<&std::fs::File>;

    /// Its bytes from `offset` on.
    async fn reader(&self, offset: u64) -> Result<Box<dyn AsyncRead + Send + Unpin>>;

    /// Starts computing the digest of the whole file, to run beside the
    /// sending.
    fn digest(&self) -> DigestJob;
}

impl Download {
    /// A download of a `size`-byte file from `source`.
    pub fn new(size: u64, source: Box<dyn DownloadSource>) -> Download {
        Download { size, source }
    }

    /// The local file behind it, for `sendfile`.
    pub fn local_file(&self) -> Option<&std::fs::File> {
        self.source.local_file()
    }

    /// Its bytes from `offset` on.
    pub async fn reader(&self, offset: u64) -> Result<Box<dyn AsyncRead + Send + Unpin>> {
        self.source.reader(offset).await
    }

    /// Starts computing the digest of the whole file; it runs while the
    /// caller sends, and stops if the job is dropped.
    pub fn digest(&self) -> DigestJob {
        self.source.digest()
    }
}

/// A digest being computed (or known already). Dropping it abandons the
/// work rather than leaving it to read the rest of a large file.
pub struct DigestJob {
    result: Pin<Box<dyn Future<Output = Result<Digest>> + Send>>,
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl DigestJob {
    /// A digest already known.
    pub fn ready(digest: Digest) -> DigestJob {
        DigestJob {
            result: Box::pin(std::future::ready(Ok(digest))),
            cancel: None,
        }
    }

    /// Work already started, that gives up once `cancel` is set.
    pub fn running(
        result: impl Future<Output = Result<Digest>> + Send + 'static,
        cancel: Arc<std::sync::atomic::AtomicBool>,
    ) -> DigestJob {
        DigestJob {
            result: Box::pin(result),
            cancel: Some(cancel),
        }
    }
}

impl Future for DigestJob {
    type Output = Result<Digest>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<Digest>> {
        self.result.as_mut().poll(context)
    }
}

impl Drop for DigestJob {
    fn drop(&mut self) {
        if let Some(cancel) = &self.cancel {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A directory being listed, a batch at a time: nothing is read ahead of
/// the caller, so one that waits (for a client to read) holds a batch at
/// most, whatever the directory holds.
pub struct Listing(Box<dyn ListingSource>);

/// What a backend gives for a [`Listing`].
#[async_trait::async_trait]
pub trait ListingSource: Send {
    /// The next entries, or `None` when there are no more.
    async fn next_batch(&mut self) -> Result<Option<Vec<Entry>>>;
}

impl Listing {
    /// A listing read from `source`.
    pub fn new(source: Box<dyn ListingSource>) -> Listing {
        Listing(source)
    }

    /// The next entries, or `None` when there are no more. A batch is never
    /// empty.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        loop {
            match self.0.next_batch().await? {
                Some(batch) if batch.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }
}

/// The shared tree, or an account's part of it, as one client may use it:
/// a backend, and whether changes are refused. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
    read_only: bool,
}

impl Storage {
    /// A storage on `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Storage {
        Storage {
            backend,
            read_only: false,
        }
    }

    /// The directory `root` on the local disk (see [`LocalDisk::open`]).
    pub fn open(root: &std::path::Path) -> io::Result<Storage> {
        Ok(Storage::new(Arc::new(LocalDisk::open(root)?)))
    }

    /// The same tree, with every change refused ([`StorageError::ReadOnly`]).
    pub fn read_only(&self) -> Storage {
        Storage {
            read_only: true,
            ..self.clone()
        }
    }

    /// Whether changes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The directory `home` of this tree as a tree of its own (made if
    /// missing, unless read-only), as read-only as this one.
    pub async fn subtree(&self, home: &VirtualPath) -> Result<Storage> {
        Ok(Storage {
            backend: self.backend.subtree(home, !self.read_only).await?,
            read_only: self.read_only,
        })
    }

    fn check_writable(&self) -> Result<()> {
        match self.read_only {
            true => Err(StorageError::ReadOnly),
            false => Ok(()),
        }
    }

    /// Describes what `path` names.
    pub async fn stat(&self, path: &VirtualPath) -> Result<Entry> {
        self.backend.stat(path).await
    }

    /// Checks that `path` is a directory one can change into.
    pub async fn check_directory(&self, path: &VirtualPath) -> Result<()> {
        match self.stat(path).await?.kind {
            EntryKind::Directory => Ok(()),
            EntryKind::File => Err(StorageError::NotADirectory),
        }
    }

    /// Lists a directory, a batch at a time.
    pub async fn list(&self, directory: &VirtualPath) -> Result<Listing> {
        self.backend.list(directory).await
    }

    /// Every entry of a directory at once, for the few that need them all
    /// (the classic welcome is one sorted message).
    pub async fn list_all(&self, directory: &VirtualPath) -> Result<Vec<Entry>> {
        let mut listing = self.list(directory).await?;
        let mut entries = Vec::new();
        while let Some(batch) = listing.next_batch().await? {
            entries.extend(batch);
        }
        Ok(entries)
    }

    /// Opens a regular file for download.
    pub async fn open_file(&self, path: &VirtualPath) -> Result<Download> {
        self.backend.open(path).await
    }

    /// Starts an upload (see [`Backend::create_upload`]).
    pub async fn create_upload(
        &self,
        path: &VirtualPath,
        size: Option<u64>,
        resume: bool,
    ) -> Result<Upload> {
        self.check_writable()?;
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        Ok(Upload(
            self.backend.create_upload(path, size, resume).await?,
        ))
    }

    /// Commits one upload: when it returns, the file survives a crash.
    pub async fn commit(&self, upload: Upload) -> Result<()> {
        upload.0.commit().await
    }

    /// Puts finished uploads in place as one group, with one barrier before
    /// they appear and one after instead of two flushes per file (a group
    /// commit, as databases do). When it returns, each that succeeded
    /// survives a crash. One result per upload, in order.
    pub async fn commit_group(&self, uploads: Vec<Upload>) -> Vec<Result<()>> {
        let mut prepared = Vec::with_capacity(uploads.len());
        for mut upload in uploads {
            let ready = upload.0.prepare().await;
            prepared.push((upload, ready));
        }
        let barrier = self.backend.barrier().await;
        let mut results = Vec::with_capacity(prepared.len());
        for (upload, ready) in prepared {
            results.push(match (ready, &barrier) {
                (Err(error), _) => Err(error),
                (Ok(()), Err(error)) => Err(error.clone()),
                (Ok(()), Ok(())) => upload.0.publish().await,
            });
        }
        if let Err(error) = self.backend.barrier().await {
            tracing::warn!(%error, "could not flush a group of uploads");
        }
        results
    }

    /// Makes a directory; with `parents`, its missing parents too.
    pub async fn make_directory(&self, path: &VirtualPath, parents: bool) -> Result<()> {
        self.check_writable()?;
        if path.is_root() && !parents {
            return Err(StorageError::AlreadyExists);
        }
        self.backend.make_directory(path, parents).await
    }

    /// Removes an entry (see [`Backend::remove`]); never the root.
    pub async fn remove(&self, path: &VirtualPath, removal: Removal) -> Result<()> {
        self.check_writable()?;
        if path.is_root() {
            return Err(StorageError::RemoveRoot);
        }
        self.backend.remove(path, removal).await
    }

    /// The dead properties of an entry (see [`Backend::properties`]).
    pub async fn properties(&self, path: &VirtualPath) -> Result<Option<Vec<u8>>> {
        self.backend.properties(path).await
    }

    /// Replaces the dead properties of an entry (see
    /// [`Backend::set_properties`]).
    pub async fn set_properties(
        &self,
        path: &VirtualPath,
        properties: Option<Vec<u8>>,
    ) -> Result<()> {
        self.check_writable()?;
        self.backend.set_properties(path, properties).await
    }

    /// Moves or renames an entry (see [`Backend::rename`]); never the root.
    pub async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        to_names_directory: bool,
    ) -> Result<VirtualPath> {
        self.check_writable()?;
        if from.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        self.backend.rename(from, to, to_names_directory).await
    }
}
