//! Uploads from the page, in chunks that resume: each chunk is one small
//! request (under a proxy's body cap), so a dropped connection, a reload or
//! a restarted server costs at most the chunk under way.
//!
//! The wire: `POST /dir/name?upload` with `Upload-Offset` (where this
//! chunk starts) and `Upload-Length` (the whole file's size), the chunk as
//! the body, and on the last chunk `Upload-Digest` (the BLAKE3 of the whole
//! file, which the page computes as it reads; without it, an empty chunk
//! with it completes the upload). The answer is JSON,
//! `{"offset": N, "done": bool}`: where the next chunk starts. A chunk at
//! the wrong offset gets `409` and the right offset, so a page that lost
//! track (a reload) sends an empty chunk at 0 first and learns where to go
//! on.
//!
//! Between chunks the executor's upload is parked here, still holding its
//! private file and hash state; a server that restarted finds the bytes in
//! storage's resumable upload of the same path and size. Until the last
//! chunk is verified (its size and its digest) and committed, nothing
//! appears under the name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::reply;
use crate::digest::Digest;
use crate::executor::{Executor, IncomingUpload, Outcome, ReceiveProblem, Received};
use crate::operation::{ErrorCode, Failure, Operation};

/// How long a parked upload waits for its next chunk before it is let go
/// (its bytes stay in storage for a later resume).
const PARKED_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// Most uploads parked at once.
const MAX_PARKED: usize = 256;

/// The chunk size the page uses: at most 1 MiB, under the usual proxy cap.
pub const CHUNK_SIZE: u64 = 1 << 20;

/// The largest chunk accepted (a client may choose smaller ones).
const MAX_CHUNK: u64 = 16 << 20;

/// Who uploads what: an upload is resumed only by the same account, for
/// the same path and size.
type Key = (String, String, u64);

enum Slot {
    Parked(Box<IncomingUpload>, Instant),
    /// A chunk of it is being received.
    Busy,
}

/// The uploads between two chunks.
#[derive(Default)]
pub struct Parked {
    slots: Mutex<HashMap<Key, Slot>>,
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the parked upload of `key` for one chunk: `Ok(None)` when
    /// none is parked, `Err` when a chunk of it is under way.
    fn take(&self, key: &Key) -> Result<Option<Box<IncomingUpload>>, ()> {
        let mut slots = self.lock();
        let now = Instant::now();
        // Dropping a stale upload leaves its bytes in storage.
        slots.retain(
            |_, slot| !matches!(slot, Slot::Parked(_, since) if now - *since > PARKED_LIFETIME),
        );
        match slots.insert(key.clone(), Slot::Busy) {
            Some(Slot::Parked(incoming, _)) => Ok(Some(incoming)),
            Some(Slot::Busy) => Err(()),
            None => Ok(None),
        }
    }

    fn park(&self, key: Key, incoming: Box<IncomingUpload>) {
        let mut slots = self.lock();
        if slots.len() >= MAX_PARKED
            && let Some(oldest) = slots
                .iter()
                .filter_map(|(key, slot)| match slot {
                    Slot::Parked(_, since) => Some((key.clone(), *since)),
                    Slot::Busy => None,
                })
                .min_by_key(|(_, since)| *since)
                .map(|(key, _)| key)
        {
            slots.remove(&oldest);
        }
        slots.insert(key, Slot::Parked(incoming, Instant::now()));
    }

    fn release(&self, key: &Key) {
        let mut slots = self.lock();
        if matches!(slots.get(key), Some(Slot::Busy)) {
            slots.remove(key);
        }
    }
}

/// A number from a header.
fn number(headers: &HeaderMap, name: &str) -> Result<u64, Failure> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::BadRequest,
                format!("missing or bad {name} header"),
            )
        })
}

/// A digest from hex.
fn digest(text: &str) -> Option<Digest> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(digest)
}

fn answer(status: StatusCode, offset: u64, done: bool) -> Response {
    let mut response = Response::new(Body::from(format!(
        "{{\"offset\":{offset},\"done\":{done}}}\n"
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Receives one chunk of the upload to `path`.
pub async fn chunk(
    parked: &Parked,
    executor: &mut Executor,
    owner: &str,
    path: &str,
    headers: &HeaderMap,
    body: Body,
    idle_timeout: Duration,
) -> Response {
    let (offset, size) = match (
        number(headers, "upload-offset"),
        number(headers, "upload-length"),
    ) {
        (Ok(offset), Ok(size)) => (offset, size),
        (Err(failure), _) | (_, Err(failure)) => return reply::failure(&failure),
    };
    let key = (owner.to_owned(), path.to_owned(), size);
    let mut incoming = match parked.take(&key) {
        Ok(Some(incoming)) => incoming,
        Ok(None) => {
            let operation = Operation::Upload {
                path: path.to_owned(),
                size: Some(size),
                resume: true,
            };
            match executor.execute(operation).await {
                Ok(Outcome::Upload(incoming)) => Box::new(incoming),
                Ok(_) => {
                    parked.release(&key);
                    return reply::text(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer");
                }
                Err(failure) => {
                    parked.release(&key);
                    return reply::failure(&failure);
                }
            }
        }
        Err(()) => {
            return reply::text(
                StatusCode::CONFLICT,
                "a chunk of this upload is already being received; try again when it is done",
            );
        }
    };
    let held = incoming.sink().len();
    if offset != held {
        parked.park(key, incoming);
        return answer(StatusCode::CONFLICT, held, false);
    }
    let mut problem = None;
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout(idle_timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            // The connection dropped or went quiet: keep what came.
            Ok(Some(Err(_))) | Err(_) => {
                let _ = incoming.sink().flush().await;
                parked.park(key, incoming);
                return reply::text(StatusCode::BAD_REQUEST, "the chunk was cut short");
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let after = incoming.sink().len() + data.len() as u64;
        if after > size || after - offset > MAX_CHUNK {
            problem = Some(Failure::new(
                ErrorCode::BadRequest,
                format!("more bytes than Upload-Length ({size}) or a chunk ({MAX_CHUNK}) holds"),
            ));
            break;
        }
        if let Err(error) = incoming.sink().write_all(&data).await {
            let received = Received {
                bytes: incoming.sink().len() - incoming.held(),
                digest: None,
                problem: Some(ReceiveProblem::Storage(error.into())),
            };
            let failure = match executor.verify_upload(*incoming, received).await {
                Err(failure) => failure,
                Ok(_) => Failure::new(ErrorCode::Internal, "could not write the upload"),
            };
            parked.release(&key);
            return reply::failure(&failure);
        }
    }
    if let Some(failure) = problem {
        parked.park(key, incoming);
        return reply::failure(&failure);
    }
    if let Err(error) = incoming.sink().flush().await {
        tracing::warn!(%error, "could not flush an upload's chunk");
    }
    let received_all = incoming.sink().len();
    if received_all < size {
        parked.park(key, incoming);
        return answer(StatusCode::OK, received_all, false);
    }
    let given = headers
        .get("upload-digest")
        .and_then(|value| value.to_str().ok());
    let Some(expected) = given.and_then(digest) else {
        // All there but the digest: an empty chunk with it completes it.
        parked.park(key, incoming);
        return answer(StatusCode::OK, size, false);
    };
    parked.release(&key);
    let received = Received {
        bytes: received_all - incoming.held(),
        digest: Some(expected),
        problem: None,
    };
    let verified = match executor.verify_upload(*incoming, received).await {
        Ok(verified) => verified,
        Err(failure) => return reply::failure(&failure),
    };
    match executor.commit(verified).await {
        Ok(()) => answer(StatusCode::CREATED, size, true),
        Err(failure) => reply::failure(&failure),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_are_read_from_hex() {
        let hex = "ab".repeat(32);
        assert_eq!(super::digest(&hex), Some([0xab; 32]));
        assert_eq!(super::digest("ab"), None);
        assert_eq!(super::digest(&"zz".repeat(32)), None);
    }
}
