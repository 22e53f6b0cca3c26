//! `miniftp serve`: share a directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use miniftp::{ServerConfig, Storage};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Share a directory over TCP.
///
/// Serves ROOT (default: the current directory) to any number of clients at
/// once. Prints one line naming the address and root, then logs connections
/// and commands on standard error. Ctrl-C or SIGTERM stops it gracefully:
/// no new connections, commands in flight finish within the grace period.
///
/// Examples:
///   miniftp serve                       share . on 127.0.0.1:65438
///   miniftp serve ~/public --port 0     pick a free port (printed)
///   miniftp serve /srv/files --host 0.0.0.0 --max-upload-size 1073741824
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Directory to share.
    #[arg(default_value = ".")]
    root: PathBuf,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, short, default_value_t = 65438)]
    port: u16,

    /// Most clients served at once; others are told the server is busy.
    #[arg(long, default_value_t = ServerConfig::default().max_connections)]
    max_connections: usize,

    /// Seconds a client may stay silent before it is disconnected.
    #[arg(long, value_name = "SECONDS", default_value_t = ServerConfig::default().idle_timeout.as_secs())]
    idle_timeout: u64,

    /// Longest command accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ServerConfig::default().max_command_len)]
    max_command_len: usize,

    /// Largest upload accepted, in bytes (default: no limit).
    #[arg(long, value_name = "BYTES")]
    max_upload_size: Option<u64>,

    /// Seconds to let commands in flight finish when shutting down.
    #[arg(long, value_name = "SECONDS", default_value_t = ServerConfig::default().shutdown_grace.as_secs())]
    shutdown_grace: u64,

    /// Send messages as fast as possible, without waiting for classic
    /// clients to read each one (breaks the original client).
    #[arg(long)]
    no_pacing: bool,
}

impl ServeArgs {
    fn config(&self) -> ServerConfig {
        ServerConfig {
            max_connections: self.max_connections,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_command_len: self.max_command_len,
            max_upload_size: self.max_upload_size,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            pacing: !self.no_pacing,
            ..ServerConfig::default()
        }
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

/// Raises the soft limit on open files to the hard limit: each client costs
/// a descriptor (two while it transfers a file), and a common soft limit of
/// 1,024 would be below the default connection limit.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(%error, "could not raise the open file limit");
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    raise_open_file_limit();
    let root = std::fs::canonicalize(&args.root)
        .with_context(|| format!("cannot share {}", args.root.display()))?;
    let storage =
        Storage::open(&root).with_context(|| format!("cannot share {}", root.display()))?;
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let address = listener.local_addr()?;
    println!("miniftp: serving {} on {address}", root.display());
    std::io::stdout().flush()?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    miniftp::server::run(listener, storage, args.config(), shutdown).await;
    tracing::info!("server stopped");
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
