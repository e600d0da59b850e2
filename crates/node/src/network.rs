//! Static network settings from a NoCloud seed's `network-config`: the
//! subset of cloud-init's network config version 2 (netplan's format, what
//! `cloud-localds --network-config` takes) that describes Ethernet links,
//! turned into systemd-networkd files in /run/systemd/network. They sort
//! before the image's own (80-kiln.network), so the first match wins.
//!
//! It runs early (`kiln-node network`, before systemd-networkd), so only a
//! local seed can give it: a URL or a metadata service needs the network
//! first. Like user-data, the input is untrusted: bounded, strict, every
//! unsupported key refused by name, nothing written unless all of it is
//! accepted.

use crate::provision::{MAX_INPUT, Refusals};
use crate::yaml::{self, Node};
use std::net::IpAddr;

/// Where the files go (runtime: a new boot starts from the seed again).
pub const NETWORK_DIR: &str = "/run/systemd/network";
/// Their names: `10-kiln-provisioned-<id>.network`.
pub const FILE_PREFIX: &str = "10-kiln-provisioned-";
const MAX_LINKS: usize = 16;
const MAX_ITEMS: usize = 32;

/// One networkd file: its name in [`NETWORK_DIR`] and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFile {
    pub name: String,
    pub text: String,
}

/// Parses `network-config`; an empty file, or `config: disabled`, gives
/// no files (the image's own settings apply).
pub fn parse(bytes: &[u8]) -> Result<Vec<NetworkFile>, Refusals> {
    if bytes.len() > MAX_INPUT {
        return Err(vec![format!(
            "network-config is larger than {MAX_INPUT} bytes; refused unread"
        )]);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| vec!["network-config is not UTF-8 text".to_owned()])?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc = yaml::parse(text).map_err(|e| vec![format!("network-config: {e}")])?;
    let Node::Map(mut top) = doc else {
        return Err(vec![
            "network-config: the top level must be a mapping".into(),
        ]);
    };
    // cloud-init accepts the settings under `network:` too.
    if let [(key, Node::Map(inner))] = top.as_slice()
        && key == "network"
    {
        top = inner.clone();
    }
    let mut refused = Vec::new();
    let mut files = Vec::new();
    let mut version = None;
    for (key, value) in &top {
        match (key.as_str(), value) {
            ("version", Node::Scalar(v)) => version = Some(v.clone()),
            ("config", Node::Scalar(v)) if v == "disabled" => return Ok(Vec::new()),
            ("renderer", Node::Scalar(_)) => {}
            ("ethernets", Node::Map(links)) => {
                if links.len() > MAX_LINKS {
                    refused.push(format!("network-config: more than {MAX_LINKS} ethernets"));
                    continue;
                }
                for (id, settings) in links {
                    match ethernet(id, settings) {
                        Ok(file) => files.push(file),
                        Err(e) => refused.push(e),
                    }
                }
            }
            (other, _) => refused.push(format!(
                "network-config: {other:?} is not supported (version 2 with ethernets only: no bonds, bridges, vlans or wifis)"
            )),
        }
    }
    if version.as_deref() != Some("2") {
        refused.push(format!(
            "network-config: version {} is not supported; write version: 2 (netplan's format)",
            version.as_deref().unwrap_or("(none)")
        ));
    }
    if refused.is_empty() {
        Ok(files)
    } else {
        Err(refused)
    }
}

/// One `ethernets:` entry as a .network file.
fn ethernet(id: &str, settings: &Node) -> Result<NetworkFile, String> {
    let at = format!("network-config: ethernets: {id:?}");
    if id.is_empty()
        || id.len() > 15
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "{at}: a link id is 1 to 15 letters, digits, '-', '_' or '.'"
        ));
    }
    let Node::Map(entries) = settings else {
        return Err(format!("{at}: must be a mapping"));
    };
    let mut matched = None;
    let mut network = Vec::new();
    let mut addresses = Vec::new();
    let mut routes = Vec::new();
    let (mut dhcp4, mut dhcp6) = (false, false);
    let mut mtu = None;
    for (key, value) in entries {
        match key.as_str() {
            "match" => matched = Some(match_section(&at, value)?),
            "dhcp4" => dhcp4 = boolean(&at, key, value)?,
            "dhcp6" => dhcp6 = boolean(&at, key, value)?,
            "addresses" => {
                for address in list(&at, key, value)? {
                    addresses.push(format!("Address={}", prefixed(&at, &address)?));
                }
            }
            "gateway4" | "gateway6" => {
                let via = scalar(&at, key, value)?;
                routes.push(format!("\n[Route]\nGateway={}\n", ip(&at, &via)?));
            }
            "routes" => {
                let Node::Seq(items) = value else {
                    return Err(format!("{at}: routes must be a list"));
                };
                for route in items.iter().take(MAX_ITEMS + 1) {
                    routes.push(route_section(&at, route)?);
                }
            }
            "nameservers" => {
                let Node::Map(ns) = value else {
                    return Err(format!("{at}: nameservers must be a mapping"));
                };
                for (key, value) in ns {
                    match key.as_str() {
                        "addresses" => {
                            for dns in list(&at, key, value)? {
                                network.push(format!("DNS={}", ip(&at, &dns)?));
                            }
                        }
                        "search" => {
                            for domain in list(&at, key, value)? {
                                if !is_domain(&domain) {
                                    return Err(format!("{at}: {domain:?} is not a domain name"));
                                }
                                network.push(format!("Domains={domain}"));
                            }
                        }
                        other => {
                            return Err(format!(
                                "{at}: nameservers: {other:?} is not supported (addresses, search)"
                            ));
                        }
                    }
                }
            }
            "mtu" => {
                let text = scalar(&at, key, value)?;
                match text.parse::<u32>() {
                    Ok(n) if (576..=65535).contains(&n) => mtu = Some(n),
                    _ => return Err(format!("{at}: mtu {text:?} is not 576 to 65535")),
                }
            }
            "set-name" | "wakeonlan" | "optional" | "critical" => {
                return Err(format!(
                    "{at}: {key:?} is not supported (match, addresses, gateway4, gateway6, routes, nameservers, dhcp4, dhcp6, mtu)"
                ));
            }
            other => {
                return Err(format!(
                    "{at}: {other:?} is not supported (match, addresses, gateway4, gateway6, routes, nameservers, dhcp4, dhcp6, mtu)"
                ));
            }
        }
    }
    if addresses.len() > MAX_ITEMS || routes.len() > MAX_ITEMS || network.len() > MAX_ITEMS {
        return Err(format!(
            "{at}: more than {MAX_ITEMS} addresses, routes or name servers"
        ));
    }
    let matched = matched.unwrap_or_else(|| format!("Name={id}"));
    let dhcp = match (dhcp4, dhcp6) {
        (true, true) => "yes",
        (true, false) => "ipv4",
        (false, true) => "ipv6",
        (false, false) => "no",
    };
    let mut text = format!(
        "# Written at boot by kiln-node from the NoCloud seed's network-config ({id}).\n[Match]\n{matched}\n\n[Network]\nDHCP={dhcp}\n"
    );
    for line in addresses.iter().chain(&network) {
        text.push_str(line);
        text.push('\n');
    }
    for route in &routes {
        text.push_str(route);
    }
    if let Some(mtu) = mtu {
        text.push_str(&format!("\n[Link]\nMTUBytes={mtu}\n"));
    }
    Ok(NetworkFile {
        name: format!("{FILE_PREFIX}{id}.network"),
        text,
    })
}

fn match_section(at: &str, value: &Node) -> Result<String, String> {
    let Node::Map(entries) = value else {
        return Err(format!("{at}: match must be a mapping"));
    };
    let mut lines = Vec::new();
    for (key, value) in entries {
        let text = scalar(at, key, value)?;
        match key.as_str() {
            "macaddress" => {
                let ok = text.len() == 17
                    && text.split(':').count() == 6
                    && text
                        .split(':')
                        .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
                if !ok {
                    return Err(format!(
                        "{at}: macaddress {text:?} is not like 52:54:00:12:34:56"
                    ));
                }
                lines.push(format!("MACAddress={}", text.to_ascii_lowercase()));
            }
            "name" => {
                if text.is_empty()
                    || text.len() > 15
                    || !text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.*?".contains(&b))
                {
                    return Err(format!(
                        "{at}: name {text:?} is not an interface name or glob"
                    ));
                }
                lines.push(format!("Name={text}"));
            }
            "driver" => {
                if text.is_empty()
                    || !text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_*?".contains(&b))
                {
                    return Err(format!("{at}: driver {text:?} is not a driver name"));
                }
                lines.push(format!("Driver={text}"));
            }
            other => {
                return Err(format!(
                    "{at}: match: {other:?} is not supported (macaddress, name, driver)"
                ));
            }
        }
    }
    if lines.is_empty() {
        return Err(format!("{at}: match is empty"));
    }
    Ok(lines.join("\n"))
}

fn route_section(at: &str, route: &Node) -> Result<String, String> {
    let Node::Map(entries) = route else {
        return Err(format!("{at}: each route is a mapping with to and via"));
    };
    let (mut to, mut via, mut metric) = (None, None, None);
    for (key, value) in entries {
        let text = scalar(at, key, value)?;
        match key.as_str() {
            "to" if text == "default" || text == "0.0.0.0/0" || text == "::/0" => {
                to = Some(String::new());
            }
            "to" => to = Some(format!("Destination={}\n", prefixed(at, &text)?)),
            "via" => via = Some(ip(at, &text)?),
            "metric" => match text.parse::<u32>() {
                Ok(n) => metric = Some(format!("Metric={n}\n")),
                Err(_) => return Err(format!("{at}: route metric {text:?} is not a number")),
            },
            other => {
                return Err(format!(
                    "{at}: routes: {other:?} is not supported (to, via, metric)"
                ));
            }
        }
    }
    let (Some(to), Some(via)) = (to, via) else {
        return Err(format!("{at}: each route needs to and via"));
    };
    Ok(format!(
        "\n[Route]\n{to}Gateway={via}\n{}",
        metric.unwrap_or_default()
    ))
}

fn scalar(at: &str, key: &str, value: &Node) -> Result<String, String> {
    match value {
        Node::Scalar(s) if s.len() <= 256 && !s.chars().any(char::is_control) => Ok(s.clone()),
        Node::Scalar(_) => Err(format!("{at}: {key} is too long or has control characters")),
        _ => Err(format!("{at}: {key} must be a single value")),
    }
}

fn list(at: &str, key: &str, value: &Node) -> Result<Vec<String>, String> {
    let Node::Seq(items) = value else {
        return Err(format!("{at}: {key} must be a list"));
    };
    if items.len() > MAX_ITEMS {
        return Err(format!("{at}: {key} has more than {MAX_ITEMS} entries"));
    }
    items.iter().map(|item| scalar(at, key, item)).collect()
}

fn boolean(at: &str, key: &str, value: &Node) -> Result<bool, String> {
    match scalar(at, key, value)?.as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        other => Err(format!("{at}: {key} is {other:?}; write true or false")),
    }
}

fn ip(at: &str, text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{at}: {text:?} is not an IP address"))
}

/// `ADDRESS/PREFIX`, checked and written back canonically.
fn prefixed(at: &str, text: &str) -> Result<String, String> {
    let Some((address, prefix)) = text.split_once('/') else {
        return Err(format!(
            "{at}: {text:?} needs its prefix length, like \"192.0.2.20/24\""
        ));
    };
    let address = ip(at, address)?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max => Ok(format!("{address}/{p}")),
        _ => Err(format!(
            "{at}: {text:?} has no valid prefix length (0 to {max})"
        )),
    }
}

fn is_domain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_link_becomes_a_networkd_file() {
        let files = parse(
            b"version: 2\nethernets:\n  lan:\n    match:\n      macaddress: \"52:54:00:12:34:56\"\n    addresses: [10.0.2.15/24]\n    gateway4: 10.0.2.2\n    nameservers:\n      addresses: [10.0.2.3]\n      search: [example.org]\n    routes:\n      - to: 192.0.2.0/24\n        via: 10.0.2.1\n",
        )
        .unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "10-kiln-provisioned-lan.network");
        assert_eq!(
            files[0].text,
            "# Written at boot by kiln-node from the NoCloud seed's network-config (lan).\n\
             [Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nDHCP=no\nAddress=10.0.2.15/24\n\
             DNS=10.0.2.3\nDomains=example.org\n\n[Route]\nGateway=10.0.2.2\n\n[Route]\n\
             Destination=192.0.2.0/24\nGateway=10.0.2.1\n"
        );
    }

    #[test]
    fn no_config_or_disabled_leaves_the_image_settings() {
        assert_eq!(parse(b"").unwrap(), vec![]);
        assert_eq!(parse(b"network:\n  config: disabled\n").unwrap(), vec![]);
    }

    #[test]
    fn everything_else_is_refused_by_name() {
        for (input, refusal) in [
            ("version: 1\nconfig: []\n", "version 1 is not supported"),
            ("version: 2\nbonds: {}\n", "\"bonds\" is not supported"),
            (
                "version: 2\nethernets:\n  e:\n    addresses: [10.0.0.1]\n",
                "needs its prefix length",
            ),
            (
                "version: 2\nethernets:\n  e:\n    set-name: x\n",
                "\"set-name\" is not supported",
            ),
            (
                "version: 2\nethernets:\n  \"e\\nx\":\n    dhcp4: true\n",
                "a link id is",
            ),
            (
                "version: 2\nethernets:\n  e:\n    gateway4: \"10.0.0.1\\n[Service]\"\n",
                "control characters",
            ),
        ] {
            let refused = parse(input.as_bytes()).unwrap_err();
            assert!(
                refused.iter().any(|r| r.contains(refusal)),
                "{input}: {refused:?}"
            );
        }
        let huge = vec![b'#'; MAX_INPUT + 1];
        assert!(parse(&huge).unwrap_err()[0].contains("larger than"));
    }
}
