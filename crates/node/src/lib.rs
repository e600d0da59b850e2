//! What runs on a kiln node: the `kiln-node` program that kiln puts into
//! images that boot (`/usr/lib/kiln/kiln-node`). Today it provisions the
//! node at boot (`kiln-node provision`); docs/provisioning.md.
//!
//! It knows nothing of recipes or of the builder: a small program with
//! strict readers of untrusted input (`yaml`, `provision`), the places it
//! reads from (`sources`) and what it writes (`apply`).

pub mod apply;
pub mod provision;
pub mod sources;
pub mod yaml;

use std::path::PathBuf;

const USAGE: &str = "usage: kiln-node provision [--root DIR] [--seed DIR] [--cmdline FILE] [--dmi DIR] [--labels DIR]";

/// The program; returns its exit code.
pub fn main(args: Vec<String>) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln-provision: {e:#}");
            1
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<i32> {
    let mut args = args.into_iter().skip(1);
    if args.next().as_deref() != Some("provision") {
        eprintln!("{USAGE}");
        return Ok(2);
    }
    let mut root = PathBuf::from("/");
    let mut seed = None;
    let mut cmdline = PathBuf::from("/proc/cmdline");
    let mut dmi = PathBuf::from("/sys/class/dmi/id");
    let mut labels = PathBuf::from("/dev/disk/by-label");
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value\n{USAGE}");
            return Ok(2);
        };
        match flag.as_str() {
            "--root" => root = value.into(),
            "--seed" => seed = Some(PathBuf::from(value)),
            "--cmdline" => cmdline = value.into(),
            "--dmi" => dmi = value.into(),
            "--labels" => labels = value.into(),
            _ => {
                eprintln!("unknown option {flag}\n{USAGE}");
                return Ok(2);
            }
        }
    }
    let source = match seed {
        Some(dir) => Some(sources::Source::SeedDir(dir)),
        None => {
            let cmdline = std::fs::read_to_string(&cmdline).unwrap_or_default();
            sources::find(&sources::Node {
                labels_dir: &labels,
                cmdline: &cmdline,
                dmi_dir: &dmi,
            })?
        }
    };
    let Some(source) = source else {
        println!(
            "kiln-provision: no provisioning source (NoCloud seed, kiln.provision=, cloud metadata); the node keeps what it has"
        );
        return Ok(0);
    };
    println!("kiln-provision: reading {source}");
    let provision = match sources::read(&source)? {
        Ok(p) => p,
        Err(refused) => {
            for reason in &refused {
                eprintln!("kiln-provision: refused: {reason}");
            }
            eprintln!(
                "kiln-provision: nothing was written: {} refusal(s) in {source}",
                refused.len()
            );
            return Ok(1);
        }
    };
    let live = root == std::path::Path::new("/");
    for line in apply::apply(&root, &provision, live)? {
        println!("kiln-provision: {line}");
    }
    println!("kiln-provision: provisioned from {source}: {provision}");
    Ok(0)
}
