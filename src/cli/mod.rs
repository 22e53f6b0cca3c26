//! The command line: clap definitions, translated into library calls. The
//! only code that knows a terminal.

mod ask;
mod completions;
mod connect;
mod serve;
mod shell;
mod user;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// Share a directory over TCP, or work on a shared one.
///
/// miniftp speaks the classic Mini-FTP token protocol, so clients written for
/// the original work unchanged against its server.
///
/// Examples:
///   miniftp serve ~/public                 share a directory on 127.0.0.1:65438
///   miniftp connect                        open a shell on that server
///   miniftp connect -c 'cd x; dl a.jpg'    run commands without a prompt
#[derive(Debug, Parser)]
#[command(
    name = "miniftp",
    version,
    propagate_version = true,
    verbatim_doc_comment
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// More log output: -v adds debug detail (each command and frame, group
    /// commits), -vv traces (pacing decisions, the libraries' debug lines).
    /// The default is one line per operation and per connection. RUST_LOG
    /// overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    /// Only warnings and errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Log format, on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Connect(connect::ConnectArgs),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
    User(user::UserArgs),
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Connect(args) => connect::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
        Command::User(args) => user::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("miniftp: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    // Detail is miniftp's own: the libraries below stay at their warnings
    // (or, with -vv, their debug lines).
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "miniftp=info,warn",
        (false, 1) => "miniftp=debug,warn",
        (false, _) => "miniftp=trace,debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
