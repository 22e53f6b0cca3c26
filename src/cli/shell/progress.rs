//! How transfers look: a progress bar while they run (only on a terminal)
//! and a one-line summary when they are done.
//!
//! The bar takes two lines, so that it fits any terminal width: the name
//! (cut to fit) with the bytes so far, then a bar of about 40 columns with
//! the rate. (The cursor's line stays short of the right margin: a `^C`
//! echoed there would wrap, and clearing the bar would then miss a line.)
//! While a resumed transfer checks what was kept, and while the other side
//! verifies the digest at the end, a spinner says so instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use miniftp::client::{Progress, Stage};
use miniftp::protocol::text::escape;

/// The display of one transfer.
pub struct TransferDisplay {
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
    state: Mutex<Seen>,
}

/// What the display has seen of the transfer.
#[derive(Debug, Clone, Copy)]
struct Seen {
    last: Progress,
    /// When bytes began to move (after any checking).
    moving_since: Option<Instant>,
    /// The stage the bar shows, `None` before the first report.
    shown: Option<Stage>,
}

/// How a transfer went, for its summary.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// From the start of the command to the end.
    pub elapsed: Duration,
    /// From when bytes began to move to the end.
    pub moving: Duration,
    /// The last progress reported.
    pub last: Progress,
}

impl TransferDisplay {
    /// Starts the clock, and a bar on standard output if `animated`.
    pub fn start(label: &str, animated: bool) -> TransferDisplay {
        let label = escape(label);
        let bar = animated.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(transfer_style());
            bar.set_message(label.clone());
            bar
        });
        TransferDisplay {
            bar,
            label,
            started: Instant::now(),
            state: Mutex::new(Seen {
                last: Progress::default(),
                moving_since: None,
                shown: None,
            }),
        }
    }

    /// Shows how far the transfer has come.
    pub fn update(&self, progress: Progress) {
        let mut seen = self.lock();
        seen.last = progress;
        if progress.stage == Stage::Transferring && seen.moving_since.is_none() {
            seen.moving_since = Some(Instant::now());
        }
        let Some(bar) = &self.bar else {
            return;
        };
        if seen.shown != Some(progress.stage) {
            seen.shown = Some(progress.stage);
            match progress.stage {
                Stage::Transferring => {
                    bar.disable_steady_tick();
                    bar.set_style(transfer_style());
                    bar.set_message(match progress.kept {
                        0 => self.label.clone(),
                        kept => format!("{} (resumed at {})", self.label, size(kept as f64)),
                    });
                    if progress.kept > 0 {
                        // The kept part did not travel: no part of the rate.
                        if let Some(total) = progress.total {
                            bar.set_length(total);
                        }
                        bar.set_position(progress.kept);
                        bar.reset_eta();
                    }
                }
                Stage::Checking | Stage::Verifying => {
                    bar.set_style(spinner_style());
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            }
        }
        match progress.stage {
            Stage::Checking => bar.set_message(match progress.kept {
                0 => format!("{}: checking what the server kept", self.label),
                kept => format!(
                    "resuming {} at {}: checking what was kept",
                    self.label,
                    size(kept as f64)
                ),
            }),
            Stage::Verifying => bar.set_message(format!("{}: verifying", self.label)),
            Stage::Transferring => {
                if bar.length() != progress.total {
                    match progress.total {
                        Some(total) => bar.set_length(total),
                        None => bar.unset_length(),
                    }
                }
                bar.set_position(progress.done);
            }
        }
    }

    /// Removes the bar after Ctrl-C: the terminal echoed `^C` at the
    /// cursor, which indicatif keeps at the right margin, so the echo took
    /// a line of its own, one more to clear.
    pub fn finish_interrupted(self) -> Finished {
        let drawn = self.bar.is_some() && self.lock().shown.is_some();
        let finished = self.finish();
        if drawn {
            print!("\x1b[1A\x1b[2K");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
        finished
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the bar after a transfer that ended with `result`.
    pub fn finish_for<T>(self, result: &Result<T, super::Failure>) -> Finished {
        match result {
            Err(super::Failure::Cancelled(_)) => self.finish_interrupted(),
            _ => self.finish(),
        }
    }

    /// Removes the bar; how the transfer went.
    pub fn finish(self) -> Finished {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let seen = *self.lock();
        Finished {
            elapsed: self.started.elapsed(),
            moving: seen
                .moving_since
                .map_or(Duration::ZERO, |since| since.elapsed()),
            last: seen.last,
        }
    }
}

fn transfer_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{wide_msg} {binary_bytes}/{binary_total_bytes}\n\
         [{bar:16}] {percent:>3}% {binary_bytes_per_sec} ETA {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {wide_msg}").expect("a valid template")
}

/// The summary of a transfer of `bytes` (the whole file): as [`summary`],
/// and for a resumed one, what travelled (`verb`: sent, received) and at
/// what speed, and what was kept.
pub fn resumed_summary(bytes: u64, finished: &Finished, verb: &str) -> String {
    let kept = finished.last.kept.min(bytes);
    if kept == 0 {
        return summary(bytes, finished.elapsed);
    }
    let moved = bytes - kept;
    let seconds = finished.moving.as_secs_f64();
    let rate = match seconds > 0.0 {
        true => format!(" at {}/s", size(moved as f64 / seconds)),
        false => String::new(),
    };
    format!(
        "{} ({bytes} bytes) in {}: {} {verb}{rate}, {} kept from before",
        size(bytes as f64),
        duration(finished.elapsed.as_secs_f64()),
        size(moved as f64),
        size(kept as f64)
    )
}

/// `1.2 MiB (1234567 bytes) in 0.35 s, 3.4 MiB/s`
pub fn summary(bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = match seconds > 0.0 {
        true => format!(", {}/s", size(bytes as f64 / seconds)),
        false => String::new(),
    };
    format!(
        "{} ({bytes} bytes) in {}{rate}",
        size(bytes as f64),
        duration(seconds)
    )
}

/// A size in binary units, one decimal above bytes.
pub fn size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024.0 {
        return format!("{bytes:.0} B");
    }
    let mut value = bytes / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 10.0 => format!("{s:.2} s"),
        s if s < 60.0 => format!("{s:.1} s"),
        s => format!("{} min {:.0} s", (s / 60.0).floor(), s % 60.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(0.0), "0 B");
        assert_eq!(size(1023.0), "1023 B");
        assert_eq!(size(1024.0), "1.0 KiB");
        assert_eq!(size(1_234_567.0), "1.2 MiB");
        assert_eq!(size(5.0 * 1024.0 * 1024.0 * 1024.0), "5.0 GiB");
    }

    #[test]
    fn a_resumed_summary_counts_what_travelled_and_what_was_kept() {
        let finished = |kept: u64| Finished {
            elapsed: Duration::from_secs(4),
            moving: Duration::from_secs(2),
            last: Progress {
                done: 1 << 30,
                total: Some(1 << 30),
                kept,
                stage: Stage::Verifying,
            },
        };
        assert_eq!(
            resumed_summary(1 << 30, &finished(704 << 20), "sent"),
            "1.0 GiB (1073741824 bytes) in 4.00 s: 320.0 MiB sent at 160.0 MiB/s, \
             704.0 MiB kept from before"
        );
        assert_eq!(
            resumed_summary(1 << 30, &finished(0), "sent"),
            summary(1 << 30, Duration::from_secs(4))
        );
    }

    #[test]
    fn summaries_name_size_time_and_rate() {
        assert_eq!(
            summary(1_048_576, Duration::from_millis(500)),
            "1.0 MiB (1048576 bytes) in 0.50 s, 2.0 MiB/s"
        );
        assert_eq!(summary(0, Duration::ZERO), "0 B (0 bytes) in 0.00 s");
        assert_eq!(
            summary(10, Duration::from_secs(75)),
            "10 B (10 bytes) in 1 min 15 s, 0 B/s"
        );
    }
}
