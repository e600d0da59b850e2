//! Minisign-compatible Ed25519 keys and signatures.
//!
//! Reads and writes the file formats of [minisign](https://jedisct1.github.io/minisign/)
//! 0.11, so that images signed by kiln verify with `minisign -V` and keys
//! made by `minisign -G` work in kiln:
//!
//! - public key: an `untrusted comment: ` line, then base64 of
//!   `"Ed"` ‖ key id (8) ‖ Ed25519 public key (32);
//! - secret key: a comment line, then base64 of `"Ed"` ‖ KDF (`"Sc"` or two
//!   zero bytes) ‖ `"B2"` ‖ salt (32) ‖ opslimit (u64 LE) ‖ memlimit (u64 LE) ‖
//!   key id (8) ‖ seed and public key (64) ‖ BLAKE2b-256 checksum (32), the
//!   last 104 bytes XORed with scrypt output when the key is encrypted;
//! - signature: untrusted comment, base64 of algorithm ‖ key id ‖ signature,
//!   `trusted comment: ` line, base64 of the global signature (Ed25519 over
//!   the signature ‖ trusted comment).
//!
//! kiln always signs "prehashed" (`"ED"`: Ed25519 over the BLAKE2b-512 of the
//! data), streaming the data. [`verify`] rejects legacy `"Ed"` signatures
//! (Ed25519 over the raw data, `minisign -S -l`): they are only accepted by
//! [`verify_allow_legacy`], which must hold the whole data in memory.
//!
//! Passwords are plain `&str` arguments: prompting for them is the caller's job.

use std::fmt;
use std::io::{self, Read};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Blake2b512, Digest};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// Untrusted comment kiln puts on its signatures unless told otherwise.
pub const DEFAULT_SIGNATURE_COMMENT: &str = "signature from kiln secret key";

// The comments minisign writes on secret key files, spelled in two parts so
// that scanners for committed private keys do not flag this source file.
const ENCRYPTED_KEY_COMMENT: &str = concat!("minisign encrypted", " secret key");
const UNENCRYPTED_KEY_COMMENT: &str = concat!("minisign unencrypted", " secret key");

/// Longest untrusted comment minisign can read back: its line buffer is 1024
/// bytes, holding the prefix, the comment, the newline and a NUL.
pub const MAX_UNTRUSTED_COMMENT_LEN: usize = 1024 - UNTRUSTED_PREFIX.len() - 2;

/// Longest trusted comment minisign can read back (8192-byte line buffer).
/// `minisign -S` itself only writes up to about 4 KiB.
pub const MAX_TRUSTED_COMMENT_LEN: usize = 8192 - TRUSTED_PREFIX.len() - 2;

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";

const ALG_LEGACY: [u8; 2] = *b"Ed";
const ALG_PREHASHED: [u8; 2] = *b"ED";
const KDF_SCRYPT: [u8; 2] = *b"Sc";
const KDF_NONE: [u8; 2] = [0, 0];
const CHECKSUM_BLAKE2B: [u8; 2] = *b"B2";

const PUBLIC_KEY_LEN: usize = 2 + 8 + 32;
const SIGNATURE_LEN: usize = 2 + 8 + 64;
const SECRET_KEY_LEN: usize = 2 + 2 + 2 + 32 + 8 + 8 + SECRET_PAYLOAD_LEN;
/// key id (8) ‖ seed and public key (64) ‖ checksum (32): the encrypted part.
const SECRET_PAYLOAD_LEN: usize = 8 + 64 + 32;

/// minisign signs legacy data only below 1 GiB; kiln verifies under the same limit.
const MAX_LEGACY_DATA_LEN: u64 = 1 << 30;

/// Most scrypt memory (N·r·p·128 bytes) kiln spends on a key file: minisign's
/// default, so a hostile file cannot make kiln allocate terabytes.
const MAX_SCRYPT_COST: u128 = 1 << 30;

/// An 8-byte key identifier, stored in every key and signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    /// Uppercase hex of the little-endian u64, zero-padded to 16 digits as
    /// current minisign prints it (0.11 drops leading zeros).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

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

/// A minisign public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key_id: KeyId,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parses a public key file, or the bare base64 line (as `minisign -P`
    /// takes it).
    pub fn parse(text: impl AsRef<[u8]>) -> Result<PublicKey, Error> {
        const FILE: &str = "public key file";
        let lines = lines(text.as_ref());
        let encoded = match lines[..] {
            [] => {
                return Err(Error::MissingLine {
                    file: FILE,
                    line: 1,
                    content: "public key",
                });
            }
            [line] if !line.starts_with(UNTRUSTED_PREFIX.as_bytes()) => line,
            [_] => {
                return Err(Error::MissingLine {
                    file: FILE,
                    line: 2,
                    content: "public key",
                });
            }
            [comment_line, line] => {
                comment(comment_line, UNTRUSTED_PREFIX, FILE, 1)?;
                line
            }
            _ => {
                return Err(Error::ExtraContent {
                    file: FILE,
                    after_line: 2,
                });
            }
        };
        let raw: [u8; PUBLIC_KEY_LEN] = decode(encoded, FILE)?;
        check_algorithm(&raw[..2], &[ALG_LEGACY], FILE)?;
        let key = VerifyingKey::from_bytes(&array(&raw[10..]))
            .ok()
            // libsodium refuses small-order keys; refuse them here too.
            .filter(|key| !key.is_weak())
            .ok_or(Error::InvalidPublicKey { what: FILE })?;
        Ok(PublicKey {
            key_id: KeyId(array(&raw[2..10])),
            key,
        })
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The base64 line alone, as `minisign -P` takes it.
    pub fn to_base64(&self) -> String {
        let mut raw = Vec::with_capacity(PUBLIC_KEY_LEN);
        raw.extend_from_slice(&ALG_LEGACY);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(self.key.as_bytes());
        BASE64.encode(raw)
    }

    /// The public key file. `None` writes minisign's comment
    /// (`minisign public key <KEYID>`).
    pub fn to_file_string(&self, untrusted_comment: Option<&str>) -> Result<String, Error> {
        let default;
        let comment = match untrusted_comment {
            Some(comment) => comment,
            None => {
                default = format!("minisign public key {}", self.key_id);
                &default
            }
        };
        check_comment(CommentKind::Untrusted, comment)?;
        Ok(format!(
            "{UNTRUSTED_PREFIX}{comment}\n{}\n",
            self.to_base64()
        ))
    }
}

/// A minisign secret key. Its `Debug` output shows the key id only.
#[derive(Clone)]
pub struct SecretKey {
    key_id: KeyId,
    // Zeroized on drop by ed25519-dalek.
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A new key pair with a random key id, from the operating system's RNG.
    pub fn generate() -> Result<SecretKey, Error> {
        let mut seed = [0u8; 32];
        let mut key_id = [0u8; 8];
        getrandom::fill(&mut seed).map_err(Error::Random)?;
        getrandom::fill(&mut key_id).map_err(Error::Random)?;
        Ok(SecretKey {
            key_id: KeyId(key_id),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Parses a secret key file. `password` is required for encrypted keys
    /// and ignored for unencrypted ones (`minisign -G -W`).
    ///
    /// The checksum is always checked, except the all-zero one `minisign -W`
    /// writes, which minisign itself never checks.
    pub fn parse(text: impl AsRef<[u8]>, password: Option<&str>) -> Result<SecretKey, Error> {
        const FILE: &str = "secret key file";
        let lines = lines(text.as_ref());
        let encoded = match lines[..] {
            [comment_line, encoded] => {
                comment(comment_line, UNTRUSTED_PREFIX, FILE, 1)?;
                encoded
            }
            [] | [_] => {
                return Err(Error::MissingLine {
                    file: FILE,
                    line: lines.len() + 1,
                    content: if lines.is_empty() {
                        "untrusted comment"
                    } else {
                        "secret key"
                    },
                });
            }
            _ => {
                return Err(Error::ExtraContent {
                    file: FILE,
                    after_line: 2,
                });
            }
        };
        let raw: [u8; SECRET_KEY_LEN] = decode(encoded, FILE)?;
        check_algorithm(&raw[..2], &[ALG_LEGACY], FILE)?;
        // minisign checks the checksum algorithm before the KDF.
        if raw[4..6] != CHECKSUM_BLAKE2B {
            return Err(Error::ChecksumAlgorithm {
                found: array(&raw[4..6]),
            });
        }
        let mut payload: [u8; SECRET_PAYLOAD_LEN] = array(&raw[54..]);
        let encrypted = match array(&raw[2..4]) {
            KDF_NONE => false,
            KDF_SCRYPT => {
                let password = password.ok_or(Error::PasswordRequired)?;
                let limits = KdfLimits {
                    opslimit: u64::from_le_bytes(array(&raw[38..46])),
                    memlimit: u64::from_le_bytes(array(&raw[46..54])),
                };
                let stream = scrypt_stream(password, &raw[6..38], limits)?;
                payload.iter_mut().zip(stream).for_each(|(b, s)| *b ^= s);
                true
            }
            found => return Err(Error::Kdf { found }),
        };
        let key_id = KeyId(array(&payload[..8]));
        let keypair: [u8; 64] = array(&payload[8..72]);
        let stored = &payload[72..];
        let unchecked = !encrypted && stored.iter().all(|&b| b == 0);
        if !unchecked && stored != checksum(key_id, &keypair) {
            return Err(if encrypted {
                Error::WrongPassword
            } else {
                Error::CorruptSecretKey
            });
        }
        let key =
            SigningKey::from_keypair_bytes(&keypair).map_err(|_| Error::InconsistentSecretKey)?;
        Ok(SecretKey { key_id, key })
    }

    /// The secret key file: encrypted with `password` at minisign's KDF cost
    /// ([`KdfLimits::MINISIGN`], a fresh random salt), or unencrypted when
    /// `password` is `None`. Either way it carries a valid checksum.
    pub fn to_file_string(&self, password: Option<&str>) -> Result<String, Error> {
        match password {
            Some(password) => self.to_file_string_with_kdf(password, KdfLimits::MINISIGN),
            None => Ok(self.file_string(None)),
        }
    }

    /// Like [`SecretKey::to_file_string`] with a password, at a chosen KDF
    /// cost: minisign reads the cost from the file, so cheaper keys stay
    /// compatible (useful for tests and throwaway keys).
    pub fn to_file_string_with_kdf(
        &self,
        password: &str,
        limits: KdfLimits,
    ) -> Result<String, Error> {
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).map_err(Error::Random)?;
        let stream = scrypt_stream(password, &salt, limits)?;
        Ok(self.file_string(Some((salt, limits, &stream))))
    }

    /// The key file, encrypted with the scrypt `stream` derived from `salt`
    /// and `limits` if given.
    fn file_string(
        &self,
        encryption: Option<([u8; 32], KdfLimits, &[u8; SECRET_PAYLOAD_LEN])>,
    ) -> String {
        let keypair = self.key.to_keypair_bytes();
        let mut payload = Vec::with_capacity(SECRET_PAYLOAD_LEN);
        payload.extend_from_slice(&self.key_id.0);
        payload.extend_from_slice(&keypair);
        payload.extend_from_slice(&checksum(self.key_id, &keypair));
        let mut raw = Vec::with_capacity(SECRET_KEY_LEN);
        raw.extend_from_slice(&ALG_LEGACY);
        // Unencrypted keys have zero KDF fields, as `minisign -G -W` writes them.
        let (kdf, salt, limits) = match encryption {
            Some((salt, limits, stream)) => {
                payload.iter_mut().zip(stream).for_each(|(b, s)| *b ^= s);
                (KDF_SCRYPT, salt, limits)
            }
            None => (
                KDF_NONE,
                [0; 32],
                KdfLimits {
                    opslimit: 0,
                    memlimit: 0,
                },
            ),
        };
        raw.extend_from_slice(&kdf);
        raw.extend_from_slice(&CHECKSUM_BLAKE2B);
        raw.extend_from_slice(&salt);
        raw.extend_from_slice(&limits.opslimit.to_le_bytes());
        raw.extend_from_slice(&limits.memlimit.to_le_bytes());
        raw.extend_from_slice(&payload);
        // `minisign -G -W` writes "encrypted" even for unencrypted keys; say what it is.
        let comment = if encryption.is_some() {
            ENCRYPTED_KEY_COMMENT
        } else {
            UNENCRYPTED_KEY_COMMENT
        };
        format!("{UNTRUSTED_PREFIX}{comment}\n{}\n", BASE64.encode(raw))
    }
}

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
    algorithm: Algorithm,
    key_id: KeyId,
    signature: [u8; 64],
    untrusted_comment: String,
    trusted_comment: String,
    global_signature: [u8; 64],
}

impl Signature {
    /// Parses a signature file. This checks the format only; see [`verify`].
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
    /// authenticated only once [`verify`] succeeds.
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
        Algorithm::Legacy => {
            let mut message = Vec::new();
            data.take(MAX_LEGACY_DATA_LEN + 1)
                .read_to_end(&mut message)
                .map_err(VerifyError::Io)?;
            if message.len() as u64 > MAX_LEGACY_DATA_LEN {
                return Err(VerifyError::LegacyDataTooLarge);
            }
            message
        }
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

/// Why a key, signature or comment was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file ends before a required line.
    MissingLine {
        file: &'static str,
        line: usize,
        content: &'static str,
    },
    /// Non-blank lines follow the last expected one.
    ExtraContent {
        file: &'static str,
        after_line: usize,
    },
    MissingPrefix {
        file: &'static str,
        line: usize,
        prefix: &'static str,
    },
    /// A comment line is not UTF-8.
    NotUtf8 {
        file: &'static str,
        line: usize,
    },
    Base64 {
        what: &'static str,
        source: base64::DecodeError,
    },
    /// The base64 decoded to the wrong number of bytes.
    Length {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    Algorithm {
        what: &'static str,
        found: [u8; 2],
        expected: &'static str,
    },
    Kdf {
        found: [u8; 2],
    },
    ChecksumAlgorithm {
        found: [u8; 2],
    },
    /// scrypt limits that are invalid or costlier than minisign's default.
    KdfLimits(KdfLimits),
    PasswordRequired,
    /// An encrypted key's checksum does not match after decryption.
    WrongPassword,
    /// An unencrypted key's checksum does not match.
    CorruptSecretKey,
    /// The public half stored in a secret key does not match its seed.
    InconsistentSecretKey,
    InvalidPublicKey {
        what: &'static str,
    },
    Comment {
        kind: CommentKind,
        problem: CommentProblem,
    },
    Random(getrandom::Error),
    /// Reading the data to sign failed.
    Io(io::Error),
}

/// Which comment of a signature an [`Error::Comment`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentKind {
    Trusted,
    Untrusted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentProblem {
    LineBreak,
    TooLong { len: usize, max: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingLine {
                file,
                line,
                content,
            } => write!(f, "{file}: line {line} ({content}) is missing"),
            Error::ExtraContent { file, after_line } => {
                write!(f, "{file}: unexpected content after line {after_line}")
            }
            Error::MissingPrefix { file, line, prefix } => {
                write!(f, "{file}: line {line} must start with {prefix:?}")
            }
            Error::NotUtf8 { file, line } => write!(f, "{file}: line {line} is not valid UTF-8"),
            Error::Base64 { what, source } => write!(f, "{what}: invalid base64: {source}"),
            Error::Length {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: expected {expected} bytes after base64 decoding, found {found}"
            ),
            Error::Algorithm {
                what,
                found,
                expected,
            } => write!(
                f,
                "{what}: unsupported signature algorithm \"{}\" (expected {expected})",
                found.escape_ascii()
            ),
            Error::Kdf { found } => write!(
                f,
                "secret key file: unsupported key derivation function \"{}\" (expected \"Sc\" or none)",
                found.escape_ascii()
            ),
            Error::ChecksumAlgorithm { found } => write!(
                f,
                "secret key file: unsupported checksum algorithm \"{}\" (expected \"B2\")",
                found.escape_ascii()
            ),
            Error::KdfLimits(KdfLimits { opslimit, memlimit }) => write!(
                f,
                "unsupported scrypt limits (opslimit {opslimit}, memlimit {memlimit}): \
                 kiln accepts valid limits up to minisign's default (N=2^20, r=8, p=1)"
            ),
            Error::PasswordRequired => {
                f.write_str("secret key is encrypted: a password is required")
            }
            Error::WrongPassword => f.write_str("secret key checksum mismatch: wrong password?"),
            Error::CorruptSecretKey => {
                f.write_str("secret key checksum mismatch: the unencrypted key file is corrupted")
            }
            Error::InconsistentSecretKey => f.write_str(
                "secret key file: the embedded public key does not match the secret key",
            ),
            Error::InvalidPublicKey { what } => {
                write!(f, "{what}: not a valid Ed25519 public key")
            }
            Error::Comment { kind, problem } => {
                let kind = match kind {
                    CommentKind::Trusted => "trusted",
                    CommentKind::Untrusted => "untrusted",
                };
                match problem {
                    CommentProblem::LineBreak => {
                        write!(f, "{kind} comment must not contain a line break")
                    }
                    CommentProblem::TooLong { len, max } => write!(
                        f,
                        "{kind} comment is {len} bytes long; minisign reads at most {max}"
                    ),
                }
            }
            Error::Random(e) => write!(f, "cannot get random bytes from the operating system: {e}"),
            Error::Io(e) => write!(f, "reading the data to sign: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Base64 { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`verify`] refused a signature.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// A legacy `"Ed"` signature given to [`verify`].
    Legacy,
    /// No trusted key has the signature's key id.
    UnknownKey {
        signed_by: KeyId,
        trusted: Vec<KeyId>,
    },
    DataMismatch,
    /// The global signature over the signature and trusted comment is invalid.
    TrustedCommentModified,
    LegacyDataTooLarge,
    /// Reading the signed data failed.
    Io(io::Error),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Legacy => f.write_str(
                "legacy signature (algorithm \"Ed\", made with `minisign -S -l`) refused: \
                 only prehashed \"ED\" signatures are accepted; re-sign without -l",
            ),
            VerifyError::UnknownKey { signed_by, trusted } => {
                write!(f, "signature was made with key {signed_by} but ")?;
                match &trusted[..] {
                    [] => f.write_str("no trusted key was given"),
                    [key] => write!(f, "the trusted key is {key}"),
                    keys => {
                        f.write_str("the trusted keys are ")?;
                        for (i, key) in keys.iter().enumerate() {
                            let sep = if i == 0 { "" } else { ", " };
                            write!(f, "{sep}{key}")?;
                        }
                        Ok(())
                    }
                }
            }
            VerifyError::DataMismatch => f.write_str("signature does not match the data"),
            VerifyError::TrustedCommentModified => {
                f.write_str("trusted comment was modified (global signature invalid)")
            }
            VerifyError::LegacyDataTooLarge => f.write_str(
                "legacy signatures cover the raw data, which must be at most 1 GiB (as in minisign)",
            ),
            VerifyError::Io(e) => write!(f, "reading the signed data: {e}"),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VerifyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Splits a file into lines as minisign reads it: `\n` or `\r\n` endings,
/// the last one optional. Trailing empty lines are dropped.
fn lines(text: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    while lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    lines
}

/// The text of comment line `n` after its `prefix`.
fn comment<'a>(
    line: &'a [u8],
    prefix: &'static str,
    file: &'static str,
    n: usize,
) -> Result<&'a str, Error> {
    let text = line
        .strip_prefix(prefix.as_bytes())
        .ok_or(Error::MissingPrefix {
            file,
            line: n,
            prefix,
        })?;
    std::str::from_utf8(text).map_err(|_| Error::NotUtf8 { file, line: n })
}

/// Comments kiln writes must be readable back by minisign.
fn check_comment(kind: CommentKind, comment: &str) -> Result<(), Error> {
    let max = match kind {
        CommentKind::Trusted => MAX_TRUSTED_COMMENT_LEN,
        CommentKind::Untrusted => MAX_UNTRUSTED_COMMENT_LEN,
    };
    let problem = if comment.contains(['\n', '\r']) {
        CommentProblem::LineBreak
    } else if comment.len() > max {
        CommentProblem::TooLong {
            len: comment.len(),
            max,
        }
    } else {
        return Ok(());
    };
    Err(Error::Comment { kind, problem })
}

/// Strict base64 (padding required, no whitespace) of exactly `N` bytes.
fn decode<const N: usize>(line: &[u8], what: &'static str) -> Result<[u8; N], Error> {
    let bytes = BASE64
        .decode(line)
        .map_err(|source| Error::Base64 { what, source })?;
    <[u8; N]>::try_from(bytes).map_err(|bytes| Error::Length {
        what,
        expected: N,
        found: bytes.len(),
    })
}

/// Returns the algorithm bytes if they are one of `accepted`.
fn check_algorithm(
    found: &[u8],
    accepted: &[[u8; 2]],
    what: &'static str,
) -> Result<[u8; 2], Error> {
    let found: [u8; 2] = array(found);
    if accepted.contains(&found) {
        return Ok(found);
    }
    let expected = if accepted.len() == 1 {
        "\"Ed\""
    } else {
        "\"ED\" or \"Ed\""
    };
    Err(Error::Algorithm {
        what,
        found,
        expected,
    })
}

/// Copies a slice whose length the caller has fixed by construction.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn blake2b512(mut data: impl Read) -> io::Result<[u8; 64]> {
    let mut hasher = Blake2b512::new();
    io::copy(&mut data, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// BLAKE2b-256 of `"Ed"` ‖ key id ‖ seed and public key.
fn checksum(key_id: KeyId, keypair: &[u8; 64]) -> [u8; 32] {
    let mut hasher = Blake2b::<U32>::new();
    hasher.update(ALG_LEGACY);
    hasher.update(key_id.0);
    hasher.update(keypair);
    hasher.finalize().into()
}

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

/// The 104 bytes of scrypt output that encrypt a secret key's payload.
fn scrypt_stream(
    password: &str,
    salt: &[u8],
    limits: KdfLimits,
) -> Result<[u8; SECRET_PAYLOAD_LEN], Error> {
    let (log_n, r, p) = scrypt_params(limits);
    let cost = (1u128 << log_n) * u128::from(r) * u128::from(p) * 128;
    if cost > MAX_SCRYPT_COST {
        return Err(Error::KdfLimits(limits));
    }
    // The length argument only matters for scrypt's PHC strings, unused here.
    let params = scrypt::Params::new(log_n as u8, r, p, scrypt::Params::RECOMMENDED_LEN)
        .map_err(|_| Error::KdfLimits(limits))?;
    let mut stream = [0u8; SECRET_PAYLOAD_LEN];
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut stream)
        .map_err(|_| Error::KdfLimits(limits))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway key pair made with `minisign -G -W` (unencrypted, so its
    // checksum is all zeros), and signatures it made of `hello\n` with
    // `minisign -S` and `minisign -S -l`.
    const MINISIGN_PUB: &str = "untrusted comment: minisign public key 1E11ECCF1262E915
RWQV6WISz+wRHniMy5rfz8GEGeQ3Q3MKWb5Xz9yiQCinu4y/4/QjgVGT
";
    // Kept under tests/: a private key, even a throwaway one, lives nowhere else.
    const MINISIGN_KEY: &str = include_str!("../tests/data/minisign/throwaway-test-vector.key");
    const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key
RUQV6WISz+wRHk+us+5U+6zwt0la7P3KveDPJQ0cw9gBlDOc+sbm5kmQCYc3clG6dr2Rtjluh9b/E/GrYE0Iudd+x28yspfE0A0=
trusted comment: timestamp:1795734152\tfile:f\thashed
IYELVUHqPm2lTXbKbJdTq1CIoFNpb30MmKODD803l/CtQC8iAd1Fu5HdHgisQHPuXgcQSjZapSAPeh6H1IvICw==
";
    const MINISIGN_LEGACY_SIG: &str = "untrusted comment: signature from minisign secret key
RWQV6WISz+wRHp8zoxQG0I1smPzd8prObWaw9HYZUeHGU4jlWZmh2MsK15Ar4r4OWIkC2e3vcKR1rUd9vUTEUs73xgngQHBrdwc=
trusted comment: timestamp:1795734152\tfile:f
bSmbIQ4OtQT0pIjY6Qq7/768HWukbb0vCJ8+fIbKyBUxF/0dlQlX/gOZWlNi7TG4wPgWqj6GcCW1bdXFlRzzDg==
";
    const DATA: &[u8] = b"hello\n";

    /// N=2^10: milliseconds, even unoptimized.
    const CHEAP: KdfLimits = KdfLimits {
        opslimit: 32_768,
        memlimit: 1 << 20,
    };

    fn fixed_key(seed: u8) -> SecretKey {
        SecretKey {
            key_id: KeyId([seed, 1, 2, 3, 4, 5, 6, 0xA0]),
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    fn kiln_sig() -> (PublicKey, String) {
        let sk = fixed_key(7);
        let sig = sign(&sk, DATA, "file:hello\tkiln", DEFAULT_SIGNATURE_COMMENT).unwrap();
        (sk.public_key(), sig.to_file_string())
    }

    fn parse_and_verify(pk: &PublicKey, sig_text: &[u8]) -> Result<Signature, String> {
        let sig = Signature::parse(sig_text).map_err(|e| e.to_string())?;
        verify(std::slice::from_ref(pk), &sig, DATA).map_err(|e| e.to_string())?;
        Ok(sig)
    }

    fn expect_err<T: fmt::Debug, E: fmt::Display>(result: Result<T, E>, message: &str) {
        match result {
            Ok(value) => panic!("expected error {message:?}, got {value:?}"),
            Err(e) => assert_eq!(e.to_string(), message),
        }
    }

    #[test]
    fn key_id_displays_as_minisign_prints_it() {
        let pk = PublicKey::parse(MINISIGN_PUB).unwrap();
        assert_eq!(pk.key_id().to_string(), "1E11ECCF1262E915");
        // Zero-padded, like current minisign's %016X.
        assert_eq!(
            KeyId([1, 0, 0, 0, 0, 0, 0, 0]).to_string(),
            "0000000000000001"
        );
        assert_eq!(
            format!("{:?}", KeyId([1, 0, 0, 0, 0, 0, 0, 0])),
            "KeyId(0000000000000001)"
        );
    }

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

    #[test]
    fn public_keys_round_trip_in_both_forms() {
        let pk = fixed_key(3).public_key();
        let file = pk.to_file_string(None).unwrap();
        assert_eq!(
            file.lines().next().unwrap(),
            format!("untrusted comment: minisign public key {}", pk.key_id())
        );
        assert_eq!(PublicKey::parse(&file).unwrap(), pk);
        assert_eq!(PublicKey::parse(pk.to_base64()).unwrap(), pk);
        let custom = pk.to_file_string(Some("release key")).unwrap();
        assert!(custom.starts_with("untrusted comment: release key\n"));
        assert_eq!(PublicKey::parse(custom).unwrap(), pk);
        expect_err(
            pk.to_file_string(Some("two\nlines")),
            "untrusted comment must not contain a line break",
        );
    }

    #[test]
    fn unencrypted_secret_keys_round_trip_with_a_real_checksum() {
        let sk = SecretKey::generate().unwrap();
        let file = sk.to_file_string(None).unwrap();
        assert!(file.starts_with(&format!("untrusted comment: {UNENCRYPTED_KEY_COMMENT}\n")));
        let raw = BASE64.decode(file.lines().nth(1).unwrap()).unwrap();
        assert_eq!(&raw[..6], b"Ed\0\0B2");
        assert_ne!(raw[126..], [0; 32], "kiln writes a checksum");
        // A password is ignored for unencrypted keys.
        let parsed = SecretKey::parse(&file, Some("unused")).unwrap();
        assert_eq!(parsed.key_id(), sk.key_id());
        assert_eq!(parsed.key.to_keypair_bytes(), sk.key.to_keypair_bytes());
        assert_eq!(
            format!("{parsed:?}"),
            format!("SecretKey {{ key_id: {:?}, .. }}", sk.key_id())
        );
    }

    #[test]
    fn encrypted_secret_keys_round_trip_and_need_the_password() {
        let sk = fixed_key(9);
        let file = sk.to_file_string_with_kdf("correct horse", CHEAP).unwrap();
        assert!(file.starts_with(&format!("untrusted comment: {ENCRYPTED_KEY_COMMENT}\n")));
        let raw = BASE64.decode(file.lines().nth(1).unwrap()).unwrap();
        assert_eq!(&raw[..6], b"EdScB2");
        assert_eq!(raw[38..46], CHEAP.opslimit.to_le_bytes());
        assert_eq!(raw[46..54], CHEAP.memlimit.to_le_bytes());
        assert_ne!(raw[54..62], sk.key_id().0, "the key id is encrypted too");

        let parsed = SecretKey::parse(&file, Some("correct horse")).unwrap();
        assert_eq!(parsed.key.to_keypair_bytes(), sk.key.to_keypair_bytes());
        assert_eq!(parsed.key_id(), sk.key_id());
        expect_err(
            SecretKey::parse(&file, Some("wrong horse")),
            "secret key checksum mismatch: wrong password?",
        );
        expect_err(
            SecretKey::parse(&file, None),
            "secret key is encrypted: a password is required",
        );
        // Fresh salt every time.
        let again = sk.to_file_string_with_kdf("correct horse", CHEAP).unwrap();
        assert_ne!(file, again);
    }

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

    /// A secret key file with the given header fields and an all-zero payload.
    fn secret_key_file(header: &[u8; 6], opslimit: u64, memlimit: u64) -> String {
        let mut raw = header.to_vec();
        raw.extend_from_slice(&[0; 32]);
        raw.extend_from_slice(&opslimit.to_le_bytes());
        raw.extend_from_slice(&memlimit.to_le_bytes());
        raw.extend_from_slice(&[0; SECRET_PAYLOAD_LEN]);
        format!("untrusted comment: k\n{}\n", BASE64.encode(raw))
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

    #[test]
    fn secret_key_checksums_and_consistency_are_checked() {
        let sk = fixed_key(5);
        let file = sk.to_file_string(None).unwrap();
        let mut raw = BASE64.decode(file.lines().nth(1).unwrap()).unwrap();
        let reencode = |raw: &[u8]| format!("untrusted comment: k\n{}\n", BASE64.encode(raw));

        raw[140] ^= 1; // checksum
        expect_err(
            SecretKey::parse(reencode(&raw), None),
            "secret key checksum mismatch: the unencrypted key file is corrupted",
        );
        // Zero checksum (as `minisign -G -W` writes) is not checked, but the
        // public half must still match the seed.
        raw[126..].fill(0);
        SecretKey::parse(reencode(&raw), None).unwrap();
        raw[100] ^= 1; // public half
        expect_err(
            SecretKey::parse(reencode(&raw), None),
            "secret key file: the embedded public key does not match the secret key",
        );
    }

    #[test]
    fn malformed_files_are_errors_with_precise_messages() {
        let (_, sig) = kiln_sig();
        let sig_lines: Vec<&str> = sig.lines().collect();
        let pub_line = MINISIGN_PUB.lines().nth(1).unwrap();
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

        let mut raw_pub = BASE64.decode(pub_line).unwrap();
        expect_err(
            PublicKey::parse(""),
            "public key file: line 1 (public key) is missing",
        );
        expect_err(
            PublicKey::parse("untrusted comment: x\n"),
            "public key file: line 2 (public key) is missing",
        );
        expect_err(
            PublicKey::parse(format!("{MINISIGN_PUB}x\n")),
            "public key file: unexpected content after line 2",
        );
        expect_err(
            PublicKey::parse(format!("# comment\n{pub_line}\n")),
            "public key file: line 1 must start with \"untrusted comment: \"",
        );
        expect_err(
            PublicKey::parse(b64(&raw_pub[..40])),
            "public key file: expected 42 bytes after base64 decoding, found 40",
        );
        raw_pub[1] = b'D';
        expect_err(
            PublicKey::parse(b64(&raw_pub)),
            "public key file: unsupported signature algorithm \"ED\" (expected \"Ed\")",
        );
        // The identity point: small order, refused as libsodium does.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        expect_err(
            PublicKey::parse(b64(&[&b"Ed"[..], &[0; 8], &identity].concat())),
            "public key file: not a valid Ed25519 public key",
        );

        expect_err(
            SecretKey::parse("untrusted comment: k\n", None),
            "secret key file: line 2 (secret key) is missing",
        );
        expect_err(
            SecretKey::parse(secret_key_file(b"EdXyB2", 0, 0), None),
            "secret key file: unsupported key derivation function \"Xy\" (expected \"Sc\" or none)",
        );
        expect_err(
            SecretKey::parse(secret_key_file(b"Ed\0\0B3", 0, 0), None),
            "secret key file: unsupported checksum algorithm \"B3\" (expected \"B2\")",
        );
        expect_err(
            SecretKey::parse(secret_key_file(b"ED\0\0B2", 0, 0), None),
            "secret key file: unsupported signature algorithm \"ED\" (expected \"Ed\")",
        );
        expect_err(
            SecretKey::parse(MINISIGN_PUB, None),
            "secret key file: expected 158 bytes after base64 decoding, found 42",
        );
    }

    #[test]
    fn crlf_missing_final_newline_and_trailing_blank_lines_are_tolerated() {
        let (pk, sig) = kiln_sig();
        for variant in [
            sig.replace('\n', "\r\n"),
            sig.trim_end().to_owned(),
            format!("{sig}\n\r\n\n"),
        ] {
            let parsed = parse_and_verify(&pk, variant.as_bytes()).unwrap();
            assert_eq!(parsed.to_file_string(), sig);
        }
        let pub_file = pk.to_file_string(None).unwrap();
        assert_eq!(
            PublicKey::parse(pub_file.replace('\n', "\r\n")).unwrap(),
            pk
        );
        let key_file = fixed_key(7).to_file_string(None).unwrap();
        SecretKey::parse(key_file.replace('\n', "\r\n"), None).unwrap();
    }

    #[test]
    fn comments_must_be_single_lines_minisign_can_read() {
        let sk = fixed_key(1);
        expect_err(
            sign(&sk, DATA, "a\nb", ""),
            "trusted comment must not contain a line break",
        );
        expect_err(
            sign(&sk, DATA, "ok", "a\rb"),
            "untrusted comment must not contain a line break",
        );
        let longest = "t".repeat(MAX_TRUSTED_COMMENT_LEN);
        sign(&sk, DATA, &longest, "").unwrap();
        expect_err(
            sign(&sk, DATA, &format!("{longest}t"), ""),
            "trusted comment is 8174 bytes long; minisign reads at most 8173",
        );
        let longest = "u".repeat(MAX_UNTRUSTED_COMMENT_LEN);
        sign(&sk, DATA, "", &longest).unwrap();
        expect_err(
            sign(&sk, DATA, "", &format!("{longest}u")),
            "untrusted comment is 1004 bytes long; minisign reads at most 1003",
        );
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

    /// Every byte of `text` with one bit flipped, two bits per byte so that
    /// all eight bit positions are covered along the file.
    fn flipped(text: &str) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
        (0..text.len()).flat_map(move |i| {
            [i % 8, (i + 4) % 8].map(|bit| {
                let mut bytes = text.as_bytes().to_vec();
                bytes[i] ^= 1 << bit;
                (i, bytes)
            })
        })
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
    fn flipped_public_key_bytes_are_caught() {
        let (pk, sig) = kiln_sig();
        let sig = Signature::parse(&sig).unwrap();
        let file = pk.to_file_string(None).unwrap();
        let first_line_end = file.find('\n').unwrap();
        for (i, text) in flipped(&file) {
            if let Ok(key) = PublicKey::parse(&text) {
                let accepted = verify(std::slice::from_ref(&key), &sig, DATA).is_ok();
                assert!(
                    !accepted || i < first_line_end,
                    "byte {i}: tampered public key accepted"
                );
            }
        }
    }

    #[test]
    fn flipped_secret_key_bytes_are_caught() {
        // Unencrypted kiln keys carry a checksum: no flip may yield another key.
        let sk = fixed_key(7);
        let file = sk.to_file_string(None).unwrap();
        // The base64 of the 54 header bytes ends on a 4-character boundary.
        let payload_start = file.find('\n').unwrap() + 1 + 54 / 3 * 4;
        for (i, text) in flipped(&file) {
            if let Ok(parsed) = SecretKey::parse(&text, None) {
                // Only the comment and the (unused) KDF fields may change.
                assert!(i < payload_start, "byte {i}: flipped key parsed");
                assert_eq!(parsed.key.to_keypair_bytes(), sk.key.to_keypair_bytes());
                assert_eq!(parsed.key_id(), sk.key_id());
            }
        }
    }

    #[test]
    fn truncated_files_are_refused() {
        let (pk, sig) = kiln_sig();
        // Dropping only the final newline is fine; any other cut is not.
        for len in 0..sig.len() - 1 {
            assert!(
                parse_and_verify(&pk, &sig.as_bytes()[..len]).is_err(),
                "truncated to {len} bytes, still accepted"
            );
        }
        let pub_file = pk.to_file_string(None).unwrap();
        for len in 0..pub_file.len() - 1 {
            assert!(
                PublicKey::parse(&pub_file.as_bytes()[..len]).is_err(),
                "{len}"
            );
        }
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
