//! Verification of a signature and its trusted comment against trusted
//! public keys.

use std::io::Read;

use super::signature::blake2b512;
use super::{Algorithm, PublicKey, Signature, VerifyError};

/// minisign signs legacy data only below 1 GiB; kiln verifies under the same limit.
const MAX_LEGACY_DATA_LEN: u64 = 1 << 30;

/// Verifies a prehashed signature of `data` (read to the end, streaming) by
/// one of the trusted `keys`, and its trusted comment; returns the key that
/// made it. Legacy `"Ed"` signatures are refused ([`VerifyError::Legacy`]).
pub fn verify<'k>(
    keys: &'k [PublicKey],
    sig: &Signature,
    data: impl Read,
) -> Result<&'k PublicKey, VerifyError> {
    verify_with(keys, sig, data, false)
}

/// Like [`verify`], but also accepts legacy `"Ed"` signatures. Those cover
/// the raw data, so it is read into memory, up to 1 GiB as in minisign.
pub fn verify_allow_legacy<'k>(
    keys: &'k [PublicKey],
    sig: &Signature,
    data: impl Read,
) -> Result<&'k PublicKey, VerifyError> {
    verify_with(keys, sig, data, true)
}

fn verify_with<'k>(
    keys: &'k [PublicKey],
    sig: &Signature,
    data: impl Read,
    allow_legacy: bool,
) -> Result<&'k PublicKey, VerifyError> {
    if sig.algorithm == Algorithm::Legacy && !allow_legacy {
        return Err(VerifyError::Legacy);
    }
    // Check the key id first: no point reading the data for an unknown key.
    let candidates = || keys.iter().filter(|k| k.key_id == sig.key_id);
    if candidates().next().is_none() {
        return Err(VerifyError::UnknownKey {
            signed_by: sig.key_id,
            trusted: keys.iter().map(|k| k.key_id).collect(),
        });
    }
    let message = match sig.algorithm {
        Algorithm::Prehashed => blake2b512(data).map_err(VerifyError::Io)?.to_vec(),
        Algorithm::Legacy => read_at_most(data, MAX_LEGACY_DATA_LEN)?,
    };
    let signature = ed25519_dalek::Signature::from_bytes(&sig.signature);
    let global_signature = ed25519_dalek::Signature::from_bytes(&sig.global_signature);
    let global_message = [&sig.signature[..], sig.trusted_comment.as_bytes()].concat();
    // Same order as minisign: the data first, then the trusted comment. Keys
    // sharing the id are all tried (ids are only 64 random bits).
    let mut error = VerifyError::DataMismatch;
    for key in candidates() {
        if key.key.verify_strict(&message, &signature).is_ok() {
            if key
                .key
                .verify_strict(&global_message, &global_signature)
                .is_ok()
            {
                return Ok(key);
            }
            error = VerifyError::TrustedCommentModified;
        }
    }
    Err(error)
}

/// All of `data` when it is at most `limit` bytes long, reading no more
/// than one byte past the limit.
fn read_at_most(data: impl Read, limit: u64) -> Result<Vec<u8>, VerifyError> {
    let mut message = Vec::new();
    data.take(limit + 1)
        .read_to_end(&mut message)
        .map_err(VerifyError::Io)?;
    if message.len() as u64 > limit {
        return Err(VerifyError::LegacyDataTooLarge);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::test_support::*;
    use crate::{SecretKey, sign};

    #[test]
    fn legacy_signatures_need_the_explicit_function() {
        let keys = [PublicKey::parse(MINISIGN_PUB).unwrap()];
        let sig = Signature::parse(MINISIGN_LEGACY_SIG).unwrap();
        assert_eq!(sig.algorithm(), Algorithm::Legacy);
        assert_eq!(sig.to_file_string(), MINISIGN_LEGACY_SIG);
        expect_err(
            verify(&keys, &sig, DATA),
            "legacy signature (algorithm \"Ed\", made with `minisign -S -l`) refused: \
             only prehashed \"ED\" signatures are accepted; re-sign without -l",
        );
        verify_allow_legacy(&keys, &sig, DATA).unwrap();
        expect_err(
            verify_allow_legacy(&keys, &sig, &b"hello"[..]),
            "signature does not match the data",
        );
        // A prehashed signature relabelled as legacy must not verify.
        let mut relabelled = Signature::parse(MINISIGN_SIG).unwrap();
        relabelled.algorithm = Algorithm::Legacy;
        expect_err(
            verify_allow_legacy(&keys, &relabelled, DATA),
            "signature does not match the data",
        );
    }

    /// The legacy data limit, at a size a test can afford (the real one is
    /// 1 GiB): up to the limit is read whole, one byte more is refused, and
    /// nothing past that byte is read.
    #[test]
    fn legacy_data_is_read_up_to_the_limit_and_no_further() {
        let data = [7u8; 12];
        assert_eq!(read_at_most(&data[..10], 10).unwrap(), [7u8; 10]);
        assert_eq!(read_at_most(&data[..9], 10).unwrap(), [7u8; 9]);
        assert_eq!(read_at_most(&data[..0], 10).unwrap(), [0u8; 0]);
        for len in [11, 12] {
            expect_err(
                read_at_most(&data[..len], 10),
                "legacy signatures cover the raw data, which must be at most 1 GiB (as in minisign)",
            );
        }
        let mut endless = io::repeat(1);
        expect_err(
            read_at_most(&mut endless, 10),
            "legacy signatures cover the raw data, which must be at most 1 GiB (as in minisign)",
        );
        // exactly one byte past the limit was taken from the reader
        let mut rest = &data[..];
        assert!(read_at_most(&mut rest, 10).is_err());
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn verify_names_the_signing_key_and_the_trusted_ones() {
        let (_, sig) = kiln_sig();
        let sig = Signature::parse(sig).unwrap();
        let (a, b) = (fixed_key(1).public_key(), fixed_key(2).public_key());
        expect_err(
            verify(&[], &sig, DATA),
            "signature was made with key A006050403020107 but no trusted key was given",
        );
        expect_err(
            verify(std::slice::from_ref(&a), &sig, DATA),
            "signature was made with key A006050403020107 but the trusted key is A006050403020101",
        );
        expect_err(
            verify(&[a, b], &sig, DATA),
            "signature was made with key A006050403020107 but the trusted keys are \
             A006050403020101, A006050403020102",
        );
    }

    #[test]
    fn keys_sharing_an_id_are_all_tried() {
        let (right, sig) = kiln_sig();
        let sig = Signature::parse(sig).unwrap();
        let mut impostor = fixed_key(8).public_key();
        impostor.key_id = right.key_id();
        expect_err(
            verify(std::slice::from_ref(&impostor), &sig, DATA),
            "signature does not match the data",
        );
        let keys = [impostor, right];
        assert_eq!(verify(&keys, &sig, DATA).unwrap(), &keys[1]);
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let sk = fixed_key(1);
        expect_err(
            sign(&sk, Failing, "", ""),
            "reading the data to sign: disk on fire",
        );
        let sig = sign(&sk, DATA, "", "").unwrap();
        expect_err(
            verify(&[sk.public_key()], &sig, Failing),
            "reading the signed data: disk on fire",
        );
    }

    #[test]
    fn random_garbage_never_panics() {
        // xorshift64*: deterministic, no dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let (pk, sig) = kiln_sig();
        let seeds = [
            sig.into_bytes(),
            pk.to_file_string(None).unwrap().into_bytes(),
            MINISIGN_KEY.as_bytes().to_vec(),
        ];
        let alphabet =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n\r: \xff\x00";
        for round in 0..3000 {
            let mut text = seeds[round % seeds.len()].clone();
            // Overwrite, insert or delete a few bytes, or produce pure noise.
            for _ in 0..1 + next() % 4 {
                let pos = (next() as usize) % (text.len() + 1);
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 4 {
                    0 if pos < text.len() => text[pos] = byte,
                    1 => text.insert(pos, byte),
                    2 if pos < text.len() => {
                        text.remove(pos);
                    }
                    _ => text.truncate(pos),
                }
            }
            if round % 10 == 0 {
                text = (0..next() % 300).map(|_| next() as u8).collect();
            }
            if let Ok(sig) = Signature::parse(&text) {
                let _ = verify_allow_legacy(std::slice::from_ref(&pk), &sig, DATA);
            }
            let _ = PublicKey::parse(&text);
            let _ = SecretKey::parse(&text, Some("pw"));
        }
    }
}
