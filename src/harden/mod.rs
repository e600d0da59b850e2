//! Hardening baked into the image: users, SSH, the nftables firewall, the
//! K3s agent, sysctls and modules, first-boot units and minimisation. Each
//! module renders a recipe section into files of the Tree; the daemons
//! that read those files judge them in the tests (sshd -t/-T, nft -c,
//! systemd-analyze, a YAML parser). Documented in docs/hardening.md.
//!
//! Order: accounts first (later steps own files by name), then SSH, the
//! firewall, K3s, sysctls and modules, then minimisation, which prunes
//! what the recipe did not ask for and so must see everything enabled.

pub mod accounts;
pub mod firewall;
pub mod k3s;
pub mod minimize;
pub mod ssh;
pub mod sysctl;
pub mod units;

use crate::recipe::Loc;
use crate::recipe::hardening::HardeningPlan;
use anyhow::{Context, Result};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use std::collections::BTreeSet;

/// Applies every hardening section of `plan` to `tree`. Returns warnings
/// worth showing.
pub fn apply(plan: &HardeningPlan, tree: &mut Tree, store: &Store) -> Result<Vec<String>> {
    let mut cx = Ctx {
        tree,
        store,
        warnings: Vec::new(),
        enabled: BTreeSet::new(),
    };
    if plan.is_empty() {
        return Ok(cx.warnings);
    }
    accounts::apply(&mut cx, plan)?;
    if let Some(ssh) = &plan.ssh {
        for (what, why) in &ssh.weakened {
            cx.warn(format!(
                "{}: [ssh] weakened: {what} (allow_weaker: {why})",
                ssh.loc.position()
            ));
        }
        ssh::apply(&mut cx, ssh)?;
    }
    if let Some(firewall) = &plan.firewall {
        firewall::apply(&mut cx, firewall, plan.ssh.as_ref(), plan.k3s.as_ref())?;
    }
    if let Some(k3s) = &plan.k3s {
        for (arg, rule, why) in &k3s.weakened {
            cx.warn(format!(
                "{}: [k3s] weakened: {arg} ({rule} waived: {why}); the audit needs its own [[audit.waive]] for {rule}",
                k3s.loc.position()
            ));
        }
        k3s::apply(&mut cx, k3s, plan.ssh.as_ref())?;
    }
    if plan.sysctl.is_some() || plan.k3s.is_some() || plan.kernel.is_some() {
        sysctl::apply(&mut cx, plan)?;
    }
    if let Some(minimize) = &plan.minimize {
        minimize::apply(&mut cx, minimize, plan.ssh.is_some())?;
    }
    if let Some(kernel) = &plan.kernel {
        minimize::trim_modules(&mut cx, kernel)?;
    }
    Ok(cx.warnings)
}

/// The tree being hardened, and what the steps learnt on the way.
pub struct Ctx<'a> {
    pub tree: &'a mut Tree,
    pub store: &'a Store,
    pub warnings: Vec<String>,
    /// Units kiln enabled: minimisation keeps their links.
    pub enabled: BTreeSet<String>,
}

fn image_path(path: &str) -> ImagePath {
    ImagePath::new(path).expect("kiln's own paths are valid")
}

impl Ctx<'_> {
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// `path` with symlinks resolved (the last component too), if that
    /// stays inside the image.
    pub fn resolve(&self, path: &str) -> Option<ImagePath> {
        self.tree.resolve(&image_path(path), true).ok()
    }

    pub fn resolve_dir(&self, path: &str) -> Option<ImagePath> {
        let p = self.resolve(path)?;
        matches!(self.tree.get(&p).map(|e| &e.kind), Some(Kind::Dir)).then_some(p)
    }

    pub fn is_file(&self, path: &str) -> bool {
        self.resolve(path).is_some_and(|p| {
            matches!(
                self.tree.get(&p).map(|e| &e.kind),
                Some(Kind::File { .. } | Kind::HardLink { .. })
            )
        })
    }

    /// The bytes of a regular file (through symlinks and hard links).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let mut p = self.resolve(path)?;
        loop {
            match &self.tree.get(&p)?.kind {
                Kind::File { digest, .. } => return self.store.read_to_vec(digest).ok(),
                Kind::HardLink { target } => p = target.clone(),
                _ => return None,
            }
        }
    }

    pub fn read_text(&self, path: &str) -> Option<String> {
        self.read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    pub fn group_exists(&self, name: &str) -> bool {
        self.read_text("/etc/group")
            .is_some_and(|t| t.lines().any(|l| l.split(':').next() == Some(name)))
    }

    /// Writes a file owned by root; parents are created root:root 0755.
    pub fn write(&mut self, path: &str, text: &str, mode: u32, loc: &Loc) -> Result<ImagePath> {
        self.write_owned(path, text.as_bytes(), Meta::root(mode), loc)
    }

    /// Writes a file with `meta`, replacing what is there (a file or a
    /// symlink; a directory is an error).
    pub fn write_owned(
        &mut self,
        path: &str,
        bytes: &[u8],
        meta: Meta,
        loc: &Loc,
    ) -> Result<ImagePath> {
        let entry = Entry::file(self.store, bytes, meta.clone())?;
        let placed = crate::assemble::place(self.tree, &image_path(path), entry, loc)
            .with_context(|| format!("cannot write {path} into the image"))?;
        self.tree.set_meta(&placed, meta);
        Ok(placed)
    }

    /// Makes `path` a symlink to `target`.
    pub fn symlink(&mut self, path: &str, target: &str, loc: &Loc) -> Result<ImagePath> {
        let entry = Entry {
            kind: Kind::Symlink {
                target: target.to_owned(),
            },
            meta: Meta::root(0o777),
        };
        crate::assemble::place(self.tree, &image_path(path), entry, loc)
    }

    /// Creates a directory (and missing parents, root:root 0755) and sets
    /// its metadata.
    pub fn mkdir(&mut self, path: &str, meta: Meta, loc: &Loc) -> Result<ImagePath> {
        let parent = self
            .tree
            .create_dir_all(&image_path(path).parent(), &Meta::root(0o755))
            .map_err(|e| loc.error(e.to_string()))?;
        let target = parent
            .join(image_path(path).file_name())
            .map_err(|e| loc.error(e.to_string()))?;
        match self.tree.get(&target).map(|e| &e.kind) {
            None | Some(Kind::Dir) => {
                self.tree
                    .insert(target.clone(), Entry::dir(meta))
                    .map_err(|e| loc.error(e.to_string()))?;
            }
            Some(other) => {
                return Err(loc
                    .error(format!(
                        "{target} is a {} in the image, not a directory",
                        other.name()
                    ))
                    .into());
            }
        }
        Ok(target)
    }

    /// Removes `path` (resolved through its parents) if present.
    pub fn remove(&mut self, path: &str) -> Result<bool> {
        let Ok(resolved) = self.tree.resolve(&image_path(path), false) else {
            return Ok(false);
        };
        if resolved.is_root() || !self.tree.contains(&resolved) {
            return Ok(false);
        }
        self.tree.remove(&resolved)?;
        Ok(true)
    }
}
