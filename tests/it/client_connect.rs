//! `miniftp connect` meeting what is not a plain miniftp server: an
//! address that cannot be one, a server that needs an account, a server
//! that speaks another protocol. Each is said at once, with exit code 2.

use std::sync::Arc;

use miniftp::accounts::Accounts;
use miniftp::{Access, ServerConfig};
use tempfile::TempDir;

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
