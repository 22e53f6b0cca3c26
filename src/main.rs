//! The `miniftp` binary: parses arguments, sets up logging, calls the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
