//! `miniftp connect`: the client, as a shell or running a script.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use miniftp::client::{
    AskedLogin, Client, ClientConfig, ClientError, Credentials, DEFAULT_PORT, Password, Protocol,
    plain_io,
};
use miniftp::protocol::text::escape;
use miniftp::tls::{ClientTrust, Fingerprint};

use super::shell::{self, Confirm, Shell};

/// Connect to a server: an interactive shell, or a script.
///
/// Without -c or -b, shows the server's welcome and a prompt naming the
/// remote directory (miniftp:/photos> ). Type help for the commands: cd,
/// pwd, ls, stat, mkdir, rm, mv, info, ul, dl, lcd, lpwd, lls, help, exit.
/// Quote names with spaces as in a shell; patterns (ul *.jpg, dl
/// logs/*.txt, ls *.txt, rm *.tmp, mv *.jpg photos/) pick names. Tab
/// completes commands, local paths and (extended protocol) remote names as
/// bash does: the common part first, the candidates on a second Tab. The
/// history is kept in your data directory. Ctrl-C cancels a running
/// transfer (what was kept is said; the same command resumes it) or a
/// question, or clears the line at the prompt; Ctrl-D or exit leaves.
///
/// Against a miniftp server the client switches to the extended protocol:
/// any file travels, every transfer is verified, interrupted transfers
/// resume, and ls, stat, mkdir -p, rm -r, ul -r and dl -r work. Against the
/// original Mini-FTP (or with --classic) it speaks the classic protocol.
///
/// Scripts (-c, -b, or commands piped to standard input) run without a
/// prompt, print only what commands print (info sizes, listings, transfer
/// summaries), and stop at the first failure. They never ask: rm -r of a
/// directory, rm of a pattern picking several files, and dl onto an
/// existing local file need -f.
///
/// With NAME@HOST the client logs in to the account NAME: the password is
/// read from MINIFTP_PASSWORD if set, otherwise asked for without echo
/// (after the server's certificate is trusted, as ssh asks). It is sent
/// only over TLS or to this host (see --allow-insecure-login).
///
/// With --tls the connection is encrypted. The server's certificate is
/// checked against --ca, or the system's roots; a server with a certificate
/// of its own (miniftp serve --tls makes one) is trusted on first use, as
/// ssh does: its fingerprint is shown, you are asked once, and it is
/// recorded in the known-hosts file. A changed certificate is refused.
///
/// Exit codes: 0 every command succeeded; 1 a command failed; 2 the
/// connection failed or was lost (a server that stops answering, a refused
/// login or certificate included); 130 interrupted.
///
/// Examples:
///   miniftp connect                                shell on 127.0.0.1:65438
///   miniftp connect files.lan:7000                 shell on another server
///   miniftp connect -c 'mkdir x; cd x; ul a.jpg'   run commands, then leave
///   miniftp connect -b backup.txt --keep-going     run a file of commands
///   printf 'cd x\ndl a.jpg\n' | miniftp connect -b -
///   miniftp connect -c 'ul -r photos; ls -l photos' upload a tree, then list it
///   miniftp connect -c 'rm -rf old'                remove a tree (no question)
///   miniftp connect old-server --timeout 5         give up after 5 s of silence
///   miniftp connect --tls alice@files.example.org  log in over TLS
///   MINIFTP_PASSWORD=... miniftp connect --tls --accept-new bob@host -c ls
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ConnectArgs {
    /// The server, [NAME@]HOST[:PORT] (port 65438 if not given); with NAME,
    /// log in to that account.
    #[arg(value_name = "[NAME@]HOST[:PORT]", default_value = "127.0.0.1")]
    address: String,

    /// Run COMMANDS (separated by ; or new lines) instead of a prompt.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "COMMANDS",
        group = "script"
    )]
    commands: Option<String>,

    /// Run the commands in FILE, one per line (- reads standard input).
    #[arg(short = 'b', long = "batch", value_name = "FILE", group = "script")]
    batch: Option<PathBuf>,

    /// In a script, go on after a failed command; the exit code still says
    /// that one failed.
    #[arg(long, requires = "script")]
    keep_going: bool,

    /// Seconds to wait for the server to connect or answer before giving up.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_timeout)]
    timeout: Duration,

    /// Speak only the classic protocol, even to a server that offers more
    /// (for comparisons; no ls, stat, resume or verification then).
    #[arg(long)]
    classic: bool,

    /// Wait until each downloaded file is on the disk (fsync) before it
    /// appears under its name. Without it a download is still verified and
    /// appears whole or not at all, but its bytes may sit in the page cache
    /// for a few seconds, as after curl or scp: a power cut then can lose
    /// them.
    #[arg(long)]
    fsync: bool,

    /// Encrypt the connection with TLS.
    #[arg(long, help_heading = "Security")]
    tls: bool,

    /// Trust only certificates signed by this CA (PEM); implies --tls.
    #[arg(long, value_name = "FILE", help_heading = "Security")]
    ca: Option<PathBuf>,

    /// Record an unknown server's fingerprint without asking (for scripts);
    /// a changed one is still refused.
    #[arg(long, help_heading = "Security")]
    accept_new: bool,

    /// Where fingerprints of servers trusted on first use are kept.
    #[arg(
        long,
        value_name = "FILE",
        env = "MINIFTP_KNOWN_HOSTS",
        help_heading = "Security"
    )]
    known_hosts: Option<PathBuf>,

    /// Send the password even over plain TCP to another host (only on a
    /// network you trust).
    #[arg(long, help_heading = "Security")]
    allow_insecure_login: bool,
}

/// `NAME@HOST` as the account and the rest.
fn split_account(address: &str) -> (Option<&str>, &str) {
    match address.rsplit_once('@') {
        Some((user, host)) if !user.is_empty() => (Some(user), host),
        _ => (None, address),
    }
}

/// Whether `address` (`HOST:PORT`) is this machine: every address it
/// resolves to is loopback. A name that does not resolve counts as this
/// host here; the connection will say what is wrong with it.
fn on_this_host(address: &str) -> bool {
    use std::net::ToSocketAddrs;
    match address.to_socket_addrs() {
        Ok(addresses) => addresses
            .into_iter()
            .all(|address| address.ip().is_loopback()),
        Err(_) => true,
    }
}

/// How the client logs in to `user`: with `MINIFTP_PASSWORD`, or asking
/// for the password without echo once it is needed (after the server's
/// certificate is trusted, as ssh asks).
fn login_for(user: &str, host: &str) -> anyhow::Result<(Option<Credentials>, Option<AskedLogin>)> {
    if let Ok(password) = std::env::var("MINIFTP_PASSWORD") {
        let credentials = Credentials {
            user: user.to_owned(),
            password: Password::new(password),
        };
        return Ok((Some(credentials), None));
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "a password is needed for {user}@{host}: set MINIFTP_PASSWORD, or run on a terminal"
        );
    }
    let prompt = format!("{user}@{host}'s password: ");
    let ask = move || match rpassword::prompt_password(&prompt) {
        Ok(password) => Ok(Password::new(password)),
        Err(error) => Err(format!("cannot read the password: {}", plain_io(&error))),
    };
    Ok((None, Some(AskedLogin::new(user.to_owned(), Arc::new(ask)))))
}

/// Asks on the terminal whether to trust a server seen for the first time.
fn ask_to_trust(server: &str, fingerprint: &Fingerprint) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprintln!(
        "The server {server} presented a certificate that is not signed by a known authority."
    );
    eprintln!("Its SHA-256 fingerprint is:\n  {fingerprint}");
    eprintln!("Compare it with the one `miniftp serve --tls` printed when it started.");
    loop {
        // Ctrl-C or Ctrl-D: no.
        let Some(answer) = super::ask::line("Trust this server and remember it? [yes/no] ") else {
            return false;
        };
        match answer.to_ascii_lowercase().as_str() {
            "yes" | "y" => return true,
            "no" | "n" | "" => return false,
            _ => eprintln!("Please answer yes or no."),
        }
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(Duration::from_secs_f64(seconds)),
        _ => Err("expected a number of seconds greater than 0".to_owned()),
    }
}

/// `HOST[:PORT]` as an address to connect to, with the default port; a
/// port that is not one (`99999`, `http`) is the error.
fn with_port(address: &str) -> Result<String, String> {
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(address.to_owned());
    }
    if let Ok(ip) = address.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    // What follows the last colon is a port, unless the colon is inside an
    // IPv6 address, which then comes in brackets.
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            match port.parse::<u16>() {
                Ok(1..) => Ok(address.to_owned()),
                _ => Err(format!(
                    "invalid port '{port}' in {address}: a port is a number from 1 to 65535"
                )),
            }
        }
        _ => Ok(format!("{address}:{DEFAULT_PORT}")),
    }
}

/// Reads a script from standard input or a file, with an error in words.
fn read_script(path: Option<&Path>) -> anyhow::Result<String> {
    let mut text = String::new();
    let read = match path {
        None => std::io::stdin().read_to_string(&mut text).map(drop),
        Some(path) => std::fs::read_to_string(path).map(|read| text = read),
    };
    read.map_err(|error| {
        let source = path.map_or("standard input".into(), |path| path.display().to_string());
        anyhow::anyhow!("cannot read commands from {source}: {}", plain_io(&error))
    })?;
    Ok(text)
}

/// Connects, then runs the script or the prompt.
pub fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    // Read the script first: a missing file is not worth a connection.
    // Commands piped in without -b are a batch too, as with sftp: no
    // banner, no prompt, stop at the first failure.
    let script = match (&args.commands, &args.batch) {
        (Some(commands), _) => Some(commands.clone()),
        (None, Some(path)) if path.as_os_str() == "-" => Some(read_script(None)?),
        (None, Some(path)) => Some(read_script(Some(path))?),
        (None, None) if !std::io::stdin().is_terminal() => Some(read_script(None)?),
        (None, None) => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let (user, host) = split_account(&args.address);
    let address = match with_port(host) {
        Ok(address) => address,
        Err(reason) => {
            eprintln!("miniftp: {reason}");
            return Ok(ExitCode::from(2));
        }
    };
    let tls_asked = args.tls || args.ca.is_some();
    if user.is_some() && !tls_asked && !args.allow_insecure_login && !on_this_host(&address) {
        // Said before the password is typed, not after.
        eprintln!(
            "miniftp: {}",
            ClientError::InsecureLogin {
                address: address.clone()
            }
        );
        return Ok(ExitCode::from(2));
    }
    let (login, asked_login) = match user {
        Some(user) => login_for(user, host)?,
        None => (None, None),
    };
    let tls = tls_asked.then(|| {
        Arc::new(ClientTrust {
            ca_file: args.ca.clone(),
            known_hosts: args
                .known_hosts
                .clone()
                .unwrap_or_else(miniftp::tls::default_known_hosts),
            accept_new: args.accept_new,
            ask: Some(Arc::new(ask_to_trust)),
            handshake_timeout: args.timeout,
        })
    });
    let config = ClientConfig {
        timeout: args.timeout,
        protocol: match args.classic {
            true => Protocol::Classic,
            false => Protocol::Auto,
        },
        tls,
        login,
        asked_login,
        allow_insecure_login: args.allow_insecure_login,
        durable_downloads: args.fsync,
        ..ClientConfig::default()
    };
    // The prompt asks before what cannot be undone; scripts never ask
    // (as sftp -b), they refuse unless forced.
    let confirm = match script {
        None => Confirm::Ask,
        Some(_) => Confirm::Refuse,
    };
    let anonymous = user.is_none();
    let mut client = match runtime.block_on(Client::connect(&address, config)) {
        Ok(client) => client,
        // TLS messages are ours (the changed-certificate warning spans
        // lines); any other may quote the server, never raw.
        Err(error @ ClientError::Tls(_)) => {
            eprintln!("miniftp: {error}");
            return Ok(ExitCode::from(2));
        }
        Err(error) => {
            eprintln!("miniftp: {}", escape(&error.to_string()));
            return Ok(ExitCode::from(2));
        }
    };
    // Said now, rather than by every command.
    if anonymous && runtime.block_on(client.needs_login()).unwrap_or(false) {
        eprintln!(
            "miniftp: the server at {address} needs an account: connect as NAME@{host}{}",
            match tls_asked {
                true => "",
                false => " (with --tls unless it is on this host)",
            }
        );
        return Ok(ExitCode::from(2));
    }
    let shell = Shell::new(runtime, client, confirm);
    match script {
        Some(script) => Ok(shell::script::run(
            shell.for_script(),
            &script,
            args.keep_going,
        )),
        None => shell::interactive::run(shell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_defaults_to_65438() {
        let cases = [
            ("127.0.0.1", "127.0.0.1:65438"),
            ("127.0.0.1:7000", "127.0.0.1:7000"),
            ("localhost", "localhost:65438"),
            ("files.lan:7000", "files.lan:7000"),
            ("::1", "[::1]:65438"),
            ("[::1]", "[::1]:65438"),
            ("[::1]:7000", "[::1]:7000"),
        ];
        for (given, expected) in cases {
            assert_eq!(with_port(given).as_deref(), Ok(expected), "{given}");
        }
    }

    #[test]
    fn a_port_out_of_range_is_no_port() {
        for given in [
            "127.0.0.1:99999",
            "host:0",
            "host:http",
            "[::1]:65536",
            "host:",
        ] {
            let error = with_port(given).unwrap_err();
            assert!(error.starts_with("invalid port '"), "{given}: {error}");
            assert!(
                error.ends_with("a port is a number from 1 to 65535"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_account_comes_before_the_at() {
        assert_eq!(
            split_account("alice@files.lan:7000"),
            (Some("alice"), "files.lan:7000")
        );
        assert_eq!(split_account("files.lan"), (None, "files.lan"));
        assert_eq!(split_account("@files.lan"), (None, "@files.lan"));
        assert_eq!(split_account("a@b@host"), (Some("a@b"), "host"));
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
