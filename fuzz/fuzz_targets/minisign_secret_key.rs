//! A hostile secret key file: `SecretKey::parse(data, Some("pw"))`.
//!
//! kiln refuses scrypt costs above minisign's own (1 GiB, about a second of
//! work), but even that is far too slow to fuzz: inputs whose scrypt cost is
//! above CAP are skipped here, before kiln sees them. Cheaper KDF inputs
//! (the seed uses N=2^10) still exercise decryption and the checks after it.
//!
//! Property: a parsed key writes back (unencrypted) to a file that parses
//! to the same key.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kiln_minisign::SecretKey;
use libfuzzer_sys::fuzz_target;

/// Most scrypt memory (N·r·p·128 bytes) an input may cost: N=2^10, r=8, p=1,
/// a few milliseconds.
const CAP: u128 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if too_costly(data) {
        return;
    }
    let key = match SecretKey::parse(data, Some("pw")) {
        Ok(key) => key,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = format!("{key:?}");
    let public = key.public_key();
    let file = key
        .to_file_string(None)
        .expect("unencrypted keys need no KDF");
    let again = SecretKey::parse(&file, None).expect("to_file_string(None) parses");
    assert_eq!(again.key_id(), key.key_id());
    assert_eq!(again.public_key(), public);
});

/// Whether any line decodes to an `Sc` secret key whose scrypt cost (as
/// kiln computes it, `scrypt_params` in crates/minisign/src) exceeds CAP.
/// Checking every line, not just the second, errs on the side of skipping.
fn too_costly(data: &[u8]) -> bool {
    data.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(raw) = BASE64.decode(line) else {
            return false;
        };
        if raw.len() != 158 || raw[2..4] != *b"Sc" {
            return false;
        }
        let opslimit = u64::from_le_bytes(raw[38..46].try_into().unwrap());
        let memlimit = u64::from_le_bytes(raw[46..54].try_into().unwrap());
        let (log_n, r, p) = scrypt_params(opslimit, memlimit);
        (1u128 << log_n) * u128::from(r) * u128::from(p) * 128 > CAP
    })
}

/// A copy of kiln's private `scrypt_params` (libsodium's choice of N, r, p).
fn scrypt_params(opslimit: u64, memlimit: u64) -> (u32, u32, u32) {
    let opslimit = opslimit.max(32768);
    let r = 8;
    let log_n_for = |max_n: u64| (1..63).find(|&l| 1u64 << l > max_n / 2).unwrap_or(63);
    if opslimit < memlimit / 32 {
        (log_n_for(opslimit / (u64::from(r) * 4)), r, 1)
    } else {
        let log_n = log_n_for(memlimit / (u64::from(r) * 128));
        let max_rp = ((opslimit / 4) >> log_n).min(0x3fff_ffff);
        (log_n, r, (max_rp / u64::from(r)) as u32)
    }
}
