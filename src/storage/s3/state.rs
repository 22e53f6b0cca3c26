//! What an upload in parts keeps in the bucket's private area, so that any
//! server can resume it, and the sweeps can tell a live one from one a
//! crash left: a small TOML object per multipart upload.
//!
//! A resumable upload's state is `.miniftp/partial/<key>`, its name a hash
//! of the tree, path and size (what a resume asks for); another upload's is
//! `.miniftp/uploads/<token>`, naming the server that owns it. A file
//! uploaded in parts has its digest in `.miniftp/digests/<token>`, named by
//! the object's metadata (metadata is fixed when a multipart upload begins,
//! before the digest is known).

use serde::{Deserialize, Serialize};

use crate::digest::parts::{PART_SIZE, PartHash};

/// One multipart upload, as kept in its state object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// The object it completes to.
    pub key: String,
    /// The store's id of the upload.
    pub upload_id: String,
    /// The whole file's size, when known.
    pub size: Option<u64>,
    /// The size of every part but the last.
    pub part_size: u64,
    /// Names the file's digest record.
    pub token: String,
    /// The server that owns it, for an upload that is not resumable (gone
    /// with its server); none for a resumable one.
    pub owner: Option<String>,
    /// When it was last written, in Unix seconds.
    pub updated: u64,
    /// The parts the store holds, in order from 1.
    #[serde(default)]
    pub parts: Vec<PartState>,
}

/// One part the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    /// Its number, from 1.
    pub number: u32,
    /// The store's ETag of it, which the completion names.
    pub etag: String,
    /// Its BLAKE3 chaining value, hex.
    pub chaining_value: String,
    /// The first part's root hash, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

impl PartState {
    /// A part with its number, ETag and hash.
    pub fn new(number: u32, etag: String, hash: &PartHash) -> PartState {
        PartState {
            number,
            etag,
            chaining_value: to_hex(&hash.chaining_value),
            root: hash.root.as_ref().map(|root| to_hex(root)),
        }
    }

    /// Its hash, if the hex is sound.
    pub fn hash(&self) -> Option<PartHash> {
        Some(PartHash {
            chaining_value: from_hex(&self.chaining_value)?,
            root: match &self.root {
                Some(root) => Some(from_hex(root)?),
                None => None,
            },
        })
    }
}

impl UploadState {
    /// Reads a state object; `None` if it is not one of ours.
    pub fn parse(bytes: &[u8]) -> Option<UploadState> {
        toml::from_str(std::str::from_utf8(bytes).ok()?).ok()
    }

    /// The object's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        toml::to_string(self)
            .expect("an upload state is plain TOML")
            .into_bytes()
    }

    /// The parts' hashes, if they can be resumed from: this server's part
    /// size, numbered 1, 2, 3... with sound hashes, the first with its
    /// root, and fewer bytes than the whole file.
    pub fn resumable_parts(&self, size: u64) -> Option<Vec<PartHash>> {
        if self.part_size != PART_SIZE || self.size != Some(size) {
            return None;
        }
        let mut hashes = Vec::with_capacity(self.parts.len());
        for (index, part) in self.parts.iter().enumerate() {
            if part.number as usize != index + 1 {
                return None;
            }
            let hash = part.hash()?;
            if (index == 0) != hash.root.is_some() {
                return None;
            }
            hashes.push(hash);
        }
        (self.parts.len() as u64 * PART_SIZE <= size).then_some(hashes)
    }
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// 32 bytes from 64 hex digits.
pub fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::parts::PartHasher;

    fn hash(index: u64) -> PartHash {
        let mut hasher = PartHasher::new(index);
        hasher.update(b"some bytes");
        hasher.finish().unwrap()
    }

    #[test]
    fn a_state_survives_its_object_and_says_what_resumes() {
        let state = UploadState {
            key: "p/docs/a b.txt".into(),
            upload_id: "id".into(),
            size: Some(3 * PART_SIZE),
            part_size: PART_SIZE,
            token: "t".into(),
            owner: None,
            updated: 1,
            parts: vec![
                PartState::new(1, "\"e1\"".into(), &hash(0)),
                PartState::new(2, "\"e2\"".into(), &hash(1)),
            ],
        };
        let again = UploadState::parse(&state.to_bytes()).unwrap();
        assert_eq!(again, state);
        assert_eq!(
            again.resumable_parts(3 * PART_SIZE).unwrap(),
            vec![hash(0), hash(1)]
        );
        // Another size is another upload.
        assert!(again.resumable_parts(3 * PART_SIZE + 1).is_none());
        let mut gap = state.clone();
        gap.parts.remove(0);
        assert!(gap.resumable_parts(3 * PART_SIZE).is_none());
        assert!(UploadState::parse(b"not toml at all [").is_none());
        assert_eq!(from_hex(&to_hex(&[7u8; 32])), Some([7u8; 32]));
        assert_eq!(from_hex("zz"), None);
    }
}
