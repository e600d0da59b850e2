//! `[ssh]`: the sshd settings, each hardened by default and only made
//! weaker with `allow_weaker = "reason"`.

use super::{Cx, Set, Strings};
use crate::recipe::{Loc, RecipeError, did_you_mean, image_path};
use kiln_diag::quote;
use kiln_policy::net::Cidr;
use kiln_policy::sshd as hssh;
use serde::Deserialize;
use toml::Spanned;

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

impl SshPlan {
    pub(super) fn hardened(loc: Loc) -> SshPlan {
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

    pub(super) fn ssh(&self, plan: &mut SshPlan, raw: RawSsh) -> Result<(), RecipeError> {
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
                            "{what}: {v} is not a user or group name (sshd patterns * and ? are allowed)", v = quote(v)
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
                        "max_startups {text} is not START:RATE:FULL like \"10:30:60\"",
                        text = quote(text)
                    )));
                }
            };
            if start > 10 || rate < 30 || full > 60 {
                weaker(
                    "max_startups",
                    &loc,
                    format!(
                        "{text} admits more unauthenticated connections than \"{}\"",
                        hssh::MAX_STARTUPS,
                        text = quote(text)
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
                    "log_level {} is not one of {}",
                    quote(v.get_ref()),
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
                        .map(|b| format!(", did you mean {b}?", b = quote(b)))
                        .unwrap_or_else(|| format!("; OpenSSH 9.2 knows: {}", known.join(", ")));
                    return Err(item_loc.error(format!(
                        "{field}: unknown algorithm {name}{hint}",
                        name = quote(name)
                    )));
                }
                if !strong.contains(&name.as_str()) {
                    weaker(
                        field,
                        &item_loc,
                        format!(
                            "{name} is outside the hardened set ({})",
                            strong.join(", "),
                            name = quote(name)
                        ),
                    )?;
                }
                if names.contains(name) {
                    return Err(item_loc.error(format!(
                        "{field}: {name} is listed twice",
                        name = quote(name)
                    )));
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
                            "host_keys: {kind} is not a host key type kiln generates; use \"ed25519\" (and \"rsa\" for old clients)", kind = quote(kind)
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
}
