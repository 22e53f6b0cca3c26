//! Command syntax: verbs, arguments, quotes and escapes; invalid commands
//! get an error status, keep the stream in step, and the connection goes on.

use crate::support::{RawClient, TestServer};
use miniftp::protocol::text::excerpt;

#[tokio::test]
async fn invalid_commands_get_an_error_and_the_connection_goes_on() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let cases: &[(&[u8], &str)] = &[
        (b"CD /", "error: unknown command: CD"),
        (b"Mkdir x", "error: unknown command: Mkdir"),
        (b"ls", "error: unknown command: ls"),
        (b"quit", "error: unknown command: quit"),
        (b"", "error: empty command"),
        (b"   \t  ", "error: empty command"),
        (b"cd \xff\xfe", "error: command is not valid UTF-8"),
        (b"\xc3(", "error: command is not valid UTF-8"),
        (b"cd", "error: usage: cd PATH"),
        (b"cd a b", "error: usage: cd PATH"),
        (b"mkdir", "error: usage: mkdir PATH"),
        (b"mkdir a b", "error: usage: mkdir PATH"),
        (b"rm", "error: usage: rm PATH"),
        (b"rm a b", "error: usage: rm PATH"),
        (b"mv", "error: usage: mv SRC DEST"),
        (b"mv a", "error: usage: mv SRC DEST"),
        (b"mv a b c", "error: usage: mv SRC DEST"),
        (b"exit now", "error: usage: exit"),
        (b"exit \"\"", "error: usage: exit"),
        (b"cd \"unclosed", "error: unclosed quote"),
        (b"mkdir \"a\\\"", "error: unclosed quote"),
        (b"mkdir \"\"", "error: empty name"),
        (b"verb\x01\x7f", "error: unknown command: verb\\u{1}\\u{7f}"),
        (b"x\ny", "error: unknown command: x\\ny"),
    ];
    for (command, expected) in cases {
        client.send_bytes(command).await;
        assert_eq!(
            client.receive().await,
            *expected,
            "{}",
            String::from_utf8_lossy(command)
        );
    }
    assert_eq!(client.command("mkdir still_here").await, "/");
    assert!(server.path("still_here").is_dir());
}

#[tokio::test]
async fn white_space_separates_arguments() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    assert_eq!(client.command("  mkdir   spaced  ").await, "/");
    assert_eq!(client.command("\tcd\t\tspaced\t").await, "/spaced");
    assert_eq!(client.command("cd \t ..").await, "/");
    assert_eq!(server.visible_entries("/"), ["spaced"]);
}

#[tokio::test]
async fn quotes_and_escapes() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let cases = [
        (r#"mkdir "with space""#, "with space"),
        (r#"mkdir "say \"hi\"""#, r#"say "hi""#),
        (r#"mkdir "back\\slash""#, r"back\slash"),
        (r"mkdir plain\back", r"plain\back"),
        (r#"mkdir "odd\escape""#, r"odd\escape"),
        (r#"mkdir glued"to gether"end"#, "gluedto getherend"),
        ("mkdir ünï📷", "ünï📷"),
        (r#"mkdir "  padded  ""#, "  padded  "),
    ];
    for (command, name) in cases {
        assert_eq!(client.command(command).await, "/", "{command}");
        assert!(
            server.path(name).is_dir(),
            "{command} should create {name:?}"
        );
    }
    assert_eq!(server.visible_entries("/").len(), cases.len());
    assert_eq!(client.command(r#"cd "say \"hi\"""#).await, r#"/say "hi""#);
    assert_eq!(client.command(r#"cd "../with space""#).await, "/with space");
}

#[tokio::test]
async fn an_invalid_ul_still_consumes_its_payload() {
    let server = TestServer::start().await;
    server.write("keep.txt", b"keep");
    let mut client = RawClient::connect(server.address).await;
    let cases: &[(&[u8], &str)] = &[
        (b"ul", "error: usage: ul PATH"),
        (b"ul a b", "error: usage: ul PATH"),
        (b"ul \"unclosed", "error: unclosed quote"),
        (b"ul \xff", "error: command is not valid UTF-8"),
        (b"  ul\t", "error: usage: ul PATH"),
        (b"\"ul\" a b", "error: usage: ul PATH"),
    ];
    for (command, expected) in cases {
        client.send_bytes(command).await;
        // A payload that would be a destructive command if misread.
        client.send("rm keep.txt").await;
        assert_eq!(
            client.receive().await,
            *expected,
            "{}",
            String::from_utf8_lossy(command)
        );
    }
    assert_eq!(server.read("keep.txt"), b"keep");
    assert_eq!(server.pending_uploads(), 0);
    assert_eq!(client.info("keep.txt").await, ("4".into(), "/".into()));
}

#[tokio::test]
async fn an_invalid_dl_or_info_still_sends_an_empty_payload() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let cases: &[(&[u8], &str)] = &[
        (b"dl", "error: usage: dl PATH"),
        (b"dl a b", "error: usage: dl PATH"),
        (b"dl \"unclosed", "error: unclosed quote"),
        (b"dl \xff", "error: command is not valid UTF-8"),
        (b"info", "error: usage: info PATH"),
        (b"info a b", "error: usage: info PATH"),
        (b"info \"unclosed", "error: unclosed quote"),
        (b"info \x80", "error: command is not valid UTF-8"),
        (b"\"info\" a b", "error: usage: info PATH"),
    ];
    for (command, expected) in cases {
        client.send_bytes(command).await;
        let label = String::from_utf8_lossy(command);
        assert_eq!(client.receive().await, "", "payload of {label}");
        assert_eq!(client.receive().await, *expected, "status of {label}");
    }
    assert_eq!(client.command("mkdir in_step").await, "/");
}

#[tokio::test]
async fn unknown_verbs_that_look_like_ul_take_no_payload() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    for command in ["UL x", "ulx x", "Dl x", "INFO x"] {
        assert_eq!(
            client.command(command).await,
            format!(
                "error: unknown command: {}",
                command.split(' ').next().unwrap()
            ),
        );
    }
    assert_eq!(client.command("cd /").await, "/");
}

#[tokio::test]
async fn names_with_control_characters_are_refused_and_escaped() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    for name in [
        "a\0b",
        "line\nbreak",
        "cr\rx",
        "esc\u{1b}[31m",
        "del\u{7f}",
        "\"tab\there\"",
        "bell\u{7}",
    ] {
        let status = client.command(&format!("mkdir {name}")).await;
        assert!(
            status.starts_with("error: invalid name (control characters are not allowed): "),
            "mkdir {name:?}: {status:?}"
        );
        assert!(
            !status.chars().any(char::is_control),
            "the status must stay one printable line: {status:?}"
        );
        let status = client.upload(name, b"data").await;
        assert!(
            status.starts_with("error: invalid name"),
            "ul {name:?}: {status:?}"
        );
    }
    assert_eq!(
        client.command("mkdir new\nline").await,
        r"error: invalid name (control characters are not allowed): new\nline"
    );
    assert_eq!(server.visible_entries("/"), Vec::<String>::new());
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test]
async fn very_long_names_are_refused() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    let longest = "n".repeat(255);
    assert_eq!(client.command(&format!("mkdir {longest}")).await, "/");
    assert_eq!(
        client.upload(&format!("{longest}/{longest}"), b"x").await,
        "/"
    );
    assert_eq!(server.read(&format!("{longest}/{longest}")), b"x");
    let too_long = "n".repeat(256);
    assert_eq!(
        client.command(&format!("mkdir {too_long}")).await,
        format!("error: name too long: {too_long}")
    );
    assert_eq!(
        client.upload(&too_long, b"x").await,
        format!("error: name too long: {too_long}")
    );
    // A long path is echoed as its start and end.
    let too_deep = "d/".repeat(3000);
    assert_eq!(
        client.command(&format!("cd {too_deep}")).await,
        format!("error: name too long: {}", excerpt(&too_deep))
    );
    assert_eq!(server.visible_entries("/"), [longest]);
}

#[tokio::test]
async fn echoed_names_escape_everything_unprintable() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.address).await;
    for (name, shown) in [
        ("line\u{2028}sep", r"line\u{2028}sep"),
        ("para\u{2029}sep", r"para\u{2029}sep"),
        ("next\u{85}line", r"next\u{85}line"),
        ("rtl\u{202e}txt", r"rtl\u{202e}txt"),
        ("zero\u{200b}width", r"zero\u{200b}width"),
    ] {
        let status = client.command(&format!("cd {name}")).await;
        assert_eq!(status, format!("error: no such file or directory: {shown}"));
        assert!(!status.chars().any(|c| c.is_whitespace() && c != ' '));
    }
}
