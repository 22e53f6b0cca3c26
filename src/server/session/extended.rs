//! The session after the client switched to the extended protocol: binary
//! frames, no pacing, requests handled in order as they arrive (so a client
//! may pipeline many), replies batched until the input runs dry.

use std::io;
use std::ops::Range;

use bytes::BytesMut;
use tokio::io::AsyncSeekExt;
use tokio_util::sync::CancellationToken;

use super::{Session, describe_plainly};
use crate::connection::ConnectionError;
use crate::digest::{self, Digest, Hasher};
use crate::protocol::extended::{EntryInfo, ErrorCode, Header, Kind, Message};
use crate::protocol::request::excerpt;
use crate::storage::path::names_directory;
use crate::storage::{Entry, EntryKind, Removal, StorageError, Upload, VirtualPath};

/// The most uploads committed in one group (each holds an open file).
const MAX_GROUP_COMMIT: usize = 256;

/// The most reply bytes held back while a pipelining client keeps sending;
/// past it they are written, and TCP slows a client that does not read.
const MAX_HELD_REPLIES: usize = 256 * 1024;

/// The longest frame a client may send before it has logged in: a login
/// (a name and a password) needs no more.
pub(crate) const MAX_LOGIN_FRAME: u64 = 4096;

/// A failed request: its stable code and the reason for people.
type Failure = (ErrorCode, String);

impl Session {
    /// Serves extended frames until the client leaves; returns why it ended.
    pub(super) async fn run_extended(&mut self, shutdown: &CancellationToken) -> &'static str {
        self.pacer = None;
        let mut out = BytesMut::new();
        let mut pending = Vec::new();
        loop {
            let held_back = pending.len() >= MAX_GROUP_COMMIT || out.len() >= MAX_HELD_REPLIES;
            if (!self.connection.has_buffered_input() || held_back)
                && !out.is_empty()
                && self.flush_replies(&mut out, &mut pending).await.is_err()
            {
                return "connection failed";
            }
            if self.login.expired() {
                failed(
                    &mut out,
                    0,
                    (ErrorCode::LoginRequired, "login timed out".to_owned()),
                );
                let _ = self.flush_replies(&mut out, &mut pending).await;
                self.connection.close_gracefully(super::CLOSE_LINGER).await;
                return "login timed out";
            }
            let header = tokio::select! {
                biased;
                header = self.connection.read_header() => header,
                // A client trickling a frame cannot outlast its login.
                () = self.login.overdue() => continue,
                _ = shutdown.cancelled() => {
                    let _ = self.flush_replies(&mut out, &mut pending).await;
                    return "server shutting down";
                }
            };
            let header = match header {
                Ok(Some(header)) => header,
                Ok(None) => return "client closed the connection",
                Err(ConnectionError::Frame(error)) => {
                    // The stream cannot be resynchronised after a bad header.
                    let failure = Message::Failed {
                        code: ErrorCode::BadRequest,
                        message: error.to_string(),
                    };
                    failure.encode(0, &mut out);
                    let _ = self.flush_replies(&mut out, &mut pending).await;
                    self.connection.close_gracefully(super::CLOSE_LINGER).await;
                    return "protocol error";
                }
                Err(ConnectionError::Io(error)) if error.kind() == io::ErrorKind::TimedOut => {
                    if self.login.is_required() {
                        continue; // Said and closed at the top of the loop.
                    }
                    return "idle timeout";
                }
                Err(_) => return "connection failed",
            };
            // Before a login, a frame (the data of an upload included) must
            // end by the login's deadline.
            let served = match self.login.deadline() {
                Some(deadline) => {
                    let serving = self.serve_frame(header, &mut out, &mut pending);
                    match tokio::time::timeout_at(deadline, serving).await {
                        Ok(served) => served,
                        Err(_) => continue,
                    }
                }
                None => self.serve_frame(header, &mut out, &mut pending).await,
            };
            if let Err(error) = served {
                tracing::debug!(%error, "extended session failed");
                if let ConnectionError::TooLong { limit } = error {
                    let reason = format!(
                        "before logging in, a frame may hold at most {limit} bytes; closing"
                    );
                    tracing::info!(outcome = %reason, "closing the connection");
                    failed(&mut out, 0, (ErrorCode::BadRequest, reason));
                    let _ = self.flush_replies(&mut out, &mut pending).await;
                    self.connection.close_gracefully(super::CLOSE_LINGER).await;
                    return "frame too long before login";
                }
                let violation = match &error {
                    ConnectionError::Frame(_) => true,
                    ConnectionError::Io(error) => error.kind() == io::ErrorKind::InvalidData,
                    _ => false,
                };
                if !violation {
                    return "connection failed";
                }
                // Out of step for good: say why before closing.
                failed(&mut out, 0, (ErrorCode::BadRequest, error.to_string()));
                let _ = self.flush_replies(&mut out, &mut pending).await;
                self.connection.close_gracefully(super::CLOSE_LINGER).await;
                return "protocol error";
            }
        }
    }

    /// Handles one frame from the client, appending replies to `out`.
    async fn serve_frame(
        &mut self,
        header: Header,
        out: &mut BytesMut,
        pending: &mut Vec<PendingCommit>,
    ) -> Result<(), ConnectionError> {
        let id = header.id;
        if self.login.is_required() && header.length > MAX_LOGIN_FRAME {
            return Err(ConnectionError::TooLong {
                limit: MAX_LOGIN_FRAME as usize,
            });
        }
        if header.kind == Kind::Data {
            // Data outside an upload (e.g. after a refused one): drop it.
            self.skip_body(header.length).await?;
            return Ok(());
        }
        if header.kind == Kind::End && self.refused_upload.take() == Some(id) {
            // The end of an upload whose request was refused unread.
            self.skip_body(header.length).await?;
            return Ok(());
        }
        let limit = self.config.max_command_len as u64;
        if header.length > limit {
            // A request is a path or two: one this long is refused unread,
            // so that it costs no memory, and the connection goes on.
            self.skip_body(header.length).await?;
            if header.kind == Kind::Upload {
                self.refused_upload = Some(id);
            }
            let reason = format!(
                "request too long: {} bytes (the limit is {limit})",
                header.length
            );
            tracing::info!(request = ?header.kind, outcome = %reason);
            failed(out, id, (ErrorCode::BadRequest, reason));
            return Ok(());
        }
        let body = self.connection.read_body(header.length).await?;
        let message = match Message::decode(header.kind, &body) {
            Ok(message) => message,
            Err(error) => {
                if header.kind == Kind::Upload {
                    self.refused_upload = Some(id);
                }
                failed(out, id, (ErrorCode::BadRequest, error.to_string()));
                return Ok(());
            }
        };
        drop(body);
        let started = std::time::Instant::now();
        let kind = message.kind();
        if self.login.is_required() && kind != Kind::Login {
            if let Message::Upload { resume: false, .. } = message {
                // The data follows at once: its frames are dropped as they
                // come (each bounded like any frame before a login).
                self.refused_upload = Some(id);
            }
            tracing::info!(request = ?kind, outcome = "login required");
            failed(
                out,
                id,
                (
                    ErrorCode::LoginRequired,
                    "log in first: this server needs an account (connect as NAME@HOST)".to_owned(),
                ),
            );
            return Ok(());
        }
        // Every request sees the effect of the uploads before it: those
        // waiting for a group commit are put in place first. Uploads may
        // keep waiting together unless this one goes below one of them.
        let commit_first = match &message {
            Message::Upload { path, .. } => self.directory.resolve(path).is_ok_and(|target| {
                pending.iter().any(|commit| {
                    target.starts_with(commit.upload.target()) && target != *commit.upload.target()
                })
            }),
            _ => true,
        };
        if commit_first {
            self.commit_pending(out, pending).await;
        }
        let result = match message {
            Message::Login { user, password } => self.log_in(&user, &password).await,
            Message::ChangeDirectory { path } => self.extended_change_directory(&path).await,
            Message::MakeDirectory { path, parents } => {
                self.extended_make_directory(&path, parents).await
            }
            Message::Remove { path, recursive } => self.extended_remove(&path, recursive).await,
            Message::Rename { from, to } => self.extended_rename(&from, &to).await,
            Message::Stat { path } => self.extended_stat(&path).await.map(|entry| {
                Message::Entry(entry).encode(id, out);
            }),
            Message::List { path } => self.extended_list(&path, id, out, pending).await?,
            Message::Upload { path, size, resume } => {
                return self
                    .extended_upload(id, &path, size, resume, out, pending)
                    .await;
            }
            Message::Download { path, offset } => {
                return self
                    .extended_download(id, &path, offset, out, pending)
                    .await;
            }
            // Only meaningful inside an upload.
            Message::End { .. } => Err((ErrorCode::BadRequest, "no upload in progress".to_owned())),
            other => Err((
                ErrorCode::BadRequest,
                format!("{:?} is not a request", other.kind()),
            )),
        };
        let elapsed = started.elapsed();
        match result {
            Ok(()) => {
                if kind != Kind::Stat {
                    Message::Done {
                        directory: self.directory.to_string(),
                    }
                    .encode(id, out);
                }
                tracing::info!(request = ?kind, ?elapsed, outcome = "ok");
            }
            Err(failure) => {
                tracing::info!(request = ?kind, ?elapsed, outcome = %failure.1);
                failed(out, id, failure);
            }
        }
        Ok(())
    }

    async fn extended_change_directory(&mut self, argument: &str) -> Result<(), Failure> {
        let target = self.extended_resolve(argument)?;
        self.storage
            .check_directory(&target)
            .await
            .map_err(|error| (code_of(&error), describe_plainly(error, argument)))?;
        self.directory = target;
        Ok(())
    }

    async fn extended_make_directory(
        &mut self,
        argument: &str,
        parents: bool,
    ) -> Result<(), Failure> {
        let target = self.extended_resolve(argument)?;
        let made = match parents {
            true => self.storage.make_directories(&target).await,
            false => self.storage.make_directory(&target).await,
        };
        made.map_err(|error| (code_of(&error), describe_plainly(error, argument)))
    }

    async fn extended_remove(&mut self, argument: &str, recursive: bool) -> Result<(), Failure> {
        let last = argument
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if matches!(last, "." | "..") {
            return Err((
                ErrorCode::BadRequest,
                describe_plainly(StorageError::RemoveDot, argument),
            ));
        }
        let target = self.extended_resolve(argument)?;
        if target.is_root() {
            return Err((
                ErrorCode::PermissionDenied,
                describe_plainly(StorageError::RemoveRoot, argument),
            ));
        }
        let removal = if recursive {
            Removal::Tree
        } else {
            Removal::Entry
        };
        let removed = self.storage.remove(&target, removal).await;
        removed.map_err(|error| (code_of(&error), describe_plainly(error, argument)))
    }

    async fn extended_rename(&mut self, from: &str, to: &str) -> Result<(), Failure> {
        let source = self.extended_resolve(from)?;
        let destination = self.extended_resolve(to)?;
        if source.is_root() {
            return Err((
                ErrorCode::PermissionDenied,
                describe_plainly(StorageError::PermissionDenied, from),
            ));
        }
        self.storage
            .rename(&source, &destination, names_directory(to))
            .await
            .map(drop)
            .map_err(|error| {
                (
                    code_of(&error),
                    describe_plainly(error, &format!("{from} -> {to}")),
                )
            })
    }

    async fn extended_stat(&mut self, argument: &str) -> Result<EntryInfo, Failure> {
        let target = self.extended_resolve(argument)?;
        let entry = self
            .storage
            .stat(&target)
            .await
            .map_err(|error| (code_of(&error), describe_plainly(error, argument)))?;
        Ok(entry_info(entry))
    }

    /// Sends a directory's entries as they are read, a listing frame per
    /// batch, writing them out whenever enough are held: a client that does
    /// not read holds the listing where it is, never the whole of it.
    async fn extended_list(
        &mut self,
        argument: &str,
        id: u32,
        out: &mut BytesMut,
        pending: &mut Vec<PendingCommit>,
    ) -> Result<Result<(), Failure>, ConnectionError> {
        let listed = match self.extended_resolve(argument) {
            Ok(target) => self.storage.list(&target).await,
            Err(failure) => return Ok(Err(failure)),
        };
        let failure = |error: StorageError| (code_of(&error), describe_plainly(error, argument));
        let mut listing = match listed {
            Ok(listing) => listing,
            Err(error) => return Ok(Err(failure(error))),
        };
        loop {
            match listing.next_batch().await {
                Ok(Some(batch)) => {
                    Message::Listing(batch.into_iter().map(entry_info).collect()).encode(id, out);
                    if out.len() >= MAX_HELD_REPLIES {
                        self.flush_replies(out, pending).await?;
                    }
                }
                Ok(None) => return Ok(Ok(())),
                Err(error) => return Ok(Err(failure(error))),
            }
        }
    }

    /// Receives an upload: optional resume offset, data frames, then the
    /// end frame with the whole file's digest, checked before the file is
    /// put in place.
    async fn extended_upload(
        &mut self,
        id: u32,
        argument: &str,
        size: u64,
        resume: bool,
        out: &mut BytesMut,
        pending: &mut Vec<PendingCommit>,
    ) -> Result<(), ConnectionError> {
        let started = std::time::Instant::now();
        let prepared = match self.extended_resolve(argument) {
            Ok(_)
                if self
                    .config
                    .max_upload_size
                    .is_some_and(|limit| size > limit) =>
            {
                Err((
                    ErrorCode::TooLarge,
                    describe_plainly(StorageError::TooLarge, argument),
                ))
            }
            // Only an upload that may be resumed needs a partial file kept
            // by path and size; others (pipelined small files) take a plain
            // temporary one.
            Ok(target) if resume => self
                .storage
                .resume_upload(&target, size)
                .await
                .map_err(|error| (code_of(&error), describe_plainly(error, argument))),
            Ok(target) => self
                .storage
                .create_upload(&target)
                .await
                .map(|upload| (upload, 0))
                .map_err(|error| (code_of(&error), describe_plainly(error, argument))),
            Err(failure) => Err(failure),
        };
        let (mut upload, held) = match prepared {
            Ok(prepared) => prepared,
            Err(failure) => {
                // The client may already be sending: skip to the end frame.
                if resume {
                    failed(out, id, failure);
                    return Ok(());
                }
                self.skip_transfer(id).await?;
                tracing::info!(request = "Upload", outcome = %failure.1);
                failed(out, id, failure);
                return Ok(());
            }
        };
        let mut hasher = Hasher::new();
        let mut offset = held;
        let prefix = async {
            let writer = upload.writer();
            if offset > 0 {
                writer.seek(io::SeekFrom::Start(0)).await?;
                digest::hash_prefix(writer, offset, &mut hasher).await?;
            } else if resume {
                writer.set_len(0).await?;
                writer.seek(io::SeekFrom::Start(0)).await?;
            }
            io::Result::Ok(())
        };
        if let Err(error) = prefix.await {
            tracing::warn!(%error, "cannot resume an upload; starting afresh");
            offset = 0;
            hasher = Hasher::new();
            let writer = upload.writer();
            writer.set_len(0).await?;
            writer.seek(io::SeekFrom::Start(0)).await?;
        }
        if resume {
            Message::UploadFrom { offset }.encode(id, out);
            self.flush_replies(out, pending).await?;
        }
        let mut received = offset;
        let mut sink_error = None;
        let digest = loop {
            let Some(header) = self.connection.read_header().await? else {
                return Err(ConnectionError::ClosedMidMessage);
            };
            match header.kind {
                Kind::Data if header.id == id && received.saturating_add(header.length) > size => {
                    // More than announced: dropped, and the upload fails
                    // (the size check below), so no client can fill the
                    // disk past the size it declared (and was allowed).
                    received = received.saturating_add(header.length);
                    self.connection
                        .read_data(header.length, &mut tokio::io::sink(), |_| {})
                        .await?
                        .ok();
                }
                Kind::Data if header.id == id => {
                    received += header.length;
                    let written = self
                        .connection
                        .read_data(header.length, upload.writer(), |chunk| {
                            hasher.update(chunk);
                        })
                        .await?;
                    if let Err(error) = written {
                        sink_error.get_or_insert(error);
                    }
                }
                Kind::End if header.id == id => {
                    let body = self.connection.read_body(header.length).await?;
                    match Message::decode(Kind::End, &body)? {
                        Message::End { digest } => break digest,
                        _ => unreachable!("an end frame decodes to End"),
                    }
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unexpected frame inside an upload",
                    )
                    .into());
                }
            }
        };
        let checked = check_upload(
            upload,
            argument,
            size,
            received,
            sink_error,
            hasher.finalize().into(),
            digest,
        );
        // While more requests are already waiting (a pipelining client), the
        // upload joins a group that is committed at once before the replies
        // are written; otherwise it is committed on its own, now.
        let outcome = match checked {
            Ok(upload) if self.connection.has_buffered_input() => {
                let at = out.len();
                Message::Done {
                    directory: self.directory.to_string(),
                }
                .encode(id, out);
                pending.push(PendingCommit {
                    upload,
                    reply: at..out.len(),
                    id,
                    argument: argument.to_owned(),
                });
                tracing::info!(request = "Upload", path = %excerpt(argument), bytes = received, elapsed = ?started.elapsed(), outcome = "ok, in a group commit");
                return Ok(());
            }
            Ok(upload) => upload
                .commit()
                .await
                .map_err(|error| (code_of(&error), describe_plainly(error, argument))),
            Err(failure) => Err(failure),
        };
        let elapsed = started.elapsed();
        match outcome {
            Ok(()) => {
                tracing::info!(request = "Upload", path = %excerpt(argument), bytes = received - offset, resumed_from = offset, ?elapsed, outcome = "ok");
                Message::Done {
                    directory: self.directory.to_string(),
                }
                .encode(id, out);
            }
            Err(failure) => {
                tracing::info!(request = "Upload", path = %excerpt(argument), ?elapsed, outcome = %failure.1);
                failed(out, id, failure);
            }
        }
        Ok(())
    }

    /// Reads and drops a frame's body, in bounded memory.
    async fn skip_body(&mut self, length: u64) -> Result<(), ConnectionError> {
        self.connection
            .read_data(length, &mut tokio::io::sink(), |_| {})
            .await?
            .ok();
        Ok(())
    }

    /// Reads and drops a refused upload's frames, up to its end frame.
    async fn skip_transfer(&mut self, id: u32) -> Result<(), ConnectionError> {
        loop {
            let Some(header) = self.connection.read_header().await? else {
                return Err(ConnectionError::ClosedMidMessage);
            };
            match header.kind {
                Kind::Data if header.id == id => {
                    self.connection
                        .read_data(header.length, &mut tokio::io::sink(), |_| {})
                        .await?
                        .ok();
                }
                Kind::End if header.id == id => {
                    self.connection.read_body(header.length).await?;
                    return Ok(());
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unexpected frame inside an upload",
                    )
                    .into());
                }
            }
        }
    }

    /// Sends a file from `offset`: its size, one data frame, and the end
    /// frame with the digest of the whole file.
    async fn extended_download(
        &mut self,
        id: u32,
        argument: &str,
        offset: u64,
        out: &mut BytesMut,
        pending: &mut Vec<PendingCommit>,
    ) -> Result<(), ConnectionError> {
        let started = std::time::Instant::now();
        let opened = match self.extended_resolve(argument) {
            Ok(target) => self
                .storage
                .open_file(&target)
                .await
                .map_err(|error| (code_of(&error), describe_plainly(error, argument))),
            Err(failure) => Err(failure),
        };
        let (file, size) = match opened {
            Ok((_, size)) if offset > size => {
                failed(
                    out,
                    id,
                    (
                        ErrorCode::BadRequest,
                        format!(
                            "offset {offset} is past the end ({size} bytes): {}",
                            excerpt(argument)
                        ),
                    ),
                );
                return Ok(());
            }
            Ok(opened) => opened,
            Err(failure) => {
                tracing::info!(request = "Download", path = %excerpt(argument), outcome = %failure.1);
                failed(out, id, failure);
                return Ok(());
            }
        };
        Message::Sending { size, offset }.encode(id, out);
        out.extend_from_slice(
            &Header {
                kind: Kind::Data,
                id,
                length: size - offset,
            }
            .encode(),
        );
        self.flush_replies(out, pending).await?;
        // The bytes go by sendfile, never through our memory; the digest of
        // the whole file is computed meanwhile on the blocking pool. Should
        // the file change between the two, the client's check fails and it
        // keeps nothing.
        let file = file.into_std().await;
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hashing = {
            let file = file.try_clone()?;
            let cancel = std::sync::Arc::clone(&cancel);
            let slots = std::sync::Arc::clone(&self.shared.hashing);
            // Hashes wait for a slot (one per core), so that a thousand
            // downloads do not become a thousand blocking threads.
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                tokio::task::spawn_blocking(move || {
                    digest::hash_file_blocking(&file, size, &cancel)
                })
                .await
            })
        };
        // If sending fails, the hash is abandoned rather than left to read
        // the rest of a possibly huge file on the blocking pool.
        let sent = self
            .connection
            .send_file(&file, offset, size - offset)
            .await;
        if sent.is_err() {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let sent = sent?;
        if sent < size - offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank during download",
            )
            .into());
        }
        let digest = hashing
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)??;
        Message::End { digest }.encode(id, out);
        tracing::info!(request = "Download", path = %excerpt(argument), bytes = sent, from = offset, elapsed = ?started.elapsed(), outcome = "ok");
        Ok(())
    }

    /// Writes the replies gathered so far, after committing the uploads
    /// they acknowledge as one group (a failed commit turns its `Done`
    /// into a `Failed`).
    async fn flush_replies(
        &mut self,
        out: &mut BytesMut,
        pending: &mut Vec<PendingCommit>,
    ) -> io::Result<()> {
        self.commit_pending(out, pending).await;
        if !out.is_empty() {
            self.connection.write_raw(out).await?;
            out.clear();
        }
        Ok(())
    }

    /// Commits the uploads waiting in `pending` as one group, turning the
    /// `Done` of each that fails into its `Failed`.
    async fn commit_pending(&mut self, out: &mut BytesMut, pending: &mut Vec<PendingCommit>) {
        if !pending.is_empty() {
            let group: Vec<PendingCommit> = std::mem::take(pending);
            let (uploads, replies): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|commit| (commit.upload, (commit.reply, commit.id, commit.argument)))
                .unzip();
            let mut results = self.storage.commit_group(uploads).await.into_iter();
            // From the back, so that the earlier ranges stay valid.
            let outcomes: Vec<_> = replies
                .into_iter()
                .map(|reply| (reply, results.next()))
                .collect();
            for ((range, id, argument), result) in outcomes.into_iter().rev() {
                let error = match result {
                    Some(Ok(())) => continue,
                    Some(Err(error)) => error,
                    None => StorageError::Io(io::ErrorKind::Other),
                };
                tracing::warn!(path = %excerpt(&argument), %error, "group commit failed");
                let mut failure = BytesMut::new();
                failed(
                    &mut failure,
                    id,
                    (code_of(&error), describe_plainly(error, &argument)),
                );
                let tail = out.split_off(range.end);
                out.truncate(range.start);
                out.extend_from_slice(&failure);
                out.extend_from_slice(&tail);
            }
        }
    }

    fn extended_resolve(&self, argument: &str) -> Result<VirtualPath, Failure> {
        self.directory
            .resolve(argument)
            .map_err(|error| (code_of(&error), describe_plainly(error, argument)))
    }
}

/// Checks a received upload: the whole file, unchanged.
fn check_upload(
    upload: Upload,
    argument: &str,
    size: u64,
    received: u64,
    sink_error: Option<io::Error>,
    actual: Digest,
    expected: Digest,
) -> Result<Upload, Failure> {
    if let Some(error) = sink_error {
        let error = StorageError::from(error);
        return Err((code_of(&error), describe_plainly(error, argument)));
    }
    if received != size {
        upload.discard();
        return Err((
            ErrorCode::BadRequest,
            format!(
                "received {received} bytes of a {size}-byte upload: {}",
                excerpt(argument)
            ),
        ));
    }
    if actual != expected {
        upload.discard();
        return Err((
            ErrorCode::DigestMismatch,
            format!("digest mismatch, nothing stored: {}", excerpt(argument)),
        ));
    }
    Ok(upload)
}

/// An upload verified and acknowledged in `out`, waiting for its group
/// commit; its reply is replaced if the commit fails.
pub(super) struct PendingCommit {
    upload: Upload,
    /// Where its `Done` reply sits in the reply buffer.
    reply: Range<usize>,
    id: u32,
    argument: String,
}

/// Appends a failure reply.
fn failed(out: &mut BytesMut, id: u32, (code, message): Failure) {
    Message::Failed { code, message }.encode(id, out);
}

/// The stable code for a storage error.
fn code_of(error: &StorageError) -> ErrorCode {
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
        StorageError::TooLarge => ErrorCode::TooLarge,
        StorageError::NoSpace => ErrorCode::NoSpace,
        StorageError::Io(_) => ErrorCode::Internal,
    }
}

/// A storage entry as the protocol describes it.
fn entry_info(entry: Entry) -> EntryInfo {
    EntryInfo {
        is_directory: entry.kind == EntryKind::Directory,
        size: entry.size,
        modified: entry
            .modified
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX)),
        name: entry.name,
    }
}
