//! What the storage contract cannot see of the S3 backend, on a real store
//! (the run's single Garage node): uploads in parts, visible only when
//! committed and aborted when abandoned; a resume through another server's
//! view of the bucket; uploads of unknown size; files put by other tools,
//! served with their digest; long listings in pages; the private area.

use std::sync::Arc;

use miniftp::storage::s3::{S3Settings, upkeep};
use miniftp::storage::{EntryKind, S3Bucket, Storage, StorageError, VirtualPath};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::garage::{self, Node};
use crate::support::{HANG_GUARD, pseudo_random_bytes};

const PART: usize = 8 << 20;

/// A server's view of the tree at `prefix` (opened as a server opens it).
async fn open(node: &Node, prefix: &str) -> Storage {
    let bucket = S3Bucket::open(&node.settings(prefix))
        .await
        .unwrap_or_else(|error| panic!("open {prefix}: {error}"));
    Storage::new(Arc::new(bucket))
}

/// The multipart uploads in progress under `prefix`, looked at without a
/// sweep.
async fn in_progress(node: &Node, prefix: &str) -> Vec<String> {
    let looking = S3Bucket::open(&S3Settings {
        read_only: true,
        ..node.settings(prefix)
    })
    .await
    .unwrap();
    upkeep::uploads_in_progress(&looking).await.unwrap()
}

/// Waits (polling the store) until no multipart upload is in progress
/// under `prefix`: an abandoned upload is aborted by its worker, after
/// the writer is gone.
async fn until_none_in_progress(node: &Node, prefix: &str) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let left = in_progress(node, prefix).await;
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never aborted: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn at(path: &str) -> VirtualPath {
    VirtualPath::root().resolve(path).unwrap()
}

async fn read_all(storage: &Storage, path: &str) -> (Vec<u8>, [u8; 32]) {
    let download = storage.open_file(&at(path)).await.unwrap();
    let mut data = Vec::new();
    download
        .reader(0)
        .await
        .unwrap()
        .read_to_end(&mut data)
        .await
        .unwrap();
    (data, download.digest().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_goes_in_parts_and_appears_whole_when_committed() {
    let Some(node) = garage::single("uploads in parts, on Garage").await else {
        return;
    };
    let prefix = garage::fresh_prefix("parts");
    let storage = open(node, &prefix).await;
    let data = pseudo_random_bytes(2 * PART + 4321, 1);
    let mut upload = storage
        .create_upload(&at("big.bin"), Some(data.len() as u64), false)
        .await
        .unwrap();
    upload.write_all(&data).await.unwrap();
    // A multipart upload is in progress, and nothing is visible.
    assert_eq!(
        in_progress(node, &prefix).await,
        [format!("{prefix}/big.bin")]
    );
    assert_eq!(
        storage.stat(&at("big.bin")).await.unwrap_err(),
        StorageError::NotFound
    );
    assert_eq!(
        upload.seal().await.unwrap(),
        *blake3::hash(&data).as_bytes()
    );
    storage.commit(upload).await.unwrap();
    assert_eq!(in_progress(node, &prefix).await, Vec::<String>::new());
    // Whole, with the digest recorded at upload.
    let (back, digest) = read_all(&storage, "big.bin").await;
    assert!(back == data, "the bytes as sent");
    assert_eq!(digest, *blake3::hash(&data).as_bytes());
    // As any S3 tool sees it: the object, its bytes as they are.
    let operator = garage::operator(&node.endpoint);
    let object = operator.read(&format!("{prefix}/big.bin")).await.unwrap();
    assert!(object.to_vec() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_is_aborted_unless_it_may_resume() {
    let Some(node) = garage::single("abandoned uploads, on Garage").await else {
        return;
    };
    let prefix = garage::fresh_prefix("abandoned");
    let storage = open(node, &prefix).await;
    let data = pseudo_random_bytes(3 * PART, 2);
    let size = Some(data.len() as u64);

    // Not resumable, dropped: aborted.
    let mut upload = storage
        .create_upload(&at("a.bin"), size, false)
        .await
        .unwrap();
    upload.write_all(&data[..PART + 10]).await.unwrap();
    drop(upload);
    until_none_in_progress(node, &prefix).await;

    // Resumable, discarded (its digest did not match): aborted too.
    let mut upload = storage
        .create_upload(&at("b.bin"), size, true)
        .await
        .unwrap();
    upload.write_all(&data[..2 * PART]).await.unwrap();
    upload.discard();
    until_none_in_progress(node, &prefix).await;
    let again = storage
        .create_upload(&at("b.bin"), size, true)
        .await
        .unwrap();
    assert_eq!(again.held(), 0, "a discarded upload keeps nothing");
    again.discard();
    until_none_in_progress(node, &prefix).await;

    // Resumable, dropped mid-part (a lost connection): its whole parts are
    // kept, and another server's view of the bucket resumes from them.
    let mut upload = storage
        .create_upload(&at("c.bin"), size, true)
        .await
        .unwrap();
    upload.write_all(&data[..2 * PART + 5000]).await.unwrap();
    drop(upload);
    let elsewhere = open(node, &prefix).await;
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    let mut resumed = loop {
        // The first view's worker saves the parts the store answered; until
        // it has, this process gives a fresh upload, which is dropped.
        let resumed = elsewhere
            .create_upload(&at("c.bin"), size, true)
            .await
            .unwrap();
        if resumed.held() == 2 * PART as u64 {
            break resumed;
        }
        drop(resumed);
        assert!(tokio::time::Instant::now() < deadline, "never resumable");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    resumed.write_all(&data[2 * PART..]).await.unwrap();
    assert_eq!(
        resumed.seal().await.unwrap(),
        *blake3::hash(&data).as_bytes(),
        "merged from the kept parts' chaining values"
    );
    elsewhere.commit(resumed).await.unwrap();
    let (back, digest) = read_all(&storage, "c.bin").await;
    assert!(back == data);
    assert_eq!(digest, *blake3::hash(&data).as_bytes());
    until_none_in_progress(node, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_unknown_size_goes_in_parts_held_one_at_a_time() {
    let Some(node) = garage::single("uploads of unknown size, on Garage").await else {
        return;
    };
    let storage = open(node, &garage::fresh_prefix("unsized")).await;
    for (name, size) in [("small", 1000), ("large", 2 * PART + 77)] {
        let data = pseudo_random_bytes(size, 3);
        let mut upload = storage.create_upload(&at(name), None, false).await.unwrap();
        for piece in data.chunks(100_000) {
            upload.write_all(piece).await.unwrap();
        }
        assert_eq!(
            upload.seal().await.unwrap(),
            *blake3::hash(&data).as_bytes()
        );
        storage.commit(upload).await.unwrap();
        let (back, digest) = read_all(&storage, name).await;
        assert!(back == data, "{name}");
        assert_eq!(digest, *blake3::hash(&data).as_bytes(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_put_by_another_tool_is_served_with_its_digest() {
    let Some(node) = garage::single("files put by other tools, on Garage").await else {
        return;
    };
    let prefix = garage::fresh_prefix("foreign");
    let operator = garage::operator(&node.endpoint);
    let data = pseudo_random_bytes(3 * 1024 * 1024 + 1, 4);
    operator
        .write(&format!("{prefix}/from elsewhere/a file.bin"), data.clone())
        .await
        .unwrap();
    // No marker for its directory: a prefix is a directory all the same.
    let storage = open(node, &prefix).await;
    let entry = storage.stat(&at("from elsewhere")).await.unwrap();
    assert_eq!(entry.kind, EntryKind::Directory);
    let (back, digest) = read_all(&storage, "from elsewhere/a file.bin").await;
    assert!(back == data);
    assert_eq!(
        digest,
        *blake3::hash(&data).as_bytes(),
        "computed from a second read"
    );
    // From an offset too.
    let download = storage
        .open_file(&at("from elsewhere/a file.bin"))
        .await
        .unwrap();
    let mut tail = Vec::new();
    download
        .reader(1_000_000)
        .await
        .unwrap()
        .read_to_end(&mut tail)
        .await
        .unwrap();
    assert!(tail == data[1_000_000..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_of_thousands_of_objects_is_listed_in_pages_and_batches() {
    let Some(node) = garage::single("long listings, on Garage").await else {
        return;
    };
    let prefix = garage::fresh_prefix("long");
    let operator = garage::operator(&node.endpoint);
    let count = 2_500;
    let puts = (0..count).map(|index| {
        let operator = operator.clone();
        let key = format!("{prefix}/many/{index:05}");
        async move { operator.write(&key, vec![1u8; 3]).await.map(drop) }
    });
    let mut puts = futures::StreamExt::buffer_unordered(futures::stream::iter(puts), 32);
    while let Some(put) = futures::StreamExt::next(&mut puts).await {
        put.unwrap();
    }
    let storage = open(node, &prefix).await;
    let mut listing = storage.list(&at("many")).await.unwrap();
    let (mut seen, mut batches) = (0, 0);
    while let Some(batch) = listing.next_batch().await.unwrap() {
        assert!(!batch.is_empty() && batch.len() <= 256);
        assert!(batch.iter().all(|entry| entry.size == 3));
        seen += batch.len();
        batches += 1;
    }
    assert_eq!(seen, count);
    assert!(batches >= count / 256, "{batches} batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_area_is_never_listed_nor_reached() {
    let Some(node) = garage::single("the private area, on Garage").await else {
        return;
    };
    let prefix = garage::fresh_prefix("private");
    let storage = open(node, &prefix).await;
    // A resumable upload left its state there, and the server its heartbeat.
    let data = pseudo_random_bytes(2 * PART, 5);
    let mut upload = storage
        .create_upload(&at("kept.bin"), Some(data.len() as u64 + 1), true)
        .await
        .unwrap();
    upload.write_all(&data).await.unwrap();
    drop(upload);
    let operator = garage::operator(&node.endpoint);
    let private = operator
        .list_with(&format!("{prefix}/.miniftp/"))
        .recursive(true)
        .await
        .unwrap();
    assert!(
        !private.is_empty(),
        "the private area holds the server's state"
    );
    let names: Vec<String> = storage
        .list_all(&VirtualPath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(names, Vec::<String>::new());
    assert_eq!(
        VirtualPath::root().resolve(".miniftp/servers").unwrap_err(),
        StorageError::Reserved
    );
    // A home's tree hides its own `.miniftp` as the root's does.
    let home = storage.subtree(&at("homes/alice")).await.unwrap();
    assert_eq!(home.list_all(&VirtualPath::root()).await.unwrap().len(), 0);
}
