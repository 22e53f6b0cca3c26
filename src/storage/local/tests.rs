//! The filesystem half of the jail: links that lead outside, links swapped
//! in during a request, and the private directory, against a real tree.

use std::os::unix::fs::symlink;
use std::path::Path;

use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use super::IN_PLACE_DEPTH;
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
