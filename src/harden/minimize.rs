//! `[minimize]` and `[kernel] modules`: golden-image hygiene (no per-node
//! identity, no build leftovers), then less of everything — documentation,
//! translations, the package manager, setuid bits, enabled services and
//! kernel modules — each only when the recipe asks.

use super::{Ctx, ssh, units};
use crate::recipe::hardening::{KernelPlan, MinimizePlan};
use anyhow::Result;
use kiln_policy::modules::PROFILES;
use kiln_policy::wildcard;
use kiln_tree::{ImagePath, Kind, Meta};
use std::collections::{BTreeMap, BTreeSet};

/// Files that a documentation purge keeps: licences must ship with the
/// software they cover.
fn is_licence(path: &ImagePath) -> bool {
    path.file_name() == "copyright"
}

/// Every non-directory below `dir` (resolved) for which `doomed` holds,
/// then (with `empty_dirs`) directories left empty below it.
fn purge(
    cx: &mut Ctx,
    dir: &str,
    empty_dirs: bool,
    doomed: impl Fn(&ImagePath, &Kind) -> bool,
) -> Result<usize> {
    let Some(root) = cx.resolve_dir(dir) else {
        return Ok(0);
    };
    let victims: Vec<ImagePath> = cx
        .tree
        .descendants(&root)
        .filter(|(p, e)| e.kind != Kind::Dir && doomed(p, &e.kind))
        .map(|(p, _)| p.clone())
        .collect();
    for p in &victims {
        cx.tree.remove(p)?;
    }
    if !empty_dirs {
        return Ok(victims.len());
    }
    let mut dirs: Vec<ImagePath> = cx
        .tree
        .descendants(&root)
        .filter(|(_, e)| e.kind == Kind::Dir)
        .map(|(p, _)| p.clone())
        .collect();
    dirs.reverse(); // deepest first
    for d in dirs {
        if cx.tree.descendants(&d).next().is_none() {
            cx.tree.remove(&d)?;
        }
    }
    Ok(victims.len())
}

pub fn apply(cx: &mut Ctx, plan: &MinimizePlan, has_ssh: bool) -> Result<()> {
    let loc = plan.loc.clone();
    // Hygiene: nothing that must be unique per node, no build leftovers.
    cx.write_owned("/etc/machine-id", b"", Meta::root(0o444), &loc)?;
    if let Ok(p) = cx.tree.resolve(
        &ImagePath::new("/var/lib/dbus/machine-id").expect("valid"),
        false,
    ) && matches!(cx.tree.get(&p).map(|e| &e.kind), Some(Kind::File { .. }))
    {
        cx.tree.remove(&p)?;
        cx.symlink("/var/lib/dbus/machine-id", "/etc/machine-id", &loc)?;
    }
    cx.remove("/var/lib/systemd/random-seed")?;
    cx.remove("/var/lib/systemd/credential.secret")?;
    let keys = ssh::remove_host_keys(cx)?;
    if keys > 0 && !has_ssh {
        cx.warn(format!(
            "{}: removed {keys} SSH host keys baked into the base; without [ssh] nothing generates new ones at boot",
            loc.position()
        ));
    }
    purge(cx, "/var/lib/apt/lists", false, |_, _| true)?;
    purge(cx, "/var/cache/apt", false, |_, _| true)?;
    purge(cx, "/var/cache/debconf", false, |p, _| {
        p.file_name().ends_with("-old")
    })?;
    purge(cx, "/var/log", false, |_, _| true)?;
    purge(cx, "/tmp", true, |_, _| true)?;
    purge(cx, "/var/tmp", true, |_, _| true)?;
    purge(cx, "/root", false, |p, _| {
        [
            ".bash_history",
            ".lesshst",
            ".viminfo",
            ".wget-hsts",
            ".python_history",
        ]
        .contains(&p.file_name())
    })?;

    if plan.remove_docs {
        let doc = cx.resolve_dir("/usr/share/doc");
        // licences, and the links that stand for a package's doc directory
        let mut n = purge(cx, "/usr/share/doc", true, |p, kind| {
            let package_link =
                matches!(kind, Kind::Symlink { .. }) && doc.as_ref() == Some(&p.parent());
            !is_licence(p) && !package_link
        })?;
        for dir in [
            "/usr/share/man",
            "/usr/share/info",
            "/usr/share/lintian",
            "/usr/share/linda",
            "/usr/share/doc-base",
        ] {
            n += purge(cx, dir, true, |_, _| true)?;
        }
        if n > 0 {
            cx.warn(format!(
                "removed {n} documentation files (licences in /usr/share/doc/*/copyright kept)"
            ));
        }
    }
    if let Some(keep) = &plan.keep_locales {
        let keep = keep.clone();
        let kept = |name: &str| {
            keep.iter().any(|k| {
                name == k
                    || name
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with(['_', '@', '.']))
            })
        };
        if let Some(root) = cx.resolve_dir("/usr/share/locale") {
            let doomed: Vec<ImagePath> = cx
                .tree
                .descendants(&root)
                .filter(|(p, e)| p.parent() == root && e.kind == Kind::Dir && !kept(p.file_name()))
                .map(|(p, _)| p.clone())
                .collect();
            for p in &doomed {
                cx.tree.remove(p)?;
            }
        }
    }
    if plan.remove_package_manager {
        remove_package_manager(cx)?;
    }
    if let Some(allow) = &plan.setuid_allow {
        let allowed: BTreeSet<ImagePath> = allow.iter().filter_map(|p| cx.resolve(p)).collect();
        let stripped: Vec<(ImagePath, Meta)> = cx
            .tree
            .iter()
            .filter(|(p, e)| {
                e.kind != Kind::Dir && e.meta.mode & 0o6000 != 0 && !allowed.contains(*p)
            })
            .map(|(p, e)| {
                let mut meta = e.meta.clone();
                meta.mode &= !0o6000;
                (p.clone(), meta)
            })
            .collect();
        let names: Vec<String> = stripped.iter().map(|(p, _)| p.to_string()).collect();
        for (p, meta) in stripped {
            cx.tree.set_meta(&p, meta);
        }
        if !names.is_empty() {
            cx.warn(format!(
                "removed the setuid/setgid bits of {}",
                names.join(", ")
            ));
        }
    }
    for unit in &plan.mask {
        units::mask(cx, unit, &loc)?;
    }
    if let Some(keep) = &plan.keep_services {
        let disabled = units::prune(cx, keep)?;
        if !disabled.is_empty() {
            cx.warn(format!(
                "disabled units the recipe did not enable or keep ([minimize] keep_services): {}",
                disabled.join(", ")
            ));
        }
    }
    Ok(())
}

/// apt and dpkg's programs, configuration, caches and timers; the dpkg
/// database (/var/lib/dpkg) stays for vulnerability scanners.
fn remove_package_manager(cx: &mut Ctx) -> Result<()> {
    let mut removed = 0;
    for dir in ["/usr/bin", "/usr/sbin"] {
        removed += purge(cx, dir, false, |p, _| {
            let n = p.file_name();
            n.starts_with("apt") || n.starts_with("dpkg")
        })?;
    }
    for path in [
        "/usr/lib/apt",
        "/usr/lib/dpkg",
        "/etc/apt",
        "/etc/dpkg",
        "/var/cache/apt",
        "/var/lib/apt",
        "/etc/cron.daily/apt-compat",
        "/etc/cron.daily/dpkg",
        "/etc/logrotate.d/apt",
        "/etc/logrotate.d/dpkg",
    ] {
        if cx.remove(path)? {
            removed += 1;
        }
    }
    for dir in ["/usr/lib/systemd/system", "/etc/systemd/system"] {
        removed += purge(cx, dir, false, |p, _| {
            let n = p.file_name();
            n.starts_with("apt-daily") || n.starts_with("dpkg-db-backup")
        })?;
    }
    if removed > 0 {
        cx.warn(format!(
            "removed apt and dpkg ({removed} paths); /var/lib/dpkg is kept for scanners"
        ));
    }
    Ok(())
}

/// A module file's name: `nf_tables.ko.xz` → `nf_tables`.
fn module_name(file: &str) -> Option<String> {
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.strip_suffix(".ko.xz"))
        .or_else(|| file.strip_suffix(".ko.zst"))
        .or_else(|| file.strip_suffix(".ko.gz"))?;
    Some(stem.replace('-', "_"))
}

/// Keeps only the listed modules (and what they depend on, from
/// modules.dep) in each /usr/lib/modules/VERSION. The text indexes
/// (modules.dep, modules.order) are rewritten; the binary ones keep
/// entries of removed modules, which then fail to load as "not found",
/// as intended.
pub fn trim_modules(cx: &mut Ctx, plan: &KernelPlan) -> Result<()> {
    let mut patterns: Vec<String> = plan.modules.clone().unwrap_or_default();
    if let Some(profile) = &plan.profile {
        let (_, list) = PROFILES
            .iter()
            .find(|(n, _)| n == profile)
            .expect("validated with the recipe");
        patterns.extend(list.iter().map(|s| s.to_string()));
    }
    if plan.modules.is_none() && plan.profile.is_none() {
        return Ok(());
    }
    let patterns: Vec<String> = patterns.iter().map(|p| p.replace('-', "_")).collect();
    let Some(root) = cx.resolve_dir("/usr/lib/modules") else {
        cx.warn(format!(
            "{}: [kernel] modules: the image has no /usr/lib/modules, nothing to trim",
            plan.loc.position()
        ));
        return Ok(());
    };
    let versions: Vec<ImagePath> = cx
        .tree
        .descendants(&root)
        .filter(|(p, e)| p.parent() == root && e.kind == Kind::Dir)
        .map(|(p, _)| p.clone())
        .collect();
    for version in versions {
        let dep_path = format!("{version}/modules.dep");
        let deps_text = cx.read_text(&dep_path).unwrap_or_default();
        // relative path → its dependencies' relative paths
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in deps_text.lines() {
            if let Some((module, rest)) = line.split_once(':') {
                deps.insert(
                    module.trim().to_owned(),
                    rest.split_whitespace().map(str::to_owned).collect(),
                );
            }
        }
        let files: Vec<(ImagePath, String)> = cx
            .tree
            .descendants(&version)
            .filter(|(p, e)| !matches!(e.kind, Kind::Dir) && module_name(p.file_name()).is_some())
            .map(|(p, _)| {
                let rel = p.as_str()[version.as_str().len() + 1..].to_owned();
                (p.clone(), rel)
            })
            .collect();
        let mut keep: BTreeSet<String> = files
            .iter()
            .filter(|(p, _)| {
                let name = module_name(p.file_name()).expect("filtered");
                patterns.iter().any(|pat| wildcard::matches(pat, &name))
            })
            .map(|(_, rel)| rel.clone())
            .collect();
        let mut queue: Vec<String> = keep.iter().cloned().collect();
        while let Some(m) = queue.pop() {
            for d in deps.get(&m).into_iter().flatten() {
                if keep.insert(d.clone()) {
                    queue.push(d.clone());
                }
            }
        }
        let mut removed = 0;
        for (path, rel) in &files {
            if !keep.contains(rel) {
                cx.tree.remove(path)?;
                removed += 1;
            }
        }
        let loc = plan.loc.clone();
        if !deps_text.is_empty() {
            let kept: String = deps_text
                .lines()
                .filter(|l| {
                    l.split_once(':')
                        .is_some_and(|(m, _)| keep.contains(m.trim()))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            cx.write(&dep_path, &kept, 0o644, &loc)?;
        }
        let order_path = format!("{version}/modules.order");
        if let Some(order) = cx.read_text(&order_path) {
            let kept: String = order
                .lines()
                .filter(|l| {
                    let l = l.trim();
                    keep.contains(l)
                        || keep
                            .iter()
                            .any(|k| k.starts_with(l) && k[l.len()..].starts_with('.'))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            cx.write(&order_path, &kept, 0o644, &loc)?;
        }
        purge(cx, version.as_str(), true, |_, _| false)?;
        cx.warn(format!(
            "kernel {}: kept {} modules, removed {removed}",
            version.file_name(),
            keep.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(module_name("nf_tables.ko"), Some("nf_tables".into()));
        assert_eq!(
            module_name("br-netfilter.ko.xz"),
            Some("br_netfilter".into())
        );
        assert_eq!(module_name("modules.dep"), None);
    }
}
