//! The welcome listing: order, dot-files, private entries, links.

use crate::support::{RawClient, TestServer};

#[tokio::test]
async fn directories_first_then_files_each_sorted_by_bytes() {
    let server = TestServer::start().await;
    for dir in ["b", "B", ".hidden_dir", "a dir", "ünï", "Z"] {
        std::fs::create_dir(server.path(dir)).unwrap();
    }
    for file in [
        "z.txt", "a.txt", ".dotfile", "A.txt", "_under", "10", "9", "é",
    ] {
        server.write(file, b"x");
    }
    let client = RawClient::connect(server.address).await;
    assert_eq!(
        client.welcome,
        "Current Directory: /:\n|\n-- .hidden_dir\n-- B\n-- Z\n-- a dir\n-- b\n-- ünï\
         \n-- .dotfile\n-- 10\n-- 9\n-- A.txt\n-- _under\n-- a.txt\n-- z.txt\n-- é"
    );
}

#[tokio::test]
async fn an_empty_group_prints_no_line() {
    let server = TestServer::start().await;
    server.write("only_a_file", b"x");
    let client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|\n-- only_a_file");

    let server = TestServer::start().await;
    std::fs::create_dir(server.path("only_a_dir")).unwrap();
    let client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|\n-- only_a_dir");
}

#[tokio::test]
async fn the_private_directory_is_never_listed() {
    let server = TestServer::start().await;
    assert!(server.path(".miniftp").is_dir());
    std::fs::create_dir(server.path("sub")).unwrap();
    // Only the root-level name is private: a nested one is an ordinary entry.
    std::fs::create_dir(server.path("sub/.miniftp")).unwrap();
    let client = RawClient::connect(server.address).await;
    assert_eq!(client.welcome, "Current Directory: /:\n|\n-- sub");
}

#[tokio::test]
async fn links_are_listed_as_their_target_inside_and_hidden_otherwise() {
    let outside = tempfile::TempDir::new().unwrap();
    std::fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
    let server = TestServer::start().await;
    std::fs::create_dir(server.path("real_dir")).unwrap();
    server.write("real_file", b"x");
    server.symlink("real_dir", "link_to_dir");
    server.symlink("real_file", "link_to_file");
    server.symlink("real_dir/../real_file", "winding_link");
    server.symlink(outside.path(), "outside_dir");
    server.symlink(outside.path().join("secret.txt"), "outside_file");
    server.symlink("../outside", "relative_escape");
    server.symlink("nowhere", "dangling");
    server.symlink("loop_b", "loop_a");
    server.symlink("loop_a", "loop_b");
    let client = RawClient::connect(server.address).await;
    assert_eq!(
        client.welcome,
        "Current Directory: /:\n|\n-- link_to_dir\n-- real_dir\
         \n-- link_to_file\n-- real_file\n-- winding_link"
    );
}

#[tokio::test]
async fn names_with_control_characters_cannot_forge_lines() {
    let server = TestServer::start().await;
    server.write("evil\n-- forged", b"x");
    server.write("carriage\rreturn", b"x");
    let client = RawClient::connect(server.address).await;
    assert_eq!(
        client.welcome,
        "Current Directory: /:\n|\n-- carriage\\rreturn\n-- evil\\n-- forged"
    );
}

#[tokio::test]
async fn a_welcome_longer_than_one_read_arrives_whole() {
    let server = TestServer::start().await;
    let mut expected = String::from("Current Directory: /:\n|");
    let mut names: Vec<String> = (0..300).map(|i| format!("file_{i:04}.bin")).collect();
    names.sort();
    for name in &names {
        server.write(name, b"x");
        expected.push_str("\n-- ");
        expected.push_str(name);
    }
    let client = RawClient::connect(server.address).await;
    assert!(expected.len() > 4096);
    assert_eq!(client.welcome, expected);
}
