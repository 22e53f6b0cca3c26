//! A server with its web listener, in process, and a raw HTTP client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use miniftp::executor::Service;
use miniftp::{ServerConfig, Storage};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Both listeners on one service, on port 0, serving a temporary root.
pub struct WebServer {
    /// The HTTP listener.
    pub http: SocketAddr,
    /// The TCP protocol's listener.
    pub tcp: SocketAddr,
    pub root: TempDir,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WebServer {
    pub async fn start(config: ServerConfig) -> WebServer {
        WebServer::serve(TempDir::new().unwrap(), config).await
    }

    /// Serves an existing root (after a restart).
    pub async fn serve(root: TempDir, config: ServerConfig) -> WebServer {
        let storage = Storage::open(root.path()).expect("open storage");
        let service = Service::new(storage, config).await;
        let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http, tcp_address) = (web.local_addr().unwrap(), tcp.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(miniftp::web::serve(
                web,
                std::sync::Arc::clone(&service),
                shutdown.clone(),
            )),
            tokio::spawn(miniftp::server::serve(tcp, service, shutdown.clone())),
        ];
        WebServer {
            http,
            tcp: tcp_address,
            root,
            shutdown,
            tasks,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative.trim_start_matches('/'))
    }

    pub fn write(&self, relative: &str, contents: &[u8]) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).symlink_metadata().is_ok()
    }

    pub fn root_path(&self) -> &Path {
        self.root.path()
    }

    /// Stops both listeners (connections in flight are cut once the
    /// tasks are aborted) and gives the root back.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        let root = TempDir::new().unwrap();
        std::mem::replace(&mut self.root, root)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// An answer read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `head` (request line and headers, without the blank line; a
/// `Host` and `Connection: close` are added) and `body`, and reads the
/// whole answer (de-chunked).
pub async fn request(address: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut wire = format!("{head}\r\nHost: {address}\r\nConnection: close\r\n");
    if !body.is_empty() && !head.to_ascii_lowercase().contains("content-length") {
        wire.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    wire.push_str("\r\n");
    stream.write_all(wire.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(super::HANG_GUARD, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    parse(&raw)
}

/// Parses one HTTP/1.1 answer.
pub fn parse(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size_text = String::from_utf8_lossy(&rest[..line_end]);
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = decoded;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET path` with extra header lines.
pub async fn get(address: SocketAddr, path: &str, headers: &[&str]) -> Answer {
    let mut head = format!("GET {path} HTTP/1.1");
    for header in headers {
        head.push_str("\r\n");
        head.push_str(header);
    }
    request(address, &head, b"").await
}
