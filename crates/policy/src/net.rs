//! Network prefixes as recipes write them (`10.0.0.0/16`, `2001:db8::/32`,
//! or a bare address meaning a single host), for the firewall and sshd.

use std::fmt;
use std::net::IpAddr;

/// An IPv4 or IPv6 prefix with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128).
    /// Host bits must be zero: `10.0.0.1/8` is refused with a suggestion,
    /// because it usually hides a typo in the prefix length.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("\"{text}\" is not an IP address or prefix, like \"10.0.0.0/16\" or \"2001:db8::/32\"")
        })?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_text {
            None => bits,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= bits => n,
                _ => {
                    return Err(format!("\"{text}\": the prefix length must be 0 to {bits}"));
                }
            },
        };
        let cidr = Cidr { addr, len };
        let network = cidr.network();
        if network != addr {
            return Err(format!(
                "\"{text}\" has host bits set; did you mean \"{network}/{len}\"?"
            ));
        }
        Ok(cidr)
    }

    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }

    fn bits(&self) -> u8 {
        if self.is_v6() { 128 } else { 32 }
    }

    fn number(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn mask(&self) -> u128 {
        let host = u32::from(self.bits() - self.len);
        let all: u128 = if self.is_v6() {
            u128::MAX
        } else {
            u32::MAX as u128
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    /// The address with the host bits cleared.
    fn network(&self) -> IpAddr {
        let n = Cidr::number(self.addr) & self.mask();
        if self.is_v6() {
            IpAddr::V6(n.into())
        } else {
            IpAddr::V4((n as u32).into())
        }
    }

    /// True when `other` lies inside this prefix (same family).
    pub fn contains(&self, other: &Cidr) -> bool {
        self.is_v6() == other.is_v6()
            && other.len >= self.len
            && Cidr::number(other.addr) & self.mask() == Cidr::number(self.addr)
    }

    /// True for 0.0.0.0/0 and ::/0.
    pub fn is_everything(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == self.bits() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// Sorted, without duplicates and without prefixes inside another one of
/// the list (nft refuses overlapping elements in an interval set).
pub fn normalise(cidrs: &[Cidr]) -> Vec<Cidr> {
    let mut sorted: Vec<Cidr> = cidrs.to_vec();
    sorted.sort_by_key(|c| (c.is_v6(), Cidr::number(c.addr), c.len));
    sorted.dedup();
    let mut out: Vec<Cidr> = Vec::new();
    for c in sorted {
        if !out.iter().any(|o| o.contains(&c)) {
            out.retain(|o| !c.contains(o));
            out.push(c);
        }
    }
    out
}

/// Parses a port (`22`) or a range (`30000-32767`).
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let one = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!(
                "\"{text}\" is not a port (1 to 65535) or a range like \"30000-32767\""
            )),
        }
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(format!(
                    "\"{text}\": the range must go from low to high, like \"{b}-{a}\""
                ));
            }
            Ok((a, b))
        }
        None => {
            let p = one(text)?;
            Ok((p, p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_refuses_host_bits() {
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().to_string(), "10.1.2.3");
        assert_eq!(
            Cidr::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            Cidr::parse("10.0.0.1/8").unwrap_err(),
            "\"10.0.0.1/8\" has host bits set; did you mean \"10.0.0.0/8\"?"
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().is_everything());
    }

    #[test]
    fn normalising_drops_covered_prefixes() {
        let list: Vec<Cidr> = [
            "10.1.0.0/16",
            "10.0.0.0/8",
            "192.0.2.7",
            "10.0.0.0/8",
            "::/0",
        ]
        .iter()
        .map(|s| Cidr::parse(s).unwrap())
        .collect();
        let shown: Vec<String> = normalise(&list).iter().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7", "::/0"]);
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("22"), Ok((22, 22)));
        assert_eq!(parse_port_range("51820-51821"), Ok((51820, 51821)));
        assert!(parse_port_range("0").is_err());
        assert!(parse_port_range("9-1").is_err());
    }
}
