//! WebDAV against real clients: litmus's five suites (basic, copymove,
//! props, locks, http) with no failure, and rclone's webdav backend
//! uploading and downloading a tree, both with an account over Basic.
//! Both programs are Debian packages that `.ci/run` installs.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use miniftp::accounts::Accounts;
use miniftp::config::LoginFailurePolicy;
use miniftp::{Access, ServerConfig};

use crate::support::pseudo_random_bytes;
use crate::support::web::WebServer;

fn config() -> ServerConfig {
    let mut accounts = Accounts::new();
    accounts
        .add("dav", "dav's secret", None, Access::ReadWrite)
        .unwrap();
    ServerConfig {
        accounts: Some(Arc::new(accounts)),
        login_failures: LoginFailurePolicy::default(),
        ..ServerConfig::default()
    }
}

/// Runs a program that must be installed, failing with how to get it.
fn run(program: &str, package: &str, configure: impl FnOnce(&mut Command)) -> std::process::Output {
    let mut command = Command::new(program);
    configure(&mut command);
    command.output().unwrap_or_else(|error| {
        panic!("cannot run {program} ({error}): install it with `apt-get install {package}` (.ci/run does)")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_all_five_suites() {
    let server = WebServer::start(config()).await;
    std::fs::create_dir(server.path("dav/litmus")).unwrap();
    let url = server.url("/litmus/");
    let work = tempfile::TempDir::new().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        run("litmus", "litmus", |command| {
            command
                .current_dir(work.path())
                .args([&url, "dav", "dav's secret"]);
        })
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{report}");
    for (suite, count) in [
        ("basic", 16),
        ("copymove", 13),
        ("props", 30),
        ("locks", 41),
        ("http", 4),
    ] {
        let line =
            format!("<- summary for `{suite}': of {count} tests run: {count} passed, 0 failed.");
        assert!(report.contains(&line), "{suite}: no `{line}` in\n{report}");
    }
}

fn make_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("a.txt".to_owned(), b"alpha".to_vec()),
        ("sub/b.bin".to_owned(), pseudo_random_bytes(2 << 20, 5)),
        (
            "sub/d\u{e9}j\u{e0} vu/c \u{2603}.txt".to_owned(),
            b"unicode".to_vec(),
        ),
        ("sub/deeper/empty.txt".to_owned(), Vec::new()),
        ("spaces and #hash%.txt".to_owned(), b"odd".to_vec()),
    ];
    for (name, data) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_a_tree_up_and_back_down() {
    let server = WebServer::start(config()).await;
    let local = tempfile::TempDir::new().unwrap();
    let files = make_tree(&local.path().join("tree"));
    let url = server.url("/");
    let (source, back) = (local.path().join("tree"), local.path().join("back"));
    let output = tokio::task::spawn_blocking(move || {
        let obscured = run("rclone", "rclone", |command| {
            command.args(["obscure", "dav's secret"]);
        });
        let password = String::from_utf8(obscured.stdout)
            .unwrap()
            .trim()
            .to_owned();
        let remote = |command: &mut Command| {
            command
                .env("RCLONE_CONFIG_MINI_TYPE", "webdav")
                .env("RCLONE_CONFIG_MINI_URL", &url)
                .env("RCLONE_CONFIG_MINI_VENDOR", "other")
                .env("RCLONE_CONFIG_MINI_USER", "dav")
                .env("RCLONE_CONFIG_MINI_PASS", &password)
                .env("RCLONE_CONFIG", "/dev/null");
        };
        let up = run("rclone", "rclone", |command| {
            remote(command);
            command.arg("copy").arg(&source).arg("mini:tree");
        });
        let down = run("rclone", "rclone", |command| {
            remote(command);
            command.arg("copy").arg("mini:tree").arg(&back);
        });
        (up, down)
    })
    .await
    .unwrap();
    for step in [&output.0, &output.1] {
        assert!(
            step.status.success(),
            "rclone: {}",
            String::from_utf8_lossy(&step.stderr)
        );
    }
    for (name, data) in &files {
        assert_eq!(
            &std::fs::read(server.path("dav/tree").join(name)).unwrap(),
            data,
            "up: {name}"
        );
        assert_eq!(
            &std::fs::read(local.path().join("back").join(name)).unwrap(),
            data,
            "down: {name}"
        );
    }
}
