//! A hostile signature file: `Signature::parse`, then `verify` (and
//! `verify_allow_legacy`) against a fixed public key and fixed data.
//!
//! Property: no input other than a real signature passes verification with
//! a different trusted comment or signature (no forgery).
#![no_main]

use std::sync::LazyLock;

use kiln_minisign::{PublicKey, Signature};
use libfuzzer_sys::fuzz_target;

/// The seeds' key pair and data (fuzz/make-seeds.sh).
const PUBLIC_KEY: &str = include_str!("../seeds/minisign_public_key/minisign.pub");
const DATA: &[u8] = b"kiln fuzz data\n";
const SEED_SIGNATURES: [&str; 2] = [
    include_str!("../seeds/minisign_signature/prehashed.minisig"),
    include_str!("../seeds/minisign_signature/legacy.minisig"),
];

static KEYS: LazyLock<[PublicKey; 1]> =
    LazyLock::new(|| [PublicKey::parse(PUBLIC_KEY).expect("the seed public key parses")]);
static GENUINE: LazyLock<Vec<Signature>> = LazyLock::new(|| {
    SEED_SIGNATURES
        .iter()
        .map(|text| Signature::parse(text).expect("the seed signatures parse"))
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(sig) = Signature::parse(data) else {
        return;
    };
    let _ = (sig.algorithm(), sig.key_id(), sig.trusted_comment());
    let _ = sig.untrusted_comment();
    let _ = sig.to_file_string();
    let strict = kiln_minisign::verify(&KEYS[..], &sig, DATA);
    let legacy = kiln_minisign::verify_allow_legacy(&KEYS[..], &sig, DATA);
    if let Err(e) = &strict {
        let _ = e.to_string();
    }
    if strict.is_ok() || legacy.is_ok() {
        // Only the untrusted comment may differ from a genuine signature.
        let signed_part = |sig: &Signature| {
            let text = sig.to_file_string();
            text.split_once('\n').map(|(_, rest)| rest.to_owned())
        };
        let forged = !GENUINE
            .iter()
            .any(|genuine| signed_part(genuine) == signed_part(&sig));
        assert!(
            !forged,
            "verification accepted a modified signature: {sig:?}"
        );
    }
});
