//! `miniftp completions` and `miniftp man`: shell completions and a man
//! page, generated from the clap definition so they never drift from it.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Print a completion script for your shell.
///
/// Examples:
///   miniftp completions bash > ~/.local/share/bash-completion/completions/miniftp
///   miniftp completions zsh > "${fpath[1]}/_miniftp"
///   miniftp completions fish > ~/.config/fish/completions/miniftp.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Print the manual page (roff).
///
/// Examples:
///   miniftp man > miniftp.1 && man ./miniftp.1
///   miniftp man | gzip > /usr/local/share/man/man1/miniftp.1.gz
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {}

/// Writes the completion script to standard output.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "miniftp", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes the man page to standard output.
pub fn man(_: ManArgs) -> anyhow::Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    std::io::stdout().write_all(&page)?;
    Ok(ExitCode::SUCCESS)
}
