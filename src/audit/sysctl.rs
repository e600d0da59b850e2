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
pub fn glob_match(pattern: &str, key: &str) -> bool {
    super::sshd::wildcard_match(pattern, key)
}

#[cfg(test)]
mod tests {
    use super::*;

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
