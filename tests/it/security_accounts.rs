//! Accounts and permissions: logins, homes that jail each account, read-only
//! accounts and servers, anonymous access beside accounts, failed logins
//! slowed down then banned. (That passwords stay out of the logs is shown
//! in `tests/log_secrets.rs`, a binary of its own for its global logger.)

use std::sync::Arc;
use std::time::Duration;

use miniftp::accounts::Accounts;
use miniftp::client::{
    Client, ClientConfig, ClientError, Credentials, ErrorCode, Password, Protocol, TransferOptions,
};
use miniftp::config::{AnonymousAccess, LoginFailurePolicy};
use miniftp::operation::Operation;
use miniftp::{Access, ServerConfig};
use tempfile::TempDir;

use miniftp::protocol::extended::Message;

use crate::support::frames::FrameClient;
use crate::support::{RawClient, TestServer, snapshot};

/// alice (read-write, home `alice`), bob (read-write, home `bob`) and
/// carol (read-only, home `shared`).
fn accounts() -> Arc<Accounts> {
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    accounts
        .add("bob", "bob's secret", None, Access::ReadWrite)
        .unwrap();
    accounts
        .add("carol", "carol's secret", Some("shared"), Access::ReadOnly)
        .unwrap();
    Arc::new(accounts)
}

/// A server with those accounts, no delay on failed logins (the growing
/// delay has its own tests with paused time), and files in each home.
async fn server_with(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = ServerConfig {
        accounts: Some(accounts()),
        login_failures: LoginFailurePolicy {
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            ..LoginFailurePolicy::default()
        },
        ..ServerConfig::default()
    };
    configure(&mut config);
    let server = TestServer::start_with(config).await;
    server.write("alice/a.txt", b"alice's file");
    server.write("bob/b.txt", b"bob's file");
    server.write("bob/inner/deep.txt", b"deep");
    server.write("shared/s.txt", b"shared file");
    server.write("public/p.txt", b"public file");
    server.write("top.txt", b"at the root");
    server
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

async fn log_in(server: &TestServer, user: &str) -> Client {
    let password = format!("{user}'s secret");
    Client::connect(&server.address.to_string(), as_user(user, &password))
        .await
        .unwrap_or_else(|error| panic!("{user} logs in: {error}"))
}

/// The names a listing shows, in its order.
async fn names_in(client: &mut Client, path: &str) -> Vec<String> {
    let entries = client.list(path).await.unwrap();
    entries.into_iter().map(|entry| entry.name).collect()
}

fn code(error: &ClientError) -> Option<ErrorCode> {
    error.code()
}

#[tokio::test]
async fn an_account_logs_in_to_its_home() {
    let server = server_with(|_| {}).await;
    let mut alice = log_in(&server, "alice").await;
    assert_eq!(alice.directory(), "/");
    assert_eq!(alice.welcome().entries, ["a.txt"]);
    assert_eq!(names_in(&mut alice, "/").await, ["a.txt"]);
    let mut sink = Vec::new();
    alice.download("a.txt", &mut sink, |_| {}).await.unwrap();
    assert_eq!(sink, b"alice's file");
    alice
        .upload(&b"new"[..], 3, "new.txt", |_| {})
        .await
        .unwrap();
    assert_eq!(server.read("alice/new.txt"), b"new");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_names_are_refused_alike() {
    let server = server_with(|_| {}).await;
    let address = server.address.to_string();
    let wrong = Client::connect(&address, as_user("alice", "not it"))
        .await
        .err()
        .expect("a wrong password is refused");
    let unknown = Client::connect(&address, as_user("mallory", "anything"))
        .await
        .err()
        .expect("an unknown name is refused");
    assert_eq!(code(&wrong), Some(ErrorCode::LoginFailed));
    assert_eq!(code(&unknown), Some(ErrorCode::LoginFailed));
    assert_eq!(wrong.to_string(), unknown.to_string(), "never say which");
    assert!(
        wrong.to_string().contains("wrong name or password"),
        "{wrong}"
    );
}

#[tokio::test]
async fn homes_are_jails_for_every_command() {
    let server = server_with(|_| {}).await;
    // A link in alice's home to bob's: the jail must refuse to follow it.
    server.symlink("../bob", "alice/to-bob");
    let before = snapshot(&server.path("bob"));
    let mut alice = log_in(&server, "alice").await;

    // Climbing out is clamped at the home: these name alice's own entries.
    alice.change_directory("..").await.unwrap();
    assert_eq!(alice.directory(), "/");
    alice.change_directory("/../..").await.unwrap();
    assert_eq!(alice.directory(), "/");

    let outside = [
        "../bob/b.txt",
        "/../bob/b.txt",
        "to-bob/b.txt",
        "../../top.txt",
    ];
    for path in outside {
        assert!(alice.size(path).await.is_err(), "info {path}");
        assert!(alice.stat(path).await.is_err(), "stat {path}");
        let mut sink = Vec::new();
        let downloaded = alice.download(path, &mut sink, |_| {}).await;
        assert!(downloaded.is_err() && sink.is_empty(), "dl {path}");
        assert!(alice.remove(path).await.is_err(), "rm {path}");
        assert!(alice.remove_tree(path).await.is_err(), "rm -r {path}");
        assert!(
            alice.rename(path, "stolen.txt").await.is_err(),
            "mv {path} in"
        );
    }
    assert!(alice.list("to-bob").await.is_err(), "ls through a link");
    assert!(
        alice.change_directory("to-bob").await.is_err(),
        "cd through a link"
    );
    assert!(alice.list("../bob").await.is_err(), "ls ../bob");

    // Writes aimed outside land inside the home, or are refused.
    let _ = alice.make_directory("../bob/planted").await;
    let _ = alice.make_directories("to-bob/planted/deeper").await;
    let _ = alice.rename("a.txt", "../bob/a.txt").await;
    let _ = alice.rename("a.txt", "to-bob/a.txt").await;
    let _ = alice.upload(&b"x"[..], 1, "../bob/b.txt", |_| {}).await;
    let local = TempDir::new().unwrap();
    let x = local.path().join("x");
    std::fs::write(&x, b"x").unwrap();
    let resume = TransferOptions { resume: true };
    let _ = alice.upload_file(&x, "to-bob/b.txt", resume, |_| {}).await;
    let _ = alice
        .upload_file(&x, "../bob/inner/deep.txt", resume, |_| {})
        .await;

    assert_eq!(
        snapshot(&server.path("bob")),
        before,
        "bob's home is untouched"
    );
    assert_eq!(server.read("top.txt"), b"at the root");
    // And bob still sees exactly his own files.
    let mut bob = log_in(&server, "bob").await;
    assert_eq!(names_in(&mut bob, "/").await, ["inner", "b.txt"]);
}

#[tokio::test]
async fn a_read_only_account_changes_nothing() {
    let server = server_with(|_| {}).await;
    let before = snapshot(server.root.path());
    let mut carol = log_in(&server, "carol").await;
    let mut sink = Vec::new();
    carol
        .download("s.txt", &mut sink, |_| {})
        .await
        .expect("reading is allowed");
    assert_eq!(sink, b"shared file");
    assert_every_change_is_refused(&mut carol).await;
    assert_eq!(snapshot(server.root.path()), before);
}

#[tokio::test]
async fn a_read_only_server_changes_nothing_in_either_protocol() {
    let server = TestServer::start_with(ServerConfig {
        read_only: true,
        ..ServerConfig::default()
    })
    .await;
    server.write("s.txt", b"shared file");
    server.write("dir/inner.txt", b"inner");
    let before = snapshot(server.root.path());
    let mut extended = Client::connect(&server.address.to_string(), ClientConfig::default())
        .await
        .unwrap();
    assert_every_change_is_refused(&mut extended).await;

    let mut classic = RawClient::connect(server.address).await;
    for command in ["mkdir new", "rm s.txt", "rm dir", "mv s.txt t.txt"] {
        let status = classic.command(command).await;
        assert!(
            status.starts_with("error: permission denied (read-only access)"),
            "{command}: {status}"
        );
    }
    let status = classic.upload("s.txt", b"replaced").await;
    assert!(
        status.starts_with("error: permission denied (read-only access)"),
        "{status}"
    );
    let (data, status) = classic.download("s.txt").await;
    assert_eq!((&data[..], status.as_str()), (&b"shared file"[..], "/"));
    assert_eq!(snapshot(server.root.path()), before);
}

/// Tries every mutating command (each refused as a permission problem).
async fn assert_every_change_is_refused(client: &mut Client) {
    let refused = |result: Result<(), ClientError>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(
            code(&error),
            Some(ErrorCode::PermissionDenied),
            "{what}: {error}"
        );
        assert!(error.to_string().contains("read-only"), "{what}: {error}");
    };
    refused(client.make_directory("new").await, "mkdir");
    refused(client.make_directories("new/deeper").await, "mkdir -p");
    refused(client.remove("s.txt").await, "rm");
    refused(client.remove_tree("dir").await, "rm -r");
    refused(client.rename("s.txt", "moved.txt").await, "mv");
    let local = TempDir::new().unwrap();
    let replacement = local.path().join("replacement");
    std::fs::write(&replacement, b"replaced").unwrap();
    for resume in [false, true] {
        let uploaded = client
            .upload_file(&replacement, "s.txt", TransferOptions { resume }, |_| {})
            .await
            .map(drop);
        refused(uploaded, "ul");
    }
    // The connection is still in step.
    assert_eq!(client.size("s.txt").await.unwrap(), 11);
}

#[tokio::test]
async fn without_a_login_nothing_is_allowed() {
    let server = server_with(|_| {}).await;
    // Our client, without an account: the extended protocol says why.
    let mut client = Client::connect(&server.address.to_string(), ClientConfig::default())
        .await
        .unwrap();
    assert!(client.welcome().entries.is_empty(), "the tree is not shown");
    for error in [
        client.list("/").await.unwrap_err(),
        client.stat("top.txt").await.unwrap_err(),
        client.make_directory("x").await.unwrap_err(),
        client
            .upload(&b"x"[..], 1, "x", |_| {})
            .await
            .map(drop)
            .unwrap_err(),
    ] {
        assert_eq!(code(&error), Some(ErrorCode::LoginRequired), "{error}");
    }
    // A classic client: told so, and kept in step across payloads.
    let mut classic = RawClient::connect(server.address).await;
    let (data, status) = classic.info("top.txt").await;
    assert_eq!(data, "");
    assert!(status.starts_with("error: login required"), "{status}");
    let status = classic.upload("planted.txt", b"data").await;
    assert!(status.starts_with("error: login required"), "{status}");
    let (data, status) = classic.download("top.txt").await;
    assert!(
        data.is_empty() && status.starts_with("error: login required"),
        "{status}"
    );
    assert!(!server.exists("planted.txt"));
    assert!(!server.exists("x"));
}

#[tokio::test]
async fn a_login_must_come_within_the_handshake_timeout() {
    let server = server_with(|config| config.handshake_timeout = Duration::from_millis(200)).await;
    let mut classic = RawClient::connect(server.address).await;
    let lines = classic
        .read_until_closed_within(Duration::from_secs(10))
        .await;
    assert_eq!(lines, ["error: login timed out"]);
}

#[tokio::test]
async fn anonymous_access_is_the_way_in_for_classic_clients() {
    let server = server_with(|config| {
        config.anonymous = Some(AnonymousAccess {
            access: Access::ReadOnly,
            home: "public".to_owned(),
        })
    })
    .await;
    let mut classic = RawClient::connect(server.address).await;
    let (data, status) = classic.download("p.txt").await;
    assert_eq!((&data[..], status.as_str()), (&b"public file"[..], "/"));
    let (_, status) = classic.download("../alice/a.txt").await;
    assert!(status.starts_with("error: no such file"), "{status}");
    let status = classic.upload("q.txt", b"data").await;
    assert!(
        status.starts_with("error: permission denied (read-only access)"),
        "{status}"
    );
    assert!(!server.exists("public/q.txt"));
    // An account may still log in, and sees its home, not the public one.
    let alice = log_in(&server, "alice").await;
    assert_eq!(alice.welcome().entries, ["a.txt"]);
}

#[tokio::test]
async fn repeated_failures_ban_the_address() {
    let server = server_with(|config| {
        config.login_failures.ban_after = 3;
        config.login_failures.ban_for = Duration::from_secs(3600);
    })
    .await;
    let address = server.address.to_string();
    for attempt in 1..=3 {
        let error = Client::connect(&address, as_user("alice", "guess"))
            .await
            .err()
            .unwrap();
        assert_eq!(
            code(&error),
            Some(ErrorCode::LoginFailed),
            "attempt {attempt}"
        );
        if attempt == 3 {
            assert!(error.to_string().contains("banned"), "{error}");
        }
    }
    // Banned: even the right password, even a connection without a login.
    let error = Client::connect(&address, as_user("alice", "alice's secret"))
        .await
        .err()
        .expect("banned");
    assert!(
        error.to_string().contains("too many failed logins"),
        "{error}"
    );
    let mut raw = RawClient::connect(server.address).await;
    assert!(
        raw.welcome
            .starts_with("error: too many failed logins from your address; try again in"),
        "{}",
        raw.welcome
    );
    assert!(raw.read_until_closed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_sent_at_once_check_no_more_passwords_than_the_ban_allows() {
    let server = server_with(|_| {}).await;
    let guesses = 30;
    let mut clients = Vec::new();
    for _ in 0..guesses {
        clients.push(FrameClient::connect(&server).await);
    }
    // 29 wrong guesses and the right password, all sent before any answer.
    for (index, client) in clients.iter_mut().enumerate() {
        let password = match index {
            29 => "alice's secret".to_owned(),
            _ => format!("guess {index}"),
        };
        let login = Message::Request(Operation::Login {
            user: "alice".into(),
            password: Password::new(password),
        });
        client.send(1, login).await;
    }
    let mut checked = 0;
    for client in &mut clients {
        match client.receive().await.1 {
            Message::Done { .. } => checked += 1,
            Message::Failed { code, message } => {
                assert_eq!(code, ErrorCode::LoginFailed, "{message}");
                if message.contains("wrong name or password") {
                    checked += 1;
                }
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(
        checked <= 5,
        "{checked} passwords were checked; the ban allows 5 guesses"
    );
}

#[tokio::test]
async fn a_login_at_one_account_forgives_no_failure_at_another() {
    let server = server_with(|config| {
        config.login_failures.ban_after = 3;
        config.login_failures.ban_for = Duration::from_secs(3600);
    })
    .await;
    let address = server.address.to_string();
    for attempt in 1..=3 {
        let error = Client::connect(&address, as_user("alice", "guess"))
            .await
            .err()
            .unwrap();
        assert_eq!(code(&error), Some(ErrorCode::LoginFailed));
        if attempt < 3 {
            // bob knows his password: his logins forgive him, not alice's guesser.
            log_in(&server, "bob").await;
        } else {
            assert!(error.to_string().contains("banned"), "{error}");
        }
    }
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server = TestServer::start_with(ServerConfig {
        max_connections_per_ip: Some(2),
        per_ip_exempts_loopback: false,
        ..ServerConfig::default()
    })
    .await;
    let mut first = RawClient::connect(server.address).await;
    let mut second = RawClient::connect(server.address).await;
    let mut third = RawClient::connect(server.address).await;
    assert_eq!(
        third.welcome,
        "error: too many connections from your address, try again later"
    );
    assert!(third.read_until_closed().await.is_empty());
    // The first two are served as usual.
    assert_eq!(first.command("mkdir a").await, "/");
    assert_eq!(second.command("mkdir b").await, "/");
}

#[tokio::test]
async fn a_classic_only_connection_cannot_log_in() {
    let server = server_with(|_| {}).await;
    let config = ClientConfig {
        protocol: Protocol::Classic,
        ..as_user("alice", "alice's secret")
    };
    let error = Client::connect(&server.address.to_string(), config)
        .await
        .err()
        .expect("no login in the classic protocol");
    assert!(matches!(error, ClientError::LoginUnsupported), "{error}");
}

#[tokio::test]
async fn homes_are_made_at_start_and_never_by_a_login() {
    let root = TempDir::new().unwrap();
    let server = TestServer::serve(
        root,
        ServerConfig {
            accounts: Some(accounts()),
            read_only: true,
            ..ServerConfig::default()
        },
    )
    .await;
    // The server makes the homes before it accepts anyone.
    let alice = log_in(&server, "alice").await;
    assert!(alice.welcome().entries.is_empty());
    for home in ["alice", "bob", "shared"] {
        assert!(server.path(home).is_dir(), "{home}");
    }
    // A home removed since is not made again by a login: on this
    // read-only server, a client changes nothing on disk.
    std::fs::remove_dir(server.path("bob")).unwrap();
    let error = Client::connect(&server.address.to_string(), as_user("bob", "bob's secret"))
        .await
        .err()
        .expect("no home");
    assert!(
        error.to_string().contains("cannot open the account's home"),
        "{error}"
    );
    assert!(!server.exists("bob"));
}

/// Trickles `bytes` one at a time, 100 ms apart (each well within any read
/// timeout), until the server stops taking them.
async fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    for byte in bytes {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if writer.write_all(&[byte]).await.is_err() {
            return;
        }
    }
}

/// Everything read until the server closes, within `guard`.
async fn read_to_close(mut reader: tokio::net::tcp::OwnedReadHalf, guard: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    tokio::time::timeout(guard, reader.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .ok();
    all
}

#[tokio::test(start_paused = true)]
async fn a_client_trickling_a_payload_cannot_outlast_its_login() {
    let server = server_with(|config| config.handshake_timeout = Duration::from_secs(1)).await;
    // Classic: an upload whose payload never ends.
    let mut classic = RawClient::connect(server.address).await;
    classic.send("ul x").await;
    let (stream, unread) = classic.connection.into_parts();
    assert!(unread.is_empty());
    let (reader, writer) = stream.into_split();
    let trickling = tokio::spawn(trickle(writer, vec![b'a'; 1000]));
    let said = read_to_close(reader, Duration::from_secs(60)).await;
    let said = String::from_utf8_lossy(&said);
    assert!(said.starts_with("error: login timed out"), "{said:?}");
    trickling.abort();

    // Extended: a data frame as long as a frame may be before a login,
    // that never ends.
    use miniftp::protocol::extended::{Header, Kind, upgrade_accepted, upgrade_request};
    let mut raw = RawClient::connect(server.address).await;
    assert_eq!(raw.command(&upgrade_request()).await, upgrade_accepted());
    let header = Header {
        kind: Kind::Data,
        id: 1,
        length: 4096,
    };
    raw.write_raw(&header.encode()).await;
    let (stream, unread) = raw.connection.into_parts();
    assert!(unread.is_empty());
    let (reader, writer) = stream.into_split();
    let trickling = tokio::spawn(trickle(writer, vec![0; 1000]));
    let said = read_to_close(reader, Duration::from_secs(60)).await;
    assert_eq!(said[0], Kind::Failed as u8, "{said:?}");
    assert!(String::from_utf8_lossy(&said).contains("login timed out"));
    trickling.abort();
}

/// One of this machine's own addresses that is not loopback, if it has one
/// with a route (the source address a UDP socket would use).
fn non_loopback_address() -> Option<std::net::IpAddr> {
    [
        "192.0.2.1:9",
        "10.0.0.1:9",
        "172.16.0.1:9",
        "198.51.100.1:9",
    ]
    .into_iter()
    .find_map(|target| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect(target).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    })
}

#[tokio::test]
async fn a_password_in_clear_from_another_host_is_refused() {
    let Some(ip) = non_loopback_address() else {
        // Nothing to test without a second address; CI must have one.
        assert!(
            std::env::var_os("MINIFTP_CI").is_none(),
            "this machine has no address beyond loopback, and CI needs one for this test"
        );
        eprintln!("SKIPPED: this machine has no address beyond loopback");
        return;
    };
    let root = TempDir::new().unwrap();
    let storage = miniftp::Storage::open(root.path()).unwrap();
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = ServerConfig {
        accounts: Some(accounts()),
        ..ServerConfig::default()
    };
    tokio::spawn(miniftp::server::run(
        listener,
        storage,
        config,
        shutdown.clone(),
    ));
    // Our client will not send it at all...
    let error = Client::connect(&address, as_user("alice", "alice's secret"))
        .await
        .err()
        .expect("refused by the client");
    assert!(
        matches!(error, ClientError::InsecureLogin { .. }),
        "{error:?}"
    );
    // ...and the server refuses it when a client does.
    let insecure = ClientConfig {
        allow_insecure_login: true,
        ..as_user("alice", "alice's secret")
    };
    let error = Client::connect(&address, insecure)
        .await
        .err()
        .expect("refused by the server");
    assert_eq!(code(&error), Some(ErrorCode::PermissionDenied), "{error}");
    assert!(error.to_string().contains("logins need TLS"), "{error}");
    shutdown.cancel();
}
