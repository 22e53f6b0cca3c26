//! BLAKE3 digests computed while bytes stream past, so that verifying a
//! transfer costs no extra pass over the data.

pub mod parts;

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

pub use blake3::Hasher;

/// A digest's bytes.
pub type Digest = [u8; 32];

/// A reader that hashes everything read through it.
pub struct HashingReader<'h, R> {
    inner: R,
    hasher: &'h mut Hasher,
}

impl<'h, R> HashingReader<'h, R> {
    /// Hashes what is read from `inner` into `hasher`.
    pub fn new(inner: R, hasher: &'h mut Hasher) -> Self {
        HashingReader { inner, hasher }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for HashingReader<'_, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(context, buffer);
        if let Poll::Ready(Ok(())) = polled {
            this.hasher.update(&buffer.filled()[before..]);
        }
        polled
    }
}

/// A hasher on a thread of the blocking pool, fed chunks as they arrive:
/// a download hashes on one core while it receives on another.
pub struct HashingThread {
    chunks: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    done: tokio::task::JoinHandle<Hasher>,
}

/// How many chunks may wait to be hashed (a download's are at most
/// 256 KiB each).
const HASHING_QUEUE: usize = 4;

impl HashingThread {
    /// Starts hashing after what `hasher` holds; each chunk, once hashed,
    /// goes to `hashed` (to be read into again).
    pub fn start(
        mut hasher: Hasher,
        hashed: impl Fn(bytes::Bytes) + Send + 'static,
    ) -> HashingThread {
        let (chunks, mut arriving) = tokio::sync::mpsc::channel::<bytes::Bytes>(HASHING_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = arriving.blocking_recv() {
                hasher.update(&chunk);
                hashed(chunk);
            }
            hasher
        });
        HashingThread {
            chunks: Some(chunks),
            done,
        }
    }

    /// Hands over the next chunk (waiting while the queue is full).
    pub async fn update(&mut self, chunk: bytes::Bytes) {
        if let Some(chunks) = &self.chunks
            && chunks.send(chunk).await.is_err()
        {
            // The thread is gone (it panicked): `finish` says so.
            self.chunks = None;
        }
    }

    /// Waits for every chunk to be hashed; the hasher, holding them all.
    pub async fn finish(mut self) -> std::io::Result<Hasher> {
        self.chunks = None;
        (&mut self.done).await.map_err(std::io::Error::other)
    }
}

/// Hashes the first `length` bytes of `reader` (e.g. the part of a file a
/// resumed transfer already holds).
pub async fn hash_prefix<R: AsyncRead + Unpin>(
    reader: &mut R,
    length: u64,
    hasher: &mut Hasher,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut limited = reader.take(length);
    let mut sink = tokio::io::sink();
    let copied = tokio::io::copy(&mut HashingReader::new(&mut limited, hasher), &mut sink).await?;
    if copied < length {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Hashes the first `length` bytes of a file with positional reads (so the
/// file's offset is left alone), blocking: run it on the blocking pool.
/// Gives up with `Interrupted` once `cancel` is set.
pub fn hash_file_blocking(
    file: &std::fs::File,
    length: u64,
    cancel: &std::sync::atomic::AtomicBool,
) -> std::io::Result<Digest> {
    use std::os::unix::fs::FileExt;
    let mut hasher = Hasher::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut position = 0;
    while position < length {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let want = buffer
            .len()
            .min(usize::try_from(length - position).unwrap_or(usize::MAX));
        let read = file.read_at(&mut buffer[..want], position)?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buffer[..read]);
        position += read as u64;
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_reader_sees_every_byte() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut hasher = Hasher::new();
        let mut copy = Vec::new();
        tokio::io::copy(&mut HashingReader::new(&data[..], &mut hasher), &mut copy)
            .await
            .unwrap();
        assert_eq!(copy, data);
        assert_eq!(hasher.finalize(), blake3::hash(&data));
    }

    #[test]
    fn hash_file_blocking_hashes_the_first_bytes_and_needs_them_all() {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 249) as u8).collect();
        file.write_all(&data).unwrap();
        let go_on = std::sync::atomic::AtomicBool::new(false);
        assert_eq!(
            &hash_file_blocking(&file, 700_000, &go_on).unwrap(),
            blake3::hash(&data).as_bytes()
        );
        assert_eq!(
            &hash_file_blocking(&file, 10, &go_on).unwrap(),
            blake3::hash(&data[..10]).as_bytes()
        );
        assert!(hash_file_blocking(&file, 700_001, &go_on).is_err());
        let cancelled = std::sync::atomic::AtomicBool::new(true);
        let error = hash_file_blocking(&file, 700_000, &cancelled).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::Interrupted);
    }

    #[tokio::test]
    async fn a_hashing_thread_hashes_every_chunk_in_order_after_what_it_held() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut held = Hasher::new();
        held.update(&data[..1000]);
        let (hashed, back) = std::sync::mpsc::channel();
        let mut thread = HashingThread::start(held, move |chunk| hashed.send(chunk).unwrap());
        // More chunks than the queue holds, of uneven sizes.
        let chunks: Vec<_> = data[1000..].chunks(70_001).collect();
        for chunk in &chunks {
            thread.update(bytes::Bytes::copy_from_slice(chunk)).await;
        }
        let hasher = thread.finish().await.unwrap();
        assert_eq!(hasher.finalize(), blake3::hash(&data));
        // Each chunk is handed on once hashed, in order.
        let handed: Vec<_> = back.try_iter().collect();
        assert_eq!(handed.len(), chunks.len());
        assert!(handed.iter().zip(&chunks).all(|(h, c)| &h[..] == *c));
    }

    #[tokio::test]
    async fn hash_prefix_hashes_exactly_the_prefix_and_needs_it_whole() {
        let data = b"0123456789";
        let mut hasher = Hasher::new();
        hash_prefix(&mut &data[..], 4, &mut hasher).await.unwrap();
        assert_eq!(hasher.finalize(), blake3::hash(b"0123"));
        assert!(
            hash_prefix(&mut &data[..], 11, &mut Hasher::new())
                .await
                .is_err()
        );
    }
}
