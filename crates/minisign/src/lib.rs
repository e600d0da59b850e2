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
//!
//! The code is split along the formats: `encoding` (lines, comments, base64,
//! algorithm tags), `keys` (key ids, public and secret key files, key
//! generation), `kdf` (scrypt), `signature` (signature files, signing),
//! `verify` and `error`.
//!
//! # Why not the `minisign` crate
//!
//! The `minisign` crate (0.10.0) and `minisign-verify` (0.3.0), both by
//! minisign's author, were tried as replacements, whole or in parts, and
//! kiln keeps this code. Each point was checked by running the crates on
//! files made by `minisign` 0.11:
//!
//! - `minisign::sign` is hedged: it mixes 64 random bytes into every Ed25519
//!   nonce, so the same key and data give a different file each time. kiln's
//!   signatures are deterministic and byte for byte those of `minisign -S`,
//!   as the tests require.
//! - It cannot load keys made by `minisign -G -W`: their checksum is all
//!   zeros, and `SecretKey::from_unencrypted_box` fails with "Corrupted key".
//! - Its encrypted keys always cost scrypt N=2^15 (opslimit 2^20, memlimit
//!   32 MiB), not minisign's N=2^20, with no way to choose the cost
//!   ([`KdfLimits`]); the key fields are private. Given no password,
//!   `SecretKey::from_box` prompts on the terminal itself and prints progress
//!   to stdout.
//! - A hostile 158-byte key file (opslimit 2^64-1, memlimit 0: N=2, r=8,
//!   p=2^27-1) gets past its cost check, which bounds N and memlimit but not
//!   p: scrypt then allocates 128 GiB and the process aborts. kiln refuses
//!   the file before running scrypt.
//! - `SignatureBox::from_string` trims the trusted comment, so a signature
//!   from `minisign -S -t 'x '` fails with "Comment signature verification
//!   failed". It also accepts a space after the base64, a 75-byte signature
//!   line and lines after the fourth, and `From<String> for SignatureBox`
//!   panics on malformed text.
//! - Its public keys accept an `"ED"` algorithm tag and small-order points.
//! - Its errors are bare strings that name neither the file nor the line nor
//!   the bad value ("Invalid input for the given encoding", "Unsupported
//!   signature algorithm", "Missing global signature"), where the tests
//!   assert kiln's messages, e.g. `signature file (line 2): invalid base64:
//!   Invalid symbol 33, offset 2.`
//! - `minisign::verify` takes one key, not a list to rotate through, needs
//!   `Read + Seek`, reads all the data before it compares key ids, and prints
//!   to stderr unless `quiet` is set.
//! - The `Debug` output of its `SecretKey` is the secret key in hex, and the
//!   key is not zeroized on drop.
//! - `minisign-verify` only verifies, so signing and keys would stay here
//!   anyway. It returns the same `InvalidSignature` for changed data and for
//!   a changed trusted comment, "Invalid encoding in minisign data" for bad
//!   base64, a wrong length or a missing line, and it accepts `"ED"` public
//!   keys and extra lines.
//! - Speed gives no reason to switch: all three spend the time in BLAKE2b.
//!   Verifying a prehashed signature over a 1 GiB file (release build, file
//!   in the page cache, best of 15 runs on a shared 2-core machine) took
//!   1.22 s in kiln, 1.28 s with `minisign`, 1.30 s with `minisign-verify`.
//!
//! Using the crate only for the byte layouts does not help either: to keep
//! kiln's messages, kiln must still split the lines and decode the base64
//! itself. What remains is a few fixed-size slices, and the crate's signing
//! and secret key handling have the problems above.

mod encoding;
mod error;
mod kdf;
mod keys;
mod signature;
#[cfg(test)]
mod test_support;
mod verify;

pub use encoding::{MAX_TRUSTED_COMMENT_LEN, MAX_UNTRUSTED_COMMENT_LEN};
pub use error::{CommentKind, CommentProblem, Error, VerifyError};
pub use kdf::KdfLimits;
pub use keys::{KeyId, PublicKey, SecretKey};
pub use signature::{Algorithm, Signature, sign};
pub use verify::{verify, verify_allow_legacy};

/// Untrusted comment kiln puts on its signatures unless told otherwise.
pub const DEFAULT_SIGNATURE_COMMENT: &str = "signature from kiln secret key";
