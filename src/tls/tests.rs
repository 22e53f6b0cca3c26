//! The TLS module's tests: identities loaded and generated, fingerprints,
//! and real handshakes over loopback for every way of trusting a server.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::*;

// ---------------------------------------------------------------------------
// Fixtures

/// A CA made with rcgen, able to sign leaves.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        issuer: rcgen::Issuer::new(params, key),
        pem,
    }
}

/// A leaf certificate signed by `ca` for `names`.
struct Leaf {
    /// The leaf then the CA, PEM.
    chain_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn leaf(ca: &Ca, names: &[&str], expired: bool) -> Leaf {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        chain_pem: format!("{}{}", cert.pem(), ca.pem),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// A leaf's identity, through its PEM files.
fn leaf_identity(dir: &Path, leaf: &Leaf) -> ServerIdentity {
    let cert = write(dir, "leaf.pem", &leaf.chain_pem);
    let key = write(dir, "leaf.key", &leaf.key_pem);
    load_server_identity(Some(&cert), Some(&key), dir).unwrap()
}

/// A freshly generated self-signed identity.
fn generated_identity() -> ServerIdentity {
    let dir = tempfile::tempdir().unwrap();
    load_server_identity(None, None, dir.path()).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A TLS server on loopback: connection `n` is served with `configs[n]`
/// (the last one for all later connections), says `hello`, then waits for
/// the client to close. Returns the port.
async fn serve(configs: Vec<Arc<rustls::ServerConfig>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for index in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let config = configs[usize::min(index, configs.len() - 1)].clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = TlsAcceptor::from(config).accept(tcp).await {
                    let _ = tls.write_all(b"hello").await;
                    let _ = tls.flush().await;
                    let _ = tls.read_to_end(&mut Vec::new()).await;
                }
            });
        }
    });
    port
}

/// A plain-TCP server on loopback that runs `each` on every connection.
async fn serve_plain<F, Fut>(each: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(each(tcp));
        }
    });
    port
}

/// Connects to `127.0.0.1:port` (or `host`) and, on success, checks that
/// the server's greeting arrives through the stream.
async fn connect_to(host: &str, port: u16, trust: &ClientTrust) -> Result<(), TlsError> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut stream = connect(tcp, host, port, trust).await?;
    let mut greeting = [0; 5];
    stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"hello");
    Ok(())
}

/// What an `ask` was asked: `HOST:PORT` and fingerprint, in order.
type Asked = Arc<Mutex<Vec<(String, Fingerprint)>>>;

/// An `ask` that answers `answer` and records what it was asked.
fn asker(answer: bool) -> (Arc<AskUser>, Asked) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = asked.clone();
    let ask = move |address: &str, fingerprint: &Fingerprint| {
        record
            .lock()
            .unwrap()
            .push((address.to_owned(), *fingerprint));
        answer
    };
    (Arc::new(ask), asked)
}

/// An `ask` that must not be called.
fn never_ask() -> Arc<AskUser> {
    Arc::new(|address: &str, _: &Fingerprint| panic!("asked about {address}"))
}

struct KnownHostsDir {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn known_hosts_dir() -> KnownHostsDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("miniftp").join("known_hosts");
    KnownHostsDir { _dir: dir, path }
}

fn recorded(path: &Path) -> Vec<(String, Fingerprint)> {
    let text = std::fs::read_to_string(path).unwrap();
    known_hosts::parse(&text, path)
        .unwrap()
        .into_iter()
        .map(|entry| (entry.address, entry.fingerprint))
        .collect()
}

// ---------------------------------------------------------------------------
// Fingerprints and names

#[test]
fn fingerprint_display_and_parse_round_trip() {
    let fingerprint = Fingerprint(std::array::from_fn(|index| (index * 8 + 3) as u8));
    let text = fingerprint.to_string();
    assert_eq!(text.len(), 32 * 3 - 1);
    assert!(text.starts_with("03:0B:13:"), "{text}");
    assert_eq!(text.parse::<Fingerprint>(), Ok(fingerprint));
    assert_eq!(text.to_lowercase().parse::<Fingerprint>(), Ok(fingerprint));
    assert_eq!(
        text.replace(':', "").parse::<Fingerprint>(),
        Ok(fingerprint)
    );
    let wrong = [
        "",
        "AB",
        &text[3..],                          // 31 pairs
        &format!("{text}:00"),               // 33 pairs
        &text.replacen("03", "0G", 1),       // not hex
        &text.replacen("03:0B", "030:B", 1), // pairs out of step
        &text.replace(':', "-"),
        &format!("{}0", text.replace(':', "")),
    ];
    for wrong in wrong {
        assert_eq!(
            wrong.parse::<Fingerprint>(),
            Err(FingerprintParseError),
            "{wrong}"
        );
    }
}

#[test]
fn fingerprint_is_sha256_of_der() {
    // SHA-256 of the empty string.
    assert_eq!(
        Fingerprint::of(b"").to_string(),
        "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
    );
}

#[test]
fn servers_are_known_by_lowercase_host_and_port() {
    assert_eq!(host_port("LocalHost", 7878), "localhost:7878");
    assert_eq!(host_port("192.168.1.2", 21), "192.168.1.2:21");
    assert_eq!(host_port("::1", 7878), "[::1]:7878");
    assert_eq!(host_port("[FE80::1]", 7878), "[fe80::1]:7878");
}

// ---------------------------------------------------------------------------
// Server identity

#[test]
fn generated_identity_is_kept_with_private_modes_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("data").join("server");
    let first = load_server_identity(None, None, &state).unwrap();
    assert_eq!(first.certificate, state.join("cert.pem"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("key.pem")), 0o600);
    }
    let mut names: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cert.pem", "key.pem"], "no temporary file left");
    let second = load_server_identity(None, None, &state).unwrap();
    assert_eq!(second.fingerprint, first.fingerprint);
    let der = identity::read_certificates(&state.join("cert.pem")).unwrap();
    assert_eq!(Fingerprint::of(&der[0]), first.fingerprint);
    // Another state directory, another certificate.
    assert_ne!(generated_identity().fingerprint, first.fingerprint);
}

#[test]
fn a_key_left_without_its_certificate_is_replaced() {
    // What an interrupted first start leaves: the key, not the certificate.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "key.pem", "half a key");
    let identity = load_server_identity(None, None, dir.path()).unwrap();
    let again = load_server_identity(None, None, dir.path()).unwrap();
    assert_eq!(identity.fingerprint, again.fingerprint);
}

#[test]
fn a_kept_certificate_without_its_key_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    load_server_identity(None, None, dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("key.pem")).unwrap();
    let error = load_server_identity(None, None, dir.path()).unwrap_err();
    assert!(
        matches!(error, TlsError::Read { ref path, .. } if path == &dir.path().join("key.pem"))
    );
}

#[test]
fn given_pem_files_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = leaf(&ca("test CA"), &["localhost"], false);
    let identity = leaf_identity(dir.path(), &leaf);
    assert_eq!(identity.fingerprint, Fingerprint::of(&leaf.der));
    assert_eq!(identity.certificate, dir.path().join("leaf.pem"));
    // Nothing was generated in the state directory.
    assert!(!dir.path().join("cert.pem").exists());
}

#[test]
fn bad_given_files_are_named_in_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let test_ca = ca("test CA");
    let good = leaf(&test_ca, &["localhost"], false);
    let other = leaf(&test_ca, &["localhost"], false);
    let cert = write(dir, "cert.pem", &good.chain_pem);
    let key = write(dir, "key.pem", &good.key_pem);
    let other_key = write(dir, "other.key", &other.key_pem);
    let missing = dir.join("missing.pem");
    let garbage = write(dir, "garbage.pem", "this is not PEM\n");
    let unterminated = write(
        dir,
        "unterminated.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
    );
    let encrypted = write(
        dir,
        "encrypted.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let not_a_certificate = write(
        dir,
        "bad-der.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let load = |cert: &Path, key: &Path| {
        let error = load_server_identity(Some(cert), Some(key), dir).unwrap_err();
        (error.to_string(), error)
    };

    let (message, error) = load(&missing, &key);
    assert!(matches!(error, TlsError::Read { .. }), "{error:?}");
    assert!(message.contains("missing.pem"), "{message}");
    let (message, error) = load(&cert, &missing);
    assert!(matches!(error, TlsError::Read { .. }), "{error:?}");
    assert!(message.contains("missing.pem"), "{message}");

    let (message, error) = load(&garbage, &key);
    assert!(matches!(error, TlsError::NotPem { .. }), "{error:?}");
    assert!(
        message.contains("garbage.pem is not a PEM file"),
        "{message}"
    );
    let (_, error) = load(&cert, &garbage);
    assert!(matches!(error, TlsError::NotPem { .. }), "{error:?}");
    let (message, error) = load(&unterminated, &key);
    assert!(matches!(error, TlsError::NotPem { .. }), "{error:?}");
    assert!(message.contains("unterminated.pem"), "{message}");

    let (message, error) = load(&key, &key);
    assert!(matches!(error, TlsError::NoCertificate { .. }), "{error:?}");
    assert!(
        message.contains("key.pem holds no certificate"),
        "{message}"
    );
    let (message, error) = load(&cert, &cert);
    assert!(matches!(error, TlsError::NoKey { .. }), "{error:?}");
    assert!(
        message.contains("cert.pem holds no private key"),
        "{message}"
    );
    let (message, error) = load(&cert, &encrypted);
    assert!(matches!(error, TlsError::EncryptedKey { .. }), "{error:?}");
    assert!(message.contains("encrypted.key"), "{message}");

    let (message, error) = load(&cert, &other_key);
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
    assert!(
        message.contains("other.key does not match the certificate")
            && message.contains("cert.pem"),
        "{message}"
    );
    let (message, error) = load(&not_a_certificate, &key);
    assert!(
        matches!(error, TlsError::BadServerCertificate { .. }),
        "{error:?}"
    );
    assert!(message.contains("bad-der.pem"), "{message}");

    let error = load_server_identity(Some(&cert), None, dir).unwrap_err();
    assert!(
        matches!(error, TlsError::CertificateWithoutKey { .. }),
        "{error:?}"
    );
    let error = load_server_identity(None, Some(&key), dir).unwrap_err();
    assert!(
        matches!(error, TlsError::KeyWithoutCertificate { .. }),
        "{error:?}"
    );
    // One of the two given never falls back to generating.
    assert_eq!(
        std::fs::read_to_string(dir.join("key.pem")).unwrap(),
        good.key_pem
    );
}

// ---------------------------------------------------------------------------
// Trust on first use

#[tokio::test]
async fn first_contact_asks_and_records_then_does_not_ask() {
    let identity = generated_identity();
    let port = serve(vec![identity.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let (ask, asked) = asker(true);
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    trust.ask = Some(ask);

    connect_to("127.0.0.1", port, &trust).await.unwrap();
    let address = format!("127.0.0.1:{port}");
    assert_eq!(
        *asked.lock().unwrap(),
        [(address.clone(), identity.fingerprint)]
    );
    assert_eq!(
        recorded(&known_hosts.path),
        [(address.clone(), identity.fingerprint)]
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&known_hosts.path), 0o600);
        assert_eq!(mode(known_hosts.path.parent().unwrap()), 0o700);
    }

    trust.ask = Some(never_ask());
    connect_to("127.0.0.1", port, &trust).await.unwrap();
    assert_eq!(recorded(&known_hosts.path).len(), 1);
}

#[tokio::test]
async fn a_changed_certificate_is_refused_loudly_and_nothing_is_written() {
    let first = generated_identity();
    let second = generated_identity();
    let port = serve(vec![first.config.clone(), second.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let (ask, _) = asker(true);
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    trust.ask = Some(ask);
    connect_to("127.0.0.1", port, &trust).await.unwrap();
    let before = std::fs::read(&known_hosts.path).unwrap();

    trust.ask = Some(never_ask());
    let error = connect_to("127.0.0.1", port, &trust).await.unwrap_err();
    let TlsError::HostChanged(changed) = &error else {
        panic!("expected HostChanged, got {error:?}");
    };
    assert_eq!(changed.presented, second.fingerprint);
    assert_eq!(changed.recorded, first.fingerprint);
    assert_eq!(changed.line, 3, "after the two header lines");
    let message = error.to_string();
    for expected in [
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        &format!("127.0.0.1:{port}"),
        &first.fingerprint.to_string(),
        &second.fingerprint.to_string(),
        &known_hosts.path.display().to_string(),
        "(line 3)",
        &format!("127.0.0.1:{port} {}", first.fingerprint),
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} not in:\n{message}"
        );
    }
    assert!(message.lines().count() >= 10, "{message}");
    assert_eq!(std::fs::read(&known_hosts.path).unwrap(), before);
}

#[tokio::test]
async fn accept_new_records_without_asking_and_still_refuses_a_changed_one() {
    let first = generated_identity();
    let second = generated_identity();
    let port = serve(vec![first.config.clone(), second.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    trust.accept_new = true;
    trust.ask = Some(never_ask());

    connect_to("127.0.0.1", port, &trust).await.unwrap();
    assert_eq!(
        recorded(&known_hosts.path),
        [(format!("127.0.0.1:{port}"), first.fingerprint)]
    );
    let before = std::fs::read(&known_hosts.path).unwrap();
    let error = connect_to("127.0.0.1", port, &trust).await.unwrap_err();
    assert!(matches!(error, TlsError::HostChanged(_)), "{error:?}");
    assert_eq!(std::fs::read(&known_hosts.path).unwrap(), before);
}

#[tokio::test]
async fn the_same_server_under_another_name_or_port_is_another_entry() {
    let identity = generated_identity();
    let port = serve(vec![identity.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    trust.accept_new = true;
    connect_to("127.0.0.1", port, &trust).await.unwrap();
    connect_to("LOCALHOST", port, &trust).await.unwrap();
    connect_to("localhost", port, &trust).await.unwrap();
    assert_eq!(
        recorded(&known_hosts.path),
        [
            (format!("127.0.0.1:{port}"), identity.fingerprint),
            (format!("localhost:{port}"), identity.fingerprint),
        ]
    );
}

#[tokio::test]
async fn answering_no_refuses_and_records_nothing() {
    let identity = generated_identity();
    let port = serve(vec![identity.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let (ask, asked) = asker(false);
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    trust.ask = Some(ask);
    let error = connect_to("127.0.0.1", port, &trust).await.unwrap_err();
    assert!(matches!(error, TlsError::NotTrusted { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&identity.fingerprint.to_string())
    );
    assert_eq!(asked.lock().unwrap().len(), 1);
    assert!(!known_hosts.path.exists());
}

#[tokio::test]
async fn without_anyone_to_ask_an_unknown_server_is_refused() {
    let identity = generated_identity();
    let port = serve(vec![identity.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let trust = ClientTrust::new(known_hosts.path.clone());
    let error = connect_to("127.0.0.1", port, &trust).await.unwrap_err();
    assert!(matches!(error, TlsError::UnknownHost { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("interactively") && message.contains("--accept-new"),
        "{message}"
    );
    assert!(
        message.contains(&identity.fingerprint.to_string()),
        "{message}"
    );
    assert!(!known_hosts.path.exists());
}

#[tokio::test]
async fn a_bad_known_hosts_line_stops_the_connection() {
    let identity = generated_identity();
    let port = serve(vec![identity.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    std::fs::create_dir_all(known_hosts.path.parent().unwrap()).unwrap();
    std::fs::write(&known_hosts.path, "# comment\nnonsense\n").unwrap();
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    trust.accept_new = true;
    let error = connect_to("127.0.0.1", port, &trust).await.unwrap_err();
    assert!(
        matches!(error, TlsError::KnownHostsSyntax { line: 2, .. }),
        "{error:?}"
    );
}

/// A server config speaking only `version`, presenting `chain` whatever
/// `key` is (rustls's own builder would refuse a key that does not match).
fn server_config(
    version: &'static rustls::SupportedProtocolVersion,
    chain: Vec<CertificateDer<'static>>,
    key: &rcgen::KeyPair,
) -> Arc<rustls::ServerConfig> {
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let signing_key = provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(chain, signing_key);
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
    Arc::new(config)
}

/// A server whose certificate is the recorded one but whose key is not:
/// the fingerprint matches, the handshake signature does not. In TLS 1.2
/// and 1.3 alike, while the real server passes in both.
#[tokio::test]
async fn a_recorded_certificate_without_its_key_fails_the_handshake() {
    let key = rcgen::KeyPair::generate().unwrap();
    let impostor_key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let chain = vec![certificate.der().clone()];
    let fingerprint = Fingerprint::of(certificate.der());

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let real = serve(vec![server_config(version, chain.clone(), &key)]).await;
        let impostor = serve(vec![server_config(version, chain.clone(), &impostor_key)]).await;
        let known_hosts = known_hosts_dir();
        std::fs::create_dir_all(known_hosts.path.parent().unwrap()).unwrap();
        std::fs::write(
            &known_hosts.path,
            format!("127.0.0.1:{real} {fingerprint}\n127.0.0.1:{impostor} {fingerprint}\n"),
        )
        .unwrap();
        let trust = ClientTrust::new(known_hosts.path.clone());

        connect_to("127.0.0.1", real, &trust).await.unwrap();
        let error = connect_to("127.0.0.1", impostor, &trust).await.unwrap_err();
        assert!(
            matches!(error, TlsError::BadCertificate { .. }),
            "{version:?}: {error:?}"
        );
        assert!(
            error.to_string().contains("does not hold its private key"),
            "{version:?}: {error}"
        );
    }
}

// ---------------------------------------------------------------------------
// A CA file

#[tokio::test]
async fn a_ca_file_verifies_the_chain_and_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let test_ca = ca("test CA");
    let identity = leaf_identity(dir.path(), &leaf(&test_ca, &["localhost"], false));
    let port = serve(vec![identity.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    trust.ca_file = Some(write(dir.path(), "ca.pem", &test_ca.pem));
    trust.ask = Some(never_ask());

    connect_to("localhost", port, &trust).await.unwrap();
    assert!(
        !known_hosts.path.exists(),
        "a CA file does not use known hosts"
    );

    // The certificate does not name 127.0.0.1.
    let error = connect_to("127.0.0.1", port, &trust).await.unwrap_err();
    assert!(
        matches!(error, TlsError::BadCertificate { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("127.0.0.1"), "{message}");
}

#[tokio::test]
async fn another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let identity = leaf_identity(dir.path(), &leaf(&ca("test CA"), &["localhost"], false));
    let port = serve(vec![identity.config.clone()]).await;
    let known_hosts = known_hosts_dir();
    let mut trust = ClientTrust::new(known_hosts.path.clone());
    let other_ca = write(dir.path(), "other-ca.pem", &ca("other CA").pem);
    trust.ca_file = Some(other_ca.clone());
    trust.accept_new = true;

    let error = connect_to("localhost", port, &trust).await.unwrap_err();
    assert!(
        matches!(error, TlsError::BadCertificate { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("not signed by the CA in {}", other_ca.display())),
        "{message}"
    );
    assert!(!known_hosts.path.exists(), "never trusted on first use");
}

#[tokio::test]
async fn an_expired_certificate_is_refused_under_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let test_ca = ca("test CA");
    let identity = leaf_identity(dir.path(), &leaf(&test_ca, &["localhost"], true));
    let port = serve(vec![identity.config.clone()]).await;
    let mut trust = ClientTrust::new(known_hosts_dir().path);
    trust.ca_file = Some(write(dir.path(), "ca.pem", &test_ca.pem));
    let error = connect_to("localhost", port, &trust).await.unwrap_err();
    assert!(
        matches!(error, TlsError::BadCertificate { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("it expired"), "{error}");
}

#[tokio::test]
async fn the_generated_certificate_names_the_loopback_addresses() {
    // Its own certificate as the CA file: a way to pin it, which checks
    // the names it carries.
    let dir = tempfile::tempdir().unwrap();
    let identity = load_server_identity(None, None, dir.path()).unwrap();
    let port = serve(vec![identity.config.clone()]).await;
    let mut trust = ClientTrust::new(known_hosts_dir().path);
    trust.ca_file = Some(identity.certificate.clone());
    connect_to("localhost", port, &trust).await.unwrap();
    connect_to("127.0.0.1", port, &trust).await.unwrap();
    let error = connect_to("127.0.0.2", port, &trust).await.unwrap_err();
    assert!(
        matches!(error, TlsError::BadCertificate { .. }),
        "{error:?}"
    );
}

/// A self-signed CA certificate as a server's own, as `openssl req -x509`
/// makes it (CA:TRUE), naming `names` (none: a common name only, as with
/// `-subj /CN=localhost`); its PEM and the identity.
fn openssl_like_identity(dir: &Path, names: &[&str]) -> (PathBuf, ServerIdentity) {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let cert = write(dir, "c.pem", &certificate.pem());
    let key = write(dir, "k.pem", &key.serialize_pem());
    let identity = load_server_identity(Some(&cert), Some(&key), dir).unwrap();
    (cert, identity)
}

#[tokio::test]
async fn a_ca_certificate_given_as_the_ca_file_is_pinned() {
    // With names, they are checked; with none, the pin alone vouches.
    for (names, refused) in [(&["localhost"][..], Some("127.0.0.1")), (&[], None)] {
        let dir = tempfile::tempdir().unwrap();
        let (cert, identity) = openssl_like_identity(dir.path(), names);
        let port = serve(vec![identity.config.clone()]).await;
        let known_hosts = known_hosts_dir();
        let mut trust = ClientTrust::new(known_hosts.path.clone());
        trust.ca_file = Some(cert);
        trust.ask = Some(never_ask());
        connect_to("localhost", port, &trust).await.unwrap();
        match refused {
            Some(host) => {
                let error = connect_to(host, port, &trust).await.unwrap_err();
                assert!(
                    matches!(error, TlsError::BadCertificate { .. }),
                    "{error:?}"
                );
                assert!(error.to_string().contains("not valid for name"), "{error}");
            }
            None => connect_to("127.0.0.1", port, &trust).await.unwrap(),
        }
        assert!(
            !known_hosts.path.exists(),
            "pinned, not trusted on first use"
        );
    }
}

#[tokio::test]
async fn certificate_errors_are_words_with_what_to_do() {
    // A CA certificate as the server's own, signed by the CA given: webpki
    // refuses it as CaUsedAsEndEntity, which must not show as such.
    let dir = tempfile::tempdir().unwrap();
    let test_ca = ca("test CA");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &test_ca.issuer).unwrap();
    let ca_as_leaf = Leaf {
        chain_pem: format!("{}{}", certificate.pem(), test_ca.pem),
        key_pem: key.serialize_pem(),
        der: certificate.der().clone(),
    };
    let port = serve(vec![leaf_identity(dir.path(), &ca_as_leaf).config]).await;
    let mut trust = ClientTrust::new(known_hosts_dir().path);
    trust.ca_file = Some(write(dir.path(), "ca.pem", &test_ca.pem));
    let error = connect_to("localhost", port, &trust).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("it is a CA certificate used as the server's own"),
        "{message}"
    );
    assert!(message.contains("to --ca to pin it"), "{message}");
    assert!(!message.contains("CaUsedAsEndEntity"), "{message}");
    assert!(!message.contains("Other("), "{message}");

    // A certificate naming no host, under a CA: what to do about it.
    let named_nothing = leaf(&test_ca, &[], false);
    let port = serve(vec![leaf_identity(dir.path(), &named_nothing).config]).await;
    let error = connect_to("localhost", port, &trust).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("it names no host (it has no subjectAltName"),
        "{error}"
    );
}

#[tokio::test]
async fn a_bad_ca_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = serve(vec![generated_identity().config]).await;
    let mut trust = ClientTrust::new(known_hosts_dir().path);
    trust.ca_file = Some(dir.path().join("no-such-ca.pem"));
    let error = connect_to("localhost", port, &trust).await.unwrap_err();
    assert!(matches!(error, TlsError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-ca.pem"), "{error}");
    trust.ca_file = Some(write(dir.path(), "garbage.pem", "garbage"));
    let error = connect_to("localhost", port, &trust).await.unwrap_err();
    assert!(matches!(error, TlsError::NotPem { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------
// Servers that do not speak TLS

#[tokio::test]
async fn a_plain_server_is_reported_promptly() {
    // A classic miniftp server greets every connection with its token.
    let port = serve_plain(|mut tcp| async move {
        let _ = tcp.write_all(b"<Ab3X9kQw>\x01\x02\x03\x04\x05\x06").await;
        let _ = tcp.read_to_end(&mut Vec::new()).await;
    })
    .await;
    let mut trust = ClientTrust::new(known_hosts_dir().path);
    trust.handshake_timeout = Duration::from_secs(3600);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(60),
        connect(tcp, "127.0.0.1", port, &trust),
    )
    .await
    .expect("the client gave up at once, not after a timeout")
    .unwrap_err();
    assert!(matches!(error, TlsError::NotTls { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "the server at 127.0.0.1:{port} did not answer TLS"
        )) && message.contains("plain TCP")
            && message.contains("without --tls"),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_closing_during_the_handshake_is_reported() {
    let port = serve_plain(|tcp| async move { drop(tcp) }).await;
    let trust = ClientTrust::new(known_hosts_dir().path);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let error = connect(tcp, "127.0.0.1", port, &trust).await.unwrap_err();
    assert!(matches!(error, TlsError::Closed { .. }), "{error:?}");
    assert!(
        error.to_string().contains("closed the connection"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out() {
    let port = serve_plain(|mut tcp| async move {
        let _ = tcp.read_to_end(&mut Vec::new()).await;
    })
    .await;
    let mut trust = ClientTrust::new(known_hosts_dir().path);
    trust.handshake_timeout = Duration::from_secs(7);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let error = connect(tcp, "127.0.0.1", port, &trust).await.unwrap_err();
    assert!(
        matches!(error, TlsError::HandshakeTimeout { timeout, .. } if timeout == Duration::from_secs(7)),
        "{error:?}"
    );
    assert!(error.to_string().contains("within 7 s"), "{error}");
}

#[tokio::test]
async fn a_host_tls_cannot_name_is_refused_before_the_handshake() {
    let port = serve_plain(|_| async {}).await;
    let trust = ClientTrust::new(known_hosts_dir().path);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let error = connect(tcp, "not a host!", port, &trust).await.unwrap_err();
    assert!(matches!(error, TlsError::InvalidHost { .. }), "{error:?}");
}
