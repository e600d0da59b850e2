//! `kiln-node pxe-root`: in the initramfs of a PXE boot, before anything
//! of the root is trusted. It fetches the bundle's signed manifest from
//! the URL on the kernel command line (`kiln.pxe=`), checks its signature
//! with the public keys baked into the initramfs, refuses another image or
//! an older version than the initramfs's minimum (a rollback), fetches the
//! root image and its dm-verity hash tree, checks their sizes and sha256
//! against the manifest while they stream to memory (/run), and only then
//! opens them as the verified root (`/dev/mapper/root`) with the root hash
//! from the signed manifest. Every refusal says which check failed.
//!
//! The kernel and initramfs themselves come from the boot loader (iPXE):
//! they are the trust anchor, as the UKI is on a disk (docs/pxe.md).

use anyhow::{Context, Result, anyhow, bail};
use kiln_minisign::{PublicKey, Signature};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the initramfs trusts, baked in by kiln (docs/pxe.md).
pub const TRUST_DIR: &str = "/etc/kiln/pxe";
/// In [`TRUST_DIR`]: `name=` and `minimum_version=` lines.
pub const IMAGE_FILE: &str = "image";
/// In [`TRUST_DIR`]: one minisign public key per `*.pub` file.
pub const KEYS_DIR: &str = "keys";
/// The signed manifest and its signature in a bundle.
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.json.minisig";
/// The manifest formats of the root image and its hash tree.
pub const ROOT_FORMAT: &str = "pxe-root";
pub const VERITY_FORMAT: &str = "pxe-root-verity";

/// A manifest lists every file of the image: a large image's is a few
/// MiB; past this it is not a manifest kiln wrote.
const MANIFEST_LIMIT: u64 = 256 << 20;
const SIGNATURE_LIMIT: u64 = 4096;
/// How long the network may take to come up and the server to answer.
const PATIENCE: Duration = Duration::from_secs(120);

/// What the initramfs was built to accept.
pub struct Trust {
    pub name: String,
    pub minimum_version: String,
    pub keys: Vec<PublicKey>,
}

impl Trust {
    /// Reads [`TRUST_DIR`] (or a copy of it).
    pub fn read(dir: &Path) -> Result<Trust> {
        let image = dir.join(IMAGE_FILE);
        let text = std::fs::read_to_string(&image).with_context(|| {
            format!("cannot read {}: not a kiln PXE initramfs", image.display())
        })?;
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
                .with_context(|| format!("{} has no {key}= line", image.display()))
        };
        let (name, minimum_version) = (field("name")?, field("minimum_version")?);
        let keys_dir = dir.join(KEYS_DIR);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&keys_dir)
            .with_context(|| format!("cannot read {}", keys_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        files.sort();
        let mut keys = Vec::new();
        for file in files {
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            keys.push(
                PublicKey::parse(&text)
                    .with_context(|| format!("{} is not a minisign public key", file.display()))?,
            );
        }
        if keys.is_empty() {
            bail!("{} holds no public key (*.pub)", keys_dir.display());
        }
        Ok(Trust {
            name,
            minimum_version,
            keys,
        })
    }
}

/// The verified root, fetched.
pub struct Root {
    pub data: PathBuf,
    pub hash_tree: PathBuf,
    pub root_hash: String,
    pub version: String,
}

/// The bundle's directory URL from `kiln.pxe=URL` on the kernel command
/// line: the URL of the boot script or of the directory (ending in `/`).
pub fn bundle_url(cmdline: &str) -> Result<String> {
    let url = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kiln.pxe="))
        .context(
            "no kiln.pxe= on the kernel command line: this is not a PXE boot of a kiln bundle",
        )?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        bail!("kiln.pxe={url}: expected the http:// or https:// URL of the bundle's boot script");
    }
    let dir = &url[..url.rfind('/').map_or(url.len(), |i| i + 1)];
    if dir.matches('/').count() < 3 {
        bail!("kiln.pxe={url}: expected the URL of a file in the bundle's directory");
    }
    Ok(dir.to_owned())
}

/// Fetches, verifies and writes the root into `into`; `say` reports progress.
pub fn fetch_root(base: &str, trust: &Trust, into: &Path, say: &dyn Fn(&str)) -> Result<Root> {
    std::fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    let signature = get_bounded(&format!("{base}{SIGNATURE}"), SIGNATURE_LIMIT)?;
    let manifest = get_bounded(&format!("{base}{MANIFEST}"), MANIFEST_LIMIT)?;
    let signature_text = signature;
    let signature = Signature::parse(&signature_text)
        .map_err(|e| anyhow!("{base}{SIGNATURE} is not a minisign signature: {e}"))?;
    let key = kiln_minisign::verify(&trust.keys, &signature, manifest.as_slice())
        .map_err(|e| anyhow!("the manifest's signature is not valid: {e}; refusing the image"))?;
    say(&format!(
        "the manifest's signature is valid (key {})",
        key.key_id()
    ));
    let bytes = manifest;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes)
        .context("the signed manifest is not JSON: it was not written by kiln")?;
    let text = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .with_context(|| format!("the signed manifest has no {what}"))
    };
    let name = text(&manifest["image"]["name"], "image name")?;
    let version = text(&manifest["image"]["version"], "image version")?;
    if name != trust.name {
        bail!(
            "the signed manifest is of image {name:?}, and this initramfs boots only {:?}",
            trust.name
        );
    }
    if older(&version, &trust.minimum_version)? {
        bail!(
            "refusing {name} {version}: older than {}, the oldest version this initramfs accepts (a rollback)",
            trust.minimum_version
        );
    }
    let artifacts = manifest["artifacts"]
        .as_array()
        .context("the signed manifest lists no artifacts")?;
    let find = |format: &str| {
        artifacts
            .iter()
            .find(|a| a["format"] == format)
            .with_context(|| {
                format!("the signed manifest has no {format} artifact: not a PXE bundle")
            })
    };
    let (root, verity) = (find(ROOT_FORMAT)?, find(VERITY_FORMAT)?);
    let root_hash = text(&root["disk"]["root_hash"], "root hash")?;
    if root_hash.len() != 64 || !root_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the signed manifest's root hash {root_hash:?} is not a sha256");
    }
    let data = fetch_artifact(base, root, into, say)?;
    let hash_tree = fetch_artifact(base, verity, into, say)?;
    // Kept for the running node (`kiln check`): what it booted, as signed.
    for (name, content) in [(MANIFEST, &bytes), (SIGNATURE, &signature_text)] {
        std::fs::write(into.join(name), content)
            .with_context(|| format!("cannot write {}", into.join(name).display()))?;
    }
    Ok(Root {
        data,
        hash_tree,
        root_hash,
        version,
    })
}

/// True when image version `a` sorts before `b` (dpkg's ordering).
pub fn older(a: &str, b: &str) -> Result<bool> {
    let parse = |v: &str| {
        v.parse::<kiln_debian::version::Version>()
            .map_err(|e| anyhow!("image version: {e}"))
    };
    Ok(parse(a)? < parse(b)?)
}

/// Streams one listed file of the bundle into `into`, checking its size
/// and sha256 as it comes; a file that differs is removed.
fn fetch_artifact(
    base: &str,
    record: &serde_json::Value,
    into: &Path,
    say: &dyn Fn(&str),
) -> Result<PathBuf> {
    let listed = record["name"]
        .as_str()
        .context("an artifact without a name")?;
    // Listed as DIR/FILE in the output directory; the bundle is DIR.
    let file = listed.rsplit('/').next().unwrap_or(listed);
    if file.is_empty()
        || file.starts_with('.')
        || !file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        bail!("the signed manifest names an artifact {listed:?} that is not a plain file name");
    }
    let size = record["size"]
        .as_u64()
        .context("an artifact without a size")?;
    let sha256 = record["sha256"]
        .as_str()
        .context("an artifact without a sha256")?;
    let url = format!("{base}{file}");
    say(&format!("fetching {url} ({} MiB)", size.div_ceil(1 << 20)));
    let started = Instant::now();
    let path = into.join(file);
    let result = (|| {
        let reader = get(&url)?;
        let mut out = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut reader = reader.take(size + 1);
        let mut buf = vec![0; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("reading {url}"))?;
            if n == 0 {
                break;
            }
            got += n as u64;
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).with_context(|| {
                format!(
                    "cannot write {} (is the node's memory too small?)",
                    path.display()
                )
            })?;
        }
        if got > size {
            bail!(
                "{url} is longer than the {size} bytes the signed manifest says: refusing the image"
            );
        }
        if got < size {
            bail!("{url} has {got} bytes, and the signed manifest says {size}: refusing the image");
        }
        let actual = hex::encode(hasher.finalize());
        if actual != sha256 {
            bail!(
                "{url} has sha256 {actual}, and the signed manifest says {sha256}: the file was changed; refusing the image"
            );
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    say(&format!(
        "{file}: sha256 as signed ({:.1}s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(path)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `url`, retried while the network comes up (at most [`PATIENCE`]);
/// an HTTP error status is not retried.
fn get(url: &str) -> Result<impl Read + use<>> {
    let started = Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        match agent().get(url).call() {
            Ok(response) if response.status().is_success() => {
                return Ok(response.into_body().into_reader());
            }
            Ok(response) => bail!("GET {url}: {}", response.status()),
            Err(e) if started.elapsed() + wait < PATIENCE => {
                eprintln!(
                    "kiln-pxe: GET {url}: {e}; trying again in {}s",
                    wait.as_secs()
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(8));
            }
            Err(e) => bail!(
                "GET {url}: {e} (gave up after {}s)",
                started.elapsed().as_secs()
            ),
        }
    }
}

fn get_bounded(url: &str, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    get(url)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {url}"))?;
    if bytes.len() as u64 > limit {
        bail!("{url} is larger than {limit} bytes: refused unread");
    }
    Ok(bytes)
}

/// Opens the fetched root as `/dev/mapper/root` (systemd-veritysetup:
/// the kernel checks every block against the signed root hash).
pub fn attach(root: &Root) -> Result<()> {
    let status = std::process::Command::new("/usr/lib/systemd/systemd-veritysetup")
        .arg("attach")
        .arg("root")
        .arg(&root.data)
        .arg(&root.hash_tree)
        .arg(&root.root_hash)
        .status()
        .context("cannot run systemd-veritysetup")?;
    if !status.success() {
        bail!("systemd-veritysetup could not open the root ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_the_directory_of_the_url() {
        assert_eq!(
            bundle_url("ro kiln.pxe=http://10.0.2.2:80/n/node-1.pxe/boot.ipxe quiet").unwrap(),
            "http://10.0.2.2:80/n/node-1.pxe/"
        );
        assert_eq!(
            bundle_url("kiln.pxe=https://pxe/b/").unwrap(),
            "https://pxe/b/"
        );
        assert!(bundle_url("ro quiet").is_err());
        assert!(bundle_url("kiln.pxe=tftp://10.0.2.2/boot.ipxe").is_err());
        assert!(bundle_url("kiln.pxe=http://host").is_err());
    }

    #[test]
    fn versions_sort_as_dpkg_sorts_them() {
        assert!(older("1.9", "1.10").unwrap());
        assert!(older("1.0~rc1", "1.0").unwrap());
        assert!(!older("1.0", "1.0").unwrap());
        assert!(!older("2", "1.99").unwrap());
        assert!(older("1 2", "1").is_err());
    }
}
