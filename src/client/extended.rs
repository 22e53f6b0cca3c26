//! The extended protocol, client side: binary frames after the in-band
//! switch (`docs/PROTOCOL.md`), verified transfers, resume, pipelining.
//!
//! The connection is split in two halves, each wrapped in a
//! [`Connection`]: [`Requests`] writes frames, [`Replies`] reads them. A
//! single request writes, then reads. A pipeline ([`Extended::pipeline`])
//! runs both halves at once in the caller's task: the writer sends the
//! frames of many jobs without waiting, the reader takes the answers as
//! they come, so that neither side's buffers can fill while the other
//! waits. The server answers in order, so the reader matches answers to
//! jobs by their order (and checks their ids).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::stream::{ReadHalf, Stream, WriteHalf};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, Empty, Join, Sink};
use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::error::{ClientError, Direction};
use super::local::{FileWriter, PartialFile};
use super::{Progress, ProgressWriter, Stage};
use crate::connection::{ChunkRecycler, Connection, ConnectionError};
use crate::digest::{self, Digest, Hasher};
use crate::operation::Entry;
use crate::operation::{Answer, Operation};
use crate::protocol::extended::{ErrorCode, Header, Kind, Message};

/// Files up to this size travel inside the batch of frames (read whole,
/// one write for many of them); larger ones are streamed in chunks.
const INLINE_FILE: u64 = 64 << 10;

/// How many bytes of frames are gathered before they are written.
const BATCH: usize = 256 << 10;

/// How much of a streamed file is read and sent at a time.
const CHUNK: usize = 1 << 20;

/// The most jobs of a pipeline in flight (sent, not yet answered).
const WINDOW: usize = 4096;

/// The slowest pace (bytes per second) at which a server is expected to
/// read back and hash the part of an upload it kept, before it says how much
/// that is; the wait for its answer grows with the file's size at this pace.
const RESUME_HASH_PACE: u64 = 50 * 1024 * 1024;

type ReadSide = Join<Counted<ReadHalf>, Sink>;
type WriteSide = Join<Empty, StallGuard<WriteHalf>>;

/// A connection that has switched to the extended protocol.
pub(super) struct Extended {
    requests: Requests,
    replies: Replies,
    /// The session's directory, as the last `Done` said.
    directory: String,
}

/// One operation of a pipeline.
#[derive(Debug)]
pub(super) enum Job {
    /// An operation answered by a message alone (see [`answer_shape`]).
    Request(Operation),
    /// Store a local file under a remote path (not resumable).
    Upload {
        /// Where on the server.
        remote: String,
        /// The local file.
        local: PathBuf,
    },
    /// Fetch a remote file into a local path, through a temporary file.
    Download {
        /// The remote file.
        remote: String,
        /// Where it goes.
        local: PathBuf,
    },
}

/// How the server answers an operation that moves no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `Done`, with the session's directory.
    Done,
    /// One `Entry`.
    Entry,
    /// `Listing` frames, then `Done`.
    Listing,
}

/// The frames an operation's answer comes in, or `None` for those that
/// move a file (or send nothing at all); what each operation is answered
/// is said once, by [`Operation::answer`].
fn answer_shape(operation: &Operation) -> Option<Shape> {
    match operation.answer() {
        Answer::Done => Some(Shape::Done),
        Answer::Entry => Some(Shape::Entry),
        Answer::Listing => Some(Shape::Listing),
        Answer::Transfer | Answer::Closed => None,
    }
}

/// What a job of a pipeline produced.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Done, nothing to report (directories, uploads).
    Done,
    /// A file's bytes were transferred.
    Transferred(u64),
    /// The answer to a stat.
    Entry(Entry),
    /// The answer to a list.
    Listing(Vec<Entry>),
}

/// Whether what was received hashes to the sender's digest.
fn check_digest(name: &str, digest: &Digest, computed: Digest) -> Result<(), ClientError> {
    if *digest != computed {
        return Err(ClientError::DigestMismatch {
            name: name.to_owned(),
            direction: Direction::Download,
        });
    }
    Ok(())
}

/// What the reader must do for a job the writer has sent.
enum Expect {
    /// The job failed before anything was sent.
    Failed(ClientError),
    /// An answer to a plain request of this shape.
    Answer { id: u32, shape: Shape },
    /// The answer to an upload; the source failed if `failure` is set (the
    /// writer then made the server refuse it).
    Upload {
        id: u32,
        name: String,
        size: u64,
        failure: Option<io::Error>,
    },
    /// A download's frames.
    Download {
        id: u32,
        name: String,
        local: PathBuf,
    },
}

/// A job's answer for the caller.
type JobResult = Result<Outcome, ClientError>;

impl Extended {
    /// Takes over a classic connection that the server just switched.
    pub fn new(
        connection: Connection<Stream>,
        directory: String,
        timeout: Duration,
    ) -> Result<Extended, ClientError> {
        let token = *connection.token();
        let (stream, unread) = connection.into_parts();
        if !unread.is_empty() {
            return Err(ClientError::Protocol(
                "the server sent frames before any request".to_owned(),
            ));
        }
        let (read, write) = stream.into_split();
        // Replies arriving count as progress for the writer too: while the
        // server streams a long download it reads no requests, and that is
        // no stall.
        let activity = Arc::new(AtomicU64::new(0));
        let read = Counted {
            inner: read,
            activity: Arc::clone(&activity),
        };
        let mut reader = Connection::new(tokio::io::join(read, tokio::io::sink()), token);
        reader.set_read_timeout(Some(timeout));
        let guarded = StallGuard::new(write, timeout, activity);
        let writer = Connection::new(tokio::io::join(tokio::io::empty(), guarded), token);
        let writing = Arc::new(AtomicBool::new(false));
        Ok(Extended {
            requests: Requests {
                connection: writer,
                out: BytesMut::with_capacity(BATCH),
                next_id: 0,
                timeout,
                writing: writing.clone(),
            },
            replies: Replies {
                connection: reader,
                recycler: ChunkRecycler::new(),
                timeout,
                writing,
            },
            directory,
        })
    }

    /// The session's directory, as the server last said.
    pub fn directory(&self) -> &str {
        &self.directory
    }

    /// Whether the server has closed the connection (an idle timeout, a
    /// shutdown), or sent a frame unasked, since the last request: looked at
    /// without waiting.
    pub fn closed_by_server(&mut self) -> bool {
        super::ready_now(self.replies.connection.read_header()).is_some()
    }

    /// A request answered by `Done` (cd, mkdir, rm, mv); the directory.
    pub async fn command(&mut self, operation: Operation) -> Result<String, ClientError> {
        match self.request(operation).await? {
            Outcome::Done => Ok(self.directory.clone()),
            other => Err(unexpected(&other)),
        }
    }

    /// Describes one entry.
    pub async fn stat(&mut self, path: &str) -> Result<(Entry, String), ClientError> {
        match self.request(Operation::Stat { path: path.into() }).await? {
            Outcome::Entry(entry) => Ok((entry, self.directory.clone())),
            other => Err(unexpected(&other)),
        }
    }

    /// Lists a directory: directories first, then files, by name.
    pub async fn list(&mut self, path: &str) -> Result<(Vec<Entry>, String), ClientError> {
        match self.request(Operation::List { path: path.into() }).await? {
            Outcome::Listing(entries) => Ok((entries, self.directory.clone())),
            other => Err(unexpected(&other)),
        }
    }

    /// `info`: the size of a file (a directory is refused, as classic does).
    pub async fn size(&mut self, path: &str) -> Result<(u64, String), ClientError> {
        let (entry, directory) = self.stat(path).await?;
        if entry.is_directory() {
            return Err(ClientError::Server {
                reason: format!("not a file: {path}"),
                code: Some(ErrorCode::IsADirectory),
            });
        }
        Ok((entry.size, directory))
    }

    /// Sends one request without data and reads its answer.
    async fn request(&mut self, operation: Operation) -> Result<Outcome, ClientError> {
        let Some(shape) = answer_shape(&operation) else {
            return Err(protocol(format!(
                "{} is not a request of its own",
                operation.name()
            )));
        };
        let id = self.requests.id();
        self.requests.push(id, &operation.into());
        self.requests.flush().await?;
        let (outcome, directory) = self.replies.answer(id, shape).await?;
        if let Some(directory) = directory {
            self.directory = directory;
        }
        Ok(outcome)
    }

    /// Uploads the `size` bytes of `source`, without resume; the bytes sent.
    pub async fn upload<R: AsyncRead + Unpin>(
        &mut self,
        path: &str,
        source: &mut R,
        size: u64,
        progress: Progress,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(u64, String), ClientError> {
        let id = self.requests.id();
        self.requests.push(
            id,
            &Message::Request(Operation::Upload {
                path: path.into(),
                size: Some(size),
                resume: false,
            }),
        );
        let mut hasher = Hasher::new();
        let mut report = Reporter::new(progress, report);
        let failure = self
            .requests
            .push_body(id, size, source, &mut hasher, &mut report)
            .await?;
        self.requests.flush().await?;
        report.stage(Stage::Verifying);
        self.finish_upload(id, path, size, failure).await
    }

    /// Uploads a local file, resuming an interrupted upload of the same
    /// path and size if the server kept one. If the result does not match
    /// (the kept part was of another file), it is sent again whole, once.
    pub async fn upload_resuming(
        &mut self,
        path: &str,
        file: &mut tokio::fs::File,
        size: u64,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(u64, String), ClientError> {
        let id = self.requests.id();
        let upload = Message::Request(Operation::Upload {
            path: path.into(),
            size: Some(size),
            resume: true,
        });
        self.requests.push(id, &upload);
        self.requests.flush().await?;
        report(Progress {
            done: 0,
            total: Some(size),
            kept: 0,
            stage: Stage::Checking,
        });
        // Before it answers, the server reads back and hashes what it kept,
        // up to the whole file: allow for that at a slow disk's pace.
        let hashing = Duration::from_secs(size / RESUME_HASH_PACE);
        self.replies
            .connection
            .set_read_timeout(Some(self.replies.timeout.saturating_add(hashing)));
        let answer = self.replies.message(id).await;
        self.replies
            .connection
            .set_read_timeout(Some(self.replies.timeout));
        let offset = match answer? {
            Message::UploadFrom { offset } if offset <= size => offset,
            Message::Failed { code, message } => return Err(refusal(code, message)),
            other => return Err(protocol(format!("{other:?} instead of an offset"))),
        };
        if offset > 0 {
            // This side reads the same part back, to hash it.
            report(Progress {
                done: offset,
                total: Some(size),
                kept: offset,
                stage: Stage::Checking,
            });
        }
        let mut hasher = Hasher::new();
        let positioned = async {
            file.seek(io::SeekFrom::Start(0)).await?;
            digest::hash_prefix(file, offset, &mut hasher).await?;
            file.seek(io::SeekFrom::Start(offset)).await.map(drop)
        };
        let prefix_failure = positioned.await.err();
        let start = Progress {
            done: offset,
            total: Some(size),
            kept: offset,
            stage: Stage::Transferring,
        };
        let mut reporter = Reporter::new(start, report);
        reporter.report();
        let failure = match prefix_failure {
            // Keep the stream in step: zeros, then a digest that cannot match.
            Some(error) => {
                let mut nothing = tokio::io::empty();
                let mut hasher = Hasher::new();
                self.requests
                    .push_body(id, size - offset, &mut nothing, &mut hasher, &mut reporter)
                    .await?;
                Some(error)
            }
            None => {
                self.requests
                    .push_body(id, size - offset, file, &mut hasher, &mut reporter)
                    .await?
            }
        };
        self.requests.flush().await?;
        reporter.stage(Stage::Verifying);
        let result = self.finish_upload(id, path, size, failure).await;
        match result {
            Err(ClientError::DigestMismatch { .. }) if offset > 0 => {
                tracing::debug!(path, offset, "the kept part did not match; sending it all");
                file.seek(io::SeekFrom::Start(0))
                    .await
                    .map_err(|source| ClientError::Source {
                        source,
                        connection_dropped: false,
                    })?;
                let start = Progress {
                    done: 0,
                    total: Some(size),
                    ..Progress::default()
                };
                self.upload(path, file, size, start, report).await
            }
            result => result,
        }
    }

    /// Reads an upload's answer.
    async fn finish_upload(
        &mut self,
        id: u32,
        path: &str,
        size: u64,
        failure: Option<io::Error>,
    ) -> Result<(u64, String), ClientError> {
        self.replies.upload_result(id, path, failure).await?;
        Ok((size, self.directory.clone()))
    }

    /// Sends the request for `path` from `offset`; its id.
    async fn request_download(&mut self, path: &str, offset: u64) -> Result<u32, ClientError> {
        let id = self.requests.id();
        let download = Message::Request(Operation::Download {
            path: path.into(),
            offset,
        });
        self.requests.push(id, &download);
        self.requests.flush().await?;
        Ok(id)
    }

    /// Downloads `path` from `offset` into `writer`, checking the digest of
    /// the whole file (`hasher` holds the first `offset` bytes already).
    /// Returns the file's size.
    pub async fn download<W: AsyncWrite + Unpin>(
        &mut self,
        path: &str,
        offset: u64,
        hasher: Hasher,
        writer: &mut W,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(u64, String), ClientError> {
        let id = self.request_download(path, offset).await?;
        let mut reporter = Reporter::new(Progress::default(), report);
        let size = self
            .replies
            .download(id, path, offset, hasher, writer, &mut reporter)
            .await?;
        Ok((size, self.directory.clone()))
    }

    /// [`Extended::download`] into a local file, written and hashed on a
    /// thread of its own (its write-back started as it goes when
    /// `durable`); gives the file back with the size.
    pub async fn download_to_file(
        &mut self,
        path: &str,
        offset: u64,
        hasher: Hasher,
        file: std::fs::File,
        durable: bool,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<((u64, std::fs::File), String), ClientError> {
        let id = self.request_download(path, offset).await?;
        let mut reporter = Reporter::new(Progress::default(), report);
        let downloaded = self
            .replies
            .download_to_file(
                id,
                path,
                offset,
                FileWriter::start(
                    file,
                    // `hasher` holds the first `offset` bytes.
                    (offset > 0).then_some(hasher),
                    durable,
                    self.replies.recycler.returner(),
                ),
                &mut reporter,
            )
            .await?;
        Ok((downloaded, self.directory.clone()))
    }

    /// Runs many jobs with their frames in flight together; the results in
    /// the order of `jobs`. A failed job does not stop the others; only a
    /// failed connection ends the pipeline (the error is returned).
    pub async fn pipeline(
        &mut self,
        jobs: Vec<Job>,
        progress: Progress,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Vec<JobResult>, ClientError> {
        let reporter = Mutex::new(Reporter::new(progress, report));
        let (sender, receiver) = mpsc::channel(WINDOW);
        let Extended {
            requests, replies, ..
        } = self;
        requests.writing.store(true, Ordering::Relaxed);
        let writer = requests.send_jobs(jobs, sender, &reporter);
        let reader = replies.read_jobs(receiver, &reporter);
        let result = tokio::try_join!(writer, reader);
        requests.writing.store(false, Ordering::Relaxed);
        Ok(result?.1)
    }

    /// Closes the connection: the server sees the end of the stream.
    pub async fn close(mut self) {
        self.requests
            .connection
            .close_gracefully(Duration::ZERO)
            .await;
    }
}

/// The writing half: frames gathered in `out` and written in batches.
struct Requests {
    connection: Connection<WriteSide>,
    out: BytesMut,
    next_id: u32,
    timeout: Duration,
    /// Set while a pipeline's writer still has frames to write (see
    /// [`Replies::header`]).
    writing: Arc<AtomicBool>,
}

impl Requests {
    /// A fresh request id.
    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Gathers a message frame.
    fn push(&mut self, id: u32, message: &Message) {
        message.encode(id, &mut self.out);
    }

    /// Writes what was gathered.
    async fn flush(&mut self) -> Result<(), ClientError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = self.connection.write_raw(&self.out).await;
        self.out.clear();
        written.map_err(|error| self.lost(error))
    }

    /// Gathers (or streams) the data frame of `length` bytes of `source`
    /// and the end frame with the digest of `hasher` (which may already
    /// hold a resumed prefix). If the source fails or ends early, the
    /// promised bytes are made up with zeros and the digest is spoiled, so
    /// that the stream stays in step and the server stores nothing; the
    /// source's error is returned inside.
    async fn push_body<R: AsyncRead + Unpin>(
        &mut self,
        id: u32,
        length: u64,
        source: &mut R,
        hasher: &mut Hasher,
        report: &mut Reporter<'_>,
    ) -> Result<Option<io::Error>, ClientError> {
        let header = Header {
            kind: Kind::Data,
            id,
            length,
        };
        self.out.extend_from_slice(&header.encode());
        let failure = match length <= INLINE_FILE {
            true => {
                self.inline_body(length as usize, source, hasher, report)
                    .await
            }
            false => self.stream_body(length, source, hasher, report).await?,
        };
        let mut digest: Digest = hasher.finalize().into();
        if failure.is_some() {
            digest[0] ^= 0xff;
        }
        self.push(id, &Message::End { digest });
        Ok(failure)
    }

    /// Reads a small body straight into the batch.
    async fn inline_body<R: AsyncRead + Unpin>(
        &mut self,
        length: usize,
        source: &mut R,
        hasher: &mut Hasher,
        report: &mut Reporter<'_>,
    ) -> Option<io::Error> {
        let start = self.out.len();
        self.out.resize(start + length, 0);
        let (filled, failure) = fill(source, &mut self.out[start..]).await;
        hasher.update(&self.out[start..]);
        report.add(filled as u64);
        failure
    }

    /// Streams a large body in chunks, each written as it is read.
    async fn stream_body<R: AsyncRead + Unpin>(
        &mut self,
        length: u64,
        source: &mut R,
        hasher: &mut Hasher,
        report: &mut Reporter<'_>,
    ) -> Result<Option<io::Error>, ClientError> {
        self.flush().await?;
        let mut buffer = vec![0u8; CHUNK];
        let mut remaining = length;
        let mut failure = None;
        while remaining > 0 {
            let want = remaining.min(CHUNK as u64) as usize;
            let chunk = &mut buffer[..want];
            if failure.is_none() {
                let (filled, error) = fill(source, chunk).await;
                report.add(filled as u64);
                failure = error;
            } else {
                chunk.fill(0);
            }
            hasher.update(chunk);
            let written = self.connection.write_raw(chunk).await;
            written.map_err(|error| self.lost(error))?;
            remaining -= want as u64;
        }
        Ok(failure)
    }

    /// The writer of a pipeline: each job's frames, then its expectation
    /// for the reader, sent before the frames can reach the server.
    async fn send_jobs(
        &mut self,
        jobs: Vec<Job>,
        sender: mpsc::Sender<Expect>,
        reporter: &Mutex<Reporter<'_>>,
    ) -> Result<(), ClientError> {
        for job in jobs {
            let expect = self.send_job(job, reporter).await?;
            // Past the window, wait for answers; flush first, or the
            // answers awaited could be the ones still in `out`.
            let expect = match sender.try_send(expect) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Closed(_)) => break,
                Err(mpsc::error::TrySendError::Full(expect)) => expect,
            };
            self.flush().await?;
            self.writing.store(false, Ordering::Relaxed);
            let sent = sender.send(expect).await;
            self.writing.store(true, Ordering::Relaxed);
            if sent.is_err() {
                break;
            }
        }
        self.flush().await?;
        self.writing.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Gathers one job's frames (flushing when the batch is full).
    async fn send_job(
        &mut self,
        job: Job,
        reporter: &Mutex<Reporter<'_>>,
    ) -> Result<Expect, ClientError> {
        if self.out.len() >= BATCH {
            self.flush().await?;
        }
        let operation = match job {
            Job::Request(operation) => operation,
            Job::Download { remote, local } => {
                let id = self.id();
                let download = Message::Request(Operation::Download {
                    path: remote.clone(),
                    offset: 0,
                });
                self.push(id, &download);
                return Ok(Expect::Download {
                    id,
                    name: remote,
                    local,
                });
            }
            Job::Upload { remote, local } => {
                return self.send_upload(remote, local, reporter).await;
            }
        };
        let Some(shape) = answer_shape(&operation) else {
            let reason = format!("{} is not a request of its own", operation.name());
            return Ok(Expect::Failed(protocol(reason)));
        };
        let id = self.id();
        self.push(id, &operation.into());
        Ok(Expect::Answer { id, shape })
    }

    /// Gathers (or streams) one file's upload frames.
    async fn send_upload(
        &mut self,
        remote: String,
        local: PathBuf,
        reporter: &Mutex<Reporter<'_>>,
    ) -> Result<Expect, ClientError> {
        let (mut file, size) = match super::local::open_for_upload(&local).await {
            Ok(opened) => opened,
            Err(error) => return Ok(Expect::Failed(error)),
        };
        let id = self.id();
        let upload = Message::Request(Operation::Upload {
            path: remote.clone(),
            size: Some(size),
            resume: false,
        });
        self.push(id, &upload);
        let mut hasher = Hasher::new();
        let mut forward = forwarder(reporter);
        let mut report = Reporter::new(Progress::default(), &mut forward);
        let failure = self
            .push_body(id, size, &mut file, &mut hasher, &mut report)
            .await?;
        Ok(Expect::Upload {
            id,
            name: remote,
            size,
            failure,
        })
    }

    fn lost(&self, error: io::Error) -> ClientError {
        ClientError::from_connection(ConnectionError::Io(error), self.timeout)
    }
}

/// The reading half.
struct Replies {
    connection: Connection<ReadSide>,
    /// Gets back the chunks a download hands to another thread.
    recycler: ChunkRecycler,
    timeout: Duration,
    /// Set while a pipeline's writer is still writing: the server may
    /// rightly say nothing until it has read what is on the way, so
    /// silence is only a timeout once the writer is done (or waits for
    /// answers). The writer's own writes time out if the server stops
    /// reading.
    writing: Arc<AtomicBool>,
}

impl Replies {
    /// The next frame header.
    async fn header(&mut self) -> Result<Header, ClientError> {
        loop {
            match self.connection.read_header().await {
                Ok(Some(header)) => return Ok(header),
                Ok(None) => return Err(ClientError::Closed),
                Err(ConnectionError::Io(error))
                    if error.kind() == io::ErrorKind::TimedOut
                        && self.writing.load(Ordering::Relaxed) => {}
                Err(error) => return Err(self.lost(error)),
            }
        }
    }

    /// The next message frame, which must belong to request `id`.
    async fn message(&mut self, id: u32) -> Result<Message, ClientError> {
        let header = self.header().await?;
        if header.kind == Kind::Data {
            return Err(protocol("data where a message was expected".to_owned()));
        }
        let body = self
            .connection
            .read_body(header.length)
            .await
            .map_err(|error| self.lost(error))?;
        let message = Message::decode(header.kind, &body)
            .map_err(|error| protocol(format!("malformed {:?} frame: {error}", header.kind)))?;
        if header.id != id {
            // The server says why it dropped the connection with id 0.
            if let Message::Failed { message, .. } = &message {
                return Err(protocol(format!("the server gave up: {message}")));
            }
            return Err(protocol(format!(
                "an answer to request {} where {id} was expected",
                header.id
            )));
        }
        Ok(message)
    }

    /// The whole answer to a request without data of `kind`; with the
    /// directory if the answer ended with `Done`.
    async fn answer(
        &mut self,
        id: u32,
        shape: Shape,
    ) -> Result<(Outcome, Option<String>), ClientError> {
        let mut listing = Vec::new();
        loop {
            match (shape, self.message(id).await?) {
                (_, Message::Failed { code, message }) => return Err(refusal(code, message)),
                (Shape::Entry, Message::Entry(entry)) => return Ok((Outcome::Entry(entry), None)),
                (Shape::Listing, Message::Listing(entries)) => listing.extend(entries),
                (Shape::Listing, Message::Done { directory }) => {
                    // The server lists in the order it reads the directory.
                    listing.sort_by(|a, b| {
                        (!a.is_directory(), a.name.as_bytes())
                            .cmp(&(!b.is_directory(), b.name.as_bytes()))
                    });
                    return Ok((Outcome::Listing(listing), Some(directory)));
                }
                (Shape::Done, Message::Done { directory }) => {
                    return Ok((Outcome::Done, Some(directory)));
                }
                // What the server sent is not an answer to this request: a
                // server's fault, known only when it happens.
                (shape, other) => {
                    return Err(protocol(format!(
                        "{other:?} in answer to a {shape:?} request"
                    )));
                }
            }
        }
    }

    /// An upload's answer. A refusal for a digest mismatch is the source's
    /// failure if the writer had one, else corruption on the way.
    async fn upload_result(
        &mut self,
        id: u32,
        name: &str,
        failure: Option<io::Error>,
    ) -> Result<(), ClientError> {
        match (self.message(id).await?, failure) {
            (Message::Done { .. }, None) => Ok(()),
            (Message::Failed { .. } | Message::Done { .. }, Some(source)) => {
                Err(ClientError::Source {
                    source,
                    connection_dropped: false,
                })
            }
            (
                Message::Failed {
                    code: ErrorCode::DigestMismatch,
                    ..
                },
                None,
            ) => Err(ClientError::DigestMismatch {
                name: name.to_owned(),
                direction: Direction::Upload,
            }),
            (Message::Failed { code, message }, None) => Err(refusal(code, message)),
            (other, _) => Err(protocol(format!("{other:?} in answer to an upload"))),
        }
    }

    /// A download's frames: its size, the data into `writer`, and the
    /// digest, checked against `hasher` (which holds the first `offset`
    /// bytes). A failing writer does not break the stream: the rest is read
    /// and dropped. Returns the file's size.
    async fn download<W: AsyncWrite + Unpin>(
        &mut self,
        id: u32,
        name: &str,
        offset: u64,
        mut hasher: Hasher,
        writer: &mut W,
        report: &mut Reporter<'_>,
    ) -> Result<u64, ClientError> {
        let (size, length) = self.download_start(id, offset, report).await?;
        let progress = report.progress;
        let mut sink = ProgressWriter::new(writer, progress, &mut *report.callback);
        let written = if length >= HASHED_ASIDE_FROM {
            let returner = self.recycler.returner();
            let hashing = digest::HashingThread::start(std::mem::take(&mut hasher), move |chunk| {
                returner.give_back(chunk);
            });
            let (written, hashing) = self
                .read_data_hashed_aside(length, &mut sink, hashing)
                .await;
            // A lost connection is the error that matters; the hashing
            // thread's end is waited for all the same.
            let hashed = hashing.finish().await;
            let written = written.map_err(|error| self.lost(error))?;
            hasher = hashed.map_err(ClientError::Sink)?;
            written
        } else {
            self.connection
                .read_data(length, &mut sink, |chunk| {
                    hasher.update(chunk);
                })
                .await
                .map_err(|error| self.lost(error))?
        };
        report.progress.done = offset + length;
        report.stage(Stage::Verifying);
        let digest = self.download_digest(id).await?;
        written.map_err(ClientError::Sink)?;
        check_digest(name, &digest, hasher.finalize().into())?;
        Ok(size)
    }

    /// [`Connection::read_data`] with the hashing on a thread of its own:
    /// each chunk goes to `hashing` (no copy) and to `sink` while the next
    /// arrives. A failing sink does not break the stream: the rest is read,
    /// hashed and dropped.
    async fn read_data_hashed_aside<W: AsyncWrite + Unpin>(
        &mut self,
        length: u64,
        sink: &mut W,
        mut hashing: digest::HashingThread,
    ) -> (
        Result<io::Result<()>, ConnectionError>,
        digest::HashingThread,
    ) {
        use tokio::io::AsyncWriteExt;
        let mut remaining = length;
        let mut written = Ok(());
        while remaining > 0 {
            let chunk = match self
                .connection
                .read_data_chunk_recycled(remaining, &self.recycler)
                .await
            {
                Ok(chunk) => chunk,
                Err(error) => return (Err(error), hashing),
            };
            remaining -= chunk.len() as u64;
            hashing.update(chunk.clone()).await;
            if written.is_ok() {
                written = sink.write_all(&chunk).await;
            }
        }
        (Ok(written), hashing)
    }

    /// [`Replies::download`] into a local file by `writer`, which writes
    /// and hashes on a thread of its own while the next bytes arrive; gives
    /// the file back (positioned after what it wrote) with the size.
    async fn download_to_file(
        &mut self,
        id: u32,
        name: &str,
        offset: u64,
        mut writer: FileWriter,
        report: &mut Reporter<'_>,
    ) -> Result<(u64, std::fs::File), ClientError> {
        let (size, length) = self.download_start(id, offset, report).await?;
        let mut remaining = length;
        let mut written = Ok(());
        let received = async {
            while remaining > 0 {
                let chunk = self
                    .connection
                    .read_data_chunk_recycled(remaining, &self.recycler)
                    .await
                    .map_err(|error| self.lost(error))?;
                remaining -= chunk.len() as u64;
                report.progress.done += chunk.len() as u64;
                // Past a failed write the rest is read and dropped, to stay
                // in step.
                if written.is_ok() {
                    written = writer.write(chunk).await;
                }
                report.report();
            }
            report.stage(Stage::Verifying);
            self.download_digest(id).await
        }
        .await;
        // Whatever happened, what arrived is in the file before this returns
        // (a resumed download goes on from there).
        let finished = writer.finish().await;
        let digest = received?;
        let (file, computed) = match (written, finished) {
            (_, Err(error)) | (Err(error), _) => return Err(ClientError::Sink(error)),
            (Ok(()), Ok(finished)) => finished,
        };
        check_digest(name, &digest, computed)?;
        Ok((size, file))
    }

    /// A download's first frames: its size, and the data frame's header.
    /// Returns the size and how many bytes follow.
    async fn download_start(
        &mut self,
        id: u32,
        offset: u64,
        report: &mut Reporter<'_>,
    ) -> Result<(u64, u64), ClientError> {
        let size = match self.message(id).await? {
            Message::Sending { size, offset: from } if from == offset && offset <= size => size,
            Message::Failed { code, message } => return Err(refusal(code, message)),
            other => return Err(protocol(format!("{other:?} in answer to a download"))),
        };
        let header = self.header().await?;
        if (header.kind, header.id, header.length) != (Kind::Data, id, size - offset) {
            return Err(protocol(format!(
                "{header:?} where the file's data was due"
            )));
        }
        report.progress.total = Some(size);
        report.progress.done = offset;
        report.progress.kept = offset;
        report.progress.stage = Stage::Transferring;
        report.report();
        Ok((size, header.length))
    }

    /// A download's last frame: the whole file's digest.
    async fn download_digest(&mut self, id: u32) -> Result<Digest, ClientError> {
        match self.message(id).await? {
            Message::End { digest } => Ok(digest),
            other => Err(protocol(format!("{other:?} where the digest was due"))),
        }
    }

    /// The reader of a pipeline: the answers to the jobs the writer sent,
    /// in order.
    async fn read_jobs(
        &mut self,
        mut receiver: mpsc::Receiver<Expect>,
        reporter: &Mutex<Reporter<'_>>,
    ) -> Result<Vec<JobResult>, ClientError> {
        let mut results = Vec::new();
        while let Some(expect) = receiver.recv().await {
            let result = match expect {
                Expect::Failed(error) => Err(error),
                Expect::Answer { id, shape } => {
                    self.answer(id, shape).await.map(|(outcome, _)| outcome)
                }
                Expect::Upload {
                    id,
                    name,
                    size,
                    failure,
                } => self
                    .upload_result(id, &name, failure)
                    .await
                    .map(|()| Outcome::Transferred(size)),
                Expect::Download { id, name, local } => {
                    self.download_job(id, &name, local, reporter).await
                }
            };
            match result {
                Err(error) if error.is_connection_lost() => return Err(error),
                result => results.push(result),
            }
        }
        Ok(results)
    }

    /// One download of a pipeline, into a temporary file renamed when the
    /// digest matched (not flushed to disk one by one: the caller flushes
    /// the lot).
    async fn download_job(
        &mut self,
        id: u32,
        name: &str,
        local: PathBuf,
        reporter: &Mutex<Reporter<'_>>,
    ) -> Result<Outcome, ClientError> {
        let mut forward = forwarder(reporter);
        let mut local_report = Reporter::new(Progress::default(), &mut forward);
        let result = match PartialFile::create(&local).await {
            Ok(mut partial) => {
                let downloaded = self
                    .download(
                        id,
                        name,
                        0,
                        Hasher::new(),
                        partial.writer(),
                        &mut local_report,
                    )
                    .await;
                match downloaded {
                    Ok(size) => partial.complete(false).await.map(|()| size),
                    Err(error) => Err(error),
                }
            }
            Err(error) => {
                // Read the answer all the same, to stay in step.
                let mut nowhere = tokio::io::sink();
                self.download(id, name, 0, Hasher::new(), &mut nowhere, &mut local_report)
                    .await
                    .and(Err(error))
            }
        };
        result.map(Outcome::Transferred)
    }

    fn lost(&self, error: ConnectionError) -> ClientError {
        ClientError::from_connection(error, self.timeout)
    }
}

/// From how many bytes a download into a writer hashes on a thread of its
/// own: below, the thread would cost more than it overlaps.
const HASHED_ASIDE_FROM: u64 = 4 << 20;

/// Progress as it is reported: where a transfer stands, and to whom.
pub(super) struct Reporter<'a> {
    progress: Progress,
    callback: &'a mut (dyn FnMut(Progress) + Send),
}

impl<'a> Reporter<'a> {
    fn new(progress: Progress, callback: &'a mut (dyn FnMut(Progress) + Send)) -> Reporter<'a> {
        Reporter { progress, callback }
    }

    fn add(&mut self, bytes: u64) {
        if bytes > 0 {
            self.progress.done += bytes;
            self.report();
        }
    }

    fn report(&mut self) {
        (self.callback)(self.progress);
    }

    /// Says the transfer moved on to `stage`.
    fn stage(&mut self, stage: Stage) {
        self.progress.stage = stage;
        self.report();
    }
}

/// A callback that adds one transfer's progress to a pipeline's reporter.
fn forwarder<'m, 'a>(reporter: &'m Mutex<Reporter<'a>>) -> impl FnMut(Progress) + Send + 'm {
    let mut last = 0;
    move |progress: Progress| {
        lock(reporter).add(progress.done.saturating_sub(last));
        last = progress.done;
    }
}

/// Locks the shared reporter (a panic elsewhere does not poison progress).
fn lock<'m, 'a>(reporter: &'m Mutex<Reporter<'a>>) -> std::sync::MutexGuard<'m, Reporter<'a>> {
    reporter
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fills `buffer` from `source`; how much was read, and why not all of it.
async fn fill<R: AsyncRead + Unpin>(
    source: &mut R,
    buffer: &mut [u8],
) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..]).await {
            Ok(0) => {
                buffer[filled..].fill(0);
                let error = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the data ended before the size announced (did the file shrink?)",
                );
                return (filled, Some(error));
            }
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                buffer[filled..].fill(0);
                return (filled, Some(error));
            }
        }
    }
    (filled, None)
}

/// A server refusal.
fn refusal(code: ErrorCode, message: String) -> ClientError {
    ClientError::Server {
        reason: message,
        code: Some(code),
    }
}

fn protocol(what: String) -> ClientError {
    ClientError::Protocol(what)
}

fn unexpected(outcome: &Outcome) -> ClientError {
    protocol(format!("unexpected answer {outcome:?}"))
}

/// A writer whose writes fail with `TimedOut` when they cannot make any
/// progress for `limit` (a server that stopped reading).
pub(super) struct StallGuard<W> {
    inner: W,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    /// Bytes received so far on the other half, and what they were when
    /// the current wait began: the peer is alive while they move.
    activity: Arc<AtomicU64>,
    seen: u64,
}

impl<W> StallGuard<W> {
    fn new(inner: W, limit: Duration, activity: Arc<AtomicU64>) -> StallGuard<W> {
        StallGuard {
            inner,
            limit,
            stalled: None,
            seen: activity.load(Ordering::Relaxed),
            activity,
        }
    }

    /// After the inner writer returned `Pending`: whether it has now been
    /// stuck for too long.
    fn check(&mut self, context: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(context) {
            Poll::Ready(()) => {
                self.stalled = None;
                let now = self.activity.load(Ordering::Relaxed);
                if now != self.seen {
                    // Replies kept coming: wait another period.
                    self.seen = now;
                    return self.check(context);
                }
                Poll::Ready(io::ErrorKind::TimedOut.into())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A reader that counts the bytes read through it.
pub(super) struct Counted<R> {
    inner: R,
    activity: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(context, buffer);
        let read = buffer.filled().len() - before;
        if read > 0 {
            self.activity.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for StallGuard<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(context, buffer) {
            Poll::Ready(result) => {
                this.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.check(context).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod stall_tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A writer whose peer never reads: every write past one byte blocks.
    fn stuck() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
        tokio::io::duplex(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_writer_with_no_replies_stalls_after_the_limit() {
        let (writer, _peer) = stuck();
        let mut guard = StallGuard::new(writer, Duration::from_secs(30), Arc::default());
        let started = tokio::time::Instant::now();
        let error = guard.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed().as_secs(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_writer_is_not_stalled_while_replies_arrive() {
        let (writer, _peer) = stuck();
        let activity = Arc::new(AtomicU64::new(0));
        let mut guard = StallGuard::new(writer, Duration::from_secs(30), Arc::clone(&activity));
        let replies = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                activity.fetch_add(1, Ordering::Relaxed);
            }
        });
        let started = tokio::time::Instant::now();
        let error = guard.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        // Replies came every 20 s until 200 s; only then did it stall.
        assert!(
            started.elapsed().as_secs() >= 200,
            "{:?}",
            started.elapsed()
        );
        replies.await.unwrap();
    }
}
