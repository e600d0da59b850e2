//! Where a node's provisioning data comes from, in this order; the first
//! one present is used and the others are not asked:
//!
//! 1. a NoCloud seed: a volume labelled `cidata` (vfat or ISO 9660) with
//!    `meta-data` and `user-data` (cloud-localds, Proxmox), or an OpenStack
//!    config drive (`config-2`: `openstack/latest/user_data` and
//!    `meta_data.json`);
//! 2. `kiln.provision=URL` on the kernel command line (PXE): `#cloud-config`
//!    user-data fetched once per boot over HTTP(S);
//! 3. a cloud's metadata service: `kiln.provision=ec2|gce|azure`, or found
//!    from the firmware's DMI vendor strings (EC2 with an IMDSv2 token
//!    first). `kiln.metadata=URL` points at another endpoint (tests).

use crate::provision::{self, MAX_INPUT, Provision, Refusals};
use anyhow::{Context, Result, anyhow, bail};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A NoCloud seed already readable as a directory.
    SeedDir(PathBuf),
    /// A NoCloud seed volume, mounted read-only while it is read.
    SeedDevice(PathBuf),
    Url(String),
    Metadata(Cloud, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Ec2,
    Gce,
    Azure,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::SeedDir(d) => write!(f, "the NoCloud seed {}", d.display()),
            Source::SeedDevice(d) => write!(f, "the NoCloud seed volume {}", d.display()),
            Source::Url(u) => write!(f, "{u}"),
            Source::Metadata(c, base) => write!(f, "the {c:?} metadata service at {base}"),
        }
    }
}

const METADATA: &str = "http://169.254.169.254";

/// What the node offers, in order of precedence.
pub struct Node<'a> {
    /// Where NoCloud volumes appear (`/dev/disk/by-label`).
    pub labels_dir: &'a Path,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// The firmware's DMI strings (`/sys/class/dmi/id`).
    pub dmi_dir: &'a Path,
}

/// The source to read, if any.
pub fn find(node: &Node) -> Result<Option<Source>> {
    for label in ["cidata", "CIDATA", "config-2"] {
        let dev = node.labels_dir.join(label);
        if dev.exists() {
            return Ok(Some(Source::SeedDevice(dev)));
        }
    }
    let arg = |name: &str| {
        node.cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
    };
    let base = arg("kiln.metadata")
        .unwrap_or(METADATA)
        .trim_end_matches('/');
    if !base.starts_with("http://") && !base.starts_with("https://") {
        bail!("kiln.metadata={base}: expected an http:// or https:// URL");
    }
    let cloud = match arg("kiln.provision") {
        Some("ec2") => Some(Cloud::Ec2),
        Some("gce") => Some(Cloud::Gce),
        Some("azure") => Some(Cloud::Azure),
        Some("none") => return Ok(None),
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            return Ok(Some(Source::Url(url.to_owned())));
        }
        Some(other) => {
            bail!("kiln.provision={other}: expected an http(s) URL, ec2, gce, azure or none")
        }
        None => dmi_cloud(node.dmi_dir),
    };
    Ok(cloud.map(|c| Source::Metadata(c, base.to_owned())))
}

fn dmi_cloud(dir: &Path) -> Option<Cloud> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    if read("sys_vendor") == "Amazon EC2" || read("bios_vendor") == "Amazon EC2" {
        Some(Cloud::Ec2)
    } else if read("product_name") == "Google Compute Engine" {
        Some(Cloud::Gce)
    } else if read("chassis_asset_tag") == "7783-7084-3265-9085-8269-3286-77" {
        Some(Cloud::Azure)
    } else {
        None
    }
}

/// The provisioning data of `source`, validated.
pub fn read(source: &Source) -> Result<Result<Provision, Refusals>> {
    match source {
        Source::SeedDir(dir) => read_seed(dir),
        Source::SeedDevice(dev) => {
            let mount = Path::new("/run/kiln-provision/seed");
            std::fs::create_dir_all(mount)?;
            run("mount", &["-o", "ro,nosuid,nodev,noexec"], dev, mount)?;
            let result = read_seed(mount);
            let _ = std::process::Command::new("umount").arg(mount).status();
            result
        }
        Source::Url(url) => {
            let body = get(url, &[])?.ok_or_else(|| anyhow!("{url}: not found (404)"))?;
            Ok(parse(None, Some(&body)))
        }
        Source::Metadata(cloud, base) => metadata(*cloud, base),
    }
}

/// The static network settings of a NoCloud seed (`network-config`), if
/// the node has a seed: its directory, else the volume labelled cidata.
pub fn read_network(
    seed: Option<&Path>,
    labels_dir: &Path,
) -> Result<Option<Result<Vec<crate::network::NetworkFile>, Refusals>>> {
    let read = |dir: &Path| -> Result<_> {
        let path = dir.join("network-config");
        match std::fs::File::open(&path) {
            Ok(f) => {
                let bytes = read_bounded(f, &path.display().to_string())?;
                Ok(Some(crate::network::parse(&bytes)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    };
    if let Some(dir) = seed {
        return read(dir);
    }
    let Some(dev) = ["cidata", "CIDATA"]
        .iter()
        .map(|label| labels_dir.join(label))
        .find(|dev| dev.exists())
    else {
        return Ok(None);
    };
    let mount = Path::new("/run/kiln-provision/network-seed");
    std::fs::create_dir_all(mount)?;
    run("mount", &["-o", "ro,nosuid,nodev,noexec"], &dev, mount)?;
    let result = read(mount);
    let _ = std::process::Command::new("umount").arg(mount).status();
    result
}

fn run(program: &str, options: &[&str], dev: &Path, dir: &Path) -> Result<()> {
    let status = std::process::Command::new(program)
        .args(options)
        .arg(dev)
        .arg(dir)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!(
            "{program} {} {} failed ({status})",
            dev.display(),
            dir.display()
        );
    }
    Ok(())
}

fn read_seed(dir: &Path) -> Result<Result<Provision, Refusals>> {
    if dir.join("openstack/latest").is_dir() {
        return read_config_drive(&dir.join("openstack/latest"));
    }
    let file = |name: &str| -> Result<Option<Vec<u8>>> {
        let path = dir.join(name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        read_bounded(file, &path.display().to_string()).map(Some)
    };
    Ok(parse(
        file("meta-data")?.as_deref(),
        file("user-data")?.as_deref(),
    ))
}

/// An OpenStack config drive: `meta_data.json` gives the hostname and
/// the instance's key pair, `user_data` the `#cloud-config`.
fn read_config_drive(dir: &Path) -> Result<Result<Provision, Refusals>> {
    let read = |name: &str| -> Result<Option<Vec<u8>>> {
        let path = dir.join(name);
        match std::fs::File::open(&path) {
            Ok(f) => read_bounded(f, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    };
    let mut hostname = None;
    let mut keys = Vec::new();
    if let Some(json) = read("meta_data.json")? {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&json) else {
            return Ok(Err(vec!["meta_data.json is not valid JSON".into()]));
        };
        if let Some(name) = value["hostname"].as_str() {
            // The short name: OpenStack gives an FQDN ending in .novalocal.
            hostname = name.split('.').next().map(str::to_owned);
        }
        if let Some(map) = value["public_keys"].as_object() {
            keys.extend(
                map.values()
                    .filter_map(|k| k.as_str())
                    .map(|k| k.trim().to_owned()),
            );
        }
    }
    Ok(from_platform(
        hostname.as_deref(),
        &keys,
        read("user_data")?.as_deref(),
    ))
}

/// What the platform says (a hostname, keys for the default user), then
/// user-data, whose hostname wins. Each value is checked as user-data's
/// would be.
fn from_platform(
    hostname: Option<&str>,
    keys: &[String],
    user: Option<&[u8]>,
) -> Result<Provision, Refusals> {
    let mut out = Provision::default();
    if let Some(name) = hostname.filter(|h| !h.is_empty()) {
        provision::set_hostname(&mut out, name).map_err(|e| vec![e])?;
    }
    if !keys.is_empty() {
        provision::add_keys(&mut out, None, keys.to_vec()).map_err(|e| vec![e])?;
    }
    if let Some(user) = user {
        provision::user_data(user, &mut out)?;
    }
    Ok(out)
}

/// meta-data first, then user-data, whose hostname wins.
fn parse(meta: Option<&[u8]>, user: Option<&[u8]>) -> Result<Provision, Refusals> {
    let mut out = Provision::default();
    if let Some(meta) = meta {
        provision::meta_data(meta, &mut out)?;
    }
    if let Some(user) = user {
        provision::user_data(user, &mut out)?;
    }
    Ok(out)
}

fn metadata(cloud: Cloud, base: &str) -> Result<Result<Provision, Refusals>> {
    let text =
        |bytes: Option<Vec<u8>>| bytes.map(|b| String::from_utf8_lossy(&b).trim().to_owned());
    let (user, hostname, key) = match cloud {
        Cloud::Ec2 => {
            // IMDSv2: a session token first, sent with every request.
            let token = put_token(&format!("{base}/latest/api/token"))?;
            let h = [("X-aws-ec2-metadata-token", token.as_str())];
            (
                get(&format!("{base}/latest/user-data"), &h)?,
                text(get(&format!("{base}/latest/meta-data/local-hostname"), &h)?),
                text(get(
                    &format!("{base}/latest/meta-data/public-keys/0/openssh-key"),
                    &h,
                )?),
            )
        }
        Cloud::Gce => {
            let h = [("Metadata-Flavor", "Google")];
            let v1 = format!("{base}/computeMetadata/v1/instance");
            (
                get(&format!("{v1}/attributes/user-data"), &h)?,
                text(get(&format!("{v1}/hostname"), &h)?),
                None,
            )
        }
        Cloud::Azure => {
            let h = [("Metadata", "true")];
            let q = "api-version=2021-01-01&format=text";
            let compute = format!("{base}/metadata/instance/compute");
            let user = match text(get(&format!("{compute}/userData?{q}"), &h)?) {
                Some(b64) if !b64.is_empty() => {
                    use base64::Engine;
                    Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .context("Azure userData is not base64")?,
                    )
                }
                _ => None,
            };
            (user, text(get(&format!("{compute}/name?{q}"), &h)?), None)
        }
    };
    let keys: Vec<String> = key.into_iter().filter(|k| !k.is_empty()).collect();
    Ok(from_platform(hostname.as_deref(), &keys, user.as_deref()))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET with a few tries; `None` on 404 (nothing provided there).
fn get(url: &str, headers: &[(&str, &str)]) -> Result<Option<Vec<u8>>> {
    let mut last = None;
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(2));
        }
        let mut request = agent().get(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        match request.call() {
            Ok(response) if response.status() == 404 => return Ok(None),
            Ok(response) if response.status().is_success() => {
                let reader = response.into_body().into_reader();
                return read_bounded(reader, url).map(Some);
            }
            Ok(response) => last = Some(anyhow!("GET {url}: {}", response.status())),
            Err(e) => last = Some(anyhow!("GET {url}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("GET {url} failed")))
}

fn put_token(url: &str) -> Result<String> {
    let response = agent()
        .put(url)
        .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
        .send_empty()
        .with_context(|| format!("PUT {url}"))?;
    if !response.status().is_success() {
        bail!("PUT {url}: {} (IMDSv2 token)", response.status());
    }
    let token = read_bounded(response.into_body().into_reader(), url)?;
    let token = String::from_utf8(token).context("the IMDSv2 token is not text")?;
    if token.trim().is_empty() || token.contains(['\r', '\n']) {
        bail!("PUT {url}: no usable IMDSv2 token");
    }
    Ok(token)
}

fn read_bounded(reader: impl Read, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what}"))?;
    if bytes.len() > MAX_INPUT {
        bail!("{what} is larger than {MAX_INPUT} bytes; refused unread");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_platform_says_is_checked_as_user_data_is() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINoL8KcSkkmZ54pGBi0A2pLlefZ8xLrR82trLPWJSQ0t ops@test";
        let p = from_platform(Some("ip-10-0-0-9"), &[key.into()], None).unwrap();
        assert_eq!(p.hostname.as_deref(), Some("ip-10-0-0-9"));
        assert_eq!(p.keys[&None], vec![key.to_string()]);
        let injected = "x\"]\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token";
        assert!(from_platform(Some(injected), &[], None).is_err());
        assert!(from_platform(None, &[injected.into()], None).is_err());
        let user = b"#cloud-config\nhostname: from-user-data\n";
        let p = from_platform(Some("from-platform"), &[], Some(user)).unwrap();
        assert_eq!(p.hostname.as_deref(), Some("from-user-data"));
    }

    #[test]
    fn the_order_of_sources() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("by-label");
        let dmi = dir.path().join("dmi");
        std::fs::create_dir_all(&labels).unwrap();
        std::fs::create_dir_all(&dmi).unwrap();
        let find_with = |cmdline: &str| {
            find(&Node {
                labels_dir: &labels,
                cmdline,
                dmi_dir: &dmi,
            })
        };
        assert_eq!(find_with("quiet").unwrap(), None);
        std::fs::write(dmi.join("sys_vendor"), "Amazon EC2\n").unwrap();
        assert_eq!(
            find_with("quiet").unwrap(),
            Some(Source::Metadata(Cloud::Ec2, METADATA.into()))
        );
        assert_eq!(find_with("kiln.provision=none").unwrap(), None);
        assert_eq!(
            find_with("kiln.provision=gce kiln.metadata=http://10.0.2.2:8080/").unwrap(),
            Some(Source::Metadata(Cloud::Gce, "http://10.0.2.2:8080".into()))
        );
        assert_eq!(
            find_with("kiln.provision=https://pxe/n1.yaml").unwrap(),
            Some(Source::Url("https://pxe/n1.yaml".into()))
        );
        assert!(find_with("kiln.provision=ftp://x").is_err());
        assert!(find_with("kiln.provision=ec2 kiln.metadata=file:///etc").is_err());
        std::fs::write(labels.join("CIDATA"), "").unwrap();
        assert_eq!(
            find_with("kiln.provision=ec2").unwrap(),
            Some(Source::SeedDevice(labels.join("CIDATA")))
        );
    }
}
