//! systemd units: enabling them the way `systemctl enable` does (links
//! from the [Install] section of the unit file the image has), masking,
//! and pruning enablement links the recipe did not ask for.

use super::Ctx;
use crate::recipe::Loc;
use anyhow::Result;
pub use kiln_policy::units::{ETC, SEARCH, install_section, is_unit_name};
use kiln_tree::{ImagePath, Kind};

/// The unit file `name` (a template for an instance) as systemctl would
/// find it: (path as it would be linked, its text).
pub fn find(cx: &Ctx, name: &str) -> Option<(String, String)> {
    let file = match name.split_once('@') {
        Some((prefix, rest)) if !rest.starts_with('.') => {
            let suffix = rest.rsplit_once('.').map(|(_, s)| s).unwrap_or("service");
            format!("{prefix}@.{suffix}")
        }
        _ => name.to_owned(),
    };
    for dir in SEARCH {
        let path = format!("{dir}/{file}");
        if let Some(resolved) = cx.resolve(&path)
            && matches!(
                cx.tree.get(&resolved).map(|e| &e.kind),
                Some(Kind::File { .. } | Kind::HardLink { .. })
            )
        {
            return Some((path.clone(), cx.read_text(&path).unwrap_or_default()));
        }
    }
    None
}

/// Enables `name` as `systemctl enable` would. A unit the image does not
/// have is a warning: the package that ships it is missing.
pub fn enable(cx: &mut Ctx, name: &str, loc: &Loc) -> Result<()> {
    let Some((path, text)) = find(cx, name) else {
        cx.warn(format!(
            "{}: cannot enable {name}: the image has no unit file for it (is its package installed?)",
            loc.position()
        ));
        return Ok(());
    };
    let (wanted, required, alias) = install_section(&text);
    if wanted.is_empty() && required.is_empty() && alias.is_empty() {
        cx.warn(format!(
            "{}: {name} has no [Install] section: it cannot be enabled, only pulled in by other units",
            loc.position()
        ));
    }
    for (targets, dir) in [(&wanted, "wants"), (&required, "requires")] {
        for target in targets {
            cx.symlink(&format!("{ETC}/{target}.{dir}/{name}"), &path, loc)?;
        }
    }
    for a in &alias {
        cx.symlink(&format!("{ETC}/{a}"), &path, loc)?;
        cx.enabled.insert(a.clone());
    }
    cx.enabled.insert(name.to_owned());
    Ok(())
}

/// Masks `name`: a link to /dev/null in /etc/systemd/system.
pub fn mask(cx: &mut Ctx, name: &str, loc: &Loc) -> Result<()> {
    cx.symlink(&format!("{ETC}/{name}"), "/dev/null", loc)?;
    Ok(())
}

/// Removes the links in /etc/systemd/system/*.wants and *.requires whose
/// unit is neither enabled by kiln nor in `keep`. Returns the units
/// disabled, sorted.
pub fn prune(cx: &mut Ctx, keep: &[String]) -> Result<Vec<String>> {
    let Some(etc) = cx.resolve_dir(ETC) else {
        return Ok(Vec::new());
    };
    let mut doomed: Vec<(ImagePath, String)> = Vec::new();
    for (path, entry) in cx.tree.descendants(&etc) {
        let parent = path.parent();
        let dir_name = parent.file_name();
        let in_wants = parent.parent() == etc
            && (dir_name.ends_with(".wants") || dir_name.ends_with(".requires"));
        if !in_wants || !matches!(entry.kind, Kind::Symlink { .. }) {
            continue;
        }
        let unit = path.file_name().to_owned();
        if !cx.enabled.contains(&unit) && !keep.contains(&unit) {
            doomed.push((path.clone(), unit));
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (path, unit) in doomed {
        cx.tree.remove(&path)?;
        names.push(unit);
    }
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_install_section() {
        let text = "[Unit]\nWantedBy=no.target\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n# x\nRequiredBy=a.target b.target\n";
        let (w, r, a) = install_section(text);
        assert_eq!(w, ["multi-user.target"]);
        assert_eq!(r, ["a.target", "b.target"]);
        assert_eq!(a, ["sshd.service"]);
    }

    #[test]
    fn unit_names() {
        assert!(is_unit_name("getty@tty1.service"));
        assert!(is_unit_name("fstrim.timer"));
        assert!(!is_unit_name("fstrim"));
        assert!(!is_unit_name("../x.service"));
    }
}
