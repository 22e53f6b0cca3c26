//! How transfers look: a progress bar while they run (only on a terminal)
//! and a one-line summary when they are done.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use miniftp::client::Progress;

/// The display of one transfer.
pub struct TransferDisplay {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl TransferDisplay {
    /// Starts the clock, and a bar on standard output if `animated`.
    pub fn start(label: &str, animated: bool) -> TransferDisplay {
        let bar = animated.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            bar
        });
        TransferDisplay {
            bar,
            started: Instant::now(),
        }
    }

    /// Shows how far the transfer has come.
    pub fn update(&self, progress: Progress) {
        if let Some(bar) = &self.bar {
            if bar.length() != progress.total {
                match progress.total {
                    Some(total) => bar.set_length(total),
                    None => bar.unset_length(),
                }
            }
            bar.set_position(progress.done);
        }
    }

    /// Removes the bar; the time the transfer took.
    pub fn finish(self) -> Duration {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.started.elapsed()
    }
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
