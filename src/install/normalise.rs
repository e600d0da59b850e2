//! Normalisation after configuring: what maintainer scripts leave that
//! belongs to the build, not to the image. Each rule says why; the list
//! is documented in docs/install.md and the mmdebstrap oracle test names
//! each difference it causes.
//!
//! kiln never copies anything from the build host into the image (no
//! /etc/resolv.conf, /etc/hostname or /etc/hosts of the host, unlike
//! chroot-based tools), so there is nothing of the host to remove; every
//! mtime becomes SOURCE_DATE_EPOCH when the image is packed.

use anyhow::Result;
use globset::{GlobBuilder, GlobMatcher};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};

/// What a rule removes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The matching paths, whatever they are (with everything below).
    Paths,
    /// Only regular files: directories and the symlinks packages ship stay.
    Files,
}

/// `(pattern, why)`; patterns match whole image paths, `*` within one
/// component, `**` across components.
pub const RULES: &[(&str, &str)] = &[
    (
        "/etc/ssh/ssh_host_*",
        "SSH host keys: each node makes its own at first boot",
    ),
    (
        "/var/lib/dbus/machine-id",
        "machine identity: set at first boot",
    ),
    (
        "/var/log/**",
        "logs of the build (files only: directories stay)",
    ),
    (
        "/var/cache/ldconfig/aux-cache",
        "inode numbers and times of the build's files",
    ),
    (
        "/var/cache/debconf/*-old",
        "backup of the previous debconf state",
    ),
    ("/var/lib/dpkg/*-old", "backup of the previous dpkg state"),
    (
        "/etc/{passwd,group,shadow,gshadow,subuid,subgid}-",
        "backups made by the shadow tools",
    ),
    ("/var/cache/apt/*.bin", "apt's binary caches"),
    (
        "/var/lib/apt/lists/*",
        "package indexes (kiln reads them on the build host; files only)",
    ),
    (
        "/var/lib/systemd/random-seed",
        "a random seed must differ on every node",
    ),
    (
        "/var/lib/urandom/random-seed",
        "a random seed must differ on every node",
    ),
    ("/tmp/*", "temporary files"),
    ("/var/tmp/*", "temporary files"),
];

/// Paths a rule above removes that a script makes only where they are
/// missing: they are put in place empty before the scripts run, so the
/// work is never done (openssh-server's postinst generates a host key
/// only where there is none, the RSA one taking a third of a second), and
/// `apply` removes them with the rest. The image is the same either way.
pub const PLACEHOLDERS: &[&str] = &[
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
];

/// Puts the `PLACEHOLDERS` whose directory exists and that are missing.
pub fn place_placeholders(tree: &mut Tree, store: &Store) -> Result<()> {
    for path in PLACEHOLDERS {
        let path = ImagePath::new(path)?;
        let parent_is_dir = tree
            .get(&path.parent())
            .is_some_and(|e| e.kind == Kind::Dir);
        if parent_is_dir && !tree.contains(&path) {
            tree.insert(path, Entry::file(store, b"", Meta::root(0o600))?)?;
        }
    }
    Ok(())
}

fn scope(pattern: &str) -> Scope {
    if matches!(pattern, "/var/log/**" | "/var/lib/apt/lists/*") {
        Scope::Files
    } else {
        Scope::Paths
    }
}

/// Applies every rule, and empties /etc/machine-id (systemd then treats
/// the first boot as such and makes a new one). Returns the removed paths.
pub fn apply(tree: &mut Tree, store: &Store) -> Result<Vec<ImagePath>> {
    let matchers: Vec<(GlobMatcher, Scope)> = RULES
        .iter()
        .map(|(pattern, _)| Ok((matcher(pattern)?, scope(pattern))))
        .collect::<Result<_>>()?;
    let doomed: Vec<ImagePath> = tree
        .iter()
        .filter(|(path, entry)| {
            matchers.iter().any(|(m, scope)| {
                m.is_match(path.as_str())
                    && (*scope == Scope::Paths || matches!(entry.kind, Kind::File { .. }))
            })
        })
        .map(|(path, _)| path.clone())
        .collect();
    let mut removed = Vec::new();
    for path in doomed {
        if tree.contains(&path) {
            tree.remove(&path)?;
            removed.push(path);
        }
    }
    let machine_id = ImagePath::new("/etc/machine-id")?;
    if tree.contains(&ImagePath::new("/etc")?) {
        tree.insert(machine_id, Entry::file(store, b"", Meta::root(0o444))?)?;
    }
    Ok(removed)
}

/// A short account of what was removed, by rule.
pub fn summary(removed: &[ImagePath]) -> String {
    let mut parts = Vec::new();
    for (pattern, _) in RULES {
        let Ok(m) = matcher(pattern) else {
            continue;
        };
        let n = removed.iter().filter(|p| m.is_match(p.as_str())).count();
        if n > 0 {
            parts.push(format!("{n} × {pattern}"));
        }
    }
    parts.join(", ")
}

fn matcher(pattern: &str) -> Result<GlobMatcher> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tree: &mut Tree, store: &Store, path: &str, mode: u32) {
        let digest = store.put_bytes(path.as_bytes()).unwrap();
        tree.insert(
            ImagePath::new(path).unwrap(),
            Entry {
                kind: Kind::File {
                    digest,
                    size: path.len() as u64,
                },
                meta: Meta::root(mode),
            },
        )
        .unwrap();
    }

    #[test]
    fn placeholders_are_what_the_rules_remove_and_never_replace_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tree = Tree::new();
        tree.create_dir_all(&ImagePath::new("/etc/ssh").unwrap(), &Meta::root(0o755))
            .unwrap();
        file(&mut tree, &store, "/etc/ssh/ssh_host_rsa_key", 0o600);
        place_placeholders(&mut tree, &store).unwrap();
        let rsa = tree
            .get(&ImagePath::new("/etc/ssh/ssh_host_rsa_key").unwrap())
            .unwrap();
        assert!(
            matches!(rsa.kind, Kind::File { size, .. } if size > 0),
            "kept"
        );
        let ed = tree
            .get(&ImagePath::new("/etc/ssh/ssh_host_ed25519_key").unwrap())
            .unwrap();
        assert!(matches!(ed.kind, Kind::File { size: 0, .. }));
        let removed = apply(&mut tree, &store).unwrap();
        assert_eq!(removed.len(), PLACEHOLDERS.len());
        for path in PLACEHOLDERS {
            assert!(!tree.contains(&ImagePath::new(path).unwrap()), "{path}");
        }
        // no /etc/ssh (no OpenSSH in the image): nothing is put
        let mut bare = Tree::new();
        place_placeholders(&mut bare, &store).unwrap();
        assert_eq!(bare.iter().count(), 1, "only the root");
    }

    #[test]
    fn build_state_goes_package_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tree = Tree::new();
        for path in [
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/sshd_config",
            "/etc/shadow-",
            "/etc/shadow",
            "/var/log/dpkg.log",
            "/var/log/apt/history.log",
            "/var/lib/dpkg/status-old",
            "/var/lib/dpkg/info/foo-old.list",
            "/var/lib/apt/lists/lock",
            "/tmp/x/y",
            "/etc/machine-id",
        ] {
            file(&mut tree, &store, path, 0o644);
        }
        tree.insert(
            ImagePath::new("/var/log/README").unwrap(),
            Entry {
                kind: Kind::Symlink {
                    target: "../../usr/share/doc/systemd/README.logs".into(),
                },
                meta: Meta::root(0o777),
            },
        )
        .unwrap();
        let removed = apply(&mut tree, &store).unwrap();
        let removed: Vec<&str> = removed.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            removed,
            [
                "/etc/shadow-",
                "/etc/ssh/ssh_host_ed25519_key",
                "/tmp/x",
                "/var/lib/apt/lists/lock",
                "/var/lib/dpkg/status-old",
                "/var/log/apt/history.log",
                "/var/log/dpkg.log",
            ]
        );
        for kept in [
            "/etc/ssh/sshd_config",
            "/etc/shadow",
            "/var/lib/dpkg/info/foo-old.list",
            "/var/log/README",
            "/var/log/apt",
            "/tmp",
        ] {
            assert!(tree.contains(&ImagePath::new(kept).unwrap()), "{kept}");
        }
        let id = tree
            .get(&ImagePath::new("/etc/machine-id").unwrap())
            .unwrap();
        assert_eq!(
            (&id.kind, id.meta.mode),
            (
                &Kind::File {
                    digest: kiln_tree::Digest::of(b""),
                    size: 0
                },
                0o444
            )
        );
        assert!(summary(&removed_paths(&["/etc/shadow-"])).contains("1 × /etc/{passwd"));
    }

    fn removed_paths(paths: &[&str]) -> Vec<ImagePath> {
        paths.iter().map(|p| ImagePath::new(p).unwrap()).collect()
    }
}
