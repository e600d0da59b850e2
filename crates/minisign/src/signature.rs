//! Signature files (signature, trusted comment, global signature) and
//! signing.

use std::io::{self, Read};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use blake2::{Blake2b512, Digest};
use ed25519_dalek::Signer;

use super::encoding::{
    ALG_LEGACY, ALG_PREHASHED, TRUSTED_PREFIX, UNTRUSTED_PREFIX, array, check_algorithm,
    check_comment, comment, decode, lines,
};
use super::{CommentKind, Error, KeyId, SecretKey};

const SIGNATURE_LEN: usize = 2 + 8 + 64;

/// What a signature's Ed25519 signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `"ED"`: the BLAKE2b-512 hash of the data (minisign's default since 0.11).
    Prehashed,
    /// `"Ed"`: the raw data (`minisign -S -l`).
    Legacy,
}

/// A parsed minisign signature file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub(super) algorithm: Algorithm,
    pub(super) key_id: KeyId,
    pub(super) signature: [u8; 64],
    pub(super) untrusted_comment: String,
    pub(super) trusted_comment: String,
    pub(super) global_signature: [u8; 64],
}

impl Signature {
    /// Parses a signature file. This checks the format only; see [`verify`](super::verify).
    pub fn parse(text: impl AsRef<[u8]>) -> Result<Signature, Error> {
        const FILE: &str = "signature file";
        const CONTENTS: [&str; 4] = [
            "untrusted comment",
            "signature",
            "trusted comment",
            "global signature",
        ];
        let lines = lines(text.as_ref());
        let [untrusted, encoded, trusted, encoded_global, ref extra @ ..] = lines[..] else {
            return Err(Error::MissingLine {
                file: FILE,
                line: lines.len() + 1,
                content: CONTENTS[lines.len()],
            });
        };
        let untrusted_comment = comment(untrusted, UNTRUSTED_PREFIX, FILE, 1)?;
        let raw: [u8; SIGNATURE_LEN] = decode(encoded, "signature file (line 2)")?;
        let algorithm = match check_algorithm(
            &raw[..2],
            &[ALG_PREHASHED, ALG_LEGACY],
            "signature file (line 2)",
        )? {
            ALG_PREHASHED => Algorithm::Prehashed,
            _ => Algorithm::Legacy,
        };
        let trusted_comment = comment(trusted, TRUSTED_PREFIX, FILE, 3)?;
        let global_signature = decode(encoded_global, "signature file (global signature, line 4)")?;
        if !extra.is_empty() {
            return Err(Error::ExtraContent {
                file: FILE,
                after_line: 4,
            });
        }
        Ok(Signature {
            algorithm,
            key_id: KeyId(array(&raw[2..10])),
            signature: array(&raw[10..]),
            untrusted_comment: untrusted_comment.to_owned(),
            trusted_comment: trusted_comment.to_owned(),
            global_signature,
        })
    }

    /// The signature file, in the four-line format minisign writes.
    pub fn to_file_string(&self) -> String {
        let algorithm = match self.algorithm {
            Algorithm::Prehashed => ALG_PREHASHED,
            Algorithm::Legacy => ALG_LEGACY,
        };
        let mut raw = Vec::with_capacity(SIGNATURE_LEN);
        raw.extend_from_slice(&algorithm);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(&self.signature);
        format!(
            "{UNTRUSTED_PREFIX}{}\n{}\n{TRUSTED_PREFIX}{}\n{}\n",
            self.untrusted_comment,
            BASE64.encode(raw),
            self.trusted_comment,
            BASE64.encode(self.global_signature)
        )
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Id of the key that made the signature, as the file claims.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The trusted comment, without its `trusted comment: ` prefix. It is
    /// authenticated only once [`verify`](super::verify) succeeds.
    pub fn trusted_comment(&self) -> &str {
        &self.trusted_comment
    }

    /// The untrusted comment, without its prefix. Never authenticated.
    pub fn untrusted_comment(&self) -> &str {
        &self.untrusted_comment
    }
}

/// Signs `data` (read to the end, streaming) with a prehashed `"ED"`
/// signature. Comments go without their `trusted comment: ` /
/// `untrusted comment: ` prefixes and must fit on one line.
pub fn sign(
    sk: &SecretKey,
    data: impl Read,
    trusted_comment: &str,
    untrusted_comment: &str,
) -> Result<Signature, Error> {
    check_comment(CommentKind::Trusted, trusted_comment)?;
    check_comment(CommentKind::Untrusted, untrusted_comment)?;
    let hash = blake2b512(data).map_err(Error::Io)?;
    let signature = sk.key.sign(&hash).to_bytes();
    let global_signature = sk
        .key
        .sign(&[&signature[..], trusted_comment.as_bytes()].concat())
        .to_bytes();
    Ok(Signature {
        algorithm: Algorithm::Prehashed,
        key_id: sk.key_id,
        signature,
        untrusted_comment: untrusted_comment.to_owned(),
        trusted_comment: trusted_comment.to_owned(),
        global_signature,
    })
}

/// BLAKE2b-512 of all of `data`: what a prehashed signature signs.
pub(super) fn blake2b512(mut data: impl Read) -> io::Result<[u8; 64]> {
    let mut hasher = Blake2b512::new();
    io::copy(&mut data, &mut hasher)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use crate::{PublicKey, verify};

    #[test]
    fn minisign_files_parse_verify_and_reproduce() {
        let pk = PublicKey::parse(MINISIGN_PUB).unwrap();
        let sk = SecretKey::parse(MINISIGN_KEY, None).unwrap();
        assert_eq!(sk.public_key(), pk);
        assert_eq!(pk.to_file_string(None).unwrap(), MINISIGN_PUB);

        let sig = Signature::parse(MINISIGN_SIG).unwrap();
        assert_eq!(sig.algorithm(), Algorithm::Prehashed);
        assert_eq!(sig.key_id(), pk.key_id());
        assert_eq!(
            sig.untrusted_comment(),
            "signature from minisign secret key"
        );
        assert_eq!(
            sig.trusted_comment(),
            "timestamp:1795734152\tfile:f\thashed"
        );
        assert_eq!(sig.to_file_string(), MINISIGN_SIG);
        let keys = [pk];
        assert_eq!(verify(&keys, &sig, DATA).unwrap(), &keys[0]);

        // Deterministic Ed25519: kiln reproduces minisign's file byte for byte.
        let ours = sign(&sk, DATA, sig.trusted_comment(), sig.untrusted_comment()).unwrap();
        assert_eq!(ours.to_file_string(), MINISIGN_SIG);
    }

    #[test]
    fn malformed_signature_files_are_errors_with_precise_messages() {
        let (_, sig) = kiln_sig();
        let sig_lines: Vec<&str> = sig.lines().collect();
        let b64 = |bytes: &[u8]| BASE64.encode(bytes);
        let raw_sig = BASE64.decode(sig_lines[1]).unwrap();
        let with_line = |n: usize, line: &str| {
            let mut lines = sig_lines.clone();
            lines[n] = line;
            lines.join("\n")
        };
        let mut bad_alg = raw_sig.clone();
        bad_alg[..2].copy_from_slice(b"\0\x01");

        let cases: Vec<(String, Result<Signature, Error>, &str)> = vec![
            (
                "empty".into(),
                Signature::parse(""),
                "signature file: line 1 (untrusted comment) is missing",
            ),
            (
                "1 line".into(),
                Signature::parse(sig_lines[0]),
                "signature file: line 2 (signature) is missing",
            ),
            (
                "2 lines".into(),
                Signature::parse(sig_lines[..2].join("\n")),
                "signature file: line 3 (trusted comment) is missing",
            ),
            (
                "3 lines".into(),
                Signature::parse(sig_lines[..3].join("\n")),
                "signature file: line 4 (global signature) is missing",
            ),
            (
                "extra line".into(),
                Signature::parse(format!("{sig}more\n")),
                "signature file: unexpected content after line 4",
            ),
            (
                "blank line inside".into(),
                Signature::parse(format!("{}\n\n{}", sig_lines[0], sig_lines[1..].join("\n"))),
                "signature file (line 2): expected 74 bytes after base64 decoding, found 0",
            ),
            (
                "no untrusted prefix".into(),
                Signature::parse(with_line(0, "comment: x")),
                "signature file: line 1 must start with \"untrusted comment: \"",
            ),
            (
                "no trusted prefix".into(),
                Signature::parse(with_line(2, "trusted comment:x")),
                "signature file: line 3 must start with \"trusted comment: \"",
            ),
            (
                "bad base64".into(),
                Signature::parse(with_line(1, "RU!!")),
                "signature file (line 2): invalid base64: Invalid symbol 33, offset 2.",
            ),
            (
                "whitespace in base64".into(),
                Signature::parse(with_line(1, &format!("{} ", sig_lines[1]))),
                "signature file (line 2): invalid base64: Invalid symbol 32, offset 100.",
            ),
            (
                "short signature".into(),
                Signature::parse(with_line(1, &b64(&raw_sig[..73]))),
                "signature file (line 2): expected 74 bytes after base64 decoding, found 73",
            ),
            (
                "long signature".into(),
                Signature::parse(with_line(1, &b64(&[raw_sig.clone(), vec![0]].concat()))),
                "signature file (line 2): expected 74 bytes after base64 decoding, found 75",
            ),
            (
                "short global signature".into(),
                Signature::parse(with_line(3, &b64(&[0; 63]))),
                "signature file (global signature, line 4): expected 64 bytes after base64 decoding, found 63",
            ),
            (
                "algorithm".into(),
                Signature::parse(with_line(1, &b64(&bad_alg))),
                "signature file (line 2): unsupported signature algorithm \"\\x00\\x01\" (expected \"ED\" or \"Ed\")",
            ),
            (
                "non-UTF-8 trusted comment".into(),
                Signature::parse(
                    [sig_lines[0], "\n", sig_lines[1], "\ntrusted comment: "]
                        .concat()
                        .into_bytes()
                        .into_iter()
                        .chain(*b"\xff\n")
                        .chain(sig_lines[3].bytes())
                        .collect::<Vec<u8>>(),
                ),
                "signature file: line 3 is not valid UTF-8",
            ),
        ];
        for (name, result, message) in cases {
            match result {
                Ok(_) => panic!("{name}: parsed, expected {message:?}"),
                Err(e) => assert_eq!(e.to_string(), message, "{name}"),
            }
        }
    }

    #[test]
    fn signing_streams_and_matches_in_memory_data() {
        // 8 MiB through a reader that returns a few bytes at a time.
        struct Trickle(io::Take<io::Repeat>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(4093);
                self.0.read(&mut buf[..n])
            }
        }
        let len = 8 << 20;
        let sk = fixed_key(4);
        let streamed = sign(&sk, Trickle(io::repeat(0x5a).take(len)), "c", "").unwrap();
        let in_memory = sign(&sk, &vec![0x5a; len as usize][..], "c", "").unwrap();
        assert_eq!(streamed, in_memory);
        verify(&[sk.public_key()], &streamed, io::repeat(0x5a).take(len)).unwrap();
        expect_err(
            verify(
                &[sk.public_key()],
                &streamed,
                io::repeat(0x5a).take(len + 1),
            ),
            "signature does not match the data",
        );
    }

    #[test]
    fn flipped_signature_bytes_are_caught() {
        let (pk, sig) = kiln_sig();
        let original = Signature::parse(&sig).unwrap();
        let first_line_end = sig.find('\n').unwrap();
        for (i, text) in flipped(&sig) {
            if let Ok(parsed) = parse_and_verify(&pk, &text) {
                // Only the untrusted comment may change: it is not signed.
                assert!(i < first_line_end, "byte {i}: tampered signature accepted");
                assert_eq!(
                    Signature {
                        untrusted_comment: original.untrusted_comment.clone(),
                        ..parsed
                    },
                    original
                );
            }
        }
    }

    #[test]
    fn truncated_signature_files_are_refused() {
        let (pk, sig) = kiln_sig();
        // Dropping only the final newline is fine; any other cut is not.
        for len in 0..sig.len() - 1 {
            assert!(
                parse_and_verify(&pk, &sig.as_bytes()[..len]).is_err(),
                "truncated to {len} bytes, still accepted"
            );
        }
    }
}
