//! The rule catalogue, one module per group. docs/rules.md is generated
//! from it ([`reference_markdown`]), with what each source key means
//! (ssh.match is kiln's own: Match blocks flagged for review).
//! Applicability, per group:
//!
//! - k3s.*: not applicable without K3s (no k3s binary, /etc/rancher,
//!   /var/lib/rancher/k3s or k3s unit).
//! - fw.*: always applicable; every fw rule fails when /etc/nftables.conf
//!   is absent, since this product requires default-deny.
//! - ssh.*: not applicable without /usr/sbin/sshd.
//! - sys.* (but kiln-effective), fs.setuid, fs.world-writable,
//!   fs.devices, pkg.*, acct.trust-files: always applicable.
//! - sys.kiln-effective: not applicable without kiln's sysctl files.
//! - fs.unowned and acct.* (but trust-files): not applicable without
//!   /etc/passwd.
//! - img.*, ssh.no-host-keys, k3s.no-node-identity, k3s.no-baked-token:
//!   about what an image must not carry; not applicable on a live node,
//!   which has its own identity.

mod acct;
mod fim;
mod fs;
mod fw;
mod img;
mod k3s;
mod pkg;
mod ssh;
mod sys;

use super::{Check, Ctx, Finding, RuleInfo, Severity};

pub struct Rule {
    pub info: RuleInfo,
    pub check: fn(&Ctx) -> Check,
}

/// Every rule, grouped as the reference lists them.
pub fn all() -> impl Iterator<Item = &'static Rule> {
    k3s::RULES
        .iter()
        .chain(fw::RULES)
        .chain(ssh::RULES)
        .chain(sys::RULES)
        .chain(fs::RULES)
        .chain(acct::RULES)
        .chain(pkg::RULES)
        .chain(img::RULES)
        .chain(fim::RULES)
}

macro_rules! rule {
    (
        $id:literal, $severity:ident, $check:path,
        title: $title:literal,
        source: $source:literal,
        rationale: $rationale:literal,
        remediation: $remediation:literal $(,)?
    ) => {
        $crate::audit::rules::Rule {
            info: $crate::audit::RuleInfo {
                id: $id,
                title: $title,
                severity: $crate::audit::Severity::$severity,
                rationale: $rationale,
                remediation: $remediation,
                source: $source,
            },
            check: $check,
        }
    };
}
pub(crate) use rule;

fn findings(found: Vec<Finding>) -> Check {
    Check::Findings(found)
}

fn not_applicable(reason: impl Into<String>) -> Check {
    Check::NotApplicable(reason.into())
}

/// Checks owner and mode of what `path` leads to: no permission bit
/// outside `max_mode`, owner uid 0, group among `gids`.
fn owner_mode(ctx: &Ctx, path: &str, max_mode: u32, gids: &[u32], out: &mut Vec<Finding>) {
    let Some((_, entry)) = ctx.img.stat(path) else {
        return;
    };
    let m = &entry.meta;
    let value = format!("{:04o} {}:{}", m.mode & 0o7777, m.uid, m.gid);
    if m.mode & 0o7777 & !max_mode != 0 {
        out.push(Finding::new(
            path,
            value.clone(),
            format!(
                "mode {:04o} allows more than {max_mode:04o}",
                m.mode & 0o7777
            ),
        ));
    }
    if m.uid != 0 {
        out.push(Finding::new(
            path,
            value.clone(),
            format!("owned by uid {}, not root", m.uid),
        ));
    }
    if !gids.contains(&m.gid) {
        out.push(Finding::new(
            path,
            value,
            format!("group is gid {}, expected {gids:?}", m.gid),
        ));
    }
}

/// The image's systemd unit directories, most specific first.
use crate::units::SEARCH as UNIT_DIRS;

/// Unit files (and drop-ins) whose name matches `wanted`.
fn unit_files(ctx: &Ctx, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for dir in UNIT_DIRS {
        for (name, path) in ctx.img.list_dir(dir) {
            if wanted(&name) {
                if ctx.img.is_dir(path.as_str()) {
                    for (_, inner) in ctx.img.list_dir(path.as_str()) {
                        if ctx.img.is_file(inner.as_str()) {
                            out.push(inner.as_str().to_owned());
                        }
                    }
                } else if ctx.img.is_file(path.as_str()) {
                    out.push(path.as_str().to_owned());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The integer a sysctl-like value holds.
fn int(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

/// A sysctl key, what it should be (for messages), and the test.
type SysctlWant = (&'static str, &'static str, fn(i64) -> bool);

/// Findings for sysctl keys whose effective value fails its test. An unset
/// key is reported at `unset_path`, "KEY {unset_note}; expected …".
fn sysctl_findings(
    ctx: &Ctx,
    wanted: &[SysctlWant],
    unset_path: &str,
    unset_note: &str,
) -> Vec<Finding> {
    let sysctl = ctx.sysctl();
    wanted
        .iter()
        .filter_map(|(key, expected, ok)| match sysctl.get(key) {
            None => Some(Finding::new(
                unset_path,
                format!("{key} unset"),
                format!("{key} {unset_note}; expected {expected}"),
            )),
            Some(a) if int(&a.value).is_some_and(ok) => None,
            Some(a) => Some(
                Finding::new(
                    a.path.clone(),
                    format!("{key} = {}", a.value),
                    format!("expected {key} = {expected}"),
                )
                .at_line(a.line),
            ),
        })
        .collect()
}

/// A group of rules as the reference presents it: the id prefix, what
/// the rules look at, and when they are not applicable.
struct Group {
    prefix: &'static str,
    subject: &'static str,
    not_applicable: &'static str,
}

const GROUPS: &[Group] = &[
    Group {
        prefix: "k3s",
        subject: "the K3s agent: its merged configuration (config.yaml, config.yaml.d and the unit's flags), its files, and the kernel settings and modules it needs",
        not_applicable: "when K3s is absent (no k3s binary, /etc/rancher/k3s, /etc/rancher/node, /var/lib/rancher/k3s or k3s unit), and k3s.no-baked-token and k3s.no-node-identity on a live node",
    },
    Group {
        prefix: "fw",
        subject: "the nftables ruleset loaded at boot (/etc/nftables.conf)",
        not_applicable: "never; without /etc/nftables.conf every fw rule fails, since a node must deny by default",
    },
    Group {
        prefix: "ssh",
        subject: "the OpenSSH server: its effective configuration, host keys and moduli",
        not_applicable: "when sshd is not installed, and ssh.no-host-keys on a live node",
    },
    Group {
        prefix: "sys",
        subject: "kernel and network parameters in effect at boot, computed over sysctl.d as systemd-sysctl does; a key no file sets fails",
        not_applicable: "sys.kiln-effective when the image has none of kiln's sysctl files; the others never",
    },
    Group {
        prefix: "fs",
        subject: "setuid/setgid, world-writable and unowned files, and device nodes outside /dev, over the whole tree",
        not_applicable: "fs.unowned when the image has no /etc/passwd; the others never",
    },
    Group {
        prefix: "acct",
        subject: "the account databases (passwd, shadow, group, gshadow) and trust files",
        not_applicable: "when the image has no /etc/passwd (acct.trust-files always applies)",
    },
    Group {
        prefix: "pkg",
        subject: "software an immutable node should not carry, in the dpkg database and on disk",
        not_applicable: "never",
    },
    Group {
        prefix: "img",
        subject: "per-node identity that must not be cloned with the image",
        not_applicable: "on a live node, which has its own identity",
    },
    Group {
        prefix: "fim",
        subject: "file-integrity monitoring against the signed manifest",
        not_applicable: "never",
    },
];

/// The documents the `source` of a rule cites, by the first word of each
/// of its parts (parts are separated by `;`, `,` or `+`; `KB/SA` cites
/// both). A test keeps every rule's keys listed here.
const SOURCES: &[(&str, &str)] = &[
    (
        "HG",
        "K3s CIS Hardening Guide (K3s documentation, security/hardening-guide): the agent configuration it prescribes",
    ),
    (
        "SA",
        "K3s CIS self-assessment (K3s documentation, security/self-assessment): the K3s-specific answer to a CIS Kubernetes Benchmark check, by number (`SA 4.2.14`)",
    ),
    (
        "KB",
        "kube-bench's K3s node checks (cfg/k3s-cis-1.9 and cfg/k3s-cis-1.24, node.yaml), by CIS Kubernetes Benchmark number: 4.2.x the kubelet, 4.3.x kube-proxy; `KB/SA 4.2.1` is the same check in both",
    ),
    (
        "REQ",
        "K3s documentation, installation requirements: the ports an agent uses and from where (with the networking options page for flannel's backends)",
    ),
    (
        "TOK",
        "K3s documentation, `k3s token`: join tokens are secrets handed to a node when it is provisioned",
    ),
    (
        "SYS",
        "K3s source, the agent's system setup (pkg/agent/syssetup): the kernel modules it loads and the sysctls it sets",
    ),
    (
        "kubelet",
        "kubelet source (setupKernelTunables): the kernel tunables the kubelet expects with protect-kernel-defaults",
    ),
    (
        "CIS",
        "CIS Debian Linux 12 Benchmark, by recommendation number (as ComplianceAsCode's draft cis_debian12 control file maps them); `3.3.x` is a whole section, `5.1.9-22` a range",
    ),
    (
        "DS",
        "dev-sec ssh-baseline (InSpec profile), by control id (`sshd-27`)",
    ),
    (
        "DL",
        "dev-sec linux-baseline (InSpec profile), by control id (`os-01`, `package-*`)",
    ),
    (
        "DA",
        "dev-sec ansible-collection-hardening, role os_hardening: its sysctl settings and setuid allow/block lists",
    ),
    (
        "SAP",
        "ssh-audit's built-in policy \"Hardened Debian 12 (version 3)\": the allowed key exchanges, ciphers, MACs and host key algorithms",
    ),
    (
        "ssh-audit",
        "ssh-audit's hardening guides: moduli below 3072 bits removed",
    ),
    ("LY", "Lynis, by test id (`SSH-7408`, `HRDN-7220`)"),
    (
        "k0s",
        "k0s issue 2908: `flush ruleset` in nftables.conf wiped the Kubernetes networking tables",
    ),
    (
        "diskimage-builder",
        "OpenStack diskimage-builder, element runtime-ssh-host-keys: host keys generated at first boot, not in the image",
    ),
    (
        "systemd",
        "systemd's machine-id(5) manual page: an empty /etc/machine-id is filled at first boot",
    ),
    (
        "AIDE",
        "AIDE's file attributes (p i l n u g s m: permissions, inode, link target, link count, user, group, size, mtime; sha256, capabilities, xattrs): what a file-integrity baseline records",
    ),
    (
        "Bottlerocket",
        "Bottlerocket OS as precedent: an immutable container host ships no package manager",
    ),
    (
        "seed",
        "the product's security requirements for K3s agent nodes: the kubelet port reachable from the control plane only, the agent API not exposed",
    ),
    (
        "inference",
        "kiln's own rule, inferred from the sources above rather than stated by one (a node's identity files must not be shared by every node)",
    ),
    (
        "kiln",
        "kiln's own rule, stated in parentheses (`kiln (sshd_config(5) Match)`)",
    ),
];

/// GitHub's anchor for a heading: lower case, letters, digits, `-` and
/// `_` kept, spaces made `-`, everything else dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Prose for Markdown: outside `code spans`, `*`, `<` and a `_` that is
/// not inside a word are escaped, so that paths such as `ssh_host_*` or
/// `*.forwarding` read as written.
fn prose(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        if c == '`' {
            in_code = !in_code;
        }
        let intraword = word(i.checked_sub(1)) && word(Some(i + 1));
        let escape = match c {
            '*' | '<' => true,
            '_' => !intraword,
            _ => false,
        };
        if escape && !in_code {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Prose for a Markdown table cell.
fn cell(text: &str) -> String {
    prose(text).replace('|', "\\|")
}

/// The rule reference, docs/rules.md: an introduction, the source
/// documents, a table of contents by group, then every rule with its
/// severity, title, rationale, remediation and source.
pub fn reference_markdown() -> String {
    use std::fmt::Write as _;

    let rules: Vec<&RuleInfo> = all().map(|r| &r.info).collect();
    let in_group = |prefix: &str| -> Vec<&RuleInfo> {
        rules
            .iter()
            .copied()
            .filter(|r| r.group() == prefix)
            .collect()
    };
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "# Audit rules\n");
    let _ = writeln!(
        o,
        "<!-- Generated from the rule catalogue (crates/policy/src/audit/rules/) by \
         kiln_policy::audit::rules::reference_markdown(); do not edit by hand. \
         Regenerate with: KILN_BLESS=1 cargo test -p kiln-policy --test rules_doc -->\n"
    );
    let by_severity: Vec<String> = Severity::ALL
        .iter()
        .map(|sev| {
            let n = rules.iter().filter(|r| r.severity == *sev).count();
            format!("{n} {sev}")
        })
        .collect();
    let _ = writeln!(
        o,
        "`kiln audit` checks an image, a rootfs directory or a running node against {} rules \
         in {} groups ({}). Each rule has a stable id (ids never change once shipped; new checks \
         get new ids), a severity, a title, the rationale, the remediation, and the source it \
         comes from. `kiln audit --list-rules` prints the ids, severities and titles; \
         [audit.md](audit.md) explains how the configurations are read, the gate (`fail_on`, \
         waivers) and the reports.\n",
        rules.len(),
        GROUPS.len(),
        by_severity.join(", ")
    );
    let _ = writeln!(
        o,
        "A rule passes, fails with findings (a path, the offending value and a message), or is \
         not applicable when its subject is absent. The gate fails when a failed rule's severity \
         is at or above `fail_on` (default `high`) and no waiver covers it.\n"
    );

    let _ = writeln!(o, "## Sources\n");
    let _ = writeln!(
        o,
        "A rule's source names where the requirement comes from: keys separated by `;`, \
         each followed by the document's own check or section number where it has one \
         (`HG; KB 4.2.6` is the K3s CIS Hardening Guide and kube-bench check 4.2.6).\n"
    );
    let _ = writeln!(o, "| key | document |\n|---|---|");
    for (key, document) in SOURCES {
        let _ = writeln!(o, "| `{key}` | {} |", cell(document));
    }
    let _ = writeln!(o);

    let _ = writeln!(o, "## Contents\n");
    let _ = writeln!(o, "| group | rules | subject |\n|---|---|---|");
    for group in GROUPS {
        let heading = format!("{}.*", group.prefix);
        let _ = writeln!(
            o,
            "| [`{heading}`](#{}) | {} | {} |",
            anchor(&heading),
            in_group(group.prefix).len(),
            cell(group.subject)
        );
    }

    for group in GROUPS {
        let members = in_group(group.prefix);
        let _ = writeln!(o, "\n## `{}.*`\n", group.prefix);
        let _ = writeln!(
            o,
            "{}.\n\n**Not applicable:** {}.\n",
            capitalised(group.subject),
            group.not_applicable
        );
        let _ = writeln!(o, "| id | severity | title |\n|---|---|---|");
        for rule in &members {
            let _ = writeln!(
                o,
                "| [`{}`](#{}) | {} | {} |",
                rule.id,
                anchor(rule.id),
                rule.severity,
                cell(rule.title)
            );
        }
        for rule in &members {
            let _ = writeln!(o, "\n### {}\n", rule.id);
            let _ = writeln!(o, "- **Title:** {}", prose(rule.title));
            let _ = writeln!(o, "- **Severity:** {}", rule.severity);
            let _ = writeln!(o, "- **Rationale:** {}", prose(rule.rationale));
            let _ = writeln!(o, "- **Remediation:** {}", prose(rule.remediation));
            let _ = writeln!(o, "- **Source:** `{}`", rule.source);
        }
    }
    out
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a rule's `source` cites: the first word of each part, with
    /// `KB/SA` read as both; parts that start with a digit continue the
    /// previous key's numbers (`CIS 5.4.2.x, 7.2.5-8`).
    fn source_keys(source: &str) -> Vec<&str> {
        let mut keys = Vec::new();
        for part in source.split([';', ',', '+']) {
            let Some(word) = part.split_whitespace().next() else {
                continue;
            };
            if word.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            keys.extend(word.split('/'));
        }
        keys
    }

    #[test]
    fn every_rule_is_in_a_documented_group() {
        for rule in all() {
            assert!(
                GROUPS.iter().any(|g| g.prefix == rule.info.group()),
                "{}: add its group to GROUPS",
                rule.info.id
            );
        }
    }

    #[test]
    fn every_source_key_is_explained() {
        for rule in all() {
            let keys = source_keys(rule.info.source);
            assert!(!keys.is_empty(), "{}: no source", rule.info.id);
            for key in keys {
                assert!(
                    SOURCES.iter().any(|(k, _)| *k == key),
                    "{}: source key {key:?} (in {:?}) is not in SOURCES",
                    rule.info.id,
                    rule.info.source
                );
            }
        }
        for (key, _) in SOURCES {
            assert!(
                all().any(|r| source_keys(r.info.source).contains(key)),
                "SOURCES lists {key:?}, which no rule cites"
            );
        }
    }

    #[test]
    fn source_keys_split_parts() {
        assert_eq!(source_keys("HG; KB 4.2.6"), ["HG", "KB"]);
        assert_eq!(source_keys("KB/SA 4.2.1"), ["KB", "SA"]);
        assert_eq!(source_keys("CIS 5.4.2.x, 7.2.5-8"), ["CIS"]);
        assert_eq!(source_keys("seed + REQ"), ["seed", "REQ"]);
        assert_eq!(source_keys("kiln (sshd_config(5) Match)"), ["kiln"]);
    }

    #[test]
    fn prose_escapes_emphasis_outside_code() {
        assert_eq!(
            prose("ip*tables and *.forwarding, `a_*_b` iptable_* br_netfilter <x>"),
            "ip\\*tables and \\*.forwarding, `a_*_b` iptable\\_\\* br_netfilter \\<x>"
        );
    }

    #[test]
    fn anchors_follow_github() {
        assert_eq!(
            anchor("k3s.protect-kernel-defaults"),
            "k3sprotect-kernel-defaults"
        );
        assert_eq!(anchor("k3s.*"), "k3s");
    }
}
