//! Every classic command and its error cases, against the in-process server.

use crate::support::{RawClient, TestServer};

#[tokio::test]
async fn the_readme_session_round_trips_a_file() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|");
    assert_eq!(client.command("mkdir test_dir").await, "/");
    assert_eq!(client.command("cd test_dir").await, "/test_dir");
    assert_eq!(
        client.upload("jellyfish.jpg", b"\x00jelly\xff").await,
        "/test_dir"
    );
    assert_eq!(
        client.info("jellyfish.jpg").await,
        ("7".into(), "/test_dir".into())
    );
    let (payload, status) = client.download("jellyfish.jpg").await;
    assert_eq!(
        (&payload[..], status.as_str()),
        (&b"\x00jelly\xff"[..], "/test_dir")
    );
    assert_eq!(client.command("cd ..").await, "/");
    assert_eq!(
        client.command("rm test_dir").await,
        "error: directory not empty: test_dir"
    );
    assert_eq!(client.command("rm test_dir/jellyfish.jpg").await, "/");
    assert_eq!(client.command("rm test_dir").await, "/");
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());
    assert_eq!(server.pending_uploads(), 0);
}
