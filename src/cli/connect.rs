//! `miniftp connect`: the client, as a shell or running a script.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use miniftp::client::{Client, ClientConfig, DEFAULT_PORT, Protocol};

use super::shell::{self, Confirm, Shell};

/// Connect to a server: an interactive shell, or a script.
///
/// Without -c or -b, shows the server's welcome and a prompt naming the
/// remote directory (miniftp:/photos> ). Type help for the commands: cd,
/// pwd, ls, stat, mkdir, rm, mv, info, ul, dl, lcd, lpwd, lls, help, exit.
/// Quote names with spaces as in a shell; ul *.jpg and dl logs/*.txt take
/// patterns. Tab completes commands, local paths and (extended protocol)
/// remote names; the history is kept in your data directory. Ctrl-C
/// cancels a running transfer (the shell reconnects and returns to the
/// remote directory) or clears the line at the prompt; Ctrl-D or exit
/// leaves.
///
/// Against a miniftp server the client switches to the extended protocol:
/// any file travels, every transfer is verified, interrupted transfers
/// resume, and ls, stat, mkdir -p, rm -r, ul -r and dl -r work. Against the
/// original Mini-FTP (or with --classic) it speaks the classic protocol.
///
/// Scripts (-c, -b) run without a prompt, print only what commands print
/// (info sizes, listings, transfer summaries), and stop at the first
/// failure. Without a terminal, rm -r of a directory needs -f.
///
/// Exit codes: 0 every command succeeded; 1 a command failed; 2 the
/// connection failed or was lost (a server that stops answering included);
/// 130 interrupted.
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
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ConnectArgs {
    /// The server, HOST[:PORT] (port 65438 if not given).
    #[arg(value_name = "HOST[:PORT]", default_value = "127.0.0.1")]
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
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(Duration::from_secs_f64(seconds)),
        _ => Err("expected a number of seconds greater than 0".to_owned()),
    }
}

/// `HOST[:PORT]` as an address to connect to, with the default port.
fn with_port(address: &str) -> String {
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return address.to_owned();
    }
    if let Ok(ip) = address.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, DEFAULT_PORT).to_string();
    }
    match address.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => address.to_owned(),
        _ => format!("{address}:{DEFAULT_PORT}"),
    }
}

/// Connects, then runs the script or the prompt.
pub fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    // Read the script first: a missing file is not worth a connection.
    let script = match (&args.commands, &args.batch) {
        (Some(commands), _) => Some(commands.clone()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read commands from standard input")?;
            Some(text)
        }
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read commands from {}", path.display()))?,
        ),
        (None, None) => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let address = with_port(&args.address);
    let config = ClientConfig {
        timeout: args.timeout,
        protocol: match args.classic {
            true => Protocol::Classic,
            false => Protocol::Auto,
        },
    };
    // A prompt, or a script typed on a terminal, can ask for confirmation;
    // a script read from standard input or without a terminal cannot.
    let stdin_free = args
        .batch
        .as_ref()
        .is_none_or(|path| path.as_os_str() != "-");
    let confirm = match stdin_free && std::io::stdin().is_terminal() {
        true => Confirm::Ask,
        false => Confirm::Refuse,
    };
    let client = match runtime.block_on(Client::connect(&address, config)) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("miniftp: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let shell = Shell::new(runtime, client, confirm);
    match script {
        Some(script) => Ok(shell::script::run(shell, &script, args.keep_going)),
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
            assert_eq!(with_port(given), expected, "{given}");
        }
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
