//! Passwords never reach the logs. A test binary of its own: it installs a
//! global logger that records everything, which the other tests (running in
//! parallel threads of one binary) would disturb.

use std::sync::{Arc, Mutex};

use miniftp::accounts::Accounts;
use miniftp::client::{Client, ClientConfig, Credentials, Password};
use miniftp::{Access, ServerConfig, Storage};
use tokio_util::sync::CancellationToken;

/// Everything logged, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn as_user(user: &str, password: &str) -> ClientConfig {
    ClientConfig {
        login: Some(Credentials {
            user: user.to_owned(),
            password: Password::new(password),
        }),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn passwords_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    let root = tempfile::TempDir::new().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(miniftp::server::run(
        listener,
        Storage::open(root.path()).unwrap(),
        ServerConfig {
            accounts: Some(Arc::new(accounts)),
            login_failures: miniftp::config::LoginFailurePolicy {
                first_delay: std::time::Duration::ZERO,
                ..Default::default()
            },
            ..ServerConfig::default()
        },
        shutdown.clone(),
    ));

    let mut alice = Client::connect(&address, as_user("alice", "alice's secret"))
        .await
        .unwrap();
    alice.make_directory("x").await.unwrap();
    alice.close().await;
    let wrong = Client::connect(&address, as_user("alice", "hunter2-wrong")).await;
    assert!(wrong.is_err());
    let unknown = Client::connect(&address, as_user("hunter2-name", "hunter2-password")).await;
    assert!(unknown.is_err());
    shutdown.cancel();
    server.await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("logged in"),
        "the logs say who logged in:\n{logs}"
    );
    assert!(logs.contains("login failed"), "and who failed:\n{logs}");
    for secret in [
        "alice's secret",
        "hunter2-wrong",
        "hunter2-password",
        "argon2",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} appears in the logs:\n{logs}"
        );
    }
}
