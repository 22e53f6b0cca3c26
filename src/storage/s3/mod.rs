//! The shared tree in an S3-compatible bucket, on Apache OpenDAL, so that
//! several servers on several machines serve one tree, any of them can be
//! lost, and the store replicates the bytes.
//!
//! A file `docs/a.txt` is the object `PREFIX/docs/a.txt`, its bytes as they
//! are, so that any S3 tool reads and writes the same tree; a directory is
//! a prefix, with a zero-byte marker object `PREFIX/docs/` for an empty one
//! (and for a directory whose last entry was removed, which stays, as on
//! disk). The server's private area is the prefix `PREFIX/.miniftp/`, which
//! no path reaches and no listing shows.
//!
//! Uploads ([`upload`]) appear whole or not at all: a small one is one PUT
//! once verified; a larger one is a multipart upload completed only after
//! its last byte and its digest check, its state (upload id, parts, each
//! part's BLAKE3 chaining value) kept in a small private object so that any
//! server sharing the bucket can resume it. Downloads ([`download`]) stream
//! ranged reads and send the digest stored at upload. Listings
//! ([`listing`]) are paged by the store, a batch at a time. Stale uploads
//! are found and aborted by [`upkeep`], at start and while serving.
//!
//! Dead properties (WebDAV's PROPPATCH) are private objects under
//! `PREFIX/.miniftp/properties/`, their keys mirroring the tree, moved and
//! removed with their entry.
//!
//! What differs from a disk, for users: `mv` is a copy then a delete (not
//! atomic across objects; a directory of more than [`MAX_MOVED_OBJECTS`]
//! objects is refused); a name that is both a file and a prefix (made by
//! another tool) is shown as the file; two uploads to one name at once
//! resolve as the last to complete (never a mix).

pub mod download;
pub mod listing;
pub mod multipart;
pub mod state;
pub mod turns;
pub mod upkeep;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use opendal::Operator;
use tokio::sync::Semaphore;

use super::{
    Backend, Download, Entry, EntryKind, Listing, Removal, Result, StorageError, UploadSink,
    VirtualPath, path,
};
use multipart::Multipart;

/// The most objects `mv` of a directory copies: past it the move is
/// refused before anything is copied (each object is a copy and a delete,
/// and a client waits for the whole move in one request).
pub const MAX_MOVED_OBJECTS: usize = 10_000;

/// How often a request that failed for a moment (503, a reset) is tried
/// again, 50 ms apart then doubling, before the failure counts.
pub const RETRIES: usize = 4;

/// Copies (and deletes) of one directory move in flight at once.
const MOVES_IN_FLIGHT: usize = 16;

/// Where in the bucket the tree is, and how the store is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// The key prefix of the tree in it, without slashes at its ends
    /// (empty for the whole bucket).
    pub prefix: String,
    /// The store's URL (`https://s3.eu-west-1.amazonaws.com`,
    /// `http://127.0.0.1:3900`).
    pub endpoint: String,
    /// The region the store expects in signatures (Garage's is `garage`
    /// unless configured otherwise).
    pub region: String,
    /// Whether the server only reads: nothing is written at start (no
    /// heartbeat, no cleanup).
    pub read_only: bool,
    /// A key given by the program (tests); `None` takes the usual
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, or the credentials
    /// file. The command line never gives one.
    pub credentials: Option<Credentials>,
}

/// An access key and its secret; the secret is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Parses `s3://BUCKET[/PREFIX]` into the bucket and prefix.
    pub fn parse_location(location: &str) -> std::result::Result<(String, String), String> {
        let rest = location
            .strip_prefix("s3://")
            .ok_or_else(|| format!("'{location}' is not s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "'{location}' names no bucket (s3://BUCKET[/PREFIX])"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == "." || part == "..")
            || prefix.contains("//")
            || prefix.bytes().any(|byte| byte < 0x20 || byte == 0x7f)
        {
            return Err(format!("'{location}': the prefix is not a plain path"));
        }
        Ok((bucket.to_owned(), prefix.to_owned()))
    }
}

/// Why a bucket cannot be served: one line, naming what to check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpenError(pub String);

/// What every tree of one bucket shares: the clients, the private area,
/// this server's identity, and the upkeep that stops with it.
struct Shared {
    operator: Operator,
    /// The same, for reads of small objects: each on a connection of its
    /// own, which the store closes (see [`small_read_client`]).
    small_reads: Operator,
    multipart: Multipart,
    /// The private prefix: `PREFIX/.miniftp/`.
    private: String,
    /// This server's name among those sharing the bucket.
    instance: upkeep::Registration,
    /// Slots for digests computed by reading an object again (objects put
    /// by other tools), one per core.
    hashing: Semaphore,
    /// Stops the heartbeat and the sweeps when the last tree is dropped.
    _upkeep: tokio_util::sync::DropGuard,
}

/// The shared tree in a bucket (or an account's home in it).
#[derive(Clone)]
pub struct S3Bucket {
    shared: Arc<Shared>,
    /// The key prefix of this tree: `PREFIX/`, with a home's path after it.
    base: Arc<str>,
    /// Names this tree among the bucket's subtrees (empty for the root), so
    /// that resumable uploads of two homes never meet.
    scope: Arc<str>,
}

impl S3Bucket {
    /// Opens the bucket: checks at once that the endpoint answers, the
    /// bucket exists, and the region and key are right (reading, and
    /// writing unless read-only), aborts the uploads that servers which
    /// are gone left, and starts this server's heartbeat.
    pub async fn open(settings: &S3Settings) -> std::result::Result<S3Bucket, OpenError> {
        let http =
            http_client().map_err(|error| OpenError(format!("cannot start HTTP: {error}")))?;
        let mut builder = opendal::services::S3::default()
            .bucket(&settings.bucket)
            .endpoint(&settings.endpoint)
            .region(&settings.region)
            .root("/")
            .disable_ec2_metadata();
        if let Some(credentials) = &settings.credentials {
            builder = builder
                .access_key_id(&credentials.access_key_id)
                .secret_access_key(&credentials.secret_access_key);
        }
        // Temporary failures (a 503 from a busy store, a connection reset)
        // are retried a few times, quickly, before a client hears of them.
        // (The check at start is not retried: a wrong setting is said at
        // once.)
        let unretried = Operator::new(builder)
            .map_err(|error| OpenError(format!("cannot use the bucket: {error}")))?;
        let operator = unretried.clone().layer(
            opendal::layers::RetryLayer::new()
                .with_max_times(RETRIES)
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_jitter()
                .with_notify(|event: opendal::layers::RetryEvent<'_>| {
                    tracing::debug!(
                        operation = %event.op,
                        attempt = event.attempt,
                        error = %event.err.kind(),
                        "retrying a request to the object store"
                    );
                }),
        );
        let turns = Arc::new(turns::Turns::default());
        let on = |client: reqwest::Client| {
            opendal::OperationContext::new().with_http_transport(opendal::HttpTransporter::new(
                turns::TurnTaking {
                    inner: opendal_http_transport_reqwest::ReqwestTransport::new(client),
                    turns: Arc::clone(&turns),
                },
            ))
        };
        let small_reads = match settings.endpoint.starts_with("http://") {
            true => operator.clone().with_context(on(small_read_client()
                .map_err(|error| OpenError(format!("cannot start HTTP: {error}")))?)),
            false => operator.clone().with_context(on(http.clone())),
        };
        let operator = operator.with_context(on(http.clone()));
        let unretried = unretried.with_context(on(http.clone()));
        // Parts go on connections of their own, closed by the store, on a
        // plain-HTTP store: a kept-alive connection that the store closes
        // as a part starts resets it (1 in 1,000 uploads at once on
        // Garage), and a part's streamed body cannot be sent again. A
        // connection costs nothing beside 8 MiB.
        let parts_http = match settings.endpoint.starts_with("http://") {
            true => small_read_client()
                .map_err(|error| OpenError(format!("cannot start HTTP: {error}")))?,
            false => http.clone(),
        };
        let multipart = Multipart::new(
            http,
            parts_http,
            &settings.endpoint,
            &settings.bucket,
            &settings.region,
            settings.credentials.as_ref(),
            turns,
        );
        let base = match settings.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        let private = format!("{base}{}/", path::PRIVATE_DIR);
        let cancel = tokio_util::sync::CancellationToken::new();
        let shared = Arc::new(Shared {
            operator,
            small_reads,
            multipart,
            private,
            instance: upkeep::Registration::new(),
            hashing: Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)),
            _upkeep: cancel.clone().drop_guard(),
        });
        let bucket = S3Bucket {
            shared,
            base: Arc::from(base),
            scope: Arc::from(""),
        };
        bucket.check_access(&unretried, settings).await?;
        if !settings.read_only {
            upkeep::start(&bucket, cancel).await.map_err(|error| {
                OpenError(format!(
                    "{}: cannot write the server's private objects: {error}",
                    settings.describe()
                ))
            })?;
        }
        Ok(bucket)
    }

    /// One listing of the tree's prefix: what a wrong endpoint, bucket,
    /// region or key fails at once, said in words.
    async fn check_access(
        &self,
        operator: &Operator,
        settings: &S3Settings,
    ) -> std::result::Result<(), OpenError> {
        let listed = operator.list_with(&self.base).limit(1).await;
        match listed {
            Ok(_) => Ok(()),
            Err(error) => Err(OpenError(describe_open_error(settings, &error))),
        }
    }

    /// The key of a file at `path`.
    fn key(&self, path: &VirtualPath) -> String {
        let mut key = String::from(&*self.base);
        for (index, component) in path.components().enumerate() {
            if index > 0 {
                key.push('/');
            }
            key.push_str(component);
        }
        key
    }

    /// The prefix of a directory at `path` (its marker's key): `base` for
    /// the root.
    fn prefix(&self, path: &VirtualPath) -> String {
        match path.is_root() {
            true => self.base.to_string(),
            false => format!("{}/", self.key(path)),
        }
    }

    fn operator(&self) -> &Operator {
        &self.shared.operator
    }

    /// Whether something is below `prefix` (a directory's marker or any
    /// entry).
    async fn has_prefix(&self, prefix: &str) -> Result<bool> {
        let mut lister = self
            .operator()
            .lister_with(prefix)
            .limit(1)
            .await
            .map_err(storage_error)?;
        Ok(lister.try_next().await.map_err(storage_error)?.is_some())
    }

    /// Whether the directory at `prefix` holds entries (its marker aside).
    async fn has_children(&self, prefix: &str) -> Result<bool> {
        let mut lister = self
            .operator()
            .lister_with(prefix)
            .limit(2)
            .await
            .map_err(storage_error)?;
        while let Some(entry) = lister.try_next().await.map_err(storage_error)? {
            if entry.path() != prefix {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What is at `path`: the object's metadata if it is a file, or else
    /// whether it is a directory.
    async fn look(&self, path: &VirtualPath) -> Result<Found> {
        if path.is_root() {
            return Ok(Found::Directory(None));
        }
        match self.operator().stat(&self.key(path)).await {
            Ok(metadata) if !metadata.is_dir() => return Ok(Found::File(metadata)),
            Ok(_) => {}
            Err(error) if error.kind() == opendal::ErrorKind::NotFound => {}
            Err(error) => return Err(storage_error(error)),
        }
        let prefix = self.prefix(path);
        let mut lister = self
            .operator()
            .lister_with(&prefix)
            .limit(1)
            .await
            .map_err(storage_error)?;
        match lister.try_next().await.map_err(storage_error)? {
            Some(entry) => Ok(Found::Directory(
                (entry.path() == prefix)
                    .then(|| entry.metadata().last_modified())
                    .flatten()
                    .map(Into::into),
            )),
            None => Ok(Found::Nothing),
        }
    }

    /// Checks that `path` is a directory (one can list, make or upload in):
    /// its prefix first, as what is checked so is mostly a directory (one
    /// request), then what else it is.
    async fn check_directory(&self, path: &VirtualPath) -> Result<()> {
        if path.is_root() || self.has_prefix(&self.prefix(path)).await? {
            return Ok(());
        }
        match self.look(path).await? {
            Found::Directory(_) => Ok(()),
            Found::File(_) => Err(StorageError::NotADirectory),
            Found::Nothing => Err(StorageError::NotFound),
        }
    }

    /// Writes the marker of the directory at `path` (not the root).
    async fn write_marker(&self, path: &VirtualPath) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        self.operator()
            .create_dir(&self.prefix(path))
            .await
            .map_err(storage_error)
    }

    /// Keeps the directory `path` after its last entry went (a marker), as
    /// a directory stays on disk.
    async fn keep_directory(&self, path: &VirtualPath) -> Result<()> {
        self.write_marker(path).await
    }

    /// Deletes one object and, for a file uploaded in parts, its private
    /// digest record.
    async fn delete_file(&self, key: &str, metadata: &opendal::Metadata) -> Result<()> {
        self.operator().delete(key).await.map_err(storage_error)?;
        if let Some(token) = download::digest_token(metadata) {
            let _ = self.operator().delete(&self.digest_key(token)).await;
        }
        Ok(())
    }

    /// The key of the digest record of a file uploaded in parts.
    fn digest_key(&self, token: &str) -> String {
        format!("{}digests/{token}", self.shared.private)
    }

    /// The key of the dead properties of `path`: a private object whose
    /// key mirrors the tree (`.miniftp/properties/docs/a.txt`), so that an
    /// entry's and its descendants' are the key and the prefix below it.
    fn properties_key(&self, path: &VirtualPath) -> String {
        let path = match path.is_root() {
            true => String::new(),
            false => path.to_string(),
        };
        format!("{}properties{}{path}", self.shared.private, self.scope)
    }

    /// Removes the dead properties of `path` and of everything below it.
    async fn forget_properties(&self, path: &VirtualPath) {
        let key = self.properties_key(path);
        let below = format!("{key}/");
        let (own, below) = tokio::join!(
            self.operator().delete(&key),
            self.operator().delete_with(&below).recursive(true)
        );
        if let Err(error) = own.and(below) {
            tracing::warn!(%error, %path, "could not remove dead properties");
        }
    }

    /// Moves the dead properties of `from` and of everything below it to
    /// `to`, replacing any left there.
    async fn move_properties(&self, from: &VirtualPath, to: &VirtualPath) {
        self.forget_properties(to).await;
        let (from_key, to_key) = (self.properties_key(from), self.properties_key(to));
        let moved = async {
            let mut keys = Vec::new();
            match self.operator().stat(&from_key).await {
                Ok(_) => keys.push(from_key.clone()),
                Err(error) if error.kind() == opendal::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            let mut below = self
                .operator()
                .lister_with(&format!("{from_key}/"))
                .recursive(true)
                .await?;
            while let Some(entry) = below.try_next().await? {
                if !entry.path().ends_with('/') {
                    keys.push(entry.path().to_owned());
                }
            }
            for key in keys {
                let destination = format!("{to_key}{}", &key[from_key.len()..]);
                self.operator().copy(&key, &destination).await?;
                self.operator().delete(&key).await?;
            }
            Ok(())
        };
        if let Err(error) = moved.await {
            tracing::warn!(%error, %from, %to, "could not move dead properties");
        }
    }

    /// Moves one object: a copy, then the delete.
    async fn move_object(&self, from: &str, to: &str) -> Result<()> {
        self.operator()
            .copy(from, to)
            .await
            .map_err(storage_error)?;
        self.operator().delete(from).await.map_err(storage_error)
    }

    /// Moves a directory object by object: every object is copied first,
    /// then the sources deleted, so that each is always in one place or
    /// both.
    async fn move_directory(&self, from: &str, to: &str) -> Result<()> {
        let mut keys = Vec::new();
        let mut lister = self
            .operator()
            .lister_with(from)
            .recursive(true)
            .await
            .map_err(storage_error)?;
        while let Some(entry) = lister.try_next().await.map_err(storage_error)? {
            keys.push(entry.path().to_owned());
            if keys.len() > MAX_MOVED_OBJECTS {
                return Err(StorageError::TooManyToMove);
            }
        }
        if !keys.iter().any(|key| key == from) {
            // The directory's own marker, so that it exists at once, empty
            // or not, and stays if its copies are slow.
            keys.push(from.to_owned());
            self.operator()
                .create_dir(from)
                .await
                .map_err(storage_error)?;
        }
        let total = keys.len();
        let mut copied = 0usize;
        let copies = futures::stream::iter(keys.into_iter().map(|key| {
            let destination = format!("{to}{}", &key[from.len()..]);
            let operator = self.operator().clone();
            async move {
                match key.ends_with('/') {
                    true => operator.create_dir(&destination).await,
                    false => operator.copy(&key, &destination).await.map(drop),
                }
            }
        }))
        .buffer_unordered(MOVES_IN_FLIGHT);
        futures::pin_mut!(copies);
        while let Some(copy) = futures::StreamExt::next(&mut copies).await {
            copy.map_err(storage_error)?;
            copied += 1;
            if copied.is_multiple_of(1000) {
                tracing::info!(copied, total, from, "moving a directory");
            }
        }
        self.operator()
            .delete_with(from)
            .recursive(true)
            .await
            .map_err(storage_error)
    }
}

use futures::StreamExt as _;

/// What a path names in the bucket.
enum Found {
    File(opendal::Metadata),
    /// A directory, and when its marker was written, if it has one.
    Directory(Option<std::time::SystemTime>),
    Nothing,
}

#[async_trait::async_trait]
impl Backend for S3Bucket {
    async fn stat(&self, path: &VirtualPath) -> Result<Entry> {
        let name = path.name().unwrap_or("/").to_owned();
        match self.look(path).await? {
            Found::File(metadata) => Ok(Entry {
                name,
                kind: EntryKind::File,
                size: metadata.content_length(),
                modified: metadata.last_modified().map(Into::into),
            }),
            Found::Directory(modified) => Ok(Entry {
                name,
                kind: EntryKind::Directory,
                size: 0,
                modified,
            }),
            Found::Nothing => Err(StorageError::NotFound),
        }
    }

    async fn list(&self, directory: &VirtualPath) -> Result<Listing> {
        self.check_directory(directory).await?;
        listing::open(self, directory).await
    }

    async fn open(&self, path: &VirtualPath) -> Result<Download> {
        match self.look(path).await? {
            Found::File(metadata) => Ok(download::open(self, self.key(path), metadata)),
            Found::Directory(_) => Err(StorageError::IsADirectory),
            Found::Nothing => Err(StorageError::NotFound),
        }
    }

    async fn create_upload(
        &self,
        path: &VirtualPath,
        size: Option<u64>,
        resume: bool,
    ) -> Result<Box<dyn UploadSink>> {
        // What the commit would refuse, refused now: a missing parent, a
        // file as parent, a directory in the way.
        let parent = path.parent();
        let prefix = self.prefix(path);
        let (parent_ok, in_the_way) = tokio::join!(
            async {
                match parent.is_root() {
                    true => Ok(()),
                    false => self.check_directory(&parent).await,
                }
            },
            self.has_prefix(&prefix),
        );
        parent_ok?;
        if in_the_way? {
            return Err(StorageError::IsADirectory);
        }
        Ok(Box::new(
            upload::S3Upload::start(self, path.clone(), self.key(path), size, resume).await?,
        ))
    }

    /// Every answered write is durable in the store already.
    async fn barrier(&self) -> Result<()> {
        Ok(())
    }

    async fn make_directory(&self, path: &VirtualPath, parents: bool) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        match self.look(path).await? {
            Found::Directory(_) if parents => return Ok(()),
            Found::Directory(_) => return Err(StorageError::AlreadyExists),
            Found::File(_) if parents => return Err(StorageError::NotADirectory),
            Found::File(_) => return Err(StorageError::AlreadyExists),
            Found::Nothing => {}
        }
        let parent = path.parent();
        match parents {
            // No ancestor may be a file; the missing ones exist as the
            // leaf's prefix.
            true => {
                let mut ancestor = parent;
                while !ancestor.is_root() {
                    match self.look(&ancestor).await? {
                        Found::File(_) => return Err(StorageError::NotADirectory),
                        Found::Directory(_) => break,
                        Found::Nothing => ancestor = ancestor.parent(),
                    }
                }
            }
            false => self.check_directory(&parent).await?,
        }
        self.write_marker(path).await
    }

    async fn remove(&self, path: &VirtualPath, removal: Removal) -> Result<()> {
        if path.is_root() {
            return Err(StorageError::RemoveRoot);
        }
        match self.look(path).await? {
            Found::File(metadata) => self.delete_file(&self.key(path), &metadata).await?,
            Found::Directory(_) => {
                let prefix = self.prefix(path);
                if removal == Removal::Entry && self.has_children(&prefix).await? {
                    return Err(StorageError::NotEmpty);
                }
                self.operator()
                    .delete_with(&prefix)
                    .recursive(true)
                    .await
                    .map_err(storage_error)?;
            }
            Found::Nothing => return Err(StorageError::NotFound),
        }
        self.forget_properties(path).await;
        self.keep_directory(&path.parent()).await
    }

    async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        to_names_directory: bool,
    ) -> Result<VirtualPath> {
        let Some(name) = from.name() else {
            return Err(StorageError::PermissionDenied);
        };
        let (source, target) = tokio::join!(self.look(from), self.look(to));
        let source = source?;
        let destination = match target? {
            Found::Directory(_) => to.child(name),
            Found::File(_) if to_names_directory => return Err(StorageError::NotADirectory),
            Found::File(_) => return Err(StorageError::AlreadyExists),
            Found::Nothing if to_names_directory => return Err(StorageError::NotADirectory),
            Found::Nothing => to.clone(),
        };
        let is_directory = match &source {
            Found::Nothing => return Err(StorageError::NotFound),
            Found::Directory(_) => true,
            Found::File(_) => false,
        };
        if is_directory && destination.starts_with(from) {
            return Err(StorageError::IntoItself);
        }
        if destination.is_root() {
            return Err(StorageError::AlreadyExists);
        }
        if destination != *to {
            // Moving into a directory: never over what is there.
            if !matches!(self.look(&destination).await?, Found::Nothing) {
                return Err(StorageError::AlreadyExists);
            }
        } else {
            self.check_directory(&destination.parent()).await?;
        }
        match is_directory {
            true => {
                self.move_directory(&self.prefix(from), &self.prefix(&destination))
                    .await?
            }
            false => {
                self.move_object(&self.key(from), &self.key(&destination))
                    .await?
            }
        }
        self.move_properties(from, &destination).await;
        self.keep_directory(&from.parent()).await?;
        Ok(destination)
    }

    async fn properties(&self, path: &VirtualPath) -> Result<Option<Vec<u8>>> {
        if matches!(self.look(path).await?, Found::Nothing) {
            return Err(StorageError::NotFound);
        }
        match self
            .shared
            .small_reads
            .read(&self.properties_key(path))
            .await
        {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(error) if error.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(storage_error(error)),
        }
    }

    async fn set_properties(&self, path: &VirtualPath, properties: Option<Vec<u8>>) -> Result<()> {
        if matches!(self.look(path).await?, Found::Nothing) {
            return Err(StorageError::NotFound);
        }
        let key = self.properties_key(path);
        match properties {
            Some(bytes) => self.operator().write(&key, bytes).await.map(drop),
            None => self.operator().delete(&key).await,
        }
        .map_err(storage_error)
    }

    async fn subtree(&self, home: &VirtualPath, create: bool) -> Result<Arc<dyn Backend>> {
        match self.look(home).await? {
            Found::Directory(_) => {}
            Found::File(_) => return Err(StorageError::NotADirectory),
            Found::Nothing if create => self.make_directory(home, true).await?,
            Found::Nothing => return Err(StorageError::NotFound),
        }
        Ok(Arc::new(S3Bucket {
            shared: Arc::clone(&self.shared),
            base: Arc::from(self.prefix(home)),
            scope: Arc::from(format!("{}{}", self.scope, home)),
        }))
    }
}

/// The HTTP client of every request to the store: rustls on ring with the
/// system's roots, bounded waits for a store that does not answer.
fn http_client() -> std::result::Result<reqwest::Client, String> {
    http_builder()?
        // Below the 30 s a hyper server (Garage) waits for the next request
        // on an idle connection: a request never meets a closing one.
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
        .map_err(|error| error.to_string())
}

/// What every client to the store shares: rustls on ring with the system's
/// roots, bounded waits.
fn http_builder() -> std::result::Result<reqwest::ClientBuilder, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60)))
}

/// The HTTP client of the GETs of small objects from a plain-HTTP store
/// (Garage, MinIO on a LAN): a connection each, closed by the store
/// (`Connection: close`, so that the closed connections wait out TIME_WAIT
/// on the store's side, not in this server's ports).
///
/// Why: a store that does not set TCP_NODELAY (Garage) sends a response's
/// headers and a small body in two writes, and holds the body until the
/// headers are acknowledged; on a connection kept alive the receiver
/// delays that acknowledgement (40 ms on Linux), so every small download
/// waited 42 ms. A new connection acknowledges at once: 1.6 ms, measured on
/// Garage 2.5 here. Over TLS a handshake each would cost more than it saves
/// on stores that set TCP_NODELAY (AWS does): there the pool is kept.
fn small_read_client() -> std::result::Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONNECTION,
        reqwest::header::HeaderValue::from_static("close"),
    );
    http_builder()?
        .default_headers(headers)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|error| error.to_string())
}

/// An OpenDAL error as what a client sees; store failures are logged, as
/// a client sees only "i/o error".
fn storage_error(error: opendal::Error) -> StorageError {
    use opendal::ErrorKind as Kind;
    match error.kind() {
        Kind::NotFound => StorageError::NotFound,
        Kind::PermissionDenied => StorageError::PermissionDenied,
        Kind::IsADirectory => StorageError::IsADirectory,
        Kind::NotADirectory => StorageError::NotADirectory,
        Kind::AlreadyExists => StorageError::AlreadyExists,
        _ => {
            tracing::warn!(%error, "the object store failed");
            StorageError::StoreFailed
        }
    }
}

impl S3Settings {
    /// The bucket and endpoint, as said in errors.
    fn describe(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{} at {}", self.bucket, self.endpoint),
            prefix => format!("s3://{}/{prefix} at {}", self.bucket, self.endpoint),
        }
    }
}

/// Why the first listing failed, in one line naming what to check.
fn describe_open_error(settings: &S3Settings, error: &opendal::Error) -> String {
    let text = error.to_string();
    let place = settings.describe();
    let has = |needle: &str| text.contains(needle);
    let reason = if has("NoSuchBucket") {
        format!("no bucket '{}' there", settings.bucket)
    } else if has("InvalidAccessKeyId") || has("No such key") || has("Forbidden: No such key") {
        "the access key is not known to the store (AWS_ACCESS_KEY_ID)".to_owned()
    } else if has("SignatureDoesNotMatch") || has("signature") || has("Invalid signature") {
        "the secret key does not match the access key (AWS_SECRET_ACCESS_KEY)".to_owned()
    } else if has("AuthorizationHeaderMalformed") || has("region") || has("Region") {
        format!(
            "the store does not take the region '{}' (--s3-region; Garage's is 'garage' unless configured otherwise)",
            settings.region
        )
    } else if has("credential") || has("Credential") {
        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials file"
            .to_owned()
    } else if has("AccessDenied") || error.kind() == opendal::ErrorKind::PermissionDenied {
        "access denied: the key may not list the bucket".to_owned()
    } else if has("error sending request") || has("connect") || has("dns") || has("timed out") {
        "the endpoint does not answer (--s3-endpoint)".to_owned()
    } else {
        let first = text.lines().next().unwrap_or_default();
        format!("the store refused: {first}")
    };
    format!("cannot serve {place}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_a_bucket_and_maybe_a_prefix() {
        let parse = S3Settings::parse_location;
        assert_eq!(parse("s3://b"), Ok(("b".into(), "".into())));
        assert_eq!(parse("s3://b/"), Ok(("b".into(), "".into())));
        assert_eq!(parse("s3://b/p/q/"), Ok(("b".into(), "p/q".into())));
        assert!(parse("b/p").is_err());
        assert!(parse("s3:///p").is_err());
        assert!(parse("s3://b/p/../q").is_err());
        assert!(parse("s3://b/p//q").is_err());
    }
}
