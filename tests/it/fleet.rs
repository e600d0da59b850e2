//! `[fleet]` (issue #18): the units a node gets pass systemd-analyze
//! verify; the commands they run, on the image extracted with its owners
//! (root), write metrics that promtool and the Python prometheus_client
//! parser accept, native journal datagrams with the documented fields
//! (read from a socket the test binds, decoded as journald does), and the
//! Node patch; planted drift (a changed file, a new setuid file) shows in
//! all three, the journal's bound holds, an untrusted manifest is said so.
//! The alerting rules pass `promtool check rules` and their own
//! `promtool test rules`.

use crate::common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DRIFT: &str = "78f15948e9d0417f8edff5fc0ecc0bc4";
const CHECK_DONE: &str = "ecf332467d0c43c5b719d917a84a050e";
const CHECK_FAILED: &str = "8a80975273a84225a326bb56148b3b24";
const AUDIT_FINDING: &str = "86b4a57bfba24e53bdb67ee6ba5e7e52";
const AUDIT_DONE: &str = "8d7b91771acc4399939131ee66f9d0ce";
const UNITS: [&str; 5] = [
    "kiln-check.service",
    "kiln-check.timer",
    "kiln-audit.service",
    "kiln-audit.timer",
    "kiln-node-labels.service",
];

fn keygen(dir: &Path) {
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["keygen", "-o", "keys/release", "--no-password"]),
    );
}

fn recipe(dir: &Path, fleet: &str) {
    std::fs::write(dir.join("k3s"), "#!/bin/sh\necho \"$@\" >/run/k3s-args\n").unwrap();
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"node\"\nversion = \"1.0~rc1\"\n\
             [[file]]\ndest = \"/usr/local/bin/k3s\"\nsource = \"k3s\"\nmode = \"0755\"\n\
             [check]\ntimer = \"hourly\"\n{fleet}"
        ),
    )
    .unwrap();
}

/// The node: a signed build's image extracted with its owners; it has its
/// own signed manifest and trusts the build's key.
struct Node {
    work: tempfile::TempDir,
    /// What arrived at the journal socket, read as it comes (as journald
    /// does: a sender finds the queue full otherwise).
    journal: std::sync::mpsc::Receiver<Vec<(String, String)>>,
}

impl Node {
    fn dir(&self) -> &Path {
        self.work.path()
    }
    fn root(&self) -> PathBuf {
        self.dir().join("root")
    }
    fn unit(&self, name: &str) -> String {
        std::fs::read_to_string(self.root().join("etc/systemd/system").join(name)).unwrap()
    }

    /// Runs a unit's ExecStart as systemd would on the node — the image's
    /// own kiln-node — with image paths inside the extracted root, the textfile directory, /run/kiln and
    /// the journal socket in the test's directory.
    fn run_unit(&self, unit: &str) -> Output {
        let args = self.exec_args(unit, &self.dir().join("journal"));
        Command::new(&args[0]).args(&args[1..]).output().unwrap()
    }

    /// A unit's ExecStart arguments, mapped as [`Node::run_unit`] says.
    fn exec_args(&self, unit: &str, journal: &Path) -> Vec<String> {
        let text = self.unit(unit);
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        let mut args = Vec::new();
        let mut words = exec.split_whitespace();
        while let Some(word) = words.next() {
            let mapped = match word {
                "--journal" => format!("--journal={}", journal.display()),
                "--textfile-dir" => {
                    args.push(word.to_owned());
                    words.next().unwrap();
                    self.dir().join("metrics").display().to_string()
                }
                "/" => self.root().display().to_string(),
                w if w.starts_with("/run/kiln/") => {
                    format!("{}/{}", self.dir().join("run").display(), &w[10..])
                }
                w if w.starts_with('/') => format!("{}{w}", self.root().display()),
                w => w.to_owned(),
            };
            args.push(mapped);
        }
        args
    }

    fn metrics(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join("metrics").join(name)).unwrap()
    }

    /// The journal entries sent since the last call, decoded.
    fn entries(&self) -> Vec<Vec<(String, String)>> {
        // everything was queued when the command ended; the reader
        // thread is done with it when nothing more comes for a while
        let mut entries = Vec::new();
        while let Ok(entry) = self
            .journal
            .recv_timeout(std::time::Duration::from_millis(300))
        {
            entries.push(entry);
        }
        entries
    }
}

fn node(fleet: &str) -> Node {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    keygen(w);
    recipe(w, fleet);
    run_ok(kiln().current_dir(w).args([
        "build",
        "r.toml",
        "-o",
        "dist",
        "--key",
        "keys/release.key",
        "-q",
    ]));
    sh(
        w,
        "mkdir root metrics run && tar --zstd --numeric-owner -xpf dist/node-1.0~rc1.rootfs.tar.zst -C root",
    );
    let socket = UnixDatagram::bind(w.join("journal")).unwrap();
    let (send, journal) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0; 1 << 17];
        while let Ok(n) = socket.recv(&mut buf) {
            if send.send(decode(&buf[..n])).is_err() {
                break;
            }
        }
    });
    Node { work, journal }
}

/// journald's reading of the native protocol: `KEY=value\n`, or `KEY\n`,
/// a 64-bit little-endian length, the value and `\n`.
fn decode(mut data: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let end = data.iter().position(|&b| b == b'\n').unwrap();
        let line = &data[..end];
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.push((text(&line[..eq]), text(&line[eq + 1..])));
            data = &data[end + 1..];
        } else {
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.push((text(line), text(&rest[8..8 + len])));
            assert_eq!(rest[8 + len], b'\n');
            data = &rest[9 + len..];
        }
    }
    for (key, _) in &fields {
        assert!(
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "journald refuses the field name {key:?}"
        );
    }
    fields
}

fn field<'a>(entry: &'a [(String, String)], key: &str) -> Option<&'a str> {
    entry
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn with_id<'a>(entries: &'a [Vec<(String, String)>], id: &str) -> Vec<&'a Vec<(String, String)>> {
    entries
        .iter()
        .filter(|e| field(e, "MESSAGE_ID") == Some(id))
        .collect()
}

/// promtool: on PATH, else where .ci/promtool puts it (taken out of
/// Debian's prometheus package without installing its server).
fn promtool() -> Command {
    let local = repo_root().join("target/tools/promtool");
    if local.is_file() {
        Command::new(local)
    } else {
        Command::new("promtool")
    }
}

/// `promtool check metrics` (the linter node-exporter's authors use) and
/// the official Python client's parser; returns {name{labels}: value}.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    use std::io::Write as _;
    let mut promtool = promtool()
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed: just deps (.ci/promtool) puts it in target/tools");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        output_text(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import prometheus_client"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("prometheus_client is needed: apt-get install python3-prometheus-client");
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = {}\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   assert family.type == 'gauge', family\n\
        \x20   for s in family.samples:\n\
        \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
        \x20       out[s.name + '{' + labels + '}'] = s.value\n\
        print(json.dumps(out))\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus_client refused:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[ignore = "needs root"]
fn fleet_units_verify_and_report_drift_and_audit() {
    require_root("the image extracted with its owners");
    let node = node("[fleet]\n");
    let root = node.root();

    // the units systemd would load, and what enables them
    for unit in UNITS {
        assert!(
            root.join("etc/systemd/system").join(unit).is_file(),
            "{unit}"
        );
    }
    for timer in ["kiln-check.timer", "kiln-audit.timer"] {
        assert_eq!(
            std::fs::read_link(
                root.join("etc/systemd/system/timers.target.wants")
                    .join(timer)
            )
            .unwrap(),
            Path::new("/etc/systemd/system").join(timer)
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join("usr/lib/tmpfiles.d/kiln-fleet.conf")).unwrap(),
        "d /var/lib/prometheus/node-exporter 0755 root root -\n"
    );
    let check = node.unit("kiln-check.service");
    for line in [
        "Nice=19",
        "IOSchedulingClass=idle",
        "CPUQuota=20%",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
        "ReadWritePaths=/var/lib/prometheus/node-exporter",
        "Wants=kiln-node-labels.service",
    ] {
        assert!(check.lines().any(|l| l == line), "{line} in\n{check}");
    }
    assert!(node.unit("kiln-audit.timer").contains("OnBootSec=15min"));
    let units = UNITS.map(|u| root.join("etc/systemd/system").join(u));
    let complaints = crate::node_check::systemd_verify(&root, &units);
    assert!(
        complaints.is_empty(),
        "systemd-analyze complained: {complaints}"
    );

    // a fresh node: no drift, the image in metrics, entry and patch
    let out = node.run_unit("kiln-check.service");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let manifest_sha = sha256_file(&root.join("usr/lib/kiln/manifest.json"));
    // the release manifest lists the image's own, digest and all
    let release: serde_json::Value = serde_json::from_slice(
        &std::fs::read(node.dir().join("dist/node-1.0~rc1.manifest.json")).unwrap(),
    )
    .unwrap();
    let listed = release["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/usr/lib/kiln/manifest.json")
        .expect("the release manifest lists the image's own");
    assert_eq!(listed["sha256"], manifest_sha.as_str());
    let m = parse_metrics(&node.metrics("kiln_check.prom"));
    assert_eq!(
        m[&format!(
            "kiln_image_info{{arch=amd64,image=node,manifest_sha256={manifest_sha},version=1.0~rc1}}"
        )],
        1.0,
        "{m:?}"
    );
    assert_eq!(m["kiln_check_manifest_verified{}"], 1.0);
    assert_eq!(m["kiln_check_success{}"], 1.0);
    assert_eq!(m["kiln_check_drift_events{kind=modified}"], 0.0);
    assert!(
        m.contains_key("kiln_image_build_timestamp_seconds{}"),
        "{m:?}"
    );
    let entries = node.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(field(&entries[0], "MESSAGE_ID"), Some(CHECK_DONE));
    assert_eq!(field(&entries[0], "KILN_DRIFT_EVENTS"), Some("0"));
    assert_eq!(
        field(&entries[0], "KILN_MANIFEST_SHA256"),
        Some(manifest_sha.as_str())
    );
    assert_eq!(field(&entries[0], "SYSLOG_IDENTIFIER"), Some("kiln"));
    let patch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.dir().join("run/node-patch.json")).unwrap())
            .unwrap();
    let labels = &patch["metadata"]["labels"];
    assert_eq!(labels["kiln.dev/version"], "1.0_rc1", "{patch}");
    assert_eq!(labels["kiln.dev/drift"], "false");
    assert_eq!(
        patch["metadata"]["annotations"]["kiln.dev/manifest-sha256"],
        manifest_sha.as_str()
    );

    // planted drift: a changed file and a new setuid file
    std::fs::write(root.join("usr/local/bin/k3s"), "#!/bin/sh\nexec /bin/sh\n").unwrap();
    sh(
        &root,
        "printf x > usr/local/bin/helper && chmod 4755 usr/local/bin/helper",
    );
    let out = node.run_unit("kiln-check.service");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let m = parse_metrics(&node.metrics("kiln_check.prom"));
    assert_eq!(m["kiln_check_drift_events{kind=modified}"], 1.0, "{m:?}");
    assert_eq!(m["kiln_check_drift_events{kind=added}"], 1.0, "{m:?}");
    let entries = node.entries();
    let drift = with_id(&entries, DRIFT);
    let found: Vec<(Option<&str>, Option<&str>)> = drift
        .iter()
        .map(|e| (field(e, "KILN_EVENT"), field(e, "KILN_PATH")))
        .collect();
    assert_eq!(
        found,
        [
            (Some("added"), Some("/usr/local/bin/helper")),
            (Some("modified"), Some("/usr/local/bin/k3s")),
        ]
    );
    assert_eq!(field(drift[0], "KILN_FOUND"), Some("file"));
    assert_eq!(field(drift[0], "PRIORITY"), Some("4"));
    assert_eq!(
        field(with_id(&entries, CHECK_DONE)[0], "KILN_DRIFT_EVENTS"),
        Some("2")
    );
    let patch = std::fs::read_to_string(node.dir().join("run/node-patch.json")).unwrap();
    assert!(
        patch.contains("\"kiln.dev/drift\":\"true\""),
        "{patch} {out:?}"
    );

    // a node that drifted wholesale: at most 100 entries, the rest counted
    sh(
        &root,
        "mkdir usr/local/many && for i in $(seq 150); do : > usr/local/many/$i; done",
    );
    assert_eq!(node.run_unit("kiln-check.service").status.code(), Some(4));
    let entries = node.entries();
    assert_eq!(with_id(&entries, DRIFT).len(), 100);
    let summary = with_id(&entries, CHECK_DONE)[0];
    assert_eq!(field(summary, "KILN_DRIFT_EVENTS"), Some("153"));
    assert_eq!(field(summary, "KILN_NOT_LOGGED"), Some("53"));
    assert!(field(summary, "MESSAGE").unwrap().contains("53 not logged"));

    // the audit of the live root: findings by severity and rule
    let out = node.run_unit("kiln-audit.service");
    assert!(matches!(out.status.code(), Some(0 | 5)), "{out:?}");
    let m = parse_metrics(&node.metrics("kiln_audit.prom"));
    assert_eq!(m["kiln_audit_success{}"], 1.0);
    let failed: f64 = ["critical", "high", "medium", "low"]
        .iter()
        .map(|s| m[&format!("kiln_audit_failed_rules{{severity={s}}}")])
        .sum();
    assert!(failed > 0.0, "this bare test image fails rules: {m:?}");
    assert!(
        m.keys().any(|k| k.starts_with("kiln_audit_findings{rule=")),
        "{m:?}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.dir().join("run/audit.json")).unwrap()).unwrap();
    assert!(report["results"].is_array());
    let entries = node.entries();
    let findings = with_id(&entries, AUDIT_FINDING);
    assert!(!findings.is_empty());
    for f in &findings {
        assert!(
            field(f, "KILN_RULE").is_some() && field(f, "KILN_SEVERITY").is_some(),
            "{f:?}"
        );
    }
    let done = with_id(&entries, AUDIT_DONE);
    assert_eq!(done.len(), 1);
    assert_eq!(
        field(done[0], "KILN_FAILED_RULES").map(|n| n.parse::<f64>().unwrap()),
        Some(failed)
    );

    // an untrusted manifest: said so everywhere, nothing unverified shown
    std::fs::write(root.join("usr/lib/kiln/manifest.json.minisig"), "junk").unwrap();
    let out = node.run_unit("kiln-check.service");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let m = parse_metrics(&node.metrics("kiln_check.prom"));
    assert_eq!(m["kiln_check_manifest_verified{}"], 0.0);
    assert!(!m.keys().any(|k| k.starts_with("kiln_image_info")), "{m:?}");
    let entries = node.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(field(&entries[0], "MESSAGE_ID"), Some(CHECK_FAILED));
    assert_eq!(field(&entries[0], "KILN_VERIFIED"), Some("0"));
    let patch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.dir().join("run/node-patch.json")).unwrap())
            .unwrap();
    assert_eq!(
        patch["metadata"]["labels"]["kiln.dev/version"],
        serde_json::Value::Null
    );
    assert_eq!(
        patch["metadata"]["annotations"]["kiln.dev/manifest-verified"],
        "false"
    );
}

/// journald itself reads kiln's datagrams: systemd-journald started in a
/// mount namespace of its own (a tmpfs on /run, volatile storage, no
/// kernel log), the check's command run against it, `journalctl -o json`
/// read back; a path with a line feed takes the binary-safe form.
#[test]
#[ignore = "needs root"]
fn journald_reads_the_entries_back() {
    require_root("a mount namespace for journald");
    let node = node("[fleet]\n");
    let root = node.root();
    std::fs::write(root.join("usr/local/bin/k3s"), "changed\n").unwrap();
    std::fs::write(root.join("usr/local/bin/two\nlines"), "").unwrap();
    let args = node.exec_args(
        "kiln-check.service",
        Path::new("/run/systemd/journal/socket"),
    );
    let conf = node.dir().join("journald.conf");
    std::fs::write(
        &conf,
        "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToWall=no\nForwardToConsole=no\n",
    )
    .unwrap();
    let kiln_args: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal\n\
         mount --bind '{conf}' /etc/systemd/journald.conf\n\
         /lib/systemd/systemd-journald & journald=$!\n\
         for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done\n\
         {args} >/dev/null && exit 9 || [ $? = 4 ]\n\
         journalctl --sync\n\
         journalctl -o json --no-pager SYSLOG_IDENTIFIER=kiln >'{out}'\n\
         kill $journald\n",
        conf = conf.display(),
        args = kiln_args.join(" "),
        out = node.dir().join("journal.json").display(),
    );
    run_ok(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-euc", &script]));
    let text = std::fs::read_to_string(node.dir().join("journal.json")).unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let drift: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["MESSAGE_ID"] == DRIFT)
        .collect();
    let paths: Vec<&str> = drift
        .iter()
        .map(|e| e["KILN_PATH"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/usr/local/bin/k3s", "/usr/local/bin/two\nlines"],
        "{text}"
    );
    assert_eq!(drift[0]["KILN_EVENT"], "modified");
    assert_eq!(drift[1]["KILN_EVENT"], "added");
    assert_eq!(drift[0]["_TRANSPORT"], "journal", "the native protocol");
    assert_eq!(drift[0]["PRIORITY"], "4");
    assert_eq!(drift[0]["KILN_VERSION"], "1.0~rc1");
    assert!(drift[1]["MESSAGE"].as_str().unwrap().contains("two\nlines"));
    let done: Vec<_> = entries
        .iter()
        .filter(|e| e["MESSAGE_ID"] == CHECK_DONE)
        .collect();
    assert_eq!(done.len(), 1, "{text}");
    assert_eq!(done[0]["KILN_DRIFT_EVENTS"], "2");
}

#[test]
#[ignore = "needs root"]
fn fleet_settings_shape_the_units() {
    require_root("the image extracted with its owners");
    let node = node(
        "[fleet]\naudit = \"weekly\"\nafter_boot = \"1h\"\ntextfile_dir = \"\"\njournal = false\n\
         node_labels = false\ncpu_quota = \"5%\"\n",
    );
    let check = node.unit("kiln-check.service");
    assert!(
        !check.contains("--textfile-dir") && !check.contains("--journal"),
        "{check}"
    );
    assert!(
        !check.contains("node-patch") && check.contains("CPUQuota=5%"),
        "{check}"
    );
    assert!(
        node.unit("kiln-audit.timer")
            .contains("OnCalendar=weekly\nOnBootSec=1h\n")
    );
    assert!(
        !node
            .root()
            .join("etc/systemd/system/kiln-node-labels.service")
            .exists()
    );
    assert!(
        !node
            .root()
            .join("usr/lib/tmpfiles.d/kiln-fleet.conf")
            .exists()
    );
    // without reporting, the check still runs
    assert_eq!(node.run_unit("kiln-check.service").status.code(), Some(0));
}

#[test]
fn fleet_recipe_errors_say_what_to_write() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    keygen(w);
    for (fleet, said) in [
        (
            "[fleet]\ncpu_quota = \"200%\"\n",
            "r.toml:13:13: cpu_quota \"200%\" must be a percentage of one CPU from 1% to 100%, like \"20%\"",
        ),
        (
            "[fleet]\ntextfile_dir = \"/etc/metrics\"\n",
            "r.toml:13:16: textfile_dir \"/etc/metrics\" must be a directory below /var or /run",
        ),
        (
            "[fleet]\nafter_boot = \"5min; rm\"\n",
            "r.toml:13:14: after_boot \"5min; rm\" is not a systemd time span: write one like \"15min\"",
        ),
        (
            "[fleet]\naudit = \"daily\\n[Service]\"\n",
            "r.toml:13:9: audit must be a systemd value on one line, like \"daily\"",
        ),
        (
            "[fleet]\nnode_label = true\n",
            "r.toml:13:1: unknown field \"node_label\", did you mean \"node_labels\"?",
        ),
    ] {
        recipe(w, fleet);
        let out = kiln()
            .current_dir(w)
            .args(["build", "r.toml", "-o", "dist"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{fleet}: {stderr}");
        assert!(stderr.contains(said), "{fleet}: {stderr}");
    }
}

#[test]
fn the_alerting_rules_pass_promtool() {
    let dir = repo_root().join("monitoring");
    run_ok(
        promtool()
            .args(["check", "rules", "kiln-alerts.yml"])
            .current_dir(&dir),
    );
    run_ok(
        promtool()
            .args(["test", "rules", "kiln-alerts.test.yml"])
            .current_dir(&dir),
    );
}

/// A node that stops reporting must not look healthy: metrics that cannot
/// be written fail the run (exit 1, saying why); without a journal socket
/// the entries are stderr lines.
#[test]
fn a_report_that_cannot_be_written_fails_the_run() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::create_dir(w.join("root")).unwrap();
    let audit = |report: &[&str]| {
        let out = kiln()
            .current_dir(w)
            .args(["audit", "root", "--fail-on", "none"])
            .args(report)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = audit(&["--textfile-dir", "missing"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: cannot report for the fleet: cannot write to missing"),
        "{stderr}"
    );
    let (code, stderr) = audit(&["--journal=no-socket", "-q"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("kiln: audit: fw.")
            && l.contains(" MESSAGE_ID=\"86b4a57bfba24e53bdb67ee6ba5e7e52\" KILN_RULE=\"fw.")),
        "{stderr}"
    );
    assert!(
        stderr.contains("MESSAGE_ID=\"8d7b91771acc4399939131ee66f9d0ce\""),
        "{stderr}"
    );
}
