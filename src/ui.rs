//! What the user sees while kiln works: progress bars on a terminal, plain
//! log lines otherwise (CI logs, pipes), all on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct Ui {
    quiet: bool,
    bars: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Ui {
        Ui {
            quiet,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A step of the pipeline starts.
    pub fn step(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("kiln: {}", message.as_ref());
        }
    }

    /// Something the user should look at, even with --quiet.
    pub fn warn(&self, message: impl AsRef<str>) {
        eprintln!("kiln: warning: {}", message.as_ref());
    }

    /// A byte-counting progress bar for a long step; invisible when stderr
    /// is not a terminal.
    pub fn bytes(&self, total: u64, message: &str) -> Progress {
        self.bar(
            total,
            message,
            "{msg:>12} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// A progress bar counting items (packages, files).
    pub fn count(&self, total: u64, message: &str) -> Progress {
        self.bar(total, message, "{msg:>12} [{bar:32}] {pos}/{len} eta {eta}")
    }

    fn bar(&self, total: u64, message: &str, template: &str) -> Progress {
        let bar = if self.bars {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(message.to_owned());
            Some(bar)
        } else {
            None
        };
        Progress {
            bar,
            started: Instant::now(),
        }
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Whether a bar is drawn (a terminal, not --quiet): worth feeding.
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Moves the bar to `n`.
    pub fn set(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(n);
        }
    }

    /// Wraps `reader` so that bytes read advance the bar.
    pub fn wrap_read<R: std::io::Read>(&self, reader: R) -> ProgressReader<R> {
        ProgressReader {
            inner: reader,
            bar: self.bar.clone(),
        }
    }

    /// Clears the bar; returns the seconds the step took.
    pub fn finish(self) -> f64 {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.started.elapsed().as_secs_f64()
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub struct ProgressReader<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: std::io::Read> std::io::Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}
