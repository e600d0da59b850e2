//! What the user sees while kiln works: progress bars on a terminal, plain
//! log lines otherwise (CI logs, pipes), all on stderr; and every write to
//! stdout and stderr, which end kiln quietly when the reader is gone.
//!
//! # A closed stdout or stderr
//!
//! `kiln diff A B | head` closes the pipe early. kiln then ends as
//! coreutils do (`ls | head`): killed by SIGPIPE, which a shell reports as
//! status 141 — never with a panic. Writes that fail with EPIPE unwind the
//! stack with a [`BrokenPipe`] payload, so every destructor on the way out
//! runs and a build's work directory is removed as on SIGINT; `main`
//! catches it and re-raises SIGPIPE.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The payload of the unwinding that ends kiln when stdout or stderr is
/// a closed pipe.
#[derive(Debug)]
pub struct BrokenPipe;

impl std::fmt::Display for BrokenPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader of kiln's output went away (broken pipe)")
    }
}

impl std::error::Error for BrokenPipe {}

static PIPE_CLOSED: AtomicBool = AtomicBool::new(false);

const BYTES_TEMPLATE: &str = "{msg:>12} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
const COUNT_TEMPLATE: &str = "{msg:>12} [{bar:32}] {pos}/{len} eta {eta}";

/// Whether a write found stdout or stderr closed: from then on kiln is
/// only unwinding to its end, and says nothing more.
pub fn pipe_closed() -> bool {
    PIPE_CLOSED.load(Ordering::SeqCst)
}

/// Ends kiln (by unwinding) if `result` is a write to a closed pipe.
fn end_on_broken_pipe(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            PIPE_CLOSED.store(true, Ordering::SeqCst);
            std::panic::panic_any(BrokenPipe)
        }
        other => other,
    }
}

/// Writes `text` to stdout (and flushes it): a command's result. A
/// closed pipe ends kiln; another failure (a full disk) is an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    end_on_broken_pipe(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
        .map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))
}

/// Writes `text` to stderr. A closed pipe ends kiln; another failure is
/// ignored, as there is nowhere left to report it.
pub fn eprint(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = end_on_broken_pipe(err.write_all(text.as_bytes()));
}

pub struct Ui {
    quiet: bool,
    verbose: bool,
    bars: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Ui {
        Ui {
            quiet,
            verbose: false,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// With `verbose`, `detail` lines are printed too (`-v`).
    pub fn verbose(self, verbose: bool) -> Ui {
        Ui {
            verbose: verbose && !self.quiet,
            ..self
        }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    /// A step of the pipeline starts.
    pub fn step(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprint(&format!("kiln: {}\n", message.as_ref()));
        }
    }

    /// What only `-v` shows: where the time went, and why.
    pub fn detail(&self, message: impl AsRef<str>) {
        if self.verbose {
            eprint(&format!("kiln: {}\n", message.as_ref()));
        }
    }

    /// Something the user should look at, even with --quiet.
    pub fn warn(&self, message: impl AsRef<str>) {
        eprint(&format!("kiln: warning: {}\n", message.as_ref()));
    }

    /// A byte-counting progress bar for a long step; invisible when stderr
    /// is not a terminal.
    pub fn bytes(&self, total: u64, message: &str) -> Progress {
        self.bar(total, message, BYTES_TEMPLATE)
    }

    /// A progress bar counting items (packages, files).
    pub fn count(&self, total: u64, message: &str) -> Progress {
        self.bar(total, message, COUNT_TEMPLATE)
    }

    fn bar(&self, total: u64, message: &str, template: &str) -> Progress {
        // The templates are kiln's own; one that does not parse shows no bar.
        let style = ProgressStyle::with_template(template).ok();
        let bar = match style {
            Some(style) if self.bars => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(style.progress_chars("=> "));
                bar.set_message(message.to_owned());
                Some(bar)
            }
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_templates_parse() {
        for template in [BYTES_TEMPLATE, COUNT_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
