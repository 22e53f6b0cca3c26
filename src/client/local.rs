//! The client's local side: files to upload, and downloads that appear
//! under their name only when complete.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::fs::File;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::error::ClientError;
use crate::connection::ChunkReturn;
use crate::digest::parts::AlternateParts;
use crate::digest::{self, Digest, Hasher};
use crate::protocol::Token;

/// Opens a local file to upload; it must exist and be a regular file.
pub(super) async fn open_for_upload(path: &Path) -> Result<(File, u64), ClientError> {
    let local = |source| ClientError::Local {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).await.map_err(local)?;
    let metadata = file.metadata().await.map_err(local)?;
    if !metadata.is_file() {
        return Err(ClientError::NotAFile(path.to_owned()));
    }
    Ok((file, metadata.len()))
}

/// Whether `file` contains `token`; reads it through and rewinds it.
pub(super) async fn contains_token(
    file: &mut File,
    token: &Token,
    path: &Path,
) -> Result<bool, ClientError> {
    let local = |source| ClientError::Local {
        path: path.to_owned(),
        source,
    };
    let found = crate::connection::contains_token(file, token)
        .await
        .map_err(local)?;
    file.seek(io::SeekFrom::Start(0)).await.map_err(local)?;
    Ok(found)
}

/// A download in progress: a hidden temporary file beside its target,
/// renamed into place by [`PartialFile::complete`]. A plain one
/// ([`PartialFile::create`]) is removed when dropped (a failure, or a
/// cancelled future); a resumable one ([`PartialFile::resumable`]) has a
/// fixed name and is kept, so that the next download of the same target
/// continues it, unless [`PartialFile::discard`] removes it.
pub(super) struct PartialFile {
    file: File,
    path: PathBuf,
    target: PathBuf,
    /// Whether to leave the file when dropped before completion.
    keep: bool,
}

impl PartialFile {
    /// Creates a fresh temporary file for `target`, removed if dropped.
    pub async fn create(target: &Path) -> Result<PartialFile, ClientError> {
        let suffix: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(8)
            .map(char::from)
            .collect();
        let path = temporary_path(target, &format!(".{suffix}.part"))?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|source| local(target, source))?;
        Ok(PartialFile {
            file,
            path,
            target: target.to_owned(),
            keep: false,
        })
    }

    /// Opens (or creates) the resumable temporary file of `target`,
    /// `.NAME.miniftp-part` beside it, keeping what an earlier attempt
    /// left there.
    pub async fn resumable(target: &Path) -> Result<PartialFile, ClientError> {
        let path = temporary_path(target, RESUMABLE_SUFFIX)?;
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(|source| local(target, source))?;
        Ok(PartialFile {
            file,
            path,
            target: target.to_owned(),
            keep: true,
        })
    }

    /// How many bytes the file holds (an earlier attempt's).
    pub async fn len(&self) -> Result<u64, ClientError> {
        let metadata = self.file.metadata().await;
        Ok(metadata
            .map_err(|source| local(&self.target, source))?
            .len())
    }

    /// How many bytes an earlier attempt left, and their digest so far;
    /// the file is then positioned after them. Unreadable leftovers are
    /// dropped and the download starts afresh.
    pub async fn held(&mut self) -> Result<(u64, Hasher), ClientError> {
        let length = self
            .file
            .metadata()
            .await
            .map_err(|source| local(&self.target, source))?
            .len();
        let mut hasher = Hasher::new();
        let hashed = async {
            self.file.seek(io::SeekFrom::Start(0)).await?;
            digest::hash_prefix(&mut self.file, length, &mut hasher).await?;
            self.file.seek(io::SeekFrom::Start(length)).await
        };
        if hashed.await.is_ok() {
            return Ok((length, hasher));
        }
        self.restart().await?;
        Ok((0, Hasher::new()))
    }

    /// Empties the file, to download from the first byte again.
    pub async fn restart(&mut self) -> Result<(), ClientError> {
        let emptied = async {
            self.file.set_len(0).await?;
            self.file.seek(io::SeekFrom::Start(0)).await.map(drop)
        };
        emptied.await.map_err(|source| local(&self.target, source))
    }

    /// Waits until what was written is in the file (a write may still be
    /// on its way when a download fails), so that the next attempt sees it.
    pub async fn settle(&mut self) {
        let _ = self.file.flush().await;
    }

    /// Where the bytes go.
    pub fn writer(&mut self) -> &mut File {
        &mut self.file
    }

    /// The file, positioned where the next bytes go, for a [`FileWriter`];
    /// given back with [`PartialFile::put_back`].
    pub async fn take_file(&mut self) -> Result<std::fs::File, ClientError> {
        self.file
            .flush()
            .await
            .map_err(|source| local(&self.target, source))?;
        let file = self
            .file
            .try_clone()
            .await
            .map_err(|source| local(&self.target, source))?;
        Ok(file.into_std().await)
    }

    /// Takes back the file a [`FileWriter`] wrote (its position moved on).
    pub fn put_back(&mut self, file: std::fs::File) {
        self.file = File::from_std(file);
    }

    /// Renames the file to its target; with `durable`, makes its content
    /// durable first (a recursive download flushes once at the end instead).
    pub async fn complete(mut self, durable: bool) -> Result<(), ClientError> {
        let finished = async {
            self.file.flush().await?;
            if durable {
                self.file.sync_all().await?;
            }
            tokio::fs::rename(&self.path, &self.target).await
        };
        let result = finished.await.map_err(|source| local(&self.target, source));
        if result.is_ok() {
            self.keep = true;
        }
        result
    }

    /// Removes the file, whatever kind it is (its content is worthless).
    pub fn discard(mut self) {
        self.keep = false;
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A file written on a thread of its own, fed the chunks of a download as
/// they arrive: receiving, writing and hashing overlap, and no chunk is
/// copied on the way. A download from the first byte shares its hashing
/// between the two threads ([`AlternateParts`]): on 2 cores, a writing
/// thread that also hashed everything was the slowest step.
pub struct FileWriter {
    chunks: Option<tokio::sync::mpsc::Sender<Bytes>>,
    done: tokio::task::JoinHandle<io::Result<(std::fs::File, WriterHashing)>>,
    /// The even parts, hashed on the receiving thread (`None` when the
    /// writing thread hashes everything).
    even: Option<AlternateParts>,
}

/// What the writing thread hashes.
enum WriterHashing {
    /// Everything, after what the hasher holds.
    All(Hasher),
    /// The odd parts.
    Odd(AlternateParts),
}

impl WriterHashing {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            WriterHashing::All(hasher) => {
                hasher.update(bytes);
            }
            WriterHashing::Odd(parts) => parts.update(bytes),
        }
    }
}

/// How many chunks may wait for the writer (each at most 256 KiB).
const WRITER_QUEUE: usize = 8;

impl FileWriter {
    /// Starts writing at `file`'s position. `held` hashes what the file
    /// already holds before that position (a resumed download): the writing
    /// thread then hashes everything after it; without, the file is written
    /// from its first byte and the hashing shared. When `durable`, the disk
    /// is asked to start writing out every few MiB, so that the final flush
    /// is short.
    ///
    /// Each chunk, once written, is given back through `written_chunks`.
    pub fn start(
        mut file: std::fs::File,
        held: Option<Hasher>,
        durable: bool,
        written_chunks: ChunkReturn,
    ) -> FileWriter {
        use crate::storage::write_back;
        let (even, mut hashing) = match held {
            Some(hasher) => (None, WriterHashing::All(hasher)),
            None => (
                Some(AlternateParts::even()),
                WriterHashing::Odd(AlternateParts::odd()),
            ),
        };
        let (chunks, mut arriving) = tokio::sync::mpsc::channel::<Bytes>(WRITER_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut written = 0u64;
            while let Some(chunk) = arriving.blocking_recv() {
                file.write_all(&chunk)?;
                hashing.update(&chunk);
                let before = written;
                written += chunk.len() as u64;
                written_chunks.give_back(chunk);
                if durable && write_back::due(before, written) {
                    write_back::start(&file);
                }
            }
            Ok((file, hashing))
        });
        FileWriter {
            chunks: Some(chunks),
            done,
            even,
        }
    }

    /// Hands over the next chunk; an error is the writer's (a full disk).
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(chunk.clone()).await.is_ok(),
            None => false,
        };
        if sent {
            // Hashed here while the writer writes it.
            if let Some(even) = &mut self.even {
                even.update(&chunk);
            }
            return Ok(());
        }
        // The writer stopped: it failed; its error comes with `finish`.
        self.chunks = None;
        Err(io::Error::other("the local file could not be written"))
    }

    /// Waits for every chunk to be written; gives the file and the digest
    /// of all it holds back.
    pub async fn finish(mut self) -> io::Result<(std::fs::File, Digest)> {
        self.chunks = None;
        let (file, hashing) = (&mut self.done).await.map_err(io::Error::other)??;
        let digest = match (hashing, self.even) {
            (WriterHashing::All(hasher), _) => hasher.finalize().into(),
            (WriterHashing::Odd(odd), Some(even)) => AlternateParts::combine(even, odd),
            (WriterHashing::Odd(_), None) => unreachable!("odd parts come with even ones"),
        };
        Ok((file, digest))
    }
}

/// The suffix of the temporary file a resumable download keeps.
pub const RESUMABLE_SUFFIX: &str = ".miniftp-part";

/// `.NAME` + `suffix` beside `target`, which must not be a directory.
fn temporary_path(target: &Path, suffix: &str) -> Result<PathBuf, ClientError> {
    let name = target.file_name().ok_or_else(|| {
        local(
            target,
            io::Error::new(io::ErrorKind::InvalidInput, "no file name"),
        )
    })?;
    if std::fs::metadata(target).is_ok_and(|m| m.is_dir()) {
        return Err(local(target, io::ErrorKind::IsADirectory.into()));
    }
    let mut temporary = std::ffi::OsString::from(".");
    temporary.push(name);
    temporary.push(suffix);
    Ok(target.with_file_name(temporary))
}

fn local(path: &Path, source: io::Error) -> ClientError {
    ClientError::Local {
        path: path.to_owned(),
        source,
    }
}

/// A local directory tree to upload, walked before anything is sent.
#[derive(Debug, Default)]
pub(super) struct LocalTree {
    /// Directories below the root, parents before children, as relative
    /// paths with `/` between names.
    pub directories: Vec<String>,
    /// Regular files (or links to them): relative path, local path, size.
    pub files: Vec<(String, PathBuf, u64)>,
    /// What cannot be uploaded, and why (not UTF-8, unreadable, a link to
    /// a directory, which is not followed so that a loop cannot be).
    pub skipped: Vec<(String, ClientError)>,
}

/// Walks `root` (blocking: run it off the runtime's threads), in name order.
pub(super) fn walk(root: &Path) -> Result<LocalTree, ClientError> {
    let metadata = std::fs::metadata(root).map_err(|source| local(root, source))?;
    if !metadata.is_dir() {
        return Err(local(root, io::ErrorKind::NotADirectory.into()));
    }
    let mut tree = LocalTree::default();
    let mut pending = vec![(root.to_owned(), String::new())];
    while let Some((directory, relative)) = pending.pop() {
        let listed = std::fs::read_dir(&directory).and_then(|entries| {
            entries
                .map(|entry| entry.map(|entry| (entry.file_name(), entry.path())))
                .collect::<io::Result<Vec<_>>>()
        });
        let mut entries = match listed {
            Ok(entries) => entries,
            Err(error) => {
                tree.skipped.push((relative, local(&directory, error)));
                continue;
            }
        };
        entries.sort();
        let mut subdirectories = Vec::new();
        for (name, path) in entries {
            let Some(name) = name.to_str() else {
                let error = io::Error::new(io::ErrorKind::InvalidData, "name is not UTF-8");
                tree.skipped
                    .push((path.display().to_string(), local(&path, error)));
                continue;
            };
            let child = match relative.is_empty() {
                true => name.to_owned(),
                false => format!("{relative}/{name}"),
            };
            let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() && is_link => {
                    let error = io::Error::other("a link to a directory, not followed");
                    tree.skipped.push((child, local(&path, error)));
                }
                Ok(m) if m.is_dir() => subdirectories.push((path, child)),
                Ok(m) if m.is_file() => tree.files.push((child, path, m.len())),
                Ok(_) => tree.skipped.push((child, ClientError::NotAFile(path))),
                Err(error) => tree.skipped.push((child, local(&path, error))),
            }
        }
        tree.directories
            .extend(subdirectories.iter().map(|(_, child)| child.clone()));
        // Depth first, in name order: pushed in reverse, the first pops first.
        pending.extend(subdirectories.into_iter().rev());
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_keeps_names_with_control_characters() {
        // Legal on Linux; the extended protocol carries them.
        let root = tempfile::TempDir::new().unwrap();
        for name in ["new\nline.txt", "tab\there", "plain.txt", "bell\u{7}"] {
            std::fs::write(root.path().join(name), name).unwrap();
        }
        std::fs::create_dir(root.path().join("dir\rreturn")).unwrap();
        std::fs::write(root.path().join("dir\rreturn/in\u{1b}side"), b"x").unwrap();
        let tree = walk(root.path()).unwrap();
        assert!(tree.skipped.is_empty(), "{:?}", tree.skipped);
        assert_eq!(tree.directories, ["dir\rreturn"]);
        let files: Vec<&str> = tree
            .files
            .iter()
            .map(|(name, _, _)| name.as_str())
            .collect();
        assert_eq!(
            files,
            [
                "bell\u{7}",
                "new\nline.txt",
                "plain.txt",
                "tab\there",
                "dir\rreturn/in\u{1b}side"
            ]
        );
    }
}
