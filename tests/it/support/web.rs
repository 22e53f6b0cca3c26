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
    /// The directory served (the root's, or another server's).
    served: PathBuf,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WebServer {
    pub async fn start(config: ServerConfig) -> WebServer {
        WebServer::serve(TempDir::new().unwrap(), config).await
    }

    /// Serves an existing root (after a restart).
    pub async fn serve(root: TempDir, config: ServerConfig) -> WebServer {
        let served = root.path().to_owned();
        WebServer::serve_path(root, served, config).await
    }

    /// A second server on this one's root, with another configuration
    /// (this one keeps the root: the second must not outlive it).
    pub async fn beside(&self, config: ServerConfig) -> WebServer {
        let placeholder = TempDir::new().unwrap();
        WebServer::serve_path(placeholder, self.served.clone(), config).await
    }

    async fn serve_path(root: TempDir, served: PathBuf, config: ServerConfig) -> WebServer {
        let storage = Storage::open(&served).expect("open storage");
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
            served,
            shutdown,
            tasks,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.served.join(relative.trim_start_matches('/'))
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
        &self.served
    }

    /// Asks both listeners to shut down (the web front finishes the
    /// requests under way), without stopping their tasks.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
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
    let end = head_end(raw).expect("a complete head");
    let (status, headers) = parse_head(&raw[..end]);
    let mut body = raw[end..].to_vec();
    if is_chunked(&headers) {
        body = dechunk(&body).expect("a whole chunked body").0;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// Where the head at the start of `raw` ends (after its blank line).
fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The status and headers of a head (with its blank line or not).
fn parse_head(head: &[u8]) -> (u16, Vec<(String, String)>) {
    let head = String::from_utf8_lossy(head).into_owned();
    let mut lines = head.trim_end().split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    (status, headers)
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    })
}

/// A chunked body decoded, and how many bytes of `raw` it took; `None`
/// while incomplete.
fn dechunk(raw: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut decoded = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + raw[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        at = line_end + 2;
        if size == 0 {
            // No trailers from this server: the last chunk's line ends it.
            (raw.len() >= at + 2).then_some(())?;
            return Some((decoded, at + 2));
        }
        (raw.len() >= at + size + 2).then_some(())?;
        decoded.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
}

/// A client that keeps its connection open: requests are written as
/// given (several at once, for pipelining), answers read one at a time.
pub struct KeepAlive {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeepAlive {
    pub async fn connect(address: SocketAddr) -> KeepAlive {
        KeepAlive::over(TcpStream::connect(address).await.unwrap())
    }

    /// Over a connected stream (e.g. one with a small receive buffer).
    pub fn over(stream: TcpStream) -> KeepAlive {
        KeepAlive {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Writes `bytes`, or as many as the server takes before it closes.
    pub async fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads more into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0; 64 * 1024];
        let read = tokio::time::timeout(super::HANG_GUARD, self.stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap_or(0);
        self.buffer.extend_from_slice(&chunk[..read]);
        read > 0
    }

    /// Reads the head of the next answer only.
    pub async fn head(&mut self) -> (u16, Vec<(String, String)>) {
        loop {
            if let Some(end) = head_end(&self.buffer) {
                let head = parse_head(&self.buffer[..end]);
                self.buffer.drain(..end);
                return head;
            }
            assert!(self.fill().await, "closed before a whole head");
        }
    }

    /// Reads up to `length` bytes of a body (fewer if the server closes).
    pub async fn body(&mut self, length: usize) -> Vec<u8> {
        while self.buffer.len() < length && self.fill().await {}
        let take = length.min(self.buffer.len());
        self.buffer.drain(..take).collect()
    }

    /// Reads the next answer whole; `to_head` when it answers a `HEAD`.
    pub async fn answer(&mut self, to_head: bool) -> Answer {
        let (status, headers) = self.head().await;
        let length = headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value.parse::<usize>().unwrap());
        let body = if to_head || status == 304 || status == 204 {
            Vec::new()
        } else if is_chunked(&headers) {
            loop {
                if let Some((body, used)) = dechunk(&self.buffer) {
                    self.buffer.drain(..used);
                    break body;
                }
                assert!(self.fill().await, "closed inside a chunked body");
            }
        } else {
            let length = length.expect("a length or chunks");
            let body = self.body(length).await;
            assert_eq!(body.len(), length, "closed inside a body");
            body
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Reads until the server closes the connection; what came meanwhile.
    pub async fn until_closed(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buffer)
    }

    /// Leaves without reading what is on its way.
    pub fn into_stream(self) -> TcpStream {
        self.stream
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
