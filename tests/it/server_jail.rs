//! The jail: nothing outside the shared root is read, written, listed or
//! revealed, whatever the path or link.

use std::path::Path;

use tempfile::TempDir;

use crate::support::{RawClient, TestServer};

/// A directory beside the root with a secret file, and a server whose root
/// has links pointing into it.
struct Escape {
    server: TestServer,
    outside: TempDir,
}

impl Escape {
    async fn start() -> Escape {
        let outside = TempDir::new().unwrap();
        std::fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
        let server = TestServer::start().await;
        server.symlink(outside.path(), "out_dir");
        server.symlink(outside.path().join("secret.txt"), "out_file");
        Escape { server, outside }
    }

    fn outside_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.outside.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn secret(&self) -> Vec<u8> {
        std::fs::read(self.outside.path().join("secret.txt")).unwrap()
    }
}

/// Whether any text the server sent could reveal a real filesystem path.
fn reveals(text: &str, real: &Path) -> bool {
    text.contains(&*real.to_string_lossy()) || text.contains("/tmp")
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_stay_inside() {
    let outside = TempDir::new().unwrap();
    let server = TestServer::start().await;
    // A real file one level above the root, named as `..` would reach it.
    let above = server
        .root
        .path()
        .parent()
        .unwrap()
        .join("miniftp_above.txt");
    std::fs::write(&above, b"above").unwrap();
    std::fs::write(outside.path().join("x"), b"x").unwrap();
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("cd ..").await, "/");
    assert_eq!(client.command("cd ../../..").await, "/");
    assert_eq!(client.command("cd /..").await, "/");
    assert_eq!(
        client.info("../miniftp_above.txt").await,
        (
            String::new(),
            "error: no such file or directory: ../miniftp_above.txt".into()
        )
    );
    let (payload, status) = client.download("/../../etc/passwd").await;
    assert_eq!(
        (&payload[..], status.as_str()),
        (
            &b""[..],
            "error: no such file or directory: /../../etc/passwd"
        )
    );
    let real = outside.path().join("x").to_string_lossy().into_owned();
    let (payload, status) = client.download(&real).await;
    assert_eq!(
        (&payload[..], status),
        (
            &b""[..],
            format!("error: no such file or directory: {real}")
        )
    );
    // Writes land inside: `ul ../x` at the root writes `/x`.
    assert_eq!(client.upload("../miniftp_above.txt", b"inside").await, "/");
    assert_eq!(client.upload("../../../../x", b"x inside").await, "/");
    assert_eq!(server.read("miniftp_above.txt"), b"inside");
    assert_eq!(server.read("x"), b"x inside");
    assert_eq!(std::fs::read(&above).unwrap(), b"above");
    assert_eq!(client.command("mkdir ../made").await, "/");
    assert!(server.path("made").is_dir());
    assert_eq!(client.command("cd made").await, "/made");
    assert_eq!(client.command("mv ../../x ../../../y").await, "/made");
    assert_eq!(server.read("y"), b"x inside");
    std::fs::remove_file(&above).unwrap();
}

#[tokio::test]
async fn links_that_lead_outside_are_refused() {
    let escape = Escape::start().await;
    let server = &escape.server;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|");
    let refused = |path: &str| format!("error: path leads outside the shared root: {path}");
    assert_eq!(client.command("cd out_dir").await, refused("out_dir"));
    assert_eq!(client.command("cd out_dir/..").await, "/");
    for path in ["out_file", "out_dir/secret.txt", "out_dir"] {
        let (payload, status) = client.download(path).await;
        assert_eq!(
            (&payload[..], status),
            (&b""[..], refused(path)),
            "dl {path}"
        );
        assert_eq!(
            client.info(path).await,
            (String::new(), refused(path)),
            "info {path}"
        );
    }
    assert_eq!(
        client.upload("out_dir/new.txt", b"x").await,
        refused("out_dir/new.txt")
    );
    assert_eq!(
        client.upload("out_dir/secret.txt", b"x").await,
        refused("out_dir/secret.txt")
    );
    assert_eq!(
        client.command("mkdir out_dir/new").await,
        refused("out_dir/new")
    );
    assert_eq!(
        client.command("rm out_dir/secret.txt").await,
        refused("out_dir/secret.txt")
    );
    assert_eq!(
        client.command("mv out_dir/secret.txt stolen").await,
        refused("out_dir/secret.txt -> stolen")
    );
    server.write("mine.txt", b"mine");
    let status = client.command("mv mine.txt out_dir").await;
    assert!(status.starts_with("error: "), "{status}");
    let status = client.command("mv mine.txt out_dir/").await;
    assert!(status.starts_with("error: "), "{status}");
    assert_eq!(server.read("mine.txt"), b"mine");
    assert_eq!(escape.outside_entries(), ["secret.txt"]);
    assert_eq!(escape.secret(), b"secret");
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn ul_onto_a_link_never_writes_through_it() {
    let escape = Escape::start().await;
    let server = &escape.server;
    server.write("target.txt", b"target");
    server.symlink("target.txt", "in_link");
    let mut client = RawClient::connect(server.address).await;
    // The link itself is replaced by the uploaded file; the target is untouched.
    assert_eq!(client.upload("out_file", b"overwritten?").await, "/");
    assert_eq!(escape.secret(), b"secret");
    assert!(!server.path("out_file").is_symlink());
    assert_eq!(server.read("out_file"), b"overwritten?");
    assert_eq!(client.upload("in_link", b"new").await, "/");
    assert_eq!(server.read("target.txt"), b"target");
    assert_eq!(server.read("in_link"), b"new");
    assert_eq!(escape.outside_entries(), ["secret.txt"]);
}

#[tokio::test]
async fn rm_and_mv_act_on_the_link_itself() {
    let escape = Escape::start().await;
    let server = &escape.server;
    server.write("target.txt", b"target");
    server.write("dir/inner.txt", b"inner");
    server.symlink("target.txt", "file_link");
    server.symlink("dir", "dir_link");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("rm out_file").await, "/");
    assert!(!server.exists("out_file"));
    assert_eq!(escape.secret(), b"secret");
    assert_eq!(client.command("mv out_dir moved_out").await, "/");
    assert!(server.path("moved_out").is_symlink());
    assert_eq!(client.command("rm moved_out").await, "/");
    assert_eq!(escape.outside_entries(), ["secret.txt"]);
    assert_eq!(client.command("mv file_link renamed_link").await, "/");
    assert!(server.path("renamed_link").is_symlink());
    assert_eq!(server.read("target.txt"), b"target");
    assert_eq!(client.command("rm renamed_link").await, "/");
    assert_eq!(server.read("target.txt"), b"target");
    // A link to a non-empty directory is removed as a link.
    assert_eq!(client.command("rm dir_link").await, "/");
    assert_eq!(server.read("dir/inner.txt"), b"inner");
    assert_eq!(server.visible_entries("/"), ["dir", "target.txt"]);
}

#[tokio::test]
async fn links_that_stay_inside_work() {
    let server = TestServer::start().await;
    server.write("real/photo.jpg", b"jpeg");
    server.symlink("real", "alias");
    server.symlink("real/photo.jpg", "photo_link");
    server.write("nested/deeper/x", b"x");
    server.symlink("../../real", "nested/deeper/up");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.info("photo_link").await, ("4".into(), "/".into()));
    let (payload, status) = client.download("alias/photo.jpg").await;
    assert_eq!((&payload[..], status.as_str()), (&b"jpeg"[..], "/"));
    assert_eq!(client.command("cd alias").await, "/alias");
    assert_eq!(client.upload("new.txt", b"new").await, "/alias");
    assert_eq!(server.read("real/new.txt"), b"new");
    assert_eq!(
        client.command("cd /nested/deeper/up").await,
        "/nested/deeper/up"
    );
    assert_eq!(
        client.info("photo.jpg").await,
        ("4".into(), "/nested/deeper/up".into())
    );
    // `..` is lexical: from /nested/deeper/up it is /nested/deeper.
    assert_eq!(client.command("cd ..").await, "/nested/deeper");
}

#[tokio::test]
async fn dangling_and_looping_links_are_errors() {
    let server = TestServer::start().await;
    server.symlink("nowhere", "dangling");
    server.symlink("loop_b", "loop_a");
    server.symlink("loop_a", "loop_b");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(
        client.info("dangling").await,
        (
            String::new(),
            "error: no such file or directory: dangling".into()
        )
    );
    let (_, status) = client.info("loop_a").await;
    assert!(status.starts_with("error: "), "{status}");
    let (payload, status) = client.download("loop_a").await;
    assert!(
        payload.is_empty() && status.starts_with("error: "),
        "{status}"
    );
    assert_eq!(client.command("rm dangling").await, "/");
    assert!(!server.exists("dangling"));
}

#[tokio::test]
async fn the_private_directory_is_unreachable() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let reserved = |path: &str| format!("error: name is reserved by the server: {path}");
    assert_eq!(client.command("cd .miniftp").await, reserved(".miniftp"));
    assert_eq!(
        client.command("cd /.miniftp/uploads").await,
        reserved("/.miniftp/uploads")
    );
    assert_eq!(client.command("mkdir .miniftp").await, reserved(".miniftp"));
    assert_eq!(client.command("rm .miniftp").await, reserved(".miniftp"));
    assert_eq!(
        client.command("rm .miniftp/uploads").await,
        reserved(".miniftp/uploads")
    );
    assert_eq!(
        client.upload(".miniftp/uploads/x.part", b"x").await,
        reserved(".miniftp/uploads/x.part")
    );
    assert_eq!(
        client.upload("../.miniftp", b"x").await,
        reserved("../.miniftp")
    );
    assert_eq!(
        client.info(".miniftp/uploads").await,
        (String::new(), reserved(".miniftp/uploads"))
    );
    server.write("f", b"f");
    assert_eq!(client.command("mv f .miniftp").await, reserved(".miniftp"));
    assert_eq!(client.command("mv .miniftp x").await, reserved(".miniftp"));
    assert!(server.path(".miniftp/uploads").is_dir());
    assert_eq!(server.pending_uploads(), 0);
    assert_eq!(server.visible_entries("/"), ["f"]);
}

#[tokio::test]
async fn errors_never_show_real_paths() {
    let escape = Escape::start().await;
    let server = &escape.server;
    let mut client = RawClient::connect(server.address).await;
    let mut replies = vec![client.welcome.clone()];
    for command in [
        "cd out_dir",
        "cd missing",
        "rm out_dir/secret.txt",
        "mkdir out_dir/x",
        "mv out_file/x y",
    ] {
        replies.push(client.command(command).await);
    }
    for path in ["out_file", "out_dir/secret.txt", "../../etc/passwd"] {
        let (payload, status) = client.download(path).await;
        replies.push(String::from_utf8_lossy(&payload).into_owned());
        replies.push(status);
        let (payload, status) = client.info(path).await;
        replies.push(payload);
        replies.push(status);
    }
    for reply in &replies {
        assert!(!reveals(reply, server.root.path()), "{reply:?}");
        assert!(!reveals(reply, escape.outside.path()), "{reply:?}");
        assert!(
            !reply.contains("secret\u{0}") && reply != "secret",
            "{reply:?}"
        );
    }
}

#[tokio::test]
async fn links_into_the_private_directory_are_hidden_and_refused() {
    let server = TestServer::start().await;
    server.symlink(".miniftp", "priv");
    server.symlink(".miniftp/uploads", "up");
    server.symlink(".", "dot");
    std::fs::create_dir(server.path("sub")).unwrap();
    server.symlink("../.miniftp", "sub/back");
    server.symlink("../priv", "sub/chain");
    // A pending upload, as if one were in progress.
    std::fs::write(server.path(".miniftp/uploads/pending.part"), b"partial").unwrap();
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|\n-- dot\n-- sub");
    let reserved = |path: &str| format!("error: name is reserved by the server: {path}");
    for path in [
        "priv",
        "up",
        "dot/.miniftp",
        "sub/back",
        "sub/chain/uploads",
        "dot/dot/up",
    ] {
        assert_eq!(
            client.command(&format!("cd {path}")).await,
            reserved(path),
            "cd {path}"
        );
        assert_eq!(
            client.info(&format!("{path}/pending.part")).await,
            (String::new(), reserved(&format!("{path}/pending.part")))
        );
        let (payload, status) = client
            .download(&format!("{path}/uploads/pending.part"))
            .await;
        assert_eq!(
            (&payload[..], status),
            (&b""[..], reserved(&format!("{path}/uploads/pending.part")))
        );
        assert_eq!(
            client.upload(&format!("{path}/new"), b"x").await,
            reserved(&format!("{path}/new"))
        );
        assert_eq!(
            client.command(&format!("mkdir {path}/new")).await,
            reserved(&format!("{path}/new"))
        );
        assert_eq!(
            client.command(&format!("rm {path}/uploads")).await,
            reserved(&format!("{path}/uploads"))
        );
    }
    server.write("f", b"f");
    assert_eq!(client.command("mv f up").await, reserved("f -> up"));
    assert_eq!(
        client.command("mv f sub/back/").await,
        reserved("f -> sub/back/")
    );
    assert_eq!(client.command("cd sub").await, "/sub");
    let mut listing = RawClient::connect(server.address).await;
    assert_eq!(listing.command("cd sub").await, "/sub");
    // The links themselves can be removed: that acts on the link, not on what it names.
    assert_eq!(client.command("rm back").await, "/sub");
    assert_eq!(client.command("rm /priv").await, "/sub");
    assert!(server.path(".miniftp/uploads").is_dir());
    assert_eq!(server.read(".miniftp/uploads/pending.part"), b"partial");
    assert_eq!(server.read("f"), b"f");
}

#[tokio::test]
async fn absolute_links_that_stay_inside_work_like_relative_ones() {
    let server = TestServer::start().await;
    server.write("real/photo.jpg", b"jpeg");
    // As a script or a person would make them: absolute, into the root.
    let real_root = std::fs::canonicalize(server.root.path()).unwrap();
    server.symlink(real_root.join("real"), "alias");
    server.symlink(real_root.join("real/photo.jpg"), "photo_link");
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(
        client.welcome,
        "Current Directory: /:\n|\n-- alias\n-- real\n-- photo_link"
    );
    assert_eq!(client.info("photo_link").await, ("4".into(), "/".into()));
    let (payload, status) = client.download("alias/photo.jpg").await;
    assert_eq!((&payload[..], status.as_str()), (&b"jpeg"[..], "/"));
    assert_eq!(client.command("cd alias").await, "/alias");
    assert_eq!(client.upload("new.txt", b"new").await, "/alias");
    assert_eq!(server.read("real/new.txt"), b"new");
    assert_eq!(client.command("mkdir sub").await, "/alias");
    assert!(server.path("real/sub").is_dir());
    // rm acts on the link itself.
    assert_eq!(client.command("rm /photo_link").await, "/alias");
    assert!(!server.exists("photo_link"));
    assert_eq!(server.read("real/photo.jpg"), b"jpeg");
}

#[tokio::test]
async fn relative_links_that_climb_out_are_refused() {
    let escape = Escape::start().await;
    let server = &escape.server;
    let outside_name = escape.outside.path().file_name().unwrap().to_owned();
    let climbing = Path::new("..").join(&outside_name).join("secret.txt");
    server.symlink(&climbing, "climb");
    let mut client = RawClient::connect(server.address).await;
    let refused = "error: path leads outside the shared root: climb";
    assert_eq!(
        client.info("climb").await,
        (String::new(), refused.to_owned())
    );
    let (payload, status) = client.download("climb").await;
    assert_eq!((&payload[..], status.as_str()), (&b""[..], refused));
    assert_eq!(escape.secret(), b"secret");
}
