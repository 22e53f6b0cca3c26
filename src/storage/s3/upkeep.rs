//! Finding and aborting the multipart uploads that nobody will finish, on
//! a bucket that several servers share and any of them may leave by a
//! crash.
//!
//! Each server writes a heartbeat, `.miniftp/servers/<name>`, every
//! [`HEARTBEAT`], saying where it runs (machine, boot, process). An upload
//! that is not resumable belongs to its server (its state names it): it is
//! stale once that server is gone, which a server on the same machine sees
//! at once (the process is gone: a restart after a crash aborts what the
//! crash left, at start) and any other once the heartbeat is older than
//! [`LEASE`]. A resumable upload belongs to nobody and waits
//! [`PARTIAL_MAX_AGE`] for its resume, as on disk. A multipart upload that
//! no state names (a crash between its start and its state's first write)
//! is stale after [`ORPHAN_AGE`]. Every server sweeps at start and every
//! [`SWEEP`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::state::{UploadState, now};
use super::{S3Bucket, Shared};

/// How often a server says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// How old a heartbeat may be before its server counts as gone.
pub const LEASE: Duration = Duration::from_secs(150);

/// How often a server looks for stale uploads.
pub const SWEEP: Duration = Duration::from_secs(300);

/// How long an interrupted resumable upload waits to be resumed.
pub const PARTIAL_MAX_AGE: Duration = crate::storage::local::PARTIAL_MAX_AGE;

/// How old a multipart upload no state names may grow.
pub const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// The servers of this process that are open (the same process can serve
/// several trees, as the tests do): on the same machine and in the same
/// process, a heartbeat is alive exactly when its server is here.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A server's name among those sharing the bucket, registered as alive in
/// this process until dropped.
pub(super) struct Registration(pub String);

/// A random name of 16 letters and digits.
pub fn random_name() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

impl Registration {
    /// A new name, alive from now on.
    pub fn new() -> Registration {
        let name = random_name();
        LIVE.lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(name.clone());
        Registration(name)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        LIVE.lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|name| *name != self.0);
    }
}

/// What a heartbeat says.
#[derive(Debug, Serialize, Deserialize)]
struct Heartbeat {
    /// The machine's boot id (`/proc/sys/kernel/random/boot_id`): the same
    /// for two servers exactly when they run on one machine, one boot.
    boot: String,
    /// The server's process.
    pid: u32,
    /// The host's name, for people reading the bucket.
    host: String,
}

impl Heartbeat {
    fn here() -> Heartbeat {
        Heartbeat {
            boot: boot_id(),
            pid: std::process::id(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|host| host.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// Writes this server's first heartbeat (which proves the key may write),
/// sweeps once, then keeps both going until `cancel` (the bucket dropped).
pub(super) async fn start(bucket: &S3Bucket, cancel: CancellationToken) -> Result<(), String> {
    beat(bucket).await?;
    if let Err(error) = sweep(bucket).await {
        tracing::warn!(%error, "could not look for stale uploads");
    }
    let shared: Weak<Shared> = Arc::downgrade(&bucket.shared);
    let root = bucket.base.clone();
    tokio::spawn(async move {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut sweeps = tokio::time::interval(SWEEP);
        heartbeat.tick().await;
        sweeps.tick().await;
        loop {
            let sweeping = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = heartbeat.tick() => false,
                _ = sweeps.tick() => true,
            };
            let Some(shared) = shared.upgrade() else {
                break;
            };
            let bucket = S3Bucket {
                shared,
                base: root.clone(),
                scope: Arc::from(""),
            };
            let done = match sweeping {
                false => beat(&bucket).await,
                true => sweep(&bucket).await,
            };
            if let Err(error) = done {
                tracing::warn!(%error, "the object store's upkeep failed; trying again later");
            }
        }
    });
    Ok(())
}

fn heartbeat_key(bucket: &S3Bucket, name: &str) -> String {
    format!("{}servers/{name}", bucket.shared.private)
}

/// Writes this server's heartbeat.
async fn beat(bucket: &S3Bucket) -> Result<(), String> {
    let text = toml::to_string(&Heartbeat::here()).expect("a heartbeat is plain TOML");
    bucket
        .operator()
        .write(
            &heartbeat_key(bucket, &bucket.shared.instance.0),
            text.into_bytes(),
        )
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Whether the server of a heartbeat is alive.
fn alive(name: &str, heartbeat: Option<&Heartbeat>, written: Option<SystemTime>) -> bool {
    let fresh = written
        .and_then(|written| written.elapsed().ok())
        .is_none_or(|age| age < LEASE);
    let Some(heartbeat) = heartbeat else {
        return fresh;
    };
    if heartbeat.boot.is_empty() || heartbeat.boot != boot_id() {
        return fresh;
    }
    if heartbeat.pid == std::process::id() {
        return LIVE
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .any(|live| live == name);
    }
    fresh && std::path::Path::new(&format!("/proc/{}", heartbeat.pid)).exists()
}

/// Aborts the uploads nobody will finish, and forgets the servers that are
/// gone.
pub(super) async fn sweep(bucket: &S3Bucket) -> Result<(), String> {
    let operator = bucket.operator();
    let private = &bucket.shared.private;
    let text = |error: opendal::Error| error.to_string();

    let mut live = HashSet::new();
    let mut servers = operator
        .lister(&format!("{private}servers/"))
        .await
        .map_err(text)?;
    while let Some(entry) = servers.try_next().await.map_err(text)? {
        let name = entry.name();
        if name.is_empty() || name.ends_with('/') {
            continue;
        }
        let stat = operator.stat(entry.path()).await.ok();
        let read = operator.read(entry.path()).await.ok();
        let heartbeat = read
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .and_then(|text| toml::from_str::<Heartbeat>(&text).ok());
        let written = stat.and_then(|stat| stat.last_modified()).map(Into::into);
        match alive(name, heartbeat.as_ref(), written) {
            true => {
                live.insert(name.to_owned());
            }
            false => {
                tracing::info!(server = name, "a server sharing the bucket is gone");
                let _ = operator.delete(entry.path()).await;
            }
        }
    }

    let mut named = HashSet::new();
    for (area, resumable) in [("uploads/", false), ("partial/", true)] {
        let mut states = operator
            .lister(&format!("{private}{area}"))
            .await
            .map_err(text)?;
        while let Some(entry) = states.try_next().await.map_err(text)? {
            if entry.path().ends_with('/') {
                continue;
            }
            let Ok(bytes) = operator.read(entry.path()).await else {
                continue;
            };
            let Some(state) = UploadState::parse(&bytes.to_vec()) else {
                let _ = operator.delete(entry.path()).await;
                continue;
            };
            let stale = match resumable {
                false => !state
                    .owner
                    .as_ref()
                    .is_some_and(|owner| live.contains(owner)),
                true => now().saturating_sub(state.updated) > PARTIAL_MAX_AGE.as_secs(),
            };
            if !stale {
                named.insert(state.upload_id);
                continue;
            }
            tracing::info!(key = %state.key, "aborting a stale upload");
            bucket
                .shared
                .multipart
                .abort(&state.key, &state.upload_id)
                .await
                .map_err(|error| error.to_string())?;
            let _ = operator.delete(entry.path()).await;
        }
    }

    let mut page = None;
    loop {
        let listed = bucket
            .shared
            .multipart
            .list_uploads(&bucket.base, page.as_ref())
            .await
            .map_err(|error| error.to_string())?;
        for upload in listed.uploads {
            let old = upload
                .initiated
                .and_then(|initiated| initiated.elapsed().ok())
                .is_some_and(|age| age > ORPHAN_AGE);
            if old && !named.contains(&upload.upload_id) {
                tracing::info!(key = %upload.key, "aborting an upload no server names");
                let _ = bucket
                    .shared
                    .multipart
                    .abort(&upload.key, &upload.upload_id)
                    .await;
            }
        }
        match listed.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    Ok(())
}

/// The multipart uploads in progress under the tree (for tests and
/// operators: what a crash may have left).
pub async fn uploads_in_progress(bucket: &S3Bucket) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut page = None;
    loop {
        let listed = bucket
            .shared
            .multipart
            .list_uploads(&bucket.base, page.as_ref())
            .await
            .map_err(|error| error.to_string())?;
        keys.extend(listed.uploads.into_iter().map(|upload| upload.key));
        match listed.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    Ok(keys)
}
