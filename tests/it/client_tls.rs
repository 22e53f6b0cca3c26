//! `miniftp connect --tls` as a user meets it: the certificate question
//! before the password, a certificate made by `openssl req -x509` (a CA
//! certificate) pinned with `--ca`, certificate errors in words.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use expectrl::session::OsSession;
use expectrl::{Expect, Session};
use miniftp::accounts::Accounts;
use miniftp::tls::load_server_identity;
use miniftp::{Access, ServerConfig};
use tempfile::TempDir;

use crate::client_script::{miniftp, run, stderr};
use crate::client_shell::{expect, leave, output_until};
use crate::support::TestServer;

/// `miniftp connect ARGS` on a pseudo-terminal, in `home` (its data and
/// known-hosts file there too).
fn spawn_connect(args: &[&str], home: &Path) -> OsSession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
    command
        .arg("connect")
        .args(args)
        .current_dir(home)
        .env("XDG_DATA_HOME", home)
        .env("MINIFTP_KNOWN_HOSTS", home.join("known_hosts"))
        .env_remove("MINIFTP_PASSWORD")
        .env("TERM", "xterm");
    let mut session = Session::spawn(command).expect("spawn the client");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

#[tokio::test(flavor = "multi_thread")]
async fn the_certificate_is_trusted_before_the_password_is_asked() {
    let state = TempDir::new().unwrap();
    let identity = load_server_identity(None, None, state.path()).unwrap();
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    let server = TestServer::start_with(ServerConfig {
        tls: Some(Arc::clone(&identity.config)),
        accounts: Some(Arc::new(accounts)),
        ..ServerConfig::default()
    })
    .await;
    server.write("alice/a.txt", b"a");
    let home = TempDir::new().unwrap();
    let account = format!("alice@{}", server.address);
    tokio::task::spawn_blocking(move || {
        let mut client = spawn_connect(&["--tls", &account], home.path());
        let asked = output_until(&mut client, "Trust this server and remember it? [yes/no] ");
        assert!(!asked.contains("password"), "{asked}");
        assert!(asked.contains("SHA-256 fingerprint"), "{asked}");
        client.send("yes\r").unwrap();
        expect(&mut client, &format!("{account}'s password: "));
        client.send("alice's secret\r").unwrap();
        expect(&mut client, "a.txt");
        expect(&mut client, "miniftp:/> ");
        leave(client);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_made_like_openssl_req_x509_is_pinned_with_ca() {
    // What `openssl req -x509 -subj /CN=localhost` makes: CA:TRUE, no
    // subjectAltName; the server's own certificate and the client's --ca.
    let files = TempDir::new().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let cert = files.path().join("c.pem");
    let key_file = files.path().join("k.pem");
    std::fs::write(&cert, certificate.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let identity = load_server_identity(Some(&cert), Some(&key_file), files.path()).unwrap();
    let server = TestServer::start_with(ServerConfig {
        tls: Some(Arc::clone(&identity.config)),
        ..ServerConfig::default()
    })
    .await;
    server.write("a.txt", b"hello");

    let home = TempDir::new().unwrap();
    let mut command = miniftp(home.path());
    command
        .args(["connect", &server.address.to_string(), "--ca"])
        .arg(&cert)
        .args(["-c", "info a.txt"]);
    run(command)
        .await
        .success()
        .stdout("a.txt: 5 bytes\n")
        .stderr("");

    // A CA file that cannot be read is said in words.
    let mut command = miniftp(home.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "--ca",
        "missing.pem",
        "-c",
        "ls",
    ]);
    let assert = run(command).await.code(2);
    assert_eq!(
        stderr(&assert),
        "miniftp: cannot read missing.pem: no such file or directory\n"
    );
}
