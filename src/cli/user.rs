//! `miniftp user`: manage the users file that `miniftp serve --users` reads.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use miniftp::Access;
use miniftp::accounts::{self, Accounts};

/// The environment variable a password is taken from, instead of a prompt.
const PASSWORD_VARIABLE: &str = "MINIFTP_PASSWORD";

/// Manage the accounts of a users file.
///
/// A users file (TOML) lists who may log in to `miniftp serve --users FILE`,
/// with an argon2id hash of each password, a home directory under the shared
/// root, and read-write or read-only access. These commands create and edit
/// it; it is written atomically and readable by its owner only.
///
/// Passwords are asked on the terminal, twice, without echo; scripts set
/// MINIFTP_PASSWORD instead. --users may be given by MINIFTP_USERS.
///
/// Examples:
///   miniftp user add alice --users users.toml           home alice/, read-write
///   miniftp user add guest --users users.toml --home public --read-only
///   miniftp user list --users users.toml
///   miniftp user passwd alice --users users.toml
///   miniftp user remove guest --users users.toml
///   MINIFTP_PASSWORD=... miniftp user add ci --users users.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    Add(AddArgs),
    Remove(RemoveArgs),
    List(ListArgs),
    Passwd(PasswdArgs),
}

/// The users file, shared by every `user` subcommand.
#[derive(Debug, Args)]
struct UsersFile {
    /// The users file (created by the first `user add`).
    #[arg(long, value_name = "FILE", env = "MINIFTP_USERS")]
    users: PathBuf,
}

/// Add an account.
///
/// Its home is a directory under the shared root, by default named after
/// the account; the server creates it when needed. Names are 1 to 32
/// letters, digits, '.', '_' or '-', not starting with '.' or '-'.
///
/// The password is MINIFTP_PASSWORD when set, else asked twice on the
/// terminal without echo.
///
/// Examples:
///   miniftp user add alice --users users.toml
///   miniftp user add bob --users users.toml --home shared/team --read-only
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
struct AddArgs {
    /// The account's login name.
    name: String,

    #[command(flatten)]
    file: UsersFile,

    /// Its directory, relative to the shared root (default: its name).
    #[arg(long, value_name = "DIR")]
    home: Option<String>,

    /// Let it list and download only.
    #[arg(long)]
    read_only: bool,
}

/// Remove an account (its files stay).
///
/// Example:
///   miniftp user remove bob --users users.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
struct RemoveArgs {
    /// The account's login name.
    name: String,

    #[command(flatten)]
    file: UsersFile,
}

/// List the accounts: name, access and home, one per line, aligned.
///
/// Example:
///   miniftp user list --users users.toml
///   alice  read-write  alice
///   bob    read-only   shared/team
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
struct ListArgs {
    #[command(flatten)]
    file: UsersFile,
}

/// Change an account's password.
///
/// The new password is MINIFTP_PASSWORD when set, else asked twice on the
/// terminal without echo.
///
/// Example:
///   miniftp user passwd alice --users users.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
struct PasswdArgs {
    /// The account's login name.
    name: String,

    #[command(flatten)]
    file: UsersFile,
}

/// Runs a `user` subcommand.
pub fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        UserCommand::Add(args) => add(args)?,
        UserCommand::Remove(args) => remove(args)?,
        UserCommand::List(args) => list(args)?,
        UserCommand::Passwd(args) => passwd(args)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn add(args: AddArgs) -> anyhow::Result<()> {
    let path = &args.file.users;
    let mut accounts = Accounts::load_or_empty(path)?;
    // Everything that can be refused is, before the password is asked.
    accounts::validate_name(&args.name)?;
    if accounts.get(&args.name).is_some() {
        bail!(accounts::AccountsError::Exists(args.name));
    }
    let home = accounts::normalize_home(args.home.as_deref().unwrap_or(&args.name))?;
    let access = if args.read_only {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let password = new_password(&args.name)?;
    let account = accounts.add(&args.name, &password, Some(&home), access)?;
    let summary = format!(
        "added user {}: {}, home {}",
        account.name,
        access_name(account.access),
        account.home
    );
    accounts.save(path)?;
    println!("{summary}");
    Ok(())
}

fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let path = &args.file.users;
    let mut accounts = Accounts::load(path)?;
    let account = accounts.remove(&args.name)?;
    accounts.save(path)?;
    println!(
        "removed user {} (its home {} stays)",
        account.name, account.home
    );
    Ok(())
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let accounts = Accounts::load(&args.file.users)?;
    let width = accounts
        .iter()
        .map(|account| account.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for account in accounts.iter() {
        out.push_str(&format!(
            "{:width$}  {:10}  {}\n",
            account.name,
            access_name(account.access),
            account.home
        ));
    }
    print!("{out}");
    Ok(())
}

fn passwd(args: PasswdArgs) -> anyhow::Result<()> {
    let path = &args.file.users;
    let mut accounts = Accounts::load(path)?;
    if accounts.get(&args.name).is_none() {
        bail!(accounts::AccountsError::Unknown(args.name));
    }
    let password = new_password(&args.name)?;
    accounts.set_password(&args.name, &password)?;
    accounts.save(path)?;
    println!("changed the password of user {}", args.name);
    Ok(())
}

/// The new password: MINIFTP_PASSWORD, or asked twice on the terminal.
fn new_password(name: &str) -> anyhow::Result<String> {
    match std::env::var(PASSWORD_VARIABLE) {
        Ok(password) => return Ok(password),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("{PASSWORD_VARIABLE} is not valid UTF-8")
        }
        Err(std::env::VarError::NotPresent) => {}
    }
    // The prompt reads the controlling terminal; without one on standard
    // input it would hang or fail obscurely in a script.
    if !std::io::stdin().is_terminal() {
        bail!("no password: set {PASSWORD_VARIABLE}, or run this on a terminal to be asked");
    }
    let password = rpassword::prompt_password(format!("New password for {name}: "))
        .context("cannot read the password")?;
    let again =
        rpassword::prompt_password("Same password again: ").context("cannot read the password")?;
    if password != again {
        bail!("the two passwords differ; nothing changed");
    }
    Ok(password)
}

fn access_name(access: Access) -> &'static str {
    match access {
        Access::ReadOnly => "read-only",
        Access::ReadWrite => "read-write",
    }
}
