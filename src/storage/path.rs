//! Virtual paths: where a client may point, resolved lexically and clamped
//! at the root (as in a chroot, `/..` is `/`). Pure; the filesystem half of
//! the jail is the directory capability in [`super::Storage`].

use std::fmt;
use std::path::PathBuf;

use super::StorageError;

/// The root-level directory that holds the server's private state
/// (temporary uploads). No client path may name it.
pub const PRIVATE_DIR: &str = ".miniftp";

/// The longest name of one component, in bytes (the usual `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// The longest virtual path, in bytes (the usual `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// Which names a path may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Names {
    /// No control characters (below 0x20, or 0x7F): what a protocol of
    /// text lines can carry without a name forging a line (the classic one).
    #[default]
    Printable,
    /// Any name the filesystem allows (not NUL, not `/`): what a
    /// binary-safe protocol carries (the extended one).
    Any,
}

/// A normalized path inside the shared root: no `.`, `..` or empty
/// components, every name valid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VirtualPath {
    components: Vec<String>,
}

impl VirtualPath {
    /// The shared root, `/`.
    pub fn root() -> VirtualPath {
        VirtualPath::default()
    }

    /// Resolves a client's argument against this directory: absolute when
    /// it starts with `/`, `..` never climbing above the root.
    /// Its names must be [`Names::Printable`].
    pub fn resolve(&self, argument: &str) -> Result<VirtualPath, StorageError> {
        self.resolve_names(argument, Names::Printable)
    }

    /// [`VirtualPath::resolve`], with names as `names` allows.
    pub fn resolve_names(&self, argument: &str, names: Names) -> Result<VirtualPath, StorageError> {
        if argument.is_empty() {
            return Err(StorageError::EmptyName);
        }
        if argument.len() > MAX_PATH_LEN {
            return Err(StorageError::NameTooLong);
        }
        let start = if argument.starts_with('/') {
            Vec::new()
        } else {
            self.components.clone()
        };
        walk(start, argument, AboveRoot::Stay, names)
    }

    /// Resolves a link's target against this directory as the kernel
    /// would inside the root: unlike [`VirtualPath::resolve`], a `..` above
    /// the root is an escape, not the root.
    /// A link's target may hold any name the filesystem allows.
    pub fn resolve_within(&self, target: &str) -> Result<VirtualPath, StorageError> {
        walk(
            self.components.clone(),
            target,
            AboveRoot::Escape,
            Names::Any,
        )
    }

    /// Whether this is the root itself.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The last component; `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// The containing directory (the root is its own parent).
    pub fn parent(&self) -> VirtualPath {
        let mut components = self.components.clone();
        components.pop();
        VirtualPath { components }
    }

    /// This directory with `name` appended; `name` must already be valid.
    pub fn child(&self, name: &str) -> VirtualPath {
        let mut components = self.components.clone();
        components.push(name.to_owned());
        VirtualPath { components }
    }

    /// Whether `self` is `ancestor` or lies below it.
    pub fn starts_with(&self, ancestor: &VirtualPath) -> bool {
        self.components.starts_with(&ancestor.components)
    }

    /// The names from the root down, one per component.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.components.iter().map(String::as_str)
    }

    /// The path relative to the root directory capability (`.` for the root).
    pub fn relative(&self) -> PathBuf {
        if self.is_root() {
            PathBuf::from(".")
        } else {
            PathBuf::from(self.components.join("/"))
        }
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str("/");
        }
        for component in &self.components {
            write!(f, "/{component}")?;
        }
        Ok(())
    }
}

/// What `..` at the root means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AboveRoot {
    /// The root, as in a chroot (a client's paths).
    Stay,
    /// An escape (a link's target, which the kernel would follow outside).
    Escape,
}

/// Applies the parts of `path` to `components`, validating each name.
fn walk(
    mut components: Vec<String>,
    path: &str,
    above_root: AboveRoot,
    names: Names,
) -> Result<VirtualPath, StorageError> {
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if components.pop().is_none() && above_root == AboveRoot::Escape {
                    return Err(StorageError::OutsideRoot);
                }
            }
            name => {
                validate_name(name, names)?;
                components.push(name.to_owned());
            }
        }
    }
    if components.first().is_some_and(|first| first == PRIVATE_DIR) {
        return Err(StorageError::Reserved);
    }
    Ok(VirtualPath { components })
}

/// Whether an argument names a directory explicitly (a trailing `/`).
pub fn names_directory(argument: &str) -> bool {
    argument.len() > 1 && argument.ends_with('/')
}

fn validate_name(name: &str, names: Names) -> Result<(), StorageError> {
    if name.len() > MAX_NAME_LEN {
        return Err(StorageError::NameTooLong);
    }
    // No filesystem name holds a NUL.
    if name.bytes().any(|byte| byte == 0) {
        return Err(StorageError::InvalidName);
    }
    // Exactly the spec's set: below 0x20, and 0x7F (DEL).
    if names == Names::Printable && name.bytes().any(|byte| byte < 0x20 || byte == 0x7f) {
        return Err(StorageError::InvalidName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(path: &str) -> VirtualPath {
        VirtualPath::root().resolve(path).unwrap()
    }

    #[test]
    fn control_characters_are_names_only_where_allowed() {
        let root = VirtualPath::root();
        for name in ["new\nline", "tab\there", "bell\u{7}", "esc\u{1b}[31m"] {
            assert_eq!(
                root.resolve(name),
                Err(StorageError::InvalidName),
                "{name:?}"
            );
            let any = root.resolve_names(name, Names::Any).unwrap();
            assert_eq!(any.name(), Some(name));
        }
        assert_eq!(
            root.resolve_names("nul\0", Names::Any),
            Err(StorageError::InvalidName)
        );
        assert_eq!(
            root.resolve_names(".miniftp/x\n", Names::Any),
            Err(StorageError::Reserved)
        );
    }

    #[test]
    fn resolves_relative_and_absolute() {
        let cwd = at("/photos/2024");
        assert_eq!(
            cwd.resolve("a.jpg").unwrap().to_string(),
            "/photos/2024/a.jpg"
        );
        assert_eq!(cwd.resolve("/a.jpg").unwrap().to_string(), "/a.jpg");
        assert_eq!(
            cwd.resolve("./x/./y/").unwrap().to_string(),
            "/photos/2024/x/y"
        );
        assert_eq!(cwd.resolve("..").unwrap().to_string(), "/photos");
        assert_eq!(cwd.resolve("//a//b").unwrap().to_string(), "/a/b");
    }

    #[test]
    fn dot_dot_never_leaves_the_root() {
        let cwd = at("/a");
        for escape in [
            "..",
            "../..",
            "../../..",
            "/..",
            "/../../etc",
            "a/../../../b/..",
        ] {
            let resolved = cwd.resolve(escape).unwrap();
            assert!(resolved.starts_with(&VirtualPath::root()));
            assert!(
                !resolved.relative().to_string_lossy().contains(".."),
                "{escape}"
            );
        }
        assert_eq!(
            cwd.resolve("../../etc/passwd").unwrap().to_string(),
            "/etc/passwd"
        );
        assert_eq!(
            VirtualPath::root().resolve("../x").unwrap().to_string(),
            "/x"
        );
    }

    #[test]
    fn refuses_odd_names() {
        let root = VirtualPath::root();
        assert!(matches!(root.resolve(""), Err(StorageError::EmptyName)));
        for bad in [
            "a\0b",
            "line\nbreak",
            "tab\there",
            "del\u{7f}",
            "esc\u{1b}[31m",
            "x/\r/y",
        ] {
            assert!(
                matches!(root.resolve(bad), Err(StorageError::InvalidName)),
                "{bad:?}"
            );
        }
        let long = "n".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            root.resolve(&long),
            Err(StorageError::NameTooLong)
        ));
        let deep = "a/".repeat(MAX_PATH_LEN);
        assert!(matches!(
            root.resolve(&deep),
            Err(StorageError::NameTooLong)
        ));
        assert!(root.resolve(&"n".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn private_directory_is_unreachable() {
        let root = VirtualPath::root();
        for private in [
            ".miniftp",
            "/.miniftp/tmp/x",
            "a/../.miniftp",
            "../.miniftp",
        ] {
            assert!(
                matches!(root.resolve(private), Err(StorageError::Reserved)),
                "{private}"
            );
        }
        // Only the root-level name is reserved.
        assert!(root.resolve("a/.miniftp").is_ok());
    }

    #[test]
    fn relative_paths_for_the_capability() {
        assert_eq!(VirtualPath::root().relative(), PathBuf::from("."));
        assert_eq!(at("/a/b").relative(), PathBuf::from("a/b"));
        assert_eq!(at("/a/b").parent(), at("/a"));
        assert_eq!(VirtualPath::root().parent(), VirtualPath::root());
        assert!(at("/a/b").starts_with(&at("/a")));
        assert!(!at("/ab").starts_with(&at("/a")));
    }

    #[test]
    fn trailing_slash_names_a_directory() {
        assert!(names_directory("a/"));
        assert!(!names_directory("a"));
        assert!(!names_directory("/"));
    }
}
