//! `miniftp connect -c` and `-b` through the real binary: outputs and exit
//! codes for success, a failing command, `--keep-going`, a refused or
//! silent server; and the generated help, completions and man page.

use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::client_original::OriginalServer;
use crate::support::{TestServer, pseudo_random_bytes, sha256, sha256_file};

/// The binary, in `dir`, with a bound on how long it may run.
pub fn miniftp(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
    command
        .current_dir(dir)
        .env("XDG_DATA_HOME", dir)
        .timeout(Duration::from_secs(60));
    command
}

/// Runs the binary off the runtime, so that the in-process server serves it.
pub async fn run(mut command: Command) -> Assert {
    tokio::task::spawn_blocking(move || command.assert())
        .await
        .unwrap()
}

pub fn stdout(assert: &Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

pub fn stderr(assert: &Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_runs_every_command_and_prints_plain_lines() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let data = pseudo_random_bytes(200_000, 9);
    std::fs::write(local.path().join("a.jpg"), &data).unwrap();

    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "-c",
        "mkdir x; cd x; ul a.jpg; info a.jpg; dl a.jpg 'b c.jpg'; mv a.jpg 'new name.jpg'",
    ]);
    let assert = run(command).await.success();
    let out = stdout(&assert);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("uploaded a.jpg -> a.jpg: 195.3 KiB (200000 bytes) in "),
        "{out}"
    );
    assert_eq!(lines[1], "a.jpg: 200000 bytes");
    assert!(
        lines[2].starts_with("downloaded a.jpg -> b c.jpg: 195.3 KiB (200000 bytes) in "),
        "{out}"
    );
    assert_eq!(stderr(&assert), "");
    assert_eq!(sha256(&server.read("x/new name.jpg")), sha256(&data));
    assert_eq!(sha256_file(&local.path().join("b c.jpg")), sha256(&data));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_command_stops_the_script_with_exit_code_1() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "-c",
        "mkdir x; cd nowhere; mkdir y",
    ]);
    let assert = run(command).await.code(1);
    assert_eq!(
        stderr(&assert),
        "miniftp: cd nowhere: no such file or directory: nowhere\n"
    );
    assert_eq!(server.visible_entries("/"), ["x"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_going_runs_the_rest_and_still_exits_1() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "--keep-going",
        "-c",
        "mkdir x; cd nowhere; ul missing.jpg; frobnicate; mkdir y",
    ]);
    let assert = run(command).await.code(1);
    let err = stderr(&assert);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert_eq!(
        lines[0],
        "miniftp: cd nowhere: no such file or directory: nowhere"
    );
    assert!(
        lines[1] == "miniftp: ul missing.jpg: missing.jpg: no such file or directory",
        "{err}"
    );
    assert!(
        lines[2].starts_with("miniftp: frobnicate: unknown command: frobnicate"),
        "{err}"
    );
    assert_eq!(server.visible_entries("/"), ["x", "y"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_file_and_standard_input() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let script = local.path().join("commands.txt");
    std::fs::write(
        &script,
        "# make a tree\nmkdir 'a dir'\ncd \"a dir\"\n\nmkdir sub # trailing comment\n",
    )
    .unwrap();
    let mut command = miniftp(local.path());
    command.args(["connect", &server.address.to_string(), "-b"]);
    command.arg(&script);
    run(command).await.success().stdout("").stderr("");
    assert_eq!(server.visible_entries("a dir"), ["sub"]);

    let mut command = miniftp(local.path());
    command
        .args(["connect", &server.address.to_string(), "-b", "-"])
        .write_stdin("cd 'a dir'\nrm sub\ninfo sub\n");
    let assert = run(command).await.code(1);
    assert!(
        stderr(&assert).starts_with("miniftp: info sub: no such file or directory: sub"),
        "{}",
        stderr(&assert)
    );
    assert_eq!(server.visible_entries("a dir"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_piped_in_without_b_are_a_batch() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command
        .args(["connect", &server.address.to_string()])
        .write_stdin("mkdir x\ncd nowhere\nmkdir y\n");
    // No banner, no prompt; the first failure stops it with exit code 1.
    run(command)
        .await
        .code(1)
        .stdout("")
        .stderr("miniftp: cd nowhere: no such file or directory: nowhere\n");
    assert_eq!(server.visible_entries("/"), ["x"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_syntax_error_names_the_line() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args(["connect", &server.address.to_string(), "-c", "cd 'x"]);
    run(command)
        .await
        .code(1)
        .stderr("miniftp: cd 'x: unclosed quote\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_exits_2() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args(["connect", &address, "-c", "mkdir x"]);
    let assert = run(command).await.code(2).stdout("");
    let err = stderr(&assert);
    assert!(
        err.starts_with(&format!("miniftp: cannot connect to {address}: ")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_original_server_times_out_with_exit_2() {
    let server = OriginalServer::start().await;
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "--timeout",
        "0.3",
        "-c",
        "mkdir made; cd missing; mkdir never",
    ]);
    let assert = run(command).await.code(2);
    assert_eq!(
        stderr(&assert),
        "miniftp: cd missing: the server sent nothing for 0.3 s; the connection was dropped\n"
    );
    assert!(server.root.path().join("made").is_dir());
    assert!(!server.root.path().join("never").exists());
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let dir = TempDir::new().unwrap();
    for subcommand in ["serve", "connect", "completions", "man"] {
        let assert = miniftp(dir.path())
            .args([subcommand, "--help"])
            .assert()
            .success();
        assert!(stdout(&assert).contains("Examples:"), "{subcommand}");
    }
    let assert = miniftp(dir.path()).arg("--help").assert().success();
    assert!(stdout(&assert).contains("connect"));
}

#[test]
fn completions_and_the_man_page_are_generated() {
    let dir = TempDir::new().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let assert = miniftp(dir.path())
            .args(["completions", shell])
            .assert()
            .success();
        let script = stdout(&assert);
        assert!(
            script.contains("connect") && script.contains("keep-going"),
            "{shell}"
        );
    }
    let assert = miniftp(dir.path()).arg("man").assert().success();
    let page = stdout(&assert);
    assert!(
        page.starts_with(".ie") || page.contains(".TH miniftp"),
        "{page}"
    );
    assert!(page.contains("connect"));
    miniftp(dir.path())
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_replaces_a_local_file_only_with_force() {
    let server = TestServer::start().await;
    server.write("readme.txt", b"from the server");
    let local = TempDir::new().unwrap();
    std::fs::write(local.path().join("readme.txt"), b"notes").unwrap();
    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "-c",
        "dl readme.txt",
    ]);
    run(command).await.code(1).stdout("").stderr(
        "miniftp: dl readme.txt: readme.txt exists; dl -f (or --force) replaces it \
         (a script does not ask)\n",
    );
    assert_eq!(
        std::fs::read(local.path().join("readme.txt")).unwrap(),
        b"notes"
    );
    for force in ["-f", "--force"] {
        let mut command = miniftp(local.path());
        let script = format!("dl {force} readme.txt");
        command.args(["connect", &server.address.to_string(), "-c", &script]);
        run(command).await.success().stderr("");
    }
    assert_eq!(
        std::fs::read(local.path().join("readme.txt")).unwrap(),
        b"from the server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rm_of_a_pattern_picking_several_needs_f_in_a_script() {
    let server = TestServer::start().await;
    server.write("a.txt", b"a");
    server.write("b.txt", b"b");
    server.write("keep.log", b"k");
    let local = TempDir::new().unwrap();
    let mut command = miniftp(local.path());
    command.args(["connect", &server.address.to_string(), "-c", "rm *.txt"]);
    let assert = run(command).await.code(1);
    assert!(
        stderr(&assert).starts_with("miniftp: rm *.txt: *.txt matches 2 files: rm asks"),
        "{}",
        stderr(&assert)
    );
    assert_eq!(server.visible_entries("/"), ["a.txt", "b.txt", "keep.log"]);
    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "-c",
        "rm -f *.txt; rm -f *.none; info *.log",
    ]);
    run(command)
        .await
        .success()
        .stdout("keep.log: 1 bytes\n")
        .stderr("");
    assert_eq!(server.visible_entries("/"), ["keep.log"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ul_r_refused_at_its_root_stops_at_once_with_one_line() {
    let server = TestServer::start_with(miniftp::ServerConfig {
        read_only: true,
        ..miniftp::ServerConfig::default()
    })
    .await;
    let local = TempDir::new().unwrap();
    for index in 0..200 {
        let path = local
            .path()
            .join(format!("tree/sub{}/f{index}.txt", index % 4));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }
    let mut command = miniftp(local.path());
    command.args(["connect", &server.address.to_string(), "-c", "ul -r tree"]);
    let assert = run(command).await.code(1).stdout("");
    let err = stderr(&assert);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("miniftp: ul -r tree: permission denied (read-only access)"),
        "{err}"
    );

    // A file where the tree would go: the same.
    let server = TestServer::start().await;
    server.write("tree", b"a file");
    let mut command = miniftp(local.path());
    command.args(["connect", &server.address.to_string(), "-c", "ul -r tree"]);
    let assert = run(command).await.code(1).stdout("");
    let err = stderr(&assert);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(server.read("tree"), b"a file");
}

#[tokio::test(flavor = "multi_thread")]
async fn names_with_control_characters_never_reach_the_terminal_raw() {
    let server = TestServer::start().await;
    let local = TempDir::new().unwrap();
    let tree = local.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("ok.txt"), b"ok").unwrap();
    std::fs::write(tree.join("new\nline\x1b[31m.txt"), b"odd").unwrap();
    // Whether the server takes the name or not, it is shown escaped: no
    // line starts with what follows the newline, no escape sequence.
    let mut command = miniftp(local.path());
    command.args([
        "connect",
        &server.address.to_string(),
        "--keep-going",
        "-c",
        "ul -r tree; lls tree",
    ]);
    let assert = run(command).await;
    let output = format!("{}{}", stdout(&assert), stderr(&assert));
    assert!(
        !output.lines().any(|line| line.starts_with("line")),
        "{output}"
    );
    assert!(!output.contains('\x1b'), "{output}");
    assert!(
        output.contains("new\\nline\\u{1b}[31m.txt"),
        "lls shows it escaped: {output}"
    );
    // The extended protocol carries the name: the whole tree went.
    assert!(assert.get_output().status.success(), "{output}");
    assert_eq!(
        server.read("tree/new\nline\x1b[31m.txt"),
        b"odd",
        "{output}"
    );
}

#[test]
fn the_man_page_stands_alone_with_its_examples_as_typed() {
    let dir = TempDir::new().unwrap();
    let assert = miniftp(dir.path()).arg("man").assert().success();
    let page = stdout(&assert);
    // No pointers to pages that are not installed: each subcommand is a
    // section of this one.
    assert!(!page.contains("(1)"), "{page}");
    for section in ["MINIFTP SERVE", "MINIFTP CONNECT", "MINIFTP USER ADD"] {
        assert!(page.contains(&format!(".SH \"{section}\"")), "{section}");
    }
    // Examples are not filled into paragraphs.
    let examples = page
        .find("Examples:\n.nf\n  miniftp connect ")
        .expect("no-fill examples");
    assert!(page[examples..].contains("\n.fi\n"));
}
