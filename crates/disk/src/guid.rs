//! GUIDs: parsing, their two byte orders, and the ones kiln derives.
//!
//! A [`Guid`] holds its 16 bytes in the order the text form is written
//! (RFC 4122 / RFC 9562 "network" order), which is also how systemd's
//! `sd_id128_t` and the dm-verity superblock store them. GPT stores the
//! first three fields little-endian ("mixed-endian"); [`Guid::to_gpt`] and
//! [`Guid::from_gpt`] convert.

use anyhow::{Result, bail};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// A GUID derived from content: the first 128 bits of
    /// `sha256("kiln-disk" 0 purpose 0 (len part)*)`, marked as a random
    /// (version 4, RFC 4122 variant) UUID as systemd-repart does for the
    /// UUIDs it derives, so tools that check the version accept it. Each
    /// part is length-prefixed so no two part lists hash alike.
    pub fn derive(purpose: &str, parts: &[&[u8]]) -> Guid {
        let digest = derive_bytes(purpose, parts);
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(b)
    }

    /// The 16 bytes as GPT stores them: the first three fields
    /// little-endian, the last eight bytes as written.
    pub fn to_gpt(self) -> [u8; 16] {
        let b = self.0;
        let mut out = b;
        out[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
        out[4..6].copy_from_slice(&[b[5], b[4]]);
        out[6..8].copy_from_slice(&[b[7], b[6]]);
        out
    }

    pub fn from_gpt(bytes: [u8; 16]) -> Guid {
        // The swap is its own inverse.
        Guid(Guid(bytes).to_gpt())
    }

    pub fn is_zero(self) -> bool {
        self.0 == [0; 16]
    }
}

/// `sha256("kiln-disk" 0 purpose 0 (u64-le length, bytes)*)`: the one way
/// kiln derives identifiers and salts from content.
pub fn derive_bytes(purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kiln-disk\0");
    h.update(purpose.as_bytes());
    h.update([0]);
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl FromStr for Guid {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Guid> {
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        let dashes: Vec<usize> = s.match_indices('-').map(|(i, _)| i).collect();
        let mut out = [0u8; 16];
        if s.len() != 36
            || dashes != [8, 13, 18, 23]
            || hex::decode_to_slice(&hex, &mut out).is_err()
        {
            bail!("\"{s}\" is not a GUID: expected 8-4-4-4-12 hexadecimal digits");
        }
        Ok(Guid(out))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Partition type GUIDs of the UAPI Discoverable Partitions Specification
/// (and the UEFI ESP), so systemd-gpt-auto-generator, systemd-repart and
/// systemd-dissect recognise each partition by its type alone.
pub mod dps {
    use super::Guid;

    const fn g(s: &str) -> Guid {
        // Compile-time parse of the 36-character text form.
        let b = s.as_bytes();
        let mut out = [0u8; 16];
        let mut i = 0;
        let mut o = 0;
        while i < b.len() {
            if b[i] == b'-' {
                i += 1;
                continue;
            }
            out[o] = (nibble(b[i]) << 4) | nibble(b[i + 1]);
            o += 1;
            i += 2;
        }
        Guid(out)
    }

    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex digit in a GUID constant"),
        }
    }

    pub const ESP: Guid = g("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    pub const XBOOTLDR: Guid = g("bc13c2ff-59e6-4262-a352-b275fd6f7172");
    pub const ROOT_X86_64: Guid = g("4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
    pub const ROOT_VERITY_X86_64: Guid = g("2c7357ed-ebd2-46d9-aec1-23d437ec2bf5");
    pub const ROOT_VERITY_SIG_X86_64: Guid = g("41092b05-9fc8-4523-994f-2def0408b176");
    pub const ROOT_ARM64: Guid = g("b921b045-1df0-41c3-af44-4c6f280d3fae");
    pub const ROOT_VERITY_ARM64: Guid = g("df3300ce-d69f-4c92-978c-9bfb0f38d820");
    pub const ROOT_VERITY_SIG_ARM64: Guid = g("6db69de6-29f4-4758-a7a5-962190f00ce3");
    /// /var: mounted automatically only when its partition UUID is
    /// HMAC-SHA256(machine-id, this type) — so it is made on the node at
    /// first boot (systemd-repart), never in the image.
    pub const VAR: Guid = g("4d21b016-b534-45c2-a9fb-5c16e091fd2d");
    pub const LINUX_DATA: Guid = g("0fc63daf-8483-4772-8e79-3d69d8477de4");

    /// GPT attribute bit 60: mount read-only (DPS; set on root and verity).
    pub const FLAG_READ_ONLY: u64 = 1 << 60;
    /// GPT attribute bit 63: no automatic discovery.
    pub const FLAG_NO_AUTO: u64 = 1 << 63;
    /// GPT attribute bit 59: grow the file system to the partition.
    pub const FLAG_GROW_FS: u64 = 1 << 59;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_errors() {
        let s = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
        let g: Guid = s.parse().unwrap();
        assert_eq!(g.to_string(), s);
        assert_eq!(g, dps::ROOT_X86_64);
        for bad in [
            "",
            "4f68bce3e8cd4db196e7fbcaf984b709",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b70",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b70x",
            "4f68bce-3e8cd-4db1-96e7-fbcaf984b709",
        ] {
            let e = bad.parse::<Guid>().unwrap_err().to_string();
            assert!(e.contains("is not a GUID"), "{e}");
        }
    }

    #[test]
    fn gpt_byte_order_is_mixed_endian() {
        // The ESP type as it appears on every GPT disk.
        let on_disk = hex::decode("28732ac11ff8d211ba4b00a0c93ec93b").unwrap();
        assert_eq!(dps::ESP.to_gpt().as_slice(), on_disk.as_slice());
        assert_eq!(Guid::from_gpt(dps::ESP.to_gpt()), dps::ESP);
    }

    #[test]
    fn derived_guids_are_v4_stable_and_separated() {
        let a = Guid::derive("disk", &[b"node", b"1.0"]);
        assert_eq!(a, Guid::derive("disk", &[b"node", b"1.0"]));
        assert_ne!(a, Guid::derive("esp", &[b"node", b"1.0"]));
        // Length prefixes: moving a byte between parts changes the result.
        assert_ne!(a, Guid::derive("disk", &[b"node1", b".0"]));
        assert_eq!(a.0[6] >> 4, 4);
        assert_eq!(a.0[8] >> 6, 0b10);
    }
}
