//! Headless Chromium driven over WebDriver (chromedriver, started on port
//! 0 for each test), with a download directory of its own.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder};
use tempfile::TempDir;

/// A browser session; [`Browser::finish`] ends it (the driver is killed on
/// drop in any case).
pub struct Browser {
    pub client: Client,
    pub downloads: TempDir,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `javascript` off to see
    /// what the page does without it.
    pub async fn start_with(javascript: bool) -> Browser {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "cannot run chromedriver: apt-get install chromium chromium-driver (.ci/run does)",
            );
        let stdout = driver.stdout.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.ok()?;
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .unwrap()
        .expect("chromedriver names its port");
        let profile = TempDir::new().unwrap();
        let downloads = TempDir::new().unwrap();
        let mut prefs = serde_json::json!({
            "download.default_directory": downloads.path(),
            "download.prompt_for_download": false,
        });
        if !javascript {
            prefs["profile.managed_default_content_settings.javascript"] = 2.into();
        }
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1200,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": prefs,
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a browser session");
        Browser {
            client,
            downloads,
            driver,
            _profile: profile,
        }
    }

    pub async fn start() -> Browser {
        Browser::start_with(true).await
    }

    /// Ends the session (the browser quits), then the driver.
    pub async fn finish(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    /// Where screenshots are kept for CI to show: `target/web-artefacts`.
    pub fn artefact(name: &str) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let directory = target.join("web-artefacts");
        std::fs::create_dir_all(&directory).unwrap();
        directory.join(name)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
