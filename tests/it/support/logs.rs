//! The server's log as a test reads it: JSON lines captured on the test's
//! thread (a current-thread runtime runs the server's tasks there too).

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Everything logged on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct Log {
    bytes: Arc<Mutex<Vec<u8>>>,
    written: Arc<tokio::sync::Notify>,
}

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(bytes);
        self.written.notify_waiters();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Gives every thread without a capture of its own a subscriber that wants
/// every line (and keeps none). `tracing` decides once per call site,
/// for the whole process, whether the site is wanted, asking the thread
/// that reaches it first: a test with no subscriber would make it "never",
/// and a capture on another thread would then miss its lines (it did, once
/// in a `.ci/run`: a download's line never came).
fn interest_in_every_site() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry())
            .expect("no other global subscriber in these tests");
    });
}

impl Log {
    /// Captures miniftp's lines down to `debug` on this thread.
    pub fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        interest_in_every_site();
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter("miniftp=debug")
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    /// The fields of every line so far, as JSON objects.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.bytes.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["fields"].clone())
            .collect()
    }

    /// The lines whose message is `message`.
    pub fn messages(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|fields| fields["message"] == message)
            .collect()
    }

    /// Waits until some line says what `wanted` looks for, and gives it;
    /// fails after [`super::HANG_GUARD`].
    pub async fn until(&self, wanted: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                let written = self.written.notified();
                if let Some(line) = self.lines().into_iter().find(|line| wanted(line)) {
                    return line;
                }
                written.await;
            }
        };
        tokio::time::timeout(super::HANG_GUARD, wait)
            .await
            .expect("the line in time")
    }

    /// The executor's lines for `operation`.
    pub fn operations(&self, operation: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|fields| fields["operation"] == operation)
            .collect()
    }
}

#[test]
fn a_line_is_captured_though_another_thread_reached_its_site_first() {
    fn say(what: &str) {
        tracing::info!(target: "miniftp::support", what);
    }
    let (log, _guard) = Log::capture();
    std::thread::spawn(|| say("elsewhere")).join().unwrap();
    say("here");
    let said: Vec<_> = log
        .lines()
        .into_iter()
        .map(|line| line["what"].clone())
        .collect();
    assert_eq!(said, ["here"]);
}
