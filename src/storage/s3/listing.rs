//! Listings of a prefix, a batch at a time, as the store pages them
//! (ListObjectsV2 with a delimiter, 1,000 keys a page): the lister holds
//! one page, a batch is at most 256 entries, so a directory
//! of any size is listed in bounded memory.

use futures::TryStreamExt;

use super::{S3Bucket, storage_error};
use crate::storage::{Entry, EntryKind, Listing, ListingSource, Result, VirtualPath, path};

/// Entries per batch, as the local disk gives them.
const LISTING_BATCH: usize = 256;

/// Opens the listing of `directory` (known to be one).
pub(super) async fn open(bucket: &S3Bucket, directory: &VirtualPath) -> Result<Listing> {
    let prefix = bucket.prefix(directory);
    let lister = bucket
        .operator()
        .lister(&prefix)
        .await
        .map_err(storage_error)?;
    Ok(Listing::new(Box::new(PrefixListing {
        lister: Some(lister),
        hide_private: directory.is_root(),
        prefix,
    })))
}

/// A prefix being listed.
struct PrefixListing {
    /// `None` once it is done.
    lister: Option<opendal::Lister>,
    /// The prefix listed; its own marker is not an entry.
    prefix: String,
    /// At a tree's root, the private area is not shown.
    hide_private: bool,
}

#[async_trait::async_trait]
impl ListingSource for PrefixListing {
    async fn next_batch(&mut self) -> Result<Option<Vec<Entry>>> {
        let Some(lister) = self.lister.as_mut() else {
            return Ok(None);
        };
        let mut batch = Vec::new();
        while batch.len() < LISTING_BATCH {
            let Some(entry) = lister.try_next().await.map_err(storage_error)? else {
                self.lister = None;
                break;
            };
            if let Some(entry) = describe(&self.prefix, self.hide_private, &entry) {
                batch.push(entry);
            }
        }
        Ok((!batch.is_empty() || self.lister.is_some()).then_some(batch))
    }
}

/// An object or a common prefix as an entry, or `None` when it is not
/// shown: the directory's own marker, the private area (at a tree's root),
/// a name no path can reach (empty, `.`, `..`, from keys such as `a//b`).
fn describe(prefix: &str, hide_private: bool, entry: &opendal::Entry) -> Option<Entry> {
    {
        let rest = entry.path().strip_prefix(prefix)?;
        let (name, kind) = match rest.strip_suffix('/') {
            Some(name) => (name, EntryKind::Directory),
            None => (rest, EntryKind::File),
        };
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return None;
        }
        if hide_private && name == path::PRIVATE_DIR {
            return None;
        }
        let metadata = entry.metadata();
        Some(Entry {
            name: name.to_owned(),
            kind,
            size: match kind {
                EntryKind::File => metadata.content_length(),
                EntryKind::Directory => 0,
            },
            modified: metadata.last_modified().map(Into::into),
        })
    }
}
