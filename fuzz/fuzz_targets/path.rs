//! Path resolution: any argument resolved against any current directory
//! either is refused or stays inside the root (no `.`, `..` or empty
//! component, no control character, no over-long name, not the private
//! directory, canonical); a link's target that climbs above the root is
//! refused, never clamped.

#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use miniftp::storage::path::{MAX_NAME_LEN, MAX_PATH_LEN, PRIVATE_DIR, names_directory};
use miniftp::storage::{StorageError, VirtualPath};

fn check(path: &VirtualPath) {
    let names: Vec<&str> = path.components().collect();
    for name in &names {
        assert!(
            !name.is_empty() && *name != "." && *name != "..",
            "{names:?}"
        );
        assert!(!name.contains('/'), "{names:?}");
        assert!(name.len() <= MAX_NAME_LEN, "{names:?}");
        assert!(!name.bytes().any(|b| b < 0x20 || b == 0x7f), "{names:?}");
    }
    assert_ne!(names.first().copied(), Some(PRIVATE_DIR));
    let relative = path.relative();
    assert!(relative.is_relative());
    assert!(
        path.is_root()
            || relative
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
        "{relative:?}"
    );
    let shown = path.to_string();
    assert!(shown.starts_with('/'));
    if shown.len() <= MAX_PATH_LEN {
        assert_eq!(
            VirtualPath::root().resolve(&shown).ok().as_ref(),
            Some(path)
        );
    }
}

fuzz_target!(|input: (&str, &str)| {
    let (current, argument) = input;
    let cwd = VirtualPath::root().resolve(current).unwrap_or_default();
    check(&cwd);
    let _ = names_directory(argument);
    match cwd.resolve(argument) {
        Ok(path) => {
            check(&path);
            if argument.starts_with('/') {
                assert_eq!(VirtualPath::root().resolve(argument).ok(), Some(path));
            }
        }
        Err(StorageError::EmptyName) => assert!(argument.is_empty()),
        Err(_) => assert!(!argument.is_empty()),
    }
    // As a link's target: `..` above the root is an escape.
    let mut depth = cwd.components().count() as isize;
    let mut climbs_out = false;
    for part in argument.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            name if name.len() > MAX_NAME_LEN || name.bytes().any(|b| b < 0x20 || b == 0x7f) => {
                break;
            }
            _ => depth += 1,
        }
        if depth < 0 {
            climbs_out = true;
            break;
        }
    }
    let within = cwd.resolve_within(argument);
    assert_eq!(
        climbs_out,
        matches!(within, Err(StorageError::OutsideRoot)),
        "{within:?}"
    );
    if let Ok(path) = within {
        check(&path);
        assert_eq!(path.components().count() as isize, depth);
    }
});
