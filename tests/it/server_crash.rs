//! The real binary killed with SIGKILL in the middle of an upload, then
//! restarted on the same root: no partial file visible, the old content
//! intact, the private upload area cleaned.

use std::path::Path;

use tempfile::TempDir;

use crate::support::process::ServerProcess;
use crate::support::{RawClient, pseudo_random_bytes, sha256, wait_until};

fn entries(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_upload_loses_nothing_old_and_shows_nothing_new() {
    let root = TempDir::new().unwrap();
    let old = pseudo_random_bytes(1 << 20, 1);
    std::fs::write(root.path().join("big.bin"), &old).unwrap();
    let server = ServerProcess::start(root.path());

    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|\n-- big.bin");
    client.send("ul big.bin").await;
    let new = pseudo_random_bytes(8 << 20, 2);
    client.write_raw(&new[..6 << 20]).await;
    // Kill once part of the new content is on the server's disk.
    let uploads = root.path().join(".miniftp/uploads");
    wait_until("part of the upload is on disk", || {
        std::fs::read_dir(&uploads).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|entry| entry.metadata().is_ok_and(|m| m.len() > 0))
        })
    })
    .await;
    server.kill();
    drop(client);

    assert_eq!(
        sha256(&std::fs::read(root.path().join("big.bin")).unwrap()),
        sha256(&old)
    );
    assert_eq!(entries(root.path()), [".miniftp", "big.bin"]);
    assert!(
        !entries(&uploads).is_empty(),
        "the crash left its temporary file"
    );

    let server = ServerProcess::start(root.path());
    assert_eq!(entries(&uploads), Vec::<String>::new(), "cleaned at start");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|\n-- big.bin");
    let (payload, status) = client.download("big.bin").await;
    assert_eq!(status, "/");
    assert_eq!(sha256(&payload), sha256(&old));
    // And the restarted server takes the upload whole.
    assert_eq!(client.upload("big.bin", &new).await, "/");
    assert_eq!(
        sha256(&std::fs::read(root.path().join("big.bin")).unwrap()),
        sha256(&new)
    );
    server.kill();
}
