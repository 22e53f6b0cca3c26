//! The storage contract: what every backend keeps, whatever holds the tree.
//! Each check is a function of a fresh, empty [`Storage`]; the macro
//! `storage_contract!` runs them all as tests for one backend, so a new
//! backend adds one line (its fixture) and passes the same suite:
//! every operation, every error, atomic uploads, resume, group commits, a
//! removed directory, names at the limits, read-only access and homes.

use std::any::Any;

use miniftp::storage::path::Names;
use miniftp::storage::{EntryKind, Removal, Storage, StorageError, VirtualPath};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fresh, empty storage, and whatever must live as long as it (a
/// temporary directory, a bucket's cleanup).
pub struct Fixture {
    pub storage: Storage,
    pub _keep: Box<dyn Any + Send>,
}

/// Runs the whole contract as tests for one backend: `$make` is an async
/// function giving a [`Fixture`].
///
/// `storage_contract!(optional $make)` is the same for a fixture that gives
/// an `Option<Fixture>`: `None` (a store that cannot be had here, said
/// loudly by the fixture) skips the test.
#[macro_export]
macro_rules! storage_contract {
    (optional $make:path: $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(fixture) = $make().await else { return };
                $crate::storage_contract::$check(&fixture.storage).await;
            }
        )*
    };
    (optional $make:path) => {
        $crate::storage_contract!(@every [optional] $make);
    };
    ($make:path: $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let fixture = $make().await;
                $crate::storage_contract::$check(&fixture.storage).await;
            }
        )*
    };
    ($make:path) => {
        $crate::storage_contract!(@every [] $make);
    };
    (@every [$($optional:ident)?] $make:path) => {
        $crate::storage_contract!($($optional)? $make:
            an_empty_tree_has_a_root_and_nothing_else,
            an_upload_appears_whole_only_when_committed,
            an_upload_replaces_a_file,
            uploads_are_refused_where_commits_would_be,
            a_group_of_uploads_commits_together,
            an_interrupted_upload_resumes_with_its_digest,
            a_discarded_upload_keeps_nothing_for_a_resume,
            downloads_read_from_any_offset_with_the_whole_files_digest,
            directories_are_made_once_or_with_their_parents,
            listings_come_in_batches_and_hold_every_entry_once,
            removals_take_files_empty_directories_or_whole_trees,
            renames_move_into_directories_and_never_replace,
            a_removed_directory_is_gone_for_every_operation,
            names_at_the_limits,
            a_read_only_storage_refuses_every_change,
            a_home_is_a_tree_of_its_own,
            dead_properties_move_and_go_with_their_entry,
        );
    };
}

fn at(path: &str) -> VirtualPath {
    VirtualPath::root().resolve(path).unwrap()
}

/// Stores `data` at `path` through the interface, making its parents.
pub async fn put(storage: &Storage, path: &str, data: &[u8]) {
    let parent = at(path).parent();
    if !parent.is_root() {
        storage.make_directory(&parent, true).await.unwrap();
    }
    let mut upload = storage
        .create_upload(&at(path), Some(data.len() as u64), false)
        .await
        .unwrap_or_else(|error| panic!("upload {path}: {error}"));
    upload.write_all(data).await.unwrap();
    storage.commit(upload).await.unwrap();
}

/// The bytes stored at `path`, through the interface.
pub async fn get(storage: &Storage, path: &str) -> Result<Vec<u8>, StorageError> {
    let download = storage.open_file(&at(path)).await?;
    let mut reader = download.reader(0).await?;
    let mut data = Vec::new();
    reader.read_to_end(&mut data).await.unwrap();
    assert_eq!(data.len() as u64, download.size, "{path}: as long as said");
    Ok(data)
}

/// A directory's names, sorted, with `/` after directories.
pub async fn names(storage: &Storage, path: &str) -> Result<Vec<String>, StorageError> {
    let mut names: Vec<String> = storage
        .list_all(&at(path))
        .await?
        .into_iter()
        .map(|entry| match entry.kind {
            EntryKind::Directory => format!("{}/", entry.name),
            EntryKind::File => entry.name,
        })
        .collect();
    names.sort();
    Ok(names)
}

fn error<T: std::fmt::Debug>(result: Result<T, StorageError>) -> StorageError {
    result.expect_err("expected a failure")
}

pub async fn an_empty_tree_has_a_root_and_nothing_else(storage: &Storage) {
    let root = storage.stat(&VirtualPath::root()).await.unwrap();
    assert_eq!(root.kind, EntryKind::Directory);
    assert_eq!(names(storage, "/").await.unwrap(), Vec::<String>::new());
    assert_eq!(
        error(storage.stat(&at("nothing")).await),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.list(&at("nothing")).await.map(drop)),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.open_file(&at("nothing")).await.map(drop)),
        StorageError::NotFound
    );
    // The server's private area is nobody's: not listed, and no path
    // reaches it.
    let private = VirtualPath::root().resolve(".miniftp/x");
    assert_eq!(private.unwrap_err(), StorageError::Reserved);
}

pub async fn an_upload_appears_whole_only_when_committed(storage: &Storage) {
    let data = b"the whole of it".repeat(1000);
    let mut upload = storage
        .create_upload(&at("file.bin"), Some(data.len() as u64), false)
        .await
        .unwrap();
    assert_eq!((upload.held(), upload.len()), (0, 0));
    upload.write_all(&data[..5000]).await.unwrap();
    assert_eq!(
        error(storage.stat(&at("file.bin")).await),
        StorageError::NotFound
    );
    assert_eq!(names(storage, "/").await.unwrap(), Vec::<String>::new());
    upload.write_all(&data[5000..]).await.unwrap();
    assert_eq!(upload.len(), data.len() as u64);
    assert_eq!(
        upload.seal().await.unwrap(),
        *blake3::hash(&data).as_bytes()
    );
    // Dropped without a commit: nothing.
    drop(upload);
    assert_eq!(
        error(storage.stat(&at("file.bin")).await),
        StorageError::NotFound
    );
    put(storage, "file.bin", &data).await;
    let entry = storage.stat(&at("file.bin")).await.unwrap();
    assert_eq!(
        (entry.kind, entry.size, entry.name.as_str()),
        (EntryKind::File, data.len() as u64, "file.bin")
    );
    assert!(entry.modified.is_some());
    assert_eq!(get(storage, "file.bin").await.unwrap(), data);
    assert_eq!(names(storage, "/").await.unwrap(), ["file.bin"]);
}

pub async fn an_upload_replaces_a_file(storage: &Storage) {
    put(storage, "a.txt", b"old").await;
    put(storage, "a.txt", b"new, and longer").await;
    assert_eq!(get(storage, "a.txt").await.unwrap(), b"new, and longer");
    put(storage, "a.txt", b"").await;
    assert_eq!(get(storage, "a.txt").await.unwrap(), b"");
}

pub async fn uploads_are_refused_where_commits_would_be(storage: &Storage) {
    put(storage, "file", b"x").await;
    storage.make_directory(&at("dir"), false).await.unwrap();
    for (path, expected) in [
        ("dir", StorageError::IsADirectory),
        ("/", StorageError::IsADirectory),
        ("missing/x", StorageError::NotFound),
        ("file/x", StorageError::NotADirectory),
    ] {
        let upload = storage.create_upload(&at(path), Some(1), false).await;
        let got = error(upload.map(drop));
        assert!(
            got == expected
                || (expected == StorageError::NotFound && got == StorageError::NotADirectory),
            "upload {path}: {got:?}, expected {expected:?}"
        );
    }
}

pub async fn a_group_of_uploads_commits_together(storage: &Storage) {
    storage.make_directory(&at("group"), false).await.unwrap();
    let mut uploads = Vec::new();
    for index in 0..20u8 {
        let mut upload = storage
            .create_upload(&at(&format!("group/{index}")), Some(1), false)
            .await
            .unwrap();
        upload.write_all(&[index]).await.unwrap();
        uploads.push(upload);
    }
    assert_eq!(names(storage, "group").await.unwrap(), Vec::<String>::new());
    let results = storage.commit_group(uploads).await;
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for index in 0..20u8 {
        assert_eq!(
            get(storage, &format!("group/{index}")).await.unwrap(),
            [index]
        );
    }
}

pub async fn an_interrupted_upload_resumes_with_its_digest(storage: &Storage) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let size = Some(data.len() as u64);
    let mut first = storage
        .create_upload(&at("big.bin"), size, true)
        .await
        .unwrap();
    assert_eq!(first.held(), 0);
    first.write_all(&data[..120_000]).await.unwrap();
    first.flush().await.unwrap();
    // The connection is lost: the upload is dropped, not committed.
    drop(first);
    assert_eq!(
        error(storage.stat(&at("big.bin")).await),
        StorageError::NotFound
    );
    let mut again = storage
        .create_upload(&at("big.bin"), size, true)
        .await
        .unwrap();
    let held = again.held();
    assert!(held <= 120_000, "held {held}");
    assert_eq!(again.len(), held);
    again.write_all(&data[held as usize..]).await.unwrap();
    assert_eq!(
        again.seal().await.unwrap(),
        *blake3::hash(&data).as_bytes(),
        "the digest covers what was held"
    );
    storage.commit(again).await.unwrap();
    assert_eq!(get(storage, "big.bin").await.unwrap(), data);
    // Another size is another upload: nothing held for it.
    let other = storage
        .create_upload(&at("big.bin"), Some(5), true)
        .await
        .unwrap();
    assert_eq!(other.held(), 0);
}

pub async fn a_discarded_upload_keeps_nothing_for_a_resume(storage: &Storage) {
    let size = Some(10);
    let mut upload = storage.create_upload(&at("x"), size, true).await.unwrap();
    upload.write_all(b"wrong").await.unwrap();
    upload.flush().await.unwrap();
    upload.discard();
    let again = storage.create_upload(&at("x"), size, true).await.unwrap();
    assert_eq!(again.held(), 0);
    assert_eq!(error(storage.stat(&at("x")).await), StorageError::NotFound);
}

pub async fn downloads_read_from_any_offset_with_the_whole_files_digest(storage: &Storage) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 253) as u8).collect();
    put(storage, "d.bin", &data).await;
    let download = storage.open_file(&at("d.bin")).await.unwrap();
    assert_eq!(download.size, data.len() as u64);
    for offset in [0usize, 1, 65_536, 99_999, 100_000] {
        let mut reader = download.reader(offset as u64).await.unwrap();
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).await.unwrap();
        assert_eq!(tail, &data[offset..], "from {offset}");
    }
    assert_eq!(
        download.digest().await.unwrap(),
        *blake3::hash(&data).as_bytes()
    );
    storage.make_directory(&at("dir"), false).await.unwrap();
    assert_eq!(
        error(storage.open_file(&at("dir")).await.map(drop)),
        StorageError::IsADirectory
    );
}

pub async fn directories_are_made_once_or_with_their_parents(storage: &Storage) {
    storage.make_directory(&at("a"), false).await.unwrap();
    assert_eq!(
        error(storage.make_directory(&at("a"), false).await),
        StorageError::AlreadyExists
    );
    assert_eq!(
        error(storage.make_directory(&at("x/y"), false).await),
        StorageError::NotFound
    );
    storage.make_directory(&at("x/y/z"), true).await.unwrap();
    storage.make_directory(&at("x/y/z"), true).await.unwrap();
    assert_eq!(
        storage.stat(&at("x/y")).await.unwrap().kind,
        EntryKind::Directory
    );
    put(storage, "f", b"").await;
    assert_eq!(
        error(storage.make_directory(&at("f"), false).await),
        StorageError::AlreadyExists
    );
    assert_eq!(
        error(storage.make_directory(&at("f/g"), true).await),
        StorageError::NotADirectory
    );
    assert_eq!(
        error(storage.make_directory(&at("/"), false).await),
        StorageError::AlreadyExists
    );
    // An empty directory is listed, and lists as empty.
    assert_eq!(names(storage, "/").await.unwrap(), ["a/", "f", "x/"]);
    assert_eq!(names(storage, "a").await.unwrap(), Vec::<String>::new());
    assert_eq!(
        error(names(storage, "f").await),
        StorageError::NotADirectory
    );
}

pub async fn listings_come_in_batches_and_hold_every_entry_once(storage: &Storage) {
    storage.make_directory(&at("many"), false).await.unwrap();
    let count = 1_000;
    let mut uploads = Vec::new();
    for index in 0..count {
        let mut upload = storage
            .create_upload(&at(&format!("many/file {index:04}.txt")), Some(3), false)
            .await
            .unwrap();
        upload.write_all(b"abc").await.unwrap();
        uploads.push(upload);
    }
    assert!(
        storage
            .commit_group(uploads)
            .await
            .iter()
            .all(Result::is_ok)
    );
    storage
        .make_directory(&at("many/sub"), false)
        .await
        .unwrap();
    let mut listing = storage.list(&at("many")).await.unwrap();
    let mut seen = Vec::new();
    let mut batches = 0;
    while let Some(batch) = listing.next_batch().await.unwrap() {
        assert!(!batch.is_empty() && batch.len() <= 1_000);
        batches += 1;
        seen.extend(batch);
    }
    assert!(
        batches > 1,
        "a thousand entries come in more than one batch"
    );
    assert_eq!(seen.len(), count + 1);
    seen.sort_by(|a, b| a.name.cmp(&b.name));
    seen.dedup_by(|a, b| a.name == b.name);
    assert_eq!(seen.len(), count + 1, "each entry once");
    assert!(
        seen.iter()
            .any(|entry| entry.name == "sub" && entry.kind == EntryKind::Directory)
    );
    assert!(
        seen.iter()
            .filter(|entry| entry.kind == EntryKind::File)
            .all(|entry| entry.size == 3)
    );
}

pub async fn removals_take_files_empty_directories_or_whole_trees(storage: &Storage) {
    put(storage, "f", b"x").await;
    put(storage, "full/inner/deep.txt", b"deep").await;
    storage.make_directory(&at("empty"), false).await.unwrap();
    storage.remove(&at("f"), Removal::Entry).await.unwrap();
    storage.remove(&at("empty"), Removal::Entry).await.unwrap();
    assert_eq!(
        error(storage.remove(&at("full"), Removal::Entry).await),
        StorageError::NotEmpty
    );
    assert_eq!(
        error(storage.remove(&at("nothing"), Removal::Entry).await),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.remove(&at("/"), Removal::Tree).await),
        StorageError::RemoveRoot
    );
    storage.remove(&at("full"), Removal::Tree).await.unwrap();
    assert_eq!(names(storage, "/").await.unwrap(), Vec::<String>::new());
}

pub async fn renames_move_into_directories_and_never_replace(storage: &Storage) {
    put(storage, "a.txt", b"a").await;
    put(storage, "b.txt", b"b").await;
    put(storage, "dir/inner.txt", b"inner").await;
    let moved = storage
        .rename(&at("a.txt"), &at("c.txt"), false)
        .await
        .unwrap();
    assert_eq!(moved.to_string(), "/c.txt");
    let moved = storage
        .rename(&at("c.txt"), &at("dir"), false)
        .await
        .unwrap();
    assert_eq!(moved.to_string(), "/dir/c.txt");
    assert_eq!(get(storage, "dir/c.txt").await.unwrap(), b"a");
    assert_eq!(
        error(
            storage
                .rename(&at("b.txt"), &at("dir/inner.txt"), false)
                .await
        ),
        StorageError::AlreadyExists
    );
    assert_eq!(
        error(storage.rename(&at("b.txt"), &at("nowhere"), true).await),
        StorageError::NotADirectory
    );
    assert_eq!(
        error(storage.rename(&at("dir"), &at("dir/sub"), false).await),
        StorageError::IntoItself
    );
    assert_eq!(
        error(storage.rename(&at("nothing"), &at("x"), false).await),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.rename(&at("/"), &at("x"), false).await),
        StorageError::PermissionDenied
    );
    // A directory moves with everything in it.
    storage
        .rename(&at("dir"), &at("moved"), false)
        .await
        .unwrap();
    assert_eq!(
        names(storage, "moved").await.unwrap(),
        ["c.txt", "inner.txt"]
    );
    assert_eq!(
        error(storage.stat(&at("dir")).await),
        StorageError::NotFound
    );
    assert_eq!(get(storage, "b.txt").await.unwrap(), b"b");
}

pub async fn a_removed_directory_is_gone_for_every_operation(storage: &Storage) {
    put(storage, "gone/file.txt", b"x").await;
    storage.remove(&at("gone"), Removal::Tree).await.unwrap();
    assert_eq!(
        error(storage.stat(&at("gone")).await),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.list(&at("gone")).await.map(drop)),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.open_file(&at("gone/file.txt")).await.map(drop)),
        StorageError::NotFound
    );
    let upload = storage.create_upload(&at("gone/new"), Some(1), false).await;
    assert_eq!(error(upload.map(drop)), StorageError::NotFound);
    assert_eq!(
        error(storage.make_directory(&at("gone/x"), false).await),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.rename(&at("gone/file.txt"), &at("x"), false).await),
        StorageError::NotFound
    );
}

pub async fn names_at_the_limits(storage: &Storage) {
    let longest = "n".repeat(255);
    put(storage, &longest, b"255").await;
    assert_eq!(get(storage, &longest).await.unwrap(), b"255");
    for name in [
        "with space.txt",
        "ünïcödé.txt",
        "emoji 🎉.txt",
        "'quotes\" and \\",
        "-dash",
        "..dots..",
    ] {
        put(storage, &format!("odd/{name}"), name.as_bytes()).await;
        assert_eq!(
            get(storage, &format!("odd/{name}")).await.unwrap(),
            name.as_bytes(),
            "{name}"
        );
    }
    assert_eq!(names(storage, "odd").await.unwrap().len(), 6);
    // Any name the filesystem allows, control characters included (what
    // the extended protocol carries).
    let odd = VirtualPath::root()
        .resolve_names("odd/new\nline\u{1b}[31m", Names::Any)
        .unwrap();
    let mut upload = storage.create_upload(&odd, Some(3), false).await.unwrap();
    upload.write_all(b"odd").await.unwrap();
    storage.commit(upload).await.unwrap();
    assert_eq!(storage.stat(&odd).await.unwrap().size, 3);
    assert!(
        names(storage, "odd")
            .await
            .unwrap()
            .contains(&"new\nline\u{1b}[31m".to_owned())
    );
    storage.remove(&odd, Removal::Entry).await.unwrap();
    let too_long = "n".repeat(256);
    assert_eq!(
        VirtualPath::root().resolve(&too_long).unwrap_err(),
        StorageError::NameTooLong
    );
    let deep = vec!["d"; 40].join("/");
    storage.make_directory(&at(&deep), true).await.unwrap();
    put(storage, &format!("{deep}/leaf"), b"deep").await;
    assert_eq!(
        get(storage, &format!("{deep}/leaf")).await.unwrap(),
        b"deep"
    );
}

pub async fn a_read_only_storage_refuses_every_change(storage: &Storage) {
    put(storage, "kept.txt", b"kept").await;
    storage.make_directory(&at("dir"), false).await.unwrap();
    let read_only = storage.read_only();
    assert!(read_only.is_read_only());
    let refused = [
        read_only
            .create_upload(&at("new"), Some(1), false)
            .await
            .map(drop),
        read_only.make_directory(&at("new"), false).await,
        read_only.remove(&at("kept.txt"), Removal::Entry).await,
        read_only.remove(&at("dir"), Removal::Tree).await,
        read_only
            .rename(&at("kept.txt"), &at("moved"), false)
            .await
            .map(drop),
    ];
    for result in refused {
        assert_eq!(result.unwrap_err(), StorageError::ReadOnly);
    }
    assert_eq!(get(&read_only, "kept.txt").await.unwrap(), b"kept");
    assert_eq!(names(&read_only, "/").await.unwrap(), ["dir/", "kept.txt"]);
}

pub async fn a_home_is_a_tree_of_its_own(storage: &Storage) {
    put(storage, "top.txt", b"top").await;
    put(storage, "homes/alice/a.txt", b"a").await;
    let home = storage.subtree(&at("homes/alice")).await.unwrap();
    assert_eq!(names(&home, "/").await.unwrap(), ["a.txt"]);
    // `..` stops at the home's root, as at any root.
    let above = VirtualPath::root().resolve("../../top.txt").unwrap();
    assert_eq!(error(home.stat(&above).await), StorageError::NotFound);
    put(&home, "b.txt", b"b").await;
    assert_eq!(get(storage, "homes/alice/b.txt").await.unwrap(), b"b");
    // A missing home is made, unless read-only.
    let fresh = storage.subtree(&at("homes/bob")).await.unwrap();
    assert_eq!(names(&fresh, "/").await.unwrap(), Vec::<String>::new());
    assert!(
        storage
            .read_only()
            .subtree(&at("homes/carol"))
            .await
            .is_err()
    );
    assert!(
        storage
            .read_only()
            .subtree(&at("homes/alice"))
            .await
            .unwrap()
            .is_read_only()
    );
}

/// The local disk: a temporary directory.
/// Dead properties (WebDAV's) are kept per entry, replaced whole, moved by
/// a rename (a directory's descendants' too), removed with their entry,
/// and refused on what does not exist or on read-only access.
pub async fn dead_properties_move_and_go_with_their_entry(storage: &Storage) {
    put(storage, "d/e/f.txt", b"f").await;
    put(storage, "g.txt", b"g").await;
    assert_eq!(storage.properties(&at("g.txt")).await.unwrap(), None);
    storage
        .set_properties(&at("g.txt"), Some(b"one".to_vec()))
        .await
        .unwrap();
    storage
        .set_properties(&at("g.txt"), Some(b"two".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        storage.properties(&at("g.txt")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    for path in ["d", "d/e/f.txt"] {
        storage
            .set_properties(&at(path), Some(path.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    storage.rename(&at("d"), &at("moved"), false).await.unwrap();
    assert_eq!(
        storage
            .properties(&at("moved/e/f.txt"))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"d/e/f.txt"[..])
    );
    assert_eq!(
        storage.properties(&at("moved")).await.unwrap().as_deref(),
        Some(&b"d"[..])
    );
    // A new entry where a moved one was has none of its properties.
    put(storage, "d/e/f.txt", b"new").await;
    assert_eq!(storage.properties(&at("d/e/f.txt")).await.unwrap(), None);
    assert_eq!(storage.properties(&at("d")).await.unwrap(), None);
    storage.remove(&at("moved"), Removal::Tree).await.unwrap();
    put(storage, "moved/e/f.txt", b"again").await;
    assert_eq!(
        storage.properties(&at("moved/e/f.txt")).await.unwrap(),
        None
    );
    storage.set_properties(&at("g.txt"), None).await.unwrap();
    assert_eq!(storage.properties(&at("g.txt")).await.unwrap(), None);
    assert_eq!(
        error(storage.properties(&at("nowhere")).await),
        StorageError::NotFound
    );
    assert_eq!(
        error(storage.set_properties(&at("nowhere"), Some(vec![])).await),
        StorageError::NotFound
    );
    assert_eq!(
        error(
            storage
                .read_only()
                .set_properties(&at("g.txt"), Some(vec![]))
                .await
        ),
        StorageError::ReadOnly
    );
}

pub async fn local_disk() -> Fixture {
    let root = tempfile::TempDir::new().unwrap();
    Fixture {
        storage: Storage::open(root.path()).unwrap(),
        _keep: Box::new(root),
    }
}

mod local {
    crate::storage_contract!(super::local_disk);
}

/// The local disk without flushes (`serve --no-fsync`): the same contract.
pub async fn local_disk_without_flushes() -> Fixture {
    let root = tempfile::TempDir::new().unwrap();
    let disk = miniftp::storage::LocalDisk::open(root.path())
        .unwrap()
        .without_flushes();
    Fixture {
        storage: Storage::new(std::sync::Arc::new(disk)),
        _keep: Box::new(root),
    }
}

mod local_without_flushes {
    crate::storage_contract!(super::local_disk_without_flushes);
}

/// A tree at a fresh prefix of the bucket of the run's single Garage node;
/// `None`, said loudly, without a `garage` binary.
pub async fn garage_bucket() -> Option<Fixture> {
    use crate::support::garage;
    let node = garage::single("the storage contract on S3 (Garage)").await?;
    let settings = node.settings(&garage::fresh_prefix("contract"));
    let bucket = miniftp::storage::S3Bucket::open(&settings)
        .await
        .unwrap_or_else(|error| panic!("open {settings:?}: {error}"));
    Some(Fixture {
        storage: Storage::new(std::sync::Arc::new(bucket)),
        _keep: Box::new(()),
    })
}

mod s3 {
    crate::storage_contract!(optional super::garage_bucket);
}
