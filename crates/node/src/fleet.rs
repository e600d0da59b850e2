//! `check` and `audit`: what the node's timers run (docs/fleet.md). The
//! same work as `kiln check` and `kiln audit` (kiln-check), in the
//! program every image that boots already has, so a node checks itself
//! without a copy of the builder.

use anyhow::{Result, bail};
use kiln_check::drift::CheckOptions;
use kiln_check::fleet::Outputs;
use kiln_check::fleet::journal::{Journal, SOCKET};
use kiln_policy::audit::{AuditConfig, report::Format};
use std::path::PathBuf;

/// Drift found, or a manifest that is not trusted (as `kiln check`).
pub const NOT_VERIFIED: u8 = 4;
/// The audit's findings fail its gate (as `kiln audit`).
pub const AUDIT_FAILED: u8 = 5;
const FAILURE: u8 = 1;

pub const CHECK_USAGE: &str = "kiln-node check --manifest FILE --key KEY_OR_DIR [--key …] [--root DIR] [--fast] [--json-lines] [--quiet] [--textfile-dir DIR] [--journal[=SOCKET]] [--node-patch FILE]";
pub const AUDIT_USAGE: &str = "kiln-node audit PATH [--format text|json|sarif|junit] [--output FILE] [--fail-on SEVERITY] [--quiet] [--textfile-dir DIR] [--journal[=SOCKET]]";

/// The options both share, as `kiln`'s command line spells them.
#[derive(Default)]
struct Common {
    quiet: bool,
    textfile_dir: Option<PathBuf>,
    journal: Option<PathBuf>,
}

impl Common {
    /// Takes `flag` (and its value from `rest`) if it is a common one.
    fn take(&mut self, flag: &str, rest: &mut impl Iterator<Item = String>) -> Result<bool> {
        match flag {
            "--quiet" | "-q" => self.quiet = true,
            "--journal" => self.journal = Some(SOCKET.into()),
            "--textfile-dir" => self.textfile_dir = Some(value(flag, rest)?.into()),
            _ => match flag.strip_prefix("--journal=") {
                Some(socket) => self.journal = Some(socket.into()),
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    fn outputs(&self, node_patch: Option<PathBuf>) -> Outputs {
        Outputs {
            textfile_dir: self.textfile_dir.clone(),
            journal: self.journal.as_deref().map(Journal::open),
            node_patch,
        }
    }
}

fn value(flag: &str, rest: &mut impl Iterator<Item = String>) -> Result<String> {
    match rest.next() {
        Some(v) => Ok(v),
        None => bail!("{flag} needs a value"),
    }
}

/// `kiln-node check`: the node's files against its signed manifest.
pub fn check(args: Vec<String>) -> Result<i32> {
    let mut rest = args.into_iter().skip(2);
    let mut common = Common::default();
    let (mut manifest, mut keys, mut root) = (None, Vec::new(), PathBuf::from("/"));
    let (mut fast, mut json_lines, mut node_patch) = (false, false, None);
    while let Some(flag) = rest.next() {
        if common.take(&flag, &mut rest)? {
            continue;
        }
        match flag.as_str() {
            "--manifest" => manifest = Some(PathBuf::from(value(&flag, &mut rest)?)),
            "--key" => keys.push(PathBuf::from(value(&flag, &mut rest)?)),
            "--root" => root = value(&flag, &mut rest)?.into(),
            "--node-patch" => node_patch = Some(PathBuf::from(value(&flag, &mut rest)?)),
            "--fast" => fast = true,
            "--json-lines" => json_lines = true,
            _ => bail!("unknown option {flag}\nusage: {CHECK_USAGE}"),
        }
    }
    let Some(manifest) = manifest else {
        bail!("give --manifest FILE\nusage: {CHECK_USAGE}")
    };
    let quiet = common.quiet;
    let ran = kiln_check::run::check(
        &manifest,
        &keys,
        &CheckOptions { root: &root, fast },
        &common.outputs(node_patch),
        &mut |verified| {
            if !quiet {
                eprintln!(
                    "kiln-check: manifest of {} {} signed by key {}; checking {}",
                    verified.manifest.image.name,
                    verified.manifest.image.version,
                    verified.key_id,
                    root.display()
                );
            }
        },
    );
    if let Err(e) = &ran.report {
        eprintln!("kiln-check: cannot report for the fleet: {e:#}");
    }
    let (_, drift) = match &ran.outcome {
        Ok(found) => found,
        Err(e) => {
            eprintln!("kiln-check: {e:#}");
            let untrusted = e.downcast_ref::<kiln_check::trust::Untrusted>().is_some();
            return Ok(i32::from(if untrusted { NOT_VERIFIED } else { FAILURE }));
        }
    };
    for event in drift {
        if json_lines {
            println!("{}", serde_json::to_string(event)?);
        } else {
            println!("{event}");
        }
    }
    if !quiet {
        eprintln!("kiln-check: {} drift event(s)", drift.len());
    }
    let code = if drift.is_empty() { 0 } else { NOT_VERIFIED };
    Ok(i32::from(ran.code(code, FAILURE)))
}

/// `kiln-node audit`: the hardening rules against the running node.
pub fn audit(args: Vec<String>) -> Result<i32> {
    let mut rest = args.into_iter().skip(2);
    let mut common = Common::default();
    let (mut path, mut format, mut output) = (None, Format::Text, None);
    let mut config = AuditConfig::default();
    while let Some(flag) = rest.next() {
        if common.take(&flag, &mut rest)? {
            continue;
        }
        match flag.as_str() {
            "--format" => {
                format = match value(&flag, &mut rest)?.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    "sarif" => Format::Sarif,
                    "junit" => Format::Junit,
                    other => bail!("--format {other}: give text, json, sarif or junit"),
                }
            }
            "--output" | "-o" => output = Some(PathBuf::from(value(&flag, &mut rest)?)),
            "--fail-on" => {
                let name = value(&flag, &mut rest)?;
                config.fail_on = name
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--fail-on {name}: {e}"))?;
            }
            _ if !flag.starts_with('-') && path.is_none() => path = Some(PathBuf::from(flag)),
            _ => bail!("unknown option {flag}\nusage: {AUDIT_USAGE}"),
        }
    }
    let Some(path) = path else {
        bail!("give PATH\nusage: {AUDIT_USAGE}")
    };
    let ran = kiln_check::run::audit(&path, &config, &common.outputs(None));
    if let Err(e) = &ran.report {
        eprintln!("kiln-audit: cannot report for the fleet: {e:#}");
    }
    let report = match &ran.outcome {
        Ok(report) => report,
        Err(e) => {
            eprintln!("kiln-audit: {e:#}");
            return Ok(i32::from(FAILURE));
        }
    };
    let rendered = report.render(format);
    match &output {
        Some(file) => kiln_tree::write_atomic(file, rendered.as_bytes(), kiln_tree::PUBLIC_FILE)?,
        None => print!("{rendered}"),
    }
    if !common.quiet {
        eprintln!("kiln-audit: {}", report.summary_line());
    }
    Ok(i32::from(ran.code(report.exit_code(AUDIT_FAILED), FAILURE)))
}
