//! The interactive shell through a pseudo-terminal: the prompt, tab
//! completion, history (also across sessions), a transfer and its summary,
//! Ctrl-C at the prompt and during a transfer, Ctrl-D.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{ControlCode, Eof, Expect, Session};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::support::{TestServer, pseudo_random_bytes};

const UP: &str = "\x1b[A";

/// The shell on `address`, in `local`, keeping its history under `data`.
fn spawn_shell(address: SocketAddr, local: &Path, data: &Path) -> OsSession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
    command
        .args(["connect", &address.to_string()])
        .current_dir(local)
        .env("XDG_DATA_HOME", data)
        .env("TERM", "xterm");
    let mut shell = Session::spawn(command).expect("spawn the shell");
    shell.set_expect_timeout(Some(Duration::from_secs(30)));
    shell
}

pub fn expect(shell: &mut OsSession, text: &str) {
    if let Err(error) = shell.expect(text) {
        panic!("expected {text:?}: {error}");
    }
}

/// Ctrl-D at the prompt ends the shell with exit code 0. Call it just
/// after the prompt was seen: keys typed while a command runs reach a
/// terminal in cooked mode, where Ctrl-D and Ctrl-C are not characters.
pub fn leave(mut shell: OsSession) {
    shell.send(ControlCode::EndOfTransmission).unwrap();
    expect_eof(&mut shell);
    let status = shell.get_process().wait().unwrap();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

pub fn expect_eof(shell: &mut OsSession) {
    if let Err(error) = shell.expect(Eof) {
        panic!("expected the end: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_with_completion_history_and_a_transfer() {
    let server = TestServer::start().await;
    server.write("remote.txt", b"hello");
    let local = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    std::fs::write(
        local.path().join("my photo.jpg"),
        pseudo_random_bytes(100_000, 11),
    )
    .unwrap();
    let address = server.address;
    let (local_path, data_path) = (local.path().to_owned(), data.path().to_owned());

    tokio::task::spawn_blocking(move || {
        let mut shell = spawn_shell(address, &local_path, &data_path);
        expect(&mut shell, "Current directory: /");
        expect(&mut shell, "remote.txt");
        expect(&mut shell, "miniftp:/> ");
        shell.send("mkdir d\r").unwrap();
        expect(&mut shell, "miniftp:/> ");
        shell.send("cd d\r").unwrap();
        expect(&mut shell, "miniftp:/d> ");

        // Tab completes a local path, escaping its space.
        shell.send("ul my").unwrap();
        shell.send("\t").unwrap();
        expect(&mut shell, r"my\ photo.jpg");
        shell.send("\r").unwrap();
        expect(
            &mut shell,
            "uploaded my photo.jpg -> my photo.jpg: 97.7 KiB (100000 bytes) in ",
        );
        expect(&mut shell, "miniftp:/d> ");

        // A server refusal is shown and the shell goes on.
        shell.send("cd nowhere\r").unwrap();
        expect(&mut shell, "error: no such file or directory: nowhere");
        expect(&mut shell, "miniftp:/d> ");

        // The up arrow recalls the upload; running it again replaces the file.
        shell.send(UP).unwrap();
        shell.send(UP).unwrap();
        expect(&mut shell, r"ul my\ photo.jpg");
        shell.send("\r").unwrap();
        expect(&mut shell, "uploaded my photo.jpg -> my photo.jpg: ");

        // Ctrl-C at the prompt clears the line.
        shell.send("garbage").unwrap();
        expect(&mut shell, "garbage");
        shell.send(ControlCode::EndOfText).unwrap();
        expect(&mut shell, "miniftp:/d> ");
        shell.send("info 'my photo.jpg'\r").unwrap();
        expect(&mut shell, "my photo.jpg: 100000 bytes");
        expect(&mut shell, "miniftp:/d> ");
        leave(shell);

        // The history outlives the session.
        let mut shell = spawn_shell(address, &local_path, &data_path);
        expect(&mut shell, "miniftp:/> ");
        shell.send(UP).unwrap();
        expect(&mut shell, "info 'my photo.jpg'");
        shell.send("\x15cd d\r").unwrap();
        expect(&mut shell, "miniftp:/d> ");
        leave(shell);
    })
    .await
    .unwrap();

    assert_eq!(server.visible_entries("d"), ["my photo.jpg"]);
    let history = std::fs::read_to_string(data.path().join("miniftp/history")).unwrap();
    assert!(history.contains("cd nowhere"), "{history}");
    assert!(!history.contains("garbage"), "{history}");
}

/// A TCP proxy to `upstream` that, on its first connection only, stops
/// forwarding one direction after `limit` bytes, until released.
struct StallingProxy {
    address: SocketAddr,
    stalled: Arc<Notify>,
    release: Arc<Notify>,
}

#[derive(Clone, Copy)]
enum Stall {
    ToClient,
    ToServer,
}

impl StallingProxy {
    async fn start(upstream: SocketAddr, stall: Stall, limit: u64) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stalled = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let (stalled_task, release_task) = (stalled.clone(), release.clone());
        tokio::spawn(async move {
            let first = AtomicBool::new(true);
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream).await.unwrap();
                let limit = first.swap(false, Ordering::SeqCst).then_some(limit);
                let (stalled, release) = (stalled_task.clone(), release_task.clone());
                tokio::spawn(async move {
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let (to_client_limit, to_server_limit) = match stall {
                        Stall::ToClient => (limit, None),
                        Stall::ToServer => (None, limit),
                    };
                    let to_client = forward(server_read, client_write, to_client_limit, &stalled);
                    let to_server = forward(client_read, server_write, to_server_limit, &stalled);
                    tokio::select! {
                        _ = async { tokio::join!(to_client, to_server) } => {}
                        _ = release.notified() => {}
                    }
                });
            }
        });
        StallingProxy {
            address,
            stalled,
            release,
        }
    }
}

/// Copies until EOF, or stops for good after `limit` bytes.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    limit: Option<u64>,
    stalled: &Notify,
) {
    let mut copied = 0u64;
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        if limit.is_some_and(|limit| copied >= limit) {
            stalled.notify_one();
            std::future::pending::<()>().await;
        }
        let want = match limit {
            Some(limit) => buffer.len().min((limit - copied) as usize),
            None => buffer.len(),
        };
        match from.read(&mut buffer[..want]).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => {
                if to.write_all(&buffer[..read]).await.is_err() {
                    return;
                }
                copied += read as u64;
            }
        }
    }
}

/// Names in a local directory, sorted.
fn local_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_a_download_and_the_same_dl_resumes_it() {
    let server = TestServer::start().await;
    let contents = pseudo_random_bytes(8 << 20, 12);
    server.write("sub/big.bin", &contents);
    let proxy = StallingProxy::start(server.address, Stall::ToClient, 1 << 20).await;
    let local = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    let (address, local_path, data_path) = (
        proxy.address,
        local.path().to_owned(),
        data.path().to_owned(),
    );

    let mut shell = tokio::task::spawn_blocking(move || {
        let mut shell = spawn_shell(address, &local_path, &data_path);
        shell.send("cd sub\r").unwrap();
        expect(&mut shell, "miniftp:/sub> ");
        shell.send("dl big.bin\r").unwrap();
        shell
    })
    .await
    .unwrap();
    proxy.stalled.notified().await;
    assert_eq!(local_entries(local.path()), [".big.bin.miniftp-part"]);

    let local_path = local.path().to_owned();
    tokio::task::spawn_blocking(move || {
        shell.send(ControlCode::EndOfText).unwrap();
        // What was kept, and how to go on, are said.
        expect(&mut shell, "cancelled; the transfer can be resumed: ");
        expect(
            &mut shell,
            " of big.bin is kept in .big.bin.miniftp-part, and the same dl goes on from there",
        );
        expect(&mut shell, "reconnected; remote directory /sub");
        expect(&mut shell, "miniftp:/sub> ");
        // What arrived is kept for the next attempt, under a hidden name.
        assert_eq!(local_entries(&local_path), [".big.bin.miniftp-part"]);
        let kept = std::fs::metadata(local_path.join(".big.bin.miniftp-part")).unwrap();
        assert!(kept.len() > 0 && kept.len() < 8 << 20, "{}", kept.len());
        shell.send("dl big.bin\r").unwrap();
        // The summary counts what travelled and what was kept.
        expect(
            &mut shell,
            "downloaded big.bin -> big.bin: 8.0 MiB (8388608 bytes) in ",
        );
        let summary = output_until(&mut shell, " kept from before");
        assert!(summary.contains(" received at "), "{summary}");
        expect(&mut shell, "miniftp:/sub> ");
        leave(shell);
    })
    .await
    .unwrap();
    proxy.release.notify_one();
    assert_eq!(local_entries(local.path()), ["big.bin"]);
    assert!(std::fs::read(local.path().join("big.bin")).unwrap() == contents);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_an_upload_and_nothing_appears_on_the_server() {
    let server = TestServer::start().await;
    server.write("sub/old.bin", b"old");
    let proxy = StallingProxy::start(server.address, Stall::ToServer, 1 << 20).await;
    let local = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    std::fs::write(
        local.path().join("big.bin"),
        pseudo_random_bytes(64 << 20, 13),
    )
    .unwrap();
    let (address, local_path, data_path) = (
        proxy.address,
        local.path().to_owned(),
        data.path().to_owned(),
    );

    let mut shell = tokio::task::spawn_blocking(move || {
        let mut shell = spawn_shell(address, &local_path, &data_path);
        shell.send("cd sub\r").unwrap();
        expect(&mut shell, "miniftp:/sub> ");
        shell.send("ul big.bin old.bin\r").unwrap();
        shell
    })
    .await
    .unwrap();
    proxy.stalled.notified().await;

    shell = tokio::task::spawn_blocking(move || {
        shell.send(ControlCode::EndOfText).unwrap();
        expect(
            &mut shell,
            "cancelled; the transfer can be resumed: the server keeps what it received of \
             old.bin (up to ",
        );
        expect(
            &mut shell,
            " of 64.0 MiB) for a day, and the same ul goes on from there",
        );
        expect(&mut shell, "reconnected; remote directory /sub");
        expect(&mut shell, "miniftp:/sub> ");
        shell
    })
    .await
    .unwrap();
    // The server sees the cancelled upload end mid-payload.
    proxy.release.notify_one();
    tokio::task::spawn_blocking(move || {
        shell.send("info old.bin\r").unwrap();
        expect(&mut shell, "old.bin: 3 bytes");
        expect(&mut shell, "miniftp:/sub> ");
        leave(shell);
    })
    .await
    .unwrap();
    assert_eq!(server.read("sub/old.bin"), b"old");
    assert_eq!(server.visible_entries("sub"), ["old.bin"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_names_complete_and_rm_r_asks_first() {
    let server = TestServer::start().await;
    server.write("photos 2024/jan/a.jpg", b"a");
    server.write("notes.txt", b"n");
    let local = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    let (address, local_path, data_path) = (
        server.address,
        local.path().to_owned(),
        data.path().to_owned(),
    );
    let root = server.path("");

    tokio::task::spawn_blocking(move || {
        let mut shell = spawn_shell(address, &local_path, &data_path);
        expect(&mut shell, "(extended protocol)");
        expect(&mut shell, "miniftp:/> ");
        // Tab lists the remote directory and escapes the space.
        shell.send("cd pho\t").unwrap();
        expect(&mut shell, r"photos\ 2024/");
        shell.send("\r").unwrap();
        expect(&mut shell, "miniftp:/photos 2024> ");
        shell.send("stat ja\t").unwrap();
        expect(&mut shell, "jan/");
        shell.send("\r").unwrap();
        expect(&mut shell, "jan/: directory, modified ");
        expect(&mut shell, "miniftp:/photos 2024> ");

        // rm -r asks; anything but yes keeps the tree.
        shell.send("rm -r jan\r").unwrap();
        expect(
            &mut shell,
            "remove the directory jan and everything in it? [y/N] ",
        );
        shell.send("n\r").unwrap();
        expect(&mut shell, "error: jan: not removed");
        expect(&mut shell, "miniftp:/photos 2024> ");
        assert!(root.join("photos 2024/jan/a.jpg").exists());
        shell.send("rm -r jan\r").unwrap();
        expect(&mut shell, "[y/N] ");
        shell.send("y\r").unwrap();
        expect(&mut shell, "miniftp:/photos 2024> ");
        shell.send("ls -l /\r").unwrap();
        expect(&mut shell, "photos 2024/");
        expect(&mut shell, "notes.txt");
        expect(&mut shell, "miniftp:/photos 2024> ");
        leave(shell);
        assert!(!root.join("photos 2024/jan").exists());
    })
    .await
    .unwrap();
}

/// What the shell prints up to `text` (which is consumed too).
pub fn output_until(shell: &mut OsSession, text: &str) -> String {
    match shell.expect(text) {
        Ok(found) => String::from_utf8_lossy(found.before()).into_owned(),
        Err(error) => panic!("expected {text:?}: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_welcome_names_a_few_entries_and_counts_the_rest() {
    let server = TestServer::start().await;
    for index in 0..3000 {
        server.write(&format!("f{index:04}.txt"), b"");
    }
    let local = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    let (address, local_path, data_path) = (
        server.address,
        local.path().to_owned(),
        data.path().to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let mut shell = spawn_shell(address, &local_path, &data_path);
        let welcome = output_until(&mut shell, "... and 2,990 more; ls to see all");
        assert!(welcome.contains("  f0009.txt"), "{welcome}");
        assert!(!welcome.contains("f0010.txt"), "{welcome}");
        expect(&mut shell, "miniftp:/> ");
        leave(shell);
    })
    .await
    .unwrap();
}

/// A shell on a fresh server (holding what `setup` writes) in a fresh
/// local directory; `body` drives it, off the runtime.
async fn with_shell(
    setup: impl FnOnce(&TestServer),
    body: impl FnOnce(&mut OsSession, &Path, &Path) + Send + 'static,
) -> TestServer {
    let server = TestServer::start().await;
    setup(&server);
    let local = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    let (address, root) = (server.address, server.path(""));
    tokio::task::spawn_blocking(move || {
        let mut shell = spawn_shell(address, local.path(), data.path());
        expect(&mut shell, "miniftp:/> ");
        body(&mut shell, local.path(), &root);
        leave(shell);
    })
    .await
    .unwrap();
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn rm_r_of_the_root_or_a_dot_is_refused_before_any_question() {
    let server = with_shell(
        |server| server.write("sub/a.txt", b"a"),
        |shell, _, _| {
            for (command, refusal) in [
                ("rm -r /", "cannot remove the root directory: /"),
                ("rm -r sub/..", "cannot remove '.' or '..': sub/.."),
                ("rm -r .", "cannot remove '.' or '..': ."),
            ] {
                shell.send(format!("{command}\r")).unwrap();
                let said = output_until(shell, &format!("error: {refusal}"));
                assert!(!said.contains("[y/N]"), "{command}: {said}");
                expect(shell, "miniftp:/> ");
            }
        },
    )
    .await;
    assert!(server.exists("sub/a.txt"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_at_a_question_cancels_it() {
    let server = with_shell(
        |server| server.write("d/a.txt", b"a"),
        |shell, _, _| {
            shell.send("rm -r d\r").unwrap();
            expect(shell, "remove the directory d and everything in it? [y/N] ");
            shell.send(ControlCode::EndOfText).unwrap();
            expect(shell, "error: d: not removed");
            expect(shell, "miniftp:/> ");
            // The next line is a command again, not the answer.
            shell.send("pwd\r").unwrap();
            expect(shell, "/\r\n");
            expect(shell, "miniftp:/> ");
        },
    )
    .await;
    assert!(server.exists("d/a.txt"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dl_asks_before_replacing_a_local_file_once_for_a_tree() {
    with_shell(
        |server| {
            server.write("readme.txt", b"from the server");
            server.write("d/a.txt", b"new a");
            server.write("d/b.txt", b"new b");
            server.write("d/sub/c.txt", b"new c");
        },
        |shell, local, _| {
            std::fs::write(local.join("readme.txt"), b"notes").unwrap();
            shell.send("dl /readme.txt\r").unwrap();
            expect(shell, "overwrite readme.txt? [y/N] ");
            shell.send("n\r").unwrap();
            expect(shell, "error: not downloaded");
            expect(shell, "miniftp:/> ");
            assert_eq!(std::fs::read(local.join("readme.txt")).unwrap(), b"notes");
            shell.send("dl /readme.txt\r").unwrap();
            expect(shell, "overwrite readme.txt? [y/N] ");
            shell.send("y\r").unwrap();
            expect(shell, "downloaded /readme.txt -> readme.txt: ");
            expect(shell, "miniftp:/> ");
            assert_eq!(
                std::fs::read(local.join("readme.txt")).unwrap(),
                b"from the server"
            );

            // A tree: one question, with the count of files it would replace.
            std::fs::create_dir_all(local.join("d/sub")).unwrap();
            std::fs::write(local.join("d/a.txt"), b"old a").unwrap();
            std::fs::write(local.join("d/sub/c.txt"), b"old c").unwrap();
            shell.send("dl -r d\r").unwrap();
            expect(shell, "overwrite 2 existing files (d/a.txt, ...)? [y/N] ");
            shell.send("\r").unwrap();
            expect(shell, "error: not downloaded");
            expect(shell, "miniftp:/> ");
            assert!(!local.join("d/b.txt").exists(), "nothing was downloaded");
            shell.send("dl -rf d\r").unwrap();
            expect(shell, "downloaded d -> d: 3 files");
            expect(shell, "miniftp:/> ");
            assert_eq!(std::fs::read(local.join("d/sub/c.txt")).unwrap(), b"new c");

            shell.send("help dl\r").unwrap();
            expect(
                shell,
                "-f, --force  replace existing local files without asking",
            );
            expect(shell, "miniftp:/> ");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patterns_work_wherever_a_remote_path_is_taken() {
    let server = with_shell(
        |server| {
            server.write("a.txt", b"a");
            server.write("b.txt", b"bb");
            server.write("c.log", b"ccc");
            server.write("x.jpg", b"x");
            server.write("y.jpg", b"y");
            server.write("photos/old.jpg", b"o");
        },
        |shell, _, _| {
            shell.send("ls *.txt\r").unwrap();
            let listed = output_until(shell, "miniftp:/> ");
            assert!(listed.contains("a.txt\r\nb.txt\r\n"), "{listed}");
            assert!(!listed.contains("c.log"), "{listed}");

            shell.send("stat *.log\r").unwrap();
            expect(shell, "c.log: file, 3 bytes, modified ");
            expect(shell, "miniftp:/> ");
            shell.send("info *.txt\r").unwrap();
            expect(shell, "a.txt: 1 bytes\r\nb.txt: 2 bytes");
            expect(shell, "miniftp:/> ");

            shell.send("mv *.jpg photos/\r").unwrap();
            expect(shell, "miniftp:/> ");
            shell.send("ls photos/*.jpg\r").unwrap();
            expect(shell, "photos/old.jpg\r\nphotos/x.jpg\r\nphotos/y.jpg");
            expect(shell, "miniftp:/> ");

            // Removing several asks first, once.
            shell.send("rm *.txt\r").unwrap();
            expect(shell, "remove 2 files matching *.txt (a.txt, ...)? [y/N] ");
            shell.send("y\r").unwrap();
            expect(shell, "miniftp:/> ");

            shell.send("cd ph*\r").unwrap();
            expect(shell, "miniftp:/photos> ");
            shell.send("cd /\r").unwrap();
            expect(shell, "miniftp:/> ");
        },
    )
    .await;
    assert_eq!(server.visible_entries("/"), ["c.log", "photos"]);
    assert_eq!(
        server.visible_entries("photos"),
        ["old.jpg", "x.jpg", "y.jpg"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tab_completes_the_common_prefix_then_lists_the_candidates() {
    with_shell(
        |server| {
            server.write("notes-2023.txt", b"a");
            server.write("notes-2024.txt", b"b");
            server.write("other.txt", b"c");
        },
        |shell, _, _| {
            shell.send("info no\t").unwrap();
            expect(shell, "info notes-202");
            // A second Tab lists the candidates, then the line comes back.
            shell.send("\t").unwrap();
            let listed = output_until(shell, "miniftp:/> info notes-202");
            assert!(
                listed.contains("notes-2023.txt  notes-2024.txt"),
                "{listed}"
            );
            assert!(!listed.contains("other.txt"), "{listed}");
            shell.send("4\t\r").unwrap();
            expect(shell, "notes-2024.txt: 1 bytes");
            expect(shell, "miniftp:/> ");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_candidates_are_counted_before_they_are_listed() {
    with_shell(
        |server| {
            for index in 0..300 {
                server.write(&format!("f{index:03}.txt"), b"");
            }
        },
        |shell, _, _| {
            shell.send("info f\t").unwrap();
            expect(shell, "info f");
            shell.send("\t").unwrap();
            expect(shell, "Display all 300 possibilities? (y or n)");
            shell.send("n").unwrap();
            expect(shell, "miniftp:/> info f");
            shell.send("\x15").unwrap();
        },
    )
    .await;
}

/// A TCP proxy to `upstream` whose first connection is dropped (both
/// sides) when `cut` is notified, as a server does on an idle timeout or a
/// restart; `done` is notified once it is. Later connections pass.
struct CuttingProxy {
    address: SocketAddr,
    cut: Arc<Notify>,
    done: Arc<Notify>,
}

impl CuttingProxy {
    async fn start(upstream: SocketAddr) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (cut, done) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (cut_task, done_task) = (cut.clone(), done.clone());
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let cuttable = std::mem::take(&mut first);
                let (cut, done) = (cut_task.clone(), done_task.clone());
                tokio::spawn(async move {
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    match cuttable {
                        true => {
                            tokio::select! {
                                _ = copy => {}
                                () = cut.notified() => {}
                            }
                            drop((client, server));
                            done.notify_one();
                        }
                        false => drop(copy.await),
                    }
                });
            }
        });
        CuttingProxy { address, cut, done }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_after_the_server_closed_an_idle_connection_runs() {
    let server = TestServer::start().await;
    for classic in [false, true] {
        let proxy = CuttingProxy::start(server.address).await;
        let local = TempDir::new().unwrap();
        let data = TempDir::new().unwrap();
        let (address, local_path, data_path) = (
            proxy.address,
            local.path().to_owned(),
            data.path().to_owned(),
        );
        let mut shell = tokio::task::spawn_blocking(move || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_miniftp"));
            command
                .args(["connect", &address.to_string()])
                .args(classic.then_some("--classic"))
                .current_dir(local_path)
                .env("XDG_DATA_HOME", data_path)
                .env("TERM", "xterm");
            let mut shell = Session::spawn(command).expect("spawn the shell");
            shell.set_expect_timeout(Some(Duration::from_secs(30)));
            expect(&mut shell, "miniftp:/> ");
            shell.send("mkdir sub\r").unwrap();
            expect(&mut shell, "miniftp:/> ");
            shell.send("cd sub\r").unwrap();
            expect(&mut shell, "miniftp:/sub> ");
            shell
        })
        .await
        .unwrap();
        proxy.cut.notify_one();
        proxy.done.notified().await;
        tokio::task::spawn_blocking(move || {
            shell.send("mkdir made\r").unwrap();
            expect(
                &mut shell,
                "the server had closed the connection (idle for too long?); reconnected, \
                 remote directory /sub",
            );
            expect(&mut shell, "miniftp:/sub> ");
            leave(shell);
        })
        .await
        .unwrap();
        assert!(server.exists("sub/made"), "classic: {classic}");
        std::fs::remove_dir_all(server.path("sub")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_shutting_down_mid_transfer_leaves_the_shell_ready_to_resume() {
    // A slow server (its rate limit keeps the download going) that stops
    // at once, then comes back at the same address. It runs on a runtime of
    // its own: a stopped server abandons its sessions, which then end with
    // the process, as that runtime's end stands for here.
    let process = tokio::runtime::Runtime::new().unwrap();
    let server = process
        .spawn(TestServer::start_with(miniftp::ServerConfig {
            rate_limit: Some(256 << 10),
            shutdown_grace: Duration::ZERO,
            ..miniftp::ServerConfig::default()
        }))
        .await
        .unwrap();
    let contents = pseudo_random_bytes(8 << 20, 21);
    server.write("sub/big.bin", &contents);
    let address = server.address;
    let local = TempDir::new().unwrap();
    let data = TempDir::new().unwrap();
    let (local_path, data_path) = (local.path().to_owned(), data.path().to_owned());
    let mut shell = tokio::task::spawn_blocking(move || {
        let mut shell = spawn_shell(address, &local_path, &data_path);
        shell.send("cd sub\r").unwrap();
        expect(&mut shell, "miniftp:/sub> ");
        shell.send("dl big.bin\r").unwrap();
        shell
    })
    .await
    .unwrap();
    let part = local.path().join(".big.bin.miniftp-part");
    crate::support::wait_until("part of the download arrived", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() > 0)
    })
    .await;
    let root = server.stop().await;
    process.shutdown_background();

    shell = tokio::task::spawn_blocking(move || {
        expect(
            &mut shell,
            "error: the server closed the connection (shutting down?); the transfer can be \
             resumed: ",
        );
        expect(&mut shell, "cannot reconnect: ");
        expect(&mut shell, "not connected: type reconnect");
        expect(&mut shell, "miniftp:(not connected)> ");
        // A remote command tries once more, and says so once.
        shell.send("ls\r").unwrap();
        let said = output_until(&mut shell, "miniftp:(not connected)> ");
        assert_eq!(said.matches("reconnecting...").count(), 1, "{said}");
        assert!(
            said.contains("error: not connected, and cannot reconnect: "),
            "{said}"
        );
        shell
    })
    .await
    .unwrap();
    let server = TestServer::serve_at(root, miniftp::ServerConfig::default(), address).await;
    tokio::task::spawn_blocking(move || {
        shell.send("dl big.bin\r").unwrap();
        expect(&mut shell, "reconnected; remote directory /sub");
        expect(
            &mut shell,
            "downloaded big.bin -> big.bin: 8.0 MiB (8388608 bytes) in ",
        );
        expect(&mut shell, " kept from before");
        expect(&mut shell, "miniftp:/sub> ");
        leave(shell);
    })
    .await
    .unwrap();
    assert!(std::fs::read(local.path().join("big.bin")).unwrap() == contents);
    drop(server);
}
