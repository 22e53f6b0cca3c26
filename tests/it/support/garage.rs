//! Garage, a real distributed S3-compatible store, started by the tests
//! themselves: on free loopback ports, in temporary directories, stopped at
//! the end (each node runs under a small shell that kills it, and removes
//! its directory, once the test process lets go of its standard input:
//! when the test drops it, or when the test process ends in any way).
//!
//! One node with a default bucket for the storage contract, shared by the
//! tests of one run; three nodes with replication factor 3 for servers
//! sharing a bucket. Without a `garage` binary the tests that need one
//! skip, loudly; with `MINIFTP_REQUIRE_GARAGE` set (CI), they fail instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use miniftp::storage::s3::{Credentials, S3Settings};
use tempfile::TempDir;

use super::HANG_GUARD;

/// The key every test store knows (Garage's format: `GK` and 24 hex digits).
pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
pub const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The bucket every test store has.
pub const BUCKET: &str = "miniftp-test";
/// Garage's default region.
pub const REGION: &str = "garage";

/// The `garage` binary: `$GARAGE_BIN`, on `PATH`, or in `~/.cargo/bin`
/// (where `cargo install garage` puts it). Without one, says loudly that
/// `what` is skipped; fails if `MINIFTP_REQUIRE_GARAGE` is set.
pub fn binary(what: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::var_os("GARAGE_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::split_paths(&path).map(|directory| directory.join("garage")))
        .chain(dirs::home_dir().map(|home| home.join(".cargo/bin/garage")));
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    assert!(
        std::env::var_os("MINIFTP_REQUIRE_GARAGE").is_none(),
        "MINIFTP_REQUIRE_GARAGE is set but no garage binary was found \
         (cargo install garage --version 2.5.0 --locked)"
    );
    // Written to the process's standard error itself, past the test
    // harness's capture (which would show it only for a failing test),
    // once per run.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        if let Ok(mut stderr) = std::fs::OpenOptions::new().write(true).open("/dev/stderr") {
            let _ = writeln!(
                stderr,
                "\n!!!!!!!! SKIPPED the tests on Garage (the first: {what}): no `garage` binary \
                 (PATH, ~/.cargo/bin, $GARAGE_BIN); install it with \
                 `cargo install garage --version 2.5.0 --locked` !!!!!!!!\n"
            );
        }
    });
    None
}

/// A free loopback port for a node to take. Garage must be given its
/// ports (it cannot report one the kernel chose), so a port is bound, let
/// go, then taken by the node. Port 0 would pick it from the kernel's
/// ephemeral range, where every outgoing connection and every other
/// test's listener get theirs, so another test could take it meanwhile
/// (seen: one node connected to another test's node, whose secret
/// differs). The ports come from below that range instead, each handed out
/// once in this process, from a start that differs between processes.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 20_000;
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&low| low > LOWEST + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral_from - LOWEST;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let offset = (start + HANDED_OUT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(LOWEST + offset).expect("below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral_from}")
}

/// One Garage node.
pub struct Node {
    /// The shell that runs it; it stops the node when its input closes.
    shell: Child,
    input: Option<ChildStdin>,
    /// Its S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its RPC address, `127.0.0.1:PORT`.
    pub rpc: String,
    config: PathBuf,
    binary: PathBuf,
}

impl Node {
    /// Starts a node in `directory` with this configuration's replication.
    fn start(
        binary: &Path,
        directory: &Path,
        replication: u32,
        secret: &str,
        arguments: &[&str],
        environment: &[(&str, &str)],
    ) -> Node {
        std::fs::create_dir_all(directory).unwrap();
        let (s3, rpc) = (free_port(), free_port());
        let config = directory.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{dir}/meta\"\n\
                 data_dir = \"{dir}/data\"\n\
                 db_engine = \"sqlite\"\n\
                 replication_factor = {replication}\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 [s3_api]\n\
                 s3_region = \"{REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                dir = directory.display()
            ),
        )
        .unwrap();
        // The node runs beside a `read` of the shell's input: when the test
        // lets go of it (drop, or the test process ending), the node is
        // killed and its directory removed. $0 is the binary, $1 the
        // configuration, $2 the directory, the rest the server's flags.
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(
                "bin=\"$0\"; config=\"$1\"; dir=\"$2\"; shift 2; \
                 \"$bin\" -c \"$config\" server \"$@\" >\"$dir/log\" 2>&1 & node=$!; \
                 read _; kill -9 $node; wait $node; rm -rf \"$dir\"",
            )
            .arg(binary)
            .arg(&config)
            .arg(directory)
            .args(arguments)
            .envs(environment.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut shell = command.spawn().expect("start garage");
        let input = shell.stdin.take();
        Node {
            shell,
            input,
            endpoint: format!("http://127.0.0.1:{s3}"),
            rpc: format!("127.0.0.1:{rpc}"),
            config,
            binary: binary.to_owned(),
        }
    }

    /// Runs `garage ARGS` against this node; its standard output.
    fn cli(&self, arguments: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(arguments)
            .env("RUST_LOG", "warn")
            .output()
            .map_err(|error| error.to_string())?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    }

    /// [`Node::cli`], retried until the node answers (it may be starting).
    async fn cli_when_up(&self, arguments: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            match self.cli(arguments) {
                Ok(out) => return out,
                Err(error) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "garage {arguments:?}: {error}"
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Kills the node (as a crash would) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut input) = self.input.take() {
            let _ = input.write_all(b"\n");
        }
        let _ = self.shell.wait();
    }

    /// The settings of a tree at `prefix` in the test bucket on this node.
    pub fn settings(&self, prefix: &str) -> S3Settings {
        S3Settings {
            bucket: BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: self.endpoint.clone(),
            region: REGION.to_owned(),
            read_only: false,
            credentials: Some(Credentials {
                access_key_id: ACCESS_KEY.to_owned(),
                secret_access_key: SECRET_KEY.to_owned(),
            }),
        }
    }

    /// Waits until a write through this node succeeds (a node answers 503
    /// until the cluster's layout reaches it).
    pub async fn wait_writable(&self) {
        let operator = operator(&self.endpoint);
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            match operator.write("probe/ready", b"ready".to_vec()).await {
                Ok(_) => return,
                Err(error) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "garage at {} never took a write: {error}",
                    self.endpoint
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An OpenDAL operator on the test bucket at `endpoint`, for looking at the
/// bucket as any other S3 tool would.
pub fn operator(endpoint: &str) -> opendal::Operator {
    let transport = opendal_http_transport_reqwest::ReqwestTransport::new(
        reqwest::Client::builder()
            .tls_backend_preconfigured(
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
            .build()
            .unwrap(),
    );
    opendal::Operator::new(
        opendal::services::S3::default()
            .bucket(BUCKET)
            .endpoint(endpoint)
            .region(REGION)
            .access_key_id(ACCESS_KEY)
            .secret_access_key(SECRET_KEY)
            .disable_ec2_metadata(),
    )
    .unwrap()
    .with_context(
        opendal::OperationContext::new()
            .with_http_transport(opendal::HttpTransporter::new(transport)),
    )
}

/// A store of one or more nodes, and where they live.
pub struct Garage {
    /// Its nodes, in order of start.
    pub nodes: Vec<Node>,
    _directory: TempDir,
}

/// The single node of this test run, started by the first test that needs
/// it; `None` (said loudly) without a `garage` binary.
pub async fn single(what: &str) -> Option<&'static Node> {
    static SINGLE: OnceLock<Garage> = OnceLock::new();
    let binary = binary(what)?;
    // Started once, on a thread of its own so that no test's runtime owns
    // it; the other tests wait for it.
    let garage = SINGLE.get_or_init(|| {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Garage::single_node(&binary))
        })
        .join()
        .expect("starting garage")
    });
    Some(&garage.nodes[0])
}

impl Garage {
    /// One node, with the test key and bucket made at start.
    async fn single_node(binary: &Path) -> Garage {
        let directory = TempDir::new().unwrap();
        // The node's own directory goes with it (its shell removes it).
        let node = Node::start(
            binary,
            &directory.path().join("node"),
            1,
            &random_hex(64),
            &["--single-node", "--default-bucket"],
            &[
                ("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY),
                ("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY),
                ("GARAGE_DEFAULT_BUCKET", BUCKET),
            ],
        );
        node.wait_writable().await;
        Garage {
            nodes: vec![node],
            _directory: directory,
        }
    }

    /// Three nodes, replication factor 3, one zone each, the test bucket
    /// and key made through the first; every node takes writes when this
    /// returns. `None` (said loudly) without a `garage` binary.
    pub async fn cluster(what: &str) -> Option<Garage> {
        let binary = binary(what)?;
        let directory = TempDir::new().unwrap();
        let secret = random_hex(64);
        let nodes: Vec<Node> = (0..3)
            .map(|index| {
                Node::start(
                    &binary,
                    &directory.path().join(format!("node{index}")),
                    3,
                    &secret,
                    &[],
                    &[],
                )
            })
            .collect();
        let mut ids = Vec::new();
        for node in &nodes {
            let out = node.cli_when_up(&["node", "id", "-q"]).await;
            ids.push(out.trim().to_owned());
        }
        let first = &nodes[0];
        for id in &ids[1..] {
            first.cli_when_up(&["node", "connect", id]).await;
        }
        for (index, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap();
            let zone = format!("dc{}", index + 1);
            first
                .cli_when_up(&["layout", "assign", "-z", &zone, "-c", "1G", short])
                .await;
        }
        first
            .cli_when_up(&["layout", "apply", "--version", "1"])
            .await;
        first.cli_when_up(&["bucket", "create", BUCKET]).await;
        first
            .cli_when_up(&[
                "key", "import", "--yes", "-n", "miniftp", ACCESS_KEY, SECRET_KEY,
            ])
            .await;
        first
            .cli_when_up(&[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "miniftp",
            ])
            .await;
        for node in &nodes {
            node.wait_writable().await;
        }
        Some(Garage {
            nodes,
            _directory: directory,
        })
    }
}

/// `length` random hex digits.
pub fn random_hex(length: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

/// A fresh prefix for one test's tree.
pub fn fresh_prefix(what: &str) -> String {
    format!("{what}-{}", random_hex(12))
}
