//! The BLAKE3 of a file hashed in parts by different hands, kept as one
//! chaining value per part: an S3 upload's parts, sent to different
//! servers, so that any server can finish a resumed upload's digest without
//! reading back what the others received; a download's parts, every other
//! one hashed on the thread that receives and the rest on the thread that
//! writes ([`AlternateParts`]), so that neither thread does all the hashing.
//!
//! BLAKE3 is a tree over 1 KiB chunks. A part whose size is a power of two
//! times 1 KiB, starting at a multiple of that size, is a whole subtree: its
//! chaining value ([`blake3::hazmat`]) is all the tree needs of it. Every
//! part but the last has [`PART_SIZE`] bytes, so the parts are such
//! subtrees, and the file's root is merged from them in the tree's own
//! shape ([`combine`]); the first part also keeps its root hash, the answer
//! when it is the only one. Checked against `blake3::hash` on many sizes
//! (the tests below).

use blake3::Hasher;
use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::digest::Digest;

/// The size of every part but the last: 8 MiB, the smallest power of two
/// over S3's 5 MiB minimum part (and large enough that a download's
/// threads hand the hashing over only every few milliseconds).
pub const PART_SIZE: u64 = 8 << 20;

/// What a part contributes to the file's digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHash {
    /// The part's subtree chaining value.
    pub chaining_value: ChainingValue,
    /// The first part's root hash: the file's digest if it is the only part.
    pub root: Option<Digest>,
}

/// Hashes one part as its bytes pass.
#[derive(Clone)]
pub struct PartHasher {
    hasher: Hasher,
    first: bool,
    len: u64,
}

impl PartHasher {
    /// A hasher for the part at `index` (from 0).
    pub fn new(index: u64) -> PartHasher {
        let mut hasher = Hasher::new();
        if index > 0 {
            hasher.set_input_offset(index * PART_SIZE);
        }
        PartHasher {
            hasher,
            first: index == 0,
            len: 0,
        }
    }

    /// Takes the next bytes of the part.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it took nothing yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part's hash; `None` for an empty part (which no tree holds).
    pub fn finish(&self) -> Option<PartHash> {
        (self.len > 0).then(|| PartHash {
            chaining_value: self.hasher.finalize_non_root(),
            root: self.first.then(|| *self.hasher.finalize().as_bytes()),
        })
    }
}

/// Hashes the parts of one parity (the even ones, or the odd ones) of a
/// stream that starts at a file's first byte, as its bytes pass: two of
/// them, one for each parity, fed the same bytes on two threads, share the
/// work of hashing the file ([`AlternateParts::combine`]).
pub struct AlternateParts {
    odd: bool,
    /// Bytes of the stream seen so far.
    position: u64,
    /// The part under way, if it is of this parity.
    current: Option<(u64, PartHasher)>,
    /// The finished parts of this parity, with their index.
    finished: Vec<(u64, PartHash)>,
}

impl AlternateParts {
    /// Hashes the even parts (the first among them).
    pub fn even() -> AlternateParts {
        AlternateParts::of_parity(false)
    }

    /// Hashes the odd parts.
    pub fn odd() -> AlternateParts {
        AlternateParts::of_parity(true)
    }

    fn of_parity(odd: bool) -> AlternateParts {
        AlternateParts {
            odd,
            position: 0,
            current: None,
            finished: Vec::new(),
        }
    }

    /// Takes the stream's next bytes, hashing those of its parity.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            let position = self.position + at as u64;
            let index = position / PART_SIZE;
            let part_end = (index + 1) * PART_SIZE;
            let take = usize::try_from(part_end - position)
                .unwrap_or(usize::MAX)
                .min(bytes.len() - at);
            if (index % 2 == 1) == self.odd {
                let (_, hasher) = self
                    .current
                    .get_or_insert_with(|| (index, PartHasher::new(index)));
                hasher.update(&bytes[at..at + take]);
                if position + take as u64 == part_end {
                    self.finish_current();
                }
            }
            at += take;
        }
        self.position += bytes.len() as u64;
    }

    fn finish_current(&mut self) {
        if let Some((index, hasher)) = self.current.take()
            && let Some(hash) = hasher.finish()
        {
            self.finished.push((index, hash));
        }
    }

    /// The digest of the whole stream, from the even parts' and the odd
    /// parts' hashers (fed the same bytes).
    pub fn combine(mut even: AlternateParts, mut odd: AlternateParts) -> Digest {
        debug_assert_eq!(even.position, odd.position, "fed the same bytes");
        even.finish_current();
        odd.finish_current();
        let mut parts = even.finished;
        parts.append(&mut odd.finished);
        parts.sort_unstable_by_key(|(index, _)| *index);
        let hashes: Vec<PartHash> = parts.into_iter().map(|(_, hash)| hash).collect();
        combine(&hashes, even.position)
    }
}

/// The digest of a `total`-byte file from its parts' hashes, in order:
/// every part but the last of [`PART_SIZE`] bytes.
pub fn combine(parts: &[PartHash], total: u64) -> Digest {
    match parts {
        [] => *blake3::hash(b"").as_bytes(),
        [only] => only
            .root
            .expect("the first part keeps its root hash, for a file of one part"),
        _ => {
            let left = left_subtree_len(total);
            let (left_parts, right_parts) = parts.split_at((left / PART_SIZE) as usize);
            *merge_subtrees_root(
                &subtree(left_parts, left),
                &subtree(right_parts, total - left),
                Mode::Hash,
            )
            .as_bytes()
        }
    }
}

/// The chaining value of `len` bytes held by `parts` (a subtree: the left
/// split of BLAKE3 falls on a part boundary once there are two parts).
fn subtree(parts: &[PartHash], len: u64) -> ChainingValue {
    match parts {
        [only] => only.chaining_value,
        _ => {
            let left = left_subtree_len(len);
            let (left_parts, right_parts) = parts.split_at((left / PART_SIZE) as usize);
            merge_subtrees_non_root(
                &subtree(left_parts, left),
                &subtree(right_parts, len - left),
                Mode::Hash,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest of `data` through parts of [`PART_SIZE`].
    fn by_parts(data: &[u8]) -> Digest {
        let parts: Vec<PartHash> = data
            .chunks(PART_SIZE as usize)
            .enumerate()
            .map(|(index, part)| {
                let mut hasher = PartHasher::new(index as u64);
                // In uneven pieces, as they come from a socket.
                for piece in part.chunks(100_003) {
                    hasher.update(piece);
                }
                hasher.finish().unwrap()
            })
            .collect();
        combine(&parts, data.len() as u64)
    }

    /// The digest of `data` through alternate parts, fed in pieces of
    /// `piece` bytes.
    fn by_alternate_parts(data: &[u8], piece: usize) -> Digest {
        let (mut even, mut odd) = (AlternateParts::even(), AlternateParts::odd());
        for bytes in data.chunks(piece) {
            even.update(bytes);
            odd.update(bytes);
        }
        AlternateParts::combine(even, odd)
    }

    #[test]
    fn alternate_parts_give_the_digest_of_the_whole_on_every_size() {
        let part = PART_SIZE as usize;
        let data: Vec<u8> = (0..3 * part + 4099).map(|i| (i % 241) as u8).collect();
        for size in [
            0,
            1,
            1025,
            part - 1,
            part,
            part + 1,
            2 * part,
            3 * part + 4099,
        ] {
            for piece in [262_144, 100_003] {
                assert_eq!(
                    by_alternate_parts(&data[..size], piece),
                    *blake3::hash(&data[..size]).as_bytes(),
                    "size {size}, pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn parts_give_the_digest_of_the_whole_on_many_sizes() {
        let part = PART_SIZE as usize;
        let longest = 7 * part + 3;
        let data: Vec<u8> = (0..longest as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut sizes = vec![0, 1, 1023, 1024, 1025, 100_000, part - 1, part, part + 1];
        for parts in 2..=7 {
            for delta in [-1025i64, -1, 0, 1, 1024, 4097] {
                sizes.push(((parts * part) as i64 + delta) as usize);
            }
            sizes.push((parts - 1) * part + 1);
        }
        sizes.push(longest);
        for size in sizes {
            let size = size.min(longest);
            assert_eq!(
                by_parts(&data[..size]),
                *blake3::hash(&data[..size]).as_bytes(),
                "{size} bytes"
            );
        }
    }

    #[test]
    fn a_part_hashed_again_elsewhere_gives_the_same_hash() {
        let data = vec![7u8; PART_SIZE as usize];
        let mut one = PartHasher::new(3);
        one.update(&data);
        let mut other = PartHasher::new(3);
        other.update(&data[..10]);
        other.update(&data[10..]);
        assert_eq!(one.finish(), other.finish());
        assert_eq!(one.finish().unwrap().root, None);
        assert!(PartHasher::new(0).finish().is_none());
    }
}
