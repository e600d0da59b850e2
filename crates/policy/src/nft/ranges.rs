//! Ports and addresses read as ranges, and arithmetic on port ranges.

use super::Values;
use std::net::IpAddr;

/// Service names nft resolves through /etc/services, for the common ones.
const SERVICES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("http", 80),
    ("ntp", 123),
    ("snmp", 161),
    ("https", 443),
    ("kubernetes", 6443),
];

/// A port or port range item; `None` when it cannot be read.
pub fn port_range(item: &str) -> Option<(u16, u16)> {
    let one = |s: &str| -> Option<u16> {
        let s = s.trim();
        s.parse()
            .ok()
            .or_else(|| SERVICES.iter().find(|(n, _)| *n == s).map(|(_, p)| *p))
    };
    match item.split_once('-') {
        Some((a, b)) => Some((one(a)?, one(b)?)),
        None => {
            let p = one(item)?;
            Some((p, p))
        }
    }
}

/// Port ranges of a value set; `None` when some item is unreadable.
pub fn port_ranges(values: &Values) -> Option<Vec<(u16, u16)>> {
    if values.unresolved {
        return None;
    }
    values.items.iter().map(|i| port_range(i)).collect()
}

/// An address item as an inclusive range of 128-bit numbers, with its
/// family; `None` when unreadable.
pub fn addr_range(item: &str) -> Option<(bool, u128, u128)> {
    let item = item.trim();
    let parse = |s: &str| -> Option<(bool, u128)> {
        match s.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Some((false, u32::from(a) as u128)),
            IpAddr::V6(a) => Some((true, u128::from(a))),
        }
    };
    if let Some((addr, len)) = item.split_once('/') {
        let (v6, base) = parse(addr)?;
        let bits = if v6 { 128 } else { 32 };
        let len: u32 = len.parse().ok()?;
        if len > bits {
            return None;
        }
        let host_bits = bits - len;
        let mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        return Some((v6, base & !mask, base | mask));
    }
    if let Some((a, b)) = item.split_once('-') {
        let (v6a, a) = parse(a)?;
        let (v6b, b) = parse(b)?;
        return (v6a == v6b).then_some((v6a, a, b));
    }
    let (v6, a) = parse(item)?;
    Some((v6, a, a))
}

pub(super) fn ip_number(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// Formats port ranges: `22, 30000-32767`.
pub fn format_ranges(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Subtracts `remove` from `ranges` (both inclusive, sorted or not).
pub fn subtract(ranges: &[(u16, u16)], remove: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(a, b) in ranges {
        let mut pieces = vec![(a as u32, b as u32)];
        for &(ra, rb) in remove {
            let (ra, rb) = (ra as u32, rb as u32);
            pieces = pieces
                .into_iter()
                .flat_map(|(x, y)| {
                    let mut keep = Vec::new();
                    if rb < x || ra > y {
                        keep.push((x, y));
                    } else {
                        if ra > x {
                            keep.push((x, ra - 1));
                        }
                        if rb < y {
                            keep.push((rb + 1, y));
                        }
                    }
                    keep
                })
                .collect();
        }
        out.extend(pieces.into_iter().map(|(x, y)| (x as u16, y as u16)));
    }
    out
}

/// The parts of `ranges` inside `keep`.
pub fn intersect(ranges: &[(u16, u16)], keep: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(a, b) in ranges {
        for &(ka, kb) in keep {
            let (lo, hi) = (a.max(ka), b.min(kb));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_arithmetic() {
        assert_eq!(
            subtract(&[(1, 100)], &[(10, 20), (50, 50)]),
            [(1, 9), (21, 49), (51, 100)]
        );
        assert_eq!(intersect(&[(1, 100)], &[(50, 200)]), [(50, 100)]);
        assert_eq!(
            addr_range("10.0.0.0/8"),
            Some((false, 0x0a000000, 0x0affffff))
        );
        assert_eq!(port_range("ssh"), Some((22, 22)));
    }
}
