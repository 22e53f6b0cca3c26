//! Several servers on one bucket of a real distributed store: a three-node
//! Garage cluster (replication factor 3) on loopback, two miniftp servers
//! each talking to its own node. What one server does, the other sees at
//! once; an upload interrupted on one is resumed through the other; a node
//! killed during transfers leaves every transfer verified or failed
//! cleanly, and resumable, with nothing lost or half-visible. And on one
//! node: a server killed mid-upload leaves a multipart upload, which the
//! next server to start aborts.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use miniftp::ServerConfig;
use miniftp::client::{Client, ClientConfig, TransferOptions};
use miniftp::storage::s3::{S3Settings, upkeep};
use miniftp::storage::{S3Bucket, Storage};
use tokio::sync::Notify;

use crate::support::garage::{self, Garage};
use crate::support::process::ServerProcess;
use crate::support::{HANG_GUARD, TestServer, pseudo_random_bytes, sha256};

const MIB: usize = 1 << 20;

/// A miniftp server on the bucket through `settings`' node.
async fn server_on(settings: &S3Settings) -> TestServer {
    let bucket = S3Bucket::open(settings)
        .await
        .unwrap_or_else(|error| panic!("open {settings:?}: {error}"));
    TestServer::serve_storage(Storage::new(Arc::new(bucket)), ServerConfig::default()).await
}

async fn client(server: &TestServer) -> Client {
    Client::connect(&server.address.to_string(), ClientConfig::default())
        .await
        .expect("connect")
}

/// A local file of `data`.
fn local_file(directory: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// Downloads `remote` through `client` (verified by the client's digest
/// check) and returns its bytes.
async fn fetch(client: &mut Client, remote: &str) -> Vec<u8> {
    let mut data = Vec::new();
    client
        .download(remote, &mut data, |_| {})
        .await
        .unwrap_or_else(|error| panic!("dl {remote}: {error}"));
    data
}

/// How many parts a resumable upload's state in the bucket holds, if any.
async fn parts_kept(operator: &opendal::Operator, prefix: &str) -> usize {
    let Ok(states) = operator.list(&format!("{prefix}/.miniftp/partial/")).await else {
        return 0;
    };
    let mut most = 0;
    for state in states {
        if let Ok(bytes) = operator.read(state.path()).await {
            let text = String::from_utf8_lossy(&bytes.to_vec()).into_owned();
            most = most.max(text.matches("[[parts]]").count());
        }
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_bucket_see_each_others_changes_and_resume_each_others_uploads() {
    let Some(garage) = Garage::cluster("two servers on a three-node Garage").await else {
        return;
    };
    let prefix = garage::fresh_prefix("shared");
    let a = server_on(&garage.nodes[0].settings(&prefix)).await;
    let b = server_on(&garage.nodes[1].settings(&prefix)).await;
    let (mut through_a, mut through_b) = (client(&a).await, client(&b).await);
    let work = tempfile::TempDir::new().unwrap();

    // A file uploaded through one is downloadable through the other at once.
    let photo = pseudo_random_bytes(3 * MIB + 17, 1);
    let path = local_file(work.path(), "photo.jpg", &photo);
    through_a
        .upload_file(&path, "photo.jpg", TransferOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        sha256(&fetch(&mut through_b, "photo.jpg").await),
        sha256(&photo)
    );

    // A directory made through one is listed by the other.
    through_b.make_directory("albums").await.unwrap();
    let names: Vec<String> = through_a
        .list("/")
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert!(names.contains(&"albums".to_owned()), "{names:?}");
    assert!(names.contains(&"photo.jpg".to_owned()), "{names:?}");

    // An upload interrupted on A (its client goes away after 3 parts) is
    // resumed through B, from what A's server kept.
    let video = pseudo_random_bytes(5 * 8 * MIB + 12_345, 2);
    let path = local_file(work.path(), "video.bin", &video);
    let resume = TransferOptions { resume: true };
    let enough = Notify::new();
    let interrupted = tokio::select! {
        done = through_a.upload_file(&path, "albums/video.bin", resume, |progress| {
            if progress.done >= 3 * 8 * MIB as u64 {
                enough.notify_one();
            }
        }) => done.map(drop).err().map(|error| error.to_string()),
        () = enough.notified() => None,
    };
    assert_eq!(
        interrupted, None,
        "the upload was interrupted, not finished or failed"
    );
    drop(through_a);
    // What A kept is in the bucket before anyone resumes: the first parts'
    // state (written as each part is answered).
    let operator = garage::operator(&garage.nodes[1].endpoint);
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while parts_kept(&operator, &prefix).await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "A kept no parts");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Nothing is visible meanwhile.
    let listed: Vec<String> = through_b
        .list("albums")
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert!(listed.is_empty(), "{listed:?}");
    let mut kept = 0;
    through_b
        .upload_file(&path, "albums/video.bin", resume, |progress| {
            kept = kept.max(progress.kept);
        })
        .await
        .unwrap();
    assert!(kept >= 2 * 8 * MIB as u64, "B resumed from {kept} bytes");
    assert_eq!(kept % (8 * MIB as u64), 0, "whole parts are kept");
    // Whole, through either server.
    let mut through_a = client(&a).await;
    assert_eq!(
        sha256(&fetch(&mut through_a, "albums/video.bin").await),
        sha256(&video)
    );
    // No upload is left in progress, and no resume state.
    let bucket = S3Bucket::open(&S3Settings {
        read_only: true,
        ..garage.nodes[2].settings(&prefix)
    })
    .await
    .unwrap();
    assert_eq!(
        upkeep::uploads_in_progress(&bucket).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(parts_kept(&operator, &prefix).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_transfers_leaves_each_verified_or_failed_cleanly_and_resumable() {
    let Some(mut garage) = Garage::cluster("a Garage node killed during transfers").await else {
        return;
    };
    let prefix = garage::fresh_prefix("killed");
    // A talks to node 0, which is killed; B to node 1, which stays.
    let a = server_on(&garage.nodes[0].settings(&prefix)).await;
    let b = server_on(&garage.nodes[1].settings(&prefix)).await;
    let work = tempfile::TempDir::new().unwrap();
    let old = pseudo_random_bytes(24 * MIB + 5, 3);
    let old_path = local_file(work.path(), "old.bin", &old);
    client(&b)
        .await
        .upload_file(&old_path, "old.bin", TransferOptions::default(), |_| {})
        .await
        .unwrap();

    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|index| {
            (
                format!("new-{index}.bin"),
                pseudo_random_bytes(32 * MIB + index * 1000, 10 + index as u64),
            )
        })
        .collect();
    let started = Arc::new(Notify::new());
    let mut transfers = Vec::new();
    for (index, (name, data)) in files.iter().enumerate() {
        // Uploads through both servers, two each.
        let server = if index % 2 == 0 { &a } else { &b };
        let address = server.address.to_string();
        let path = local_file(work.path(), name, data);
        let (name, started) = (name.clone(), Arc::clone(&started));
        // An upload through A says when it is well under way: the node is
        // killed then, with most of it still to send.
        let through_a = index % 2 == 0;
        transfers.push(tokio::spawn(async move {
            let mut client = Client::connect(&address, ClientConfig::default()).await?;
            let told = AtomicBool::new(false);
            client
                .upload_file(&path, &name, TransferOptions { resume: true }, |progress| {
                    if through_a
                        && progress.done >= 12 * MIB as u64
                        && !told.swap(true, Ordering::Relaxed)
                    {
                        started.notify_one();
                    }
                })
                .await
                .map(drop)
        }));
    }
    let mut downloads = Vec::new();
    for server in [&a, &b] {
        let address = server.address.to_string();
        downloads.push(tokio::spawn(async move {
            let mut client = Client::connect(&address, ClientConfig::default()).await?;
            let mut data = Vec::new();
            client.download("old.bin", &mut data, |_| {}).await?;
            Ok::<_, miniftp::client::ClientError>(data)
        }));
    }
    // Mid-transfer: a node dies.
    started.notified().await;
    garage.nodes[0].kill();

    let mut failed = Vec::new();
    for (index, ((name, data), transfer)) in files.iter().zip(transfers).enumerate() {
        match transfer.await.unwrap() {
            Ok(()) => assert!(index % 2 == 1 || failed.len() < 2, "{name}"),
            Err(error) => {
                eprintln!("upload {name} failed cleanly: {error}");
                failed.push((name, data));
            }
        }
    }
    // The upload that said when to kill the node cannot have finished.
    assert!(
        !failed.is_empty(),
        "an upload through A was cut by the node's death"
    );
    for download in downloads {
        // A download either arrives whole (the client checks its digest) or
        // fails; it is not retried here, the file is checked below.
        match download.await.unwrap() {
            Ok(data) => assert_eq!(sha256(&data), sha256(&old)),
            Err(error) => eprintln!("a download failed cleanly: {error}"),
        }
    }
    // Through the server that stays: what failed is not half there, and
    // resumes; then everything is whole.
    let mut through_b = client(&b).await;
    for (name, data) in &failed {
        match through_b.stat(name).await {
            Err(_) => {}
            Ok(entry) => panic!("{name} is visible after a failed upload: {entry:?}"),
        }
        let path = local_file(work.path(), name, data);
        through_b
            .upload_file(&path, name, TransferOptions { resume: true }, |_| {})
            .await
            .unwrap_or_else(|error| panic!("resume {name} through B: {error}"));
    }
    for (name, data) in &files {
        assert_eq!(
            sha256(&fetch(&mut through_b, name).await),
            sha256(data),
            "{name}"
        );
    }
    assert_eq!(
        sha256(&fetch(&mut through_b, "old.bin").await),
        sha256(&old)
    );
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_a_killed_server_left_is_aborted_by_the_next_server_at_start() {
    let Some(node) = garage::single("a killed server's upload, on Garage").await else {
        return;
    };
    let prefix = garage::fresh_prefix("crash");
    let location = format!("s3://{}/{prefix}", garage::BUCKET);
    let arguments = [
        "--storage",
        location.as_str(),
        "--s3-endpoint",
        node.endpoint.as_str(),
        "--s3-region",
        garage::REGION,
    ];
    let environment = [
        ("AWS_ACCESS_KEY_ID", garage::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", garage::SECRET_KEY),
    ];
    let first = ServerProcess::start_without_root(&arguments, &environment);
    let work = tempfile::TempDir::new().unwrap();
    let data = pseudo_random_bytes(40 * MIB, 4);
    let path = local_file(work.path(), "big.bin", &data);
    let mut client = Client::connect(&first.address.to_string(), ClientConfig::default())
        .await
        .unwrap();
    let enough = Notify::new();
    tokio::select! {
        done = client.upload_file(&path, "big.bin", TransferOptions::default(), |progress| {
            if progress.done >= 16 * MIB as u64 {
                enough.notify_one();
            }
        }) => panic!("the upload ended before the crash: {:?}", done.map(drop)),
        () = enough.notified() => {}
    }
    first.kill();
    drop(client);
    // The crash left a multipart upload (looked at without sweeping).
    let looking = S3Bucket::open(&S3Settings {
        read_only: true,
        ..node.settings(&prefix)
    })
    .await
    .unwrap();
    let left = upkeep::uploads_in_progress(&looking).await.unwrap();
    assert_eq!(left, [format!("{prefix}/big.bin")]);
    // The next server aborts it before it serves.
    let second = ServerProcess::start_without_root(&arguments, &environment);
    assert_eq!(
        upkeep::uploads_in_progress(&looking).await.unwrap(),
        Vec::<String>::new()
    );
    let mut client = Client::connect(&second.address.to_string(), ClientConfig::default())
        .await
        .unwrap();
    assert!(
        client.stat("big.bin").await.is_err(),
        "nothing half-visible"
    );
}
