//! Digests kept beside the files they describe, so that a download sends a
//! file's digest without reading the file a second time.
//!
//! A file's BLAKE3 is known when it is uploaded (it was hashed on the way
//! in) or first downloaded (hashed beside the sending). It is kept as a
//! small record in the private directory, named after the file's path and
//! stamped with what changes whenever the file does: its inode, size,
//! modification time and change time (`ctime`, which no user can set back:
//! an edit that keeps the size and restores the mtime, as `rsync -t` may,
//! still moves it). A record whose stamp does not match the file is
//! ignored, and replaced when the file is hashed again. Only files of at
//! least [`KEPT_FROM`] bytes get one: below that, hashing costs less than
//! the record.
//!
//! Records of files removed or renamed since are pruned when the storage
//! opens.

use std::io::{self, Read};
use std::os::fd::AsFd;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

use super::PrivateArea;
use crate::digest::Digest;

/// Where records live, relative to the private directory.
pub(super) const DIGEST_DIR: &str = "digests";

/// The smallest file whose digest is kept.
pub(super) const KEPT_FROM: u64 = 1 << 20;

/// What a record starts with: its format.
const MAGIC: &[u8; 4] = b"MFD1";

/// The length of a record before the path it names.
const HEAD_LEN: usize = 4 + Stamp::LEN + 32;

/// What identifies one state of a file: any change to it changes this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    const LEN: usize = 8 * 6;

    /// The stamp of an open file.
    pub(super) fn of(file: &impl AsFd) -> io::Result<Stamp> {
        let stat = rustix::fs::fstat(file)?;
        Ok(Stamp {
            inode: stat.st_ino,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            modified: (stat.st_mtime, stat.st_mtime_nsec as i64),
            changed: (stat.st_ctime, stat.st_ctime_nsec as i64),
        })
    }

    /// The stamp of what `path` (from `root`, as `/a/b`; links not
    /// followed) is.
    fn at(root: &Dir, path: &str) -> io::Result<Stamp> {
        let relative = match path.trim_start_matches('/') {
            "" => ".",
            relative => relative,
        };
        let file = root.open_with(
            relative,
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW),
        )?;
        Stamp::of(&file)
    }

    /// The size of the file stamped.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for value in [
            self.inode as i64,
            self.size as i64,
            self.modified.0,
            self.modified.1,
            self.changed.0,
            self.changed.1,
        ] {
            out.extend_from_slice(&value.to_be_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> Stamp {
        let value = |index: usize| {
            i64::from_be_bytes(bytes[index * 8..index * 8 + 8].try_into().expect("8 bytes"))
        };
        Stamp {
            inode: value(0) as u64,
            size: value(1) as u64,
            modified: (value(2), value(3)),
            changed: (value(4), value(5)),
        }
    }
}

/// The record's name for the file at `path` (relative to the shared root).
fn record_name(path: &str) -> String {
    let key = blake3::hash(path.as_bytes()).to_hex();
    format!("{DIGEST_DIR}/{}", &key[..32])
}

/// The digest kept for the file at `path` (relative to the shared root),
/// if its record matches `stamp`.
pub(super) fn lookup(private: &PrivateArea, path: &str, stamp: Stamp) -> Option<Digest> {
    let mut record = Vec::with_capacity(HEAD_LEN + path.len());
    private
        .get()
        .open(record_name(path))
        .ok()?
        .read_to_end(&mut record)
        .ok()?;
    let (head, named) = record.split_at_checked(HEAD_LEN)?;
    if &head[..4] != MAGIC || named != path.as_bytes() {
        return None;
    }
    if Stamp::decode(&head[4..4 + Stamp::LEN]) != stamp {
        return None;
    }
    head[4 + Stamp::LEN..].try_into().ok()
}

/// Keeps `digest` for the file at `path` (relative to the shared root) as
/// `stamp` describes it. Written whole or not at all (a private temporary
/// file renamed over the record); a failure only costs a later rehash.
pub(super) fn keep(private: &PrivateArea, path: &str, stamp: Stamp, digest: &Digest) {
    if stamp.size < KEPT_FROM {
        return;
    }
    let mut record = Vec::with_capacity(HEAD_LEN + path.len());
    record.extend_from_slice(MAGIC);
    stamp.encode(&mut record);
    record.extend_from_slice(digest);
    record.extend_from_slice(path.as_bytes());
    let name = record_name(path);
    let temporary = format!("{name}.new");
    let written = private.with(|directory| {
        directory.create_dir_all(DIGEST_DIR)?;
        directory.write(&temporary, &record)?;
        directory.rename(&temporary, directory, &name)
    });
    if let Err(error) = written {
        tracing::debug!(%error, "could not keep a digest");
    }
}

/// Removes the records of files that are gone or changed since.
pub(super) fn prune(private: &Dir, root: &Dir) {
    let Ok(records) = private.read_dir(DIGEST_DIR) else {
        return;
    };
    let Ok(directory) = private.open_dir(DIGEST_DIR) else {
        return;
    };
    for entry in records.flatten() {
        let name = entry.file_name();
        let current = (|| {
            let mut record = Vec::new();
            directory.open(&name).ok()?.read_to_end(&mut record).ok()?;
            let (head, path) = record.split_at_checked(HEAD_LEN)?;
            let path = std::str::from_utf8(path).ok()?;
            let kept = Stamp::decode(&head[4..4 + Stamp::LEN]);
            (&head[..4] == MAGIC && Stamp::at(root, path).ok()? == kept).then_some(())
        })();
        if current.is_none() {
            let _ = directory.remove_file(&name);
        }
    }
}
