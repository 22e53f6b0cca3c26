//! Every classic command, its success and its error cases, with the exact
//! status strings of PROTOCOL-classic.md.

use crate::support::{RawClient, TestServer};

#[tokio::test]
async fn the_readme_session_round_trips_a_file() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|");
    assert_eq!(client.command("mkdir test_dir").await, "/");
    assert_eq!(client.command("cd test_dir").await, "/test_dir");
    assert_eq!(
        client.upload("jellyfish.jpg", b"\x00jelly\xff").await,
        "/test_dir"
    );
    assert_eq!(
        client.info("jellyfish.jpg").await,
        ("7".into(), "/test_dir".into())
    );
    let (payload, status) = client.download("jellyfish.jpg").await;
    assert_eq!(
        (&payload[..], status.as_str()),
        (&b"\x00jelly\xff"[..], "/test_dir")
    );
    assert_eq!(client.command("cd ..").await, "/");
    assert_eq!(
        client.command("rm test_dir").await,
        "error: directory not empty: test_dir"
    );
    assert_eq!(client.command("rm test_dir/jellyfish.jpg").await, "/");
    assert_eq!(client.command("rm test_dir").await, "/");
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn cd_moves_and_reports_the_virtual_directory() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.path("photos/2024")).unwrap();
    server.write("a.txt", b"a");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("cd photos").await, "/photos");
    assert_eq!(client.command("cd 2024/").await, "/photos/2024");
    assert_eq!(client.command("cd .").await, "/photos/2024");
    assert_eq!(client.command("cd ..").await, "/photos");
    assert_eq!(client.command("cd /photos/2024").await, "/photos/2024");
    assert_eq!(client.command("cd ../..").await, "/");
    assert_eq!(client.command("cd ..").await, "/");
    assert_eq!(client.command("cd /").await, "/");
    assert_eq!(client.command("cd ./photos//2024/").await, "/photos/2024");
    assert_eq!(client.command("cd /").await, "/");
}

#[tokio::test]
async fn a_failed_cd_leaves_the_directory_unchanged() {
    let server = TestServer::start().await;
    std::fs::create_dir(server.path("photos")).unwrap();
    server.write("photos/a.txt", b"a");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("cd photos").await, "/photos");
    assert_eq!(
        client.command("cd missing").await,
        "error: no such file or directory: missing"
    );
    assert_eq!(
        client.command("cd a.txt").await,
        "error: not a directory: a.txt"
    );
    assert_eq!(
        client.command("cd a.txt/deeper").await,
        "error: not a directory: a.txt/deeper"
    );
    assert_eq!(
        client.command("cd /missing/x").await,
        "error: no such file or directory: /missing/x"
    );
    assert_eq!(client.command("cd \"\"").await, "error: empty name");
    // Still in /photos: a relative path resolves there.
    assert_eq!(client.info("a.txt").await, ("1".into(), "/photos".into()));
}

#[tokio::test]
async fn mkdir_creates_one_directory() {
    let server = TestServer::start().await;
    server.write("file.txt", b"x");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("mkdir new").await, "/");
    assert!(server.path("new").is_dir());
    assert_eq!(
        client.command("mkdir new").await,
        "error: already exists: new"
    );
    assert_eq!(
        client.command("mkdir file.txt").await,
        "error: already exists: file.txt"
    );
    assert_eq!(
        client.command("mkdir missing/child").await,
        "error: no such file or directory: missing/child"
    );
    assert!(!server.exists("missing"));
    assert_eq!(
        client.command("mkdir file.txt/child").await,
        "error: not a directory: file.txt/child"
    );
    assert_eq!(client.command("mkdir /").await, "error: already exists: /");
    assert_eq!(client.command("mkdir \"\"").await, "error: empty name");
    assert_eq!(client.command("mkdir new/child/").await, "/");
    assert!(server.path("new/child").is_dir());
    assert_eq!(client.command("cd new").await, "/new");
    assert_eq!(client.command("mkdir /top").await, "/new");
    assert_eq!(client.command("mkdir ../sibling").await, "/new");
    assert_eq!(
        server.visible_entries("/"),
        ["file.txt", "new", "sibling", "top"]
    );
}

#[tokio::test]
async fn rm_removes_files_and_empty_directories_only() {
    let server = TestServer::start().await;
    server.write("full/inside.txt", b"x");
    server.write("file.txt", b"x");
    std::fs::create_dir(server.path("empty")).unwrap();
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("rm file.txt").await, "/");
    assert!(!server.exists("file.txt"));
    assert_eq!(client.command("rm empty").await, "/");
    assert!(!server.exists("empty"));
    assert_eq!(
        client.command("rm full").await,
        "error: directory not empty: full"
    );
    assert_eq!(server.read("full/inside.txt"), b"x");
    assert_eq!(
        client.command("rm missing").await,
        "error: no such file or directory: missing"
    );
    assert_eq!(
        client.command("rm /").await,
        "error: cannot remove the root directory: /"
    );
    assert_eq!(
        client.command("rm .").await,
        "error: cannot remove '.' or '..': ."
    );
    assert_eq!(
        client.command("rm ..").await,
        "error: cannot remove '.' or '..': .."
    );
    assert_eq!(client.command("rm \"\"").await, "error: empty name");
    assert_eq!(client.command("cd full").await, "/full");
    assert_eq!(
        client.command("rm .").await,
        "error: cannot remove '.' or '..': ."
    );
    assert_eq!(
        client.command("rm ../full/..").await,
        "error: cannot remove '.' or '..': ../full/.."
    );
    assert_eq!(client.command("rm inside.txt").await, "/full");
    assert_eq!(client.command("rm /full").await, "/full");
    assert!(!server.exists("full"));
    assert!(
        server.path(".miniftp").is_dir(),
        "rm never reaches the private directory"
    );
}

#[tokio::test]
async fn ul_stores_and_replaces_files() {
    let server = TestServer::start().await;
    server.write("old.txt", b"old content");
    std::fs::create_dir(server.path("dir")).unwrap();
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.upload("new.bin", b"\x00\x01\x02").await, "/");
    assert_eq!(server.read("new.bin"), b"\x00\x01\x02");
    assert_eq!(client.upload("old.txt", b"new").await, "/");
    assert_eq!(server.read("old.txt"), b"new");
    assert_eq!(client.upload("dir/inner.txt", b"inner").await, "/");
    assert_eq!(server.read("dir/inner.txt"), b"inner");
    assert_eq!(client.upload("/dir/abs.txt", b"abs").await, "/");
    assert_eq!(server.read("dir/abs.txt"), b"abs");
    assert_eq!(client.command("cd dir").await, "/dir");
    assert_eq!(client.upload("../up.txt", b"up").await, "/dir");
    assert_eq!(server.read("up.txt"), b"up");
    assert_eq!(client.upload("with space.txt", b"s").await, "/dir");
    assert_eq!(server.read("dir/with space.txt"), b"s");
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn ul_errors_read_and_discard_the_payload() {
    let server = TestServer::start().await;
    std::fs::create_dir(server.path("dir")).unwrap();
    server.write("file.txt", b"keep");
    let mut client = RawClient::connect(server.address).await;
    let cases = [
        ("dir", "error: is a directory: dir"),
        ("dir/", "error: is a directory: dir/"),
        ("/", "error: is a directory: /"),
        ("missing/x", "error: no such file or directory: missing/x"),
        ("file.txt/x", "error: not a directory: file.txt/x"),
        ("new/", "error: not a directory: new/"),
        ("file.txt/", "error: not a directory: file.txt/"),
        ("", "error: empty name"),
    ];
    for (path, expected) in cases {
        // The payload holds what looks like commands: if the server did not
        // discard it as one message, it would run them.
        assert_eq!(
            client.upload(path, b"rm file.txt").await,
            expected,
            "ul {path:?}"
        );
    }
    assert_eq!(server.read("file.txt"), b"keep");
    assert_eq!(server.visible_entries("/"), ["dir", "file.txt"]);
    assert_eq!(server.visible_entries("/dir"), Vec::<String>::new());
    assert_eq!(server.pending_uploads(), 0);
    assert_eq!(client.command("cd dir").await, "/dir");
}

#[tokio::test]
async fn dl_sends_a_file_or_an_empty_payload_and_the_reason() {
    let server = TestServer::start().await;
    server.write("dir/a.bin", b"\xffbinary\x00");
    let mut client = RawClient::connect(server.address).await;
    let (payload, status) = client.download("dir/a.bin").await;
    assert_eq!(
        (&payload[..], status.as_str()),
        (&b"\xffbinary\x00"[..], "/")
    );
    let (payload, status) = client.download("/dir/a.bin").await;
    assert_eq!(
        (&payload[..], status.as_str()),
        (&b"\xffbinary\x00"[..], "/")
    );
    let cases = [
        ("missing", "error: no such file or directory: missing"),
        ("dir", "error: is a directory: dir"),
        ("/", "error: is a directory: /"),
        ("dir/a.bin/x", "error: not a directory: dir/a.bin/x"),
        ("", "error: empty name"),
    ];
    for (path, expected) in cases {
        let (payload, status) = client.download(path).await;
        assert_eq!(
            (&payload[..], status.as_str()),
            (&b""[..], expected),
            "dl {path:?}"
        );
    }
    assert_eq!(client.command("cd dir").await, "/dir");
    let (payload, status) = client.download("a.bin").await;
    assert_eq!(
        (&payload[..], status.as_str()),
        (&b"\xffbinary\x00"[..], "/dir")
    );
}

#[tokio::test]
async fn info_sends_the_size_in_plain_decimal() {
    let server = TestServer::start().await;
    server.write("empty", b"");
    server.write("dir/twelve.txt", b"twelve bytes");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.info("empty").await, ("0".into(), "/".into()));
    assert_eq!(
        client.info("dir/twelve.txt").await,
        ("12".into(), "/".into())
    );
    let cases = [
        ("missing", "error: no such file or directory: missing"),
        ("dir", "error: is a directory: dir"),
        ("/", "error: is a directory: /"),
        ("..", "error: is a directory: .."),
        ("", "error: empty name"),
    ];
    for (path, expected) in cases {
        assert_eq!(
            client.info(path).await,
            (String::new(), expected.to_owned()),
            "info {path:?}"
        );
    }
}

#[tokio::test]
async fn mv_renames_and_moves_into_directories() {
    let server = TestServer::start().await;
    server.write("a.txt", b"a");
    server.write("b.txt", b"b");
    server.write("tree/leaf.txt", b"leaf");
    std::fs::create_dir(server.path("dest")).unwrap();
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("mv a.txt renamed.txt").await, "/");
    assert_eq!(server.read("renamed.txt"), b"a");
    assert!(!server.exists("a.txt"));
    assert_eq!(client.command("mv renamed.txt dest").await, "/");
    assert_eq!(server.read("dest/renamed.txt"), b"a");
    assert_eq!(client.command("mv b.txt dest/").await, "/");
    assert_eq!(server.read("dest/b.txt"), b"b");
    assert_eq!(client.command("mv dest/b.txt dest/c.txt").await, "/");
    assert_eq!(server.read("dest/c.txt"), b"b");
    assert_eq!(client.command("mv tree dest").await, "/");
    assert_eq!(server.read("dest/tree/leaf.txt"), b"leaf");
    assert_eq!(client.command("cd dest").await, "/dest");
    assert_eq!(client.command("mv c.txt /").await, "/dest");
    assert_eq!(server.read("c.txt"), b"b");
    assert_eq!(
        client.command("mv tree ../moved tree").await,
        "error: usage: mv SRC DEST"
    );
    assert_eq!(client.command("mv tree \"../moved tree\"").await, "/dest");
    assert_eq!(server.read("moved tree/leaf.txt"), b"leaf");
    assert_eq!(server.visible_entries("/"), ["c.txt", "dest", "moved tree"]);
    assert_eq!(server.visible_entries("/dest"), ["renamed.txt"]);
}

#[tokio::test]
async fn mv_never_replaces_and_refuses_impossible_moves() {
    let server = TestServer::start().await;
    server.write("a.txt", b"a");
    server.write("b.txt", b"b");
    server.write("dir/a.txt", b"inner a");
    server.write("dir/sub/x", b"x");
    let mut client = RawClient::connect(server.address).await;
    let cases = [
        ("mv a.txt b.txt", "error: already exists: a.txt -> b.txt"),
        ("mv a.txt a.txt", "error: already exists: a.txt -> a.txt"),
        ("mv a.txt dir", "error: already exists: a.txt -> dir"),
        (
            "mv dir dir",
            "error: cannot move a directory into itself: dir -> dir",
        ),
        (
            "mv dir dir/sub",
            "error: cannot move a directory into itself: dir -> dir/sub",
        ),
        (
            "mv dir dir/new",
            "error: cannot move a directory into itself: dir -> dir/new",
        ),
        (
            "mv dir dir/sub/deeper",
            "error: cannot move a directory into itself: dir -> dir/sub/deeper",
        ),
        ("mv a.txt b.txt/", "error: not a directory: a.txt -> b.txt/"),
        ("mv a.txt new/", "error: not a directory: a.txt -> new/"),
        (
            "mv missing x",
            "error: no such file or directory: missing -> x",
        ),
        (
            "mv a.txt missing/x",
            "error: no such file or directory: a.txt -> missing/x",
        ),
        ("mv / x", "error: permission denied: /"),
        ("mv \"\" x", "error: empty name"),
        ("mv a.txt \"\"", "error: empty name"),
    ];
    for (command, expected) in cases {
        assert_eq!(client.command(command).await, expected, "{command}");
    }
    assert_eq!(server.read("a.txt"), b"a");
    assert_eq!(server.read("b.txt"), b"b");
    assert_eq!(server.read("dir/a.txt"), b"inner a");
    assert_eq!(server.read("dir/sub/x"), b"x");
    assert_eq!(server.visible_entries("/"), ["a.txt", "b.txt", "dir"]);
    assert_eq!(server.visible_entries("/dir"), ["a.txt", "sub"]);
}

#[tokio::test]
async fn mv_of_a_directory_onto_an_existing_file_is_an_error() {
    let server = TestServer::start().await;
    server.write("file", b"f");
    std::fs::create_dir(server.path("dir")).unwrap();
    std::fs::create_dir(server.path("other")).unwrap();
    server.write("other/dir/x", b"x");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(
        client.command("mv dir file").await,
        "error: already exists: dir -> file"
    );
    assert_eq!(
        client.command("mv dir other").await,
        "error: already exists: dir -> other"
    );
    assert_eq!(server.read("file"), b"f");
    assert!(server.path("dir").is_dir());
    assert_eq!(server.read("other/dir/x"), b"x");
}

#[tokio::test]
async fn exit_closes_without_a_status() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("exit now").await, "error: usage: exit");
    client.send("exit").await;
    assert_eq!(client.read_until_closed().await, Vec::<String>::new());
}

#[tokio::test]
async fn commands_after_the_current_directory_was_removed() {
    let server = TestServer::start().await;
    std::fs::create_dir_all(server.path("gone/deeper")).unwrap();
    server.write("top.txt", b"top");
    let mut client = RawClient::connect(server.address).await;
    let mut other = RawClient::connect(server.address).await;
    assert_eq!(client.command("cd gone").await, "/gone");
    assert_eq!(other.command("rm gone/deeper").await, "/");
    assert_eq!(other.command("rm gone").await, "/");
    let gone = "error: the current directory /gone no longer exists (cd / to recover)";
    assert_eq!(client.command("cd deeper").await, gone);
    assert_eq!(client.command("mkdir x").await, gone);
    assert_eq!(client.upload("x", b"data").await, gone);
    assert_eq!(client.info("x").await, (String::new(), gone.to_owned()));
    let (payload, status) = client.download("x").await;
    assert_eq!((&payload[..], status.as_str()), (&b""[..], gone));
    assert_eq!(client.command("rm x").await, gone);
    assert_eq!(client.command("mv x y").await, gone);
    // Absolute paths still work, and `cd /` recovers.
    assert_eq!(client.info("/top.txt").await, ("3".into(), "/gone".into()));
    assert_eq!(client.command("cd /").await, "/");
    assert_eq!(client.info("top.txt").await, ("3".into(), "/".into()));
    assert_eq!(server.visible_entries("/"), ["top.txt"]);
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn the_status_names_the_directory_without_a_trailing_slash() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("mkdir photos").await, "/");
    assert_eq!(client.command("mkdir photos/2024").await, "/");
    assert_eq!(client.command("cd photos/2024/").await, "/photos/2024");
    assert_eq!(client.command("cd ../").await, "/photos");
    assert_eq!(client.command("cd //").await, "/");
}

#[tokio::test]
async fn mv_into_itself_through_a_link_is_refused() {
    let server = TestServer::start().await;
    server.write("real/sub/x", b"x");
    server.symlink("real", "alias");
    let mut client = RawClient::connect(server.address).await;
    // Lexically elsewhere, physically below itself.
    assert_eq!(
        client.command("mv real alias/moved").await,
        "error: cannot move a directory into itself: real -> alias/moved"
    );
    assert_eq!(
        client.command("mv alias/sub real/sub/moved").await,
        "error: cannot move a directory into itself: alias/sub -> real/sub/moved"
    );
    assert_eq!(server.read("real/sub/x"), b"x");
}
