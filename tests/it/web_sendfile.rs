//! The web front's own answers on plain TCP: a file's bytes go by
//! `sendfile`, with the very head hyper sends for the same request (the
//! comparison runs against the same root served over TLS and with a rate
//! limit, where hyper answers everything); keep-alive and pipelined
//! requests, handed to hyper with the bytes read when they are not file
//! downloads (WebDAV, the page's forms, uploads); heads too large; a
//! client that leaves mid-body; a head trickled a byte at a
//! time or never finished; a file truncated or swapped for a FIFO while it
//! is sent; shutdown during a download.
//!
//! Each test that reads the log runs on one thread, where the server's
//! tasks log too.

use std::time::Duration;

use miniftp::ServerConfig;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::support::logs::Log;
use crate::support::pseudo_random_bytes;
use crate::support::web::{Answer, KeepAlive, WebServer, request};

/// What the connection logs for each file it sends itself.
const SENT: &str = "file sent by sendfile";

/// A server on `server`'s root that hyper serves whole: a rate limit no
/// test reaches still keeps the fast path off, as on a capped stream.
async fn hyper_only(server: &WebServer) -> WebServer {
    server
        .beside(ServerConfig {
            rate_limit: Some(1 << 40),
            ..ServerConfig::default()
        })
        .await
}

/// A request head with a `Host`, and `extra` header lines.
fn head(method: &str, path: &str, extra: &[&str]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// The headers of an answer but its date, in their order; and whether it
/// had a date.
fn without_date(answer: &Answer) -> (Vec<(String, String)>, bool) {
    let mut dated = false;
    let headers = answer
        .headers
        .iter()
        .filter(|(name, _)| {
            let date = name.eq_ignore_ascii_case("date");
            dated |= date;
            !date
        })
        .cloned()
        .collect();
    (headers, dated)
}

/// Asserts two answers to the same request are the same, date aside.
fn assert_same(fast: &Answer, slow: &Answer, what: &str) {
    assert_eq!(fast.status, slow.status, "{what}");
    let ((fast_headers, fast_dated), (slow_headers, slow_dated)) =
        (without_date(fast), without_date(slow));
    assert_eq!(fast_headers, slow_headers, "{what}");
    assert!(fast_dated && slow_dated, "{what}: both carry a date");
    assert!(fast.body == slow.body, "{what}: the bodies differ");
}

/// The executor's download lines, as (bytes, outcome).
fn downloads(log: &Log) -> Vec<(u64, String)> {
    log.operations("download")
        .iter()
        .map(|line| {
            (
                line["bytes"].as_u64().unwrap(),
                line["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_file_sent_by_sendfile_has_the_head_and_bytes_hyper_sends() {
    let (log, _guard) = Log::capture();
    let fast = WebServer::start(ServerConfig::default()).await;
    let slow = hyper_only(&fast).await;
    let data = pseudo_random_bytes(300_000, 5);
    fast.write("r\u{e9}sum\u{e9} \u{2603}.txt", &data);
    fast.write("empty.bin", b"");
    fast.write("page.html", b"<script>alert(1)</script>");
    let name = "/r%C3%A9sum%C3%A9%20%E2%98%83.txt";
    let tag = request(slow.http, &format!("HEAD {name} HTTP/1.1"), b"")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let (fresh, stale) = (format!("If-Range: {tag}"), "If-Range: \"other\"".to_owned());
    let none_match = format!("If-None-Match: {tag}");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("GET", name.to_owned(), vec![]),
        ("GET", format!("{name}?download"), vec![]),
        ("GET", name.to_owned(), vec!["Range: bytes=1000-1999"]),
        ("GET", name.to_owned(), vec!["Range: bytes=-500"]),
        ("GET", name.to_owned(), vec!["Range: bytes=299000-"]),
        ("GET", name.to_owned(), vec!["Range: bytes=0-0,5-9"]),
        ("GET", name.to_owned(), vec!["Range: bytes=0-9", &fresh]),
        ("GET", name.to_owned(), vec!["Range: bytes=0-9", &stale]),
        ("GET", name.to_owned(), vec!["Range: bytes=300000-"]),
        ("GET", name.to_owned(), vec![&none_match]),
        ("HEAD", name.to_owned(), vec![]),
        ("HEAD", name.to_owned(), vec!["Range: bytes=10-19"]),
        ("GET", "/empty.bin".to_owned(), vec![]),
        ("GET", "/page.html".to_owned(), vec!["Accept: text/html"]),
        ("GET", "/missing.txt".to_owned(), vec![]),
    ];
    // Each request three ways: alone on a connection kept open, then with
    // `Connection: close` (the answer says so too), then pipelined after
    // another one.
    let mut by_sendfile = 0;
    for (method, path, extra) in &cases {
        let what = format!("{method} {path} {extra:?}");
        let alone = head(method, path, extra);
        let mut closing = extra.clone();
        closing.push("Connection: close");
        let closing = head(method, path, &closing);
        let pipelined = format!("{}{alone}", head("HEAD", "/page.html", &[]));
        let mut answers = Vec::new();
        for server in [&slow, &fast] {
            let mut client = KeepAlive::connect(server.http).await;
            client.send(alone.as_bytes()).await;
            let first = client.answer(*method == "HEAD").await;
            let mut client = KeepAlive::connect(server.http).await;
            client.send(closing.as_bytes()).await;
            let closed = client.answer(*method == "HEAD").await;
            assert!(client.until_closed().await.is_empty(), "{what}: closed");
            let mut client = KeepAlive::connect(server.http).await;
            client.send(pipelined.as_bytes()).await;
            client.answer(true).await;
            let after = client.answer(*method == "HEAD").await;
            answers.push((first, closed, after));
        }
        let ((slow_alone, slow_closed, slow_after), (fast_alone, fast_closed, fast_after)) =
            (&answers[0], &answers[1]);
        assert_same(fast_alone, slow_alone, &what);
        assert_same(fast_closed, slow_closed, &format!("{what}, closing"));
        assert_same(fast_after, slow_after, &format!("{what}, pipelined"));
        assert_eq!(fast_closed.header("connection"), Some("close"), "{what}");
        if *method == "GET" && matches!(fast_alone.status, 200 | 206) {
            assert_eq!(
                fast_alone.header("content-length"),
                Some(fast_alone.body.len().to_string().as_str())
            );
            by_sendfile += 3;
        }
        if *method == "HEAD" {
            assert!(fast_alone.header("content-length").is_some(), "{what}");
        }
    }
    // Ten of the requests are answered with a file's bytes (the empty
    // file's none), three times each, by sendfile on the fast server only.
    assert_eq!(by_sendfile, 3 * 10);
    assert_eq!(log.messages(SENT).len(), by_sendfile);
    // Both ways finish every download in the executor as a success.
    let lines = downloads(&log);
    assert_eq!(lines.len(), 2 * by_sendfile);
    assert!(
        lines.iter().all(|(_, outcome)| outcome == "ok"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_hyper_sends_the_same_file_answer() {
    let state = tempfile::TempDir::new().unwrap();
    let identity = miniftp::tls::load_server_identity(None, None, state.path()).unwrap();
    let plain = WebServer::start(ServerConfig::default()).await;
    let tls = plain
        .beside(ServerConfig {
            tls: Some(std::sync::Arc::clone(&identity.config)),
            ..ServerConfig::default()
        })
        .await;
    let data = pseudo_random_bytes(1 << 20, 9);
    plain.write("d\u{e9}j\u{e0} vu.bin", &data);
    let (plain_url, tls_url) = (
        format!("http://{}/d%C3%A9j%C3%A0%20vu.bin", plain.http),
        format!("https://{}/d%C3%A9j%C3%A0%20vu.bin", tls.http),
    );
    let out = tempfile::TempDir::new().unwrap();
    let fetch = |url: String, name: &str, range: Option<&str>| {
        let (headers, body) = (
            out.path().join(format!("{name}.head")),
            out.path().join(name),
        );
        let mut command = std::process::Command::new("curl");
        command.args(["-s", "-k", "--max-time", "60", "-D"]);
        command.arg(&headers).arg("-o").arg(&body).arg(&url);
        if let Some(range) = range {
            command.args(["-r", range]);
        }
        async move {
            let status = tokio::task::spawn_blocking(move || command.status().unwrap())
                .await
                .unwrap();
            assert!(status.success(), "curl {url}");
            let head = std::fs::read(&headers).unwrap();
            let mut answer = crate::support::web::parse(&head);
            answer.body = std::fs::read(&body).unwrap();
            answer
        }
    };
    for range in [None, Some("100-200099"), Some("-10")] {
        let over_tls = fetch(tls_url.clone(), "tls", range).await;
        let over_tcp = fetch(plain_url.clone(), "tcp", range).await;
        assert_same(&over_tcp, &over_tls, &format!("{range:?}"));
        let expected = match range {
            None => &data[..],
            Some("-10") => &data[data.len() - 10..],
            Some(_) => &data[100..200_100],
        };
        assert!(over_tcp.body == expected, "{range:?}");
    }
}

#[tokio::test]
async fn one_connection_serves_downloads_then_a_pipelined_listing_and_upload() {
    let (log, _guard) = Log::capture();
    let server = WebServer::start(ServerConfig::default()).await;
    let a = pseudo_random_bytes(200_000, 1);
    let b = pseudo_random_bytes(70_000, 2);
    server.write("a.bin", &a);
    server.write("b.txt", &b);
    let mut client = KeepAlive::connect(server.http).await;
    // One after another, each answered by sendfile on the same connection.
    client.send(head("GET", "/a.bin", &[]).as_bytes()).await;
    assert!(client.answer(false).await.body == a);
    client
        .send(head("GET", "/b.txt", &["Range: bytes=5-9"]).as_bytes())
        .await;
    assert_eq!(client.answer(false).await.body, &b[5..10]);
    client.send(head("HEAD", "/a.bin", &[]).as_bytes()).await;
    let answer = client.answer(true).await;
    assert_eq!(answer.header("content-length"), Some("200000"));
    // Three downloads written at once.
    let three = [
        head("GET", "/b.txt", &[]),
        head("GET", "/a.bin", &["Range: bytes=100-"]),
        head("GET", "/b.txt", &[]),
    ]
    .concat();
    client.send(three.as_bytes()).await;
    assert!(client.answer(false).await.body == b);
    assert!(client.answer(false).await.body == a[100..]);
    assert!(client.answer(false).await.body == b);
    assert_eq!(log.messages(SENT).len(), 5);
    // A download, a listing and an upload written at once: the download by
    // sendfile, the rest by hyper, handed the bytes already read.
    let upload = pseudo_random_bytes(50_000, 3);
    let mut mixed = [
        head("GET", "/a.bin", &[]),
        head("GET", "/", &["Accept: text/html"]),
        head(
            "PUT",
            "/up.bin",
            &[&format!("Content-Length: {}", upload.len())],
        ),
    ]
    .concat()
    .into_bytes();
    mixed.extend_from_slice(&upload);
    client.send(&mixed).await;
    assert!(client.answer(false).await.body == a);
    let listing = client.answer(false).await;
    assert_eq!(listing.status, 200);
    assert!(listing.text().contains("b.txt"), "{}", listing.text());
    let put = client.answer(false).await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(std::fs::read(server.path("up.bin")).unwrap(), upload);
    assert_eq!(log.messages(SENT).len(), 6);
    // Hyper gave the socket back after each: the next download goes by
    // sendfile again.
    client.send(head("GET", "/up.bin", &[]).as_bytes()).await;
    assert!(client.answer(false).await.body == upload);
    assert_eq!(log.messages(SENT).len(), 7);
    // A request whose end only hyper can find (chunks) gives hyper the
    // rest of the connection; it serves downloads on it too.
    let chunked = head("PUT", "/chunked.txt", &["Transfer-Encoding: chunked"]);
    client
        .send(format!("{chunked}5\r\nhello\r\n0\r\n\r\n").as_bytes())
        .await;
    assert_eq!(client.answer(false).await.status, 201);
    client
        .send(head("GET", "/chunked.txt", &[]).as_bytes())
        .await;
    assert_eq!(client.answer(false).await.body, b"hello");
    client.send(head("GET", "/b.txt", &[]).as_bytes()).await;
    assert!(client.answer(false).await.body == b);
    assert_eq!(log.messages(SENT).len(), 7);
    let lines = downloads(&log);
    assert_eq!(lines.len(), 9);
    assert!(
        lines.iter().all(|(_, outcome)| outcome == "ok"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn webdav_and_form_requests_between_downloads_go_to_hyper_and_back() {
    let (log, _guard) = Log::capture();
    let server = WebServer::start(ServerConfig::default()).await;
    let a = pseudo_random_bytes(150_000, 11);
    server.write("a.bin", &a);
    let mut client = KeepAlive::connect(server.http).await;
    let get = head("GET", "/a.bin", &[]);
    client.send(get.as_bytes()).await;
    assert!(client.answer(false).await.body == a);
    // A PROPFIND with its body, then a download written with it.
    let query = br#"<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>"#;
    let mut propfind = head(
        "PROPFIND",
        "/",
        &[
            "Depth: 1",
            "Content-Type: application/xml",
            &format!("Content-Length: {}", query.len()),
        ],
    )
    .into_bytes();
    propfind.extend_from_slice(query);
    propfind.extend_from_slice(get.as_bytes());
    client.send(&propfind).await;
    let listed = client.answer(false).await;
    assert_eq!(listed.status, 207, "{}", listed.text());
    assert!(listed.text().contains("a.bin"), "{}", listed.text());
    assert!(client.answer(false).await.body == a);
    // The page's form: a token from the listing, then a POST with it.
    client
        .send(head("GET", "/", &["Accept: text/html"]).as_bytes())
        .await;
    let page = client.answer(false).await.text();
    let start = page.find("data-csrf=\"").expect("a token") + 11;
    let form = format!("name=made&csrf={}", &page[start..start + 64]);
    let origin = "Origin: http://test".to_owned();
    let mut post = head(
        "POST",
        "/?mkdir",
        &[
            &origin,
            "Content-Type: application/x-www-form-urlencoded",
            &format!("Content-Length: {}", form.len()),
        ],
    )
    .into_bytes();
    post.extend_from_slice(form.as_bytes());
    client.send(&post).await;
    let made = client.answer(false).await;
    assert_eq!(made.status, 303, "{}", made.text());
    assert!(server.path("made").is_dir());
    client.send(head("OPTIONS", "/", &[]).as_bytes()).await;
    let options = client.answer(false).await;
    assert!(options.header("dav").is_some(), "{:?}", options.headers);
    client
        .send(head("GET", "/a.bin", &["Range: bytes=7-"]).as_bytes())
        .await;
    assert!(client.answer(false).await.body == a[7..]);
    assert_eq!(log.messages(SENT).len(), 3);
    assert!(
        log.messages("the rest of the connection is hyper's")
            .is_empty(),
        "each went back to the connection"
    );
}

#[tokio::test]
async fn heads_too_large_are_refused_and_end_the_connection() {
    let fast = WebServer::start(ServerConfig::default()).await;
    let slow = hyper_only(&fast).await;
    fast.write("a.bin", b"a");
    let long = format!("X-Long: {}", "x".repeat(40 * 1024));
    let longer = format!("X-Long: {}", "x".repeat(200 * 1024));
    let many: Vec<String> = (0..=100).map(|n| format!("X-{n}: y")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for (what, extra) in [
        ("one long header", vec![long.as_str()]),
        ("one far longer", vec![longer.as_str()]),
        ("101 headers", many),
    ] {
        let mut seen = Vec::new();
        for server in [&slow, &fast] {
            // After a download on the same connection, kept open.
            let mut client = KeepAlive::connect(server.http).await;
            client.send(head("GET", "/a.bin", &[]).as_bytes()).await;
            assert_eq!(client.answer(false).await.body, b"a");
            client
                .send_lossy(head("GET", "/a.bin", &extra).as_bytes())
                .await;
            let refused = client.answer(false).await;
            // Then a last request: answered if the connection went on.
            let last = head("GET", "/a.bin", &["Connection: close"]);
            client.send_lossy(last.as_bytes()).await;
            let rest = client.until_closed().await;
            let after = (!rest.is_empty()).then(|| crate::support::web::parse(&rest).body);
            seen.push((refused.status, refused.text(), after));
        }
        // Both refuse; the connection's own reading closes after it (hyper
        // lets a head a little over the bound through to the 431 that the
        // handler gives, and may go on).
        assert!(
            seen.iter().all(|(status, ..)| *status == 431),
            "{what}: {seen:?}"
        );
        assert_eq!(seen[1].2, None, "{what}: closed after the answer");
    }
}

#[tokio::test]
async fn a_refused_upload_ends_the_connection_or_not_as_hyper_decides() {
    let fast = WebServer::start(ServerConfig::default()).await;
    let slow = hyper_only(&fast).await;
    fast.write("a.bin", b"after");
    let refused = |length: usize| {
        let mut bytes = head(
            "PUT",
            "/x.bin",
            &[
                "Origin: http://evil.example",
                &format!("Content-Length: {length}"),
            ],
        )
        .into_bytes();
        bytes.extend(vec![b'x'; length]);
        bytes.extend(head("GET", "/a.bin", &[]).into_bytes());
        bytes
    };
    // A small body refused unread is drained and the connection goes on;
    // a large one is not, and hyper closes the connection after the answer.
    for (length, goes_on) in [(10, true), (1 << 20, false)] {
        let mut seen = Vec::new();
        for server in [&slow, &fast] {
            let mut client = KeepAlive::connect(server.http).await;
            // The server may close before taking all of it.
            client.send_lossy(&refused(length)).await;
            let answer = client.answer(false).await;
            assert_eq!(answer.status, 403, "{}", answer.text());
            let connection = answer.header("connection").map(str::to_owned);
            let next = match goes_on {
                true => Some(client.answer(false).await.body),
                false => None,
            };
            let rest = match goes_on {
                true => Vec::new(),
                false => client.until_closed().await,
            };
            seen.push((connection, next, rest));
        }
        assert_eq!(seen[0], seen[1], "{length} bytes");
        let (_, next, rest) = &seen[1];
        assert_eq!(next.as_deref(), goes_on.then_some(&b"after"[..]));
        assert!(rest.is_empty(), "closed without a word more");
    }
    assert!(!fast.exists("x.bin"));
}

/// A connection whose receive buffer is small, so that the server's
/// sending waits on it rather than racing ahead into the kernel's buffers.
async fn narrow(server: &WebServer) -> KeepAlive {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    KeepAlive::over(socket.connect(server.http).await.unwrap())
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_is_logged_with_how_far_it_got() {
    let (log, _guard) = Log::capture();
    let server = WebServer::start(ServerConfig::default()).await;
    let size = 32 << 20;
    server.write("big.bin", &pseudo_random_bytes(size, 4));
    server.write("small.txt", b"still here");
    let mut client = narrow(&server).await;
    client.send(head("GET", "/big.bin", &[]).as_bytes()).await;
    let (status, _) = client.head().await;
    assert_eq!(status, 200);
    assert_eq!(client.body(100_000).await.len(), 100_000);
    // Leaving with bytes unread resets the connection.
    drop(client.into_stream());
    let line = log
        .until(|line| line["operation"] == "download" && line["outcome"] != "ok")
        .await;
    let sent = line["bytes"].as_u64().unwrap();
    assert!(sent >= 100_000 && sent < size as u64, "{line}");
    let outcome = line["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("sending failed: "), "{outcome}");
    let stopped = log.messages("sendfile stopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0]["sent"].as_u64(), Some(sent));
    // The server goes on serving others.
    let other = request(server.http, "GET /small.txt HTTP/1.1", b"").await;
    assert_eq!(other.body, b"still here");
}

#[tokio::test]
async fn a_head_trickled_a_byte_at_a_time_is_answered_by_sendfile() {
    let (log, _guard) = Log::capture();
    let server = WebServer::start(ServerConfig::default()).await;
    let data = pseudo_random_bytes(100_000, 6);
    server.write("t.bin", &data);
    let stream = TcpStream::connect(server.http).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut client = KeepAlive::over(stream);
    for byte in head("GET", "/t.bin", &["Range: bytes=10-"]).as_bytes() {
        client.send(&[*byte]).await;
        tokio::task::yield_now().await;
    }
    let answer = client.answer(false).await;
    assert_eq!(answer.status, 206);
    assert!(answer.body == data[10..]);
    assert_eq!(log.messages(SENT).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_head_never_finished_times_out_as_hyper_times_it_out() {
    let fast = WebServer::start(ServerConfig::default()).await;
    let slow = hyper_only(&fast).await;
    fast.write("a.bin", b"a");
    for server in [&fast, &slow] {
        let started = tokio::time::Instant::now();
        let mut stream = TcpStream::connect(server.http).await.unwrap();
        stream
            .write_all(b"GET /a.bin HTTP/1.1\r\nHost: test\r\nX-Half")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest);
        tokio::time::timeout(Duration::from_secs(400), read)
            .await
            .expect("closed")
            .ok();
        assert!(rest.is_empty(), "no answer to half a head");
        // The default header timeout: the idle timeout, at most a minute.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(60), "{waited:?}");
        assert!(waited < Duration::from_secs(61), "{waited:?}");
    }
}

#[tokio::test]
async fn a_file_truncated_while_it_is_sent_ends_the_answer_short_and_cleanly() {
    let (log, _guard) = Log::capture();
    let server = WebServer::start(ServerConfig::default()).await;
    let size = 64 << 20;
    let data = pseudo_random_bytes(size, 7);
    server.write("shrinks.bin", &data);
    let mut client = narrow(&server).await;
    client
        .send(head("GET", "/shrinks.bin", &[]).as_bytes())
        .await;
    let (status, headers) = client.head().await;
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), size.to_string())));
    let mut body = client.body(1 << 20).await;
    // Far less than the rest is in flight (the kernel's buffers hold a few
    // MiB): the server has not sent past half the file yet.
    let half = size / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(server.path("shrinks.bin"))
        .unwrap()
        .set_len(half as u64)
        .unwrap();
    body.extend(client.until_closed().await);
    assert_eq!(body.len(), half, "what the file held when it stopped");
    assert!(body == data[..half]);
    let line = log
        .until(|line| line["operation"] == "download" && line["outcome"] != "ok")
        .await;
    assert_eq!(line["outcome"], "the file shrank while it was sent");
    assert_eq!(line["bytes"].as_u64(), Some(half as u64));
    let again = request(server.http, "GET /shrinks.bin HTTP/1.1", b"").await;
    assert!(again.status == 200 && again.body == data[..half]);
}

#[tokio::test]
async fn a_file_swapped_for_a_fifo_while_it_is_sent_is_sent_whole_and_the_fifo_refused() {
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    let (log, _guard) = Log::capture();
    let server = WebServer::start(ServerConfig::default()).await;
    let size = 16 << 20;
    let data = pseudo_random_bytes(size, 8);
    server.write("swapped.bin", &data);
    let mut client = narrow(&server).await;
    client
        .send(head("GET", "/swapped.bin", &[]).as_bytes())
        .await;
    assert_eq!(client.head().await.0, 200);
    let mut body = client.body(1 << 20).await;
    let fifo = server.path("fifo");
    mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    std::fs::rename(&fifo, server.path("swapped.bin")).unwrap();
    // The download goes on from the file it opened, to its end.
    body.extend(client.body(size - body.len()).await);
    assert!(body == data);
    client
        .send(head("GET", "/swapped.bin", &[]).as_bytes())
        .await;
    let refused = client.answer(false).await;
    assert!(
        refused.status >= 400,
        "{}: {}",
        refused.status,
        refused.text()
    );
    let lines = downloads(&log);
    assert_eq!(lines, [(size as u64, "ok".to_owned())]);
    let other = request(server.http, "HEAD /swapped.bin HTTP/1.1", b"").await;
    assert!(other.status >= 400);
}

#[tokio::test]
async fn shutdown_lets_a_download_under_way_finish_then_closes() {
    let (log, _guard) = Log::capture();
    let server = WebServer::start(ServerConfig::default()).await;
    let size = 8 << 20;
    let data = pseudo_random_bytes(size, 10);
    server.write("last.bin", &data);
    let mut client = narrow(&server).await;
    client.send(head("GET", "/last.bin", &[]).as_bytes()).await;
    assert_eq!(client.head().await.0, 200);
    let mut body = client.body(1 << 20).await;
    server.shut_down();
    body.extend(client.until_closed().await);
    assert!(body == data, "{} of {size} bytes", body.len());
    let lines: Vec<Value> = log.operations("download");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "ok");
}
