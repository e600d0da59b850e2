//! Test vectors and helpers shared by the unit tests of the submodules.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SigningKey;

use super::kdf::SECRET_PAYLOAD_LEN;
use super::{
    DEFAULT_SIGNATURE_COMMENT, KdfLimits, KeyId, PublicKey, SecretKey, Signature, sign, verify,
};

// A throwaway key pair made with `minisign -G -W` (unencrypted, so its
// checksum is all zeros), and signatures it made of `hello\n` with
// `minisign -S` and `minisign -S -l`.
pub(super) const MINISIGN_PUB: &str = "untrusted comment: minisign public key 1E11ECCF1262E915
RWQV6WISz+wRHniMy5rfz8GEGeQ3Q3MKWb5Xz9yiQCinu4y/4/QjgVGT
";
// Kept under tests/: a private key, even a throwaway one, lives nowhere else.
pub(super) const MINISIGN_KEY: &str =
    include_str!("../../../tests/data/minisign/throwaway-test-vector.key");
pub(super) const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key
RUQV6WISz+wRHk+us+5U+6zwt0la7P3KveDPJQ0cw9gBlDOc+sbm5kmQCYc3clG6dr2Rtjluh9b/E/GrYE0Iudd+x28yspfE0A0=
trusted comment: timestamp:1795734152\tfile:f\thashed
IYELVUHqPm2lTXbKbJdTq1CIoFNpb30MmKODD803l/CtQC8iAd1Fu5HdHgisQHPuXgcQSjZapSAPeh6H1IvICw==
";
pub(super) const MINISIGN_LEGACY_SIG: &str = "untrusted comment: signature from minisign secret key
RWQV6WISz+wRHp8zoxQG0I1smPzd8prObWaw9HYZUeHGU4jlWZmh2MsK15Ar4r4OWIkC2e3vcKR1rUd9vUTEUs73xgngQHBrdwc=
trusted comment: timestamp:1795734152\tfile:f
bSmbIQ4OtQT0pIjY6Qq7/768HWukbb0vCJ8+fIbKyBUxF/0dlQlX/gOZWlNi7TG4wPgWqj6GcCW1bdXFlRzzDg==
";
pub(super) const DATA: &[u8] = b"hello\n";

/// N=2^10: milliseconds, even unoptimized.
pub(super) const CHEAP: KdfLimits = KdfLimits {
    opslimit: 32_768,
    memlimit: 1 << 20,
};

pub(super) fn fixed_key(seed: u8) -> SecretKey {
    SecretKey {
        key_id: KeyId([seed, 1, 2, 3, 4, 5, 6, 0xA0]),
        key: SigningKey::from_bytes(&[seed; 32]),
    }
}

pub(super) fn kiln_sig() -> (PublicKey, String) {
    let sk = fixed_key(7);
    let sig = sign(&sk, DATA, "file:hello\tkiln", DEFAULT_SIGNATURE_COMMENT).unwrap();
    (sk.public_key(), sig.to_file_string())
}

pub(super) fn parse_and_verify(pk: &PublicKey, sig_text: &[u8]) -> Result<Signature, String> {
    let sig = Signature::parse(sig_text).map_err(|e| e.to_string())?;
    verify(std::slice::from_ref(pk), &sig, DATA).map_err(|e| e.to_string())?;
    Ok(sig)
}

pub(super) fn expect_err<T: fmt::Debug, E: fmt::Display>(result: Result<T, E>, message: &str) {
    match result {
        Ok(value) => panic!("expected error {message:?}, got {value:?}"),
        Err(e) => assert_eq!(e.to_string(), message),
    }
}

/// A secret key file with the given header fields and an all-zero payload.
pub(super) fn secret_key_file(header: &[u8; 6], opslimit: u64, memlimit: u64) -> String {
    let mut raw = header.to_vec();
    raw.extend_from_slice(&[0; 32]);
    raw.extend_from_slice(&opslimit.to_le_bytes());
    raw.extend_from_slice(&memlimit.to_le_bytes());
    raw.extend_from_slice(&[0; SECRET_PAYLOAD_LEN]);
    format!("untrusted comment: k\n{}\n", BASE64.encode(raw))
}

/// Every byte of `text` with one bit flipped, two bits per byte so that
/// all eight bit positions are covered along the file.
pub(super) fn flipped(text: &str) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    (0..text.len()).flat_map(move |i| {
        [i % 8, (i + 4) % 8].map(|bit| {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] ^= 1 << bit;
            (i, bytes)
        })
    })
}
