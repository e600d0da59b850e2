//! What runs on a kiln node: the `kiln-node` program that kiln puts into
//! images that boot (`/usr/lib/kiln/kiln-node`). Today it provisions the
//! node at boot (`kiln-node provision`, docs/provisioning.md) and, in the
//! initramfs of a PXE boot, fetches and verifies the root before it is
//! mounted (`kiln-node pxe-root`, docs/pxe.md). On timers it checks the
//! node for drift from its signed manifest and audits it (`kiln-node
//! check`, `kiln-node audit`, docs/fleet.md: kiln-check's work).
//!
//! It knows nothing of recipes or of the builder: a small program with
//! strict readers of untrusted input (`yaml`, `provision`), the places it
//! reads from (`sources`) and what it writes (`apply`).

pub mod apply;
pub mod fleet;
pub mod network;
pub mod provision;
pub mod pxe;
pub mod sources;
pub mod yaml;

use std::path::PathBuf;

const USAGE: &str = "usage: kiln-node provision [--root DIR] [--seed DIR] [--cmdline FILE] [--dmi DIR] [--labels DIR]
       kiln-node network [--seed DIR] [--labels DIR] [--into DIR]
       kiln-node pxe-root [--cmdline FILE] [--trust DIR] [--into DIR] [--no-attach]
       kiln-node check --manifest FILE --key KEY_OR_DIR [--root DIR] [--json-lines] [--quiet] [--textfile-dir DIR] [--journal[=SOCKET]] [--node-patch FILE]
       kiln-node audit PATH [--format text|json|sarif|junit] [--output FILE] [--fail-on SEVERITY] [--quiet] [--textfile-dir DIR] [--journal[=SOCKET]]";

/// The program; returns its exit code.
pub fn main(args: Vec<String>) -> i32 {
    let (name, result) = match args.get(1).map(String::as_str) {
        Some("provision") => ("kiln-provision", provision(args)),
        Some("network") => ("kiln-network", network(args)),
        Some("pxe-root") => ("kiln-pxe", pxe_root(args)),
        Some("check") => ("kiln-check", fleet::check(args)),
        Some("audit") => ("kiln-audit", fleet::audit(args)),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            1
        }
    }
}

/// `network`: static network settings from a NoCloud seed, before
/// systemd-networkd starts (network.rs).
fn network(args: Vec<String>) -> anyhow::Result<i32> {
    let mut args = args.into_iter().skip(2);
    let mut seed = None;
    let mut labels = PathBuf::from("/dev/disk/by-label");
    let mut into = PathBuf::from(network::NETWORK_DIR);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value\n{USAGE}");
            return Ok(2);
        };
        match flag.as_str() {
            "--seed" => seed = Some(PathBuf::from(value)),
            "--labels" => labels = value.into(),
            "--into" => into = value.into(),
            _ => {
                eprintln!("unknown option {flag}\n{USAGE}");
                return Ok(2);
            }
        }
    }
    let files = match sources::read_network(seed.as_deref(), &labels)? {
        None => {
            println!(
                "kiln-network: no network-config in a NoCloud seed; the image's settings apply"
            );
            return Ok(0);
        }
        Some(Err(refused)) => {
            for reason in &refused {
                eprintln!("kiln-network: refused: {reason}");
            }
            eprintln!(
                "kiln-network: nothing was written: {} refusal(s) in network-config; the image's settings apply",
                refused.len()
            );
            return Ok(1);
        }
        Some(Ok(files)) => files,
    };
    std::fs::create_dir_all(&into)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", into.display()))?;
    for file in &files {
        apply::write_atomic(&into.join(&file.name), file.text.as_bytes(), 0o644)?;
        println!("kiln-network: wrote {}", into.join(&file.name).display());
    }
    if files.is_empty() {
        println!("kiln-network: network-config gives no links; the image's settings apply");
    }
    Ok(0)
}

/// `pxe-root`: the verified root of a PXE boot (pxe.rs).
fn pxe_root(args: Vec<String>) -> anyhow::Result<i32> {
    let mut args = args.into_iter().skip(2);
    let mut cmdline = PathBuf::from("/proc/cmdline");
    let mut trust = PathBuf::from(pxe::TRUST_DIR);
    let mut into = PathBuf::from("/run/kiln/pxe");
    let mut attach = true;
    while let Some(flag) = args.next() {
        if flag == "--no-attach" {
            attach = false;
            continue;
        }
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value\n{USAGE}");
            return Ok(2);
        };
        match flag.as_str() {
            "--cmdline" => cmdline = value.into(),
            "--trust" => trust = value.into(),
            "--into" => into = value.into(),
            _ => {
                eprintln!("unknown option {flag}\n{USAGE}");
                return Ok(2);
            }
        }
    }
    let cmdline = std::fs::read_to_string(&cmdline)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cmdline.display()))?;
    let base = pxe::bundle_url(&cmdline)?;
    let trust = pxe::Trust::read(&trust)?;
    println!(
        "kiln-pxe: fetching {} (version {} or newer) from {base}",
        trust.name, trust.minimum_version
    );
    let root = pxe::fetch_root(&base, &trust, &into, &|line| println!("kiln-pxe: {line}"))?;
    if attach {
        pxe::attach(&root)?;
    }
    println!(
        "kiln-pxe: root of {} {} verified (root hash {})",
        trust.name, root.version, root.root_hash
    );
    Ok(0)
}

/// `provision`: the node's token, hostname and keys (provision.rs).
fn provision(args: Vec<String>) -> anyhow::Result<i32> {
    let mut args = args.into_iter().skip(2);
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
