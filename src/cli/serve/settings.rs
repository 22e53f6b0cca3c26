//! The settings of `miniftp serve`, from three layers: the configuration
//! file, then environment variables `MINIFTP_*`, then flags, each overriding
//! the one before; defaults last. Flags and variables are clap's (a flag
//! left out falls back to its variable); the file is read here.
//!
//! One struct, [`Layer`], is both the clap arguments and the file's format,
//! so that a flag, its variable and its key cannot drift apart: the key is
//! the flag's name with `_` for `-`, the variable is `MINIFTP_` and the key
//! in capitals.

use std::ffi::OsStr;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::builder::{
    BoolishValueParser, EnumValueParser, PathBufValueParser, RangedU64ValueParser,
    StringValueParser, TypedValueParser,
};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgAction, Args, ValueEnum, ValueHint, value_parser};
use serde::{Deserialize, Serialize};

use super::size::{self, parse_size};

/// Default port, as in the original Mini-FTP.
pub const DEFAULT_PORT: u16 = 65438;
/// Connections per IP address when listening beyond loopback.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Where anonymous clients land, under the root.
pub const DEFAULT_ANONYMOUS_HOME: &str = "public";

/// Every setting that has a flag, each `None` where its layer leaves it out.
/// Defaults are applied by [`Settings::resolve`], after layering, so that
/// none of them hides the file (they are written in the help by hand).
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Directory to share [default: .]
    #[arg(
        env = "MINIFTP_ROOT",
        value_hint = ValueHint::DirPath,
        value_parser = env_named(PathBufValueParser::new()),
    )]
    pub root: Option<PathBuf>,

    /// Serve a bucket of S3-compatible object storage instead of ROOT:
    /// s3://BUCKET or s3://BUCKET/PREFIX. Several servers may share one
    /// bucket. The key comes from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, or the credentials file (~/.aws/credentials,
    /// AWS_PROFILE), never from a flag [default: ROOT on the local disk]
    #[arg(
        long,
        env = "MINIFTP_STORAGE",
        help_heading = "Object storage",
        value_name = "s3://BUCKET[/PREFIX]",
        value_parser = env_named(StringValueParser::new()),
    )]
    pub storage: Option<String>,

    /// The object store's URL, e.g. http://127.0.0.1:3900 for Garage
    /// [default: https://s3.REGION.amazonaws.com]
    #[arg(
        long,
        env = "MINIFTP_S3_ENDPOINT",
        help_heading = "Object storage",
        value_name = "URL",
        value_parser = env_named(StringValueParser::new()),
    )]
    pub s3_endpoint: Option<String>,

    /// The region the store signs for (Garage's is "garage" unless
    /// configured otherwise) [default: AWS_REGION, or us-east-1]
    #[arg(
        long,
        env = "MINIFTP_S3_REGION",
        help_heading = "Object storage",
        value_name = "REGION",
        value_parser = env_named(StringValueParser::new()),
    )]
    pub s3_region: Option<String>,

    /// Address to listen on [default: 127.0.0.1]
    #[arg(
        long,
        env = "MINIFTP_HOST",
        help_heading = "Network",
        value_parser = env_named(StringValueParser::new()),
    )]
    pub host: Option<String>,

    /// Port to listen on; 0 picks a free one, printed at start [default: 65438]
    #[arg(
        long,
        short,
        env = "MINIFTP_PORT",
        help_heading = "Network",
        value_parser = env_named(value_parser!(u16)),
    )]
    pub port: Option<u16>,

    /// Also serve the web page and WebDAV on this port (or HOST:PORT; the
    /// host defaults to --host), with the same accounts, limits and TLS;
    /// 0 picks a free port, printed at start [default: off]
    #[arg(
        long,
        env = "MINIFTP_HTTP",
        help_heading = "Network",
        value_name = "[HOST:]PORT",
        value_parser = env_named(StringValueParser::new()),
    )]
    pub http: Option<String>,

    /// Send messages as fast as possible, without waiting for classic
    /// clients to read each one (breaks the original client) [default: false]
    #[arg(
        long,
        env = "MINIFTP_NO_PACING",
        help_heading = "Network",
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = env_named(BoolishValueParser::new()),
    )]
    pub no_pacing: Option<bool>,

    /// Put uploads in place without waiting for the disk (no fsync): still
    /// verified and whole or not at all, but a power cut (not a crash of
    /// the server) may lose the last ones. For scratch shares, and to
    /// compare with servers that never flush [default: false]
    #[arg(
        long,
        env = "MINIFTP_NO_FSYNC",
        help_heading = "Limits",
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = env_named(BoolishValueParser::new()),
    )]
    pub no_fsync: Option<bool>,

    /// Most clients served at once; others are told the server is busy
    /// [default: 1024]
    #[arg(
        long,
        env = "MINIFTP_MAX_CONNECTIONS",
        help_heading = "Limits",
        value_name = "N",
        value_parser = env_named(RangedU64ValueParser::<usize>::new()),
    )]
    pub max_connections: Option<usize>,

    /// Most clients at once from one IP address (clients on loopback, such
    /// as a local TLS relay, are not counted); 0 for no limit [default: 64,
    /// or no limit when listening on loopback]
    #[arg(
        long,
        env = "MINIFTP_MAX_CONNECTIONS_PER_IP",
        help_heading = "Limits",
        value_name = "N",
        value_parser = env_named(RangedU64ValueParser::<usize>::new()),
    )]
    pub max_connections_per_ip: Option<usize>,

    /// Seconds a client may stay silent before it is disconnected
    /// [default: 300]
    #[arg(
        long,
        env = "MINIFTP_IDLE_TIMEOUT",
        help_heading = "Limits",
        value_name = "SECONDS",
        value_parser = env_named(value_parser!(u64)),
    )]
    pub idle_timeout: Option<u64>,

    /// Seconds a new client has to finish the TLS handshake and, with
    /// --users, to log in [default: 10]
    #[arg(
        long,
        env = "MINIFTP_HANDSHAKE_TIMEOUT",
        help_heading = "Limits",
        value_name = "SECONDS",
        value_parser = env_named(value_parser!(u64)),
    )]
    pub handshake_timeout: Option<u64>,

    /// Longest command accepted, in bytes [default: 65536]
    #[arg(
        long,
        env = "MINIFTP_MAX_COMMAND_LEN",
        help_heading = "Limits",
        value_name = "BYTES",
        value_parser = env_named(RangedU64ValueParser::<usize>::new()),
    )]
    pub max_command_len: Option<usize>,

    /// Largest upload accepted, in bytes, or with a binary suffix: 512K, 10M,
    /// 1G [default: no limit]
    #[arg(
        long,
        env = "MINIFTP_MAX_UPLOAD_SIZE",
        help_heading = "Limits",
        value_name = "SIZE",
        value_parser = env_named(parse_size),
    )]
    #[serde(default, deserialize_with = "size::deserialize")]
    pub max_upload_size: Option<u64>,

    /// Most bytes per second each connection may send, and receive, with a
    /// binary suffix if wanted: 512K, 10M, 1G; 0 for no limit [default: 0]
    #[arg(
        long,
        env = "MINIFTP_RATE_LIMIT",
        help_heading = "Limits",
        value_name = "RATE",
        value_parser = env_named(parse_size),
    )]
    #[serde(default, deserialize_with = "size::deserialize")]
    pub rate_limit: Option<u64>,

    /// Seconds to let commands in flight finish when shutting down
    /// [default: 10]
    #[arg(
        long,
        env = "MINIFTP_SHUTDOWN_GRACE",
        help_heading = "Limits",
        value_name = "SECONDS",
        value_parser = env_named(value_parser!(u64)),
    )]
    pub shutdown_grace: Option<u64>,

    /// Refuse every command that would change the tree [default: false]
    #[arg(
        long,
        env = "MINIFTP_READ_ONLY",
        help_heading = "Security",
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = env_named(BoolishValueParser::new()),
    )]
    pub read_only: Option<bool>,

    /// Speak TLS on every connection, with --cert and --key, or else a
    /// self-signed certificate kept in --state-dir [default: false, true with
    /// --cert or --key]
    #[arg(
        long,
        env = "MINIFTP_TLS",
        help_heading = "Security",
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = env_named(BoolishValueParser::new()),
    )]
    pub tls: Option<bool>,

    /// The server's certificate chain, PEM, leaf first (implies --tls)
    #[arg(
        long,
        env = "MINIFTP_CERT",
        help_heading = "Security",
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        value_parser = env_named(PathBufValueParser::new()),
    )]
    pub cert: Option<PathBuf>,

    /// The certificate's private key, PEM (implies --tls)
    #[arg(
        long,
        env = "MINIFTP_KEY",
        help_heading = "Security",
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        value_parser = env_named(PathBufValueParser::new()),
    )]
    pub key: Option<PathBuf>,

    /// Where the self-signed certificate is kept [default: miniftp/server
    /// under the user's data directory]
    #[arg(
        long,
        env = "MINIFTP_STATE_DIR",
        help_heading = "Security",
        value_name = "DIR",
        value_hint = ValueHint::DirPath,
        value_parser = env_named(PathBufValueParser::new()),
    )]
    pub state_dir: Option<PathBuf>,

    /// Users file (see `miniftp user`): clients must log in, each to its
    /// home, with its access [default: none, everyone is in]
    #[arg(
        long,
        env = "MINIFTP_USERS",
        help_heading = "Security",
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        value_parser = env_named(PathBufValueParser::new()),
    )]
    pub users: Option<PathBuf>,

    /// With --users: let clients in without logging in, to --anonymous-home
    /// (the only way in for a classic client) [default: off]
    #[arg(
        long,
        env = "MINIFTP_ANONYMOUS",
        help_heading = "Security",
        value_name = "ACCESS",
        value_parser = env_named(EnumValueParser::<Anonymous>::new()),
    )]
    pub anonymous: Option<Anonymous>,

    /// Directory of anonymous clients, under the root; created if missing
    /// [default: public]
    #[arg(
        long,
        env = "MINIFTP_ANONYMOUS_HOME",
        help_heading = "Security",
        value_name = "DIR",
        value_parser = env_named(StringValueParser::new()),
    )]
    pub anonymous_home: Option<String>,

    /// Accept passwords over plain TCP from other hosts (without it, a login
    /// needs TLS or a client on this machine) [default: false]
    #[arg(
        long,
        env = "MINIFTP_ALLOW_INSECURE_LOGIN",
        help_heading = "Security",
        value_name = "BOOL",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = env_named(BoolishValueParser::new()),
    )]
    pub allow_insecure_login: Option<bool>,

    /// Failed logins from one address that get it banned; each failure is
    /// answered after a delay doubling from 1 s to 8 s [default: 5]
    #[arg(
        long,
        env = "MINIFTP_LOGIN_BAN_AFTER",
        help_heading = "Security",
        value_name = "N",
        value_parser = env_named(value_parser!(u32).range(1..)),
    )]
    pub login_ban_after: Option<u32>,

    /// Seconds a ban lasts; failures are forgotten after as long [default: 600]
    #[arg(
        long,
        env = "MINIFTP_LOGIN_BAN_TIME",
        help_heading = "Security",
        value_name = "SECONDS",
        value_parser = env_named(value_parser!(u64)),
    )]
    pub login_ban_time: Option<u64>,
}

/// Anonymous access beside accounts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    /// Only accounts get in
    #[default]
    Off,
    /// Anonymous clients may read
    Ro,
    /// Anonymous clients may read and write
    Rw,
}

impl Layer {
    /// This layer over `lower`: each setting from here if given, else from
    /// `lower`.
    pub fn over(self, lower: Layer) -> Layer {
        Layer {
            root: self.root.or(lower.root),
            storage: self.storage.or(lower.storage),
            s3_endpoint: self.s3_endpoint.or(lower.s3_endpoint),
            s3_region: self.s3_region.or(lower.s3_region),
            host: self.host.or(lower.host),
            port: self.port.or(lower.port),
            http: self.http.or(lower.http),
            no_pacing: self.no_pacing.or(lower.no_pacing),
            no_fsync: self.no_fsync.or(lower.no_fsync),
            max_connections: self.max_connections.or(lower.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.or(lower.max_connections_per_ip),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            handshake_timeout: self.handshake_timeout.or(lower.handshake_timeout),
            max_command_len: self.max_command_len.or(lower.max_command_len),
            max_upload_size: self.max_upload_size.or(lower.max_upload_size),
            rate_limit: self.rate_limit.or(lower.rate_limit),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
            read_only: self.read_only.or(lower.read_only),
            tls: self.tls.or(lower.tls),
            cert: self.cert.or(lower.cert),
            key: self.key.or(lower.key),
            state_dir: self.state_dir.or(lower.state_dir),
            users: self.users.or(lower.users),
            anonymous: self.anonymous.or(lower.anonymous),
            anonymous_home: self.anonymous_home.or(lower.anonymous_home),
            allow_insecure_login: self.allow_insecure_login.or(lower.allow_insecure_login),
            login_ban_after: self.login_ban_after.or(lower.login_ban_after),
            login_ban_time: self.login_ban_time.or(lower.login_ban_time),
        }
    }

    /// Reads a configuration file. Its relative paths are relative to the
    /// file's directory, so that it means the same from anywhere.
    pub fn read(path: &Path) -> anyhow::Result<Layer> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut layer = Layer::parse(&text).map_err(|error| {
            anyhow::anyhow!("config file {}: {}", path.display(), error.describe(&text))
        })?;
        let directory = path.parent().unwrap_or(Path::new(""));
        for path in [
            &mut layer.root,
            &mut layer.cert,
            &mut layer.key,
            &mut layer.state_dir,
            &mut layer.users,
        ]
        .into_iter()
        .flatten()
        {
            *path = directory.join(&*path);
        }
        Ok(layer)
    }

    fn parse(text: &str) -> Result<Layer, toml::de::Error> {
        toml::from_str(text)
    }
}

/// A file's error as one line: where, which key, what.
trait Describe {
    fn describe(&self, text: &str) -> String;
}

impl Describe for toml::de::Error {
    fn describe(&self, text: &str) -> String {
        let message = self.message().trim_end();
        let Some(span) = self.span() else {
            return message.to_owned();
        };
        let before = &text[..span.start.min(text.len())];
        let line_number = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before[line_start..].chars().count() + 1;
        let line = text[line_start..].lines().next().unwrap_or("");
        // toml names an unknown key, with the whole list of known ones: name
        // it alone, and say where the list is.
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some((key, _)) = rest.split_once('`')
        {
            return format!(
                "line {line_number}, column {column}: unknown key `{key}` \
                 (`miniftp serve --print-config` shows every key)"
            );
        }
        match key_of(line) {
            Some(key) => format!("line {line_number}, column {column}, `{key}`: {message}"),
            None => format!("line {line_number}, column {column}: {message}"),
        }
    }
}

/// The key a `key = value` line sets, if it is one.
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(['"', '\'']);
    (!key.is_empty()).then_some(key)
}

/// The effective settings, after layering and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// None when a bucket is served instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    pub host: String,
    pub port: u16,
    /// The web listener, `HOST:PORT`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    pub no_pacing: bool,
    pub no_fsync: bool,
    pub max_connections: usize,
    /// 0 for no limit.
    pub max_connections_per_ip: usize,
    pub idle_timeout: u64,
    pub handshake_timeout: u64,
    pub max_command_len: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_size: Option<u64>,
    /// 0 for no limit.
    pub rate_limit: u64,
    pub shutdown_grace: u64,
    pub read_only: bool,
    pub tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    pub state_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<PathBuf>,
    pub anonymous: Anonymous,
    pub anonymous_home: String,
    pub allow_insecure_login: bool,
    pub login_ban_after: u32,
    pub login_ban_time: u64,
}

impl Settings {
    /// Applies the defaults to what the layers leave out, and checks what
    /// no single value can tell. Relative paths become absolute (relative to
    /// the current directory), so that the printed settings mean the same
    /// from anywhere.
    pub fn resolve(layer: Layer) -> anyhow::Result<Settings> {
        let defaults = miniftp::ServerConfig::default();
        let absolute = |path: PathBuf| {
            std::path::absolute(&path).with_context(|| format!("cannot resolve {}", path.display()))
        };
        let host = layer.host.unwrap_or_else(|| "127.0.0.1".to_owned());
        let max_connections_per_ip =
            layer
                .max_connections_per_ip
                .unwrap_or_else(|| match is_loopback(&host) {
                    true => 0,
                    false => DEFAULT_MAX_CONNECTIONS_PER_IP,
                });
        let users = layer.users.map(absolute).transpose()?;
        let anonymous = layer.anonymous.unwrap_or_default();
        if anonymous != Anonymous::Off && users.is_none() {
            bail!(
                "--anonymous needs --users: without accounts everyone is anonymous already \
                 (add --read-only to keep them from changing files)"
            );
        }
        let anonymous_home = layer
            .anonymous_home
            .unwrap_or_else(|| DEFAULT_ANONYMOUS_HOME.to_owned());
        let anonymous_home =
            miniftp::accounts::normalize_home(&anonymous_home).context("--anonymous-home")?;
        let cert = layer.cert.map(absolute).transpose()?;
        let key = layer.key.map(absolute).transpose()?;
        let login_ban_after = layer
            .login_ban_after
            .unwrap_or(defaults.login_failures.ban_after);
        if login_ban_after == 0 {
            bail!("--login-ban-after must be at least 1");
        }
        for (flag, value) in [
            ("--idle-timeout", layer.idle_timeout),
            ("--handshake-timeout", layer.handshake_timeout),
        ] {
            if value == Some(0) {
                bail!("{flag} must be at least 1 second");
            }
        }
        let http = layer
            .http
            .map(|http| web_address(&http, &host))
            .transpose()?;
        let (storage, s3_endpoint, s3_region) = match layer.storage {
            Some(storage) => {
                if let Some(root) = &layer.root {
                    bail!(
                        "both ROOT ({}) and --storage {storage}: a server shares one tree, give one",
                        root.display()
                    );
                }
                miniftp::storage::s3::S3Settings::parse_location(&storage)
                    .map_err(|error| anyhow::anyhow!("--storage: {error}"))?;
                let region = layer
                    .s3_region
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".to_owned());
                let endpoint = layer
                    .s3_endpoint
                    .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
                if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                    bail!("--s3-endpoint: '{endpoint}' is not an http:// or https:// URL");
                }
                (Some(storage), Some(endpoint), Some(region))
            }
            None => {
                for (flag, value) in [
                    ("--s3-endpoint", &layer.s3_endpoint),
                    ("--s3-region", &layer.s3_region),
                ] {
                    if value.is_some() {
                        bail!("{flag} is for --storage s3://BUCKET, which is not given");
                    }
                }
                (None, None, None)
            }
        };
        Ok(Settings {
            root: match storage {
                Some(_) => None,
                None => Some(absolute(layer.root.unwrap_or_else(|| PathBuf::from(".")))?),
            },
            http,
            storage,
            s3_endpoint,
            s3_region,
            host,
            port: layer.port.unwrap_or(DEFAULT_PORT),
            no_pacing: layer.no_pacing.unwrap_or(!defaults.pacing),
            no_fsync: layer.no_fsync.unwrap_or(false),
            max_connections: layer.max_connections.unwrap_or(defaults.max_connections),
            max_connections_per_ip,
            idle_timeout: layer
                .idle_timeout
                .unwrap_or(defaults.idle_timeout.as_secs()),
            handshake_timeout: layer
                .handshake_timeout
                .unwrap_or(defaults.handshake_timeout.as_secs()),
            max_command_len: layer.max_command_len.unwrap_or(defaults.max_command_len),
            max_upload_size: layer.max_upload_size.or(defaults.max_upload_size),
            rate_limit: layer.rate_limit.or(defaults.rate_limit).unwrap_or(0),
            shutdown_grace: layer
                .shutdown_grace
                .unwrap_or(defaults.shutdown_grace.as_secs()),
            read_only: layer.read_only.unwrap_or(defaults.read_only),
            // A certificate or key asks for TLS, unless TLS is turned off
            // explicitly (to try a configuration without it, say).
            tls: layer.tls.unwrap_or(cert.is_some() || key.is_some()),
            cert,
            key,
            state_dir: absolute(
                layer
                    .state_dir
                    .unwrap_or_else(miniftp::tls::default_state_dir),
            )?,
            users,
            anonymous,
            anonymous_home,
            allow_insecure_login: layer
                .allow_insecure_login
                .unwrap_or(defaults.allow_insecure_login),
            login_ban_after,
            login_ban_time: layer
                .login_ban_time
                .unwrap_or(defaults.login_failures.ban_for.as_secs()),
        })
    }

    /// The settings as a configuration file, every key under the help of its
    /// flag, grouped as in `--help`; a setting that is not set is a comment.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let values = toml::Table::try_from(self)
            .context("cannot write the settings as TOML (a path that is not UTF-8?)")?;
        let mut out = String::from(
            "# miniftp serve: effective settings (`miniftp serve --print-config`).\n\
             # Usable as `--config FILE`. Each key is a flag with `_` for `-`; the\n\
             # environment variable MINIFTP_<KEY> overrides the file, a flag both.\n",
        );
        let command = Layer::augment_args(clap::Command::new("serve"));
        let mut heading = None;
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            if arg.get_help_heading() != heading {
                heading = arg.get_help_heading();
                out.push_str(&format!("\n## {}\n", heading.unwrap_or("")));
            }
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            out.push('\n');
            for line in textwrap(&help, 76) {
                out.push_str(&format!("# {line}\n"));
            }
            match values.get(key) {
                Some(value) => out.push_str(&format!("{key} = {value}\n")),
                None => out.push_str(&format!("# {key} = (not set)\n")),
            }
        }
        Ok(out)
    }
}

/// `text` cut into lines of at most `width` characters, at spaces.
fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The web listener's `HOST:PORT` from `--http`'s `[HOST:]PORT`, the host
/// defaulting to `host` (an IPv6 address in brackets).
fn web_address(http: &str, host: &str) -> anyhow::Result<String> {
    let (web_host, port) = match http.rsplit_once(':') {
        Some((web_host, port)) if !web_host.is_empty() => (web_host.to_owned(), port),
        Some((_, port)) => (host.to_owned(), port),
        None => (host.to_owned(), http),
    };
    let port: u16 = port
        .parse()
        .with_context(|| format!("--http {http}: not a port number: {port}"))?;
    let web_host = match web_host.contains(':') && !web_host.starts_with('[') {
        true => format!("[{web_host}]"),
        false => web_host,
    };
    Ok(format!("{web_host}:{port}"))
}

/// Whether `host` is this machine only: a loopback address, or a name that
/// resolves to loopback addresses only.
fn is_loopback(host: &str) -> bool {
    if let Ok(address) = host.parse::<IpAddr>() {
        return address.is_loopback();
    }
    match (host, 0).to_socket_addrs() {
        Ok(addresses) => {
            let addresses: Vec<_> = addresses.collect();
            !addresses.is_empty() && addresses.iter().all(|address| address.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// `parser`, with errors in a value from the environment naming the
/// variable (clap names only the flag, which was not given).
fn env_named<P: TypedValueParser>(parser: P) -> EnvNamed<P> {
    EnvNamed(parser)
}

/// See [`env_named`].
#[derive(Clone)]
struct EnvNamed<P>(P);

impl<P: TypedValueParser> TypedValueParser for EnvNamed<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        self.0.parse_ref(command, arg, value)
    }

    fn parse_ref_(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
        source: ValueSource,
    ) -> Result<Self::Value, clap::Error> {
        self.0
            .parse_ref_(command, arg, value, source)
            .map_err(|error| {
                let variable = arg.and_then(clap::Arg::get_env);
                match (source, variable) {
                    (ValueSource::EnvVariable, Some(variable)) => {
                        let rendered = error.render().to_string();
                        let first = rendered.lines().next().unwrap_or_default();
                        let detail = first.strip_prefix("error: ").unwrap_or(first);
                        clap::Error::raw(
                            ErrorKind::ValueValidation,
                            format!(
                                "environment variable {}: {detail}\n",
                                variable.to_string_lossy()
                            ),
                        )
                        .with_cmd(command)
                    }
                    _ => error,
                }
            })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        self.0.possible_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_its_variable_and_its_key() {
        let command = Layer::augment_args(clap::Command::new("serve"));
        let settings = Settings::resolve(Layer {
            storage: Some("s3://bucket/prefix".into()),
            s3_endpoint: Some("http://127.0.0.1:3900".into()),
            s3_region: Some("garage".into()),
            users: Some("users.toml".into()),
            cert: Some("cert.pem".into()),
            key: Some("key.pem".into()),
            max_upload_size: Some(1),
            http: Some("8080".into()),
            ..Layer::default()
        })
        .unwrap();
        let values = toml::Table::try_from(&settings).unwrap();
        let mut keys = Vec::new();
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            let variable = format!("MINIFTP_{}", key.to_uppercase());
            assert_eq!(arg.get_env(), Some(OsStr::new(&variable)), "{key}");
            if let Some(long) = arg.get_long() {
                assert_eq!(long.replace('-', "_"), key);
            }
            // ROOT and a bucket are one or the other: ROOT is printed when
            // no bucket is served.
            if key == "root" {
                let local = Settings::resolve(Layer::default()).unwrap();
                assert!(toml::Table::try_from(&local).unwrap().contains_key("root"));
                continue;
            }
            assert!(values.contains_key(key), "{key} is not printed");
            keys.push(key.to_owned());
        }
        assert_eq!(values.len(), keys.len(), "{values:?}");
    }

    #[test]
    fn file_errors_name_line_column_and_key() {
        let text = "port = 1\n\nidle_timeout = \"soon\"\n";
        let error = Layer::parse(text).unwrap_err().describe(text);
        assert_eq!(
            error,
            "line 3, column 16, `idle_timeout`: invalid type: string \"soon\", expected u64"
        );
        let text = "port = 1\nportt = 2\n";
        let error = Layer::parse(text).unwrap_err().describe(text);
        assert_eq!(
            error,
            "line 2, column 1: unknown key `portt` (`miniftp serve --print-config` shows every key)"
        );
        let text = "rate_limit = \"10X\"";
        let error = Layer::parse(text).unwrap_err().describe(text);
        assert!(
            error.starts_with("line 1, column 14, `rate_limit`: invalid size '10X'"),
            "{error}"
        );
        let text = "anonymous = \"yes\"";
        let error = Layer::parse(text).unwrap_err().describe(text);
        assert!(
            error.starts_with("line 1, column 13, `anonymous`: unknown variant `yes`"),
            "{error}"
        );
    }

    #[test]
    fn sizes_in_the_file_are_integers_or_strings() {
        let layer = Layer::parse("rate_limit = \"10M\"\nmax_upload_size = 1024").unwrap();
        assert_eq!(layer.rate_limit, Some(10 << 20));
        assert_eq!(layer.max_upload_size, Some(1024));
        assert!(Layer::parse("rate_limit = -1").is_err());
    }

    #[test]
    fn the_web_address_takes_the_host_by_default() {
        assert_eq!(web_address("8080", "127.0.0.1").unwrap(), "127.0.0.1:8080");
        assert_eq!(web_address(":0", "::1").unwrap(), "[::1]:0");
        assert_eq!(
            web_address("0.0.0.0:80", "127.0.0.1").unwrap(),
            "0.0.0.0:80"
        );
        assert_eq!(web_address("[::]:80", "127.0.0.1").unwrap(), "[::]:80");
        assert!(web_address("x", "127.0.0.1").is_err());
    }

    #[test]
    fn loopback_is_told_apart() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0"));
        assert!(!is_loopback("::"));
        assert!(!is_loopback("192.0.2.1"));
    }

    #[test]
    fn per_ip_limit_defaults_by_address() {
        let on = |host: &str| {
            Settings::resolve(Layer {
                host: Some(host.to_owned()),
                ..Layer::default()
            })
            .unwrap()
            .max_connections_per_ip
        };
        assert_eq!(on("127.0.0.1"), 0);
        assert_eq!(on("0.0.0.0"), DEFAULT_MAX_CONNECTIONS_PER_IP);
    }

    #[test]
    fn a_certificate_implies_tls_unless_turned_off() {
        let with = |tls| {
            Settings::resolve(Layer {
                cert: Some("cert.pem".into()),
                key: Some("key.pem".into()),
                tls,
                ..Layer::default()
            })
            .unwrap()
            .tls
        };
        assert!(with(None));
        assert!(with(Some(true)));
        assert!(!with(Some(false)));
    }
}
