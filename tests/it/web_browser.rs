//! The page in a real browser: headless Chromium, driven over WebDriver.
//! Navigating into a Unicode folder, downloading a file, uploading 20 MB
//! through the file input, an upload cut by a stopped server and finished
//! after a reload, rename and delete, a hostile name shown as text, a
//! login, browsing with JavaScript off. Every wait polls what the page
//! shows (fantoccini's waits, or the disk), within a hang guard.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;
use miniftp::accounts::Accounts;
use miniftp::config::LoginFailurePolicy;
use miniftp::{Access, ServerConfig};

use crate::support::browser::Browser;
use crate::support::web::WebServer;
use crate::support::{HANG_GUARD, pseudo_random_bytes, wait_until};

/// Waits for an element, within the hang guard.
async fn element(browser: &Browser, css: &str) -> fantoccini::elements::Element {
    browser
        .client
        .wait()
        .at_most(HANG_GUARD)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css} on the page: {error}"))
}

/// The names the listing shows.
async fn listed(browser: &Browser) -> Vec<String> {
    let mut names = Vec::new();
    for row in browser
        .client
        .find_all(Locator::Css("#listing tbody tr[data-name] td.name a"))
        .await
        .unwrap()
    {
        names.push(row.text().await.unwrap());
    }
    names
}

/// The names the listing shows, or `None` while the page changes under
/// the reading (a reload).
async fn listed_now(browser: &Browser) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for row in browser
        .client
        .find_all(Locator::Css("#listing tbody tr[data-name] td.name a"))
        .await
        .ok()?
    {
        names.push(row.text().await.ok()?);
    }
    Some(names)
}

/// A finished download in `directory` (Chromium writes `.crdownload` first).
fn downloaded(directory: &Path, name: &str) -> Option<Vec<u8>> {
    let partial = std::fs::read_dir(directory)
        .ok()?
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().ends_with(".crdownload"));
    match partial {
        true => None,
        false => std::fs::read(directory.join(name)).ok(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unicode_folder_is_browsed_and_a_file_downloaded_whole() {
    let server = WebServer::start(ServerConfig::default()).await;
    let data = pseudo_random_bytes(1_500_000, 21);
    server.write(
        "Photos d'\u{e9}t\u{e9} \u{2600}\u{fe0f}/plage \u{65e5}\u{672c}.bin",
        &data,
    );
    server.write(
        "Photos d'\u{e9}t\u{e9} \u{2600}\u{fe0f}/notes.txt",
        b"notes",
    );
    server.write("readme.txt", b"Welcome!\n");
    server.write("reports/2026/q4.pdf", &pseudo_random_bytes(250_000, 2));
    server.write("music/song.ogg", &pseudo_random_bytes(4_000_000, 3));
    server.write("archive.tar.gz", &pseudo_random_bytes(12_000_000, 4));
    let browser = Browser::start().await;
    browser.client.goto(&server.url("/")).await.unwrap();
    element(&browser, "#listing").await;
    let screenshot = browser.client.screenshot().await.unwrap();
    let artefact = Browser::artefact("listing.png");
    std::fs::write(&artefact, screenshot).unwrap();
    println!("screenshot of the listing: {}", artefact.display());

    let folder = "Photos d'\u{e9}t\u{e9} \u{2600}\u{fe0f}";
    browser
        .client
        .find(Locator::LinkText(&format!("{folder}/")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let current = element(&browser, ".crumbs [aria-current=page]").await;
    assert_eq!(current.text().await.unwrap(), folder);
    assert_eq!(
        listed(&browser).await,
        ["notes.txt", "plage \u{65e5}\u{672c}.bin"]
    );
    let row = element(&browser, "tr[data-name^='plage'] a.download").await;
    row.click().await.unwrap();
    let downloads = browser.downloads.path().to_owned();
    wait_until("the download is complete", || {
        downloaded(&downloads, "plage \u{65e5}\u{672c}.bin").is_some()
    })
    .await;
    assert_eq!(
        downloaded(&downloads, "plage \u{65e5}\u{672c}.bin").unwrap(),
        data
    );
    browser.finish().await;
}

/// Chooses `file` in the page's file input.
async fn choose(browser: &Browser, file: &Path) {
    let input = browser
        .client
        .find(Locator::Css("#file-input"))
        .await
        .unwrap();
    input.send_keys(file.to_str().unwrap()).await.unwrap();
}

/// The local file to upload, in its own directory.
fn local_file(directory: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_megabytes_upload_through_the_file_input() {
    let server = WebServer::start(ServerConfig::default()).await;
    let local = tempfile::TempDir::new().unwrap();
    let data = pseudo_random_bytes(20 << 20, 8);
    let file = local_file(local.path(), "big upload.bin", &data);
    let browser = Browser::start().await;
    browser.client.goto(&server.url("/")).await.unwrap();
    element(&browser, "#pick:not([hidden])").await;
    choose(&browser, &file).await;
    let done = element(&browser, "#progress li.done .status").await;
    assert!(done.text().await.unwrap().contains("verified"));
    assert_eq!(std::fs::read(server.path("big upload.bin")).unwrap(), data);
    browser.client.refresh().await.unwrap();
    element(&browser, "#listing").await;
    assert_eq!(listed(&browser).await, ["big upload.bin"]);
    browser.finish().await;
}

/// The size of the largest resumable upload kept in the private area.
fn partial_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root.join(".miniftp/partial"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .map(|metadata| metadata.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_a_stopped_server_finishes_after_a_reload() {
    // Slow enough (2 MiB/s) that the upload is surely under way when the
    // server stops.
    let slow = || ServerConfig {
        rate_limit: Some(2 << 20),
        ..ServerConfig::default()
    };
    let server = WebServer::start(slow()).await;
    let local = tempfile::TempDir::new().unwrap();
    let data = pseudo_random_bytes(10 << 20, 9);
    let file = local_file(local.path(), "interrupted.bin", &data);
    let browser = Browser::start().await;
    browser.client.goto(&server.url("/")).await.unwrap();
    element(&browser, "#pick:not([hidden])").await;
    choose(&browser, &file).await;
    let root_path = server.root_path().to_owned();
    wait_until("part of the upload is on the server", || {
        partial_bytes(&root_path) >= 2 << 20
    })
    .await;
    let root = server.stop().await;
    assert!(!root.path().join("interrupted.bin").exists());
    let kept = partial_bytes(root.path());
    assert!((2 << 20..10 << 20).contains(&kept), "{kept}");

    let server = WebServer::serve(root, ServerConfig::default()).await;
    browser.client.goto(&server.url("/")).await.unwrap();
    element(&browser, "#pick:not([hidden])").await;
    choose(&browser, &file).await;
    let done = element(&browser, "#progress li.done").await;
    let resumed: u64 = done
        .attr("data-resumed-at")
        .await
        .unwrap()
        .expect("the upload resumed")
        .parse()
        .unwrap();
    assert!(resumed >= 2 << 20, "resumed at {resumed}");
    assert_eq!(std::fs::read(server.path("interrupted.bin")).unwrap(), data);
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_delete_through_the_page() {
    let server = WebServer::start(ServerConfig::default()).await;
    server.write("old name.txt", b"contents");
    server.write("folder/inside.txt", b"inside");
    let browser = Browser::start().await;
    browser.client.goto(&server.url("/")).await.unwrap();
    element(
        &browser,
        "tr[data-name='old name.txt'] button.rename:not([hidden])",
    )
    .await
    .click()
    .await
    .unwrap();
    browser
        .client
        .send_alert_text("new n\u{e4}me.txt")
        .await
        .unwrap();
    browser.client.accept_alert().await.unwrap();
    element(&browser, "tr[data-name='new n\u{e4}me.txt']").await;
    assert!(!server.exists("old name.txt"));
    assert_eq!(
        std::fs::read(server.path("new n\u{e4}me.txt")).unwrap(),
        b"contents"
    );

    element(
        &browser,
        "tr[data-name='folder'] button.delete:not([hidden])",
    )
    .await
    .click()
    .await
    .unwrap();
    let question = browser.client.get_alert_text().await.unwrap();
    assert!(question.contains("everything in it"), "{question}");
    browser.client.accept_alert().await.unwrap();
    let path = server.path("folder");
    wait_until("the folder is gone", || !path.exists()).await;
    // The page reloads once the server has answered: until then the old
    // listing shows (and its rows go stale as the new page comes).
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while listed_now(&browser).await.as_deref() != Some(&["new n\u{e4}me.txt".to_owned()][..]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listing never showed the folder gone"
        );
    }
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_name_is_shown_as_text() {
    let server = WebServer::start(ServerConfig::default()).await;
    let name = "<img src=x onerror=alert(1)>";
    server.write(name, b"x");
    let browser = Browser::start().await;
    browser.client.goto(&server.url("/")).await.unwrap();
    element(&browser, "#listing").await;
    assert_eq!(listed(&browser).await, [name]);
    let images = browser
        .client
        .find_all(Locator::Css("#listing img"))
        .await
        .unwrap();
    assert!(images.is_empty());
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "no script ran"
    );
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_through_the_form() {
    let mut accounts = Accounts::new();
    accounts
        .add("alice", "alice's secret", None, Access::ReadWrite)
        .unwrap();
    let server = WebServer::start(ServerConfig {
        accounts: Some(Arc::new(accounts)),
        login_failures: LoginFailurePolicy {
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            ..LoginFailurePolicy::default()
        },
        ..ServerConfig::default()
    })
    .await;
    server.write("alice/hers.txt", b"hers");
    let browser = Browser::start().await;
    browser.client.goto(&server.url("/")).await.unwrap();
    let user = element(&browser, "form.login input[name=user]").await;
    user.send_keys("alice").await.unwrap();
    let password = element(&browser, "form.login input[name=password]").await;
    password.send_keys("wrong").await.unwrap();
    element(&browser, "form.login button")
        .await
        .click()
        .await
        .unwrap();
    let error = element(&browser, "p.error").await;
    assert!(
        error
            .text()
            .await
            .unwrap()
            .contains("wrong name or password")
    );
    element(&browser, "form.login input[name=user]")
        .await
        .send_keys("alice")
        .await
        .unwrap();
    element(&browser, "form.login input[name=password]")
        .await
        .send_keys("alice's secret")
        .await
        .unwrap();
    element(&browser, "form.login button")
        .await
        .click()
        .await
        .unwrap();
    element(&browser, "#listing").await;
    assert_eq!(listed(&browser).await, ["hers.txt"]);
    let who = element(&browser, ".who span").await;
    assert_eq!(who.text().await.unwrap(), "alice");
    let cookie = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(
        cookie,
        serde_json::json!(""),
        "the session cookie is HttpOnly"
    );
    browser.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsing_and_downloading_need_no_javascript() {
    let server = WebServer::start(ServerConfig::default()).await;
    server.write("b/small.txt", b"small");
    server.write("b/large.txt", &vec![b'x'; 5000]);
    let browser = Browser::start_with(false).await;
    browser.client.goto(&server.url("/")).await.unwrap();
    element(&browser, "a.folder").await.click().await.unwrap();
    element(&browser, "th.size a").await.click().await.unwrap();
    element(&browser, "th.size a").await;
    assert_eq!(listed(&browser).await, ["small.txt", "large.txt"]);
    assert!(
        element(&browser, "#pick")
            .await
            .attr("hidden")
            .await
            .unwrap()
            .is_some(),
        "no upload button without the script"
    );
    element(&browser, "tr[data-name='large.txt'] a.download")
        .await
        .click()
        .await
        .unwrap();
    let downloads = browser.downloads.path().to_owned();
    wait_until("the download is complete", || {
        downloaded(&downloads, "large.txt").is_some()
    })
    .await;
    assert_eq!(
        downloaded(&downloads, "large.txt").unwrap(),
        vec![b'x'; 5000]
    );
    browser.finish().await;
}
