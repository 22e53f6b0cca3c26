//! The client's local side: files to upload, and downloads that appear
//! under their name only when complete.

use std::io;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::error::ClientError;
use crate::protocol::Token;
use crate::protocol::frame::TokenDetector;

/// How much of a file is read at a time while looking for the token.
const SCAN_CHUNK: usize = 256 << 10;

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
    let mut detector = TokenDetector::new(token);
    let mut buffer = vec![0u8; SCAN_CHUNK];
    let found = loop {
        let read = file.read(&mut buffer).await.map_err(local)?;
        if read == 0 {
            break false;
        }
        if detector.feed(&buffer[..read]) {
            break true;
        }
    };
    file.seek(io::SeekFrom::Start(0)).await.map_err(local)?;
    Ok(found)
}

/// A download in progress: a hidden temporary file beside its target,
/// removed when dropped (a failure, or a cancelled future) unless
/// [`PartialFile::complete`] renamed it into place.
pub(super) struct PartialFile {
    file: File,
    path: PathBuf,
    target: PathBuf,
    completed: bool,
}

impl PartialFile {
    /// Creates the temporary file for `target`.
    pub async fn create(target: &Path) -> Result<PartialFile, ClientError> {
        let local = |source| ClientError::Local {
            path: target.to_owned(),
            source,
        };
        let name = target
            .file_name()
            .ok_or_else(|| local(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
        if tokio::fs::metadata(target).await.is_ok_and(|m| m.is_dir()) {
            return Err(local(io::ErrorKind::IsADirectory.into()));
        }
        let suffix: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(8)
            .map(char::from)
            .collect();
        let mut temporary = std::ffi::OsString::from(".");
        temporary.push(name);
        temporary.push(format!(".{suffix}.part"));
        let path = target.with_file_name(temporary);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(local)?;
        Ok(PartialFile {
            file,
            path,
            target: target.to_owned(),
            completed: false,
        })
    }

    /// Where the bytes go.
    pub fn writer(&mut self) -> &mut File {
        &mut self.file
    }

    /// Makes the file durable and renames it to its target.
    pub async fn complete(mut self) -> Result<(), ClientError> {
        let local = |source| ClientError::Local {
            path: self.target.clone(),
            source,
        };
        self.file.flush().await.map_err(local)?;
        self.file.sync_all().await.map_err(local)?;
        tokio::fs::rename(&self.path, &self.target)
            .await
            .map_err(local)?;
        self.completed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.completed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
