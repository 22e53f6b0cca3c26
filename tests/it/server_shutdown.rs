//! Graceful shutdown: idle clients are closed, a command in flight
//! completes, the server task ends and stops accepting.

use tokio::net::TcpStream;

use crate::support::{HANG_GUARD, RawClient, TestServer, pseudo_random_bytes, wait_until};

#[tokio::test]
async fn shutdown_closes_idle_clients_and_ends_the_server() {
    let server = TestServer::start().await;
    let address = server.address;
    let mut idle = RawClient::connect(address).await;
    let mut busy = RawClient::connect(address).await;
    assert_eq!(busy.command("mkdir x").await, "/");
    let stopped = tokio::spawn(server.stop());
    let closed = idle.read_until_closed().await;
    assert!(
        closed.iter().all(|message| message.starts_with("error: ")),
        "at most an error before the close: {closed:?}"
    );
    busy.read_until_closed().await;
    let root = tokio::time::timeout(HANG_GUARD, stopped)
        .await
        .expect("the server task ends")
        .unwrap();
    assert!(root.path().join("x").is_dir());
    assert!(
        TcpStream::connect(address).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_flight_completes_during_shutdown() {
    let server = TestServer::start().await;
    server.write("big.bin", b"old");
    let data = pseudo_random_bytes(4 << 20, 8);
    let mut client = RawClient::connect(server.address).await;
    client.send("ul big.bin").await;
    client.write_raw(&data[..1 << 20]).await;
    // The upload is under way once its private file exists.
    let uploads = server.path(".miniftp/uploads");
    wait_until("the upload has started", || {
        std::fs::read_dir(&uploads).is_ok_and(|mut entries| entries.next().is_some())
    })
    .await;
    let token = server.shutdown_token();
    let stopped = tokio::spawn(server.stop());
    token.cancelled().await;
    client.write_raw(&data[1 << 20..]).await;
    client.write_raw(client.token().as_bytes()).await;
    assert_eq!(
        client.receive().await,
        "/",
        "the command in flight completes"
    );
    client.read_until_closed().await;
    let root = tokio::time::timeout(HANG_GUARD, stopped)
        .await
        .expect("the server task ends")
        .unwrap();
    assert_eq!(std::fs::read(root.path().join("big.bin")).unwrap(), data);
    assert_eq!(
        std::fs::read_dir(root.path().join(".miniftp/uploads"))
            .unwrap()
            .count(),
        0
    );
}
