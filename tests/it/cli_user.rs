//! `miniftp user` through the real binary: add, list, passwd, remove, the
//! refusals and their exit codes, and that a password shows nowhere but in
//! the hash. Each add or passwd costs an argon2 hash (slow in debug builds),
//! so the tests keep them few.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use miniftp::Access;
use miniftp::accounts::Accounts;
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "staple 2";

/// `miniftp user ARGS`, in `dir`, with no password or users file from the
/// environment of the test run.
fn user(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
    command
        .current_dir(dir)
        .env_remove("MINIFTP_PASSWORD")
        .env_remove("MINIFTP_USERS")
        .arg("user")
        .args(args)
        .timeout(Duration::from_secs(60));
    command
}

fn output(assert: &Assert) -> (String, String) {
    let output = assert.get_output();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Neither password in what the binary printed.
fn assert_no_password(assert: &Assert) {
    let (stdout, stderr) = output(assert);
    for password in [PASSWORD, NEW_PASSWORD] {
        assert!(!stdout.contains(password), "{stdout}");
        assert!(!stderr.contains(password), "{stderr}");
    }
    assert!(!stdout.contains("argon2") && !stderr.contains("argon2"));
}

#[test]
fn add_list_passwd_remove() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.toml");

    let assert = user(dir.path(), &["add", "alice", "--users", "users.toml"])
        .env("MINIFTP_PASSWORD", PASSWORD)
        .assert()
        .success();
    assert_no_password(&assert);
    assert_eq!(
        output(&assert),
        (
            "added user alice: read-write, home alice\n".to_owned(),
            String::new()
        )
    );
    let mode = std::fs::metadata(&users).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // The users file from the environment; the password too.
    let assert = user(
        dir.path(),
        &["add", "bob-2", "--home", "./shared/team/", "--read-only"],
    )
    .env("MINIFTP_USERS", &users)
    .env("MINIFTP_PASSWORD", NEW_PASSWORD)
    .assert()
    .success();
    assert_no_password(&assert);

    let assert = user(dir.path(), &["list", "--users", "users.toml"])
        .assert()
        .success();
    assert_eq!(
        output(&assert),
        (
            "alice  read-write  alice\nbob-2  read-only   shared/team\n".to_owned(),
            String::new()
        )
    );

    let assert = user(dir.path(), &["passwd", "alice", "--users", "users.toml"])
        .env("MINIFTP_PASSWORD", NEW_PASSWORD)
        .assert()
        .success();
    assert_no_password(&assert);
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.starts_with("# miniftp users file"), "{text}");
    assert!(
        !text.contains(PASSWORD) && !text.contains(NEW_PASSWORD),
        "{text}"
    );
    let accounts = Accounts::load(&users).unwrap();
    assert_eq!(accounts.verify("alice", PASSWORD), None);
    let alice = accounts.verify("alice", NEW_PASSWORD).unwrap();
    assert_eq!(
        (alice.home.as_str(), alice.access),
        ("alice", Access::ReadWrite)
    );
    let bob = accounts.get("bob-2").unwrap();
    assert_eq!(
        (bob.home.as_str(), bob.access),
        ("shared/team", Access::ReadOnly)
    );

    let assert = user(dir.path(), &["remove", "bob-2", "--users", "users.toml"])
        .assert()
        .success();
    assert_eq!(
        output(&assert).0,
        "removed user bob-2 (its home shared/team stays)\n"
    );
    let assert = user(dir.path(), &["list", "--users", "users.toml"])
        .assert()
        .success();
    assert_eq!(output(&assert).0, "alice  read-write  alice\n");
}

#[test]
fn refusals_exit_1_and_change_nothing() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.toml");
    user(dir.path(), &["add", "alice", "--users", "users.toml"])
        .env("MINIFTP_PASSWORD", PASSWORD)
        .assert()
        .success();
    let before = std::fs::read_to_string(&users).unwrap();

    let refusals: [(&[&str], &str); 9] = [
        (
            &["add", "alice"],
            "miniftp: user \"alice\" already exists\n",
        ),
        (
            &["add", ".x"],
            "miniftp: invalid user name \".x\": starts with '.' or '-'\n",
        ),
        (
            &["add", "bob", "--home", "../up"],
            "miniftp: invalid home \"../up\": '..' would leave the shared root\n",
        ),
        (
            &["add", "bob", "--home", ".miniftp/x"],
            "miniftp: invalid home \".miniftp/x\": '.miniftp' is the server's own directory\n",
        ),
        (&["remove", "bob"], "miniftp: no user \"bob\"\n"),
        (&["passwd", "bob"], "miniftp: no user \"bob\"\n"),
        (
            &["add", "bob"],
            "miniftp: no password: set MINIFTP_PASSWORD, or run this on a terminal to be asked\n",
        ),
        (
            &["passwd", "alice"],
            "miniftp: no password: set MINIFTP_PASSWORD, or run this on a terminal to be asked\n",
        ),
        (
            &["list", "--users", "missing.toml"],
            "miniftp: cannot read users file missing.toml: ",
        ),
    ];
    for (args, message) in refusals {
        let mut command = user(dir.path(), args);
        if !args.contains(&"--users") {
            command.args(["--users", "users.toml"]);
        }
        // Without MINIFTP_PASSWORD and without a terminal on standard input
        // for the two "no password" cases; with it for the others, so that
        // they are refused for their own reason.
        if !message.contains("no password") {
            command.env("MINIFTP_PASSWORD", PASSWORD);
        }
        let assert = command.assert().code(1);
        let (stdout, stderr) = output(&assert);
        assert_eq!(stdout, "", "{args:?}");
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
        assert_no_password(&assert);
    }

    let assert = user(dir.path(), &["add", "bob", "--users", "users.toml"])
        .env("MINIFTP_PASSWORD", "")
        .assert()
        .code(1);
    assert_eq!(output(&assert).1, "miniftp: invalid password: empty\n");

    assert_eq!(std::fs::read_to_string(&users).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_bad_users_file_is_refused_with_its_line_and_key() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        "[users.alice]\naccess = \"read-only\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let assert = user(dir.path(), &["list", "--users", "users.toml"])
        .assert()
        .code(1);
    let (stdout, stderr) = output(&assert);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(
            "miniftp: users file users.toml: line 3, column 12, `users.alice.password`: "
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn help_gives_examples() {
    let dir = TempDir::new().unwrap();
    let assert = user(dir.path(), &["--help"]).assert().success();
    let help = output(&assert).0;
    for expected in [
        "add",
        "remove",
        "list",
        "passwd",
        "MINIFTP_PASSWORD",
        "Examples:",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
    let assert = user(dir.path(), &["add", "--help"]).assert().success();
    let help = output(&assert).0;
    for expected in [
        "--users <FILE>",
        "MINIFTP_USERS",
        "--home <DIR>",
        "--read-only",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
}
