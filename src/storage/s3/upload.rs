//! Uploads to the bucket: whole or not at all, resumable through any
//! server, in bounded memory.
//!
//! - A file of at most [`SMALL_FILE`] bytes is held in memory and put in
//!   one PUT at its commit, after its digest check, with its BLAKE3 in the
//!   object's metadata. In a group commit the PUTs of the group run at once.
//! - A larger one is a multipart upload on its own key, begun when the
//!   upload is: each part of [`PART_SIZE`] is streamed to the store as its
//!   bytes arrive (its length is known from the size), never held whole,
//!   with [`PARTS_IN_FLIGHT`] parts at most awaiting the store's answer.
//!   Nothing is visible before the completion, which comes only after the
//!   last byte and the digest check (the file's digest goes to a private
//!   record first, named in the object's metadata). Every failure aborts it,
//!   except for a resumable upload, whose parts wait for a resume.
//! - One of unknown size (the classic protocol) is held a part at a time.
//!
//! A resumable upload keeps its state (upload id, parts, their chaining
//! values) in a private object named by path and size, written after each
//! part: any server that reads it continues the same multipart upload,
//! with the digest of what it holds merged from the chaining values
//! ([`crate::digest::parts`]). In this process one upload at a time holds a
//! state (a second resumer starts afresh, as on disk); across servers two
//! resumers of one state are told apart by the store, which completes only
//! parts whose ETags the completion names, so the result is one upload's
//! bytes or a failure, never a mix.
//!
//! The sink hashes as bytes are written and hands them to a worker task,
//! which alone talks to the store; the two meet through a channel of
//! two chunks of 64 KiB, so an upload holds a few hundred KiB of the server's
//! memory (a small file: the file).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use super::download::{DIGEST_METADATA, DIGEST_TOKEN_METADATA, digest_record};
use super::multipart::RequestError;
use super::state::{PartState, UploadState, now, to_hex};
use super::upkeep::PARTIAL_MAX_AGE;
use super::{S3Bucket, storage_error};
use crate::digest::Digest;
use crate::digest::parts::{PART_SIZE, PartHash, PartHasher, combine};
use crate::storage::{Result, StorageError, UploadSink, VirtualPath};

/// The largest file put whole, from memory, in one request.
pub const SMALL_FILE: u64 = 1 << 20;

/// The most bytes one message from the sink to its worker carries.
const CHUNK: usize = 64 * 1024;

/// Messages waiting between the sink and its worker.
const CHANNEL: usize = 2;

/// Chunks waiting between the worker and a part's request.
const PART_CHANNEL: usize = 2;

/// Parts sent whole and still awaiting the store's answer, per upload.
pub const PARTS_IN_FLIGHT: usize = 2;

/// What the sink tells its worker.
enum Message {
    /// The next bytes.
    Data(Bytes),
    /// Everything came and was checked: make it visible.
    Commit {
        digest: Digest,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// An upload to the bucket, as the executor writes it.
pub(super) struct S3Upload {
    target: VirtualPath,
    held: u64,
    written: u64,
    /// The hashes of every whole part so far (held ones first).
    hashes: Arc<Mutex<Vec<PartHash>>>,
    /// The part being written.
    current: PartHasher,
    sender: mpsc::Sender<Message>,
    poll: PollSender<Message>,
    discarded: Arc<AtomicBool>,
    /// A commit handed to the worker, awaiting its answer.
    pending: Option<oneshot::Receiver<Result<()>>>,
    /// The state this upload holds in this process, if resumable.
    slot: Option<Arc<Slot>>,
}

/// One resumable state as this process uses it: held by at most one
/// upload, and by its worker until it has saved what it did.
struct Slot {
    in_use: AtomicBool,
    saving: Arc<tokio::sync::Mutex<()>>,
}

/// The slots of this process, by state key.
static SLOTS: Mutex<Option<HashMap<String, Weak<Slot>>>> = Mutex::new(None);

/// Takes the slot of `state_key`, unless another upload uses it.
fn take_slot(state_key: &str) -> Option<Arc<Slot>> {
    let mut slots = SLOTS.lock().unwrap_or_else(|poison| poison.into_inner());
    let slots = slots.get_or_insert_with(HashMap::new);
    slots.retain(|_, slot| slot.strong_count() > 0);
    let slot = slots
        .get(state_key)
        .and_then(Weak::upgrade)
        .unwrap_or_else(|| {
            let slot = Arc::new(Slot {
                in_use: AtomicBool::new(false),
                saving: Arc::new(tokio::sync::Mutex::new(())),
            });
            slots.insert(state_key.to_owned(), Arc::downgrade(&slot));
            slot
        });
    slot.in_use
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
        .then_some(slot)
}

impl S3Upload {
    /// Starts an upload of `key` (for `target`): with a size over
    /// [`SMALL_FILE`], its multipart upload is begun, or resumed when asked
    /// and a state of the same path and size is there.
    pub(super) async fn start(
        bucket: &S3Bucket,
        target: VirtualPath,
        key: String,
        size: Option<u64>,
        resume: bool,
    ) -> Result<S3Upload> {
        let hashes = Arc::new(Mutex::new(Vec::new()));
        let discarded = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            bucket: bucket.clone(),
            key,
            size,
            buffer: BytesMut::new(),
            received: 0,
            upload: None,
            hashes: Arc::clone(&hashes),
            discarded: Arc::clone(&discarded),
            saving: None,
        };
        let mut slot = None;
        if let Some(size) = size.filter(|size| *size > SMALL_FILE) {
            let state_key = format!(
                "{}partial/{}",
                bucket.shared.private,
                &blake3::hash(format!("{}\0{target}\0{size}", bucket.scope).as_bytes()).to_hex()
                    [..32]
            );
            slot = resume.then(|| take_slot(&state_key)).flatten();
            match &slot {
                Some(taken) => {
                    worker.saving = Some(Arc::clone(&taken.saving).lock_owned().await);
                    worker.resume_or_begin(state_key, size).await?;
                }
                None => worker.begin(None).await?,
            }
        }
        let held_parts = hashes.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        let held = held_parts * PART_SIZE;
        worker.received = held;
        let (sender, receiver) = mpsc::channel(CHANNEL);
        tokio::spawn(worker.run(receiver));
        Ok(S3Upload {
            target,
            held,
            written: 0,
            hashes,
            current: PartHasher::new(held_parts),
            poll: PollSender::new(sender.clone()),
            sender,
            discarded,
            pending: None,
            slot,
        })
    }

    /// Hashes the next bytes, part by part.
    fn hash(&mut self, mut bytes: &[u8]) {
        let mut offset = self.held + self.written;
        while !bytes.is_empty() {
            let room = (PART_SIZE - offset % PART_SIZE) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.current.update(now);
            offset += now.len() as u64;
            bytes = rest;
            if offset.is_multiple_of(PART_SIZE) {
                let whole = self.current.finish().expect("a whole part");
                self.hashes
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .push(whole);
                self.current = PartHasher::new(offset / PART_SIZE);
            }
        }
    }

    /// Why the worker stopped, as the writer sees it (the store's words
    /// are in the log).
    fn failed(&self) -> io::Error {
        io::Error::other(StorageError::StoreFailed)
    }
}

impl AsyncWrite for S3Upload {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buffer.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match this.poll.poll_reserve(context) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Err(this.failed())),
            Poll::Ready(Ok(())) => {}
        }
        let count = buffer.len().min(CHUNK);
        // Hashed before it is sent: a part's hash is there before the
        // worker can need it.
        this.hash(&buffer[..count]);
        let chunk = Bytes::copy_from_slice(&buffer[..count]);
        if this.poll.send_item(Message::Data(chunk)).is_err() {
            return Poll::Ready(Err(this.failed()));
        }
        this.written += count as u64;
        Poll::Ready(Ok(count))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[async_trait::async_trait]
impl UploadSink for S3Upload {
    fn target(&self) -> &VirtualPath {
        &self.target
    }

    fn held(&self) -> u64 {
        self.held
    }

    fn digest(&self) -> Digest {
        let mut parts = self
            .hashes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        parts.extend(self.current.finish());
        combine(&parts, self.held + self.written)
    }

    fn len(&self) -> u64 {
        self.held + self.written
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.prepare().await?;
        self.publish().await
    }

    /// Hands the commit to the worker: the PUTs of a group run at once.
    async fn prepare(&mut self) -> Result<()> {
        if self.pending.is_some() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let digest = self.digest();
        if self
            .sender
            .send(Message::Commit { digest, reply })
            .await
            .is_err()
        {
            return Err(StorageError::StoreFailed);
        }
        self.pending = Some(answer);
        Ok(())
    }

    async fn publish(mut self: Box<Self>) -> Result<()> {
        let Some(answer) = self.pending.take() else {
            return Err(StorageError::StoreFailed);
        };
        answer.await.unwrap_or(Err(StorageError::StoreFailed))
    }

    fn discard(self: Box<Self>) {
        self.discarded.store(true, Ordering::Release);
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.in_use.store(false, Ordering::Release);
        }
    }
}

/// A storage failure said in the log; the client sees an i/o error.
fn io_failure(message: String) -> StorageError {
    tracing::warn!(%message, "an upload to the object store failed");
    StorageError::StoreFailed
}

/// What talks to the store for one upload.
struct Worker {
    bucket: S3Bucket,
    key: String,
    size: Option<u64>,
    /// A small file's bytes, or (size unknown) the part being filled.
    buffer: BytesMut,
    /// Bytes received, held ones included.
    received: u64,
    upload: Option<Multipart>,
    hashes: Arc<Mutex<Vec<PartHash>>>,
    discarded: Arc<AtomicBool>,
    /// Held while a resumable upload may still change its state.
    saving: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// A multipart upload in progress.
struct Multipart {
    state: UploadState,
    state_key: String,
    resumable: bool,
    /// The part being streamed.
    current: Option<StreamedPart>,
    /// The last part, not whole, once the store took it.
    last: Option<(u32, String)>,
    /// Parts sent, awaiting the store's answer.
    in_flight: VecDeque<(u32, JoinHandle<std::result::Result<String, RequestError>>)>,
}

/// A part whose bytes are being streamed to its request.
struct StreamedPart {
    number: u32,
    remaining: u64,
    sender: mpsc::Sender<io::Result<Bytes>>,
    request: JoinHandle<std::result::Result<String, RequestError>>,
}

impl Multipart {
    fn next_number(&self) -> u32 {
        (self.state.parts.len()
            + usize::from(self.last.is_some())
            + self.in_flight.len()
            + usize::from(self.current.is_some())
            + 1) as u32
    }
}

impl Worker {
    /// Begins a multipart upload, resumable under `state_key` if given.
    async fn begin(&mut self, state_key: Option<String>) -> Result<()> {
        let token = super::upkeep::random_name();
        let upload_id = self
            .bucket
            .shared
            .multipart
            .create(&self.key, &[(DIGEST_TOKEN_METADATA, &token)])
            .await
            .map_err(|error| io_failure(error.to_string()))?;
        let resumable = state_key.is_some();
        let state_key =
            state_key.unwrap_or_else(|| format!("{}uploads/{token}", self.bucket.shared.private));
        let mut upload = Multipart {
            state: UploadState {
                key: self.key.clone(),
                upload_id,
                size: self.size,
                part_size: PART_SIZE,
                token,
                owner: (!resumable).then(|| self.bucket.shared.instance.0.clone()),
                updated: now(),
                parts: Vec::new(),
            },
            state_key,
            resumable,
            current: None,
            last: None,
            in_flight: VecDeque::new(),
        };
        if let Err(error) = self.save(&mut upload).await {
            let _ = self
                .bucket
                .shared
                .multipart
                .abort(&self.key, &upload.state.upload_id)
                .await;
            return Err(error);
        }
        self.upload = Some(upload);
        Ok(())
    }

    /// Continues the upload whose state is at `state_key` if it is one of
    /// this path and size, not too old; else begins one there.
    async fn resume_or_begin(&mut self, state_key: String, size: u64) -> Result<()> {
        let operator = self.bucket.operator();
        if let Ok(bytes) = operator.read(&state_key).await
            && let Some(state) = UploadState::parse(&bytes.to_vec())
        {
            let fresh = now().saturating_sub(state.updated) < PARTIAL_MAX_AGE.as_secs();
            match state
                .resumable_parts(size)
                .filter(|_| fresh && state.key == self.key)
            {
                Some(hashes) => {
                    *self.hashes.lock().unwrap_or_else(|p| p.into_inner()) = hashes;
                    self.upload = Some(Multipart {
                        state,
                        state_key,
                        resumable: true,
                        current: None,
                        last: None,
                        in_flight: VecDeque::new(),
                    });
                    return Ok(());
                }
                None => {
                    let _ = self
                        .bucket
                        .shared
                        .multipart
                        .abort(&state.key, &state.upload_id)
                        .await;
                }
            }
        }
        self.begin(Some(state_key)).await
    }

    /// Writes a multipart upload's state.
    async fn save(&self, upload: &mut Multipart) -> Result<()> {
        upload.state.updated = now();
        self.bucket
            .operator()
            .write(&upload.state_key, upload.state.to_bytes())
            .await
            .map(drop)
            .map_err(storage_error)
    }

    /// Serves the sink until it commits, or goes.
    async fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        loop {
            match receiver.recv().await {
                Some(Message::Data(bytes)) => {
                    if let Err(error) = self.take(bytes).await {
                        tracing::warn!(key = %self.key, %error, "an upload to the object store failed");
                        drop(receiver);
                        self.abandon().await;
                        return;
                    }
                }
                Some(Message::Commit { digest, reply }) => {
                    let committed = self.commit(digest).await;
                    let _ = reply.send(committed);
                    return;
                }
                None => {
                    self.abandon().await;
                    return;
                }
            }
        }
    }

    /// Takes the next bytes: held, or streamed into the current part.
    async fn take(&mut self, mut bytes: Bytes) -> std::result::Result<(), String> {
        let Some(size) = self.size else {
            return self.take_unsized(bytes).await;
        };
        if self.received + bytes.len() as u64 > size {
            return Err("more bytes than the upload's size".to_owned());
        }
        if self.upload.is_none() {
            self.received += bytes.len() as u64;
            self.buffer.extend_from_slice(&bytes);
            return Ok(());
        }
        while !bytes.is_empty() {
            let upload = self.upload.as_mut().expect("a multipart upload");
            if upload.current.is_none() {
                let number = upload.next_number();
                let length = PART_SIZE.min(size - self.received);
                let (sender, receiver) = mpsc::channel(PART_CHANNEL);
                let body = reqwest::Body::wrap_stream(futures::stream::unfold(
                    receiver,
                    |mut receiver: mpsc::Receiver<io::Result<Bytes>>| async move {
                        receiver.recv().await.map(|item| (item, receiver))
                    },
                ));
                let request = send_part(
                    Arc::clone(&self.bucket.shared),
                    self.key.clone(),
                    upload.state.upload_id.clone(),
                    number,
                    length,
                    body,
                );
                upload.current = Some(StreamedPart {
                    number,
                    remaining: length,
                    sender,
                    request,
                });
            }
            let part = upload.current.as_mut().expect("a part");
            let take = bytes.len().min(part.remaining as usize);
            let chunk = bytes.split_to(take);
            if part.sender.send(Ok(chunk)).await.is_err() {
                let part = upload.current.take().expect("a part");
                return Err(match part.request.await {
                    Ok(Err(error)) => error.to_string(),
                    _ => "the store stopped taking a part".to_owned(),
                });
            }
            part.remaining -= take as u64;
            self.received += take as u64;
            if part.remaining == 0 {
                let part = upload.current.take().expect("a part");
                upload.in_flight.push_back((part.number, part.request));
            }
            self.settle(PARTS_IN_FLIGHT).await?;
        }
        Ok(())
    }

    /// Takes bytes of an upload of unknown size: held a part at a time.
    async fn take_unsized(&mut self, bytes: Bytes) -> std::result::Result<(), String> {
        self.received += bytes.len() as u64;
        self.buffer.extend_from_slice(&bytes);
        while self.buffer.len() as u64 >= PART_SIZE {
            if self.upload.is_none() {
                self.begin(None).await.map_err(|error| error.to_string())?;
            }
            let part = self.buffer.split_to(PART_SIZE as usize).freeze();
            self.send_whole_part(part).await?;
        }
        Ok(())
    }

    /// Sends a part held whole.
    async fn send_whole_part(&mut self, part: Bytes) -> std::result::Result<(), String> {
        let upload = self.upload.as_ref().expect("a multipart upload");
        let number = upload.next_number();
        let length = part.len() as u64;
        let request = send_part(
            Arc::clone(&self.bucket.shared),
            self.key.clone(),
            upload.state.upload_id.clone(),
            number,
            length,
            reqwest::Body::from(part),
        );
        let upload = self.upload.as_mut().expect("a multipart upload");
        upload.in_flight.push_back((number, request));
        self.settle(PARTS_IN_FLIGHT).await
    }

    /// Waits for the oldest parts sent until at most `most` await an
    /// answer, recording each (and a resumable upload's state).
    async fn settle(&mut self, most: usize) -> std::result::Result<(), String> {
        loop {
            let upload = self.upload.as_mut().expect("a multipart upload");
            // Parts the store answered already are recorded at once, so that
            // a resume finds them.
            let answered = upload
                .in_flight
                .front()
                .is_some_and(|(_, request)| request.is_finished());
            if upload.in_flight.len() <= most && !answered {
                return Ok(());
            }
            let (number, request) = upload.in_flight.pop_front().expect("a part in flight");
            let etag = match request.await {
                Ok(Ok(etag)) => etag,
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("a part's request was lost".to_owned()),
            };
            let hash = self
                .hashes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(number as usize - 1)
                .copied();
            let Some(hash) = hash else {
                // The last part, not whole: only the completion names it,
                // and a state never holds it (a resume takes whole parts).
                upload.last = Some((number, etag));
                continue;
            };
            upload.state.parts.push(PartState::new(number, etag, &hash));
            if upload.resumable {
                let mut upload = self.upload.take().expect("a multipart upload");
                if let Err(error) = self.save(&mut upload).await {
                    tracing::warn!(%error, "could not save an upload's state; a resume will send more again");
                }
                self.upload = Some(upload);
            }
        }
    }

    /// Makes the upload visible: one PUT for a file held whole, or the
    /// multipart completion once every part is in.
    async fn commit(&mut self, digest: Digest) -> Result<()> {
        if self.size.is_some_and(|size| size != self.received) {
            self.abandon().await;
            return Err(io_failure(
                "an upload committed before its last byte".to_owned(),
            ));
        }
        if self.upload.is_none() {
            let bytes = std::mem::take(&mut self.buffer).freeze();
            return self
                .bucket
                .operator()
                .write_with(&self.key, bytes)
                .user_metadata([(DIGEST_METADATA.to_owned(), to_hex(&digest))])
                .await
                .map(drop)
                .map_err(storage_error);
        }
        match self.complete(digest).await {
            Ok(()) => Ok(()),
            Err(error) => {
                let definite = error.code.as_deref().is_some_and(|code| {
                    matches!(code, "InvalidPart" | "InvalidPartOrder" | "NoSuchUpload")
                });
                if definite {
                    self.discarded.store(true, Ordering::Release);
                }
                self.abandon().await;
                Err(io_failure(error.to_string()))
            }
        }
    }

    /// Sends what is left, awaits every part, records the digest, completes.
    async fn complete(&mut self, digest: Digest) -> std::result::Result<(), RequestError> {
        let failed = |message: String| RequestError {
            status: None,
            code: None,
            message,
        };
        if !self.buffer.is_empty() {
            let part = std::mem::take(&mut self.buffer).freeze();
            self.send_whole_part(part).await.map_err(failed)?;
        }
        self.settle(0).await.map_err(failed)?;
        let upload = self.upload.as_ref().expect("a multipart upload");
        let record = self.bucket.digest_key(&upload.state.token);
        self.bucket
            .operator()
            .write(&record, digest_record(self.received, &digest))
            .await
            .map_err(|error| failed(error.to_string()))?;
        let parts: Vec<(u32, String)> = upload
            .state
            .parts
            .iter()
            .map(|part| (part.number, part.etag.clone()))
            .chain(upload.last.clone())
            .collect();
        self.bucket
            .shared
            .multipart
            .complete(&self.key, &upload.state.upload_id, &parts)
            .await?;
        let _ = self.bucket.operator().delete(&upload.state_key).await;
        self.upload = None;
        Ok(())
    }

    /// The sink went without committing (or failed, or was discarded): a
    /// resumable upload keeps what the store holds for a resume; any other
    /// is aborted.
    async fn abandon(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        if let Some(part) = upload.current.take() {
            // Cut the part short: the store keeps none of it. (Its request
            // may still wait for its turn: it goes without one.)
            let _ = part
                .sender
                .try_send(Err(io::Error::other("upload interrupted")));
            drop(part.sender);
            part.request.abort();
            let _ = part.request.await;
        }
        let keep = upload.resumable && !self.discarded.load(Ordering::Acquire);
        if keep {
            // What the store took is kept; a part that failed ends the list.
            while let Some((number, request)) = upload.in_flight.pop_front() {
                let Ok(Ok(etag)) = request.await else { break };
                let hash = self
                    .hashes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(number as usize - 1)
                    .copied();
                let Some(hash) = hash else { break };
                upload.state.parts.push(PartState::new(number, etag, &hash));
            }
            upload.in_flight.clear();
            if let Err(error) = self.save(&mut upload).await {
                tracing::warn!(%error, "could not save an interrupted upload's state");
            }
            return;
        }
        for (_, request) in upload.in_flight.drain(..) {
            request.abort();
        }
        if let Err(error) = self
            .bucket
            .shared
            .multipart
            .abort(&self.key, &upload.state.upload_id)
            .await
        {
            tracing::warn!(%error, key = %self.key, "could not abort an upload; the next sweep will");
            return;
        }
        let _ = self.bucket.operator().delete(&upload.state_key).await;
    }
}

/// Starts the request of one part (which waits for its turn:
/// [`super::turns`]).
fn send_part(
    shared: Arc<super::Shared>,
    key: String,
    upload_id: String,
    number: u32,
    length: u64,
    body: reqwest::Body,
) -> JoinHandle<std::result::Result<String, RequestError>> {
    tokio::spawn(async move {
        shared
            .multipart
            .upload_part(&key, &upload_id, number, length, body)
            .await
    })
}
