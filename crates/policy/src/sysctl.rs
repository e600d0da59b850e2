//! The kernel parameters an image sets at boot, computed as
//! systemd-sysctl (systemd 252, sysctl.d(5)) computes them; on Debian,
//! procps.service is an alias of systemd-sysctl.service.
//!
//! - Files: `*.conf` in /etc/sysctl.d, /run/sysctl.d,
//!   /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and /lib/sysctl.d (the
//!   last only matters without merged /usr). A file name found in an
//!   earlier directory hides the same name in later ones; an entry linked
//!   to /dev/null (or any device, or an empty file) masks the name. A
//!   dangling link or a non-regular entry is skipped and masks nothing;
//!   names starting with `.` are not read.
//! - Order: the remaining files are read in the order of their file names,
//!   whatever their directory, and a later assignment of a key replaces an
//!   earlier one. /etc/sysctl.conf is not read by systemd-sysctl itself:
//!   it takes part only through the /etc/sysctl.d/99-sysctl.conf link
//!   Debian's systemd ships, at that name's place. (`sysctl --system`
//!   reads it last; on a systemd boot that command does not run.)
//! - Keys: the first of `.` and `/` is the separator, the other stands for
//!   itself (`net/ipv4/conf/eth0.100/rp_filter`); repeated separators
//!   collapse. A leading `-` (ignore errors) is dropped; `-key` without
//!   `=` removes an earlier assignment of the key and keeps globs off it.
//! - Globs (`*`, `?`, `[...]`, within one component) apply to every key
//!   they match that has no explicit line; of two globs matching a key the
//!   one assigned later wins, where assigning the same value again keeps
//!   a key's place (systemd's ordered hashmap).

use super::image::Image;
use kiln_tree::Kind;
use std::collections::BTreeMap;

pub const DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Normalised: dot-separated, without a leading `-`.
    pub key: String,
    /// Runs of whitespace collapsed to one space; empty for an exclusion.
    pub value: String,
    pub path: String,
    pub line: u32,
    /// `-key` without a value: no assignment, and no glob for this key.
    pub exclude: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Sysctl {
    /// Files read, in order.
    pub files: Vec<String>,
    /// Entries that masked their file name (linked to /dev/null, a
    /// device, or empty), and so were not read.
    pub masked: Vec<String>,
    /// Every line, in reading order.
    pub all: Vec<Assignment>,
    /// Each key (or glob) to the index in `all` of the line in effect.
    /// The index is also the place in systemd's ordered hashmap.
    entries: BTreeMap<String, usize>,
}

/// What systemd-sysctl makes of a directory entry.
enum Found {
    /// Read it; the name is taken.
    Read,
    /// The name is taken, nothing is read.
    Masked,
    /// Not there for systemd: the name stays free for later directories.
    Skipped,
}

fn classify(image: &Image, path: &str) -> Found {
    let Some(resolved) = image.resolve(path) else {
        return Found::Skipped;
    };
    if resolved.as_str() == "/dev/null" {
        return Found::Masked;
    }
    let kind = image.tree.get(&resolved).map(|e| &e.kind);
    let kind = match kind {
        Some(Kind::HardLink { target }) => image.tree.get(target).map(|e| &e.kind),
        other => other,
    };
    match kind {
        Some(Kind::CharDevice { .. } | Kind::BlockDevice { .. }) => Found::Masked,
        Some(Kind::File { size: 0, .. }) => Found::Masked,
        Some(Kind::File { .. }) => Found::Read,
        _ => Found::Skipped,
    }
}

impl Sysctl {
    pub fn load(image: &Image) -> Sysctl {
        let mut by_name: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for dir in DIRS {
            for (name, path) in image.list_dir(dir) {
                if !name.ends_with(".conf") || name.starts_with('.') || by_name.contains_key(&name)
                {
                    continue;
                }
                let read = match classify(image, path.as_str()) {
                    Found::Read => true,
                    Found::Masked => false,
                    Found::Skipped => continue,
                };
                by_name.insert(name, (path.as_str().to_owned(), read));
            }
        }
        let mut sysctl = Sysctl::default();
        for (path, read) in by_name.into_values() {
            if read {
                let text = image.read_text(&path).unwrap_or_default();
                sysctl.add_file(&path, &text);
            } else {
                sysctl.masked.push(path);
            }
        }
        sysctl
    }

    /// Reads one file's lines after those of the files before it.
    pub fn add_file(&mut self, path: &str, text: &str) {
        self.files.push(path.to_owned());
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (key, value, exclude) = match line.split_once('=') {
                Some((key, value)) => {
                    let key = key.strip_prefix('-').unwrap_or(key);
                    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                    (key, value, false)
                }
                None => match line.strip_prefix('-') {
                    Some(key) => (key, String::new(), true),
                    // "Line is not an assignment, ignoring"
                    None => continue,
                },
            };
            let key = normalise_key(key.trim());
            if key.is_empty() {
                continue;
            }
            // the same again keeps the earlier line's place
            let same = self
                .entries
                .get(&key)
                .is_some_and(|&i| self.all[i].exclude == exclude && self.all[i].value == value);
            if !same {
                self.entries.insert(key.clone(), self.all.len());
            }
            self.all.push(Assignment {
                key,
                value,
                path: path.to_owned(),
                line: index as u32 + 1,
                exclude,
            });
        }
    }

    /// The line that sets `key` at boot, if any: its own line, else the
    /// last-placed glob that matches it. `None` when no line sets it or an
    /// exclusion (`-key`) is in effect.
    pub fn get(&self, key: &str) -> Option<&Assignment> {
        if let Some(&i) = self.entries.get(key) {
            let a = &self.all[i];
            return (!a.exclude).then_some(a);
        }
        self.entries
            .iter()
            .filter(|(k, _)| is_glob(k))
            .map(|(_, &i)| i)
            .filter(|&i| !self.all[i].exclude && glob_match(&self.all[i].key, key))
            .max()
            .map(|i| &self.all[i])
    }

    /// The line in effect for `key` as written (a glob stays a glob),
    /// exclusions included.
    pub fn entry(&self, key: &str) -> Option<&Assignment> {
        self.entries.get(key).map(|&i| &self.all[i])
    }

    /// Every key set explicitly, with its effective assignment.
    pub fn explicit(&self) -> impl Iterator<Item = &Assignment> {
        self.entries
            .iter()
            .filter(|(k, _)| !is_glob(k))
            .map(|(_, &i)| &self.all[i])
            .filter(|a| !a.exclude)
    }

    /// Glob assignments still in effect.
    pub fn globs(&self) -> impl Iterator<Item = &Assignment> {
        self.entries
            .iter()
            .filter(|(k, _)| is_glob(k))
            .map(|(_, &i)| &self.all[i])
            .filter(|a| !a.exclude)
    }
}

fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '['])
}

/// Swaps `.` and `/`: the dotted form and the /proc/sys path of a key.
fn swap_separators(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            other => other,
        })
        .collect()
}

/// A key in the dotted form: `net/ipv4/ip_forward` → `net.ipv4.ip_forward`.
/// The first separator decides, as sysctl.d(5) says: when it is `/`,
/// slashes and dots swap (so interface names with dots survive). As
/// systemd's sysctl_normalize, repeated separators, `.` components and a
/// leading separator go.
pub fn normalise_key(key: &str) -> String {
    let as_path = match key.find(['.', '/']).map(|i| key.as_bytes()[i]) {
        Some(b'.') => swap_separators(key),
        _ => key.to_owned(),
    };
    let simplified: Vec<&str> = as_path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    swap_separators(&simplified.join("/"))
}

/// Whether the glob `pattern` matches `key` (both dotted), as glob(3)
/// over /proc/sys does: `*`, `?` and `[...]` never cross a separator.
pub fn glob_match(pattern: &str, key: &str) -> bool {
    globset::GlobBuilder::new(&swap_separators(pattern))
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .is_ok_and(|g| g.compile_matcher().is_match(swap_separators(key)))
}
// kiln's values: what the kubelet insists on, the hardening it adds, and
// the forwarding K3s needs.

/// The name the K3s hardening guide gives it. Nothing Debian ships sets
/// these keys; should a package do so later, k3s.sysctl-file and
/// sys.kiln-effective fail.
pub const KUBELET_FILE: &str = "/etc/sysctl.d/90-kubelet.conf";
/// Named to be read after every file packages ship (procps's
/// /usr/lib/sysctl.d/99-protect-links.conf, systemd's 50-*.conf and its
/// 99-sysctl.conf link to /etc/sysctl.conf), since files apply by name
/// whatever their directory: the recipe's values are the ones in effect.
pub const HARDENING_FILE: &str = "/etc/sysctl.d/99-zz-kiln-hardening.conf";
/// Where earlier builds of kiln wrote the hardening, before procps's
/// 99-protect-links.conf was seen to override its fs.protected_* keys.
/// Audited like the current files.
pub const OLD_HARDENING_FILE: &str = "/etc/sysctl.d/91-kiln-hardening.conf";
/// kiln's sysctl files, whose every value must be the one in effect.
pub const KILN_FILES: &[&str] = &[KUBELET_FILE, HARDENING_FILE, OLD_HARDENING_FILE];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Contents;
    use kiln_tree::{Entry, ImagePath, Meta, Store, Tree};

    struct Fixture {
        tree: Tree,
        store: Store,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            Fixture {
                tree: Tree::new(),
                store,
                _dir: dir,
            }
        }

        fn file(&mut self, path: &str, text: &str) -> &mut Fixture {
            let entry = Entry::file(&self.store, text.as_bytes(), Meta::root(0o644)).unwrap();
            self.tree
                .insert(ImagePath::new(path).unwrap(), entry)
                .unwrap();
            self
        }

        fn link(&mut self, path: &str, target: &str) -> &mut Fixture {
            let entry = Entry {
                kind: Kind::Symlink {
                    target: target.to_owned(),
                },
                meta: Meta::root(0o777),
            };
            self.tree
                .insert(ImagePath::new(path).unwrap(), entry)
                .unwrap();
            self
        }

        fn load(&self) -> Sysctl {
            Sysctl::load(&Image::new(&self.tree, Contents::Store(&self.store)))
        }
    }

    fn value(s: &Sysctl, key: &str) -> Option<(String, String)> {
        s.get(key).map(|a| (a.value.clone(), a.path.clone()))
    }

    fn at(v: &str, path: &str) -> Option<(String, String)> {
        Some((v.to_owned(), path.to_owned()))
    }

    #[test]
    fn files_apply_by_name_whatever_their_directory() {
        // The bug this module's audit rule catches: procps's
        // 99-protect-links.conf sorts after 91-kiln-hardening.conf.
        let mut f = Fixture::new();
        f.file(
            "/etc/sysctl.d/91-kiln-hardening.conf",
            "fs.protected_fifos = 2\n",
        )
        .file(
            "/usr/lib/sysctl.d/99-protect-links.conf",
            "fs.protected_fifos = 1\nfs.protected_regular = 2\n",
        )
        .file("/run/sysctl.d/50-run.conf", "fs.protected_regular = 1\n")
        .file("/usr/local/lib/sysctl.d/10-local.conf", "kernel.x = 1\n");
        let s = f.load();
        assert_eq!(
            s.files,
            [
                "/usr/local/lib/sysctl.d/10-local.conf",
                "/run/sysctl.d/50-run.conf",
                "/etc/sysctl.d/91-kiln-hardening.conf",
                "/usr/lib/sysctl.d/99-protect-links.conf",
            ]
        );
        assert_eq!(
            value(&s, "fs.protected_fifos"),
            at("1", "/usr/lib/sysctl.d/99-protect-links.conf")
        );
        assert_eq!(
            value(&s, "fs.protected_regular"),
            at("2", "/usr/lib/sysctl.d/99-protect-links.conf")
        );
        // the fix: a name after every package's
        f.file(
            "/etc/sysctl.d/99-zz-kiln-hardening.conf",
            "fs.protected_fifos = 2\n",
        );
        assert_eq!(
            value(&f.load(), "fs.protected_fifos"),
            at("2", "/etc/sysctl.d/99-zz-kiln-hardening.conf")
        );
    }

    #[test]
    fn a_name_in_an_earlier_directory_hides_the_whole_file() {
        let mut f = Fixture::new();
        f.file(
            "/usr/lib/sysctl.d/50-a.conf",
            "kernel.a = 1\nkernel.b = 1\n",
        )
        .file("/run/sysctl.d/50-a.conf", "kernel.a = 2\n")
        .file("/etc/sysctl.d/60-b.conf", "kernel.c = 1\n")
        .file("/usr/lib/sysctl.d/60-b.conf", "kernel.c = 9\n")
        // /lib after /usr/lib: the same name is the /usr/lib one
        .file("/lib/sysctl.d/60-b.conf", "kernel.c = 8\n")
        .file("/lib/sysctl.d/70-c.conf", "kernel.d = 1\n");
        let s = f.load();
        assert_eq!(value(&s, "kernel.a"), at("2", "/run/sysctl.d/50-a.conf"));
        assert_eq!(value(&s, "kernel.b"), None, "the /usr/lib file is not read");
        assert_eq!(value(&s, "kernel.c"), at("1", "/etc/sysctl.d/60-b.conf"));
        assert_eq!(value(&s, "kernel.d"), at("1", "/lib/sysctl.d/70-c.conf"));
    }

    #[test]
    fn dev_null_devices_and_empty_files_mask_a_name() {
        let mut f = Fixture::new();
        f.file("/usr/lib/sysctl.d/50-a.conf", "kernel.a = 1\n")
            .link("/etc/sysctl.d/50-a.conf", "/dev/null")
            .file("/usr/lib/sysctl.d/50-b.conf", "kernel.b = 1\n")
            .link("/etc/sysctl.d/50-b.conf", "../../dev/null")
            .file("/usr/lib/sysctl.d/50-c.conf", "kernel.c = 1\n")
            .file("/etc/sysctl.d/50-c.conf", "")
            .file("/usr/lib/sysctl.d/50-d.conf", "kernel.d = 1\n")
            .link("/run/sysctl.d/50-d.conf", "/nowhere/at-all.conf")
            .file("/usr/lib/sysctl.d/.50-e.conf", "kernel.e = 1\n")
            .file("/usr/lib/sysctl.d/50-f.conf.dpkg-dist", "kernel.f = 1\n");
        let s = f.load();
        for key in ["kernel.a", "kernel.b", "kernel.c", "kernel.e", "kernel.f"] {
            assert_eq!(value(&s, key), None, "{key}");
        }
        assert_eq!(
            s.masked,
            [
                "/etc/sysctl.d/50-a.conf",
                "/etc/sysctl.d/50-b.conf",
                "/etc/sysctl.d/50-c.conf"
            ]
        );
        // a dangling link is skipped, and masks nothing
        assert_eq!(
            value(&s, "kernel.d"),
            at("1", "/usr/lib/sysctl.d/50-d.conf")
        );
    }

    #[test]
    fn sysctl_conf_counts_only_through_the_99_sysctl_link() {
        let mut f = Fixture::new();
        f.file("/etc/sysctl.conf", "kernel.sysrq = 438\nkernel.x = 1\n")
            .file("/etc/sysctl.d/50-a.conf", "kernel.sysrq = 0\n");
        assert_eq!(
            value(&f.load(), "kernel.sysrq"),
            at("0", "/etc/sysctl.d/50-a.conf")
        );
        // as Debian's systemd ships it: read at the place of its name
        f.link("/etc/sysctl.d/99-sysctl.conf", "../sysctl.conf")
            .file("/usr/lib/sysctl.d/99-zz-late.conf", "kernel.x = 2\n");
        let s = f.load();
        assert_eq!(
            value(&s, "kernel.sysrq"),
            at("438", "/etc/sysctl.d/99-sysctl.conf")
        );
        assert_eq!(
            value(&s, "kernel.x"),
            at("2", "/usr/lib/sysctl.d/99-zz-late.conf")
        );
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
            "net/ipv4/conf/all/rp_filter=1\n; comment\nkernel.x = a   b\nnot an assignment\n",
        );
        assert_eq!(s.get("net.ipv4.conf.all.rp_filter").unwrap().value, "1");
        assert_eq!(s.get("net.ipv4.conf.default.rp_filter").unwrap().value, "2");
        assert_eq!(s.get("kernel.x").unwrap().value, "a b");
        assert_eq!(s.get("kernel.y"), None);
        assert_eq!(s.get("not an assignment"), None);
    }

    #[test]
    fn exclusions_drop_an_assignment_and_keep_globs_off() {
        let mut s = Sysctl::default();
        s.add_file(
            "/usr/lib/sysctl.d/50-a.conf",
            "net.ipv4.conf.*.rp_filter = 2\nkernel.a = 1\n",
        );
        s.add_file(
            "/etc/sysctl.d/60-b.conf",
            "-net.ipv4.conf.all.rp_filter\n-kernel.a\n",
        );
        assert_eq!(s.get("net.ipv4.conf.all.rp_filter"), None);
        assert_eq!(s.get("net.ipv4.conf.eth0.rp_filter").unwrap().value, "2");
        assert_eq!(s.get("kernel.a"), None);
        assert!(s.entry("kernel.a").unwrap().exclude);
        assert_eq!(s.explicit().count(), 0);
    }

    #[test]
    fn the_glob_placed_last_wins_and_repeating_a_value_keeps_its_place() {
        let mut s = Sysctl::default();
        s.add_file("/a/10.conf", "net.ipv4.conf.*.rp_filter = 2\n");
        s.add_file("/a/20.conf", "net.ipv4.conf.eth?.rp_filter = 1\n");
        s.add_file("/a/30.conf", "net.ipv4.conf.*.rp_filter = 2\n");
        assert_eq!(s.get("net.ipv4.conf.eth0.rp_filter").unwrap().value, "1");
        assert_eq!(s.get("net.ipv4.conf.lo.rp_filter").unwrap().value, "2");
        s.add_file("/a/40.conf", "net.ipv4.conf.*.rp_filter = 0\n");
        assert_eq!(s.get("net.ipv4.conf.eth0.rp_filter").unwrap().value, "0");
    }

    #[test]
    fn globs_stay_within_one_component() {
        assert!(glob_match(
            "net.ipv4.conf.*.rp_filter",
            "net.ipv4.conf.eth0/100.rp_filter"
        ));
        assert!(!glob_match("net.ipv4.*", "net.ipv4.conf.all.rp_filter"));
        assert!(glob_match(
            "net.ipv4.conf.eth[01].rp_filter",
            "net.ipv4.conf.eth1.rp_filter"
        ));
        assert!(!glob_match("kernel.?", "kernel.ab"));
    }

    #[test]
    fn both_separators_name_the_same_key() {
        assert_eq!(
            normalise_key("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
        assert_eq!(normalise_key("kernel.sysrq"), "kernel.sysrq");
        assert_eq!(normalise_key("kernel/sysrq"), "kernel.sysrq");
        assert_eq!(
            normalise_key("/net//ipv4/ip_forward"),
            "net.ipv4.ip_forward"
        );
        assert_eq!(normalise_key("net..ipv4.ip_forward"), "net.ipv4.ip_forward");
        let mut s = Sysctl::default();
        s.add_file("/a/10.conf", "kernel.sysrq = 1\n");
        s.add_file("/a/20.conf", "-kernel/sysrq = 0\n");
        assert_eq!(s.get("kernel.sysrq").unwrap().value, "0");
        assert_eq!(s.get("kernel.sysrq").unwrap().path, "/a/20.conf");
    }

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
    fn kilns_hardening_file_sorts_after_what_packages_ship() {
        let name = |p: &str| p.rsplit('/').next().unwrap().to_owned();
        let hardening = name(HARDENING_FILE);
        // procps (99-protect-links), systemd (50-default, 50-pid-max, and
        // 99-sysctl, the link to /etc/sysctl.conf)
        for shipped in [
            "50-default.conf",
            "50-pid-max.conf",
            "99-protect-links.conf",
            "99-sysctl.conf",
        ] {
            assert!(hardening.as_str() > shipped, "{shipped}");
        }
        assert!(name(HARDENING_FILE) > name(KUBELET_FILE));
    }
}
