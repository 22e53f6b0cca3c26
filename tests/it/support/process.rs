//! The real `miniftp serve` binary in a process of its own, for what only a
//! process shows: a crash (SIGKILL), and the memory it holds.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A `miniftp serve` process; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
}

impl ServerProcess {
    /// Starts `miniftp serve ROOT --port 0 --quiet` and reads the line that
    /// names its address.
    pub fn start(root: &Path) -> ServerProcess {
        ServerProcess::start_with(root, &[])
    }

    /// [`ServerProcess::start`] with more arguments.
    pub fn start_with(root: &Path, arguments: &[&str]) -> ServerProcess {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("miniftp"));
        command.arg("serve").arg(root);
        ServerProcess::spawn(command, arguments)
    }

    /// `miniftp serve --port 0 --quiet ARGS` with these environment
    /// variables and no ROOT (a bucket, say).
    pub fn start_without_root(arguments: &[&str], environment: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("miniftp"));
        command.arg("serve").envs(environment.iter().copied());
        ServerProcess::spawn(command, arguments)
    }

    fn spawn(mut command: Command, arguments: &[&str]) -> ServerProcess {
        let mut child = command
            .args(["--port", "0", "--quiet"])
            .args(arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start miniftp serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the line naming the address");
        let address = line
            .trim_end()
            .rsplit_once(" on ")
            .and_then(|(_, address)| address.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        assert!(line.starts_with("miniftp: serving "), "{line:?}");
        ServerProcess { child, address }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The memory the process holds now (`VmRSS`), in bytes.
    pub fn resident(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// The most memory the process has held (`VmHWM`), in bytes.
    pub fn peak_resident(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().strip_suffix(" kB"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        kib * 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
