//! Scripts (`-c`, `-b`): commands run in order without a prompt; the
//! first failure stops the script unless told to keep going.

use miniftp::protocol::text::escape;
use std::process::ExitCode;

use super::line::parse_script;
use super::{Failure, Flow, Shell};

/// Exit code when a command failed.
const COMMAND_FAILED: u8 = 1;
/// Exit code when the connection failed or could not be restored.
const CONNECTION_FAILED: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

/// Runs `script`; exit code 0 if every command succeeded, 1 if one failed,
/// 2 if the connection failed, 130 on Ctrl-C.
pub fn run(mut shell: Shell, script: &str, keep_going: bool) -> ExitCode {
    let mut failed = false;
    for command in parse_script(script) {
        let (text, result) = match command {
            Ok(words) => (words.text, shell.run_words(&words.words)),
            Err(error) => (error.text, Err(Failure::Command(error.reason.to_owned()))),
        };
        let failure = match result {
            Ok(Flow::Continue) => continue,
            Ok(Flow::Exit) => break,
            Err(failure) => failure,
        };
        eprintln!("miniftp: {text}: {}", escape(&failure.to_string()));
        let code = match failure {
            Failure::Cancelled(_) => return ExitCode::from(INTERRUPTED),
            Failure::Command(_) => COMMAND_FAILED,
            Failure::Connection(_) | Failure::Unreachable(_) => CONNECTION_FAILED,
        };
        if !keep_going {
            return ExitCode::from(code);
        }
        failed = true;
        if !shell.is_connected()
            && let Err(error) = shell.reconnect()
        {
            eprintln!("miniftp: cannot reconnect: {error}");
            return ExitCode::from(CONNECTION_FAILED);
        }
    }
    shell.close();
    match failed {
        true => ExitCode::from(COMMAND_FAILED),
        false => ExitCode::SUCCESS,
    }
}
