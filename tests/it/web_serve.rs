//! The web front as `miniftp serve --http` runs it: HTTPS with the TCP
//! protocol's certificate (and a `Secure` session cookie), and the real
//! binary serving both listeners on one root until SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use miniftp::accounts::Accounts;
use miniftp::config::LoginFailurePolicy;
use miniftp::tls::load_server_identity;
use miniftp::{Access, ServerConfig};

use crate::support::web::WebServer;

/// `curl` (which CI has), failing on nothing: its standard output.
fn curl(arguments: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-s", "-k", "--max-time", "60"])
        .args(arguments)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_makes_the_page_https_with_the_same_certificate() {
    let state = tempfile::TempDir::new().unwrap();
    let identity = load_server_identity(None, None, state.path()).unwrap();
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    let server = WebServer::start(ServerConfig {
        tls: Some(Arc::clone(&identity.config)),
        accounts: Some(Arc::new(accounts)),
        login_failures: LoginFailurePolicy {
            first_delay: Duration::ZERO,
            ..LoginFailurePolicy::default()
        },
        ..ServerConfig::default()
    })
    .await;
    server.write("alice/a.txt", b"over TLS");
    let url = format!("https://{}", server.http);
    let certificate = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let output = Command::new("curl")
                .args(["-s", "-k", "-v", "-o", "/dev/null", &format!("{url}/")])
                .output()
                .expect("curl");
            String::from_utf8_lossy(&output.stderr).into_owned()
        }
    })
    .await
    .unwrap();
    assert!(
        certificate.contains("SSL connection using TLS"),
        "{certificate}"
    );
    let (file, plain, cookie) = tokio::task::spawn_blocking({
        let (url, http) = (url.clone(), server.http);
        move || {
            let file = curl(&["-u", "alice:alice's secret", &format!("{url}/a.txt")]);
            let plain = curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{http}/"),
            ]);
            let page = curl(&[&format!("{url}/.miniftp/login")]);
            let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
            let token = &page[start..start + 64];
            let headers = curl(&[
                "-D",
                "-",
                "-o",
                "/dev/null",
                "--data",
                &format!("user=alice&password=alice%27s+secret&next=%2F&csrf={token}"),
                &format!("{url}/.miniftp/login"),
            ]);
            (file, plain, headers)
        }
    })
    .await
    .unwrap();
    assert_eq!(file, "over TLS");
    assert_ne!(plain, "200", "no plain HTTP on a TLS listener");
    let cookie = cookie
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {cookie}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_http_shares_one_root_between_both_listeners() {
    let root = tempfile::TempDir::new().unwrap();
    std::fs::write(root.path().join("shared.txt"), b"one root").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_miniftp"))
        .arg("serve")
        .arg(root.path())
        .args(["--port", "0", "--http", "0", "--quiet", "--read-only"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let tcp = lines.next().unwrap().unwrap();
    let web = lines.next().unwrap().unwrap();
    assert!(tcp.starts_with("miniftp: serving "), "{tcp}");
    let web = web
        .strip_prefix("miniftp: web page and WebDAV on ")
        .unwrap_or_else(|| panic!("{web}"))
        .trim_end_matches('/')
        .to_owned();
    let tcp_address = tcp.rsplit_once(" on ").unwrap().1.to_owned();
    let (got, put) = tokio::task::spawn_blocking({
        let web = web.clone();
        move || {
            (
                curl(&[&format!("{web}/shared.txt")]),
                curl(&[
                    "-T",
                    "/dev/null",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("{web}/new.txt"),
                ]),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(got, "one root");
    assert_eq!(put, "403", "--read-only holds for the web front");
    let mut client = miniftp::client::Client::connect(&tcp_address, Default::default())
        .await
        .unwrap();
    let names: Vec<String> = client
        .list("/")
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(names, ["shared.txt"]);
    drop(client);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
