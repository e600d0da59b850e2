//! Removing partial outputs when the process is interrupted.
//!
//! A build writes into a hidden work directory inside the output directory
//! and renames finished artifacts into place only at the end. On SIGINT,
//! SIGTERM or SIGHUP the registered work directories are deleted before
//! exiting, so an interrupted build leaves nothing behind. SIGKILL cannot
//! be caught: the next build in the same directory removes work directories
//! whose process is gone (see [`remove_stale_work_dirs`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static REGISTERED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The prefix of work directories; the builder's pid follows it.
pub const WORK_DIR_PREFIX: &str = ".kiln-work-";

/// Starts a thread that cleans up and exits on a termination signal.
pub fn install_signal_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            remove_registered();
            eprintln!("kiln: interrupted; partial outputs removed");
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

fn remove_registered() {
    let paths = match REGISTERED.lock() {
        Ok(mut paths) => std::mem::take(&mut *paths),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for path in paths {
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Keeps `path` registered for removal on a signal while alive.
pub struct Registration(PathBuf);

impl Registration {
    pub fn new(path: &Path) -> Registration {
        if let Ok(mut paths) = REGISTERED.lock() {
            paths.push(path.to_owned());
        }
        Registration(path.to_owned())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut paths) = REGISTERED.lock() {
            paths.retain(|p| *p != self.0);
        }
    }
}

/// Deletes `.kiln-work-PID-*` directories in `dir` whose process no longer
/// runs: what a killed build left.
pub fn remove_stale_work_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(WORK_DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
