//! The executor: one function per operation, holding every rule once for
//! every way in (a classic session, an extended one, later the web page and
//! WebDAV): how paths resolve against the session's directory, what may be
//! removed or moved, what a read-only or not-yet-logged-in session may do,
//! the one mapping from a storage failure to what a client is told, and the
//! one log line per operation.
//!
//! A [`Service`] is what every session of a server shares (settings,
//! storage, accounts, abuse limits); an [`Executor`] is one session's view
//! of it (its directory, who it is). The sessions above only translate:
//! bytes to an [`Operation`], an [`Outcome`] or a [`Failure`] back to bytes.
//! Transfers are prepared here ([`IncomingUpload`], [`OutgoingDownload`]),
//! their bytes moved by the session, and finished here.

pub mod guard;
mod login;
mod record;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Access, ServerConfig};
use crate::digest::Digest;
use crate::operation::{Entry, EntryKind, ErrorCode, Failure, Operation};
use crate::protocol::text::excerpt;
use crate::storage::path::{Names, names_directory};
use crate::storage::{Download, Listing, Removal, Storage, StorageError, Upload, VirtualPath};
pub use guard::{AddressPermit, Guard, Refusal};
pub use login::{LOGIN_REQUIRED_WEB, LoginState};
use record::Record;
pub use record::Summary;

/// What every session of a server shares.
pub struct Service {
    /// The server's settings.
    pub config: Arc<ServerConfig>,
    /// The whole tree, as a session without an account sees it (read-only
    /// when the server is).
    root: Storage,
    /// With accounts: what an anonymous session sees, if it may come in.
    anonymous: Option<Storage>,
    /// Abuse limits across connections: connections per address, failed
    /// logins.
    pub guard: Arc<Guard>,
}

impl Service {
    /// The service for `storage` with `config`: makes the accounts' homes
    /// that are missing (the operator's doing, at start, so that no client
    /// ever changes the disk by logging in).
    pub async fn new(storage: Storage, config: ServerConfig) -> Arc<Service> {
        let config = Arc::new(config);
        create_homes(&storage, &config).await;
        let root = match config.read_only {
            true => storage.read_only(),
            false => storage,
        };
        let anonymous = match (&config.accounts, &config.anonymous) {
            (Some(_), Some(anonymous)) => {
                match view(&root, &anonymous.home, anonymous.access).await {
                    Ok(storage) => Some(storage),
                    Err(error) => {
                        tracing::error!(%error, home = %anonymous.home, "cannot open the anonymous directory; anonymous access is off");
                        None
                    }
                }
            }
            _ => None,
        };
        Arc::new(Service {
            guard: Arc::new(Guard::new(
                config.max_connections_per_ip,
                config.per_ip_exempts_loopback,
                config.login_failures.clone(),
            )),
            config,
            root,
            anonymous,
        })
    }
}

/// What a session with `access` to `home` (relative to the root) sees:
/// that directory as its root, read-only if either it or the server is.
async fn view(root: &Storage, home: &str, access: Access) -> crate::storage::Result<Storage> {
    let home = VirtualPath::root().resolve(home)?;
    let storage = root.subtree(&home).await?;
    Ok(match access {
        Access::ReadOnly => storage.read_only(),
        Access::ReadWrite => storage,
    })
}

/// Makes the homes of the accounts, and the anonymous directory, that do
/// not exist yet.
async fn create_homes(storage: &Storage, config: &ServerConfig) {
    let Some(accounts) = &config.accounts else {
        return;
    };
    let anonymous = config.anonymous.iter().map(|anonymous| &anonymous.home);
    for home in accounts
        .iter()
        .map(|account| &account.home)
        .chain(anonymous)
    {
        if let Err(error) = view(storage, home, Access::ReadWrite).await {
            tracing::error!(%error, %home, "cannot make a home directory");
        }
    }
}

/// Where a client comes from and how: what the login rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its address.
    pub address: SocketAddr,
    /// Whether what it sends is encrypted (TLS, or HTTPS).
    pub encrypted: bool,
}

/// What a successful operation answers.
pub enum Outcome {
    /// Done: the session answers with its directory.
    Done,
    /// The entry a stat asked for.
    Entry(Entry),
    /// The size an `info` asked for.
    Size(u64),
    /// A directory's entries, to send as they are read; then done.
    Listing(OutgoingListing),
    /// An upload accepted: its bytes follow.
    Upload(IncomingUpload),
    /// A download opened: its bytes are to be sent.
    Download(OutgoingDownload),
    /// The client leaves.
    Exit,
}

/// One session's view of a [`Service`]: who it is, what it sees, where it
/// is. Owned by the session's task; nothing in it is shared or locked.
pub struct Executor {
    service: Arc<Service>,
    /// The tree this session sees: the root, an account's home, or the
    /// anonymous directory; read-only where the access says so.
    storage: Storage,
    directory: VirtualPath,
    login: LoginState,
    peer: Peer,
    /// Which names the session's protocol can carry.
    names: Names,
    summary: Summary,
}

impl Executor {
    /// A session for a client from `peer`, accepted at `accepted` (a
    /// required login is due a handshake timeout after it).
    pub fn new(service: Arc<Service>, peer: Peer, accepted: tokio::time::Instant) -> Executor {
        let (login, storage) = LoginState::at_start(&service, accepted);
        Executor {
            service,
            storage,
            directory: VirtualPath::root(),
            login,
            peer,
            names: Names::Printable,
            summary: Summary::default(),
        }
    }

    /// From now on, paths may name anything the storage allows, control
    /// characters included: the session's protocol is binary-safe.
    pub fn accept_any_names(&mut self) {
        self.names = Names::Any;
    }

    /// The session's directory.
    pub fn directory(&self) -> &VirtualPath {
        &self.directory
    }

    /// The server's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.service.config
    }

    /// Whether this session may not change the tree (read-only access, or
    /// a login still required).
    pub fn read_only(&self) -> bool {
        self.storage.is_read_only() || self.login.is_required()
    }

    /// Where the session stands with logins.
    pub fn login(&self) -> &LoginState {
        &self.login
    }

    /// What the session did so far, for the line that closes it.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The root's entries, for a welcome: nothing before a required login
    /// (the tree is nobody's business then).
    pub async fn welcome_entries(&self) -> Vec<Entry> {
        if self.login.is_required() {
            return Vec::new();
        }
        match self.storage.list_all(&VirtualPath::root()).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(%error, "cannot list the shared root");
                Vec::new()
            }
        }
    }

    /// Counts a request that could not be read as an operation (malformed,
    /// too long) and logs it.
    pub fn refused_unread(&mut self, what: &str, failure: &Failure) {
        self.summary.failed += 1;
        tracing::info!(operation = what, outcome = %failure.message, "refused");
    }

    /// Runs one operation. A transfer is only prepared: the session moves
    /// its bytes, then finishes it here.
    pub async fn execute(&mut self, operation: Operation) -> Result<Outcome, Failure> {
        let record = Record::start(&operation);
        if !matches!(operation, Operation::Login { .. } | Operation::Exit)
            && let Err(failure) = self.allowed()
        {
            return self.finish(record, Err(failure));
        }
        let outcome = match operation {
            Operation::ChangeDirectory { path } => self.change_directory(&path).await,
            Operation::MakeDirectory { path, parents } => self.make_directory(&path, parents).await,
            Operation::Remove { path, recursive } => self.remove(&path, recursive).await,
            Operation::Rename { from, to } => self.rename(&from, &to).await,
            Operation::Stat { path } => self.stat(&path).await.map(Outcome::Entry),
            Operation::Size { path } => self.size(&path).await.map(Outcome::Size),
            Operation::List { path } => {
                return match self.list(&path).await {
                    Ok(listing) => Ok(Outcome::Listing(OutgoingListing {
                        listing,
                        argument: path,
                        record,
                    })),
                    Err(failure) => self.finish(record, Err(failure)),
                };
            }
            Operation::Upload { path, size, resume } => {
                return match self.prepare_upload(&path, size, resume).await {
                    Ok(upload) => Ok(Outcome::Upload(IncomingUpload {
                        upload: Some(upload),
                        argument: path,
                        size,
                        resume,
                        limit: self.config().max_upload_size,
                        record,
                    })),
                    Err(failure) => self.finish(record, Err(failure)),
                };
            }
            Operation::Download { path, offset } => {
                return match self.open_download(&path, offset).await {
                    Ok(download) => Ok(Outcome::Download(OutgoingDownload {
                        download,
                        offset,
                        argument: path,
                        record,
                    })),
                    Err(failure) => self.finish(record, Err(failure)),
                };
            }
            Operation::Login { user, password } => {
                self.log_in(&user, &password).await.map(|()| Outcome::Done)
            }
            Operation::Exit => Ok(Outcome::Exit),
        };
        self.finish(record, outcome)
    }

    /// Logs an operation's end and counts it; gives its result back.
    fn finish<T>(&mut self, record: Record, result: Result<T, Failure>) -> Result<T, Failure> {
        match &result {
            Ok(_) => self.summary.succeeded += 1,
            Err(_) => self.summary.failed += 1,
        }
        record.end(result.as_ref().err());
        result
    }

    async fn change_directory(&mut self, argument: &str) -> Result<Outcome, Failure> {
        let target = self.resolve(argument)?;
        if let Err(error) = self.storage.check_directory(&target).await {
            return Err(self.failure(error, argument).await);
        }
        self.directory = target;
        Ok(Outcome::Done)
    }

    async fn make_directory(&mut self, argument: &str, parents: bool) -> Result<Outcome, Failure> {
        let target = self.resolve(argument)?;
        match self.storage.make_directory(&target, parents).await {
            Ok(()) => Ok(Outcome::Done),
            Err(error) => Err(self.failure(error, argument).await),
        }
    }

    async fn remove(&mut self, argument: &str, recursive: bool) -> Result<Outcome, Failure> {
        let last = argument
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if matches!(last, "." | "..") && !argument.is_empty() {
            return Err(described(StorageError::RemoveDot, argument));
        }
        let target = self.resolve(argument)?;
        let removal = match recursive {
            true => Removal::Tree,
            false => Removal::Entry,
        };
        match self.storage.remove(&target, removal).await {
            Ok(()) => Ok(Outcome::Done),
            Err(error) => Err(self.failure(error, argument).await),
        }
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<Outcome, Failure> {
        let source = self.resolve(from)?;
        let destination = self.resolve(to)?;
        if source.is_root() {
            return Err(described(StorageError::PermissionDenied, from));
        }
        match self
            .storage
            .rename(&source, &destination, names_directory(to))
            .await
        {
            Ok(_) => Ok(Outcome::Done),
            Err(error) => Err(self.failure(error, &format!("{from} -> {to}")).await),
        }
    }

    async fn stat(&mut self, argument: &str) -> Result<Entry, Failure> {
        let target = self.resolve(argument)?;
        match self.storage.stat(&target).await {
            Ok(entry) => Ok(entry),
            Err(error) => Err(self.failure(error, argument).await),
        }
    }

    async fn size(&mut self, argument: &str) -> Result<u64, Failure> {
        match self.stat(argument).await? {
            entry if entry.kind == EntryKind::Directory => {
                Err(described(StorageError::IsADirectory, argument))
            }
            entry => Ok(entry.size),
        }
    }

    async fn list(&mut self, argument: &str) -> Result<Listing, Failure> {
        let target = self.resolve(argument)?;
        match self.storage.list(&target).await {
            Ok(listing) => Ok(listing),
            Err(error) => Err(self.failure(error, argument).await),
        }
    }

    /// Checks an upload before its bytes come: the size limit (when the size
    /// is known), a name that must be a file's (`new/` is refused in every
    /// protocol alike), and what storage refuses (a missing parent, a
    /// directory in the way).
    async fn prepare_upload(
        &mut self,
        argument: &str,
        size: Option<u64>,
        resume: bool,
    ) -> Result<Upload, Failure> {
        let target = self.resolve(argument)?;
        if let (Some(size), Some(limit)) = (size, self.config().max_upload_size)
            && size > limit
        {
            return Err(too_large(argument, limit));
        }
        if names_directory(argument) {
            let error = match self.storage.stat(&target).await {
                Ok(entry) if entry.kind == EntryKind::Directory => StorageError::IsADirectory,
                _ => StorageError::NotADirectory,
            };
            return Err(self.failure(error, argument).await);
        }
        match self.storage.create_upload(&target, size, resume).await {
            Ok(upload) => Ok(upload),
            Err(error) => Err(self.failure(error, argument).await),
        }
    }

    /// Checks what an upload received: all of it (and not more), intact
    /// when the sender gave a digest, within the size limit; a failure
    /// keeps nothing. What passes is ready to commit.
    pub async fn verify_upload(
        &mut self,
        incoming: IncomingUpload,
        received: Received,
    ) -> Result<VerifiedUpload, Failure> {
        let mut incoming = incoming;
        let upload = incoming.upload.take().expect("an upload is verified once");
        let mut record = std::mem::take(&mut incoming.record);
        let (argument, size, limit) = (
            std::mem::take(&mut incoming.argument),
            incoming.size,
            incoming.limit,
        );
        self.summary.bytes_received += received.bytes;
        record.bytes = received.bytes;
        record.resumed_from = upload.held();
        let mut upload = upload;
        let sealed = upload.seal().await;
        let checked = match (received.problem, sealed) {
            (Some(ReceiveProblem::TooLarge), _) => Err(too_large(&argument, limit.unwrap_or(0))),
            (Some(ReceiveProblem::Storage(error)), _) | (None, Err(error)) => {
                Err(self.failure(error, &argument).await)
            }
            (None, Ok(digest)) => match (size, received.digest) {
                (Some(size), _) if upload.held() + received.bytes != size => {
                    upload.discard();
                    Err(Failure::new(
                        ErrorCode::BadRequest,
                        format!(
                            "received {} bytes of a {size}-byte upload: {}",
                            record.resumed_from + received.bytes,
                            excerpt(&argument)
                        ),
                    ))
                }
                (_, Some(expected)) if digest != expected => {
                    upload.discard();
                    Err(Failure::new(
                        ErrorCode::DigestMismatch,
                        format!("digest mismatch, nothing stored: {}", excerpt(&argument)),
                    ))
                }
                _ => Ok(upload),
            },
        };
        match checked {
            Ok(upload) => Ok(VerifiedUpload {
                upload,
                argument,
                record,
            }),
            Err(failure) => self.finish(record, Err(failure)),
        }
    }

    /// Commits one verified upload: when it returns `Ok`, the file is in
    /// place and survives a crash.
    pub async fn commit(&mut self, verified: VerifiedUpload) -> Result<(), Failure> {
        let VerifiedUpload {
            upload,
            argument,
            record,
        } = verified;
        let committed = match self.storage.commit(upload).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.failure(error, &argument).await),
        };
        self.finish(record, committed)
    }

    /// Commits verified uploads as one group (see
    /// [`Storage::commit_group`]); one result per upload, in order.
    pub async fn commit_group(&mut self, group: Vec<VerifiedUpload>) -> Vec<Result<(), Failure>> {
        let (uploads, rest): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|verified| (verified.upload, (verified.argument, verified.record)))
            .unzip();
        let size = uploads.len();
        let committed = self.storage.commit_group(uploads).await;
        let mut results = Vec::with_capacity(size);
        for ((argument, mut record), result) in rest.into_iter().zip(committed) {
            record.grouped = size;
            let result = match result {
                Ok(()) => Ok(()),
                Err(error) => Err(self.failure(error, &argument).await),
            };
            results.push(self.finish(record, result));
        }
        results
    }

    /// Opens a file to send from `offset`.
    async fn open_download(&mut self, argument: &str, offset: u64) -> Result<Download, Failure> {
        let target = self.resolve(argument)?;
        let download = match self.storage.open_file(&target).await {
            Ok(download) => download,
            Err(error) => return Err(self.failure(error, argument).await),
        };
        if offset > download.size {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                format!(
                    "offset {offset} is past the end ({} bytes): {}",
                    download.size,
                    excerpt(argument)
                ),
            ));
        }
        Ok(download)
    }

    /// Ends a download: `sent` bytes went, or it failed with `failure`
    /// (what the client sees of it, if anything; the connection may be gone).
    pub fn finish_download(
        &mut self,
        outgoing: OutgoingDownload,
        sent: u64,
        failure: Option<Failure>,
    ) -> Result<(), Failure> {
        let mut record = outgoing.record;
        record.bytes = sent;
        record.resumed_from = outgoing.offset;
        self.summary.bytes_sent += sent;
        self.finish(record, failure.map_or(Ok(()), Err))
    }

    /// Ends a listing that was sent whole (`entries` of them), or failed
    /// on the way.
    pub fn finish_listing(
        &mut self,
        listing: OutgoingListing,
        entries: u64,
        failure: Option<StorageError>,
    ) -> Result<(), Failure> {
        let OutgoingListing {
            argument,
            mut record,
            ..
        } = listing;
        record.entries = Some(entries);
        let result = match failure {
            None => Ok(()),
            Some(error) => Err(described(error, &argument)),
        };
        self.finish(record, result)
    }

    /// The dead properties of `argument` (WebDAV's PROPPATCH; opaque
    /// bytes, `None` when it has none), through the same jail and login
    /// rules as every operation, with its log line.
    pub async fn properties(&mut self, argument: &str) -> Result<Option<Vec<u8>>, Failure> {
        let record = Record::named("properties", argument);
        let result = match self.allowed().and_then(|()| self.resolve(argument)) {
            Ok(target) => match self.storage.properties(&target).await {
                Ok(properties) => Ok(properties),
                Err(error) => Err(self.failure(error, argument).await),
            },
            Err(failure) => Err(failure),
        };
        self.finish(record, result)
    }

    /// Replaces the dead properties of `argument` (`None` removes them);
    /// refused on read-only access, as every change is.
    pub async fn set_properties(
        &mut self,
        argument: &str,
        properties: Option<Vec<u8>>,
    ) -> Result<(), Failure> {
        let record = Record::named("set-properties", argument);
        let result = match self.allowed().and_then(|()| self.resolve(argument)) {
            Ok(target) => match self.storage.set_properties(&target, properties).await {
                Ok(()) => Ok(()),
                Err(error) => Err(self.failure(error, argument).await),
            },
            Err(failure) => Err(failure),
        };
        self.finish(record, result)
    }

    /// Refuses everything but a login before a required one.
    fn allowed(&self) -> Result<(), Failure> {
        match self.login.is_required() {
            true => Err(Failure::new(
                ErrorCode::LoginRequired,
                login::LOGIN_REQUIRED,
            )),
            false => Ok(()),
        }
    }

    /// Resolves an argument against the session's directory.
    fn resolve(&self, argument: &str) -> Result<VirtualPath, Failure> {
        self.directory
            .resolve_names(argument, self.names)
            .map_err(|error| described(error, argument))
    }

    /// What a client is told of a storage failure on `argument`, noticing
    /// when the cause is that another client removed this session's
    /// directory.
    pub async fn failure(&self, error: StorageError, argument: &str) -> Failure {
        if matches!(error, StorageError::NotFound | StorageError::NotADirectory)
            && !argument.starts_with('/')
            && !self.directory.is_root()
            && self.storage.check_directory(&self.directory).await.is_err()
        {
            return Failure::new(
                code_of(&error),
                format!(
                    "the current directory {} no longer exists (cd / to recover)",
                    excerpt(&self.directory.to_string())
                ),
            );
        }
        described(error, argument)
    }
}

/// What a client is told of a storage failure: the reason, then the path
/// it named, escaped and bounded.
fn described(error: StorageError, argument: &str) -> Failure {
    let message = match error {
        StorageError::EmptyName => error.to_string(),
        ref error => format!("{error}: {}", excerpt(argument)),
    };
    Failure::new(code_of(&error), message)
}

/// An upload over the size limit; says the limit.
fn too_large(argument: &str, limit: u64) -> Failure {
    Failure::new(
        ErrorCode::TooLarge,
        format!(
            "{}: {} (the server takes at most {limit} bytes)",
            StorageError::TooLarge,
            excerpt(argument)
        ),
    )
}

/// The stable code for a storage failure.
pub fn code_of(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::NotFound => ErrorCode::NotFound,
        StorageError::AlreadyExists => ErrorCode::AlreadyExists,
        StorageError::NotADirectory => ErrorCode::NotADirectory,
        StorageError::IsADirectory | StorageError::NotAFile => ErrorCode::IsADirectory,
        StorageError::NotEmpty => ErrorCode::NotEmpty,
        StorageError::OutsideRoot
        | StorageError::InvalidName
        | StorageError::EmptyName
        | StorageError::NameTooLong
        | StorageError::Reserved
        | StorageError::LinkLoop => ErrorCode::InvalidPath,
        StorageError::PermissionDenied | StorageError::RemoveRoot | StorageError::ReadOnly => {
            ErrorCode::PermissionDenied
        }
        StorageError::RemoveDot | StorageError::IntoItself => ErrorCode::BadRequest,
        StorageError::TooLarge | StorageError::TooManyToMove => ErrorCode::TooLarge,
        StorageError::NoSpace => ErrorCode::NoSpace,
        StorageError::PrivateAreaLost | StorageError::StoreFailed | StorageError::Io(_) => {
            ErrorCode::Internal
        }
    }
}

/// An upload the executor accepted: the session writes its bytes into
/// [`IncomingUpload::sink`], then hands it to [`Executor::verify_upload`].
pub struct IncomingUpload {
    /// Present until verified.
    upload: Option<Upload>,
    argument: String,
    size: Option<u64>,
    resume: bool,
    limit: Option<u64>,
    record: Record,
}

impl IncomingUpload {
    /// Where its bytes go (hashed as they are written).
    pub fn sink(&mut self) -> &mut Upload {
        self.upload
            .as_mut()
            .expect("an upload lives until verified")
    }

    /// Bytes the server holds already from an interrupted attempt: the
    /// sender goes on from there.
    pub fn held(&self) -> u64 {
        self.upload.as_ref().map_or(0, Upload::held)
    }

    /// The most bytes it may take (the server's upload limit).
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// The whole file's size, when the sender said it.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Whether the sender asked where to resume (and waits to be told).
    pub fn resumes(&self) -> bool {
        self.resume
    }

    /// The path as the client gave it.
    pub fn argument(&self) -> &str {
        &self.argument
    }
}

impl Drop for IncomingUpload {
    /// An upload abandoned on the way (the connection lost) logs how far
    /// it got.
    fn drop(&mut self) {
        if let Some(upload) = &self.upload {
            self.record.resumed_from = upload.held();
            self.record.bytes = upload.len() - upload.held();
        }
    }
}

/// What the session received for an upload.
#[derive(Debug, Default)]
pub struct Received {
    /// Bytes received in this attempt (kept or not).
    pub bytes: u64,
    /// The sender's digest of the whole file, when its protocol has one.
    pub digest: Option<Digest>,
    /// Why the bytes were not all kept, if they were not.
    pub problem: Option<ReceiveProblem>,
}

/// Why an upload's bytes were received but not kept.
#[derive(Debug)]
pub enum ReceiveProblem {
    /// More than the server's limit.
    TooLarge,
    /// Storage failed to take them (a full disk, say).
    Storage(StorageError),
}

/// An upload received whole and intact, ready to commit (alone, or with
/// others in a group).
pub struct VerifiedUpload {
    upload: Upload,
    argument: String,
    record: Record,
}

impl VerifiedUpload {
    /// Where it goes once committed.
    pub fn target(&self) -> &VirtualPath {
        self.upload.target()
    }
}

/// A download the executor opened: the session sends its bytes, then
/// reports to [`Executor::finish_download`].
pub struct OutgoingDownload {
    /// The file.
    pub download: Download,
    /// Where sending starts.
    pub offset: u64,
    argument: String,
    record: Record,
}

impl OutgoingDownload {
    /// The path as the client gave it.
    pub fn argument(&self) -> &str {
        &self.argument
    }
}

/// A listing the executor opened: the session sends its batches, then
/// reports to [`Executor::finish_listing`].
pub struct OutgoingListing {
    /// The entries, a batch at a time.
    pub listing: Listing,
    argument: String,
    record: Record,
}
