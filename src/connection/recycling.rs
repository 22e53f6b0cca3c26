//! Chunks of file data given back once they are used, so that the next
//! chunks are read into the same memory.
//!
//! A chunk handed to another thread (a writer, a hasher) cannot be read into
//! again while that thread holds it, so without recycling every chunk of a
//! download is a fresh allocation: its pages faulted in, its cache lines cold
//! when the kernel copies into it and when the other thread reads it. A few
//! chunks going round instead stay in the caches.

use std::sync::{Mutex, mpsc};

use bytes::{Bytes, BytesMut};

/// How many given-back chunks may wait to be read into again; more are
/// dropped (each is at most one data read, 256 KiB).
const WAITING: usize = 16;

/// The connection's end: where given-back chunks come from.
pub struct ChunkRecycler {
    /// Only the connection's owner takes from it; the lock makes the
    /// recycler shareable, as a connection must be.
    returned: Mutex<mpsc::Receiver<Bytes>>,
    give_back: mpsc::SyncSender<Bytes>,
}

/// The other thread's end: gives chunks back once it is done with them.
#[derive(Clone)]
pub struct ChunkReturn(mpsc::SyncSender<Bytes>);

impl ChunkRecycler {
    /// A recycler with no chunk yet.
    pub fn new() -> ChunkRecycler {
        let (give_back, returned) = mpsc::sync_channel(WAITING);
        ChunkRecycler {
            returned: Mutex::new(returned),
            give_back,
        }
    }

    /// What a thread that takes chunks gives them back through.
    pub fn returner(&self) -> ChunkReturn {
        ChunkReturn(self.give_back.clone())
    }

    /// An empty buffer over the memory of a chunk given back, if one is
    /// no longer shared (a chunk whose memory is still in use elsewhere is
    /// let go).
    pub(super) fn spare(&self) -> Option<BytesMut> {
        let returned = self.returned.lock().ok()?;
        while let Ok(chunk) = returned.try_recv() {
            if let Ok(mut buffer) = chunk.try_into_mut() {
                buffer.clear();
                return Some(buffer);
            }
        }
        None
    }
}

impl Default for ChunkRecycler {
    fn default() -> Self {
        ChunkRecycler::new()
    }
}

impl ChunkReturn {
    /// Gives `chunk` back (dropped if enough are waiting already, or if the
    /// connection is gone).
    pub fn give_back(&self, chunk: Bytes) {
        let _ = self.0.try_send(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_given_back_is_handed_out_empty_over_the_same_memory() {
        let recycler = ChunkRecycler::new();
        let mut buffer = BytesMut::with_capacity(1000);
        buffer.extend_from_slice(&[7; 600]);
        let chunk = buffer.split().freeze();
        drop(buffer);
        let address = chunk.as_ptr();
        recycler.returner().give_back(chunk);
        let mut spare = recycler.spare().expect("the chunk comes back");
        assert!(spare.is_empty());
        spare.reserve(1000);
        assert_eq!(spare.as_ptr(), address);
        assert!(recycler.spare().is_none());
    }

    #[test]
    fn a_chunk_still_shared_is_let_go() {
        let recycler = ChunkRecycler::new();
        let chunk = Bytes::from(vec![1u8; 100]);
        let kept = chunk.clone();
        recycler.returner().give_back(chunk);
        assert!(recycler.spare().is_none());
        assert_eq!(kept.len(), 100);
    }

    #[test]
    fn no_more_than_a_bounded_number_wait() {
        let recycler = ChunkRecycler::new();
        let returner = recycler.returner();
        for _ in 0..WAITING * 3 {
            returner.give_back(Bytes::from(vec![0u8; 10]));
        }
        let mut count = 0;
        while recycler.spare().is_some() {
            count += 1;
        }
        assert_eq!(count, WAITING);
    }
}
