//! scrypt for encrypted secret keys: libsodium's choice of parameters from
//! the opslimit and memlimit a key file stores, capped at minisign's cost.

use super::Error;

/// key id (8) ‖ seed and public key (64) ‖ checksum (32): the part of a
/// secret key file the scrypt stream encrypts.
pub(super) const SECRET_PAYLOAD_LEN: usize = 8 + 64 + 32;

/// scrypt cost of an encrypted secret key, in the libsodium units the key
/// file stores (`crypto_pwhash_scryptsalsa208sha256` opslimit and memlimit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfLimits {
    pub opslimit: u64,
    pub memlimit: u64,
}

impl KdfLimits {
    /// What minisign uses: scrypt N=2^20, r=8, p=1 (1 GiB of memory).
    pub const MINISIGN: KdfLimits = KdfLimits {
        opslimit: 33_554_432,
        memlimit: 1_073_741_824,
    };
}

/// Most scrypt memory (N·r·p·128 bytes) kiln spends on a key file: minisign's
/// default, so a hostile file cannot make kiln allocate terabytes.
const MAX_SCRYPT_COST: u128 = 1 << 30;

/// scrypt (log2 N, r, p) for opslimit and memlimit, picked exactly as
/// libsodium's `crypto_pwhash_scryptsalsa208sha256` does.
fn scrypt_params(limits: KdfLimits) -> (u32, u32, u32) {
    let opslimit = limits.opslimit.max(32768);
    let r = 8;
    // Smallest log2 N in 1..63 with N > max_n / 2, else 63.
    let log_n_for = |max_n: u64| (1..63).find(|&l| 1u64 << l > max_n / 2).unwrap_or(63);
    if opslimit < limits.memlimit / 32 {
        (log_n_for(opslimit / (u64::from(r) * 4)), r, 1)
    } else {
        let log_n = log_n_for(limits.memlimit / (u64::from(r) * 128));
        let max_rp = ((opslimit / 4) >> log_n).min(0x3fff_ffff);
        // Lossless: max_rp is below 2^30.
        (log_n, r, (max_rp / u64::from(r)) as u32)
    }
}

/// scrypt's parameters for `limits`, refused when they cost more memory
/// than [`MAX_SCRYPT_COST`] or scrypt rejects them.
fn checked_params(limits: KdfLimits) -> Result<scrypt::Params, Error> {
    let (log_n, r, p) = scrypt_params(limits);
    let cost = (1u128 << log_n) * u128::from(r) * u128::from(p) * 128;
    if cost > MAX_SCRYPT_COST {
        return Err(Error::KdfLimits(limits));
    }
    // The length argument only matters for scrypt's PHC strings, unused here.
    scrypt::Params::new(log_n as u8, r, p, scrypt::Params::RECOMMENDED_LEN)
        .map_err(|_| Error::KdfLimits(limits))
}

/// The 104 bytes of scrypt output that encrypt a secret key's payload.
pub(super) fn scrypt_stream(
    password: &str,
    salt: &[u8],
    limits: KdfLimits,
) -> Result<[u8; SECRET_PAYLOAD_LEN], Error> {
    let params = checked_params(limits)?;
    let mut stream = [0u8; SECRET_PAYLOAD_LEN];
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut stream)
        .map_err(|_| Error::KdfLimits(limits))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;
    use crate::test_support::*;

    #[test]
    fn scrypt_params_match_libsodium() {
        let params = |opslimit, memlimit| scrypt_params(KdfLimits { opslimit, memlimit });
        // minisign's default, and what it falls back to on low memory.
        assert_eq!(scrypt_params(KdfLimits::MINISIGN), (20, 8, 1));
        assert_eq!(params(1 << 24, 1 << 29), (19, 8, 1));
        assert_eq!(params(524_288, 16_777_216), (14, 8, 1));
        assert_eq!(scrypt_params(CHEAP), (10, 8, 1));
        // opslimit < memlimit / 32: N comes from opslimit, p = 1.
        assert_eq!(params(32_768, 1 << 30), (10, 8, 1));
        assert_eq!(params(1 << 20, 1 << 30), (15, 8, 1));
        // opslimit is raised to 32768.
        assert_eq!(params(0, 1 << 20), (10, 8, 1));
        // Little memory, many operations: p grows.
        assert_eq!(params(1 << 25, 1 << 20), (10, 8, 1024));
        // Absurd limits: N tops out at 2^63 and p at 0x3fffffff / 8.
        assert_eq!(params(u64::MAX, u64::MAX).0, 53);
        assert_eq!(params(u64::MAX, 0), (1, 8, 0x3fff_ffff / 8));
    }

    /// The cap lets through exactly minisign's cost (N·r·p·128 = 2^30), by
    /// a large N or by a large p, and nothing above it.
    #[test]
    fn the_cost_cap_admits_minisigns_default_and_no_more() {
        let params = |opslimit, memlimit| {
            checked_params(KdfLimits { opslimit, memlimit })
                .map(|p| (p.log_n(), p.r(), p.p()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(params(33_554_432, 1 << 30), Ok((20, 8, 1)));
        assert_eq!(params(1 << 25, 1 << 20), Ok((10, 8, 1024)));
        assert_eq!(params(32_768, 1 << 20), Ok((10, 8, 1)));
        // one step above: twice the memory, or twice the passes
        assert!(params(1 << 26, 1 << 31).is_err());
        assert!(params(1 << 26, 1 << 20).is_err());
    }

    #[test]
    fn hostile_kdf_limits_are_refused_before_any_work() {
        for (opslimit, memlimit) in [
            (u64::MAX, u64::MAX),
            (u64::MAX, 0),
            (1 << 26, 1 << 31), // twice minisign's default
        ] {
            expect_err(
                SecretKey::parse(secret_key_file(b"EdScB2", opslimit, memlimit), Some("")),
                &format!(
                    "unsupported scrypt limits (opslimit {opslimit}, memlimit {memlimit}): \
                     kiln accepts valid limits up to minisign's default (N=2^20, r=8, p=1)"
                ),
            );
        }
        expect_err(
            fixed_key(1).to_file_string_with_kdf(
                "pw",
                KdfLimits {
                    opslimit: u64::MAX,
                    memlimit: 0,
                },
            ),
            "unsupported scrypt limits (opslimit 18446744073709551615, memlimit 0): \
             kiln accepts valid limits up to minisign's default (N=2^20, r=8, p=1)",
        );
    }
}
