//! The kernel parameters an image sets at boot, with the precedence of
//! `sysctl --system` and systemd-sysctl: `*.conf` files from
//! /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d
//! and /lib/sysctl.d are read in the order of their file names (a name in
//! an earlier directory hides the same name in later ones; a file linked to
//! /dev/null masks it), later assignments override earlier ones, and
//! /etc/sysctl.conf is read last. Keys may use `/` as separator; a leading
//! `-` (ignore errors) is dropped. A key with a glob (`net.ipv4.conf.*.x`)
//! applies to the keys it matches unless they are set explicitly, as
//! systemd-sysctl does.

use super::image::Image;
use std::collections::BTreeMap;

pub const DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];
pub const SYSCTL_CONF: &str = "/etc/sysctl.conf";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    pub path: String,
    pub line: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Sysctl {
    /// Files read, in order.
    pub files: Vec<String>,
    /// Every assignment, in reading order.
    pub all: Vec<Assignment>,
    explicit: BTreeMap<String, usize>,
    globs: Vec<usize>,
}

impl Sysctl {
    pub fn load(image: &Image) -> Sysctl {
        let mut by_name: BTreeMap<String, String> = BTreeMap::new();
        for dir in DIRS {
            for (name, path) in image.list_dir(dir) {
                if name.ends_with(".conf") {
                    by_name
                        .entry(name)
                        .or_insert_with(|| path.as_str().to_owned());
                }
            }
        }
        let mut sysctl = Sysctl::default();
        for path in by_name.into_values() {
            let masked = image
                .resolve(&path)
                .is_some_and(|p| p.as_str() == "/dev/null");
            if masked || !image.is_file(&path) {
                continue;
            }
            let text = image.read_text(&path).unwrap_or_default();
            sysctl.add_file(&path, &text);
        }
        if image.is_file(SYSCTL_CONF) {
            let text = image.read_text(SYSCTL_CONF).unwrap_or_default();
            sysctl.add_file(SYSCTL_CONF, &text);
        }
        sysctl
    }

    pub fn add_file(&mut self, path: &str, text: &str) {
        self.files.push(path.to_owned());
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = normalise_key(key.trim().trim_start_matches('-'));
            if key.is_empty() {
                continue;
            }
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let i = self.all.len();
            if key.contains(['*', '?', '[']) {
                self.globs.push(i);
            } else {
                self.explicit.insert(key.clone(), i);
            }
            self.all.push(Assignment {
                key,
                value,
                path: path.to_owned(),
                line: index as u32 + 1,
            });
        }
    }

    /// The value `key` gets at boot, if any file sets it.
    pub fn get(&self, key: &str) -> Option<&Assignment> {
        if let Some(&i) = self.explicit.get(key) {
            return Some(&self.all[i]);
        }
        self.globs
            .iter()
            .rev()
            .map(|&i| &self.all[i])
            .find(|a| glob_match(&a.key, key))
    }

    /// Every key set explicitly, with its effective assignment.
    pub fn explicit(&self) -> impl Iterator<Item = &Assignment> {
        self.explicit.values().map(|&i| &self.all[i])
    }

    /// Glob assignments still in effect.
    pub fn globs(&self) -> impl Iterator<Item = &Assignment> {
        self.globs.iter().map(|&i| &self.all[i])
    }
}

/// `net/ipv4/ip_forward` → `net.ipv4.ip_forward`: when the first
/// separator is `/`, slashes and dots swap (so interface names with dots
/// survive), as sysctl.d(5) says.
pub fn normalise_key(key: &str) -> String {
    let first = key.find(['.', '/']);
    match first.map(|i| key.as_bytes()[i]) {
        Some(b'/') => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                other => other,
            })
            .collect(),
        _ => key.to_owned(),
    }
}

/// fnmatch-style `*`/`?` over a dotted key.
pub use crate::wildcard::matches as glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stricter_values_are_not_weaker() {
        assert!(weakens("kernel.yama.ptrace_scope", "2").is_none());
        assert!(weakens("kernel.yama.ptrace_scope", "0").is_some());
        assert!(weakens("kernel.sysrq", "176").is_some());
        assert!(weakens("vm.swappiness", "10").is_none());
        assert!(is_forwarding("net.ipv6.conf.eth0.forwarding"));
        assert_eq!(kubelet_value("kernel.panic"), Some("10"));
    }

    #[test]
    fn later_assignments_win_and_globs_yield_to_explicit_keys() {
        let mut s = Sysctl::default();
        s.add_file(
            "/usr/lib/sysctl.d/50-default.conf",
            "net.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter = 2\n",
        );
        s.add_file(
            "/etc/sysctl.d/90-x.conf",
            "net/ipv4/conf/all/rp_filter=1\n; comment\nkernel.x = a   b\n",
        );
        assert_eq!(s.get("net.ipv4.conf.all.rp_filter").unwrap().value, "1");
        assert_eq!(s.get("net.ipv4.conf.default.rp_filter").unwrap().value, "2");
        assert_eq!(s.get("kernel.x").unwrap().value, "a b");
        assert_eq!(s.get("kernel.y"), None);
    }

    #[test]
    fn slash_keys_swap_separators() {
        assert_eq!(
            normalise_key("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(normalise_key("kernel.sysrq"), "kernel.sysrq");
    }
}

// kiln's values: what the kubelet insists on, the hardening it adds, and
// the forwarding K3s needs.

pub const KUBELET_FILE: &str = "/etc/sysctl.d/90-kubelet.conf";
pub const HARDENING_FILE: &str = "/etc/sysctl.d/91-kiln-hardening.conf";
pub const MODULES_FILE: &str = "/etc/modules-load.d/kiln.conf";

/// What the kubelet checks with protect-kernel-defaults (setupKernelTunables).
pub const KUBELET: &[(&str, &str)] = &[
    ("vm.panic_on_oom", "0"),
    ("vm.overcommit_memory", "1"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    ("kernel.keys.root_maxkeys", "1000000"),
    ("kernel.keys.root_maxbytes", "25000000"),
];

/// How a hardened value may change without weakening it.
#[derive(Clone, Copy)]
pub enum Dir {
    /// Only this value.
    Exact,
    /// This value or more.
    AtLeast,
}

/// kiln's hardening values (CIS Debian 12 section 3, dev-sec, ansible
/// os_hardening), none of which conflicts with K3s.
pub const HARDENING: &[(&str, &str, Dir)] = &[
    ("net.ipv4.conf.all.rp_filter", "1", Dir::Exact),
    ("net.ipv4.conf.default.rp_filter", "1", Dir::Exact),
    ("net.ipv4.conf.all.accept_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.default.accept_redirects", "0", Dir::Exact),
    ("net.ipv6.conf.all.accept_redirects", "0", Dir::Exact),
    ("net.ipv6.conf.default.accept_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.all.secure_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.default.secure_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.all.send_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.default.send_redirects", "0", Dir::Exact),
    ("net.ipv4.conf.all.accept_source_route", "0", Dir::Exact),
    ("net.ipv4.conf.default.accept_source_route", "0", Dir::Exact),
    ("net.ipv6.conf.all.accept_source_route", "0", Dir::Exact),
    ("net.ipv6.conf.default.accept_source_route", "0", Dir::Exact),
    ("net.ipv4.conf.all.log_martians", "1", Dir::Exact),
    ("net.ipv4.conf.default.log_martians", "1", Dir::Exact),
    ("net.ipv4.icmp_echo_ignore_broadcasts", "1", Dir::Exact),
    (
        "net.ipv4.icmp_ignore_bogus_error_responses",
        "1",
        Dir::Exact,
    ),
    ("net.ipv4.tcp_syncookies", "1", Dir::Exact),
    ("kernel.kptr_restrict", "2", Dir::Exact),
    ("kernel.dmesg_restrict", "1", Dir::Exact),
    ("kernel.yama.ptrace_scope", "1", Dir::AtLeast),
    ("kernel.randomize_va_space", "2", Dir::Exact),
    ("fs.suid_dumpable", "0", Dir::Exact),
    ("kernel.sysrq", "0", Dir::Exact),
    ("fs.protected_hardlinks", "1", Dir::Exact),
    ("fs.protected_symlinks", "1", Dir::Exact),
    ("fs.protected_fifos", "1", Dir::AtLeast),
    ("fs.protected_regular", "2", Dir::Exact),
    ("kernel.unprivileged_bpf_disabled", "1", Dir::Exact),
    ("net.core.bpf_jit_harden", "2", Dir::Exact),
    ("kernel.perf_event_paranoid", "3", Dir::AtLeast),
    ("kernel.kexec_load_disabled", "1", Dir::Exact),
];

/// Forwarding, on as K3s needs it. The bridge keys exist once
/// br_netfilter is loaded (systemd-modules-load runs before
/// systemd-sysctl); `-` lets an image without the module boot quietly.
pub const FORWARDING: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("-net.bridge.bridge-nf-call-iptables", "1"),
    ("-net.bridge.bridge-nf-call-ip6tables", "1"),
];

pub const K3S_MODULES: &[&str] = &["overlay", "br_netfilter"];

pub fn kubelet_value(key: &str) -> Option<&'static str> {
    KUBELET.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

pub fn is_forwarding(key: &str) -> bool {
    let key = key.trim_start_matches('-');
    key == "net.ipv4.ip_forward"
        || key.starts_with("net.bridge.bridge-nf-call-ip")
        || ((key.starts_with("net.ipv4.conf.") || key.starts_with("net.ipv6.conf."))
            && key.ends_with(".forwarding"))
}

/// Why `key = value` weakens kiln's hardened value, if it does.
pub fn weakens(key: &str, value: &str) -> Option<String> {
    let (_, hardened, dir) = HARDENING.iter().find(|(k, _, _)| *k == key)?;
    let ok = match dir {
        Dir::Exact => value == *hardened,
        Dir::AtLeast => value
            .parse::<i64>()
            .is_ok_and(|v| v >= hardened.parse::<i64>().unwrap_or(0)),
    };
    (!ok).then(|| match dir {
        Dir::Exact => format!("kiln sets {hardened}"),
        Dir::AtLeast => format!("kiln sets {hardened} or more"),
    })
}
