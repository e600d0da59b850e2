//! `[network]`: how a booting node configures its links, validated into a
//! [`NetworkPlan`] and written as one systemd-networkd file.
//!
//! ```toml
//! [network]
//! match = ["en*"]                  # links (networkd Name= globs); default: every Ethernet link
//! dhcp = "yes"                     # "yes", "ipv4", "ipv6" or "no"; default "yes" without address
//! address = ["192.0.2.20/24"]      # static addresses with their prefix length
//! gateway = ["192.0.2.1"]
//! dns = ["192.0.2.53"]             # added to what DHCP gives
//! ntp = ["ntp.example.org"]        # time servers for systemd-timesyncd
//! domains = ["cluster.example"]    # DNS search domains
//! ```
//!
//! Without `[network]`, a `[boot]` image takes DHCP on every Ethernet
//! link. A file that `extends` another replaces the keys it sets.

use super::{Loc, RecipeError, SourceFile};
use kiln_diag::quote;
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use toml::Spanned;

type Strings = Spanned<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    #[serde(rename = "match")]
    pub match_names: Option<Strings>,
    pub dhcp: Option<Spanned<String>>,
    pub address: Option<Strings>,
    pub gateway: Option<Strings>,
    pub dns: Option<Strings>,
    pub ntp: Option<Strings>,
    pub domains: Option<Strings>,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkPlan {
    /// Interface name globs; empty means every Ethernet link.
    pub match_names: Vec<String>,
    /// networkd's DHCP=; `None` means "yes" unless there are addresses.
    pub dhcp: Option<String>,
    pub addresses: Vec<String>,
    pub gateways: Vec<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub ntp: Vec<String>,
    pub domains: Vec<String>,
    pub loc: Option<Loc>,
}

const DHCP: &[&str] = &["yes", "ipv4", "ipv6", "no"];

impl NetworkPlan {
    pub fn add_layer(
        previous: Option<NetworkPlan>,
        file: &Arc<SourceFile>,
        raw: Spanned<RawNetwork>,
    ) -> Result<NetworkPlan, RecipeError> {
        let mut plan = previous.unwrap_or_default();
        plan.loc = Some(Loc::new(file, raw.span()));
        let raw = raw.into_inner();
        let each = |list: Strings,
                    check: &dyn Fn(&str) -> Result<(), String>|
         -> Result<Vec<String>, RecipeError> {
            list.into_inner()
                .into_iter()
                .map(|item| {
                    check(item.get_ref()).map_err(|e| Loc::new(file, item.span()).error(e))?;
                    Ok(item.into_inner())
                })
                .collect()
        };
        if let Some(list) = raw.match_names {
            plan.match_names = each(list, &|s| {
                if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_graphic()) {
                    Err(format!(
                        "{} is not an interface name or glob, like \"en*\" or \"eth0\"",
                        quote(s)
                    ))
                } else {
                    Ok(())
                }
            })?;
        }
        if let Some(dhcp) = raw.dhcp {
            if !DHCP.contains(&dhcp.get_ref().as_str()) {
                return Err(Loc::new(file, dhcp.span()).error(format!(
                    "dhcp is {}; write one of \"yes\", \"ipv4\", \"ipv6\", \"no\"",
                    quote(dhcp.get_ref())
                )));
            }
            plan.dhcp = Some(dhcp.into_inner());
        }
        if let Some(list) = raw.address {
            plan.addresses = each(list, &|s| host_address(s).map(|_| ()))?;
        }
        let ips = |list: Strings, what: &str| -> Result<Vec<IpAddr>, RecipeError> {
            let texts = each(list, &|s| {
                s.parse::<IpAddr>().map(|_| ()).map_err(|_| {
                    format!(
                        "{what} {} is not an IP address, like \"192.0.2.1\"",
                        quote(s)
                    )
                })
            })?;
            Ok(texts.iter().filter_map(|s| s.parse().ok()).collect())
        };
        if let Some(list) = raw.gateway {
            plan.gateways = ips(list, "gateway")?;
        }
        if let Some(list) = raw.dns {
            plan.dns = ips(list, "dns")?;
        }
        if let Some(list) = raw.ntp {
            plan.ntp = each(list, &|s| {
                if s.parse::<IpAddr>().is_ok() || is_host_name(s) {
                    Ok(())
                } else {
                    Err(format!(
                        "ntp {} is not a host name or IP address, like \"ntp.example.org\"",
                        quote(s)
                    ))
                }
            })?;
        }
        if let Some(list) = raw.domains {
            plan.domains = each(list, &|s| {
                if is_host_name(s) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} is not a DNS domain, like \"cluster.example\"",
                        quote(s)
                    ))
                }
            })?;
        }
        Ok(plan)
    }

    /// The systemd-networkd file for the node's links.
    pub fn render(&self) -> String {
        let mut out = String::from("# Written by kiln from the recipe's [network].\n[Match]\n");
        if self.match_names.is_empty() {
            out.push_str("Type=ether\n");
        } else {
            out.push_str(&format!("Name={}\n", self.match_names.join(" ")));
        }
        let dhcp = match &self.dhcp {
            Some(d) => d.as_str(),
            None if self.addresses.is_empty() => "yes",
            None => "no",
        };
        out.push_str(&format!("\n[Network]\nDHCP={dhcp}\n"));
        for address in &self.addresses {
            out.push_str(&format!("Address={address}\n"));
        }
        for gateway in &self.gateways {
            out.push_str(&format!("Gateway={gateway}\n"));
        }
        let join = |items: Vec<String>| items.join(" ");
        if !self.dns.is_empty() {
            out.push_str(&format!(
                "DNS={}\n",
                join(self.dns.iter().map(|a| a.to_string()).collect())
            ));
        }
        if !self.ntp.is_empty() {
            out.push_str(&format!("NTP={}\n", self.ntp.join(" ")));
        }
        if !self.domains.is_empty() {
            out.push_str(&format!("Domains={}\n", self.domains.join(" ")));
        }
        if dhcp != "no" {
            out.push_str("\n[DHCPv4]\nUseDomains=yes\n");
        }
        out
    }
}

/// `192.0.2.20/24`: an address in a prefix (host bits may be set).
fn host_address(text: &str) -> Result<(IpAddr, u8), String> {
    let example = "like \"192.0.2.20/24\" or \"2001:db8::20/64\"";
    let Some((addr, len)) = text.split_once('/') else {
        return Err(format!(
            "address {} needs its prefix length, {example}",
            quote(text)
        ));
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("address {} is not an IP address, {example}", quote(text)))?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(n) if n <= bits => Ok((addr, n)),
        _ => Err(format!(
            "address {}: the prefix length must be 0 to {bits}",
            quote(text)
        )),
    }
}

fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_need_a_prefix_and_an_address() {
        assert_eq!(
            host_address("192.0.2.20/24").unwrap().1,
            24,
            "host bits may be set"
        );
        assert!(host_address("2001:db8::20/64").is_ok());
        for bad in [
            "192.0.2.20",
            "192.0.2.20/33",
            "eth0/24",
            "::1/129",
            "1.2.3.4/x",
        ] {
            assert!(host_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names_are_dns_labels() {
        for good in ["ntp.example.org", "a", "x-1.y"] {
            assert!(is_host_name(good), "{good}");
        }
        for bad in ["", "a..b", "-a", "a-", "a b", "a_b", &"x".repeat(64)] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_default_is_dhcp_on_every_ethernet_link() {
        let text = NetworkPlan::default().render();
        assert!(text.contains("Type=ether\n"), "{text}");
        assert!(text.contains("DHCP=yes\n"), "{text}");
    }

    #[test]
    fn static_addresses_turn_dhcp_off_unless_asked() {
        let mut plan = NetworkPlan {
            match_names: vec!["en*".into(), "eth0".into()],
            addresses: vec!["192.0.2.20/24".into()],
            gateways: vec!["192.0.2.1".parse().unwrap()],
            dns: vec![
                "192.0.2.53".parse().unwrap(),
                "2001:db8::53".parse().unwrap(),
            ],
            ntp: vec!["ntp.example.org".into()],
            domains: vec!["cluster.example".into()],
            ..NetworkPlan::default()
        };
        let text = plan.render();
        for line in [
            "Name=en* eth0\n",
            "DHCP=no\n",
            "Address=192.0.2.20/24\n",
            "Gateway=192.0.2.1\n",
            "DNS=192.0.2.53 2001:db8::53\n",
            "NTP=ntp.example.org\n",
            "Domains=cluster.example\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("[DHCPv4]"), "{text}");
        plan.dhcp = Some("ipv6".into());
        assert!(plan.render().contains("DHCP=ipv6\n"));
    }
}
