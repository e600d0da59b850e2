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

use super::{Loc, RecipeError, SourceFile, did_you_mean, image_path};
use kiln_policy::keys::{PublicKey, parse_authorized_key};
use kiln_policy::net::{Cidr, parse_port_range};
use kiln_policy::{k3s as hk3s, sshd as hssh, sysctl as hsysctl};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

type Strings = Vec<Spanned<String>>;
/// (field, value, hardened, min, max) of a setting where lower is stricter.
type LimitSpec<'a> = (&'a str, &'a Option<Spanned<i64>>, u32, i64, i64);
/// (field, value, the hardened set, what OpenSSH knows) of an algorithm list.
type ListSpec<'a> = (
    &'a str,
    &'a Option<Spanned<Strings>>,
    &'a [&'a str],
    &'a [&'a str],
);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Spanned<String>,
    pub uid: Option<Spanned<i64>>,
    pub system: Option<bool>,
    /// The primary group; default a group named like the user.
    pub group: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Strings,
    pub shell: Option<Spanned<String>>,
    pub home: Option<Spanned<String>>,
    pub comment: Option<Spanned<String>>,
    #[serde(default)]
    pub authorized_keys: Strings,
    /// A host file of keys, relative to the recipe's folder.
    pub authorized_keys_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Spanned<String>,
    pub gid: Option<Spanned<i64>>,
    pub system: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub port: Option<Spanned<i64>>,
    pub from: Option<Strings>,
    pub allow_users: Option<Strings>,
    pub allow_groups: Option<Strings>,
    pub max_auth_tries: Option<Spanned<i64>>,
    pub login_grace_time: Option<Spanned<i64>>,
    pub client_alive_interval: Option<Spanned<i64>>,
    pub client_alive_count_max: Option<Spanned<i64>>,
    pub max_sessions: Option<Spanned<i64>>,
    pub max_startups: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub banner: Option<Spanned<String>>,
    pub kex_algorithms: Option<Spanned<Strings>>,
    pub ciphers: Option<Spanned<Strings>>,
    pub macs: Option<Spanned<Strings>>,
    pub host_key_algorithms: Option<Spanned<Strings>>,
    pub required_rsa_size: Option<Spanned<i64>>,
    pub host_keys: Option<Spanned<Strings>>,
    pub rsa_host_key_bits: Option<Spanned<i64>>,
    pub tcp_forwarding: Option<Spanned<bool>>,
    pub allow_weaker: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    #[serde(default)]
    pub allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    pub allow_out: Vec<Spanned<RawAllow>>,
    /// "open" (default) or "restricted".
    pub egress: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    pub name: Option<Spanned<String>>,
    pub proto: Spanned<String>,
    /// 22, "30000-32767", or a list of either.
    pub port: Spanned<toml::Value>,
    pub from: Option<Strings>,
    pub to: Option<Strings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawK3s {
    pub server: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub binary: Option<Spanned<String>>,
    pub servers: Option<Strings>,
    pub node_cidrs: Option<Strings>,
    pub cluster_cidr: Option<Spanned<String>>,
    pub service_cidr: Option<Spanned<String>>,
    pub flannel_backend: Option<Spanned<String>>,
    pub metrics_server: Option<bool>,
    pub kubelet_address: Option<Spanned<String>>,
    pub kubelet_args: Option<Strings>,
    pub kube_proxy_args: Option<Strings>,
    pub node_labels: Option<Strings>,
    pub node_taints: Option<Strings>,
    #[serde(default)]
    pub waive: Vec<Spanned<RawWaive>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWaive {
    pub rule: Spanned<String>,
    pub reason: Spanned<String>,
}

/// `[sysctl]`: `key = value` pairs; dotted keys (`kernel.sysrq = 0`)
/// and quoted ones (`"kernel.sysrq" = 0`) mean the same. `allow_weaker`
/// is the one key that is not a kernel parameter.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct RawSysctl(pub BTreeMap<String, Spanned<toml::Value>>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMinimize {
    pub remove_docs: Option<bool>,
    pub keep_locales: Option<Strings>,
    pub remove_package_manager: Option<bool>,
    pub setuid_allow: Option<Strings>,
    pub keep_services: Option<Strings>,
    pub mask: Option<Strings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKernel {
    /// Modules loaded at boot (modules-load.d), besides K3s's.
    pub load: Option<Strings>,
    /// Modules kept in /usr/lib/modules (with their dependencies).
    pub modules: Option<Strings>,
    /// A named list of modules to keep, added to `modules`.
    pub profile: Option<Spanned<String>>,
}

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

#[derive(Debug, Clone)]
pub struct UserPlan {
    pub name: String,
    pub uid: Option<u32>,
    pub system: bool,
    pub group: Option<String>,
    pub groups: Vec<String>,
    pub shell: Option<String>,
    pub home: Option<String>,
    pub comment: Option<String>,
    pub authorized_keys: Vec<(PublicKey, Loc)>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub name: String,
    pub gid: Option<u32>,
    pub system: bool,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct SshPlan {
    pub port: Set<u16>,
    pub from: Set<Vec<Cidr>>,
    pub allow_users: Vec<String>,
    pub allow_groups: Vec<String>,
    pub max_auth_tries: Set<u32>,
    pub login_grace_time: Set<u32>,
    pub client_alive_interval: Set<u32>,
    pub client_alive_count_max: Set<u32>,
    pub max_sessions: Set<u32>,
    pub max_startups: Set<String>,
    pub log_level: Set<String>,
    /// `None` is "Banner none".
    pub banner: Set<Option<String>>,
    pub kex_algorithms: Set<Vec<String>>,
    pub ciphers: Set<Vec<String>>,
    pub macs: Set<Vec<String>>,
    pub host_key_algorithms: Set<Vec<String>>,
    pub required_rsa_size: Set<u32>,
    /// "ed25519", "rsa".
    pub host_keys: Set<Vec<String>>,
    pub rsa_host_key_bits: Set<u32>,
    pub tcp_forwarding: Set<bool>,
    /// Weakened settings and the reason given, for the build log.
    pub weakened: Vec<(String, String)>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AllowPlan {
    pub name: String,
    pub proto: Proto,
    pub ports: Vec<(u16, u16)>,
    /// Sources (`allow`) or destinations (`allow_out`).
    pub peers: Vec<Cidr>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct FirewallPlan {
    pub allow: Vec<AllowPlan>,
    pub allow_out: Vec<AllowPlan>,
    pub egress_restricted: bool,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlannelBackend {
    Vxlan,
    WireguardNative,
    HostGw,
    None,
}

pub const FLANNEL_BACKENDS: &[&str] = &["vxlan", "wireguard-native", "host-gw", "none"];

#[derive(Debug, Clone)]
pub struct K3sPlan {
    pub server: Option<Set<String>>,
    pub token_file: Set<String>,
    pub binary: Set<String>,
    pub servers: Vec<Cidr>,
    pub node_cidrs: Vec<Cidr>,
    pub cluster_cidr: Vec<Cidr>,
    pub service_cidr: Vec<Cidr>,
    pub flannel_backend: FlannelBackend,
    pub metrics_server: bool,
    pub kubelet_address: Option<String>,
    /// The recipe's kubelet arguments by name, in first-seen order.
    pub kubelet_args: Vec<(String, String, Loc)>,
    pub kube_proxy_args: Vec<(String, String, Loc)>,
    pub node_labels: Vec<String>,
    pub node_taints: Vec<String>,
    /// rule id → reason.
    pub waivers: BTreeMap<String, String>,
    /// Hardened arguments the recipe weakened under a waiver: (arg, rule, reason).
    pub weakened: Vec<(String, String, String)>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct SysctlPlan {
    /// key → (value, where set).
    pub values: BTreeMap<String, (String, Loc)>,
    pub weakened: Vec<(String, String)>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct MinimizePlan {
    pub remove_docs: bool,
    pub keep_locales: Option<Vec<String>>,
    pub remove_package_manager: bool,
    pub setuid_allow: Option<Vec<String>>,
    pub keep_services: Option<Vec<String>>,
    pub mask: Vec<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct KernelPlan {
    pub load: Vec<String>,
    pub modules: Option<Vec<String>>,
    pub profile: Option<String>,
    pub loc: Loc,
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

impl SshPlan {
    fn hardened(loc: Loc) -> SshPlan {
        let list = |l: &[&str]| Set::default(l.iter().map(|s| s.to_string()).collect());
        SshPlan {
            port: Set::default(22),
            from: Set::default(Vec::new()),
            allow_users: Vec::new(),
            allow_groups: Vec::new(),
            max_auth_tries: Set::default(hssh::MAX_AUTH_TRIES),
            login_grace_time: Set::default(hssh::LOGIN_GRACE_TIME),
            client_alive_interval: Set::default(hssh::CLIENT_ALIVE_INTERVAL),
            client_alive_count_max: Set::default(hssh::CLIENT_ALIVE_COUNT_MAX),
            max_sessions: Set::default(hssh::MAX_SESSIONS),
            max_startups: Set::default(hssh::MAX_STARTUPS.to_owned()),
            log_level: Set::default("VERBOSE".to_owned()),
            banner: Set::default(Some(hssh::BANNER.to_owned())),
            kex_algorithms: list(hssh::KEX),
            ciphers: list(hssh::CIPHERS),
            macs: list(hssh::MACS),
            host_key_algorithms: list(hssh::HOST_KEY_ALGORITHMS),
            required_rsa_size: Set::default(hssh::REQUIRED_RSA_SIZE),
            host_keys: list(&["ed25519"]),
            rsa_host_key_bits: Set::default(4096),
            tcp_forwarding: Set::default(false),
            weakened: Vec::new(),
            loc,
        }
    }
}

impl K3sPlan {
    fn hardened(loc: Loc) -> K3sPlan {
        let cidr = |s: &str| vec![Cidr::parse(s).expect("a valid default")];
        K3sPlan {
            server: None,
            token_file: Set::default(hk3s::TOKEN_FILE.to_owned()),
            binary: Set::default(hk3s::BINARY.to_owned()),
            servers: Vec::new(),
            node_cidrs: Vec::new(),
            cluster_cidr: cidr("10.42.0.0/16"),
            service_cidr: cidr("10.43.0.0/16"),
            flannel_backend: FlannelBackend::Vxlan,
            metrics_server: false,
            kubelet_address: None,
            kubelet_args: Vec::new(),
            kube_proxy_args: Vec::new(),
            node_labels: Vec::new(),
            node_taints: Vec::new(),
            waivers: BTreeMap::new(),
            weakened: Vec::new(),
            loc,
        }
    }
}

/// The file being read.
struct Cx<'a> {
    file: &'a Arc<SourceFile>,
    dir: &'a Path,
}

/// The reason of an `allow_weaker`, checked to say something.
fn reason(cx: &Cx, raw: &Option<Spanned<String>>) -> Result<Option<String>, RecipeError> {
    match raw {
        None => Ok(None),
        Some(r) if r.get_ref().trim().is_empty() => Err(cx
            .loc(r.span())
            .error("allow_weaker needs the reason, like allow_weaker = \"legacy clients need hmac-sha2-256\"")),
        Some(r) => Ok(Some(r.get_ref().trim().to_owned())),
    }
}

impl Cx<'_> {
    fn loc(&self, span: std::ops::Range<usize>) -> Loc {
        Loc::new(self.file, span)
    }

    fn name(&self, raw: &Spanned<String>, what: &str) -> Result<String, RecipeError> {
        let name = raw.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if !ok {
            return Err(self.loc(raw.span()).error(format!(
                "{what} name \"{name}\" is not valid: use 1 to 32 of a-z, 0-9, '_', '-', starting with a letter or '_'"
            )));
        }
        Ok(name.clone())
    }

    fn id(&self, raw: &Option<Spanned<i64>>, what: &str) -> Result<Option<u32>, RecipeError> {
        let Some(raw) = raw else { return Ok(None) };
        match u32::try_from(*raw.get_ref()) {
            Ok(id) if id < 65535 => Ok(Some(id)),
            _ => Err(self.loc(raw.span()).error(format!(
                "{what} {} is out of range: use 0 to 65534 (65535 and up are reserved)",
                raw.get_ref()
            ))),
        }
    }

    fn group(&self, raw: Spanned<RawGroup>) -> Result<GroupPlan, RecipeError> {
        let loc = self.loc(raw.span());
        let raw = raw.into_inner();
        Ok(GroupPlan {
            name: self.name(&raw.name, "group")?,
            gid: self.id(&raw.gid, "gid")?,
            system: raw.system.unwrap_or(false),
            loc,
        })
    }

    fn user(&self, raw: Spanned<RawUser>) -> Result<UserPlan, RecipeError> {
        let loc = self.loc(raw.span());
        let raw = raw.into_inner();
        let name = self.name(&raw.name, "user")?;
        let system = raw.system.unwrap_or(false);
        let group = raw
            .group
            .as_ref()
            .map(|g| self.name(g, "group"))
            .transpose()?;
        let groups = raw
            .groups
            .iter()
            .map(|g| self.name(g, "group"))
            .collect::<Result<Vec<_>, _>>()?;
        let shell = match &raw.shell {
            None => None,
            Some(s) => {
                let shell = s.get_ref();
                if !shell.starts_with('/') || shell.contains([':', '\n']) {
                    return Err(self.loc(s.span()).error(format!(
                        "shell \"{shell}\" must be an absolute path, like \"/bin/bash\""
                    )));
                }
                if system && !kiln_policy::accounts::is_nologin(shell) {
                    return Err(self.loc(s.span()).error(format!(
                        "system accounts cannot log in: use shell = \"/usr/sbin/nologin\" (not {shell}), or remove system = true"
                    )));
                }
                Some(shell.clone())
            }
        };
        let home = match &raw.home {
            None => None,
            Some(h) => {
                let path = image_path(&self.loc(h.span()), "home", h.get_ref())?;
                if h.get_ref().contains(':') {
                    return Err(self.loc(h.span()).error("home cannot contain ':'"));
                }
                Some(path.as_str().to_owned())
            }
        };
        let comment = match &raw.comment {
            Some(c) if c.get_ref().contains([':', '\n']) => {
                return Err(self.loc(c.span()).error(
                    "comment cannot contain ':' or a newline (it is a field of /etc/passwd)",
                ));
            }
            other => other.as_ref().map(|c| c.get_ref().clone()),
        };
        let mut authorized_keys = Vec::new();
        for key in &raw.authorized_keys {
            let key_loc = self.loc(key.span());
            let parsed = parse_authorized_key(key.get_ref())
                .map_err(|e| key_loc.error(format!("invalid SSH public key: {e}")))?;
            authorized_keys.push((parsed, key_loc));
        }
        if let Some(file) = &raw.authorized_keys_file {
            let key_loc = self.loc(file.span());
            let path = self.dir.join(file.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                key_loc.error(format!(
                    "cannot read \"{}\": {e} (paths are relative to the recipe's folder)",
                    file.get_ref()
                ))
            })?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                let parsed = parse_authorized_key(line).map_err(|e| {
                    key_loc.error(format!(
                        "{} line {}: invalid SSH public key: {e}",
                        file.get_ref(),
                        n + 1
                    ))
                })?;
                authorized_keys.push((parsed, key_loc.clone()));
            }
        }
        if system && !authorized_keys.is_empty() {
            return Err(loc.error(format!(
                "{name} is a system account (nologin): it cannot use authorized_keys; remove system = true"
            )));
        }
        Ok(UserPlan {
            name,
            uid: self.id(&raw.uid, "uid")?,
            system,
            group,
            groups,
            shell,
            home,
            comment,
            authorized_keys,
            loc,
        })
    }

    fn cidrs(&self, list: &[Spanned<String>]) -> Result<Vec<Cidr>, RecipeError> {
        list.iter()
            .map(|c| Cidr::parse(c.get_ref()).map_err(|e| self.loc(c.span()).error(e)))
            .collect()
    }

    fn number(
        &self,
        raw: &Spanned<i64>,
        what: &str,
        min: i64,
        max: i64,
    ) -> Result<u32, RecipeError> {
        let v = *raw.get_ref();
        if v < min || v > max {
            return Err(self
                .loc(raw.span())
                .error(format!("{what} must be {min} to {max}, not {v}")));
        }
        Ok(v as u32)
    }

    fn ssh(&self, plan: &mut SshPlan, raw: RawSsh) -> Result<(), RecipeError> {
        let allow = reason(self, &raw.allow_weaker)?;
        let mut weaker = |setting: &str, loc: &Loc, what: String| -> Result<(), RecipeError> {
            match &allow {
                Some(why) => {
                    plan.weakened.push((format!("{setting}: {what}"), why.clone()));
                    Ok(())
                }
                None => Err(loc.error(format!(
                    "[ssh] {setting}: {what}, which weakens kiln's hardened default; make it stricter, or add allow_weaker = \"why\" to this [ssh] table"
                ))),
            }
        };
        // (field, raw, hardened, min, max): lower is stricter
        let lower: [LimitSpec; 4] = [
            (
                "max_auth_tries",
                &raw.max_auth_tries,
                hssh::MAX_AUTH_TRIES,
                1,
                100,
            ),
            (
                "login_grace_time",
                &raw.login_grace_time,
                hssh::LOGIN_GRACE_TIME,
                0,
                3600,
            ),
            (
                "client_alive_interval",
                &raw.client_alive_interval,
                hssh::CLIENT_ALIVE_INTERVAL,
                0,
                3600,
            ),
            (
                "max_sessions",
                &raw.max_sessions,
                hssh::MAX_SESSIONS,
                1,
                100,
            ),
        ];
        let mut values = Vec::new();
        for (field, value, hardened, min, max) in lower {
            let Some(value) = value else {
                values.push(None);
                continue;
            };
            let loc = self.loc(value.span());
            let n = self.number(value, field, min, max)?;
            if n == 0 {
                weaker(field, &loc, "0 means no limit".into())?;
            } else if n > hardened {
                weaker(field, &loc, format!("{n} is more than {hardened}"))?;
            }
            values.push(Some(Set {
                value: n,
                loc: Some(loc),
            }));
        }
        let mut values = values.into_iter();
        for target in [
            &mut plan.max_auth_tries,
            &mut plan.login_grace_time,
            &mut plan.client_alive_interval,
            &mut plan.max_sessions,
        ] {
            if let Some(set) = values.next().flatten() {
                *target = set;
            }
        }
        if let Some(v) = &raw.client_alive_count_max {
            let loc = self.loc(v.span());
            let n = self.number(v, "client_alive_count_max", 0, 100)?;
            if n == 0 {
                weaker(
                    "client_alive_count_max",
                    &loc,
                    "0 never closes dead sessions".into(),
                )?;
            } else if n > hssh::CLIENT_ALIVE_COUNT_MAX {
                weaker(
                    "client_alive_count_max",
                    &loc,
                    format!("{n} is more than {}", hssh::CLIENT_ALIVE_COUNT_MAX),
                )?;
            }
            plan.client_alive_count_max = Set {
                value: n,
                loc: Some(loc),
            };
        }
        if let Some(v) = &raw.port {
            plan.port = Set {
                value: self.number(v, "port", 1, 65535)? as u16,
                loc: Some(self.loc(v.span())),
            };
        }
        if let Some(from) = &raw.from {
            let loc = from.first().map(|f| self.loc(f.span()));
            plan.from = Set {
                value: self.cidrs(from)?,
                loc,
            };
        }
        for (list, target, what) in [
            (&raw.allow_users, &mut plan.allow_users, "allow_users"),
            (&raw.allow_groups, &mut plan.allow_groups, "allow_groups"),
        ] {
            if let Some(list) = list {
                *target = Vec::new();
                for item in list {
                    let v = item.get_ref();
                    let ok = !v.is_empty()
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-*?@$".contains(c));
                    if !ok {
                        return Err(self.loc(item.span()).error(format!(
                            "{what}: \"{v}\" is not a user or group name (sshd patterns * and ? are allowed)"
                        )));
                    }
                    target.push(v.clone());
                }
            }
        }
        if let Some(v) = &raw.max_startups {
            let loc = self.loc(v.span());
            let text = v.get_ref();
            let parts: Vec<Option<u32>> = text.split(':').map(|p| p.parse().ok()).collect();
            let (start, rate, full) = match parts.as_slice() {
                [Some(a)] => (*a, 100, *a),
                [Some(a), Some(b), Some(c)] if *b <= 100 && a <= c => (*a, *b, *c),
                _ => {
                    return Err(loc.error(format!(
                        "max_startups \"{text}\" is not START:RATE:FULL like \"10:30:60\""
                    )));
                }
            };
            if start > 10 || rate < 30 || full > 60 {
                weaker(
                    "max_startups",
                    &loc,
                    format!(
                        "\"{text}\" admits more unauthenticated connections than \"{}\"",
                        hssh::MAX_STARTUPS
                    ),
                )?;
            }
            plan.max_startups = Set {
                value: format!("{start}:{rate}:{full}"),
                loc: Some(loc),
            };
        }
        if let Some(v) = &raw.log_level {
            let loc = self.loc(v.span());
            let level = v.get_ref().to_ascii_uppercase();
            const LEVELS: &[&str] = &[
                "QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3",
            ];
            if !LEVELS.contains(&level.as_str()) {
                return Err(loc.error(format!(
                    "log_level \"{}\" is not one of {}",
                    v.get_ref(),
                    LEVELS.join(", ")
                )));
            }
            if level != "VERBOSE" {
                weaker(
                    "log_level",
                    &loc,
                    format!("{level} instead of VERBOSE (key fingerprints of logins)"),
                )?;
            }
            plan.log_level = Set {
                value: level,
                loc: Some(loc),
            };
        }
        if let Some(v) = &raw.banner {
            let loc = self.loc(v.span());
            let value = if v.get_ref() == "none" {
                weaker("banner", &loc, "\"none\" shows no login banner".into())?;
                None
            } else {
                Some(image_path(&loc, "banner", v.get_ref())?.as_str().to_owned())
            };
            plan.banner = Set {
                value,
                loc: Some(loc),
            };
        }
        let lists: [ListSpec; 4] = [
            (
                "kex_algorithms",
                &raw.kex_algorithms,
                hssh::KEX_STRONG,
                hssh::KEX_KNOWN,
            ),
            ("ciphers", &raw.ciphers, hssh::CIPHERS, hssh::CIPHERS_KNOWN),
            ("macs", &raw.macs, hssh::MACS, hssh::MACS_KNOWN),
            (
                "host_key_algorithms",
                &raw.host_key_algorithms,
                hssh::HOST_KEY_STRONG,
                hssh::HOST_KEY_KNOWN,
            ),
        ];
        let mut results = Vec::new();
        for (field, list, strong, known) in lists {
            let Some(list) = list else {
                results.push(None);
                continue;
            };
            let loc = self.loc(list.span());
            if list.get_ref().is_empty() {
                return Err(loc.error(format!("{field} cannot be empty: sshd would offer nothing")));
            }
            let mut names = Vec::new();
            for item in list.get_ref() {
                let name = item.get_ref();
                let item_loc = self.loc(item.span());
                if !known.contains(&name.as_str()) {
                    let hint = did_you_mean(name, known.iter().copied())
                        .map(|b| format!(", did you mean \"{b}\"?"))
                        .unwrap_or_else(|| format!("; OpenSSH 9.2 knows: {}", known.join(", ")));
                    return Err(
                        item_loc.error(format!("{field}: unknown algorithm \"{name}\"{hint}"))
                    );
                }
                if !strong.contains(&name.as_str()) {
                    weaker(
                        field,
                        &item_loc,
                        format!(
                            "\"{name}\" is outside the hardened set ({})",
                            strong.join(", ")
                        ),
                    )?;
                }
                if names.contains(name) {
                    return Err(item_loc.error(format!("{field}: \"{name}\" is listed twice")));
                }
                names.push(name.clone());
            }
            results.push(Some(Set {
                value: names,
                loc: Some(loc),
            }));
        }
        let mut results = results.into_iter();
        for target in [
            &mut plan.kex_algorithms,
            &mut plan.ciphers,
            &mut plan.macs,
            &mut plan.host_key_algorithms,
        ] {
            if let Some(set) = results.next().flatten() {
                *target = set;
            }
        }
        if let Some(v) = &raw.required_rsa_size {
            let loc = self.loc(v.span());
            let n = self.number(v, "required_rsa_size", 1024, 16384)?;
            if n < hssh::REQUIRED_RSA_SIZE {
                weaker(
                    "required_rsa_size",
                    &loc,
                    format!("{n} is less than {}", hssh::REQUIRED_RSA_SIZE),
                )?;
            }
            plan.required_rsa_size = Set {
                value: n,
                loc: Some(loc),
            };
        }
        if let Some(v) = &raw.host_keys {
            let loc = self.loc(v.span());
            let mut kinds = Vec::new();
            for item in v.get_ref() {
                let kind = item.get_ref().as_str();
                let item_loc = self.loc(item.span());
                match kind {
                    "ed25519" | "rsa" => {}
                    "ecdsa" => weaker("host_keys", &item_loc, "ECDSA uses NIST curves".into())?,
                    _ => {
                        return Err(item_loc.error(format!(
                            "host_keys: \"{kind}\" is not a host key type kiln generates; use \"ed25519\" (and \"rsa\" for old clients)"
                        )));
                    }
                }
                if !kinds.contains(&kind.to_owned()) {
                    kinds.push(kind.to_owned());
                }
            }
            if kinds.is_empty() {
                return Err(loc.error("host_keys cannot be empty: sshd needs a host key"));
            }
            plan.host_keys = Set {
                value: kinds,
                loc: Some(loc),
            };
        }
        if let Some(v) = &raw.rsa_host_key_bits {
            let loc = self.loc(v.span());
            let n = self.number(v, "rsa_host_key_bits", 3072, 16384)?;
            plan.rsa_host_key_bits = Set {
                value: n,
                loc: Some(loc),
            };
        }
        if let Some(v) = &raw.tcp_forwarding {
            let loc = self.loc(v.span());
            if *v.get_ref() {
                weaker(
                    "tcp_forwarding",
                    &loc,
                    "true lets logins tunnel into the cluster network".into(),
                )?;
            }
            plan.tcp_forwarding = Set {
                value: *v.get_ref(),
                loc: Some(loc),
            };
        }
        Ok(())
    }

    fn allow(&self, raw: Spanned<RawAllow>, outbound: bool) -> Result<AllowPlan, RecipeError> {
        let loc = self.loc(raw.span());
        let raw = raw.into_inner();
        let proto = match raw.proto.get_ref().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => {
                return Err(self
                    .loc(raw.proto.span())
                    .error(format!("proto \"{other}\" is not \"tcp\" or \"udp\"")));
            }
        };
        let port_loc = self.loc(raw.port.span());
        let one = |v: &toml::Value| -> Result<(u16, u16), RecipeError> {
            match v {
                toml::Value::Integer(n) => parse_port_range(&n.to_string()),
                toml::Value::String(s) => parse_port_range(s),
                other => Err(format!(
                    "port {other} is not a number or a range like \"30000-32767\""
                )),
            }
            .map_err(|e| port_loc.error(e))
        };
        let ports = match raw.port.get_ref() {
            toml::Value::Array(items) if !items.is_empty() => {
                items.iter().map(one).collect::<Result<Vec<_>, _>>()?
            }
            toml::Value::Array(_) => return Err(port_loc.error("port cannot be an empty list")),
            other => vec![one(other)?],
        };
        let (peers_raw, field, wrong) = if outbound {
            (&raw.to, "to", &raw.from)
        } else {
            (&raw.from, "from", &raw.to)
        };
        if let Some(w) = wrong.as_ref().and_then(|w| w.first()) {
            return Err(self.loc(w.span()).error(format!(
                "this rule takes \"{field}\": [[firewall.allow]] has from = [...], [[firewall.allow_out]] has to = [...]"
            )));
        }
        let peers = match peers_raw {
            Some(list) if !list.is_empty() => self.cidrs(list)?,
            _ => {
                return Err(loc.error(format!(
                    "a firewall rule needs {field} = [\"CIDR\", ...]; write {field} = [\"0.0.0.0/0\", \"::/0\"] to mean anywhere"
                )));
            }
        };
        let name = match &raw.name {
            Some(n)
                if n.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !n.get_ref().is_empty() =>
            {
                n.get_ref().clone()
            }
            Some(n) => {
                return Err(self
                    .loc(n.span())
                    .error("name may use letters, digits, '-', '_' and '.' only"));
            }
            None => format!("{}-{}", proto.name(), ports[0].0),
        };
        Ok(AllowPlan {
            name,
            proto,
            ports,
            peers,
            loc,
        })
    }

    fn firewall(&self, plan: &mut FirewallPlan, raw: RawFirewall) -> Result<(), RecipeError> {
        for allow in raw.allow {
            plan.allow.push(self.allow(allow, false)?);
        }
        for allow in raw.allow_out {
            plan.allow_out.push(self.allow(allow, true)?);
        }
        if let Some(e) = &raw.egress {
            plan.egress_restricted = match e.get_ref().as_str() {
                "open" => false,
                "restricted" => true,
                other => {
                    return Err(self.loc(e.span()).error(format!(
                        "egress \"{other}\" is not \"open\" or \"restricted\""
                    )));
                }
            };
        }
        Ok(())
    }

    fn k3s(&self, plan: &mut K3sPlan, raw: RawK3s) -> Result<(), RecipeError> {
        for waive in &raw.waive {
            let w = waive.get_ref();
            let rule = w.rule.get_ref();
            if !hk3s::RULES.contains(&rule.as_str()) {
                let hint = did_you_mean(rule, hk3s::RULES.iter().copied())
                    .map(|b| format!(", did you mean \"{b}\"?"))
                    .unwrap_or_else(|| format!("; kubelet rules: {}", hk3s::RULES.join(", ")));
                return Err(self
                    .loc(w.rule.span())
                    .error(format!("unknown rule \"{rule}\"{hint}")));
            }
            if w.reason.get_ref().trim().is_empty() {
                return Err(self.loc(w.reason.span()).error("a waiver needs its reason"));
            }
            plan.waivers
                .insert(rule.clone(), w.reason.get_ref().trim().to_owned());
        }
        if let Some(server) = &raw.server {
            let url = server.get_ref();
            let ok = url.starts_with("https://")
                && url.len() > 8
                && !url.contains(|c: char| c.is_whitespace() || c == '"');
            if !ok {
                return Err(self.loc(server.span()).error(format!(
                    "server \"{url}\" must be the K3s server's https URL, like \"https://k3s.example.internal:6443\""
                )));
            }
            plan.server = Some(Set {
                value: url.clone(),
                loc: Some(self.loc(server.span())),
            });
        }
        for (raw_path, target, what) in [
            (&raw.token_file, &mut plan.token_file, "token_file"),
            (&raw.binary, &mut plan.binary, "binary"),
        ] {
            if let Some(p) = raw_path {
                let loc = self.loc(p.span());
                let path = image_path(&loc, what, p.get_ref())?;
                if path
                    .as_str()
                    .contains(|c: char| c.is_whitespace() || "'\"\\$%".contains(c))
                {
                    return Err(loc.error(format!(
                        "{what} cannot contain spaces, quotes, '\\', '$' or '%'"
                    )));
                }
                *target = Set {
                    value: path.as_str().to_owned(),
                    loc: Some(loc),
                };
            }
        }
        if let Some(list) = &raw.servers {
            plan.servers = self.cidrs(list)?;
        }
        if let Some(list) = &raw.node_cidrs {
            plan.node_cidrs = self.cidrs(list)?;
        }
        for (raw_cidr, target) in [
            (&raw.cluster_cidr, &mut plan.cluster_cidr),
            (&raw.service_cidr, &mut plan.service_cidr),
        ] {
            if let Some(c) = raw_cidr {
                let loc = self.loc(c.span());
                *target = c
                    .get_ref()
                    .split(',')
                    .map(|p| Cidr::parse(p).map_err(|e| loc.error(e)))
                    .collect::<Result<_, _>>()?;
            }
        }
        if let Some(b) = &raw.flannel_backend {
            plan.flannel_backend = match b.get_ref().as_str() {
                "vxlan" => FlannelBackend::Vxlan,
                "wireguard-native" => FlannelBackend::WireguardNative,
                "host-gw" => FlannelBackend::HostGw,
                "none" => FlannelBackend::None,
                other => {
                    let hint = did_you_mean(other, FLANNEL_BACKENDS.iter().copied())
                        .map(|b| format!(", did you mean \"{b}\"?"))
                        .unwrap_or_else(|| format!("; use one of {}", FLANNEL_BACKENDS.join(", ")));
                    return Err(self
                        .loc(b.span())
                        .error(format!("unknown flannel_backend \"{other}\"{hint}")));
                }
            };
        }
        if let Some(m) = raw.metrics_server {
            plan.metrics_server = m;
        }
        if let Some(a) = &raw.kubelet_address {
            let loc = self.loc(a.span());
            let ip: std::net::IpAddr = a.get_ref().parse().map_err(|_| {
                loc.error(format!(
                    "kubelet_address \"{}\" is not an IP address; \"127.0.0.1\" keeps the kubelet on loopback",
                    a.get_ref()
                ))
            })?;
            plan.kubelet_address = Some(ip.to_string());
        }
        if let Some(args) = &raw.kubelet_args {
            for arg in args {
                let loc = self.loc(arg.span());
                let (name, value) = split_arg(&loc, arg.get_ref())?;
                if let Some((rule, why)) = hk3s::kubelet_weakens(&name, &value) {
                    match plan.waivers.get(rule) {
                        Some(reason) => plan.weakened.push((
                            format!("{name}={value}"),
                            rule.to_owned(),
                            reason.clone(),
                        )),
                        None => {
                            return Err(loc.error(format!(
                                "kubelet_args \"{name}={value}\" weakens the hardened kubelet ({rule}: {why}); remove it, or waive the rule with waive = [{{ rule = \"{rule}\", reason = \"...\" }}] in [k3s]"
                            )));
                        }
                    }
                }
                if let Some(rule) = hk3s::managed_arg(&name) {
                    return Err(loc.error(format!(
                        "kubelet_args \"{name}\" is set by kiln from [k3s] {rule}; set that instead"
                    )));
                }
                plan.kubelet_args.retain(|(n, _, _)| *n != name);
                plan.kubelet_args.push((name, value, loc));
            }
        }
        if let Some(args) = &raw.kube_proxy_args {
            for arg in args {
                let loc = self.loc(arg.span());
                let (name, value) = split_arg(&loc, arg.get_ref())?;
                if let Some((rule, why)) = hk3s::kube_proxy_weakens(&name, &value) {
                    match plan.waivers.get(rule) {
                        Some(reason) => plan.weakened.push((
                            format!("{name}={value}"),
                            rule.to_owned(),
                            reason.clone(),
                        )),
                        None => {
                            return Err(loc.error(format!(
                                "kube_proxy_args \"{name}={value}\" weakens the hardened kube-proxy ({rule}: {why}); remove it, or waive the rule with waive = [{{ rule = \"{rule}\", reason = \"...\" }}] in [k3s]"
                            )));
                        }
                    }
                }
                plan.kube_proxy_args.retain(|(n, _, _)| *n != name);
                plan.kube_proxy_args.push((name, value, loc));
            }
        }
        for (list, target, what) in [
            (&raw.node_labels, &mut plan.node_labels, "node_labels"),
            (&raw.node_taints, &mut plan.node_taints, "node_taints"),
        ] {
            if let Some(list) = list {
                *target = Vec::new();
                for item in list {
                    let v = item.get_ref();
                    if !v.contains('=') && what == "node_labels"
                        || v.is_empty()
                        || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\')
                    {
                        return Err(self.loc(item.span()).error(format!(
                            "{what}: \"{v}\" is not KEY=VALUE{}",
                            if what == "node_taints" {
                                "[:EFFECT]"
                            } else {
                                ""
                            }
                        )));
                    }
                    target.push(v.clone());
                }
            }
        }
        Ok(())
    }

    fn sysctl(&self, plan: &mut SysctlPlan, raw: RawSysctl) -> Result<(), RecipeError> {
        let mut allow: Option<String> = None;
        let mut flat: Vec<(String, String, Loc)> = Vec::new();
        for (key, value) in raw.0 {
            let loc = self.loc(value.span());
            if key == "allow_weaker" {
                match value.get_ref() {
                    toml::Value::String(s) if !s.trim().is_empty() => {
                        allow = Some(s.trim().to_owned())
                    }
                    _ => return Err(loc.error("allow_weaker needs the reason, as a string")),
                }
                continue;
            }
            flatten(&key, value.get_ref(), &loc, &mut flat)?;
        }
        for (key, value, loc) in flat {
            let valid_key = !key.is_empty()
                && key.split('.').all(|p| !p.is_empty())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            if !valid_key {
                return Err(loc.error(format!(
                    "\"{key}\" is not a kernel parameter name like \"kernel.sysrq\""
                )));
            }
            if let Some(required) = hsysctl::kubelet_value(&key)
                && value != required
            {
                return Err(loc.error(format!(
                        "sysctl {key} = {value}: the kubelet (protect-kernel-defaults, rule k3s.sysctl-file) refuses to start unless it is {required}"
                    )));
            }
            if hsysctl::is_forwarding(&key) && value == "0" {
                return Err(loc.error(format!(
                    "sysctl {key} = 0 turns off forwarding, which K3s networking needs (rule k3s.forwarding)"
                )));
            }
            if let Some(why) = hsysctl::weakens(&key, &value) {
                match &allow {
                    Some(reason) => plan
                        .weakened
                        .push((format!("{key} = {value}"), reason.clone())),
                    None => {
                        return Err(loc.error(format!(
                            "sysctl {key} = {value} weakens kiln's hardened value ({why}); make it stricter, or add allow_weaker = \"why\" to this [sysctl] table"
                        )));
                    }
                }
            }
            plan.values.insert(key, (value, loc));
        }
        Ok(())
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
                    Err(self
                        .loc(item.span())
                        .error(format!("{what}: \"{}\" is not valid here", item.get_ref())))
                }
            })
            .collect()
    }

    fn minimize(&self, plan: &mut MinimizePlan, raw: RawMinimize) -> Result<(), RecipeError> {
        if let Some(v) = raw.remove_docs {
            plan.remove_docs = v;
        }
        if let Some(v) = raw.remove_package_manager {
            plan.remove_package_manager = v;
        }
        if let Some(list) = &raw.keep_locales {
            plan.keep_locales = Some(self.names(list, "keep_locales", |l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_@.-".contains(c))
            })?);
        }
        if let Some(list) = &raw.setuid_allow {
            let mut paths = Vec::new();
            for item in list {
                paths.push(
                    image_path(&self.loc(item.span()), "setuid_allow", item.get_ref())?
                        .as_str()
                        .to_owned(),
                );
            }
            plan.setuid_allow = Some(paths);
        }
        let unit = |u: &str| kiln_policy::units::is_unit_name(u);
        if let Some(list) = &raw.keep_services {
            plan.keep_services = Some(self.names(
                list,
                "keep_services (a unit name like \"fstrim.timer\")",
                unit,
            )?);
        }
        if let Some(list) = &raw.mask {
            plan.mask = self.names(list, "mask (a unit name like \"apt-daily.service\")", unit)?;
        }
        Ok(())
    }

    fn kernel(&self, plan: &mut KernelPlan, raw: RawKernel) -> Result<(), RecipeError> {
        let module = |m: &str| {
            !m.is_empty()
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-*?".contains(c))
        };
        if let Some(list) = &raw.load {
            plan.load = self.names(list, "load (a module name)", |m| {
                module(m) && !m.contains(['*', '?'])
            })?;
        }
        if let Some(list) = &raw.modules {
            plan.modules = Some(self.names(
                list,
                "modules (a module name or glob like \"nft_*\")",
                module,
            )?);
        }
        if let Some(p) = &raw.profile {
            let names = kiln_policy::modules::PROFILES.iter().map(|(n, _)| *n);
            if !kiln_policy::modules::PROFILES
                .iter()
                .any(|(n, _)| n == p.get_ref())
            {
                let hint = did_you_mean(p.get_ref(), names.clone())
                    .map(|b| format!(", did you mean \"{b}\"?"))
                    .unwrap_or_else(|| {
                        format!("; profiles: {}", names.collect::<Vec<_>>().join(", "))
                    });
                return Err(self
                    .loc(p.span())
                    .error(format!("unknown kernel profile \"{}\"{hint}", p.get_ref())));
            }
            plan.profile = Some(p.get_ref().clone());
        }
        Ok(())
    }
}

/// `name=value` (a leading `--` allowed; a bare name means `true`).
fn split_arg(loc: &Loc, arg: &str) -> Result<(String, String), RecipeError> {
    let text = arg.trim().trim_start_matches('-');
    let (name, value) = text.split_once('=').unwrap_or((text, "true"));
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !value.contains(['\n', '"', '\\']);
    if !ok {
        return Err(loc.error(format!(
            "\"{arg}\" is not an argument like \"pod-max-pids=4096\""
        )));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A sysctl value: an integer, or a string of them.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    loc: &Loc,
    out: &mut Vec<(String, String, Loc)>,
) -> Result<(), RecipeError> {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                flatten(&format!("{prefix}.{k}"), v, loc, out)?;
            }
            Ok(())
        }
        toml::Value::Integer(n) => {
            out.push((prefix.to_owned(), n.to_string(), loc.clone()));
            Ok(())
        }
        toml::Value::String(s) if !s.is_empty() && !s.contains(['\n', '#', ';']) => {
            out.push((
                prefix.to_owned(),
                s.split_whitespace().collect::<Vec<_>>().join(" "),
                loc.clone(),
            ));
            Ok(())
        }
        toml::Value::Boolean(b) => Err(loc.error(format!(
            "sysctl {prefix} = {b}: write {} (kernel parameters are numbers)",
            u8::from(*b)
        ))),
        other => Err(loc.error(format!(
            "sysctl {prefix} = {other} is not a number or a string"
        ))),
    }
}
