//! `[firewall]`: the `[[firewall.allow]]` and `[[firewall.allow_out]]`
//! rules and the egress policy.

use super::{Cx, Strings};
use crate::recipe::{Loc, RecipeError};
use kiln_diag::quote;
use kiln_policy::net::{Cidr, parse_port_range};
use serde::Deserialize;
use toml::Spanned;

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

impl Cx<'_> {
    fn allow(&self, raw: Spanned<RawAllow>, outbound: bool) -> Result<AllowPlan, RecipeError> {
        let loc = self.loc(raw.span());
        let raw = raw.into_inner();
        let proto = match raw.proto.get_ref().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => {
                return Err(self.loc(raw.proto.span()).error(format!(
                    "proto {other} is not \"tcp\" or \"udp\"",
                    other = quote(other)
                )));
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
                "this rule takes {field}: [[firewall.allow]] has from = [...], [[firewall.allow_out]] has to = [...]", field = quote(field)
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

    pub(super) fn firewall(
        &self,
        plan: &mut FirewallPlan,
        raw: RawFirewall,
    ) -> Result<(), RecipeError> {
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
                        "egress {other} is not \"open\" or \"restricted\"",
                        other = quote(other)
                    )));
                }
            };
        }
        Ok(())
    }
}
