//! The hardening sections of a recipe — `[[user]]`, `[[group]]`, `[ssh]`,
//! `[firewall]`, `[k3s]`, `[sysctl]`, `[minimize]`, `[kernel]` — validated
//! into a [`HardeningPlan`]. The format is documented in docs/hardening.md.
//!
//! Merging across `extends`: `[[user]]` and `[[group]]` entries append (a
//! later entry with the same name replaces the earlier one); in the other
//! tables each key set by a later file replaces the earlier value (lists
//! included), except `[[firewall.allow]]`/`[[firewall.allow_out]]` (append),
//! `[k3s] kubelet_args`/`kube_proxy_args` (merged by argument name) and
//! `[sysctl]` (merged by key).
//!
//! Settings that have a hardened default may only be made stricter. A
//! weaker value is an error naming the setting, unless the same table of
//! the same file says why with `allow_weaker = "reason"` (`[ssh]`,
//! `[sysctl]`) or, for K3s arguments, `waive = [{ rule, reason }]`.
//! Checks that need the merged recipe or the image (a server URL, a shell
//! that exists) happen when the image is hardened, with the same
//! file:line:column errors.

mod accounts;
mod firewall;
mod k3s;
mod kernel;
mod minimize;
mod ssh;
mod sysctl;

// Each section lives in its own file; these keep the paths
// `recipe::hardening::X` the rest of the crate uses.
pub use accounts::{GroupPlan, RawGroup, RawUser, UserPlan};
pub use firewall::{AllowPlan, FirewallPlan, Proto, RawAllow, RawFirewall};
pub use k3s::{FLANNEL_BACKENDS, FlannelBackend, K3sPlan, RawK3s, RawWaive};
pub use kernel::{KernelPlan, RawKernel};
use kiln_diag::quote;
pub use minimize::{MinimizePlan, RawMinimize};
pub use ssh::{RawSsh, SshPlan};
pub use sysctl::{RawSysctl, SysctlPlan};

use super::{Loc, RecipeError, SourceFile};
use kiln_policy::net::Cidr;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

type Strings = Vec<Spanned<String>>;

/// One recipe file's hardening sections, as written.
pub struct RawHardening {
    pub users: Vec<Spanned<RawUser>>,
    pub groups: Vec<Spanned<RawGroup>>,
    pub ssh: Option<Spanned<RawSsh>>,
    pub firewall: Option<Spanned<RawFirewall>>,
    pub k3s: Option<Spanned<RawK3s>>,
    pub sysctl: Option<Spanned<RawSysctl>>,
    pub minimize: Option<Spanned<RawMinimize>>,
    pub kernel: Option<Spanned<RawKernel>>,
}

/// A value and where the recipe set it (`None`: kiln's default).
#[derive(Debug, Clone)]
pub struct Set<T> {
    pub value: T,
    pub loc: Option<Loc>,
}

impl<T> Set<T> {
    fn default(value: T) -> Set<T> {
        Set { value, loc: None }
    }
}

#[derive(Debug, Default)]
pub struct HardeningPlan {
    pub groups: Vec<GroupPlan>,
    pub users: Vec<UserPlan>,
    pub ssh: Option<SshPlan>,
    pub firewall: Option<FirewallPlan>,
    pub k3s: Option<K3sPlan>,
    pub sysctl: Option<SysctlPlan>,
    pub minimize: Option<MinimizePlan>,
    pub kernel: Option<KernelPlan>,
}

impl HardeningPlan {
    /// True when the recipe has no hardening section at all.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.users.is_empty()
            && self.ssh.is_none()
            && self.firewall.is_none()
            && self.k3s.is_none()
            && self.sysctl.is_none()
            && self.minimize.is_none()
            && self.kernel.is_none()
    }

    /// Merges one recipe file's sections into the plan (a file that
    /// `extends` another comes later and overrides or appends).
    pub fn add_layer(
        &mut self,
        file: &Arc<SourceFile>,
        dir: &Path,
        raw: RawHardening,
    ) -> Result<(), RecipeError> {
        let cx = Cx { file, dir };
        for group in raw.groups {
            let plan = cx.group(group)?;
            self.groups.retain(|g| g.name != plan.name);
            self.groups.push(plan);
        }
        for user in raw.users {
            let plan = cx.user(user)?;
            self.users.retain(|u| u.name != plan.name);
            self.users.push(plan);
        }
        if let Some(ssh) = raw.ssh {
            let loc = cx.loc(ssh.span());
            let plan = self
                .ssh
                .get_or_insert_with(|| SshPlan::hardened(loc.clone()));
            plan.loc = loc;
            cx.ssh(plan, ssh.into_inner())?;
        }
        if let Some(firewall) = raw.firewall {
            let loc = cx.loc(firewall.span());
            let plan = self.firewall.get_or_insert_with(|| FirewallPlan {
                allow: Vec::new(),
                allow_out: Vec::new(),
                egress_restricted: false,
                loc: loc.clone(),
            });
            plan.loc = loc;
            cx.firewall(plan, firewall.into_inner())?;
        }
        if let Some(k3s) = raw.k3s {
            let loc = cx.loc(k3s.span());
            let plan = self
                .k3s
                .get_or_insert_with(|| K3sPlan::hardened(loc.clone()));
            plan.loc = loc;
            cx.k3s(plan, k3s.into_inner())?;
        }
        if let Some(sysctl) = raw.sysctl {
            let loc = cx.loc(sysctl.span());
            let plan = self.sysctl.get_or_insert_with(|| SysctlPlan {
                values: BTreeMap::new(),
                weakened: Vec::new(),
                loc: loc.clone(),
            });
            plan.loc = loc;
            cx.sysctl(plan, sysctl.into_inner())?;
        }
        if let Some(minimize) = raw.minimize {
            let loc = cx.loc(minimize.span());
            let plan = self.minimize.get_or_insert_with(|| MinimizePlan {
                remove_docs: false,
                keep_locales: None,
                remove_package_manager: false,
                setuid_allow: None,
                keep_services: None,
                mask: Vec::new(),
                loc: loc.clone(),
            });
            plan.loc = loc;
            cx.minimize(plan, minimize.into_inner())?;
        }
        if let Some(kernel) = raw.kernel {
            let loc = cx.loc(kernel.span());
            let plan = self.kernel.get_or_insert_with(|| KernelPlan {
                load: Vec::new(),
                modules: None,
                profile: None,
                loc: loc.clone(),
            });
            plan.loc = loc;
            cx.kernel(plan, kernel.into_inner())?;
        }
        Ok(())
    }
}

/// The file being read.
struct Cx<'a> {
    file: &'a Arc<SourceFile>,
    dir: &'a Path,
}

impl Cx<'_> {
    fn loc(&self, span: std::ops::Range<usize>) -> Loc {
        Loc::new(self.file, span)
    }

    fn cidrs(&self, list: &[Spanned<String>]) -> Result<Vec<Cidr>, RecipeError> {
        list.iter()
            .map(|c| Cidr::parse(c.get_ref()).map_err(|e| self.loc(c.span()).error(e)))
            .collect()
    }

    fn names(
        &self,
        list: &[Spanned<String>],
        what: &str,
        valid: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, RecipeError> {
        list.iter()
            .map(|item| {
                if valid(item.get_ref()) {
                    Ok(item.get_ref().clone())
                } else {
                    Err(self.loc(item.span()).error(format!(
                        "{what}: {} is not valid here",
                        quote(item.get_ref())
                    )))
                }
            })
            .collect()
    }
}
