//! A trustworthy client of a Debian archive: signed Release files, and
//! package indexes checked against them.
//!
//! `InRelease` is verified with `gpgv`, exactly as apt does, against the
//! archive keyring; only the text gpgv vouches for is read. Its
//! Valid-Until is honoured and its Suite or Codename must be the one asked
//! for (so an old or foreign Release cannot be replayed). Packages indexes
//! are fetched by hash where the archive offers it and must match the
//! sha256 and size in the verified Release.

use super::deb822;
use crate::fetch::Fetcher;
use anyhow::{Context, Result, anyhow, bail};
use kiln_diag::{Limit, quote, read_file, read_limited};
use kiln_tree::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where one suite comes from.
#[derive(Clone, Debug)]
pub struct SuiteSource {
    pub suite: String,
    pub mirror: String,
    pub components: Vec<String>,
}

/// The verified fields of a suite's Release file.
#[derive(Clone, Debug)]
pub struct Release {
    pub suite: String,
    pub date: String,
    pub valid_until: Option<String>,
    pub acquire_by_hash: bool,
    /// Index files by path below `dists/SUITE/`: (sha256, size).
    pub files: BTreeMap<String, (Digest, u64)>,
    /// Digest of the InRelease file as fetched, for the lockfile.
    pub inrelease_sha256: Digest,
}

/// The archive keyring of the build host, as apt uses it.
pub const HOST_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Largest InRelease accepted; Debian's are around 200 KB.
pub const INRELEASE_LIMIT: Limit = Limit::mib(16, "InRelease file");
/// Largest Packages index accepted as fetched; bookworm main is ~9 MB
/// compressed.
pub const PACKAGES_LIMIT: Limit = Limit::mib(256, "Packages index");
/// Largest Packages index accepted once decompressed; bookworm main is
/// ~45 MB. A small compressed file may expand without end (a
/// decompression bomb): decompression stops here.
pub const PACKAGES_TEXT_LIMIT: Limit = Limit::mib(512, "decompressed Packages index");
/// Largest archive keyring read; Debian's is ~100 KB.
pub const KEYRING_LIMIT: Limit = Limit::mib(16, "keyring");

/// Fetches and verifies `dists/SUITE/InRelease`. `now` (seconds since
/// 1970) is compared with Valid-Until.
pub fn fetch_release(
    fetcher: &Fetcher,
    source: &SuiteSource,
    keyring: &Path,
    now: i64,
) -> Result<Release> {
    let suite = &source.suite;
    let url = format!("{}/dists/{suite}/InRelease", source.mirror);
    let signed = fetcher
        .get_bytes(&url, INRELEASE_LIMIT)
        .with_context(|| format!("suite {suite}: cannot fetch InRelease"))?;
    let text = gpgv_verify(&signed, keyring)
        .with_context(|| format!("suite {suite}: {url} is not validly signed"))?;
    let release = parse_release(&text, Digest::of(&signed))
        .with_context(|| format!("suite {suite}: InRelease"))?;
    check_release(&release, suite, now)?;
    Ok(release)
}

/// Runs `gpgv` on a clearsigned file; returns the text it vouches for.
pub fn gpgv_verify(signed: &[u8], keyring: &Path) -> Result<String> {
    if !keyring.is_file() {
        bail!(
            "keyring {} does not exist: install debian-archive-keyring or set keyring = \"...\" in [debian]",
            keyring.display()
        );
    }
    let work = tempfile::tempdir()?;
    let input = work.path().join("InRelease");
    let output = work.path().join("Release");
    std::fs::write(&input, signed)?;
    let keyring = binary_keyring(keyring, work.path())?;
    let run = Command::new("gpgv")
        .arg("--status-fd")
        .arg("1")
        .arg("--keyring")
        .arg(&keyring)
        .arg("--output")
        .arg(&output)
        .arg(&input)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| anyhow!("cannot run gpgv (install the gpgv package): {e}"))?;
    let status = String::from_utf8_lossy(&run.stdout);
    let valid = status.lines().any(|l| l.starts_with("[GNUPG:] VALIDSIG "));
    if !run.status.success() || !valid {
        let reason = status
            .lines()
            .find_map(|l| {
                let l = l.strip_prefix("[GNUPG:] ")?;
                match l.split_whitespace().next()? {
                    "BADSIG" => Some("the signature is BAD: the file was modified".to_owned()),
                    "NO_PUBKEY" => Some(format!(
                        "it is signed by key {}, which the keyring does not hold",
                        l.split_whitespace().nth(1).unwrap_or("?")
                    )),
                    "EXPKEYSIG" => Some("it is signed by an expired key".to_owned()),
                    "REVKEYSIG" => Some("it is signed by a revoked key".to_owned()),
                    "NODATA" => Some("it holds no OpenPGP signature".to_owned()),
                    _ => None,
                }
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&run.stderr).trim().to_owned());
        bail!("gpgv refused it: {reason}");
    }
    let text = read_file(&output, INRELEASE_LIMIT)?;
    String::from_utf8(text).map_err(|_| anyhow!("the signed Release text is not UTF-8"))
}

/// gpgv reads binary keyrings; an armored (`.asc`) one is dearmored first,
/// as apt does.
fn binary_keyring(keyring: &Path, work: &Path) -> Result<PathBuf> {
    let bytes = read_file(keyring, KEYRING_LIMIT)?;
    if !bytes.starts_with(b"-----BEGIN PGP") {
        // gpgv looks a name without a slash up in ~/.gnupg: always pass a path.
        return std::fs::canonicalize(keyring)
            .with_context(|| format!("cannot read keyring {}", keyring.display()));
    }
    let out = work.join("keyring.gpg");
    let run = Command::new("gpg")
        .args(["--batch", "--yes", "--dearmor", "--output"])
        .arg(&out)
        .arg(keyring)
        .output()
        .map_err(|e| anyhow!("cannot run gpg to dearmor {}: {e}", keyring.display()))?;
    if !run.status.success() {
        bail!(
            "cannot dearmor keyring {}: {}",
            keyring.display(),
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    Ok(out)
}

fn parse_release(text: &str, inrelease_sha256: Digest) -> Result<Release> {
    let paragraph = deb822::paragraphs(text)
        .next()
        .context("the Release text is empty")??;
    let suite = paragraph
        .get("Codename")
        .or(paragraph.get("Suite"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut files = BTreeMap::new();
    if let Some(field) = paragraph.field("SHA256") {
        for line in field.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [hash, size, path] = parts[..] else {
                bail!("malformed SHA256 line {}", quote(line))
            };
            let digest: Digest = hash
                .parse()
                .map_err(|e: String| anyhow!(kiln_diag::clip_quoted(&e)))?;
            let size: u64 = size
                .parse()
                .with_context(|| format!("malformed size in {}", quote(line)))?;
            files.insert(path.to_owned(), (digest, size));
        }
    }
    if files.is_empty() {
        bail!("the Release lists no SHA256 checksums");
    }
    let mut release = Release {
        suite,
        date: paragraph.get("Date").unwrap_or_default().trim().to_owned(),
        valid_until: paragraph.get("Valid-Until").map(|v| v.trim().to_owned()),
        acquire_by_hash: paragraph
            .get("Acquire-By-Hash")
            .is_some_and(|v| v.trim() == "yes"),
        files,
        inrelease_sha256,
    };
    // Keep both names: a request may use the codename or the suite.
    if let (Some(codename), Some(suite)) = (paragraph.get("Codename"), paragraph.get("Suite")) {
        release.suite = format!("{} {}", codename.trim(), suite.trim());
    }
    Ok(release)
}

fn check_release(release: &Release, requested: &str, now: i64) -> Result<()> {
    if !release.suite.split(' ').any(|s| s == requested) {
        bail!(
            "suite {requested}: the signed Release is for {}, not for {requested} (a replayed or misplaced file)",
            quote(&release.suite)
        );
    }
    if let Some(until) = &release.valid_until {
        let expiry = parse_rfc2822(until).with_context(|| {
            format!(
                "suite {requested}: cannot read Valid-Until {}",
                quote(until)
            )
        })?;
        if now > expiry {
            bail!(
                "suite {requested}: the Release expired at {until} (Valid-Until); the mirror is stale or an attacker is replaying an old index"
            );
        }
    }
    Ok(())
}

/// A Packages index of one component, verified against the Release.
pub struct PackagesIndex {
    pub component: String,
    /// The path below `dists/SUITE/` of the file that was fetched.
    pub path: String,
    pub sha256: Digest,
    pub text: String,
}

/// Fetches `COMPONENT/binary-ARCH/Packages` (xz, else gz, else plain),
/// by hash when the archive offers it, and checks it against `release`.
pub fn fetch_packages(
    fetcher: &Fetcher,
    source: &SuiteSource,
    release: &Release,
    component: &str,
    arch: &str,
) -> Result<PackagesIndex> {
    let suite = &source.suite;
    let base = format!("{component}/binary-{arch}/Packages");
    let (path, (digest, size)) = ["xz", "gz", ""]
        .iter()
        .map(|ext| if ext.is_empty() { base.clone() } else { format!("{base}.{ext}") })
        .find_map(|p| release.files.get(&p).map(|v| (p, *v)))
        .ok_or_else(|| anyhow!("suite {suite}: the Release lists no {base}(.xz|.gz): is {component} a component of it?"))?;
    let url = if release.acquire_by_hash {
        format!(
            "{}/dists/{suite}/{component}/binary-{arch}/by-hash/SHA256/{}",
            source.mirror,
            digest.hex()
        )
    } else {
        format!("{}/dists/{suite}/{path}", source.mirror)
    };
    let bytes = fetcher
        .get_bytes(&url, PACKAGES_LIMIT)
        .with_context(|| format!("suite {suite}: cannot fetch {path}"))?;
    let actual = Digest::of(&bytes);
    if bytes.len() as u64 != size || actual != digest {
        bail!(
            "suite {suite}: {path} does not match the signed Release: sha256 {actual} and {} bytes, expected sha256 {digest} and {size} bytes",
            bytes.len()
        );
    }
    let text = decompress_index(&bytes, &path, PACKAGES_TEXT_LIMIT)
        .with_context(|| format!("suite {suite}"))?;
    Ok(PackagesIndex {
        component: component.to_owned(),
        path,
        sha256: digest,
        text,
    })
}

/// The text of a Packages index fetched as `path` (`.xz`, `.gz` or
/// plain), refused past `limit` bytes of text.
fn decompress_index(bytes: &[u8], path: &str, limit: Limit) -> Result<String> {
    let text = if path.ends_with(".xz") {
        read_limited(liblzma::read::XzDecoder::new(bytes), path, limit, 0)
    } else if path.ends_with(".gz") {
        read_limited(flate2::read::GzDecoder::new(bytes), path, limit, 0)
    } else {
        read_limited(bytes, path, limit, bytes.len())
    };
    let text = text.map_err(|e| match e {
        kiln_diag::ReadError::Io { source, .. } => {
            anyhow!(source).context(format!("cannot decompress {path}"))
        }
        kiln_diag::ReadError::TooLarge { .. } => anyhow!(
            "{path} decompresses to more than the {} a Packages index may be",
            limit.size()
        ),
    })?;
    String::from_utf8(text).map_err(|_| anyhow!("{path} is not UTF-8 text"))
}

/// Seconds since 1970 of an RFC 2822 date as Release files write it:
/// `Sat, 20 May 2025 08:12:34 UTC`.
pub fn parse_rfc2822(text: &str) -> Result<i64> {
    let text = text.trim();
    let text = text.split_once(", ").map_or(text, |(_, rest)| rest);
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [day, month, year, time, zone] = parts[..] else {
        bail!("expected \"Day, DD Mon YYYY HH:MM:SS UTC\"")
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS
        .iter()
        .position(|m| *m == month)
        .context("unknown month")? as i64
        + 1;
    let day: i64 = day.parse()?;
    let year: i64 = year.parse()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse())
        .collect::<Result<_, _>>()?;
    let [h, m, s] = hms[..] else {
        bail!("expected HH:MM:SS")
    };
    let offset = match zone {
        "UTC" | "GMT" | "Z" => 0,
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 5 => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let hours: i64 = z[1..3].parse()?;
            let minutes: i64 = z[3..5].parse()?;
            sign * (hours * 3600 + minutes * 60)
        }
        other => bail!("unknown time zone {other}"),
    };
    Ok(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC").unwrap(), 0);
        assert_eq!(
            parse_rfc2822("Sat, 20 May 2025 08:12:34 UTC").unwrap(),
            1747728754
        );
        assert_eq!(
            parse_rfc2822("Sat, 20 May 2025 10:12:34 +0200").unwrap(),
            1747728754
        );
        assert!(parse_rfc2822("yesterday").is_err());
    }

    #[test]
    fn packages_indexes_are_decompressed_within_the_limit() {
        use std::io::Write;
        let limit = Limit::kib(4, "decompressed Packages index");
        let text = "Package: a\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decompress_index(&gz, "main/Packages.gz", limit).unwrap(),
            text
        );
        // 1 MiB of zeros compresses to a few KiB: a bomb for this limit
        let mut bomb = liblzma::write::XzEncoder::new(Vec::new(), 6);
        bomb.write_all(&vec![b'\n'; 1 << 20]).unwrap();
        let bomb = bomb.finish().unwrap();
        assert!(bomb.len() < 4096);
        let err = decompress_index(&bomb, "main/binary-amd64/Packages.xz", limit).unwrap_err();
        assert_eq!(
            err.to_string(),
            "main/binary-amd64/Packages.xz decompresses to more than the 4 KiB a Packages index may be"
        );
        let err = decompress_index(b"not xz", "Packages.xz", limit).unwrap_err();
        assert_eq!(
            format!("{err:#}").split(':').next(),
            Some("cannot decompress Packages.xz")
        );
        let err = decompress_index(&[0xff, 0xfe], "Packages", limit).unwrap_err();
        assert_eq!(err.to_string(), "Packages is not UTF-8 text");
    }

    #[test]
    fn release_fields_and_suite_identity() {
        let text = "Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 20 May 2025 08:12:34 UTC\nValid-Until: Sat, 27 May 2025 08:12:34 UTC\nAcquire-By-Hash: yes\nSHA256:\n 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5 main/binary-amd64/Packages.xz\n";
        let release = parse_release(text, Digest::of(b"x")).unwrap();
        assert!(release.acquire_by_hash);
        assert_eq!(release.files["main/binary-amd64/Packages.xz"].1, 5);
        check_release(&release, "bookworm", 1747728754).unwrap();
        check_release(&release, "stable", 1747728754).unwrap();
        let err = check_release(&release, "trixie", 0).unwrap_err();
        assert!(err.to_string().contains("not for trixie"), "{err}");
        let err = check_release(&release, "bookworm", 1747728754 + 8 * 86400).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }
}
