//! The shell's commands: their names, usage and help, and the parse from
//! words into a [`Command`]. Pure; adding a command is a row in
//! [`COMMANDS`], a variant here and an arm in the shell's `execute`.

use super::line::Word;

/// A command typed at the prompt or found in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `cd PATH`
    ChangeDirectory(Word),
    /// `pwd`
    RemoteDirectory,
    /// `ls [-l] [PATH]`
    List {
        /// The directory, or a pattern; `None`: the remote directory.
        path: Option<Word>,
        /// Type, size and modification time too.
        long: bool,
    },
    /// `stat PATH`
    Stat(Word),
    /// `mkdir [-p] PATH`
    MakeDirectory {
        /// The directory to make.
        path: String,
        /// Make missing parents; an existing directory is fine.
        parents: bool,
    },
    /// `rm [-r] [-f] PATH`
    Remove {
        /// What to remove, perhaps a pattern.
        path: Word,
        /// A directory with everything below it.
        recursive: bool,
        /// Do not ask; a missing PATH is not an error.
        force: bool,
    },
    /// `mv SRC DEST`
    Rename(Word, String),
    /// `info PATH`
    Size(Word),
    /// `ul [-r] LOCAL [REMOTE]`
    Upload {
        /// The local file, directory or pattern.
        local: Word,
        /// The remote name; `None`: the local file's name.
        remote: Option<String>,
        /// Directories with everything below them.
        recursive: bool,
    },
    /// `dl [-r] [-f] REMOTE [LOCAL]`
    Download {
        /// The remote file, directory or pattern.
        remote: Word,
        /// The local path; `None`: the remote name in the local directory.
        local: Option<String>,
        /// Directories with everything below them.
        recursive: bool,
        /// Replace existing local files without asking.
        force: bool,
    },
    /// `lcd [DIR]`
    LocalChangeDirectory(Option<String>),
    /// `lpwd`
    LocalDirectory,
    /// `lls [DIR]`
    LocalList(Option<String>),
    /// `help [COMMAND]`
    Help(Option<String>),
    /// `reconnect`
    Reconnect,
    /// `exit`, `quit`
    Exit,
}

/// A command's documentation.
pub struct CommandHelp {
    /// The name typed.
    pub name: &'static str,
    /// Its arguments, as in `cd PATH`.
    pub usage: &'static str,
    /// One line.
    pub summary: &'static str,
    /// More, for `help NAME`.
    pub details: &'static str,
    /// The flags it takes, as letters.
    flags: &'static str,
    /// What each argument names (flags not counted), for completion.
    pub arguments: &'static [Argument],
}

/// What an argument of a command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argument {
    /// A path on this machine.
    Local,
    /// A path on the server.
    Remote,
    /// Something else (a command name, say).
    Other,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "cd",
        usage: "cd PATH",
        summary: "change the remote directory",
        details: "PATH is relative to the remote directory unless it starts with /; .. goes up.\n\
                  PATH may end with a pattern (cd ph*) that picks one directory.",
        flags: "",
        arguments: &[Argument::Remote],
    },
    CommandHelp {
        name: "pwd",
        usage: "pwd",
        summary: "show the remote directory",
        details: "The prompt shows it too.",
        flags: "",
        arguments: &[],
    },
    CommandHelp {
        name: "ls",
        usage: "ls [-l] [PATH]",
        summary: "list a remote directory (extended protocol)",
        details: "Directories first, with a trailing /, then files, each group by name.\n\
                  PATH may end with a pattern (ls *.txt, ls logs/2024-*): the entries it\n\
                  picks are listed (not what the directories among them hold).\n\
                  -l  also the type (d or -), the size in bytes and the modification time (UTC).",
        flags: "l",
        arguments: &[Argument::Remote],
    },
    CommandHelp {
        name: "stat",
        usage: "stat PATH",
        summary: "describe a remote entry (extended protocol)",
        details: "Prints `PATH: file, N bytes, modified TIME` (or `directory`), time in UTC.\n\
                  PATH may end with a pattern (stat *.log): one line per entry it picks.",
        flags: "",
        arguments: &[Argument::Remote],
    },
    CommandHelp {
        name: "mkdir",
        usage: "mkdir [-p] PATH",
        summary: "create a remote directory",
        details: "Its parent must exist; an existing PATH is an error.\n\
                  -p  make missing parents too; an existing directory is fine (extended protocol).",
        flags: "p",
        arguments: &[Argument::Remote],
    },
    CommandHelp {
        name: "rm",
        usage: "rm [-r] [-f] PATH",
        summary: "remove a remote file or directory",
        details: "Without -r a directory must be empty. The root, and a PATH ending with . or\n\
                  .., are never removed.\n\
                  PATH may end with a pattern (rm *.tmp, extended protocol): the files it\n\
                  picks (directories too with -r); when that is more than one file, asks once\n\
                  first.\n\
                  -r  remove a directory with everything below it (extended protocol); asks\n    \
                  first.\n\
                  -f  do not ask, and a missing PATH (or no match) is not an error.\n\
                  A script does not ask: what would need a question is refused, unless -f.",
        flags: "rf",
        arguments: &[Argument::Remote],
    },
    CommandHelp {
        name: "mv",
        usage: "mv SRC DEST",
        summary: "rename or move a remote entry",
        details: "If DEST is an existing directory, SRC moves into it under its own name.\n\
                  An existing entry is never replaced.\n\
                  SRC may end with a pattern (mv *.jpg photos/, extended protocol): every\n\
                  entry it picks moves into DEST, which must then be a directory.",
        flags: "",
        arguments: &[Argument::Remote, Argument::Remote],
    },
    CommandHelp {
        name: "info",
        usage: "info PATH",
        summary: "show the size of a remote file",
        details: "Prints `PATH: N bytes`.\n\
                  PATH may end with a pattern (info *.iso, extended protocol): one line per\n\
                  file it picks.",
        flags: "",
        arguments: &[Argument::Remote],
    },
    CommandHelp {
        name: "ul",
        usage: "ul [-r] LOCAL [REMOTE]",
        summary: "upload a local file (or directory, or pattern)",
        details: "REMOTE defaults to LOCAL's file name in the remote directory; a REMOTE that\n\
                  ends with / or is an existing remote directory receives the file under its\n\
                  own name. An existing remote file is replaced once the upload is complete.\n\
                  LOCAL may be a pattern (ul *.jpg; quote it to take it literally): every\n\
                  match is uploaded, into REMOTE if given.\n\
                  -r  upload a directory with everything below it, empty directories included\n    \
                  (extended protocol; many files are in flight at once).\n\
                  With the extended protocol every file is verified by the server before it\n\
                  is stored, and an interrupted upload (lost connection, Ctrl-C) continues\n\
                  where it stopped when you run the same ul again (not with -r).",
        flags: "r",
        arguments: &[Argument::Local, Argument::Remote],
    },
    CommandHelp {
        name: "dl",
        usage: "dl [-r] [-f] REMOTE [LOCAL]",
        summary: "download a remote file (or directory, or pattern)",
        details: "LOCAL defaults to REMOTE's file name in the local directory; if LOCAL is a\n\
                  directory (or ends with /) the file goes into it. The file appears under\n\
                  its name only when complete. Ctrl-C cancels it.\n\
                  An existing local file is replaced only once you answer y to\n\
                  `overwrite NAME? [y/N]` (one question for all, with their count, when\n\
                  several would be); a script does not ask and refuses, unless -f.\n\
                  REMOTE may end with a pattern (dl logs/*.txt, extended protocol): every\n\
                  matching file is downloaded, into LOCAL if given.\n\
                  -r  download a directory with everything below it, empty directories\n    \
                  included (extended protocol).\n\
                  -f, --force  replace existing local files without asking.\n\
                  With the extended protocol every file is verified against the server's\n\
                  digest, and an interrupted download keeps what it got in .NAME.miniftp-part\n\
                  beside the target, which the same dl continues (not with -r).",
        flags: "rf",
        arguments: &[Argument::Remote, Argument::Local],
    },
    CommandHelp {
        name: "lcd",
        usage: "lcd [DIR]",
        summary: "change the local directory",
        details: "Without DIR, goes to your home directory.",
        flags: "",
        arguments: &[Argument::Local],
    },
    CommandHelp {
        name: "lpwd",
        usage: "lpwd",
        summary: "show the local directory",
        details: "",
        flags: "",
        arguments: &[],
    },
    CommandHelp {
        name: "lls",
        usage: "lls [DIR]",
        summary: "list a local directory",
        details: "Directories are shown with a trailing /.",
        flags: "",
        arguments: &[Argument::Local],
    },
    CommandHelp {
        name: "reconnect",
        usage: "reconnect",
        summary: "connect to the server again",
        details: "After the server went away (a restart, a shutdown), the shell stays, not\n\
                  connected; reconnect (or any remote command) connects again and returns\n\
                  to the remote directory.",
        flags: "",
        arguments: &[],
    },
    CommandHelp {
        name: "help",
        usage: "help [COMMAND]",
        summary: "list the commands, or explain one",
        details: "",
        flags: "",
        arguments: &[Argument::Other],
    },
    CommandHelp {
        name: "exit",
        usage: "exit",
        summary: "leave (also quit, or Ctrl-D)",
        details: "",
        flags: "",
        arguments: &[],
    },
    CommandHelp {
        name: "quit",
        usage: "quit",
        summary: "leave (also exit, or Ctrl-D)",
        details: "",
        flags: "",
        arguments: &[],
    },
];

/// The help of a command by name.
pub fn help_for(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|command| command.name == name)
}

impl Command {
    /// Whether the command needs the server.
    pub fn is_remote(&self) -> bool {
        match self {
            Command::ChangeDirectory(_)
            | Command::RemoteDirectory
            | Command::List { .. }
            | Command::Stat(_)
            | Command::MakeDirectory { .. }
            | Command::Remove { .. }
            | Command::Rename(..)
            | Command::Size(_)
            | Command::Upload { .. }
            | Command::Download { .. } => true,
            Command::LocalChangeDirectory(_)
            | Command::LocalDirectory
            | Command::LocalList(_)
            | Command::Help(_)
            | Command::Reconnect
            | Command::Exit => false,
        }
    }

    /// Reads a command from its words (at least one). Flags come before
    /// the other arguments, alone or together (`-rf`); `--` ends them.
    pub fn parse(words: &[Word]) -> Result<Command, String> {
        let Some((name, rest)) = words.split_first() else {
            return Err("empty command".to_owned());
        };
        let Some(help) = help_for(&name.text) else {
            return Err(format!(
                "unknown command: {} (type help for a list)",
                name.text
            ));
        };
        let usage = || format!("usage: {}", help.usage);
        let (flags, args) = split_flags(rest, help.flags)
            .map_err(|flag| format!("{}: unknown option {flag}; {}", help.name, usage()))?;
        let flag = |letter: char| flags.contains(letter);
        let text = |i: usize| args[i].text.clone();
        let owned = |i: usize| args.get(i).map(|word| word.text.clone());
        let word = |i: usize| args[i].clone();
        let command = match (help.name, args.len()) {
            ("cd", 1) => Command::ChangeDirectory(word(0)),
            ("pwd", 0) => Command::RemoteDirectory,
            ("ls", 0 | 1) => Command::List {
                path: args.first().cloned(),
                long: flag('l'),
            },
            ("stat", 1) => Command::Stat(word(0)),
            ("mkdir", 1) => Command::MakeDirectory {
                path: text(0),
                parents: flag('p'),
            },
            ("rm", 1) => Command::Remove {
                path: word(0),
                recursive: flag('r'),
                force: flag('f'),
            },
            ("mv", 2) => Command::Rename(word(0), text(1)),
            ("info", 1) => Command::Size(word(0)),
            ("ul", 1 | 2) => Command::Upload {
                local: args[0].clone(),
                remote: owned(1),
                recursive: flag('r'),
            },
            ("dl", 1 | 2) => Command::Download {
                remote: args[0].clone(),
                local: owned(1),
                recursive: flag('r'),
                force: flag('f'),
            },
            ("lcd", 0 | 1) => Command::LocalChangeDirectory(owned(0)),
            ("lpwd", 0) => Command::LocalDirectory,
            ("lls", 0 | 1) => Command::LocalList(owned(0)),
            ("help", 0 | 1) => Command::Help(owned(0)),
            ("reconnect", 0) => Command::Reconnect,
            ("exit" | "quit", 0) => Command::Exit,
            _ => return Err(usage()),
        };
        Ok(command)
    }
}

/// The long spelling of flags, for every command that takes the letter.
const LONG_FLAGS: &[(&str, char)] = &[
    ("force", 'f'),
    ("long", 'l'),
    ("parents", 'p'),
    ("recursive", 'r'),
];

/// Splits leading flags (`-r`, `-rf`, `--force`) from the other arguments;
/// an unknown flag (as typed) is the error. A lone `-` is an argument;
/// `--` ends the flags.
fn split_flags<'w>(words: &'w [Word], known: &str) -> Result<(String, &'w [Word]), String> {
    let mut flags = String::new();
    let mut rest = words;
    while let Some((word, after)) = rest.split_first() {
        if word.text == "--" {
            rest = after;
            break;
        }
        let Some(letters) = word.text.strip_prefix('-').filter(|l| !l.is_empty()) else {
            break;
        };
        if known.is_empty() {
            break;
        }
        if let Some(long) = letters.strip_prefix('-') {
            match LONG_FLAGS.iter().find(|(name, _)| *name == long) {
                Some((_, letter)) if known.contains(*letter) => flags.push(*letter),
                _ => return Err(word.text.clone()),
            }
        } else if let Some(unknown) = letters.chars().find(|letter| !known.contains(*letter)) {
            return Err(format!("-{unknown}"));
        } else {
            flags.push_str(letters);
        }
        rest = after;
    }
    Ok((flags, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Command, String> {
        let words: Vec<Word> = words.iter().map(|w| Word::plain(w)).collect();
        Command::parse(&words)
    }

    #[test]
    fn parses_every_command() {
        let s = |text: &str| text.to_owned();
        let w = Word::plain;
        let cases = [
            (&["cd", "a b"][..], Command::ChangeDirectory(w("a b"))),
            (
                &["mkdir", "x"],
                Command::MakeDirectory {
                    path: s("x"),
                    parents: false,
                },
            ),
            (
                &["mkdir", "-p", "x/y"],
                Command::MakeDirectory {
                    path: s("x/y"),
                    parents: true,
                },
            ),
            (
                &["rm", "x"],
                Command::Remove {
                    path: w("x"),
                    recursive: false,
                    force: false,
                },
            ),
            (
                &["rm", "-rf", "x"],
                Command::Remove {
                    path: w("x"),
                    recursive: true,
                    force: true,
                },
            ),
            (
                &["rm", "-r", "--", "-f"],
                Command::Remove {
                    path: w("-f"),
                    recursive: true,
                    force: false,
                },
            ),
            (&["pwd"], Command::RemoteDirectory),
            (
                &["ls"],
                Command::List {
                    path: None,
                    long: false,
                },
            ),
            (
                &["ls", "-l", "a b"],
                Command::List {
                    path: Some(w("a b")),
                    long: true,
                },
            ),
            (&["stat", "x"], Command::Stat(w("x"))),
            (&["mv", "a", "b"], Command::Rename(w("a"), s("b"))),
            (&["info", "x"], Command::Size(w("x"))),
            (
                &["ul", "a.jpg"],
                Command::Upload {
                    local: Word::plain("a.jpg"),
                    remote: None,
                    recursive: false,
                },
            ),
            (
                &["ul", "a.jpg", "b.jpg"],
                Command::Upload {
                    local: Word::plain("a.jpg"),
                    remote: Some(s("b.jpg")),
                    recursive: false,
                },
            ),
            (
                &["ul", "-r", "dir"],
                Command::Upload {
                    local: Word::plain("dir"),
                    remote: None,
                    recursive: true,
                },
            ),
            (
                &["dl", "a.jpg"],
                Command::Download {
                    remote: Word::plain("a.jpg"),
                    local: None,
                    recursive: false,
                    force: false,
                },
            ),
            (
                &["dl", "-r", "d", "-"],
                Command::Download {
                    remote: Word::plain("d"),
                    local: Some(s("-")),
                    recursive: true,
                    force: false,
                },
            ),
            (
                &["dl", "-rf", "d"],
                Command::Download {
                    remote: Word::plain("d"),
                    local: None,
                    recursive: true,
                    force: true,
                },
            ),
            (
                &["dl", "--force", "a.jpg", "b.jpg"],
                Command::Download {
                    remote: Word::plain("a.jpg"),
                    local: Some(s("b.jpg")),
                    recursive: false,
                    force: true,
                },
            ),
            (
                &["rm", "--recursive", "--force", "x"],
                Command::Remove {
                    path: w("x"),
                    recursive: true,
                    force: true,
                },
            ),
            (&["lcd"], Command::LocalChangeDirectory(None)),
            (
                &["lcd", "/tmp"],
                Command::LocalChangeDirectory(Some(s("/tmp"))),
            ),
            (&["lpwd"], Command::LocalDirectory),
            (&["lls"], Command::LocalList(None)),
            (&["help", "ul"], Command::Help(Some(s("ul")))),
            (&["exit"], Command::Exit),
            (&["quit"], Command::Exit),
        ];
        for (words, expected) in cases {
            assert_eq!(parse(words), Ok(expected), "{words:?}");
        }
    }

    #[test]
    fn wrong_arguments_show_the_usage() {
        assert_eq!(parse(&["cd"]), Err("usage: cd PATH".into()));
        assert_eq!(parse(&["mv", "a"]), Err("usage: mv SRC DEST".into()));
        assert_eq!(
            parse(&["ul", "a", "b", "c"]),
            Err("usage: ul [-r] LOCAL [REMOTE]".into())
        );
        assert_eq!(parse(&["exit", "now"]), Err("usage: exit".into()));
        assert_eq!(
            parse(&["rm", "-x", "a"]),
            Err("rm: unknown option -x; usage: rm [-r] [-f] PATH".into())
        );
        assert_eq!(
            parse(&["ls", "--force", "a"]),
            Err("ls: unknown option --force; usage: ls [-l] [PATH]".into())
        );
        assert_eq!(
            parse(&["ls", "-l", "a", "b"]),
            Err("usage: ls [-l] [PATH]".into())
        );
        // Commands without flags take a leading dash as a name.
        assert_eq!(
            parse(&["cd", "-x"]),
            Ok(Command::ChangeDirectory(Word::plain("-x")))
        );
        assert!(
            parse(&["frobnicate"])
                .unwrap_err()
                .starts_with("unknown command: frobnicate")
        );
        assert!(parse(&["CD", "x"]).is_err());
    }

    #[test]
    fn every_listed_command_has_help() {
        for command in COMMANDS {
            assert!(command.usage.starts_with(command.name));
            assert!(!command.summary.is_empty());
        }
    }
}
