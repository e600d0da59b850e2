//! kiln's minisign module against the real `minisign` binary (found on PATH).
//!
//! Encrypted keys normally cost scrypt N=2^20 (1 GiB), so most tests use
//! cheaper keys: kiln writes them with explicit [`KdfLimits`], and minisign
//! is run under `ulimit -v`, which makes it fall back to smaller limits. Two
//! tests use the full cost (Cargo.toml optimises scrypt in debug builds).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kiln_minisign::{
    Algorithm, DEFAULT_SIGNATURE_COMMENT, KdfLimits, MAX_TRUSTED_COMMENT_LEN,
    MAX_UNTRUSTED_COMMENT_LEN, PublicKey, SecretKey, Signature, sign, verify, verify_allow_legacy,
};

/// libsodium's "interactive" limits: scrypt N=2^14, 16 MiB.
const CHEAP: KdfLimits = KdfLimits {
    opslimit: 524_288,
    memlimit: 16_777_216,
};
const TRUSTED: &str = "timestamp:1700000000\tfile:image.bin\tkiln ✓";
const MINISIGN_COMMENT: &str = "signature from minisign secret key";

/// A `minisign` command; fails the test if the binary is missing.
pub(crate) fn minisign() -> Command {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| match Command::new("minisign").arg("-v").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`minisign -v` failed: {out:?}")),
        Err(e) => Err(format!(
            "cannot run `minisign` ({e}): these tests need the real binary on PATH \
             (Debian package `minisign`)"
        )),
    });
    if let Err(message) = found {
        panic!("{message}");
    }
    Command::new("minisign")
}

/// Runs `cmd` with `stdin` as its input (minisign reads passwords from
/// stdin, a line each, when it is not a terminal).
fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    // minisign only reads stdin when it needs a password: it may be gone already.
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        panic!("writing to {cmd:?}: {e}");
    }
    child.wait_with_output().unwrap()
}

/// Runs `cmd` and fails the test unless it succeeds.
fn run_ok(cmd: &mut Command, stdin: &str) -> Output {
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` and fails the test if it succeeds; returns its stderr.
fn run_err(cmd: &mut Command, stdin: &str) -> String {
    let out = run(cmd, stdin);
    assert!(!out.status.success(), "{cmd:?} unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// A 200 KiB data file, larger than minisign's read buffer.
    fn data(&self) -> PathBuf {
        let data: Vec<u8> = (0..200 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
        self.write("image.bin", data)
    }

    /// `minisign -G -W`: an unencrypted key pair, as (public, secret) paths.
    fn minisign_key(&self, name: &str) -> (PathBuf, PathBuf) {
        let (public, secret) = (
            self.path(&format!("{name}.pub")),
            self.path(&format!("{name}.key")),
        );
        run_ok(
            minisign()
                .arg("-GW")
                .arg("-p")
                .arg(&public)
                .arg("-s")
                .arg(&secret),
            "",
        );
        (public, secret)
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn kiln_sign(sk: &SecretKey, data: &Path, trusted: &str, untrusted: &str) -> String {
    sign(sk, fs::File::open(data).unwrap(), trusted, untrusted)
        .unwrap()
        .to_file_string()
}

/// `minisign -S` of `data` into `sig`, the password (if any) on stdin.
fn minisign_sign(secret: &Path, data: &Path, sig: &Path, password: &str) -> String {
    run_ok(
        minisign()
            .arg("-S")
            .arg("-s")
            .arg(secret)
            .arg("-m")
            .arg(data)
            .arg("-x")
            .arg(sig)
            .args(["-c", MINISIGN_COMMENT, "-t", TRUSTED]),
        &format!("{password}\n"),
    );
    read(sig)
}

fn minisign_verify(public: &Path, data: &Path, sig: &Path) -> Command {
    let mut cmd = minisign();
    cmd.arg("-V")
        .arg("-p")
        .arg(public)
        .arg("-m")
        .arg(data)
        .arg("-x")
        .arg(sig);
    cmd
}

/// The key id in a public key file's comment, zero-padded: minisign 0.11
/// writes it without leading zeros, later versions (and kiln) with.
fn comment_key_id(pub_file: &str) -> String {
    let hex = pub_file
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("untrusted comment: minisign public key "))
        .unwrap_or_else(|| panic!("no key id comment in {pub_file:?}"));
    format!("{:016X}", u64::from_str_radix(hex, 16).unwrap())
}

/// opslimit and memlimit stored in a secret key file.
fn stored_limits(key_file: &str) -> KdfLimits {
    let raw = BASE64.decode(key_file.lines().nth(1).unwrap()).unwrap();
    KdfLimits {
        opslimit: u64::from_le_bytes(raw[38..46].try_into().unwrap()),
        memlimit: u64::from_le_bytes(raw[46..54].try_into().unwrap()),
    }
}

#[test]
fn minisign_verifies_kiln_signatures_and_uses_kiln_keys() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let sk = SecretKey::generate().unwrap();
    let public = scratch.write("kiln.pub", sk.public_key().to_file_string(None).unwrap());
    let secret = scratch.write("kiln.key", sk.to_file_string(None).unwrap());
    let sig_text = kiln_sign(&sk, &data, TRUSTED, DEFAULT_SIGNATURE_COMMENT);
    let sig = scratch.write("image.bin.minisig", &sig_text);

    let out = run_ok(&mut minisign_verify(&public, &data, &sig), "");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("Signature and comment signature verified\nTrusted comment: {TRUSTED}\n")
    );
    let out = run_ok(minisign_verify(&public, &data, &sig).arg("-Q"), "");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{TRUSTED}\n")
    );
    // -H: minisign agrees that kiln's signature is prehashed.
    run_ok(minisign_verify(&public, &data, &sig).arg("-H"), "");
    // -P: the bare base64 form.
    run_ok(
        minisign()
            .arg("-V")
            .args(["-P", &sk.public_key().to_base64()])
            .arg("-m")
            .arg(&data)
            .arg("-x")
            .arg(&sig),
        "",
    );

    // minisign signs with kiln's unencrypted secret key, identically.
    let theirs = minisign_sign(&secret, &data, &scratch.path("theirs.minisig"), "");
    assert_eq!(theirs, kiln_sign(&sk, &data, TRUSTED, MINISIGN_COMMENT));
    // And rebuilds kiln's public key file from it.
    let rebuilt = scratch.path("rebuilt.pub");
    run_ok(
        minisign()
            .arg("-R")
            .arg("-s")
            .arg(&secret)
            .arg("-p")
            .arg(&rebuilt),
        "",
    );
    let (rebuilt, public) = (read(&rebuilt), read(&public));
    assert_eq!(rebuilt.lines().nth(1), public.lines().nth(1));
    assert_eq!(comment_key_id(&rebuilt), sk.key_id().to_string());
}

#[test]
fn minisign_uses_kiln_encrypted_keys() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let sk = SecretKey::generate().unwrap();
    let key_file = sk.to_file_string_with_kdf("kiln pass", CHEAP).unwrap();
    let secret = scratch.write("kiln.key", &key_file);

    let theirs = minisign_sign(&secret, &data, &scratch.path("a.minisig"), "kiln pass");
    assert_eq!(theirs, kiln_sign(&sk, &data, TRUSTED, MINISIGN_COMMENT));
    let stderr = run_err(
        minisign()
            .arg("-S")
            .arg("-s")
            .arg(&secret)
            .arg("-m")
            .arg(&data),
        "wrong pass\n",
    );
    assert!(stderr.contains("Wrong password for that key"), "{stderr}");
    assert_eq!(
        SecretKey::parse(&key_file, Some("kiln pass"))
            .unwrap()
            .public_key(),
        sk.public_key()
    );
}

#[test]
fn minisign_uses_kiln_encrypted_keys_at_full_cost() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let sk = SecretKey::generate().unwrap();
    let key_file = sk.to_file_string(Some("kiln pass")).unwrap();
    assert_eq!(stored_limits(&key_file), KdfLimits::MINISIGN);
    let secret = scratch.write("kiln.key", &key_file);
    let theirs = minisign_sign(&secret, &data, &scratch.path("a.minisig"), "kiln pass");
    assert_eq!(theirs, kiln_sign(&sk, &data, TRUSTED, MINISIGN_COMMENT));
}

#[test]
fn kiln_uses_minisign_unencrypted_keys_and_verifies_its_signatures() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let public = scratch.path("m.pub");
    let secret = scratch.path("m.key");
    let out = run_ok(
        minisign()
            .arg("-GW")
            .arg("-p")
            .arg(&public)
            .arg("-s")
            .arg(&secret),
        "",
    );
    let pk = PublicKey::parse(read(&public)).unwrap();
    // The bare key minisign prints for `-P` parses to the same key.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let bare = stdout
        .lines()
        .find_map(|line| line.strip_prefix("minisign -Vm <file> -P "))
        .expect("minisign -G prints the -P command");
    assert_eq!(PublicKey::parse(bare).unwrap(), pk);
    assert_eq!(comment_key_id(&read(&public)), pk.key_id().to_string());

    let sk = SecretKey::parse(read(&secret), None).unwrap();
    assert_eq!(sk.public_key(), pk);
    let theirs = minisign_sign(&secret, &data, &scratch.path("theirs.minisig"), "");
    assert_eq!(kiln_sign(&sk, &data, TRUSTED, MINISIGN_COMMENT), theirs);

    let keys = [pk];
    let sig = Signature::parse(&theirs).unwrap();
    assert_eq!(sig.algorithm(), Algorithm::Prehashed);
    assert_eq!(sig.trusted_comment(), TRUSTED);
    assert_eq!(
        verify(&keys, &sig, fs::File::open(&data).unwrap()).unwrap(),
        &keys[0]
    );

    // minisign's default trusted comment.
    let default_sig = scratch.path("default.minisig");
    run_ok(
        minisign()
            .arg("-S")
            .arg("-s")
            .arg(&secret)
            .arg("-m")
            .arg(&data)
            .arg("-x")
            .arg(&default_sig),
        "",
    );
    let sig = Signature::parse(read(&default_sig)).unwrap();
    verify(&keys, &sig, fs::File::open(&data).unwrap()).unwrap();
    assert!(
        sig.trusted_comment().starts_with("timestamp:")
            && sig.trusted_comment().ends_with("\tfile:image.bin\thashed"),
        "{:?}",
        sig.trusted_comment()
    );

    // CRLF files, which minisign also accepts.
    let crlf_pub = scratch.write("crlf.pub", read(&public).replace('\n', "\r\n"));
    let crlf_sig = scratch.write("crlf.minisig", theirs.replace('\n', "\r\n"));
    run_ok(&mut minisign_verify(&crlf_pub, &data, &crlf_sig), "");
    let pk = PublicKey::parse(read(&crlf_pub)).unwrap();
    let sig = Signature::parse(read(&crlf_sig)).unwrap();
    verify(&[pk], &sig, fs::File::open(&data).unwrap()).unwrap();
}

#[test]
fn kiln_uses_minisign_encrypted_keys() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let public = scratch.path("m.pub");
    let secret = scratch.path("m.key");
    // With ~60 MB of address space, minisign halves its KDF limits until
    // they fit (it warns "due to limited memory..."): a cheap key.
    run_ok(
        Command::new("sh")
            .args(["-c", "ulimit -v 60000 && exec \"$0\" \"$@\""])
            .arg(minisign().get_program())
            .arg("-G")
            .arg("-p")
            .arg(&public)
            .arg("-s")
            .arg(&secret),
        "minisign pass\nminisign pass\n",
    );
    let key_file = read(&secret);
    let limits = stored_limits(&key_file);
    assert!(
        limits.memlimit < KdfLimits::MINISIGN.memlimit / 8,
        "ulimit did not make minisign pick cheaper limits: {limits:?}"
    );

    let sk = SecretKey::parse(&key_file, Some("minisign pass")).unwrap();
    assert_eq!(sk.public_key(), PublicKey::parse(read(&public)).unwrap());
    let theirs = minisign_sign(
        &secret,
        &data,
        &scratch.path("theirs.minisig"),
        "minisign pass",
    );
    assert_eq!(kiln_sign(&sk, &data, TRUSTED, MINISIGN_COMMENT), theirs);

    let err = SecretKey::parse(&key_file, Some("wrong pass")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret key checksum mismatch: wrong password?"
    );
    let err = SecretKey::parse(&key_file, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret key is encrypted: a password is required"
    );
}

#[test]
fn kiln_uses_minisign_encrypted_keys_at_full_cost() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let public = scratch.path("m.pub");
    let secret = scratch.path("m.key");
    run_ok(
        minisign()
            .arg("-G")
            .arg("-p")
            .arg(&public)
            .arg("-s")
            .arg(&secret),
        "pass\npass\n",
    );
    assert_eq!(stored_limits(&read(&secret)), KdfLimits::MINISIGN);
    let sk = SecretKey::parse(read(&secret), Some("pass")).unwrap();
    let theirs = minisign_sign(&secret, &data, &scratch.path("theirs.minisig"), "pass");
    assert_eq!(kiln_sign(&sk, &data, TRUSTED, MINISIGN_COMMENT), theirs);
}

#[test]
fn legacy_signatures_are_refused_unless_allowed() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let (public, secret) = scratch.minisign_key("m");
    let sig_path = scratch.path("legacy.minisig");
    run_ok(
        minisign()
            .arg("-S")
            .arg("-l")
            .arg("-s")
            .arg(&secret)
            .arg("-m")
            .arg(&data)
            .arg("-x")
            .arg(&sig_path),
        "",
    );
    let keys = [PublicKey::parse(read(&public)).unwrap()];
    let sig = Signature::parse(read(&sig_path)).unwrap();
    assert_eq!(sig.algorithm(), Algorithm::Legacy);
    let err = verify(&keys, &sig, fs::File::open(&data).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "legacy signature (algorithm \"Ed\", made with `minisign -S -l`) refused: \
         only prehashed \"ED\" signatures are accepted; re-sign without -l"
    );
    verify_allow_legacy(&keys, &sig, fs::File::open(&data).unwrap()).unwrap();
    // minisign -H draws the same line.
    let stderr = run_err(minisign_verify(&public, &data, &sig_path).arg("-H"), "");
    assert!(
        stderr.contains("Legacy (non-prehashed) signature found"),
        "{stderr}"
    );
}

/// Each tampering is refused by kiln with a specific message, and by minisign.
#[test]
fn tampering_is_caught_by_kiln_and_minisign() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let (public, secret) = scratch.minisign_key("m");
    let (other_public, _) = scratch.minisign_key("other");
    let good = minisign_sign(&secret, &data, &scratch.path("good.minisig"), "");
    let pk = PublicKey::parse(read(&public)).unwrap();
    let other = PublicKey::parse(read(&other_public)).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let raw_sig = BASE64.decode(lines[1]).unwrap();
    let raw_global = BASE64.decode(lines[3]).unwrap();
    let with_line = |n: usize, line: &str| {
        let mut lines = lines.clone();
        lines[n] = line;
        lines.join("\n") + "\n"
    };
    let flip = |bytes: &[u8], i: usize| {
        let mut bytes = bytes.to_vec();
        bytes[i] ^= 0x01;
        BASE64.encode(bytes)
    };
    let mut tampered_data = fs::read(&data).unwrap();
    tampered_data[100_000] ^= 0x01;
    let mut bad_alg = raw_sig.clone();
    bad_alg[1] = b'X';

    let wrong_key = format!(
        "signature was made with key {} but the trusted key is {}",
        pk.key_id(),
        other.key_id()
    );
    let flipped_id = {
        let mut id: [u8; 8] = raw_sig[2..10].try_into().unwrap();
        id[0] ^= 0x01;
        format!(
            "signature was made with key {:016X} but the trusted key is {}",
            u64::from_le_bytes(id),
            pk.key_id()
        )
    };
    // (case, signature file, data, trusted key file, kiln's message)
    let cases: Vec<(&str, String, Vec<u8>, &Path, String)> = vec![
        (
            "data",
            good.clone(),
            tampered_data,
            &public,
            "signature does not match the data".into(),
        ),
        (
            "signature bytes",
            with_line(1, &flip(&raw_sig, 40)),
            fs::read(&data).unwrap(),
            &public,
            "signature does not match the data".into(),
        ),
        (
            "signature key id",
            with_line(1, &flip(&raw_sig, 2)),
            fs::read(&data).unwrap(),
            &public,
            flipped_id,
        ),
        (
            "signature algorithm",
            with_line(1, &BASE64.encode(&bad_alg)),
            fs::read(&data).unwrap(),
            &public,
            "signature file (line 2): unsupported signature algorithm \"EX\" \
             (expected \"ED\" or \"Ed\")"
                .into(),
        ),
        (
            "trusted comment",
            with_line(2, &lines[2].replace("kiln", "kilm")),
            fs::read(&data).unwrap(),
            &public,
            "trusted comment was modified (global signature invalid)".into(),
        ),
        (
            "global signature",
            with_line(3, &flip(&raw_global, 10)),
            fs::read(&data).unwrap(),
            &public,
            "trusted comment was modified (global signature invalid)".into(),
        ),
        (
            "wrong key",
            good.clone(),
            fs::read(&data).unwrap(),
            &other_public,
            wrong_key,
        ),
        (
            "truncated to three lines",
            lines[..3].join("\n") + "\n",
            fs::read(&data).unwrap(),
            &public,
            "signature file: line 4 (global signature) is missing".into(),
        ),
        (
            "truncated inside the global signature",
            // Two whole base64 quads and the newline short.
            good[..good.len() - 9].to_owned(),
            fs::read(&data).unwrap(),
            &public,
            "signature file (global signature, line 4): \
             expected 64 bytes after base64 decoding, found 60"
                .into(),
        ),
    ];
    for (case, sig_text, data_bytes, key_path, message) in cases {
        let key = PublicKey::parse(read(key_path)).unwrap();
        let kiln = Signature::parse(&sig_text)
            .map_err(|e| e.to_string())
            .and_then(|sig| {
                verify(std::slice::from_ref(&key), &sig, &data_bytes[..])
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        assert_eq!(kiln, Err(message), "{case}");

        let sig_path = scratch.write("tampered.minisig", &sig_text);
        let data_path = scratch.write("tampered.bin", &data_bytes);
        run_err(&mut minisign_verify(key_path, &data_path, &sig_path), "");
    }
    // The untampered inputs pass both, so the cases above fail for their own reason.
    verify(
        &[pk],
        &Signature::parse(&good).unwrap(),
        fs::File::open(&data).unwrap(),
    )
    .unwrap();
    run_ok(
        &mut minisign_verify(&public, &data, &scratch.path("good.minisig")),
        "",
    );
}

#[test]
fn signing_is_deterministic() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let sk = SecretKey::generate().unwrap();
    let first = kiln_sign(&sk, &data, TRUSTED, DEFAULT_SIGNATURE_COMMENT);
    let second = kiln_sign(&sk, &data, TRUSTED, DEFAULT_SIGNATURE_COMMENT);
    assert_eq!(first, second);
    // A reparsed key signs identically too.
    let reparsed = SecretKey::parse(sk.to_file_string(None).unwrap(), None).unwrap();
    assert_eq!(
        kiln_sign(&reparsed, &data, TRUSTED, DEFAULT_SIGNATURE_COMMENT),
        first
    );
}

/// kiln's comment limits are exactly what minisign can read back.
#[test]
fn comment_limits_match_minisign() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let (public, secret) = scratch.minisign_key("m");
    let sk = SecretKey::parse(read(&secret), None).unwrap();
    let trusted = "t".repeat(MAX_TRUSTED_COMMENT_LEN);
    let untrusted = "u".repeat(MAX_UNTRUSTED_COMMENT_LEN);
    let longest = kiln_sign(&sk, &data, &trusted, &untrusted);
    let sig = scratch.write("longest.minisig", &longest);
    let out = run_ok(minisign_verify(&public, &data, &sig).arg("-Q"), "");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{trusted}\n")
    );

    // One more byte in either comment and minisign can no longer read the file.
    let lines: Vec<&str> = longest.lines().collect();
    for (n, longer) in [(0, format!("{}u", lines[0])), (2, format!("{}t", lines[2]))] {
        let mut lines = lines.clone();
        lines[n] = &longer;
        let sig = scratch.write("longer.minisig", lines.join("\n") + "\n");
        let stderr = run_err(&mut minisign_verify(&public, &data, &sig), "");
        assert!(stderr.contains("too long"), "line {}: {stderr}", n + 1);
    }
    let too_long = sign(&sk, &[][..], &format!("{trusted}t"), "").unwrap_err();
    assert_eq!(
        too_long.to_string(),
        format!(
            "trusted comment is {} bytes long; minisign reads at most {MAX_TRUSTED_COMMENT_LEN}",
            MAX_TRUSTED_COMMENT_LEN + 1
        )
    );
}
