//! The session after the client switched to the extended protocol: binary
//! frames, no pacing, requests handled in order as they arrive (so a client
//! may pipeline many), replies batched until the input runs dry, and
//! uploads that arrive one after another committed as a group. Every rule
//! is the executor's: this module only translates frames.

use std::io;
use std::ops::Range;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::connection::ConnectionError;
use crate::executor::{
    IncomingUpload, Outcome, OutgoingDownload, OutgoingListing, ReceiveProblem, Received,
    VerifiedUpload,
};
use crate::operation::{ErrorCode, Failure, Operation};
use crate::protocol::extended::{Header, Kind, Message};
use crate::storage::VirtualPath;
use crate::storage::path::Names;

/// The most uploads committed in one group (each holds an open file).
const MAX_GROUP_COMMIT: usize = 256;

/// The most reply bytes held back while a pipelining client keeps sending;
/// past it they are written, and TCP slows a client that does not read.
const MAX_HELD_REPLIES: usize = 256 * 1024;

/// The longest frame a client may send before it has logged in: a login
/// (a name and a password) needs no more.
pub(crate) const MAX_LOGIN_FRAME: u64 = 4096;

/// An upload verified and acknowledged in the replies, waiting for its
/// group commit; its reply is replaced if the commit fails.
struct PendingCommit {
    upload: VerifiedUpload,
    /// Where its `Done` reply sits in the reply buffer.
    reply: Range<usize>,
    id: u32,
}

/// The extended protocol's state beside the session's.
struct Frames<'s> {
    session: &'s mut Session,
    /// Replies not yet written.
    out: BytesMut,
    /// Uploads waiting for their group commit.
    pending: Vec<PendingCommit>,
    /// Where they go.
    pending_targets: std::collections::HashSet<VirtualPath>,
    /// An upload refused before its data: its data and end frames are
    /// dropped without a second answer.
    refused_upload: Option<u32>,
}

impl Session {
    /// Serves extended frames until the client leaves; returns why it ended.
    pub(super) async fn run_extended(&mut self, shutdown: &CancellationToken) -> &'static str {
        self.pacer = None;
        // Frames carry any name: lengths, not lines, delimit them.
        self.executor.accept_any_names();
        Frames {
            session: self,
            out: BytesMut::new(),
            pending: Vec::new(),
            pending_targets: std::collections::HashSet::new(),
            refused_upload: None,
        }
        .run(shutdown)
        .await
    }
}

impl Frames<'_> {
    async fn run(&mut self, shutdown: &CancellationToken) -> &'static str {
        loop {
            let held_back =
                self.pending.len() >= MAX_GROUP_COMMIT || self.out.len() >= MAX_HELD_REPLIES;
            if (!self.session.connection.has_buffered_input() || held_back)
                && !self.out.is_empty()
                && self.flush().await.is_err()
            {
                return "connection failed";
            }
            if self.session.executor.login().expired() {
                tracing::info!("login timed out");
                return self
                    .close_with(
                        Failure::new(ErrorCode::LoginRequired, "login timed out"),
                        "login timed out",
                    )
                    .await;
            }
            let header = tokio::select! {
                biased;
                header = self.session.connection.read_header() => header,
                // A client trickling a frame cannot outlast its login.
                () = self.session.executor.login().overdue() => continue,
                _ = shutdown.cancelled() => {
                    let _ = self.flush().await;
                    return "server shutting down";
                }
            };
            let header = match header {
                Ok(Some(header)) => header,
                Ok(None) => return "client closed the connection",
                Err(ConnectionError::Frame(error)) => {
                    // The stream cannot be resynchronised after a bad header.
                    let failure = Failure::new(ErrorCode::BadRequest, error.to_string());
                    return self.close_with(failure, "protocol error").await;
                }
                Err(ConnectionError::Io(error)) if error.kind() == io::ErrorKind::TimedOut => {
                    if self.session.executor.login().is_required() {
                        continue; // Said and closed at the top of the loop.
                    }
                    return "idle timeout";
                }
                Err(_) => return "connection failed",
            };
            // Before a login, a frame (the data of an upload included) must
            // end by the login's deadline.
            let served = match self.session.executor.login().deadline() {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.serve_frame(header)).await {
                        Ok(served) => served,
                        Err(_) => continue,
                    }
                }
                None => self.serve_frame(header).await,
            };
            let Err(error) = served else {
                continue;
            };
            tracing::debug!(%error, "extended session failed");
            let failure = match &error {
                ConnectionError::TooLong { limit } => Failure::new(
                    ErrorCode::BadRequest,
                    format!("before logging in, a frame may hold at most {limit} bytes; closing"),
                ),
                ConnectionError::Frame(_) => Failure::new(ErrorCode::BadRequest, error.to_string()),
                ConnectionError::Io(io) if io.kind() == io::ErrorKind::InvalidData => {
                    Failure::new(ErrorCode::BadRequest, error.to_string())
                }
                _ => return "connection failed",
            };
            // Out of step for good: say why before closing.
            return self.close_with(failure, "protocol error").await;
        }
    }

    /// Says `failure` for the whole connection (id 0), then closes.
    async fn close_with(&mut self, failure: Failure, reason: &'static str) -> &'static str {
        tracing::info!(outcome = %failure.message, "closing the connection");
        failed(&mut self.out, 0, failure);
        let _ = self.flush().await;
        self.session
            .connection
            .close_gracefully(super::CLOSE_LINGER)
            .await;
        reason
    }

    /// Handles one frame from the client, appending replies.
    async fn serve_frame(&mut self, header: Header) -> Result<(), ConnectionError> {
        let id = header.id;
        tracing::debug!(kind = ?header.kind, id, length = header.length, "frame");
        if self.session.executor.login().is_required() && header.length > MAX_LOGIN_FRAME {
            return Err(ConnectionError::TooLong {
                limit: MAX_LOGIN_FRAME as usize,
            });
        }
        if header.kind == Kind::Data {
            // Data outside an upload (e.g. after a refused one): drop it.
            return self.skip_body(header.length).await;
        }
        if header.kind == Kind::End && self.refused_upload.take() == Some(id) {
            // The end of an upload refused before its data.
            return self.skip_body(header.length).await;
        }
        let limit = self.session.executor.config().max_command_len as u64;
        if header.length > limit {
            // A request is a path or two: one this long is refused unread,
            // so that it costs no memory, and the connection goes on.
            self.skip_body(header.length).await?;
            self.refuse_unread(
                header,
                format!(
                    "request too long: {} bytes (the limit is {limit})",
                    header.length
                ),
            );
            return Ok(());
        }
        let body = self.session.connection.read_body(header.length).await?;
        let operation = match Message::decode(header.kind, &body).map(Message::into_operation) {
            Ok(Ok(operation)) => operation,
            Ok(Err(Message::End { .. })) => {
                self.refuse_unread(header, "no upload in progress".to_owned());
                return Ok(());
            }
            Ok(Err(other)) => {
                self.refuse_unread(header, format!("{:?} is not a request", other.kind()));
                return Ok(());
            }
            Err(error) => {
                self.refuse_unread(header, error.to_string());
                return Ok(());
            }
        };
        drop(body);
        self.run_operation(id, operation).await
    }

    /// Answers a request that could not be read as an operation.
    fn refuse_unread(&mut self, header: Header, reason: String) {
        if header.kind == Kind::Upload {
            self.refused_upload = Some(header.id);
        }
        let failure = Failure::new(ErrorCode::BadRequest, reason);
        self.session
            .executor
            .refused_unread(&format!("{:?}", header.kind), &failure);
        failed(&mut self.out, header.id, failure);
    }

    async fn run_operation(
        &mut self,
        id: u32,
        operation: Operation,
    ) -> Result<(), ConnectionError> {
        // Every request sees the effect of the uploads before it: those
        // waiting for a group commit are put in place first. Uploads may
        // keep waiting together unless this one goes below one of them.
        let commit_first = match &operation {
            Operation::Upload { path, .. } => self
                .session
                .executor
                .directory()
                .resolve_names(path, Names::Any)
                .is_ok_and(|target| {
                    let mut ancestor = target.parent();
                    loop {
                        if self.pending_targets.contains(&ancestor) {
                            break true;
                        }
                        if ancestor.is_root() {
                            break false;
                        }
                        ancestor = ancestor.parent();
                    }
                }),
            _ => true,
        };
        if commit_first {
            self.commit_pending().await;
        }
        let refusable_upload = matches!(operation, Operation::Upload { resume: false, .. });
        let was_required = self.session.executor.login().is_required();
        let outcome = self.session.executor.execute(operation).await;
        if was_required && !self.session.executor.login().is_required() {
            self.session.set_read_timeout();
        }
        match outcome {
            Ok(Outcome::Done) => self.done(id),
            Ok(Outcome::Entry(entry)) => Message::Entry(entry).encode(id, &mut self.out),
            Ok(Outcome::Listing(listing)) => self.send_listing(id, listing).await?,
            Ok(Outcome::Upload(upload)) => self.receive(id, upload).await?,
            Ok(Outcome::Download(download)) => self.send_file(id, download).await?,
            // The extended protocol has no size request (a stat says it) and
            // no exit (the client closes): neither comes from a frame.
            Ok(Outcome::Size(_) | Outcome::Exit) => self.done(id),
            Err(failure) => {
                if refusable_upload {
                    // The data follows at once: its frames are dropped.
                    self.refused_upload = Some(id);
                }
                failed(&mut self.out, id, failure);
            }
        }
        Ok(())
    }

    fn done(&mut self, id: u32) {
        Message::Done {
            directory: self.session.executor.directory().to_string(),
        }
        .encode(id, &mut self.out);
    }

    /// Sends a directory's entries as they are read, a listing frame per
    /// batch, writing them out whenever enough are held: a client that does
    /// not read holds the listing where it is, never the whole of it.
    async fn send_listing(
        &mut self,
        id: u32,
        mut outgoing: OutgoingListing,
    ) -> Result<(), ConnectionError> {
        let mut entries = 0;
        let failure = loop {
            match outgoing.listing.next_batch().await {
                Ok(Some(batch)) => {
                    entries += batch.len() as u64;
                    Message::Listing(batch).encode(id, &mut self.out);
                    if self.out.len() >= MAX_HELD_REPLIES {
                        self.flush().await?;
                    }
                }
                Ok(None) => break None,
                Err(error) => break Some(error),
            }
        };
        match self
            .session
            .executor
            .finish_listing(outgoing, entries, failure)
        {
            Ok(()) => self.done(id),
            Err(failure) => failed(&mut self.out, id, failure),
        }
        Ok(())
    }

    /// Receives an upload's data frames and end frame (after saying where
    /// to resume, when asked), then commits it, or leaves it for a group
    /// commit when more requests are already waiting.
    async fn receive(
        &mut self,
        id: u32,
        mut upload: IncomingUpload,
    ) -> Result<(), ConnectionError> {
        if upload.resumes() {
            Message::UploadFrom {
                offset: upload.held(),
            }
            .encode(id, &mut self.out);
            self.flush().await?;
        }
        let size = upload.size().unwrap_or(0);
        let held = upload.held();
        let mut received = 0u64;
        let mut problem = None;
        let slice = upload.sink().slice_size();
        let digest = loop {
            let connection = &mut self.session.connection;
            let Some(header) = connection.read_header().await? else {
                return Err(ConnectionError::ClosedMidMessage);
            };
            match header.kind {
                Kind::Data if header.id == id => {
                    // More than announced is dropped, and the upload fails (the
                    // size check), so no client can fill the disk past the size
                    // it declared (and was allowed).
                    let over = held.saturating_add(received).saturating_add(header.length) > size;
                    received = received.saturating_add(header.length);
                    let mut remaining = header.length;
                    while remaining > 0 {
                        // Each chunk goes to storage as it is, without a copy.
                        let chunk = connection.read_data_chunk(remaining, slice).await?;
                        remaining -= chunk.len() as u64;
                        if over || problem.is_some() {
                            continue;
                        }
                        if let Err(error) = upload.sink().write_chunk(chunk).await {
                            problem = Some(ReceiveProblem::Storage(error.into()));
                        }
                    }
                }
                Kind::End if header.id == id => {
                    let body = connection.read_body(header.length).await?;
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
        let received = Received {
            bytes: received,
            digest: Some(digest),
            problem,
        };
        let verified = match self.session.executor.verify_upload(upload, received).await {
            Ok(verified) => verified,
            Err(failure) => {
                failed(&mut self.out, id, failure);
                return Ok(());
            }
        };
        if self.session.connection.has_buffered_input() {
            // More requests are already waiting (a pipelining client): the
            // upload joins a group committed before the replies are written.
            let at = self.out.len();
            self.done(id);
            let reply = at..self.out.len();
            self.pending_targets.insert(verified.target().clone());
            self.pending.push(PendingCommit {
                upload: verified,
                reply,
                id,
            });
            return Ok(());
        }
        match self.session.executor.commit(verified).await {
            Ok(()) => self.done(id),
            Err(failure) => failed(&mut self.out, id, failure),
        }
        Ok(())
    }

    /// Sends a file from its offset: its size, one data frame, and the end
    /// frame with the digest of the whole file, computed meanwhile.
    async fn send_file(
        &mut self,
        id: u32,
        outgoing: OutgoingDownload,
    ) -> Result<(), ConnectionError> {
        let (size, offset) = (outgoing.download.size, outgoing.offset);
        let length = size - offset;
        Message::Sending { size, offset }.encode(id, &mut self.out);
        let data = Header {
            kind: Kind::Data,
            id,
            length,
        };
        self.out.extend_from_slice(&data.encode());
        self.flush().await?;
        // Should the file change between the digest and the sending, the
        // client's check fails and it keeps nothing. If sending fails, the
        // digest job is dropped, which abandons it.
        let digest = outgoing.download.digest();
        let connection = &mut self.session.connection;
        let mut sent = 0;
        let sending = match outgoing.download.local_file() {
            // On plain TCP straight from the page cache (sendfile).
            Some(file) => connection.send_file(file, offset, length, &mut sent).await,
            None => match outgoing.download.reader(offset).await {
                Ok(mut reader) => {
                    let mut reader = (&mut reader).take(length);
                    connection.write_from(&mut reader, &mut sent).await
                }
                Err(error) => Err(io::Error::other(error)),
            },
        };
        if let Err(error) = sending {
            let failure = Failure::new(ErrorCode::Internal, format!("sending failed: {error}"));
            let _ = self
                .session
                .executor
                .finish_download(outgoing, sent, Some(failure));
            return Err(error.into());
        }
        if sent < length {
            let failure = Failure::new(ErrorCode::Internal, "the file shrank while being sent");
            let _ = self
                .session
                .executor
                .finish_download(outgoing, sent, Some(failure));
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank during download",
            )
            .into());
        }
        match digest.await {
            Ok(digest) => {
                Message::End { digest }.encode(id, &mut self.out);
                let _ = self.session.executor.finish_download(outgoing, sent, None);
                Ok(())
            }
            Err(error) => {
                // The data frame is complete, but no digest can end it: the
                // connection cannot go on truthfully.
                let failure = self
                    .session
                    .executor
                    .failure(error, outgoing.argument())
                    .await;
                let _ = self
                    .session
                    .executor
                    .finish_download(outgoing, sent, Some(failure));
                Err(io::Error::other("cannot compute a download's digest").into())
            }
        }
    }

    /// Reads and drops a frame's body, in bounded memory.
    async fn skip_body(&mut self, length: u64) -> Result<(), ConnectionError> {
        self.session
            .connection
            .read_data(length, &mut tokio::io::sink(), |_| {})
            .await?
            .ok();
        Ok(())
    }

    /// Writes the replies gathered so far, after committing the uploads
    /// they acknowledge.
    async fn flush(&mut self) -> io::Result<()> {
        self.commit_pending().await;
        if !self.out.is_empty() {
            self.session.connection.write_raw(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Commits the uploads waiting as one group, turning the `Done` of each
    /// that fails into its `Failed`.
    async fn commit_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let group = std::mem::take(&mut self.pending);
        self.pending_targets.clear();
        let started = tokio::time::Instant::now();
        let size = group.len();
        let (uploads, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|commit| (commit.upload, (commit.reply, commit.id)))
            .unzip();
        let results = self.session.executor.commit_group(uploads).await;
        tracing::debug!(uploads = size, elapsed = ?started.elapsed(), "group commit");
        // From the back, so that the earlier ranges stay valid.
        for ((range, id), result) in replies.into_iter().zip(results).rev() {
            let Err(failure) = result else {
                continue;
            };
            let mut replacement = BytesMut::new();
            failed(&mut replacement, id, failure);
            let tail = self.out.split_off(range.end);
            self.out.truncate(range.start);
            self.out.extend_from_slice(&replacement);
            self.out.extend_from_slice(&tail);
        }
    }
}

/// Appends a failure reply.
fn failed(out: &mut BytesMut, id: u32, failure: Failure) {
    Message::Failed {
        code: failure.code,
        message: failure.message,
    }
    .encode(id, out);
}
