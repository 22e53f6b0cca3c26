//! `miniftp serve` settings through the real binary: the layers (file <
//! environment < flags), `--print-config` as a configuration file of its
//! own, errors that name the line, key or variable at fault, and the
//! warnings a server exposed to the network prints at start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use tempfile::TempDir;

/// The binary in `dir`, without any `MINIFTP_*` variable of the caller's
/// environment, and with its data directory (so its default state
/// directory) inside `dir`.
fn miniftp(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MINIFTP_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .current_dir(dir)
        .env("XDG_DATA_HOME", dir)
        .timeout(Duration::from_secs(60));
    command
}

/// `miniftp serve --print-config ARGS`, which must succeed, as a table.
fn print_config(mut command: Command, args: &[&str]) -> (String, toml::Table) {
    command.arg("serve").arg("--print-config").args(args);
    let assert = command.assert().success();
    assert_eq!(stderr(&assert), "");
    let out = stdout(&assert);
    let table = out
        .parse::<toml::Table>()
        .unwrap_or_else(|error| panic!("not TOML: {error}\n{out}"));
    (out, table)
}

/// `miniftp serve ARGS --print-config`, which must fail; its standard error.
fn refused(mut command: Command, args: &[&str]) -> String {
    command.arg("serve").args(args).arg("--print-config");
    let assert = command.assert().failure();
    assert_eq!(stdout(&assert), "");
    stderr(&assert)
}

fn stdout(assert: &Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

fn stderr(assert: &Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

fn path_in(dir: &Path, name: &str) -> toml::Value {
    toml::Value::String(dir.join(name).to_str().unwrap().to_owned())
}

#[test]
fn a_flag_beats_its_variable_which_beats_the_file() {
    let dir = TempDir::new().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let file = etc.join("miniftp.toml");
    std::fs::write(
        &file,
        "port = 1000\nread_only = true\nusers = \"users.toml\"\nrate_limit = \"1M\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let settings = |table: &toml::Table| {
        (
            table["port"].clone(),
            table["read_only"].clone(),
            table["users"].clone(),
            table["rate_limit"].clone(),
        )
    };

    // The file alone; its relative paths are relative to the file.
    let (_, table) = print_config(miniftp(dir.path()), &["--config", file]);
    assert_eq!(
        settings(&table),
        (
            1000.into(),
            true.into(),
            path_in(&etc, "users.toml"),
            (1 << 20).into()
        )
    );

    // Variables over the file; their relative paths are relative to the
    // current directory, as a flag's are.
    let mut command = miniftp(dir.path());
    command.envs([
        ("MINIFTP_PORT", "2000"),
        ("MINIFTP_READ_ONLY", "false"),
        ("MINIFTP_USERS", "env.toml"),
    ]);
    let (_, table) = print_config(command, &["--config", file]);
    assert_eq!(
        settings(&table),
        (
            2000.into(),
            false.into(),
            path_in(dir.path(), "env.toml"),
            (1 << 20).into()
        )
    );

    // Flags over both; the file comes from its variable too.
    let mut command = miniftp(dir.path());
    command.envs([
        ("MINIFTP_CONFIG", file),
        ("MINIFTP_PORT", "2000"),
        ("MINIFTP_READ_ONLY", "false"),
        ("MINIFTP_USERS", "env.toml"),
    ]);
    let (_, table) = print_config(
        command,
        &[
            "--port",
            "3000",
            "--read-only",
            "--users",
            "flag.toml",
            "--rate-limit",
            "0",
        ],
    );
    assert_eq!(
        settings(&table),
        (
            3000.into(),
            true.into(),
            path_in(dir.path(), "flag.toml"),
            0.into()
        )
    );

    // A switch turned on by the file is turned off by a flag.
    let (_, table) = print_config(
        miniftp(dir.path()),
        &["--config", file, "--read-only=false"],
    );
    assert_eq!(table["read_only"], false.into());
}

#[test]
fn the_printed_settings_read_back_as_the_same_settings() {
    let dir = TempDir::new().unwrap();
    let args = [
        "shared root",
        "--host",
        "::1",
        "--port",
        "7000",
        "--no-pacing",
        "--max-connections",
        "10",
        "--max-connections-per-ip",
        "3",
        "--idle-timeout",
        "20",
        "--handshake-timeout",
        "4",
        "--max-command-len",
        "1000",
        "--max-upload-size",
        "1G",
        "--rate-limit",
        "512K",
        "--shutdown-grace",
        "2",
        "--read-only",
        "--cert",
        "cert.pem",
        "--key",
        "key.pem",
        "--state-dir",
        "state",
        "--users",
        "users \"1\".toml",
        "--anonymous",
        "ro",
        "--anonymous-home",
        "pub/lic/",
        "--allow-insecure-login",
        "--login-ban-after",
        "2",
        "--login-ban-time",
        "60",
        "--http",
        "8080",
    ];
    let (printed, table) = print_config(miniftp(dir.path()), &args);
    let expected: toml::Table = toml::toml! {
        port = 7000
        no_pacing = true
        max_connections = 10
        max_connections_per_ip = 3
        idle_timeout = 20
        handshake_timeout = 4
        max_command_len = 1000
        max_upload_size = 1073741824
        rate_limit = 524288
        shutdown_grace = 2
        read_only = true
        tls = true
        anonymous = "ro"
        anonymous_home = "pub/lic"
        allow_insecure_login = true
        login_ban_after = 2
        login_ban_time = 60
        http = "[::1]:8080"
    };
    for (key, value) in &expected {
        assert_eq!(table.get(key), Some(value), "{key}\n{printed}");
    }
    assert_eq!(table["host"], "::1".into());
    assert_eq!(table["root"], path_in(dir.path(), "shared root"));
    assert_eq!(table["users"], path_in(dir.path(), "users \"1\".toml"));
    for key in ["cert", "key", "state_dir"] {
        assert!(table[key].as_str().unwrap().starts_with('/'), "{key}");
    }
    // Every flag of the help has its key, set here.
    let help = miniftp(dir.path()).args(["serve", "-h"]).assert().success();
    let flags: Vec<String> = stdout(&help)
        .lines()
        // A flag's line starts within the first columns; a wrapped
        // description goes on further in.
        .filter(|line| {
            let indent = line.len() - line.trim_start().len();
            indent <= 6 && line.trim_start().starts_with('-')
        })
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("--"))
        })
        .filter_map(|flag| flag.split(['[', '=', '.']).next())
        .filter(|flag| !["help", "version", "verbose", "quiet", "log-format"].contains(flag))
        .filter(|flag| !["config", "print-config"].contains(flag))
        // A bucket instead of ROOT: its settings have a test of their own
        // (the_object_storage_settings_print_and_read_back).
        .filter(|flag| !["storage", "s3-endpoint", "s3-region"].contains(flag))
        .map(|flag| flag.replace('-', "_"))
        .collect();
    assert_eq!(flags.len(), table.len() - 1, "{flags:?}"); // and ROOT
    for key in &flags {
        assert!(table.contains_key(key), "{key} is not printed");
    }

    // Written back, from another directory: the same settings.
    let elsewhere = TempDir::new().unwrap();
    let file = elsewhere.path().join("miniftp.toml");
    std::fs::write(&file, &printed).unwrap();
    let (again, _) = print_config(
        miniftp(elsewhere.path()),
        &["--config", file.to_str().unwrap()],
    );
    assert_eq!(again, printed);
}

#[test]
fn the_defaults_read_back_as_the_defaults() {
    let dir = TempDir::new().unwrap();
    let (printed, table) = print_config(miniftp(dir.path()), &[]);
    assert_eq!(table["port"], 65438.into());
    assert_eq!(table["host"], "127.0.0.1".into());
    assert_eq!(
        table["max_connections_per_ip"],
        0.into(),
        "none on loopback"
    );
    assert_eq!(table["tls"], false.into());
    assert!(
        printed.contains("\n# max_upload_size = (not set)\n"),
        "{printed}"
    );
    let file = dir.path().join("defaults.toml");
    std::fs::write(&file, &printed).unwrap();
    let (again, _) = print_config(miniftp(dir.path()), &["--config", "defaults.toml"]);
    assert_eq!(again, printed);

    // Beyond loopback, 64 connections per address unless told otherwise.
    let (_, table) = print_config(miniftp(dir.path()), &["--host", "0.0.0.0"]);
    assert_eq!(table["max_connections_per_ip"], 64.into());
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("miniftp.toml"),
        "# settings\nport = 7000\ncolour = \"blue\"\n",
    )
    .unwrap();
    let error = refused(miniftp(dir.path()), &["--config", "miniftp.toml"]);
    assert_eq!(
        error,
        "miniftp: config file miniftp.toml: line 3, column 1: unknown key `colour` \
         (`miniftp serve --print-config` shows every key)\n"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_its_line_and_key() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("miniftp.toml"),
        "port = 7000\n\nmax_connections = \"many\"\n",
    )
    .unwrap();
    let error = refused(miniftp(dir.path()), &["--config", "miniftp.toml"]);
    assert!(
        error.starts_with(
            "miniftp: config file miniftp.toml: line 3, column 19, `max_connections`: \
             invalid type: string \"many\""
        ),
        "{error}"
    );

    std::fs::write(dir.path().join("miniftp.toml"), "read_only = \"yes\"\n").unwrap();
    let error = refused(miniftp(dir.path()), &["--config", "miniftp.toml"]);
    assert!(error.contains("line 1, column 13, `read_only`"), "{error}");

    let error = refused(miniftp(dir.path()), &["--config", "missing.toml"]);
    assert!(
        error.starts_with("miniftp: cannot read config file missing.toml: "),
        "{error}"
    );
}

#[test]
fn a_bad_variable_is_named() {
    let dir = TempDir::new().unwrap();
    for (variable, value) in [
        ("MINIFTP_MAX_CONNECTIONS", "lots"),
        ("MINIFTP_READ_ONLY", "maybe"),
        ("MINIFTP_RATE_LIMIT", "10 MB"),
        ("MINIFTP_ANONYMOUS", "yes"),
    ] {
        let mut command = miniftp(dir.path());
        command.env(variable, value);
        let error = refused(command, &[]);
        assert!(
            error.starts_with(&format!(
                "error: environment variable {variable}: invalid value '{value}'"
            )),
            "{error}"
        );
    }
}

#[test]
fn anonymous_access_needs_accounts() {
    let dir = TempDir::new().unwrap();
    let error = refused(miniftp(dir.path()), &["--anonymous", "ro"]);
    assert_eq!(
        error,
        "miniftp: --anonymous needs --users: without accounts everyone is anonymous \
         already (add --read-only to keep them from changing files)\n"
    );
    let (_, table) = print_config(
        miniftp(dir.path()),
        &["--anonymous", "rw", "--users", "users.toml"],
    );
    assert_eq!(table["anonymous"], "rw".into());
    assert_eq!(table["anonymous_home"], "public".into());
}

/// A running `miniftp serve`, its standard output's first lines read, its
/// standard error read line by line on a thread; killed when dropped.
struct Server {
    child: Child,
    stdout: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `miniftp serve ARGS` in `dir` and reads `lines` lines of its
    /// standard output.
    fn start(dir: &Path, args: &[&str], lines: usize) -> Server {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_miniftp"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MINIFTP_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let mut child = command
            .current_dir(dir)
            .env("XDG_DATA_HOME", dir)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start miniftp serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let stdout = (0..lines)
            .map(|_| {
                let mut line = String::new();
                stdout.read_line(&mut line).unwrap();
                line.trim_end().to_owned()
            })
            .collect();
        let (sender, stderr) = mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            stdout,
            stderr,
        }
    }

    /// The address on the first line.
    fn port(&self) -> u16 {
        let (_, address) = self.stdout[0].rsplit_once(':').unwrap();
        address.parse().unwrap()
    }

    /// Lines of standard error up to the first that contains `marker`.
    fn stderr_until(&self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(marker);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(_) => panic!("no {marker:?} on standard error: {lines:#?}"),
            }
        }
    }

    /// The warnings the server printed before it logged its first
    /// connection (which comes after the start-up warnings).
    fn start_up_warnings(&self) -> Vec<String> {
        let _client = std::net::TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        self.stderr_until("connection opened")
            .into_iter()
            .filter(|line| line.contains("WARN"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_server_open_to_the_network_warns_at_start() {
    let dir = TempDir::new().unwrap();
    let server = Server::start(dir.path(), &["--host", "0.0.0.0", "--port", "0"], 1);
    assert!(
        server.stdout[0].starts_with("miniftp: serving "),
        "{:?}",
        server.stdout
    );
    let warnings = server.start_up_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].contains(
            "without TLS: anyone on the network can read the traffic, passwords included: use --tls"
        ),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].contains(
            "without accounts: anyone who reaches the port can read and change every file: \
             use --users, or --read-only"
        ),
        "{warnings:#?}"
    );
}

#[test]
fn a_server_on_loopback_warns_of_nothing() {
    let dir = TempDir::new().unwrap();
    let server = Server::start(dir.path(), &["--port", "0"], 1);
    assert_eq!(server.start_up_warnings(), Vec::<String>::new());
}

#[test]
fn with_tls_the_fingerprint_is_printed_and_read_only_is_still_readable_by_all() {
    let dir = TempDir::new().unwrap();
    let args = [
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--tls",
        "--read-only",
        "--state-dir",
        "state",
    ];
    let server = Server::start(dir.path(), &args, 2);
    let tls_line = server.stdout[1].clone();
    let certificate = dir.path().join("state").canonicalize().unwrap();
    let prefix = "miniftp: TLS certificate ";
    assert!(tls_line.starts_with(prefix), "{tls_line:?}");
    let (file, fingerprint) = tls_line[prefix.len()..]
        .split_once(", SHA-256 fingerprint ")
        .unwrap_or_else(|| panic!("{tls_line:?}"));
    assert!(
        Path::new(file)
            .canonicalize()
            .unwrap()
            .starts_with(&certificate),
        "{file}"
    );
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
    let warnings = server.start_up_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains(
            "without accounts: anyone who reaches the port can read every file: \
             use --users to require a login"
        ),
        "{warnings:#?}"
    );
    drop(server);

    // The same certificate next time.
    let again = Server::start(dir.path(), &args, 2);
    assert_eq!(again.stdout[1], tls_line);
}

#[test]
fn an_insecure_login_without_tls_is_warned_about() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--port",
            "0",
            "--users",
            "users.toml",
            "--allow-insecure-login",
        ],
        1,
    );
    let warnings = server.start_up_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("--allow-insecure-login without TLS"),
        "{warnings:#?}"
    );
}

#[test]
fn the_object_storage_settings_print_and_read_back() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("miniftp.toml");
    std::fs::write(
        &file,
        "storage = \"s3://files/team a\"\ns3_endpoint = \"http://127.0.0.1:3900\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let mut command = miniftp(dir.path());
    command.env("MINIFTP_S3_REGION", "garage");
    let (printed, table) = print_config(command, &["--config", file]);
    assert_eq!(table["storage"], "s3://files/team a".into(), "{printed}");
    assert_eq!(table["s3_endpoint"], "http://127.0.0.1:3900".into());
    assert_eq!(table["s3_region"], "garage".into());
    // What it printed reads back as the same settings.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &printed).unwrap();
    let (_, back) = print_config(miniftp(dir.path()), &["--config", again.to_str().unwrap()]);
    assert_eq!(back, table);
    // Without an endpoint, AWS's for the region.
    let (_, table) = print_config(
        miniftp(dir.path()),
        &["--storage", "s3://b", "--s3-region", "eu-west-3"],
    );
    assert_eq!(
        table["s3_endpoint"],
        "https://s3.eu-west-3.amazonaws.com".into()
    );
    // What cannot be: a directory and a bucket, a bucket's settings
    // without one, a location that is not one.
    let error = refused(miniftp(dir.path()), &["here", "--storage", "s3://b"]);
    assert!(error.contains("both ROOT"), "{error}");
    let error = refused(miniftp(dir.path()), &["--s3-region", "garage"]);
    assert!(error.contains("--s3-region is for --storage"), "{error}");
    let error = refused(miniftp(dir.path()), &["--storage", "b/p"]);
    assert!(error.contains("is not s3://BUCKET[/PREFIX]"), "{error}");
    let error = refused(
        miniftp(dir.path()),
        &["--storage", "s3://b", "--s3-endpoint", "127.0.0.1:3900"],
    );
    assert!(error.contains("not an http:// or https:// URL"), "{error}");
}

#[test]
fn a_bucket_that_cannot_be_served_is_one_line_and_exit_code_2() {
    let dir = TempDir::new().unwrap();
    // Nothing listens on a port just let go of.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let assert = miniftp(dir.path())
        .args(["serve", "--port", "0", "--storage", "s3://files"])
        .args(["--s3-endpoint", &endpoint, "--s3-region", "garage"])
        .env("AWS_ACCESS_KEY_ID", "GK0123456789abcdef01234567")
        .env("AWS_SECRET_ACCESS_KEY", "not a secret anyone will see")
        .assert()
        .code(2);
    assert_eq!(stdout(&assert), "");
    let error = stderr(&assert);
    assert_eq!(
        error,
        format!(
            "miniftp: cannot serve s3://files at {endpoint}: the endpoint does not answer (--s3-endpoint)\n"
        )
    );
    assert!(!error.contains("not a secret"));
}
