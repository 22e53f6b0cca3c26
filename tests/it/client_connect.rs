//! `miniftp connect` meeting what is not a plain miniftp server: an
//! address that cannot be one, a server that needs an account, a server
//! that speaks another protocol. Each is said at once, with exit code 2.

use std::sync::Arc;
use std::time::Duration;

use miniftp::accounts::Accounts;
use miniftp::client::{Client, ClientConfig, ClientError};
use miniftp::{Access, ServerConfig};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::client_script::{miniftp, run, stderr};
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn a_port_out_of_range_is_said_to_be_invalid() {
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args(["connect", "127.0.0.1:99999", "-c", "ls"]);
    run(command).await.code(2).stdout("").stderr(
        "miniftp: invalid port '99999' in 127.0.0.1:99999: a port is a number from 1 to 65535\n",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_needs_an_account_says_so_at_connect() {
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    let server = TestServer::start_with(ServerConfig {
        accounts: Some(Arc::new(accounts)),
        ..ServerConfig::default()
    })
    .await;
    let address = server.address.to_string();
    let local = TempDir::new().unwrap();
    for protocol in [None, Some("--classic")] {
        let mut command = miniftp(local.path());
        command.args(["connect", &address, "-c", "mkdir x"]);
        command.args(protocol);
        let assert = run(command).await.code(2).stdout("");
        assert_eq!(
            stderr(&assert),
            format!(
                "miniftp: the server at {address} needs an account: connect as NAME@{address} \
                 (with --tls unless it is on this host)\n"
            ),
            "{protocol:?}"
        );
    }
}

/// A server of another kind on 127.0.0.1:0: it sends `banner` to each
/// client (nothing, for an HTTP server) and then only reads.
async fn foreign_server(banner: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                stream.write_all(banner).await.unwrap();
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ssh_server_is_quoted_and_left_at_once() {
    let address = foreign_server(b"SSH-2.0-OpenSSH_9.6\r\n").await.to_string();
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args(["connect", &address, "-c", "ls"]);
    let assert = run(command).await.code(2).stdout("");
    assert_eq!(
        stderr(&assert),
        format!(
            "miniftp: the server at {address} does not look like a miniftp server \
             (it sent 'SSH-2.0-OpenSSH_9.6')\n"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_is_given_a_few_seconds_not_the_whole_timeout() {
    let address = foreign_server(b"").await.to_string();
    let started = tokio::time::Instant::now();
    let config = ClientConfig {
        timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let error = Client::connect(&address, config).await.err().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(
        matches!(error, ClientError::NotMiniftp { sent: None, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the server at {address} does not look like a miniftp server (it sent nothing \
             within 3 s of the connection; an HTTP server, for one, waits for its client to \
             speak first)"
        )
    );
}
