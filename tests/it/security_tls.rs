//! TLS end to end: our server and client over TLS in both protocols, with a
//! generated certificate trusted on first use and with given PEM files
//! checked against their CA; a changed certificate refused; plain and TLS
//! peers that do not match fail fast with a reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use miniftp::ServerConfig;
use miniftp::client::{Client, ClientConfig, ClientError, Credentials, Password, Protocol};
use miniftp::tls::{ClientTrust, ServerIdentity, TlsError, load_server_identity};
use tempfile::TempDir;

use crate::support::{RawClient, TestServer, pseudo_random_bytes, sha256};

/// A TLS server whose identity is generated (and kept) in `state`.
async fn tls_server(state: &Path) -> (TestServer, ServerIdentity) {
    let identity = load_server_identity(None, None, state).expect("identity");
    let server = TestServer::start_with(ServerConfig {
        tls: Some(Arc::clone(&identity.config)),
        ..ServerConfig::default()
    })
    .await;
    (server, identity)
}

/// Trust on first use, recorded in `known_hosts`, counting the questions.
fn trusting(known_hosts: PathBuf, answer: bool, asked: &Arc<AtomicUsize>) -> Arc<ClientTrust> {
    let asked = Arc::clone(asked);
    Arc::new(ClientTrust {
        ask: Some(Arc::new(move |_server: &str, _fingerprint: &_| {
            asked.fetch_add(1, Ordering::SeqCst);
            answer
        })),
        ..ClientTrust::new(known_hosts)
    })
}

fn over(trust: &Arc<ClientTrust>, protocol: Protocol) -> ClientConfig {
    ClientConfig {
        tls: Some(Arc::clone(trust)),
        protocol,
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn files_travel_over_tls_in_both_protocols() {
    let state = TempDir::new().unwrap();
    let (server, _) = tls_server(state.path()).await;
    let known = TempDir::new().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let trust = trusting(known.path().join("known_hosts"), true, &asked);
    // 3 MiB + 7: several chunks of the buffered path that replaces sendfile.
    let data = pseudo_random_bytes(3 * 1024 * 1024 + 7, 11);
    for protocol in [Protocol::Auto, Protocol::Classic] {
        let mut client = Client::connect(&server.address.to_string(), over(&trust, protocol))
            .await
            .expect("connect over TLS");
        assert_eq!(client.is_extended(), protocol == Protocol::Auto);
        let name = format!("{protocol:?}.bin");
        client
            .upload(&data[..], data.len() as u64, &name, |_| {})
            .await
            .unwrap();
        assert_eq!(sha256(&server.read(&name)), sha256(&data));
        let mut back = Vec::new();
        client.download(&name, &mut back, |_| {}).await.unwrap();
        assert_eq!(sha256(&back), sha256(&data));
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "asked once, then known");
}

#[tokio::test]
async fn a_changed_certificate_is_refused_loudly() {
    let known = TempDir::new().unwrap();
    let known_hosts = known.path().join("known_hosts");
    let asked = Arc::new(AtomicUsize::new(0));
    let trust = trusting(known_hosts.clone(), true, &asked);
    let first_state = TempDir::new().unwrap();
    let (server, first) = tls_server(first_state.path()).await;
    let address = server.address;
    Client::connect(&address.to_string(), over(&trust, Protocol::Auto))
        .await
        .expect("first contact");
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        recorded.contains(&first.fingerprint.to_string()),
        "{recorded}"
    );

    // The same address, another certificate: as if the server were replaced.
    let root = server.stop().await;
    let second_state = TempDir::new().unwrap();
    let second = load_server_identity(None, None, second_state.path()).unwrap();
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let storage = miniftp::Storage::open(root.path()).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _server = tokio::spawn(miniftp::server::run(
        listener,
        storage,
        ServerConfig {
            tls: Some(Arc::clone(&second.config)),
            ..ServerConfig::default()
        },
        shutdown.clone(),
    ));
    let accepting_anything = Arc::new(ClientTrust {
        accept_new: true,
        ..ClientTrust::new(known_hosts.clone())
    });
    let error = Client::connect(
        &address.to_string(),
        over(&accepting_anything, Protocol::Auto),
    )
    .await
    .err()
    .expect("a changed certificate is refused, even with accept_new");
    let ClientError::Tls(TlsError::HostChanged(_)) = &error else {
        panic!("expected a changed host, got {error:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains(&first.fingerprint.to_string()),
        "{message}"
    );
    assert!(
        message.contains(&second.fingerprint.to_string()),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        recorded,
        "not recorded"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn an_unknown_server_is_refused_when_the_user_says_no() {
    let state = TempDir::new().unwrap();
    let (server, _) = tls_server(state.path()).await;
    let known = TempDir::new().unwrap();
    let known_hosts = known.path().join("known_hosts");
    let asked = Arc::new(AtomicUsize::new(0));
    let trust = trusting(known_hosts.clone(), false, &asked);
    let error = Client::connect(&server.address.to_string(), over(&trust, Protocol::Auto))
        .await
        .err()
        .expect("refused");
    assert!(matches!(error, ClientError::Tls(_)), "{error:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(!known_hosts.exists());
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, as files.
fn signed_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "miniftp test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, ca_pem).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca, cert, key)
}

#[tokio::test]
async fn given_pem_files_verify_against_their_ca() {
    let files = TempDir::new().unwrap();
    let (ca, cert, key) = signed_files(files.path());
    let identity = load_server_identity(Some(&cert), Some(&key), files.path()).unwrap();
    let server = TestServer::start_with(ServerConfig {
        tls: Some(Arc::clone(&identity.config)),
        ..ServerConfig::default()
    })
    .await;
    let known = TempDir::new().unwrap();
    let trust = Arc::new(ClientTrust {
        ca_file: Some(ca),
        ..ClientTrust::new(known.path().join("known_hosts"))
    });
    let mut client = Client::connect(&server.address.to_string(), over(&trust, Protocol::Auto))
        .await
        .expect("verified by the CA");
    client.make_directory("verified").await.unwrap();
    assert!(server.path("verified").is_dir());
    assert!(
        !known.path().join("known_hosts").exists(),
        "no trust on first use needed"
    );

    // Another CA does not vouch for it.
    let other = TempDir::new().unwrap();
    let (other_ca, _, _) = signed_files(other.path());
    let strict = Arc::new(ClientTrust {
        ca_file: Some(other_ca),
        ..ClientTrust::new(known.path().join("known_hosts"))
    });
    let error = Client::connect(&server.address.to_string(), over(&strict, Protocol::Auto))
        .await
        .err()
        .expect("another CA's certificate is refused");
    assert!(matches!(error, ClientError::Tls(_)), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_plain_client_of_a_tls_server_is_told_why_at_once() {
    let state = TempDir::new().unwrap();
    let (server, _) = tls_server(state.path()).await;
    let started = tokio::time::Instant::now();
    // Like the original client: waits for a token, which comes in clear.
    let mut raw = RawClient::connect(server.address).await;
    assert_eq!(
        raw.welcome,
        "error: this server speaks TLS only: connect with miniftp connect --tls"
    );
    assert!(raw.read_until_closed().await.is_empty());
    // Our client says the same.
    let error = Client::connect(&server.address.to_string(), ClientConfig::default())
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("TLS only"), "{error}");
    // Told after the server's short wait for a ClientHello (2 s, twice: the
    // raw client, then ours), not after any timeout of the client's (30 s),
    // in the paused clock.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_tls_client_of_a_plain_server_is_told_why_at_once() {
    let server = TestServer::start().await;
    let known = TempDir::new().unwrap();
    let trust = Arc::new(ClientTrust {
        accept_new: true,
        ..ClientTrust::new(known.path().join("known_hosts"))
    });
    let config = ClientConfig {
        tls: Some(trust),
        ..ClientConfig::default()
    };
    let error = Client::connect(&server.address.to_string(), config)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(error, ClientError::Tls(TlsError::NotTls { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("plain TCP"), "{error}");
}

#[tokio::test]
async fn a_login_over_tls_reaches_the_home() {
    let state = TempDir::new().unwrap();
    let identity = load_server_identity(None, None, state.path()).unwrap();
    let mut accounts = miniftp::accounts::Accounts::new();
    accounts
        .add("dana", "dana's secret", None, miniftp::Access::ReadWrite)
        .unwrap();
    let server = TestServer::start_with(ServerConfig {
        tls: Some(Arc::clone(&identity.config)),
        accounts: Some(Arc::new(accounts)),
        ..ServerConfig::default()
    })
    .await;
    server.write("dana/d.txt", b"dana's file");
    let known = TempDir::new().unwrap();
    let trust = Arc::new(ClientTrust {
        accept_new: true,
        ..ClientTrust::new(known.path().join("known_hosts"))
    });
    let config = ClientConfig {
        login: Some(Credentials {
            user: "dana".to_owned(),
            password: Password::new("dana's secret"),
        }),
        ..over(&trust, Protocol::Auto)
    };
    let client = Client::connect(&server.address.to_string(), config)
        .await
        .expect("log in over TLS");
    assert_eq!(client.welcome().entries, ["d.txt"]);
}

#[tokio::test]
async fn a_user_slow_to_trust_a_server_still_gets_in() {
    let state = TempDir::new().unwrap();
    let identity = load_server_identity(None, None, state.path()).unwrap();
    let mut accounts = miniftp::accounts::Accounts::new();
    accounts
        .add("erin", "erin's secret", None, miniftp::Access::ReadWrite)
        .unwrap();
    let server = TestServer::start_with(ServerConfig {
        tls: Some(Arc::clone(&identity.config)),
        accounts: Some(Arc::new(accounts)),
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let known = TempDir::new().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&asked);
    let trust = Arc::new(ClientTrust {
        // A person reading the fingerprint: longer than the server waits
        // for a login.
        ask: Some(Arc::new(move |_server: &str, _fingerprint: &_| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(700));
            true
        })),
        ..ClientTrust::new(known.path().join("known_hosts"))
    });
    let config = ClientConfig {
        login: Some(Credentials {
            user: "erin".to_owned(),
            password: Password::new("erin's secret"),
        }),
        ..over(&trust, Protocol::Auto)
    };
    let mut client = Client::connect(&server.address.to_string(), config)
        .await
        .expect("in, after the question");
    client.make_directory("made").await.unwrap();
    assert!(server.path("erin/made").is_dir());
    assert_eq!(asked.load(Ordering::SeqCst), 1, "asked once");
}
