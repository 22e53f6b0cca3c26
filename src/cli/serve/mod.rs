//! `miniftp serve`: share a directory. The settings come from a file, the
//! environment and flags ([`settings`]); this module turns them into a
//! [`ServerConfig`], warns about what is exposed, and runs the server.

mod settings;
mod size;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args, ValueHint};
use miniftp::accounts::Accounts;
use miniftp::config::{AnonymousAccess, LoginFailurePolicy};
use miniftp::storage::S3Bucket;
use miniftp::storage::s3::S3Settings;
use miniftp::tls::ServerIdentity;
use miniftp::{Access, ServerConfig, Storage};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use settings::{Anonymous, Layer, Settings};

/// Share a directory over TCP, and with --http in any browser and WebDAV.
///
/// Serves ROOT (default: the current directory) to any number of clients at
/// once. Prints one line naming the address and root (and one with the TLS
/// certificate's fingerprint, one with the web address), then logs
/// connections and commands on standard error.
///
/// With --http PORT, also serves a web page (browse, download, upload,
/// rename, delete, in any browser) and WebDAV on the same paths, with the
/// same accounts, read-only rule, limits, TLS certificate and logs.
///
/// Ctrl-C or SIGTERM stops it gracefully: no new connections, commands in
/// flight finish within the grace period.
///
/// Every setting can also come from a configuration file (--config, TOML)
/// or an environment variable: a flag overrides its variable, which
/// overrides the file. In the file each key is the flag's name with '_' for
/// '-' (max_upload_size = "1G", read_only = true); --print-config shows them
/// all. A switch such as --read-only means --read-only=true; --read-only=false
/// turns off what the file or the environment turned on.
///
/// Listening beyond this machine (--host 0.0.0.0) without TLS, or without
/// accounts, is warned about at start.
///
/// With --storage s3://BUCKET[/PREFIX] it serves a bucket of S3-compatible
/// object storage instead of ROOT, and any number of servers may share the
/// bucket (README: "Several servers, one bucket"). The key comes from
/// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the credentials file; a
/// wrong endpoint, bucket, region or key is said at start (exit code 2).
/// Files are objects, directories prefixes (an empty one a marker object);
/// uploads appear whole or not at all and resume through any server.
/// There, mv is a copy then a delete: not atomic across objects, and a
/// directory of more than 10,000 objects is refused. Memory: an upload
/// streams 8 MiB parts (part size) with at most 2 awaiting the store (parts
/// in flight), never a part held whole: about 256 KiB between the client
/// and the store; a file of up to 1 MiB is held whole until committed, and
/// one of unknown size (a classic client) 8 MiB at a time, up to 24 MiB; a
/// download streams one GET. Measured with 1,000 transfers at once, each
/// costing the server under 0.8 MiB in all (its connection's buffers
/// included): 494 to 771 MiB for 1,000 uploads,
/// 767 to 798 MiB for 1,000 downloads (bench/run --s3, several runs).
///
/// Examples:
///   miniftp serve                              share . on 127.0.0.1:65438
///   miniftp serve ~/public --port 0            pick a free port (printed)
///   miniftp serve ~/public --http 8080         and a web page on port 8080
///   miniftp serve /srv/files --host 0.0.0.0 --tls --users users.toml
///   miniftp serve /srv/files --host 0.0.0.0 --read-only --rate-limit 10M
///   miniftp serve --config /etc/miniftp.toml   settings from a file
///   miniftp serve --print-config > miniftp.toml   start a configuration file
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Boxed: the settings are most of `miniftp`'s arguments, and the
    /// subcommands live in one enum.
    #[command(flatten)]
    layer: Box<Layer>,

    /// Read settings from this TOML file (flags and MINIFTP_* variables
    /// override it)
    #[arg(
        long,
        env = "MINIFTP_CONFIG",
        help_heading = "Configuration",
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
    )]
    config: Option<PathBuf>,

    /// Print the effective settings as a configuration file, and exit
    #[arg(long, help_heading = "Configuration", action = ArgAction::SetTrue)]
    print_config: bool,
}

/// Runs the server until Ctrl-C or SIGTERM, or prints the settings.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => Layer::read(path)?,
        None => Layer::default(),
    };
    let settings = Settings::resolve(args.layer.over(file))?;
    if args.print_config {
        print!("{}", settings.to_toml()?);
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(serve(settings))
}

/// The server's configuration, and its TLS identity if any, from the
/// settings: reads the users file and the certificate (or generates one).
fn server_config(settings: &Settings) -> anyhow::Result<(ServerConfig, Option<ServerIdentity>)> {
    let identity = match settings.tls {
        true => Some(miniftp::tls::load_server_identity(
            settings.cert.as_deref(),
            settings.key.as_deref(),
            &settings.state_dir,
        )?),
        false => None,
    };
    let accounts = match &settings.users {
        Some(path) => Some(Arc::new(Accounts::load(path)?)),
        None => None,
    };
    let anonymous = match settings.anonymous {
        Anonymous::Off => None,
        Anonymous::Ro => Some(Access::ReadOnly),
        Anonymous::Rw => Some(Access::ReadWrite),
    }
    .map(|access| AnonymousAccess {
        access,
        home: settings.anonymous_home.clone(),
    });
    let config = ServerConfig {
        max_connections: settings.max_connections,
        max_connections_per_ip: (settings.max_connections_per_ip != 0)
            .then_some(settings.max_connections_per_ip),
        per_ip_exempts_loopback: true,
        idle_timeout: Duration::from_secs(settings.idle_timeout),
        handshake_timeout: Duration::from_secs(settings.handshake_timeout),
        max_command_len: settings.max_command_len,
        max_upload_size: settings.max_upload_size,
        rate_limit: (settings.rate_limit != 0).then_some(settings.rate_limit),
        shutdown_grace: Duration::from_secs(settings.shutdown_grace),
        pacing: !settings.no_pacing,
        read_only: settings.read_only,
        tls: identity
            .as_ref()
            .map(|identity| Arc::clone(&identity.config)),
        accounts,
        anonymous,
        allow_insecure_login: settings.allow_insecure_login,
        login_failures: LoginFailurePolicy {
            ban_after: settings.login_ban_after,
            ban_for: Duration::from_secs(settings.login_ban_time),
            ..LoginFailurePolicy::default()
        },
    };
    Ok((config, identity))
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

/// The tree to serve, and how it is named at start: the local directory,
/// or a bucket (checked now: a wrong endpoint, bucket, region or key is
/// one line and exit code 2, before any client comes).
async fn open_storage(settings: &Settings) -> anyhow::Result<Result<(Storage, String), String>> {
    let Some(location) = &settings.storage else {
        let root = settings.root.clone().unwrap_or_else(|| PathBuf::from("."));
        let root = std::fs::canonicalize(&root)
            .with_context(|| format!("cannot share {}", root.display()))?;
        let disk = miniftp::storage::LocalDisk::open(&root)
            .with_context(|| format!("cannot share {}", root.display()))?;
        let disk = match settings.no_fsync {
            true => disk.without_flushes(),
            false => disk,
        };
        return Ok(Ok((
            Storage::new(Arc::new(disk)),
            root.display().to_string(),
        )));
    };
    let (bucket, prefix) = S3Settings::parse_location(location).map_err(anyhow::Error::msg)?;
    let s3 = S3Settings {
        bucket,
        prefix,
        endpoint: settings.s3_endpoint.clone().unwrap_or_default(),
        region: settings.s3_region.clone().unwrap_or_default(),
        read_only: settings.read_only,
        credentials: None,
    };
    Ok(match S3Bucket::open(&s3).await {
        Ok(bucket) => Ok((
            Storage::new(Arc::new(bucket)),
            format!("{location} at {}", s3.endpoint),
        )),
        Err(error) => Err(error.to_string()),
    })
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    raise_open_file_limit();
    let (storage, shared) = match open_storage(&settings).await? {
        Ok(opened) => opened,
        Err(line) => {
            eprintln!("miniftp: {line}");
            return Ok(ExitCode::from(2));
        }
    };
    let (config, identity) = server_config(&settings)?;
    let listener = TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let address = listener.local_addr()?;
    println!("miniftp: serving {shared} on {address}");
    if let Some(identity) = &identity {
        println!(
            "miniftp: TLS certificate {}, SHA-256 fingerprint {}",
            identity.certificate.display(),
            identity.fingerprint
        );
    }
    warn_about_exposure(address, &config);

    let web = match &settings.http {
        Some(http) => {
            let web = TcpListener::bind(http.as_str())
                .await
                .with_context(|| format!("cannot listen on {http} for the web page"))?;
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            println!(
                "miniftp: web page and WebDAV on {scheme}://{}/",
                web.local_addr()?
            );
            warn_about_exposure(web.local_addr()?, &config);
            Some(web)
        }
        None => None,
    };
    std::io::stdout().flush()?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    // One service for both listeners: accounts, bans, limits, logs and
    // shutdown are shared.
    let service = miniftp::executor::Service::new(storage, config).await;
    let web = web.map(|web| {
        tokio::spawn(miniftp::web::serve(
            web,
            Arc::clone(&service),
            shutdown.clone(),
        ))
    });
    miniftp::server::serve(listener, service, shutdown).await;
    if let Some(web) = web {
        let _ = web.await;
    }
    tracing::info!("server stopped");
    Ok(ExitCode::SUCCESS)
}

/// Warns, at start, about settings that leave the files or the passwords
/// open to anyone on the network.
fn warn_about_exposure(address: SocketAddr, config: &ServerConfig) {
    let beyond_loopback = !address.ip().is_loopback();
    if beyond_loopback && config.tls.is_none() {
        tracing::warn!(
            %address,
            "listening beyond this machine without TLS: anyone on the network can read \
             the traffic, passwords included: use --tls"
        );
    }
    if beyond_loopback && config.accounts.is_none() {
        match config.read_only {
            false => tracing::warn!(
                %address,
                "listening beyond this machine without accounts: anyone who reaches the port \
                 can read and change every file: use --users, or --read-only"
            ),
            true => tracing::warn!(
                %address,
                "listening beyond this machine without accounts: anyone who reaches the port \
                 can read every file: use --users to require a login"
            ),
        }
    }
    if beyond_loopback
        && config.accounts.is_some()
        && !config.read_only
        && config
            .anonymous
            .as_ref()
            .is_some_and(|anonymous| anonymous.access == Access::ReadWrite)
    {
        tracing::warn!(
            %address,
            "listening beyond this machine with --anonymous rw: anyone who reaches the port \
             can change the files of the anonymous directory"
        );
    }
    if config.allow_insecure_login && config.tls.is_none() {
        tracing::warn!(
            "--allow-insecure-login without TLS: passwords from other machines cross the \
             network in clear text, for anyone on the way to read"
        );
    }
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
