//! WebDAV on the page's paths: `dav-server` speaks the protocol (PROPFIND,
//! PUT, MKCOL, DELETE, COPY, MOVE, LOCK, UNLOCK, PROPPATCH, conditional
//! headers, multi-status), over a filesystem of ours whose every method is
//! an executor call for the caller's session: the same jail, accounts,
//! read-only rules, limits and log lines as every other way in.
//!
//! A PUT is an executor upload, committed when the body ended whole (and as
//! long as it said): a cut connection leaves nothing. COPY of a file is a
//! stream copy through the executor (a download into an upload, verified
//! against the source's digest, then its properties), so it works on any
//! storage backend. Dead properties are kept by storage, beside the entry,
//! moved and removed with it.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, DavProp, FsError, FsFuture, FsResult, FsStream,
    GuardedFileSystem, OpenOptions, ReadDirMeta,
};
use futures_util::FutureExt;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sync_wrapper::SyncWrapper;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::executor::{
    Executor, IncomingUpload, Outcome, OutgoingDownload, ReceiveProblem, Received,
};
use crate::operation::{Entry, EntryKind, ErrorCode, Failure, Operation};

/// The session a WebDAV request runs in (dav-server's "credentials").
#[derive(Clone)]
pub struct DavCaller {
    executor: Arc<Mutex<Executor>>,
}

impl DavCaller {
    /// The caller whose requests `executor` runs.
    pub fn new(executor: Executor) -> DavCaller {
        DavCaller {
            executor: Arc::new(Mutex::new(executor)),
        }
    }

    async fn execute(&self, operation: Operation) -> FsResult<Outcome> {
        self.executor
            .lock()
            .await
            .execute(operation)
            .await
            .map_err(|failure| fs_error(&failure))
    }

    async fn stat(&self, path: &str) -> FsResult<Entry> {
        match self
            .execute(Operation::Stat {
                path: path.to_owned(),
            })
            .await?
        {
            Outcome::Entry(entry) => Ok(entry),
            _ => Err(FsError::GeneralFailure),
        }
    }
}

/// Our filesystem for dav-server: stateless, every call runs in the
/// caller's executor.
#[derive(Clone, Copy, Default)]
pub struct ExecutorFs;

/// What dav-server is told of a failure.
fn fs_error(failure: &Failure) -> FsError {
    match failure.code {
        ErrorCode::NotFound => FsError::NotFound,
        ErrorCode::AlreadyExists | ErrorCode::NotEmpty => FsError::Exists,
        ErrorCode::NotADirectory => FsError::NotFound,
        ErrorCode::IsADirectory
        | ErrorCode::InvalidPath
        | ErrorCode::PermissionDenied
        | ErrorCode::BadRequest
        | ErrorCode::LoginFailed
        | ErrorCode::LoginRequired => FsError::Forbidden,
        ErrorCode::TooLarge => FsError::TooLarge,
        ErrorCode::NoSpace => FsError::InsufficientStorage,
        ErrorCode::DigestMismatch | ErrorCode::Internal => FsError::GeneralFailure,
    }
}

/// The virtual path of a dav-server path (no trailing `/`: the executor
/// reads one as "into this directory").
fn virtual_path(path: &DavPath) -> FsResult<String> {
    let text = String::from_utf8(path.as_bytes().to_vec()).map_err(|_| FsError::Forbidden)?;
    let trimmed = text.trim_end_matches('/');
    Ok(match trimmed.is_empty() {
        true => "/".to_owned(),
        false => trimmed.to_owned(),
    })
}

/// An entry's metadata as dav-server wants it.
#[derive(Debug, Clone)]
struct Metadata(Entry);

impl DavMetaData for Metadata {
    fn len(&self) -> u64 {
        self.0.size
    }

    fn modified(&self) -> FsResult<SystemTime> {
        self.0.modified.ok_or(FsError::NotImplemented)
    }

    fn is_dir(&self) -> bool {
        self.0.kind == EntryKind::Directory
    }

    fn etag(&self) -> Option<String> {
        Some(super::download::entity_tag(&self.0))
    }
}

struct DirEntry(Entry);

impl DavDirEntry for DirEntry {
    fn name(&self) -> Vec<u8> {
        self.0.name.as_bytes().to_vec()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let metadata: Box<dyn DavMetaData> = Box::new(Metadata(self.0.clone()));
        Box::pin(std::future::ready(Ok(metadata)))
    }
}

/// One dead property as storage keeps it (inside a JSON list).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct StoredProperty {
    name: String,
    prefix: Option<String>,
    namespace: Option<String>,
    /// The property's XML, as dav-server gave it.
    xml: Option<Vec<u8>>,
}

impl From<DavProp> for StoredProperty {
    fn from(property: DavProp) -> StoredProperty {
        StoredProperty {
            name: property.name,
            prefix: property.prefix,
            namespace: property.namespace,
            xml: property.xml,
        }
    }
}

impl From<StoredProperty> for DavProp {
    fn from(property: StoredProperty) -> DavProp {
        DavProp {
            name: property.name,
            prefix: property.prefix,
            namespace: property.namespace,
            xml: property.xml,
        }
    }
}

impl DavCaller {
    async fn properties(&self, path: &str) -> FsResult<Vec<StoredProperty>> {
        let blob = self
            .executor
            .lock()
            .await
            .properties(path)
            .await
            .map_err(|failure| fs_error(&failure))?;
        match blob {
            None => Ok(Vec::new()),
            Some(blob) => serde_json::from_slice(&blob).map_err(|_| FsError::GeneralFailure),
        }
    }

    async fn set_properties(&self, path: &str, properties: &[StoredProperty]) -> FsResult<()> {
        let blob = match properties.is_empty() {
            true => None,
            false => Some(serde_json::to_vec(properties).map_err(|_| FsError::GeneralFailure)?),
        };
        self.executor
            .lock()
            .await
            .set_properties(path, blob)
            .await
            .map_err(|failure| fs_error(&failure))
    }

    async fn open_download(&self, path: &str, size: u64) -> FsResult<ReadFile> {
        let outgoing = match self
            .execute(Operation::Download {
                path: path.to_owned(),
                offset: 0,
            })
            .await?
        {
            Outcome::Download(outgoing) => outgoing,
            _ => return Err(FsError::GeneralFailure),
        };
        let reader = outgoing
            .download
            .reader(0)
            .await
            .map_err(|_| FsError::GeneralFailure)?;
        Ok(ReadFile {
            caller: self.clone(),
            outgoing: Some(outgoing),
            reader: SyncWrapper::new(reader),
            position: 0,
            sent: 0,
            size,
        })
    }

    /// Copies a file through the executor, checked against the source's
    /// digest, with its properties.
    async fn copy_file(&self, from: &str, to: &str) -> FsResult<()> {
        let source = self.stat(from).await?;
        if source.kind != EntryKind::File {
            return Err(FsError::Forbidden);
        }
        let mut download = self.open_download(from, source.size).await?;
        let digest = download
            .outgoing
            .as_ref()
            .map(|outgoing| outgoing.download.digest())
            .ok_or(FsError::GeneralFailure)?;
        let mut incoming = match self
            .execute(Operation::Upload {
                path: to.to_owned(),
                size: Some(source.size),
                resume: false,
            })
            .await?
        {
            Outcome::Upload(incoming) => incoming,
            _ => return Err(FsError::GeneralFailure),
        };
        let copied = tokio::io::copy(
            &mut download.reader.get_mut().take(source.size),
            incoming.sink(),
        )
        .await;
        let flushed = incoming.sink().flush().await;
        let bytes = incoming.sink().len();
        download.sent = *copied.as_ref().unwrap_or(&0);
        let problem = match (copied, flushed) {
            (Err(error), _) | (_, Err(error)) => Some(ReceiveProblem::Storage(error.into())),
            _ => None,
        };
        let digest = match problem {
            None => Some(digest.await.map_err(|_| FsError::GeneralFailure)?),
            Some(_) => None,
        };
        let received = Received {
            bytes,
            digest,
            problem,
        };
        drop(download);
        let mut executor = self.executor.lock().await;
        let verified = executor
            .verify_upload(incoming, received)
            .await
            .map_err(|failure| fs_error(&failure))?;
        executor
            .commit(verified)
            .await
            .map_err(|failure| fs_error(&failure))?;
        drop(executor);
        let properties = self.properties(from).await?;
        self.set_properties(to, &properties).await
    }
}

impl GuardedFileSystem<DavCaller> for ExecutorFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let path = virtual_path(path)?;
            let existing = caller.stat(&path).await;
            if !options.write {
                let entry = existing?;
                if entry.kind == EntryKind::Directory {
                    return Err(FsError::Forbidden);
                }
                let file: Box<dyn DavFile> =
                    Box::new(caller.open_download(&path, entry.size).await?);
                return Ok(file);
            }
            match &existing {
                Ok(_) if options.create_new => return Err(FsError::Exists),
                Ok(entry) if entry.kind == EntryKind::Directory => return Err(FsError::Forbidden),
                Err(FsError::NotFound) if !options.create => return Err(FsError::NotFound),
                _ => {}
            }
            if options.append || !(options.truncate || existing.is_err()) {
                // Changing a file in place is not an upload.
                return Err(FsError::NotImplemented);
            }
            let incoming = match caller
                .execute(Operation::Upload {
                    path: path.clone(),
                    size: options.size,
                    resume: false,
                })
                .await?
            {
                Outcome::Upload(incoming) => incoming,
                _ => return Err(FsError::GeneralFailure),
            };
            let file: Box<dyn DavFile> = Box::new(WriteFile {
                caller: caller.clone(),
                path,
                incoming: Some(SyncWrapper::new(incoming)),
                written: 0,
                too_large: false,
                committed: None,
            });
            Ok(file)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let path = virtual_path(path)?;
            let mut executor = caller.executor.lock().await;
            let mut outgoing = match executor
                .execute(Operation::List { path })
                .await
                .map_err(|failure| fs_error(&failure))?
            {
                Outcome::Listing(outgoing) => outgoing,
                _ => return Err(FsError::GeneralFailure),
            };
            let mut entries: Vec<FsResult<Box<dyn DavDirEntry>>> = Vec::new();
            let failure = loop {
                match outgoing.listing.next_batch().await {
                    Ok(Some(batch)) => entries.extend(
                        batch
                            .into_iter()
                            .map(|entry| Ok(Box::new(DirEntry(entry)) as Box<dyn DavDirEntry>)),
                    ),
                    Ok(None) => break None,
                    Err(error) => break Some(error),
                }
            };
            let failed = failure.is_some();
            let _ = executor.finish_listing(outgoing, entries.len() as u64, failure);
            if failed {
                return Err(FsError::GeneralFailure);
            }
            let stream: FsStream<Box<dyn DavDirEntry>> =
                Box::pin(futures_util::stream::iter(entries));
            Ok(stream)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let entry = caller.stat(&virtual_path(path)?).await?;
            Ok(Box::new(Metadata(entry)) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, caller: &'a DavCaller) -> FsFuture<'a, ()> {
        async move {
            let path = virtual_path(path)?;
            caller
                .execute(Operation::MakeDirectory {
                    path,
                    parents: false,
                })
                .await
                .map(drop)
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, caller: &'a DavCaller) -> FsFuture<'a, ()> {
        self.remove_file(path, caller)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, caller: &'a DavCaller) -> FsFuture<'a, ()> {
        async move {
            let path = virtual_path(path)?;
            caller
                .execute(Operation::Remove {
                    path,
                    recursive: false,
                })
                .await
                .map(drop)
        }
        .boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (virtual_path(from)?, virtual_path(to)?);
            caller
                .execute(Operation::Rename { from, to })
                .await
                .map(drop)
        }
        .boxed()
    }

    fn copy<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (virtual_path(from)?, virtual_path(to)?);
            caller.copy_file(&from, &to).await
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
        _caller: &'a DavCaller,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(std::future::ready(true))
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            let path = virtual_path(path)?;
            let mut properties = caller.properties(&path).await?;
            let mut answers = Vec::with_capacity(patch.len());
            for (set, property) in patch {
                let same = |stored: &StoredProperty| {
                    stored.name == property.name && stored.namespace == property.namespace
                };
                properties.retain(|stored| !same(stored));
                if set {
                    properties.push(StoredProperty::from(property.clone()));
                }
                answers.push((
                    StatusCode::OK,
                    DavProp {
                        xml: None,
                        ..property
                    },
                ));
            }
            caller.set_properties(&path, &properties).await?;
            Ok(answers)
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let properties = caller.properties(&virtual_path(path)?).await?;
            Ok(properties
                .into_iter()
                .map(|stored| {
                    let mut property = DavProp::from(stored);
                    if !do_content {
                        property.xml = None;
                    }
                    property
                })
                .collect())
        }
        .boxed()
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        caller: &'a DavCaller,
    ) -> FsFuture<'a, Vec<u8>> {
        async move {
            let properties = caller.properties(&virtual_path(path)?).await?;
            properties
                .into_iter()
                .find(|stored| stored.name == prop.name && stored.namespace == prop.namespace)
                .and_then(|stored| stored.xml)
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }
}

/// A file being read (dav-server reads through one only when it must: our
/// own GET serves downloads).
struct ReadFile {
    caller: DavCaller,
    outgoing: Option<OutgoingDownload>,
    /// Used through `&mut self` only: the wrapper makes it `Sync`.
    reader: SyncWrapper<Box<dyn AsyncRead + Send + Unpin>>,
    position: u64,
    sent: u64,
    size: u64,
}

impl std::fmt::Debug for ReadFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ReadFile")
            .field("position", &self.position)
            .finish()
    }
}

impl Drop for ReadFile {
    fn drop(&mut self) {
        if let Some(outgoing) = self.outgoing.take()
            && let Ok(mut executor) = self.caller.executor.try_lock()
        {
            let _ = executor.finish_download(outgoing, self.sent, None);
        }
    }
}

impl DavFile for ReadFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let entry = Entry {
            name: String::new(),
            kind: EntryKind::File,
            size: self.size,
            modified: None,
        };
        Box::pin(std::future::ready(Ok(
            Box::new(Metadata(entry)) as Box<dyn DavMetaData>
        )))
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            let mut buffer = vec![0; count.min(1 << 20)];
            let read = self
                .reader
                .get_mut()
                .read(&mut buffer)
                .await
                .map_err(|_| FsError::GeneralFailure)?;
            buffer.truncate(read);
            self.position += read as u64;
            self.sent += read as u64;
            Ok(Bytes::from(buffer))
        }
        .boxed()
    }

    fn seek(&mut self, position: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let target = match position {
                SeekFrom::Start(offset) => offset,
                SeekFrom::Current(delta) => self.position.saturating_add_signed(delta),
                SeekFrom::End(delta) => self.size.saturating_add_signed(delta),
            };
            let outgoing = self.outgoing.as_ref().ok_or(FsError::GeneralFailure)?;
            self.reader = SyncWrapper::new(
                outgoing
                    .download
                    .reader(target)
                    .await
                    .map_err(|_| FsError::GeneralFailure)?,
            );
            self.position = target;
            Ok(target)
        }
        .boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A PUT under way: an executor upload, committed on dav-server's final
/// flush (after the whole body came), dropped (nothing stored) otherwise.
struct WriteFile {
    caller: DavCaller,
    path: String,
    /// Used through `&mut self` only: the wrapper makes it `Sync`.
    incoming: Option<SyncWrapper<IncomingUpload>>,
    written: u64,
    too_large: bool,
    committed: Option<Entry>,
}

impl std::fmt::Debug for WriteFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WriteFile")
            .field("written", &self.written)
            .finish()
    }
}

impl WriteFile {
    async fn write(&mut self, data: &[u8]) -> FsResult<()> {
        let incoming = self
            .incoming
            .as_mut()
            .ok_or(FsError::GeneralFailure)?
            .get_mut();
        if let Some(limit) = incoming.limit()
            && self.written + data.len() as u64 > limit
        {
            self.too_large = true;
            return Err(FsError::TooLarge);
        }
        incoming
            .sink()
            .write_all(data)
            .await
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::StorageFull => FsError::InsufficientStorage,
                _ => FsError::GeneralFailure,
            })?;
        self.written += data.len() as u64;
        Ok(())
    }
}

impl DavFile for WriteFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let entry = self.committed.clone().unwrap_or(Entry {
            name: String::new(),
            kind: EntryKind::File,
            size: self.written,
            modified: None,
        });
        Box::pin(std::future::ready(Ok(
            Box::new(Metadata(entry)) as Box<dyn DavMetaData>
        )))
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                self.write(&chunk).await?;
                buf.advance(chunk.len());
            }
            Ok(())
        }
        .boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.write(&buf).await }.boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(std::future::ready(Err(FsError::Forbidden)))
    }

    fn seek(&mut self, position: SeekFrom) -> FsFuture<'_, u64> {
        let written = self.written;
        Box::pin(std::future::ready(match position {
            SeekFrom::Start(offset) if offset == written => Ok(written),
            SeekFrom::Current(0) => Ok(written),
            _ => Err(FsError::NotImplemented),
        }))
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move {
            let Some(incoming) = self.incoming.take() else {
                return Ok(());
            };
            let mut incoming = incoming.into_inner();
            let flushed = incoming.sink().flush().await;
            let problem = match (self.too_large, flushed) {
                (true, _) => Some(ReceiveProblem::TooLarge),
                (false, Err(error)) => Some(ReceiveProblem::Storage(error.into())),
                (false, Ok(())) => None,
            };
            let received = Received {
                bytes: self.written,
                digest: None,
                problem,
            };
            let mut executor = self.caller.executor.lock().await;
            let verified = executor
                .verify_upload(incoming, received)
                .await
                .map_err(|failure| fs_error(&failure))?;
            executor
                .commit(verified)
                .await
                .map_err(|failure| fs_error(&failure))?;
            drop(executor);
            self.committed = self.caller.stat(&self.path).await.ok();
            Ok(())
        }
        .boxed()
    }
}
