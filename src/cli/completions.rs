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

/// Writes the man page to standard output: one page that holds every
/// subcommand (so that it points at no other page), examples as typed.
pub fn man(_: ManArgs) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    let mut page = Vec::new();
    let top = clap_mangen::Man::new(command.clone());
    top.render_title(&mut page)?;
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_options_section(&mut page)?;
    let mut commands = String::from(".SH COMMANDS\nEach is described below.\n");
    for sub in command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        commands.push_str(&format!(".TP\n\\fBminiftp {}\\fR\n", sub.get_name()));
        if let Some(about) = sub.get_about() {
            commands.push_str(&format!("{}\n", roff_text(&about.to_string())));
        }
    }
    page.extend_from_slice(commands.as_bytes());
    for sub in command.get_subcommands() {
        subcommand_sections(&mut page, sub, "miniftp")?;
    }
    top.render_version_section(&mut page)?;
    let page = keep_examples_as_typed(&String::from_utf8_lossy(&page));
    std::io::stdout().write_all(page.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// A section for `parent command` (and, below it, for its own
/// subcommands): its synopsis, description and options as subsections.
fn subcommand_sections(
    page: &mut Vec<u8>,
    command: &clap::Command,
    parent: &str,
) -> std::io::Result<()> {
    if command.get_name() == "help" {
        return Ok(());
    }
    let name = format!("{parent} {}", command.get_name());
    let command = command.clone().bin_name(&name);
    let man = clap_mangen::Man::new(command.clone());
    let mut sections = Vec::new();
    man.render_synopsis_section(&mut sections)?;
    man.render_description_section(&mut sections)?;
    man.render_options_section(&mut sections)?;
    page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
    for line in String::from_utf8_lossy(&sections).lines() {
        let line = match line.strip_prefix(".SH ") {
            Some(title) => format!(".SS {title}"),
            None => line.to_owned(),
        };
        page.extend_from_slice(line.as_bytes());
        page.push(b'\n');
    }
    for sub in command.get_subcommands() {
        subcommand_sections(page, sub, &name)?;
    }
    Ok(())
}

/// Text for roff: a leading dot or quote would be a request, and `-` a
/// hyphen rather than a minus.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('-', "\\-");
    match escaped.starts_with(['.', '\'']) {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

/// Lines indented in the help (examples, tables) are kept as typed: man
/// would otherwise fill them into paragraphs.
fn keep_examples_as_typed(page: &str) -> String {
    let mut out = String::with_capacity(page.len() + 256);
    let mut verbatim = false;
    for line in page.lines() {
        let indented = line.starts_with("  ") && !line.trim_start().starts_with('.');
        match (indented, verbatim) {
            (true, false) => out.push_str(".nf\n"),
            (false, true) => out.push_str(".fi\n"),
            _ => {}
        }
        verbatim = indented;
        out.push_str(line);
        out.push('\n');
    }
    if verbatim {
        out.push_str(".fi\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indented_lines_are_kept_as_typed() {
        let page = ".PP\nExamples:\n  miniftp serve   share\n  miniftp connect\n.SH OPTIONS\n";
        assert_eq!(
            keep_examples_as_typed(page),
            ".PP\nExamples:\n.nf\n  miniftp serve   share\n  miniftp connect\n.fi\n.SH OPTIONS\n"
        );
    }
}
