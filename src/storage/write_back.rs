//! Asking the disk to start writing out a file being written, so that the
//! flush that makes it durable later finds most of it written: the local
//! disk's uploads use it, and the client's durable downloads.

/// How many bytes a writer writes between two requests that the disk start
/// writing them out.
pub const EVERY: u64 = 8 << 20;

/// Whether writing from `before` to `after` (bytes written in all) crossed
/// a multiple of [`EVERY`], so that write-back is due.
pub fn due(before: u64, after: u64) -> bool {
    before / EVERY != after / EVERY
}

/// Asks the disk to start writing out what `file` holds, without waiting.
/// Failures only cost time.
// `unsafe_code` is denied crate-wide: neither std nor rustix wraps
// `sync_file_range(2)`, one call on a descriptor we hold open.
#[allow(unsafe_code)]
pub fn start(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the borrow of `file`; the call takes
    // integers only and touches no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}
