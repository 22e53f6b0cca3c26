//! The prompt: line editing and history (rustyline), completion, and
//! recovery when the connection is lost or a command is cancelled.

use miniftp::protocol::text::escape;
use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};

use super::complete::ShellHelper;
use super::line::parse_script;
use super::{Failure, Flow, Shell};

/// Past this many candidates, a second Tab asks `Display all N
/// possibilities? (y or n)` before listing them (readline's default).
const COMPLETION_QUERY_ITEMS: usize = 100;

/// Where the history is kept: the user's data directory.
fn history_path() -> Option<PathBuf> {
    Some(dirs::data_dir()?.join("miniftp").join("history"))
}

/// Runs the prompt until exit, Ctrl-D, or a connection that cannot be
/// restored (exit code 2).
pub fn run(shell: Shell) -> anyhow::Result<ExitCode> {
    println!("{}", shell.welcome());
    println!("Type help for the commands.");
    // Completion lists remote directories between commands: the shell is
    // shared with the editor's helper, and never borrowed by both at once.
    let shared = Rc::new(RefCell::new(shell));
    // Completion as in bash: the common prefix first, then on a second
    // Tab the candidates in columns, paged with --More--, and past
    // COMPLETION_QUERY_ITEMS a question with their count first.
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .completion_prompt_limit(COMPLETION_QUERY_ITEMS)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> = Editor::with_config(config)?;
    let lister = shared.clone();
    editor.set_helper(Some(ShellHelper::new(Box::new(move |directory| {
        lister.borrow_mut().remote_entries(directory)
    }))));
    let code = prompt(&shared, &mut editor);
    drop(editor);
    let shell = Rc::into_inner(shared)
        .expect("the editor is gone")
        .into_inner();
    match code? {
        Some(code) => Ok(code),
        None => {
            shell.close();
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The prompt loop; `None` when the user left connected (the shell is to
/// be closed), or the exit code 2 when the user left while the connection
/// was gone and could not be restored.
fn prompt(
    shared: &Rc<RefCell<Shell>>,
    editor: &mut Editor<ShellHelper, FileHistory>,
) -> anyhow::Result<Option<ExitCode>> {
    let history = history_path();
    if let Some(path) = &history {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = editor.load_history(path);
    }
    loop {
        let prompt = {
            let shell = shared.borrow();
            match shell.is_connected() {
                true => format!("miniftp:{}> ", escape(shell.directory())),
                false => "miniftp:(not connected)> ".to_owned(),
            }
        };
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            // Ctrl-C at the prompt clears the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error.into()),
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
            if let Some(path) = &history {
                let _ = editor.append_history(path);
            }
        }
        let mut shell = shared.borrow_mut();
        for command in parse_script(&line) {
            let result = command
                .map_err(|error| Failure::Command(error.reason.to_owned()))
                .and_then(|words| shell.run_words(&words.words));
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::Exit) => return Ok(exit_code(&shell)),
                // Said once: the attempt to reconnect was the command's.
                Err(failure @ Failure::Unreachable(_)) => {
                    eprintln!("error: {failure}");
                    break;
                }
                Err(failure) => {
                    eprintln!("error: {}", escape(&failure.to_string()));
                    recover(&mut shell);
                    // The rest of the line assumed this command worked.
                    break;
                }
            }
        }
    }
    Ok(exit_code(&shared.borrow()))
}

/// How the prompt ends: closed normally when connected, exit code 2 when
/// the connection is gone.
fn exit_code(shell: &Shell) -> Option<ExitCode> {
    (!shell.is_connected()).then(|| ExitCode::from(2))
}

/// After a failure, reconnects if the connection is gone (lost, or
/// dropped by a cancelled command). If it cannot, the shell stays, not
/// connected: the next remote command (or `reconnect`) tries again.
fn recover(shell: &mut Shell) {
    if shell.is_connected() {
        return;
    }
    eprintln!("reconnecting...");
    match shell.reconnect() {
        Ok(()) => eprintln!(
            "reconnected; remote directory {}",
            escape(shell.directory())
        ),
        Err(Failure::Command(reason)) => eprintln!(
            "reconnected, but could not return to the remote directory: {}; now in {}",
            escape(&reason),
            escape(shell.directory())
        ),
        Err(failure) => eprintln!(
            "cannot reconnect: {}\n\
             not connected: type reconnect (or any remote command) to try again, exit to leave",
            escape(&failure.to_string())
        ),
    }
}
