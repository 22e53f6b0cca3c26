//! The filesystem half of the jail: links that lead outside, links swapped
//! in during a request, and the private directory, against a real tree.

use std::os::unix::fs::symlink;
use std::path::Path;

use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use super::{IN_PLACE_DEPTH, UPLOAD_SLICE};
use crate::storage::*;

/// A shared root beside a directory holding a secret.
struct Tree {
    root: TempDir,
    outside: TempDir,
    storage: Storage,
}

impl Tree {
    fn new() -> Tree {
        let root = TempDir::new().unwrap();
        let outside = TempDir::new().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let storage = Storage::open(root.path()).unwrap();
        Tree {
            root,
            outside,
            storage,
        }
    }

    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.root.path().join(relative)
    }

    fn link(&self, target: impl AsRef<Path>, link: &str) {
        symlink(target, self.path(link)).unwrap();
    }

    fn outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.outside.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"]);
        assert_eq!(
            std::fs::read(self.outside.path().join("secret")).unwrap(),
            b"secret"
        );
    }
}

fn at(path: &str) -> VirtualPath {
    VirtualPath::root().resolve(path).unwrap()
}

#[tokio::test]
async fn links_to_the_outside_are_refused_and_not_listed() {
    let tree = Tree::new();
    tree.link(tree.outside.path(), "out_dir");
    tree.link(tree.outside.path().join("secret"), "out_file");
    tree.link("../../../../../../..", "up_and_away");
    std::fs::write(tree.path("inside"), b"x").unwrap();
    tree.link("inside", "in_link");
    let storage = &tree.storage;
    let names: Vec<_> = storage
        .list_all(&VirtualPath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.name, entry.kind))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&("inside".into(), EntryKind::File)));
    assert!(names.contains(&("in_link".into(), EntryKind::File)));
    for path in ["out_dir", "out_file", "out_dir/secret", "up_and_away"] {
        assert!(
            matches!(
                storage.stat(&at(path)).await,
                Err(StorageError::OutsideRoot)
            ),
            "stat {path}"
        );
    }
    assert!(matches!(
        storage.open_file(&at("out_file")).await,
        Err(StorageError::OutsideRoot)
    ));
    assert!(matches!(
        storage.open_file(&at("out_dir/secret")).await,
        Err(StorageError::OutsideRoot)
    ));
    assert!(
        storage
            .create_upload(&at("out_dir/new"), None, false)
            .await
            .is_err()
    );
    assert!(
        storage
            .make_directory(&at("out_dir/new"), false)
            .await
            .is_err()
    );
    assert!(
        storage
            .remove(&at("out_dir/secret"), Removal::Entry)
            .await
            .is_err()
    );
    assert!(
        storage
            .rename(&at("out_dir/secret"), &at("stolen"), false)
            .await
            .is_err()
    );
    assert!(
        storage
            .rename(&at("inside"), &at("out_dir"), false)
            .await
            .is_err()
    );
    assert!(tree.path("inside").exists());
    tree.outside_untouched();
}

#[tokio::test]
async fn a_link_swapped_in_during_an_upload_is_not_followed() {
    let tree = Tree::new();
    std::fs::create_dir(tree.path("dir")).unwrap();
    let mut upload = tree
        .storage
        .create_upload(&at("dir/file"), None, false)
        .await
        .unwrap();
    upload.write_all(b"payload").await.unwrap();
    // Between the check and the commit, `dir` becomes a link to the outside.
    std::fs::rename(tree.path("dir"), tree.path("moved")).unwrap();
    tree.link(tree.outside.path(), "dir");
    assert!(matches!(
        tree.storage.commit(upload).await,
        Err(StorageError::OutsideRoot)
    ));
    tree.outside_untouched();
    let uploads = std::fs::read_dir(tree.path(".miniftp/uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0, "a failed commit leaves no temporary file");
}

#[tokio::test]
async fn a_link_swapped_in_before_a_download_is_not_followed() {
    let tree = Tree::new();
    std::fs::create_dir(tree.path("dir")).unwrap();
    std::fs::write(tree.path("dir/secret"), b"public").unwrap();
    let download = tree.storage.open_file(&at("dir/secret")).await.unwrap();
    assert_eq!(download.size, 6);
    std::fs::rename(tree.path("dir"), tree.path("moved")).unwrap();
    tree.link(tree.outside.path(), "dir");
    assert!(matches!(
        tree.storage.open_file(&at("dir/secret")).await,
        Err(StorageError::OutsideRoot)
    ));
}

#[tokio::test]
async fn links_into_the_private_directory_are_refused() {
    let tree = Tree::new();
    tree.link(".miniftp", "priv");
    tree.link("priv/uploads", "chained");
    tree.link(".", "here");
    let storage = &tree.storage;
    let listed: Vec<_> = storage
        .list_all(&VirtualPath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(listed, ["here"]);
    for path in ["priv", "chained", "here/.miniftp", "here/here/priv/uploads"] {
        assert!(
            matches!(storage.stat(&at(path)).await, Err(StorageError::Reserved)),
            "stat {path}"
        );
        let child = at(path).child("x");
        assert!(matches!(
            storage.create_upload(&child, None, false).await,
            Err(StorageError::Reserved)
        ));
        assert!(matches!(
            storage.make_directory(&child, false).await,
            Err(StorageError::Reserved)
        ));
    }
    // The link itself can go: that does not reach what it names.
    storage.remove(&at("priv"), Removal::Entry).await.unwrap();
    assert!(tree.path(".miniftp/uploads").is_dir());
}

#[tokio::test]
async fn leftover_uploads_are_removed_at_open() {
    let tree = Tree::new();
    std::fs::write(tree.path(".miniftp/uploads/crashed.part"), b"half").unwrap();
    let _reopened = Storage::open(tree.root.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(tree.path(".miniftp/uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn deep_paths_are_described_off_the_worker_with_their_links_checked() {
    let tree = Tree::new();
    let depth = IN_PLACE_DEPTH + 8;
    let deep = vec!["d"; depth].join("/");
    std::fs::create_dir_all(tree.path(&deep)).unwrap();
    std::fs::write(tree.path(&format!("{deep}/file")), b"12345").unwrap();
    tree.link(tree.outside.path(), &format!("{deep}/out"));
    let entry = tree
        .storage
        .stat(&at(&format!("/{deep}/file")))
        .await
        .unwrap();
    assert_eq!((entry.kind, entry.size), (EntryKind::File, 5));
    let entry = tree.storage.stat(&at(&format!("/{deep}"))).await.unwrap();
    assert_eq!(entry.kind, EntryKind::Directory);
    assert!(matches!(
        tree.storage.stat(&at(&format!("/{deep}/out/secret"))).await,
        Err(StorageError::OutsideRoot)
    ));
    tree.outside_untouched();
}

fn records(tree: &Tree) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tree.path(".miniftp/digests"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}

#[tokio::test]
async fn a_large_files_digest_is_kept_and_trusted_only_while_the_file_is_unchanged() {
    let tree = Tree::new();
    let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    let mut upload = tree
        .storage
        .create_upload(&at("big.bin"), Some(data.len() as u64), false)
        .await
        .unwrap();
    upload.write_all(&data).await.unwrap();
    tree.storage.commit(upload).await.unwrap();
    let kept = records(&tree);
    assert_eq!(kept.len(), 1, "the upload's digest is kept");

    // The kept digest is what a download sends, without reading the file:
    // a record forged for the test shows it is trusted as it is.
    let mut record = std::fs::read(&kept[0]).unwrap();
    let forged = [7u8; 32];
    record[4 + 48..4 + 48 + 32].copy_from_slice(&forged);
    std::fs::write(&kept[0], &record).unwrap();
    let download = tree.storage.open_file(&at("big.bin")).await.unwrap();
    assert_eq!(download.digest().await.unwrap(), forged);

    // Changed in place with the same size and its mtime set back (as rsync -t
    // may): the change time moved, the record no longer counts.
    let mtime = std::fs::metadata(tree.path("big.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let mut changed = data.clone();
    changed[0] ^= 1;
    std::fs::write(tree.path("big.bin"), &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(tree.path("big.bin"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let download = tree.storage.open_file(&at("big.bin")).await.unwrap();
    assert_eq!(
        download.digest().await.unwrap(),
        *blake3::hash(&changed).as_bytes()
    );
    // ...and the one computed then is kept for the next download.
    let download = tree.storage.open_file(&at("big.bin")).await.unwrap();
    assert_eq!(
        download.digest().await.unwrap(),
        *blake3::hash(&changed).as_bytes()
    );
    assert_eq!(records(&tree).len(), 1);

    // A restart keeps the records of files that did not change.
    let _reopened = Storage::open(tree.root.path()).unwrap();
    assert_eq!(records(&tree).len(), 1, "kept across a restart");

    // A small file gets no record; a removed one loses its record at the
    // next start.
    let small = written(&tree, "small", b"abc", false).await;
    tree.storage.commit(small).await.unwrap();
    assert_eq!(records(&tree).len(), 1);
    std::fs::remove_file(tree.path("big.bin")).unwrap();
    let _reopened = Storage::open(tree.root.path()).unwrap();
    assert_eq!(records(&tree).len(), 0);
}

/// An upload of `bytes` to `path`, written and not yet committed.
async fn written(tree: &Tree, path: &str, bytes: &[u8], resume: bool) -> Upload {
    let mut upload = tree
        .storage
        .create_upload(&at(path), Some(bytes.len() as u64), resume)
        .await
        .unwrap();
    upload.write_all(bytes).await.unwrap();
    upload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_writes_are_gathered_into_slices_and_kept_in_order_with_chunks() {
    let tree = Tree::new();
    let pieces: Vec<u8> = (0..2 * UPLOAD_SLICE + 5000)
        .map(|i| (i % 251) as u8)
        .collect();
    let chunk = vec![7u8; 3000];
    let tail = [9u8; 100];
    let total = pieces.len() + chunk.len() + tail.len();
    let mut upload = tree
        .storage
        .create_upload(&at("file"), Some(total as u64), false)
        .await
        .unwrap();
    // A few KiB at a time, as a connection reads them.
    for piece in pieces.chunks(4096) {
        upload.write_all(piece).await.unwrap();
    }
    assert_eq!(
        upload.len(),
        pieces.len() as u64,
        "gathered bytes are taken"
    );
    let private = private_entries(&tree, "uploads");
    let on_disk = || std::fs::metadata(&private[0]).unwrap().len();
    // Whole slices at most: the last 5,000 bytes wait for a full slice or
    // a flush (one write each 4 KiB would have them all written or under
    // way by now).
    assert!(
        on_disk() <= 2 * UPLOAD_SLICE as u64,
        "{} on disk",
        on_disk()
    );
    upload.flush().await.unwrap();
    assert_eq!(on_disk(), pieces.len() as u64);
    // A chunk handed over whole goes after what was gathered before it.
    upload.write_all(&tail[..50]).await.unwrap();
    upload.write_chunk(chunk.clone().into()).await.unwrap();
    upload.write_all(&tail[50..]).await.unwrap();
    let digest = upload.seal().await.unwrap();
    tree.storage.commit(upload).await.unwrap();
    let expected = [&pieces[..], &tail[..50], &chunk, &tail[50..]].concat();
    assert_eq!(std::fs::read(tree.path("file")).unwrap(), expected);
    assert_eq!(digest, *blake3::hash(&expected).as_bytes());
}

/// The names in the private area's `dir` (`uploads`, `partial`).
fn private_entries(tree: &Tree, dir: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tree.path(&format!(".miniftp/{dir}")))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}

/// Waits until the file an upload replaced is removed (off the commit's
/// path, on the blocking pool): the private area then holds no upload.
async fn until_replaced_files_are_removed(tree: &Tree) {
    while !private_entries(tree, "uploads").is_empty() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_a_file_replaces_it_whole_and_the_old_one_goes() {
    let tree = Tree::new();
    for resume in [false, true] {
        std::fs::write(tree.path("file"), b"the old bytes").unwrap();
        // Another name for the old file keeps it, as after a rename.
        let _ = std::fs::remove_file(tree.path("old-link"));
        std::fs::hard_link(tree.path("file"), tree.path("old-link")).unwrap();
        let upload = written(&tree, "file", b"new bytes", resume).await;
        tree.storage.commit(upload).await.unwrap();
        assert_eq!(std::fs::read(tree.path("file")).unwrap(), b"new bytes");
        assert_eq!(
            std::fs::read(tree.path("old-link")).unwrap(),
            b"the old bytes"
        );
        until_replaced_files_are_removed(&tree).await;
        assert!(
            private_entries(&tree, "partial").is_empty(),
            "resume {resume}: nothing is left to resume"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_a_directory_or_a_link_is_a_rename_as_ever() {
    let tree = Tree::new();
    // A directory made where the file was, after the upload began, is
    // refused at the commit, and left as it is.
    std::fs::write(tree.path("dir"), b"a file").unwrap();
    let upload = written(&tree, "dir", b"new", false).await;
    std::fs::remove_file(tree.path("dir")).unwrap();
    std::fs::create_dir(tree.path("dir")).unwrap();
    std::fs::write(tree.path("dir/kept"), b"kept").unwrap();
    assert!(tree.storage.commit(upload).await.is_err());
    assert_eq!(std::fs::read(tree.path("dir/kept")).unwrap(), b"kept");
    // A link is replaced, not followed: what it named is untouched.
    std::fs::write(tree.path("named"), b"named").unwrap();
    tree.link("named", "link");
    let upload = written(&tree, "link", b"new", false).await;
    tree.storage.commit(upload).await.unwrap();
    assert!(tree.path("link").symlink_metadata().unwrap().is_file());
    assert_eq!(std::fs::read(tree.path("link")).unwrap(), b"new");
    assert_eq!(std::fs::read(tree.path("named")).unwrap(), b"named");
    assert!(private_entries(&tree, "uploads").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_in_for_a_replaced_file_is_never_taken() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tree = Tree::new();
    std::fs::write(tree.path("target"), b"a file").unwrap();
    std::fs::create_dir(tree.path("other")).unwrap();
    std::fs::write(tree.path("other/marker"), b"marker").unwrap();
    // The names `target` and `other` swap their file and directory, over
    // and over, while uploads to `target` commit.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = std::thread::spawn({
        let (root, stop) = (tree.root.path().to_owned(), Arc::clone(&stop));
        move || {
            let root = std::fs::File::open(&root).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let _ = rustix::fs::renameat_with(
                    &root,
                    "target",
                    &root,
                    "other",
                    rustix::fs::RenameFlags::EXCHANGE,
                );
            }
        }
    });
    for _ in 0..300 {
        let Ok(mut upload) = tree
            .storage
            .create_upload(&at("target"), Some(3), false)
            .await
        else {
            continue;
        };
        upload.write_all(b"new").await.unwrap();
        let _ = tree.storage.commit(upload).await;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    // The directory is under one of its two names, whole.
    let marker = ["target", "other"]
        .iter()
        .filter(|name| tree.path(name).is_dir())
        .map(|name| std::fs::read(tree.path(&format!("{name}/marker"))).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(marker, [b"marker".to_vec()]);
    until_replaced_files_are_removed(&tree).await;
}
