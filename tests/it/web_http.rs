//! The web front over raw HTTP: the jail against every encoding of an
//! escape, names escaped in the page, downloads (types, names, ranges,
//! zips), resumable chunked uploads across a restart, CSRF and cross-site
//! refusals, logins sharing the TCP protocol's ban, anonymous access,
//! bounds. Each test starts both listeners on one service, on port 0.

use std::sync::Arc;
use std::time::Duration;

use miniftp::accounts::Accounts;
use miniftp::config::{AnonymousAccess, LoginFailurePolicy};
use miniftp::{Access, ServerConfig};

use crate::support::pseudo_random_bytes;
use crate::support::web::{WebServer, get, request};

fn accounts() -> Arc<Accounts> {
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    Arc::new(accounts)
}

fn with_accounts() -> ServerConfig {
    ServerConfig {
        accounts: Some(accounts()),
        login_failures: LoginFailurePolicy {
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            ban_after: 3,
            ..LoginFailurePolicy::default()
        },
        ..ServerConfig::default()
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {encoded}")
}

#[tokio::test]
async fn no_encoding_of_a_path_leads_out_of_the_root() {
    let outside = tempfile::TempDir::new().unwrap();
    std::fs::write(outside.path().join("secret.txt"), b"TOP SECRET").unwrap();
    let server = WebServer::start(ServerConfig::default()).await;
    server.write("inside/file.txt", b"inside");
    std::os::unix::fs::symlink(outside.path(), server.path("link")).unwrap();
    let escape = outside.path().join("secret.txt");
    let absolute = escape.to_str().unwrap();
    for (path, status) in [
        ("/inside/file.txt", 200),
        ("/../secret.txt", 400),
        ("/inside/../../secret.txt", 400),
        ("/%2e%2e/secret.txt", 400),
        ("/%2E%2E/%2E%2E/etc/passwd", 400),
        ("/inside/%2e%2e%2f%2e%2e%2fsecret.txt", 400),
        ("/..%2f..%2fetc%2fpasswd", 400),
        ("/..%5c..%5cetc%5cpasswd", 400),
        ("/inside%5c..%5c..%5csecret.txt", 400),
        ("/%252e%252e/secret.txt", 404),
        ("/%25252e%25252e/secret.txt", 404),
        ("/%c0%ae%c0%ae/secret.txt", 400),
        ("/inside/file.txt%00.jpg", 400),
        ("/link/secret.txt", 400),
        ("/link/", 400),
        (&format!("/{absolute}"), 404),
        ("/.miniftp/uploads/", 404),
        ("/%2eminiftp/partial/", 400),
        ("//etc/passwd", 404),
    ] {
        for method in ["GET", "PROPFIND", "DELETE"] {
            let answer = request(server.http, &format!("{method} {path} HTTP/1.1"), b"").await;
            assert!(!answer.text().contains("TOP SECRET"), "{method} {path}");
            if method == "GET" {
                assert_eq!(answer.status, status, "{method} {path}: {}", answer.text());
            } else {
                assert!(
                    answer.status >= 400 || path == "/inside/file.txt",
                    "{method} {path}: {}",
                    answer.status
                );
            }
        }
    }
    // A MOVE or COPY whose destination escapes stays inside too.
    for destination in ["/%2e%2e/moved.txt", "/../moved.txt", "/link/moved.txt"] {
        let answer = request(
            server.http,
            &format!(
                "COPY /inside/file.txt HTTP/1.1\r\nDestination: http://{}{destination}",
                server.http
            ),
            b"",
        )
        .await;
        assert!(
            answer.status >= 400 || !outside.path().join("moved.txt").exists(),
            "{destination}"
        );
    }
    assert!(!outside.path().join("moved.txt").exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn names_are_shown_as_text_and_links_reach_them() {
    let server = WebServer::start(ServerConfig::default()).await;
    let name = "<img src=x onerror=alert(1)>";
    server.write(name, b"xss");
    server.write("caf\u{e9} \u{2603}/a&b.txt", b"unicode");
    let page = get(server.http, "/", &["Accept: text/html"]).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    let file = get(
        server.http,
        "/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        &[],
    )
    .await;
    assert_eq!(file.body, b"xss");
    let folder = get(server.http, "/caf%C3%A9%20%E2%98%83/", &[]).await;
    assert!(folder.text().contains("a&amp;b.txt"), "{}", folder.text());
    let redirect = get(server.http, "/caf%C3%A9%20%E2%98%83", &[]).await;
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/caf%C3%A9%20%E2%98%83/"));
}

#[tokio::test]
async fn downloads_carry_type_name_and_ranges() {
    let server = WebServer::start(ServerConfig::default()).await;
    let data = pseudo_random_bytes(100_000, 7);
    server.write("r\u{e9}sum\u{e9} \u{65e5}\u{672c}.txt", &data);
    let path = "/r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt";
    let whole = get(server.http, &format!("{path}?download"), &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, data);
    assert_eq!(
        whole.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        whole.header("content-disposition"),
        Some(
            "attachment; filename=\"r_sum_ __.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt"
        )
    );
    let part = get(server.http, path, &["Range: bytes=1000-1999"]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[1000..2000]);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/100000"));
    let tail = get(server.http, path, &["Range: bytes=99000-"]).await;
    assert_eq!(tail.body, &data[99000..]);
    let past = get(server.http, path, &["Range: bytes=100000-"]).await;
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */100000"));
    let tag = whole.header("etag").unwrap().to_owned();
    let stale = get(
        server.http,
        path,
        &["Range: bytes=0-9", "If-Range: \"other\""],
    )
    .await;
    assert_eq!(stale.status, 200, "a changed file is sent whole");
    let fresh = get(
        server.http,
        path,
        &["Range: bytes=0-9", &format!("If-Range: {tag}")],
    )
    .await;
    assert_eq!(fresh.status, 206);
    let head = request(server.http, &format!("HEAD {path} HTTP/1.1"), b"").await;
    assert_eq!(head.header("content-length"), Some("100000"));
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn a_folder_downloads_as_a_zip_of_its_tree() {
    let server = WebServer::start(ServerConfig::default()).await;
    let big = pseudo_random_bytes(3 << 20, 3);
    server.write("tree/a.txt", b"a");
    server.write("tree/d\u{e9}j\u{e0}/b.bin", &big);
    server.write("tree/empty/.keep", b"");
    let answer = get(server.http, "/tree/?zip", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/zip"));
    assert!(
        answer.header("content-length").is_none(),
        "streamed, not buffered"
    );
    let zip = server.path("got.zip");
    std::fs::write(&zip, &answer.body).unwrap();
    let listing = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, hashlib\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             assert z.testzip() is None\n\
             for i in sorted(z.infolist(), key=lambda i: i.filename):\n\
             \x20   print(i.filename, i.file_size, hashlib.sha256(z.read(i)).hexdigest())",
        ])
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let listing = String::from_utf8(listing.stdout).unwrap();
    let expected = format!(
        "a.txt 1 {}\nd\u{e9}j\u{e0}/ 0 {}\nd\u{e9}j\u{e0}/b.bin {} {}\nempty/ 0 {}\nempty/.keep 0 {}\n",
        crate::support::sha256(b"a"),
        crate::support::sha256(b""),
        big.len(),
        crate::support::sha256(&big),
        crate::support::sha256(b""),
        crate::support::sha256(b""),
    );
    assert_eq!(listing, expected);
}

/// One chunk of a page upload.
async fn chunk(
    server: &WebServer,
    path: &str,
    csrf: &str,
    offset: usize,
    data: &[u8],
    size: usize,
    digest: Option<&str>,
) -> crate::support::web::Answer {
    let mut head = format!(
        "POST {path}?upload HTTP/1.1\r\nX-CSRF-Token: {csrf}\r\nUpload-Offset: {offset}\r\n\
         Upload-Length: {size}\r\nContent-Length: {}",
        data.len()
    );
    if let Some(digest) = digest {
        head.push_str(&format!("\r\nUpload-Digest: {digest}"));
    }
    request(server.http, &head, data).await
}

/// The page's CSRF token.
async fn csrf(server: &WebServer, headers: &[&str]) -> String {
    let page = get(server.http, "/", headers).await.text();
    let start = page.find("data-csrf=\"").expect("a token") + 11;
    page[start..start + 64].to_owned()
}

#[tokio::test]
async fn chunked_uploads_resume_after_a_restart_and_appear_whole_and_verified() {
    let server = WebServer::start(ServerConfig::default()).await;
    let data = pseudo_random_bytes(3 << 20, 11);
    let digest = blake3::hash(&data).to_hex().to_string();
    let token = csrf(&server, &[]).await;
    let first = chunk(
        &server,
        "/up.bin",
        &token,
        0,
        &data[..1 << 20],
        data.len(),
        None,
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.text().trim(),
        format!("{{\"offset\":{},\"done\":false}}", 1 << 20)
    );
    assert!(
        !server.exists("up.bin"),
        "nothing under the name before the end"
    );
    let wrong = chunk(&server, "/up.bin", &token, 0, &data[..10], data.len(), None).await;
    assert_eq!(wrong.status, 409);
    assert!(wrong.text().contains(&format!("\"offset\":{}", 1 << 20)));

    // The server goes away; a new one on the same root finds the bytes.
    let root = server.stop().await;
    let server = WebServer::serve(root, ServerConfig::default()).await;
    let token = csrf(&server, &[]).await;
    let probe = chunk(&server, "/up.bin", &token, 0, b"", data.len(), None).await;
    assert_eq!(probe.status, 409);
    assert!(
        probe.text().contains(&format!("\"offset\":{}", 1 << 20)),
        "{}",
        probe.text()
    );
    let second = chunk(
        &server,
        "/up.bin",
        &token,
        1 << 20,
        &data[1 << 20..2 << 20],
        data.len(),
        None,
    )
    .await;
    assert_eq!(second.status, 200);
    // A wrong digest on the last chunk stores nothing, and keeps nothing.
    let bad = chunk(
        &server,
        "/up.bin",
        &token,
        2 << 20,
        &data[2 << 20..],
        data.len(),
        Some(&"00".repeat(32)),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert!(!server.exists("up.bin"));
    for (offset, end, digest) in [
        (0, 1 << 20, None),
        (1 << 20, 3 << 20, Some(digest.as_str())),
    ] {
        let answer = chunk(
            &server,
            "/up.bin",
            &token,
            offset,
            &data[offset..end],
            data.len(),
            digest,
        )
        .await;
        assert!(
            answer.status == 200 || answer.status == 201,
            "{}",
            answer.text()
        );
    }
    assert_eq!(std::fs::read(server.path("up.bin")).unwrap(), data);
    let none = chunk(&server, "/x.bin", "not-the-token", 0, b"", 1, None).await;
    assert_eq!(none.status, 403);
}

#[tokio::test]
async fn changes_need_the_pages_token_and_its_origin() {
    let server = WebServer::start(ServerConfig::default()).await;
    let token = csrf(&server, &[]).await;
    let form = |body: String| body.into_bytes();
    let post = |headers: String, body: Vec<u8>| {
        let http = server.http;
        async move {
            request(
                http,
                &format!("POST /?mkdir HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded{headers}"),
                &body,
            )
            .await
        }
    };
    let without = post(String::new(), form("name=a".into())).await;
    assert_eq!(without.status, 403);
    let elsewhere = post(
        "\r\nOrigin: http://evil.example".into(),
        form(format!("name=b&csrf={token}")),
    )
    .await;
    assert_eq!(elsewhere.status, 403);
    assert!(elsewhere.text().contains("cross-site"));
    let cross = post(
        "\r\nSec-Fetch-Site: cross-site".into(),
        form(format!("name=c&csrf={token}")),
    )
    .await;
    assert_eq!(cross.status, 403);
    let put = request(
        server.http,
        "PUT /d.txt HTTP/1.1\r\nOrigin: http://evil.example",
        b"x",
    )
    .await;
    assert_eq!(put.status, 403);
    assert!(
        !server.exists("a")
            && !server.exists("b")
            && !server.exists("c")
            && !server.exists("d.txt")
    );
    let ok = post(
        format!("\r\nOrigin: http://{}", server.http),
        form(format!("name=made&csrf={token}")),
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert!(server.path("made").is_dir());
    let renamed = request(
        server.http,
        &format!("POST /made?rename HTTP/1.1\r\nX-CSRF-Token: {token}\r\nContent-Type: application/x-www-form-urlencoded"),
        b"to=moved",
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert!(server.path("moved").is_dir());
    let deleted = request(
        server.http,
        &format!("POST /moved/?delete HTTP/1.1\r\nX-CSRF-Token: {token}"),
        b"",
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert!(!server.exists("moved"));
}

#[tokio::test]
async fn logins_by_form_and_basic_count_toward_the_tcp_protocols_ban() {
    let server = WebServer::start(with_accounts()).await;
    server.write("alice/mine.txt", b"mine");
    let page = get(server.http, "/", &["Accept: text/html"]).await;
    assert_eq!(page.status, 303);
    assert!(
        page.header("location")
            .unwrap()
            .starts_with("/.miniftp/login")
    );
    let script = get(server.http, "/", &[]).await;
    assert_eq!(script.status, 401);
    assert!(
        script
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );

    let login_page = get(server.http, "/.miniftp/login", &[]).await.text();
    let start = login_page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let token = &login_page[start..start + 64];
    let form = |password: &str| format!("user=alice&password={password}&next=%2F&csrf={token}");
    let ok = request(
        server.http,
        "POST /.miniftp/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        form("alice%27s+secret").as_bytes(),
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    let cookie = ok.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback");
    let session = cookie.split(';').next().unwrap();
    let listing = get(server.http, "/", &[&format!("Cookie: {session}")]).await;
    assert!(listing.text().contains("mine.txt"), "{}", listing.text());
    let by_basic = get(
        server.http,
        "/mine.txt",
        &[&basic("alice", "alice's secret")],
    )
    .await;
    assert_eq!(by_basic.body, b"mine");

    // Two wrong passwords by Basic, one by the form: the address is banned,
    // for the TCP protocol too.
    for _ in 0..2 {
        let wrong = get(server.http, "/", &[&basic("alice", "wrong")]).await;
        assert_eq!(wrong.status, 401);
    }
    let wrong = request(
        server.http,
        "POST /.miniftp/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        form("wrong").as_bytes(),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("banned"), "{}", wrong.text());
    let config = miniftp::client::ClientConfig {
        login: Some(miniftp::client::Credentials {
            user: "alice".into(),
            password: miniftp::operation::Password::new("alice's secret"),
        }),
        ..miniftp::client::ClientConfig::default()
    };
    let tcp = miniftp::client::Client::connect(&server.tcp.to_string(), config).await;
    assert!(tcp.is_err(), "the ban holds on the TCP protocol");
    // Banned: refused at the door, as the TCP protocol refuses it.
    let banned = get(server.http, "/", &[&basic("alice", "alice's secret")]).await;
    assert_eq!(banned.status, 429);
    assert!(
        banned.text().contains("too many failed logins"),
        "{}",
        banned.text()
    );
}

#[tokio::test]
async fn anonymous_callers_read_and_are_asked_to_log_in_to_write() {
    let mut config = with_accounts();
    config.anonymous = Some(AnonymousAccess {
        access: Access::ReadOnly,
        home: "public".into(),
    });
    let server = WebServer::start(config).await;
    server.write("public/p.txt", b"public");
    let read = get(server.http, "/p.txt", &[]).await;
    assert_eq!(read.body, b"public");
    let page = get(server.http, "/", &[]).await.text();
    assert!(page.contains("Log in") && page.contains("data-writable=\"false\""));
    let put = request(server.http, "PUT /new.txt HTTP/1.1", b"new").await;
    assert_eq!(put.status, 401);
    assert!(put.header("www-authenticate").is_some());
    let put = request(
        server.http,
        &format!(
            "PUT /new.txt HTTP/1.1\r\n{}",
            basic("alice", "alice's secret")
        ),
        b"new",
    )
    .await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(std::fs::read(server.path("alice/new.txt")).unwrap(), b"new");
}

#[tokio::test]
async fn read_only_servers_refuse_every_change_with_a_reason() {
    let server = WebServer::start(ServerConfig {
        read_only: true,
        ..ServerConfig::default()
    })
    .await;
    server.write("a.txt", b"a");
    let token = csrf(&server, &[]).await;
    for (head, body) in [
        ("PUT /b.txt HTTP/1.1".to_owned(), &b"b"[..]),
        ("DELETE /a.txt HTTP/1.1".to_owned(), b""),
        ("MKCOL /c HTTP/1.1".to_owned(), b""),
        (
            format!("POST /a.txt?delete HTTP/1.1\r\nX-CSRF-Token: {token}"),
            b"",
        ),
    ] {
        let answer = request(server.http, &head, body).await;
        assert_eq!(answer.status, 403, "{head}: {}", answer.text());
    }
    assert!(server.exists("a.txt") && !server.exists("b.txt") && !server.exists("c"));
}

#[tokio::test]
async fn heads_and_forms_are_bounded() {
    let server = WebServer::start(ServerConfig::default()).await;
    let long = "x".repeat(40 * 1024);
    let answer = request(
        server.http,
        &format!("GET / HTTP/1.1\r\nX-Long: {long}"),
        b"",
    )
    .await;
    assert_eq!(answer.status, 431);
    let token = csrf(&server, &[]).await;
    let form = format!("csrf={token}&name={}", "y".repeat(70 * 1024));
    let answer = request(server.http, "POST /?mkdir HTTP/1.1", form.as_bytes()).await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    let answer = request(server.http, "BREW /pot HTTP/1.1", b"").await;
    assert_eq!(answer.status, 405);
}
