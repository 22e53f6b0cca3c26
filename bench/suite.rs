//! The benchmark suite: builds nothing itself (cargo builds it, and the
//! server binary, with the release profile), runs every figure on a
//! temporary root on loopback, and prints one table, each figure beside a
//! baseline measured in the same run.
//!
//! ```sh
//! bench/run            # full sizes (1 GiB transfers, 10,000 files, 1,000 clients)
//! bench/run --small    # reduced sizes, as CI runs it so that it cannot rot
//! cargo bench --bench suite -- --ping-pong 20000   # the round-trip floor alone (bench/versus)
//! cargo bench --bench suite -- --info 50000        # info through the API beside the floor, 5 rounds
//! ```
//!
//! The server runs as a separate process (the real `miniftp serve`), so its
//! peak RSS is its own; the client side runs in this process.
//!
//! What TLS costs is measured against a second server on the same root,
//! started with `--tls` (a self-signed certificate in a temporary state
//! directory, trusted on first use by the client): the same big transfers,
//! TLS and plain alternated so that the VM's noise falls on both alike.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miniftp::client::{Client, ClientConfig, Protocol, TransferOptions};
use miniftp::tls::ClientTrust;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sizes of one run.
struct Sizes {
    big_file: u64,
    round_trips: u32,
    pipelined: usize,
    small_files: usize,
    clients: usize,
}

const FULL: Sizes = Sizes {
    big_file: 1 << 30,
    round_trips: 20_000,
    pipelined: 200_000,
    small_files: 10_000,
    clients: 1_000,
};

const SMALL: Sizes = Sizes {
    big_file: 64 << 20,
    round_trips: 500,
    pipelined: 5_000,
    small_files: 300,
    clients: 50,
};

/// Rounds of the TLS comparison: TLS and plain alternated, best of each.
const TLS_ROUNDS: usize = 3;

/// The server under test, stopped on drop.
struct Server {
    child: Child,
    address: String,
    /// How clients trust it, when it speaks TLS.
    tls: Option<Arc<ClientTrust>>,
}

/// How the server under test is reached.
enum Transport<'a> {
    Plain,
    /// `--tls` with a self-signed certificate kept in `state`; clients
    /// record its fingerprint in `known_hosts` on first use.
    Tls {
        state: &'a Path,
        known_hosts: &'a Path,
    },
}

impl Server {
    fn start(root: &Path, max_connections: usize, transport: Transport) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
        command.args(["-q", "serve"]).arg(root).args([
            "--port",
            "0",
            "--max-connections",
            &max_connections.to_string(),
        ]);
        let tls = match transport {
            Transport::Plain => None,
            Transport::Tls { state, known_hosts } => {
                command.arg("--tls").arg("--state-dir").arg(state);
                Some(Arc::new(ClientTrust {
                    accept_new: true,
                    ..ClientTrust::new(known_hosts.to_owned())
                }))
            }
        };
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("the server's first line");
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("an address")
            .to_owned();
        if tls.is_some() {
            // Read the fingerprint line too: were the pipe closed first, the
            // server would fail to print it.
            let mut line = String::new();
            std::io::BufRead::read_line(&mut stdout, &mut line).expect("the TLS line");
            assert!(
                line.starts_with("miniftp: TLS certificate"),
                "not the TLS line: {line:?}"
            );
        }
        Server {
            child,
            address,
            tls,
        }
    }

    /// `miniftp serve --storage LOCATION` on the bench's Garage node.
    fn start_s3(garage: &Garage, location: &str) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
        command
            .args(["-q", "serve", "--port", "0", "--max-connections", "1100"])
            .args(["--storage", location, "--s3-endpoint", &garage.endpoint])
            .args(["--s3-region", GARAGE_REGION])
            .env("AWS_ACCESS_KEY_ID", GARAGE_KEY)
            .env("AWS_SECRET_ACCESS_KEY", GARAGE_SECRET);
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("the server's first line");
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("an address")
            .to_owned();
        Server {
            child,
            address,
            tls: None,
        }
    }

    /// Resets the peak RSS the kernel tracks for the server.
    fn reset_peak(&self) {
        reset_peak(self.child.id());
    }

    fn peak_mib(&self) -> f64 {
        status_kib(self.child.id(), "VmHWM") as f64 / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn reset_peak(pid: u32) {
    // "5" resets VmHWM to the current RSS.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn own_peak_mib() -> f64 {
    status_kib(std::process::id(), "VmHWM") as f64 / 1024.0
}

/// CPU seconds (user + system) a process has used so far, all its threads.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // utime and stime are the 14th and 15th fields, the 12th and 13th after
    // the command name (in parentheses, which may hold spaces); in clock
    // ticks, 100 a second on Linux.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

const GARAGE_KEY: &str = "GK0123456789abcdef01234567";
const GARAGE_SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const GARAGE_BUCKET: &str = "bench";
const GARAGE_REGION: &str = "garage";

/// A single-node Garage on loopback in a temporary directory, stopped (and
/// its directory removed) when the bench lets go of its shell's input.
struct Garage {
    shell: Child,
    endpoint: String,
}

impl Garage {
    /// Starts one, or says why not (no `garage` binary).
    fn start(directory: &Path) -> Option<Garage> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let binary = std::env::split_paths(&path)
            .map(|directory| directory.join("garage"))
            .chain(dirs::home_dir().map(|home| home.join(".cargo/bin/garage")))
            .find(|candidate| candidate.is_file())?;
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (s3, rpc) = (free(), free());
        std::fs::create_dir_all(directory).unwrap();
        let config = directory.join("garage.toml");
        let secret: String = (0..64)
            .map(|i| char::from(b"0123456789abcdef"[(i * 7) % 16]))
            .collect();
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{dir}/meta\"\ndata_dir = \"{dir}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"{GARAGE_REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                dir = directory.display()
            ),
        )
        .unwrap();
        let shell = Command::new("sh")
            .arg("-c")
            .arg(
                "\"$0\" -c \"$1\" server --single-node --default-bucket >\"$2/log\" 2>&1 & node=$!; \
                 read _; kill -9 $node; wait $node; rm -rf \"$2\"",
            )
            .arg(&binary)
            .arg(&config)
            .arg(directory)
            .env("GARAGE_DEFAULT_ACCESS_KEY", GARAGE_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", GARAGE_SECRET)
            .env("GARAGE_DEFAULT_BUCKET", GARAGE_BUCKET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start garage");
        Some(Garage {
            shell,
            endpoint: format!("http://127.0.0.1:{s3}"),
        })
    }

    /// OpenDAL on the bench bucket, as a program of its own would use it.
    fn operator(&self) -> opendal::Operator {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap();
        opendal::Operator::new(
            opendal::services::S3::default()
                .bucket(GARAGE_BUCKET)
                .endpoint(&self.endpoint)
                .region(GARAGE_REGION)
                .access_key_id(GARAGE_KEY)
                .secret_access_key(GARAGE_SECRET)
                .disable_ec2_metadata(),
        )
        .unwrap()
        .with_context(opendal::OperationContext::new().with_http_transport(
            opendal::HttpTransporter::new(opendal_http_transport_reqwest::ReqwestTransport::new(
                http,
            )),
        ))
    }

    /// Waits until the node takes a write (polling; it starts in a second).
    async fn wait_ready(&self) {
        let operator = self.operator();
        let deadline = Instant::now() + Duration::from_secs(60);
        while operator.write("probe", b"ready".to_vec()).await.is_err() {
            assert!(Instant::now() < deadline, "garage never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        drop(self.shell.stdin.take());
        let _ = self.shell.wait();
    }
}

/// The OpenDAL settings the direct baseline uses both ways: 8 MiB chunks,
/// 4 in flight (as measured when the backend was chosen).
const DIRECT_CHUNK: usize = 8 << 20;
const DIRECT_CONCURRENT: usize = 4;

/// Writes the local file `path` to `key` directly with OpenDAL, then reads
/// it back into memory, and into a local file flushed to disk (as `dl`
/// does): the baselines of miniftp on S3, both ways.
async fn direct_opendal(
    operator: &opendal::Operator,
    path: &Path,
    key: &str,
) -> (Duration, Duration, Duration, Duration) {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut writer = operator
        .writer_with(key)
        .chunk(DIRECT_CHUNK)
        .concurrent(DIRECT_CONCURRENT)
        .await
        .unwrap();
    let mut file = tokio::fs::File::open(path).await.unwrap();
    loop {
        let mut block = vec![0u8; 1 << 20];
        let read = file.read(&mut block).await.unwrap();
        if read == 0 {
            break;
        }
        block.truncate(read);
        writer.write(block).await.unwrap();
    }
    writer.close().await.unwrap();
    let write = started.elapsed();
    let size = std::fs::metadata(path).unwrap().len();
    let started = Instant::now();
    let reader = operator
        .reader_with(key)
        .chunk(DIRECT_CHUNK)
        .concurrent(DIRECT_CONCURRENT)
        .await
        .unwrap();
    let mut stream = reader.into_bytes_stream(0..size).await.unwrap();
    let mut total = 0u64;
    while let Some(bytes) = futures::TryStreamExt::try_next(&mut stream).await.unwrap() {
        total += bytes.len() as u64;
    }
    assert_eq!(total, size);
    let read = started.elapsed();
    // One GET streamed, as a miniftp download reads: what bounds it.
    let started = Instant::now();
    let reader = operator.reader_with(key).await.unwrap();
    let mut stream = reader.into_bytes_stream(0..size).await.unwrap();
    let mut total = 0u64;
    while let Some(bytes) = futures::TryStreamExt::try_next(&mut stream).await.unwrap() {
        total += bytes.len() as u64;
    }
    assert_eq!(total, size);
    let one_stream = started.elapsed();
    let started = Instant::now();
    let reader = operator
        .reader_with(key)
        .chunk(DIRECT_CHUNK)
        .concurrent(DIRECT_CONCURRENT)
        .await
        .unwrap();
    let mut stream = reader.into_bytes_stream(0..size).await.unwrap();
    let target = path.with_extension("direct");
    let mut file = tokio::fs::File::create(&target).await.unwrap();
    while let Some(bytes) = futures::TryStreamExt::try_next(&mut stream).await.unwrap() {
        tokio::io::AsyncWriteExt::write_all(&mut file, &bytes)
            .await
            .unwrap();
    }
    file.sync_all().await.unwrap();
    let read_to_file = started.elapsed();
    std::fs::remove_file(&target).unwrap();
    operator.delete(key).await.unwrap();
    (write, read, read_to_file, one_stream)
}

/// How long one GET of a 4 KiB object takes, directly with OpenDAL (mean of
/// 20): what bounds downloads of small files one after another.
async fn small_get(operator: &opendal::Operator) -> Duration {
    operator
        .write("small/probe", vec![5u8; 4096])
        .await
        .unwrap();
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(operator.read("small/probe").await.unwrap().len(), 4096);
    }
    started.elapsed() / 20
}

/// What one transfer took: time, peak RSS and CPU time of both ends.
#[derive(Clone, Copy)]
struct Measure {
    elapsed: Duration,
    server_peak: f64,
    client_peak: f64,
    server_cpu: f64,
    client_cpu: f64,
}

/// Measures from its start (which resets both peaks) to [`Meter::stop`].
struct Meter {
    started: Instant,
    server_cpu: f64,
    client_cpu: f64,
}

impl Meter {
    fn start(server: &Server) -> Meter {
        server.reset_peak();
        reset_peak(std::process::id());
        Meter {
            server_cpu: cpu_seconds(server.child.id()),
            client_cpu: cpu_seconds(std::process::id()),
            started: Instant::now(),
        }
    }

    fn stop(self, server: &Server) -> Measure {
        Measure {
            elapsed: self.started.elapsed(),
            server_peak: server.peak_mib(),
            client_peak: own_peak_mib(),
            server_cpu: cpu_seconds(server.child.id()) - self.server_cpu,
            client_cpu: cpu_seconds(std::process::id()) - self.client_cpu,
        }
    }
}

/// One line of the table.
struct Row {
    figure: String,
    ours: String,
    baseline: String,
    ratio: String,
}

fn row(figure: impl Into<String>, ours: String, baseline: String, ratio: String) -> Row {
    Row {
        figure: figure.into(),
        ours,
        baseline,
        ratio,
    }
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

/// The ceiling: bytes through a plain loopback socket, memory to memory.
async fn raw_tcp(bytes: u64) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = socket.read(&mut buffer).await.unwrap();
            if n == 0 {
                break total;
            }
            total += n as u64;
        }
    });
    let started = Instant::now();
    let mut socket = TcpStream::connect(address).await.unwrap();
    let chunk = vec![7u8; 1 << 20];
    let mut sent = 0;
    while sent < bytes {
        socket.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    socket.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), sent);
    started.elapsed()
}

/// Where the two ends of a round trip run: each on a CPU of its own, the
/// server on the first this process may use and the client on the second,
/// as on two machines. Left to the scheduler, both ends of a loopback
/// round trip sometimes share one core, and then every round trip (the
/// floor's as well) is two to three times faster than with a core each:
/// the ratios were noise. `None` with a single CPU (nothing is pinned).
#[derive(Clone, Copy)]
struct Placement {
    server: usize,
    client: usize,
}

impl Placement {
    fn of_this_machine() -> Option<Placement> {
        let allowed = Placement::allowed();
        Some(Placement {
            server: allowed.first()?.parse().ok()?,
            client: allowed.get(1)?.parse().ok()?,
        })
    }

    /// The CPUs the calling thread may run on.
    fn allowed() -> Vec<String> {
        let Ok(allowed) = rustix::thread::sched_getaffinity(None) else {
            return Vec::new();
        };
        (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| allowed.is_set(cpu))
            .map(|cpu| cpu.to_string())
            .collect()
    }

    /// Runs the calling thread on `cpu` from now on.
    fn pin_this_thread(cpu: usize) {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
    }

    /// Runs every thread of the process `pid` on `cpus` (a `taskset` list)
    /// from now on.
    fn pin_process(pid: u32, cpus: &str) {
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("taskset (util-linux)");
        assert!(status.success(), "taskset -a -p -c {cpus} {pid}");
    }

    /// Runs `client` on a thread of its own on the client's CPU, the
    /// server's process `server` on the server's CPU meanwhile (and on
    /// every CPU again after).
    fn round_trips<T: Send>(
        placement: Option<Placement>,
        server: u32,
        client: impl FnOnce() -> T + Send,
    ) -> T {
        let Some(placement) = placement else {
            return std::thread::scope(|scope| {
                scope.spawn(client).join().expect("the round trips")
            });
        };
        let allowed = Placement::allowed().join(",");
        Placement::pin_process(server, &placement.server.to_string());
        let result = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    Placement::pin_this_thread(placement.client);
                    client()
                })
                .join()
                .expect("the round trips")
        });
        Placement::pin_process(server, &allowed);
        result
    }
}

/// The round-trip floor: one byte each way over a plain loopback socket,
/// blocking sockets at both ends (no runtime at all), each end a thread of
/// its own, as a blocking C server and client would do it; placed as the
/// server and client of the other round trips ([`Placement`]).
fn blocking_round_trips(count: u32, placement: Option<Placement>) -> f64 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        if let Some(placement) = placement {
            Placement::pin_this_thread(placement.server);
        }
        let (mut socket, _) = listener.accept().unwrap();
        socket.set_nodelay(true).unwrap();
        let mut byte = [0u8; 1];
        while socket.read_exact(&mut byte).is_ok() {
            socket.write_all(&byte).unwrap();
        }
    });
    let rate = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(placement) = placement {
                    Placement::pin_this_thread(placement.client);
                }
                let mut socket = std::net::TcpStream::connect(address).unwrap();
                socket.set_nodelay(true).unwrap();
                let started = Instant::now();
                let mut byte = [0u8; 1];
                for _ in 0..count {
                    socket.write_all(&byte).unwrap();
                    socket.read_exact(&mut byte).unwrap();
                }
                f64::from(count) / started.elapsed().as_secs_f64()
            })
            .join()
            .expect("the ping-pong")
    });
    echo.join().unwrap();
    rate
}

/// The wire's ceiling as iperf3 measures it (one stream, 3 s, loopback),
/// in MiB/s; `None` without iperf3 (`bench/versus` installs it).
fn iperf3_one_stream() -> Option<f64> {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port()
        .to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Until the server listens, the client fails at once: try again.
    let mut output = None;
    for _ in 0..100 {
        let attempt = Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port, "-t", "3", "-J"])
            .output()
            .ok()?;
        if attempt.status.success() {
            output = Some(attempt);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(output) = output else {
        let _ = server.kill();
        return None;
    };
    let _ = server.wait();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let bits = report["end"]["sum_received"]["bits_per_second"].as_f64()?;
    Some(bits / 8.0 / f64::from(1 << 20))
}

/// Runs `work` on a current-thread runtime of its own, as `miniftp connect`
/// runs its client: a round trip then wakes the thread that waits for it
/// directly, not through a worker of the multi-thread runtime (two futex
/// calls per round trip, `strace -c`).
fn on_current_thread<T: Send>(work: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(work)
            })
            .join()
            .expect("the round trips")
    })
}

fn write_random_file(path: &Path, size: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for byte in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = (state >> 24) as u8;
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}

async fn connect(server: &Server, protocol: Protocol) -> Client {
    let config = ClientConfig {
        protocol,
        tls: server.tls.clone(),
        ..ClientConfig::default()
    };
    Client::connect(&server.address, config)
        .await
        .expect("connect")
}

/// `ul`, `dl` to disk and `dl` to memory of one big file, measured.
async fn big_transfer(
    server: &Server,
    protocol: Protocol,
    local: &Path,
    size: u64,
) -> [Measure; 3] {
    let mut client = connect(server, protocol).await;
    assert_eq!(client.is_extended(), protocol == Protocol::Auto);
    let meter = Meter::start(server);
    client
        .upload_file(local, "big.bin", TransferOptions::default(), |_| {})
        .await
        .expect("upload");
    let up = meter.stop(server);
    let target = local.with_extension("back");
    let meter = Meter::start(server);
    let received = client
        .download_file("big.bin", &target, TransferOptions::default(), |_| {})
        .await
        .expect("download");
    let down = meter.stop(server);
    assert_eq!(received, size);
    std::fs::remove_file(&target).unwrap();
    // The same download into memory: the protocol without the client's disk.
    let meter = Meter::start(server);
    let received = client
        .download("big.bin", tokio::io::sink(), |_| {})
        .await
        .expect("download to memory");
    let to_memory = meter.stop(server);
    assert_eq!(received, size);
    client.remove("big.bin").await.unwrap();
    [up, down, to_memory]
}

/// What this disk takes: writing `size` bytes and flushing them (the bound
/// of any upload, and of any download to disk).
fn disk_write(path: &Path, size: u64) -> Duration {
    use std::io::Write;
    let started = Instant::now();
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![3u8; 1 << 20];
    for _ in 0..size >> 20 {
        file.write_all(&block).unwrap();
    }
    file.sync_all().unwrap();
    let elapsed = started.elapsed();
    std::fs::remove_file(path).unwrap();
    elapsed
}

async fn round_trips(server: &Server, protocol: Protocol, count: u32) -> f64 {
    let mut client = connect(server, protocol).await;
    client.make_directory("rt").await.ok();
    let started = Instant::now();
    for _ in 0..count {
        client.change_directory("/").await.expect("cd");
    }
    f64::from(count) / started.elapsed().as_secs_f64()
}

async fn info_round_trips(server: &Server, protocol: Protocol, count: u32) -> f64 {
    let mut client = connect(server, protocol).await;
    let started = Instant::now();
    for _ in 0..count {
        client.size("one.txt").await.expect("info");
    }
    f64::from(count) / started.elapsed().as_secs_f64()
}

async fn pipelined_stats(server: &Server, count: usize) -> f64 {
    let mut client = connect(server, Protocol::Auto).await;
    let paths = vec!["one.txt".to_owned(); count];
    let started = Instant::now();
    let results = client.stat_many(&paths).await.expect("stat_many");
    let elapsed = started.elapsed();
    assert!(results.iter().all(Result::is_ok));
    count as f64 / elapsed.as_secs_f64()
}

fn small_tree(root: &Path, files: usize) -> PathBuf {
    let tree = root.join("tree");
    for index in 0..files {
        let directory = tree.join(format!("d{:02}", index % 50));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(
            directory.join(format!("f{index:05}.bin")),
            vec![(index % 251) as u8; 4096],
        )
        .unwrap();
    }
    tree
}

/// Recursive upload and download of a tree of small files: files per second
/// each way, beside the same files uploaded one by one (one round trip each).
async fn small_files(server: &Server, work: &Path, files: usize) -> (f64, f64, f64) {
    let tree = small_tree(work, files);
    let mut client = connect(server, Protocol::Auto).await;
    let started = Instant::now();
    let summary = client
        .upload_tree(&tree, "tree", |_| {})
        .await
        .expect("ul -r");
    let up = files as f64 / started.elapsed().as_secs_f64();
    assert_eq!((summary.files as usize, summary.failures.len()), (files, 0));
    let back = work.join("tree-back");
    let started = Instant::now();
    let summary = client
        .download_tree("tree", &back, |_| {})
        .await
        .expect("dl -r");
    let down = files as f64 / started.elapsed().as_secs_f64();
    assert_eq!((summary.files as usize, summary.failures.len()), (files, 0));
    // Baseline: the first tenth of the files, one request at a time.
    let sample: Vec<_> = walk_files(&tree).into_iter().take(files / 10).collect();
    client.make_directories("serial").await.unwrap();
    let started = Instant::now();
    for (index, path) in sample.iter().enumerate() {
        client
            .upload_file(
                path,
                &format!("serial/{index}"),
                TransferOptions::default(),
                |_| {},
            )
            .await
            .expect("ul");
    }
    let serial = sample.len() as f64 / started.elapsed().as_secs_f64();
    (up, down, serial)
}

fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(directory) = stack.pop() {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Many clients at once, each downloading the same 1 MiB file.
async fn many_clients(server: &Server, count: usize) -> (Duration, usize) {
    server.reset_peak();
    let started = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let address = server.address.clone();
            tokio::spawn(async move {
                let config = ClientConfig {
                    timeout: Duration::from_secs(60),
                    ..ClientConfig::default()
                };
                let mut client = Client::connect(&address, config).await?;
                let mut sink = Vec::with_capacity(1 << 20);
                let n = client.download("mib.bin", &mut sink, |_| {}).await?;
                Ok::<_, miniftp::client::ClientError>(n == 1 << 20)
            })
        })
        .collect();
    let mut failures = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(true))) {
            failures += 1;
        }
    }
    (started.elapsed(), failures)
}

/// miniftp on a bucket against OpenDAL used directly, in the same run on
/// the same single Garage node: 1 GiB each way (best of rounds, alternated),
/// the server's peak RSS, and small files against the local disk.
async fn s3_figures(
    garage: &Garage,
    big: &Path,
    work: &Path,
    sizes: &Sizes,
    local_up: f64,
    local_down: f64,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let label = format!("{} MiB", sizes.big_file >> 20);
    let server = Server::start_s3(garage, &format!("s3://{GARAGE_BUCKET}/miniftp"));
    let operator = garage.operator();
    let mut direct = Vec::new();
    let mut ours = Vec::new();
    for round in 0..S3_ROUNDS {
        direct.push(direct_opendal(&operator, big, &format!("direct/{round}.bin")).await);
        ours.push(big_transfer(&server, Protocol::Auto, big, sizes.big_file).await);
    }
    let best = |values: &mut dyn Iterator<Item = Duration>| values.min().expect("a round");
    let direct_write = best(&mut direct.iter().map(|(write, _, _, _)| *write));
    let direct_read = best(&mut direct.iter().map(|(_, read, _, _)| *read));
    let direct_read_to_file = best(&mut direct.iter().map(|(_, _, to_file, _)| *to_file));
    let direct_one_stream = best(&mut direct.iter().map(|(_, _, _, one)| *one));
    for (verb, index, baseline, baseline_verb) in [
        ("ul", 0, direct_write, "OpenDAL write"),
        ("dl to memory", 2, direct_read, "OpenDAL read"),
        ("dl", 1, direct_read_to_file, "OpenDAL read to a file"),
    ] {
        let elapsed = best(&mut ours.iter().map(|run| run[index].elapsed));
        let (rate, base) = (
            mib_per_s(sizes.big_file, elapsed),
            mib_per_s(sizes.big_file, baseline),
        );
        rows.push(row(
            format!("S3: {verb} {label} vs {baseline_verb} direct (MiB/s), best of {S3_ROUNDS}"),
            format!("{rate:.0}"),
            format!("{base:.0}"),
            format!("{:.2}", rate / base),
        ));
        let peak = ours
            .iter()
            .map(|run| run[index].server_peak)
            .fold(0.0, f64::max);
        rows.push(row(
            "  server peak RSS, highest (MiB)",
            format!("{peak:.1}"),
            String::new(),
            String::new(),
        ));
    }
    let dl_to_memory = best(&mut ours.iter().map(|run| run[2].elapsed));
    rows.push(row(
        "  bound: OpenDAL direct, one GET streamed (MiB/s)",
        format!("{:.0}", mib_per_s(sizes.big_file, dl_to_memory)),
        format!("{:.0}", mib_per_s(sizes.big_file, direct_one_stream)),
        format!(
            "{:.2}",
            direct_one_stream.as_secs_f64() / dl_to_memory.as_secs_f64()
        ),
    ));
    let s3_work = work.join("s3-small");
    std::fs::create_dir_all(&s3_work).unwrap();
    let (up, down, _) = small_files(&server, &s3_work, sizes.small_files).await;
    let files = sizes.small_files;
    rows.push(row(
        format!("S3: ul -r {files} files of 4 KiB (files/s) vs local disk"),
        format!("{up:.0}"),
        format!("{local_up:.0}"),
        format!("{:.2}", up / local_up),
    ));
    rows.push(row(
        format!("S3: dl -r {files} files of 4 KiB (files/s) vs local disk"),
        format!("{down:.0}"),
        format!("{local_down:.0}"),
        format!("{:.2}", down / local_down),
    ));
    let clients = sizes.clients;
    let two_mib = work.join("two-mib.bin");
    write_random_file(&two_mib, 2 << 20);
    let many = many_s3_transfers(&server, clients, &two_mib).await;
    for (verb, (seconds, failures, peak)) in [("ul", many.up), ("dl", many.down)] {
        rows.push(row(
            format!("S3: {clients} clients each {verb} 2 MiB at once: total s, failures"),
            format!("{seconds:.2}"),
            format!("{failures}"),
            String::new(),
        ));
        rows.push(row(
            "  server peak RSS (MiB), per transfer (KiB)",
            format!("{peak:.1}"),
            format!("{:.0}", peak * 1024.0 / clients as f64),
            String::new(),
        ));
    }
    let get = small_get(&operator).await;
    rows.push(row(
        "  bound: one GET of 4 KiB, OpenDAL direct (ms) -> files/s",
        format!("{:.1}", get.as_secs_f64() * 1000.0),
        format!("{:.0}", 1.0 / get.as_secs_f64()),
        String::new(),
    ));
    rows
}

/// What [`many_s3_transfers`] measured: seconds, failures and the server's
/// peak RSS (MiB) of the uploads, then of the downloads.
struct ManyTransfers {
    up: (f64, usize, f64),
    down: (f64, usize, f64),
}

/// `count` clients at once, each uploading `file` (over the size held whole,
/// so each is a multipart upload streamed part by part), then each
/// downloading it back.
async fn many_s3_transfers(server: &Server, count: usize, file: &Path) -> ManyTransfers {
    let mut client = connect(server, Protocol::Auto).await;
    client.make_directories("many").await.unwrap();
    server.reset_peak();
    let config = || ClientConfig {
        timeout: Duration::from_secs(120),
        ..ClientConfig::default()
    };
    let started = Instant::now();
    let uploads: Vec<_> = (0..count)
        .map(|index| {
            let (address, file, config) = (server.address.clone(), file.to_owned(), config());
            tokio::spawn(async move {
                let mut client = Client::connect(&address, config).await?;
                client
                    .upload_file(
                        &file,
                        &format!("many/{index}.bin"),
                        TransferOptions::default(),
                        |_| {},
                    )
                    .await
                    .map(drop)
            })
        })
        .collect();
    let mut up_failures = 0;
    for upload in uploads {
        if !matches!(upload.await, Ok(Ok(()))) {
            up_failures += 1;
        }
    }
    let up = (
        started.elapsed().as_secs_f64(),
        up_failures,
        server.peak_mib(),
    );
    server.reset_peak();
    let size = std::fs::metadata(file).unwrap().len();
    let started = Instant::now();
    let downloads: Vec<_> = (0..count)
        .map(|index| {
            let (address, config) = (server.address.clone(), config());
            tokio::spawn(async move {
                let mut client = Client::connect(&address, config).await?;
                client
                    .download(&format!("many/{index}.bin"), tokio::io::sink(), |_| {})
                    .await
            })
        })
        .collect();
    let mut down_failures = 0;
    for download in downloads {
        if !matches!(download.await, Ok(Ok(received)) if received == size) {
            down_failures += 1;
        }
    }
    let down = (
        started.elapsed().as_secs_f64(),
        down_failures,
        server.peak_mib(),
    );
    ManyTransfers { up, down }
}

/// Rounds of the S3 comparison: direct and through miniftp alternated.
const S3_ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    // `--ping-pong COUNT`: the round-trip floor alone, printed as round
    // trips/s (bench/versus sets it beside vsftpd and a miniftp batch).
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(at) = arguments.iter().position(|arg| arg == "--ping-pong") {
        let count = arguments
            .get(at + 1)
            .and_then(|count| count.parse().ok())
            .expect("--ping-pong COUNT");
        println!(
            "{:.0}",
            blocking_round_trips(count, Placement::of_this_machine())
        );
        return;
    }
    // `--info COUNT`: info round trips through the client API beside the
    // floor, alternated, five rounds (for measuring one change).
    if let Some(at) = arguments.iter().position(|arg| arg == "--info") {
        let count = arguments
            .get(at + 1)
            .and_then(|count| count.parse().ok())
            .expect("--info COUNT");
        let work = tempfile::TempDir::new().expect("a temporary directory");
        std::fs::write(work.path().join("one.txt"), b"12345").unwrap();
        let server = Server::start(work.path(), 64, Transport::Plain);
        let placement = Placement::of_this_machine();
        for _ in 0..5 {
            let info = Placement::round_trips(placement, server.child.id(), || {
                on_current_thread(info_round_trips(&server, Protocol::Auto, count))
            });
            let floor = blocking_round_trips(count, placement);
            println!("info {info:.0} floor {floor:.0} ratio {:.3}", info / floor);
        }
        return;
    }
    let small = std::env::args().any(|arg| arg == "--small");
    let sizes = if small { SMALL } else { FULL };
    let s3_only = std::env::args().any(|arg| arg == "--s3");
    let work = tempfile::TempDir::new().expect("a temporary directory");
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("one.txt"), b"12345").unwrap();
    write_random_file(&root.join("mib.bin"), 1 << 20);
    let server = Server::start(&root, sizes.clients + 64, Transport::Plain);
    let mut rows = Vec::new();

    let big = work.path().join("big.bin");
    write_random_file(&big, sizes.big_file);
    // `--s3`: the object storage figures alone (and the local small files
    // they are compared with).
    if !s3_only {
        let ceiling = raw_tcp(sizes.big_file).await;
        let ceiling_rate = mib_per_s(sizes.big_file, ceiling);
        let label = format!("{} MiB", sizes.big_file >> 20);
        rows.push(row(
            format!("raw TCP loopback, {label} (MiB/s): the ceiling"),
            format!("{ceiling_rate:.0}"),
            String::new(),
            "1.00".into(),
        ));
        let disk = mib_per_s(
            sizes.big_file,
            disk_write(&work.path().join("disk.bin"), sizes.big_file),
        );
        rows.push(row(
            format!("disk write + fsync, {label} (MiB/s) vs ceiling"),
            format!("{disk:.0}"),
            format!("{ceiling_rate:.0}"),
            format!("{:.2}", disk / ceiling_rate),
        ));
        let mut plain_extended = Vec::new();
        for (protocol, name) in [(Protocol::Auto, "extended"), (Protocol::Classic, "classic")] {
            let [up, down, to_memory] = big_transfer(&server, protocol, &big, sizes.big_file).await;
            if protocol == Protocol::Auto {
                plain_extended.push([up, down, to_memory]);
            }
            for (verb, measure) in [("ul", up), ("dl", down), ("dl to memory", to_memory)] {
                let rate = mib_per_s(sizes.big_file, measure.elapsed);
                rows.push(row(
                    format!("{verb} {label} {name} (MiB/s) vs ceiling"),
                    format!("{rate:.0}"),
                    format!("{ceiling_rate:.0}"),
                    format!("{:.2}", rate / ceiling_rate),
                ));
                rows.push(row(
                    "  peak RSS server / client (MiB)".to_owned(),
                    format!("{:.1}", measure.server_peak),
                    format!("{:.1}", measure.client_peak),
                    String::new(),
                ));
            }
        }

        // TLS against plain, extended protocol, same root and file: the plain
        // transfers above are the first plain round, then TLS and plain
        // alternate so that neither gets the quieter moments.
        let tls_server = Server::start(
            &root,
            64,
            Transport::Tls {
                state: &work.path().join("tls-state"),
                known_hosts: &work.path().join("known_hosts"),
            },
        );
        let mut tls_extended = Vec::new();
        for round in 0..TLS_ROUNDS {
            tls_extended
                .push(big_transfer(&tls_server, Protocol::Auto, &big, sizes.big_file).await);
            if round + 1 < TLS_ROUNDS {
                plain_extended
                    .push(big_transfer(&server, Protocol::Auto, &big, sizes.big_file).await);
            }
        }
        drop(tls_server);
        let to_memory = plain_extended
            .iter()
            .map(|run| mib_per_s(sizes.big_file, run[2].elapsed))
            .fold(0.0, f64::max);
        match iperf3_one_stream() {
            Some(wire) => rows.push(row(
                format!("dl to memory {label} extended vs iperf3 one stream (MiB/s), best"),
                format!("{to_memory:.0}"),
                format!("{wire:.0}"),
                format!("{:.2}", to_memory / wire),
            )),
            None => {
                eprintln!("(no iperf3: the row against it is left out; bench/versus installs it)")
            }
        }
        let gib = sizes.big_file as f64 / f64::from(1 << 30);
        for (index, verb) in ["ul", "dl", "dl to memory"].into_iter().enumerate() {
            // The best of each: the least disturbed round. CPU time, which the
            // VM's noise inflates less than elapsed time, says what bounds it.
            let best = |runs: &[[Measure; 3]],
                        figure: &dyn Fn(&Measure) -> f64,
                        better: fn(f64, f64) -> f64| {
                runs.iter()
                    .map(|run| figure(&run[index]))
                    .reduce(better)
                    .expect("a round")
            };
            let rate = |measure: &Measure| mib_per_s(sizes.big_file, measure.elapsed);
            let (tls, plain) = (
                best(&tls_extended, &rate, f64::max),
                best(&plain_extended, &rate, f64::max),
            );
            rows.push(row(
                format!("{verb} {label} extended TLS vs plain (MiB/s), best of {TLS_ROUNDS}"),
                format!("{tls:.0}"),
                format!("{plain:.0}"),
                format!("{:.2}", tls / plain),
            ));
            rows.push(row(
                "  peak RSS server / client with TLS, highest (MiB)",
                format!("{:.1}", best(&tls_extended, &|m| m.server_peak, f64::max)),
                format!("{:.1}", best(&tls_extended, &|m| m.client_peak, f64::max)),
                String::new(),
            ));
            for (side, cpu) in [
                ("server", (|m| m.server_cpu) as fn(&Measure) -> f64),
                ("client", |m| m.client_cpu),
            ] {
                let (tls, plain) = (
                    best(&tls_extended, &cpu, f64::min) / gib,
                    best(&plain_extended, &cpu, f64::min) / gib,
                );
                rows.push(row(
                    format!("  {side} CPU s per GiB, TLS vs plain, least"),
                    format!("{tls:.2}"),
                    format!("{plain:.2}"),
                    format!("{:.2}", tls / plain),
                ));
            }
        }

        let placement = Placement::of_this_machine();
        let (extended_cd, extended_info, classic_info, pipelined) =
            Placement::round_trips(placement, server.child.id(), || {
                on_current_thread(async {
                    (
                        round_trips(&server, Protocol::Auto, sizes.round_trips).await,
                        info_round_trips(&server, Protocol::Auto, sizes.round_trips).await,
                        info_round_trips(&server, Protocol::Classic, sizes.round_trips / 10).await,
                        pipelined_stats(&server, sizes.pipelined).await,
                    )
                })
            });
        let blocking = blocking_round_trips(sizes.round_trips, placement);
        rows.push(row(
            "info round trips/s, one connection: extended vs classic",
            format!("{extended_info:.0}"),
            format!("{classic_info:.0}"),
            format!("{:.1}", extended_info / classic_info),
        ));
        rows.push(row(
            "info round trips/s (extended) vs blocking-socket 1-byte ping-pong (a CPU each end)",
            format!("{extended_info:.0}"),
            format!("{blocking:.0}"),
            format!("{:.2}", extended_info / blocking),
        ));
        rows.push(row(
            "cd round trips/s, one connection (extended)",
            format!("{extended_cd:.0}"),
            String::new(),
            String::new(),
        ));
        rows.push(row(
            "pipelined stat/s vs sequential info/s (extended)",
            format!("{pipelined:.0}"),
            format!("{extended_info:.0}"),
            format!("{:.1}", pipelined / extended_info),
        ));
    }

    let (up, down, serial) = small_files(&server, work.path(), sizes.small_files).await;
    let files = sizes.small_files;
    rows.push(row(
        format!("ul -r {files} files of 4 KiB (files/s) vs one by one"),
        format!("{up:.0}"),
        format!("{serial:.0}"),
        format!("{:.1}", up / serial),
    ));
    rows.push(row(
        format!("dl -r {files} files of 4 KiB (files/s) vs ul one by one"),
        format!("{down:.0}"),
        format!("{serial:.0}"),
        format!("{:.1}", down / serial),
    ));

    let (local_up, local_down) = (up, down);
    let garage = Garage::start(&work.path().join("garage"));
    match &garage {
        None => {
            eprintln!(
                "\n!!!!!!!! SKIPPED the object storage figures: no `garage` binary \
                 (cargo install garage --version 2.5.0 --locked) !!!!!!!!\n"
            );
            assert!(
                std::env::var_os("MINIFTP_REQUIRE_GARAGE").is_none(),
                "MINIFTP_REQUIRE_GARAGE is set but no garage binary was found"
            );
        }
        Some(garage) => {
            garage.wait_ready().await;
            rows.extend(s3_figures(garage, &big, work.path(), &sizes, local_up, local_down).await);
        }
    }
    drop(garage);

    let (elapsed, failures) = many_clients(&server, sizes.clients).await;
    let clients = sizes.clients;
    rows.push(row(
        format!("{clients} clients each dl 1 MiB: total s, failures"),
        format!("{:.2}", elapsed.as_secs_f64()),
        format!("{failures}"),
        String::new(),
    ));
    rows.push(row(
        "  server peak RSS (MiB)",
        format!("{:.1}", server.peak_mib()),
        String::new(),
        String::new(),
    ));

    println!(
        "{:<64} {:>10} {:>10} {:>7}",
        "figure", "ours", "baseline", "ratio"
    );
    for row in rows {
        println!(
            "{:<64} {:>10} {:>10} {:>7}",
            row.figure, row.ours, row.baseline, row.ratio
        );
    }
}
