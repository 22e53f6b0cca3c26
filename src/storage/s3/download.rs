//! Downloads from the bucket: ranged reads streamed as they arrive (one GET
//! from the offset on, held by the network's buffers only), pinned to the
//! object opened (`If-Match` its ETag: a file replaced meanwhile fails the
//! read rather than mixing two versions), and the digest stored at upload
//! sent without reading the object again. An object put by another tool
//! has none: its digest is computed from a second ranged read beside the
//! sending.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::TryStreamExt;
use tokio::io::AsyncRead;

use super::state::from_hex;
use super::{S3Bucket, storage_error};
use crate::digest::{Digest, Hasher};
use crate::storage::{DigestJob, Download, DownloadSource, Result, StorageError};

/// The user metadata key of a file's BLAKE3 (hex), set when it was put
/// whole.
pub const DIGEST_METADATA: &str = "blake3";

/// The user metadata key naming the digest record of a file uploaded in
/// parts.
pub const DIGEST_TOKEN_METADATA: &str = "miniftp-digest";

/// The digest record's token in an object's metadata, if it has one.
pub fn digest_token(metadata: &opendal::Metadata) -> Option<&str> {
    metadata
        .user_metadata()?
        .get(DIGEST_TOKEN_METADATA)
        .filter(|token| token.chars().all(|c| c.is_ascii_alphanumeric()) && !token.is_empty())
}

/// A digest record's bytes: the file's size and its digest.
pub fn digest_record(size: u64, digest: &Digest) -> Vec<u8> {
    format!("{size} {}\n", super::state::to_hex(digest)).into_bytes()
}

/// A digest record read back, if it is one for a file of `size` bytes.
fn parse_digest_record(bytes: &[u8], size: u64) -> Option<Digest> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (recorded, digest) = text.trim().split_once(' ')?;
    (recorded.parse::<u64>().ok()? == size).then_some(())?;
    from_hex(digest)
}

/// Opens the object at `key`, described by `metadata`, for download.
pub(super) fn open(bucket: &S3Bucket, key: String, metadata: opendal::Metadata) -> Download {
    let size = metadata.content_length();
    let digest = metadata
        .user_metadata()
        .and_then(|user| user.get(DIGEST_METADATA))
        .and_then(from_hex);
    let file = S3File {
        bucket: bucket.clone(),
        key,
        size,
        etag: metadata.etag().map(str::to_owned),
        digest,
        token: digest_token(&metadata).map(str::to_owned),
    };
    Download::new(size, Box::new(file))
}

/// An object opened for download.
struct S3File {
    bucket: S3Bucket,
    key: String,
    size: u64,
    etag: Option<String>,
    /// Its digest, when its metadata holds it.
    digest: Option<Digest>,
    /// Names its digest record, when it was uploaded in parts.
    token: Option<String>,
}

impl S3File {
    /// A stream of its bytes from `offset` to its end.
    async fn stream(
        bucket: &S3Bucket,
        key: &str,
        etag: Option<&str>,
        offset: u64,
        size: u64,
    ) -> Result<opendal::FuturesBytesStream> {
        // Small objects on connections of their own (see
        // `small_read_client`): a delayed acknowledgement would cost more
        // than reading them.
        let operator = match size - offset <= super::upload::SMALL_FILE {
            true => &bucket.shared.small_reads,
            false => bucket.operator(),
        };
        let mut reader = operator.reader_with(key);
        if let Some(etag) = etag {
            reader = reader.if_match(etag);
        }
        let reader = reader.await.map_err(storage_error)?;
        reader
            .into_bytes_stream(offset..size)
            .await
            .map_err(storage_error)
    }
}

#[async_trait::async_trait]
impl DownloadSource for S3File {
    fn local_file(&self) -> Option<&std::fs::File> {
        None
    }

    async fn reader(&self, offset: u64) -> Result<Box<dyn AsyncRead + Send + Unpin>> {
        if offset >= self.size {
            return Ok(Box::new(tokio::io::empty()));
        }
        let stream = S3File::stream(
            &self.bucket,
            &self.key,
            self.etag.as_deref(),
            offset,
            self.size,
        )
        .await?;
        Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
    }

    fn digest(&self) -> DigestJob {
        if let Some(digest) = self.digest {
            return DigestJob::ready(digest);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let (bucket, key, etag, size, token) = (
            self.bucket.clone(),
            self.key.clone(),
            self.etag.clone(),
            self.size,
            self.token.clone(),
        );
        let job = tokio::spawn({
            let cancel = Arc::clone(&cancel);
            async move {
                if let Some(token) = token
                    && let Ok(record) = bucket.operator().read(&bucket.digest_key(&token)).await
                    && let Some(digest) = parse_digest_record(&record.to_vec(), size)
                {
                    return Ok(digest);
                }
                compute(&bucket, &key, etag.as_deref(), size, &cancel).await
            }
        });
        DigestJob::running(
            async move { job.await.unwrap_or(Err(StorageError::StoreFailed)) },
            cancel,
        )
    }
}

/// The digest of an object read whole again (one at a time per core).
async fn compute(
    bucket: &S3Bucket,
    key: &str,
    etag: Option<&str>,
    size: u64,
    cancel: &AtomicBool,
) -> Result<Digest> {
    let _slot = bucket.shared.hashing.acquire().await;
    let mut hasher = Hasher::new();
    if size > 0 {
        let mut stream = S3File::stream(bucket, key, etag, 0, size).await?;
        while let Some(bytes) = stream.try_next().await? {
            if cancel.load(Ordering::Relaxed) {
                return Err(StorageError::Io(std::io::ErrorKind::Interrupted));
            }
            hasher.update(&bytes);
        }
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_records_say_their_size() {
        let digest = *blake3::hash(b"x").as_bytes();
        let record = digest_record(10, &digest);
        assert_eq!(parse_digest_record(&record, 10), Some(digest));
        assert_eq!(parse_digest_record(&record, 11), None);
        assert_eq!(parse_digest_record(b"garbage", 10), None);
    }
}
