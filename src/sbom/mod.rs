//! SBOMs of the image (docs/sbom.md): SPDX 2.3 (`spdx.rs`) and CycloneDX
//! 1.6 (`cyclonedx.rs`) JSON, from what is really in the image — the dpkg
//! database (packages, their source packages and maintainers), each
//! .deb's sha256 (the lock), the licenses of the packages' machine-readable
//! copyright files (`licenses.rs`), the `[[artifact]]`s and the base.
//!
//! Reproducible like every output: sorted, dated SOURCE_DATE_EPOCH, and
//! the document's id derived from its content.

pub mod cyclonedx;
pub mod licenses;
pub mod spdx;

use crate::recipe::Plan;
use crate::recipe::debian::ArtifactSource;
use kiln_tree::{ImagePath, Kind, Store, Tree};
use sha2::Digest as _;

pub use licenses::Licenses;

/// What the SBOMs describe.
pub struct Inventory {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// `2023-11-14T22:13:20Z`: SOURCE_DATE_EPOCH.
    pub created: String,
    /// The Debian release (`/etc/debian_version`, e.g. `12.12`), and its
    /// major number for PURLs' `distro=debian-12`.
    pub os: Option<Os>,
    pub packages: Vec<Package>,
    pub artifacts: Vec<Artifact>,
    /// The base tarball's sha256.
    pub base: Option<String>,
    /// `[image] supplier`.
    pub supplier: Option<Supplier>,
    pub licenses: Licenses,
    /// A UUID (as text) derived from everything above.
    pub uuid: String,
}

pub struct Os {
    pub version: String,
    pub major: String,
}

pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub source: String,
    pub source_version: String,
    pub supplier: Option<Supplier>,
    /// Of the .deb it came from (absent for a base tarball's packages).
    pub sha256: Option<String>,
}

/// A Debian `Maintainer`, cleaned for SBOM consumers: the e-mail only
/// when it is one (a URL in its place is dropped).
#[derive(Clone)]
pub struct Supplier {
    pub name: String,
    pub email: Option<String>,
}

pub struct Artifact {
    pub name: String,
    pub dest: String,
    pub url: Option<String>,
    pub sha256: String,
    /// The host a URL artifact comes from; the image's supplier for a
    /// file of the recipe's.
    pub supplier: Option<Supplier>,
}

impl Inventory {
    /// The inventory of `tree` as built from `plan`; `debs` maps package
    /// names to the sha256 of their .deb.
    pub fn of(
        plan: &Plan,
        tree: &Tree,
        store: &Store,
        debs: &std::collections::BTreeMap<String, String>,
        licenses: Licenses,
        epoch: u64,
    ) -> Inventory {
        let os = read(tree, store, "/etc/debian_version").and_then(|v| {
            let version = v.trim().to_owned();
            let major = version.split('.').next()?.to_owned();
            major
                .chars()
                .all(|c| c.is_ascii_digit())
                .then_some(Os { version, major })
        });
        let mut packages: Vec<Package> = read(tree, store, "/var/lib/dpkg/status")
            .map(|text| installed(&text, debs))
            .unwrap_or_default();
        packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        let image_supplier = plan.image.supplier.as_deref().and_then(supplier);
        let artifacts = plan
            .debian
            .artifacts
            .iter()
            .filter(|a| tree.get(&a.dest).is_some())
            .map(|a| Artifact {
                name: a.name.clone(),
                dest: a.dest.to_string(),
                url: match &a.source {
                    ArtifactSource::Url(url) => Some(url.clone()),
                    ArtifactSource::Path(_) => None,
                },
                sha256: a.sha256.hex(),
                supplier: match &a.source {
                    ArtifactSource::Url(url) => url_host(url).map(|host| Supplier {
                        name: host,
                        email: None,
                    }),
                    ArtifactSource::Path(_) => image_supplier.clone(),
                },
            })
            .collect();
        let mut inventory = Inventory {
            name: plan.image.name.clone(),
            version: plan.image.version.clone(),
            arch: plan.image.arch.clone(),
            created: iso8601(epoch),
            os,
            packages,
            artifacts,
            base: plan.base.as_ref().map(|b| b.sha256.hex()),
            supplier: image_supplier,
            licenses,
            uuid: String::new(),
        };
        inventory.uuid = inventory.derived_uuid();
        inventory
    }

    /// `distro=debian-12` for PURLs, when the release is known.
    fn distro(&self) -> Option<String> {
        self.os.as_ref().map(|os| format!("debian-{}", os.major))
    }

    /// The package URL of a binary package.
    pub fn purl(&self, p: &Package) -> String {
        purl(&p.name, &p.version, &p.arch, self.distro().as_deref())
    }

    /// The package URL of a package's source package.
    pub fn source_purl(&self, p: &Package) -> String {
        purl(
            &p.source,
            &p.source_version,
            "source",
            self.distro().as_deref(),
        )
    }

    /// A name-based UUID (version 8 layout, from sha256) of the content,
    /// so the same image always has the same document id.
    fn derived_uuid(&self) -> String {
        let mut h = sha2::Sha256::new();
        for part in [&self.name, &self.version, &self.arch, &self.created] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for p in &self.packages {
            h.update(format!("{} {} {} {:?}\0", p.name, p.version, p.arch, p.sha256).as_bytes());
        }
        for a in &self.artifacts {
            h.update(format!("{} {} {}\0", a.name, a.dest, a.sha256).as_bytes());
        }
        h.update(format!("{:?}", self.base).as_bytes());
        if let Some(s) = &self.supplier {
            h.update(format!("{} {:?}", s.name, s.email).as_bytes());
        }
        let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 of 32 bytes");
        b[6] = (b[6] & 0x0f) | 0x80; // version 8
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
        let x = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &x[..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..]
        )
    }
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`, the version
/// percent-encoded (`+` → `%2B`, an epoch's `:` → `%3A`).
pub fn purl(name: &str, version: &str, arch: &str, distro: Option<&str>) -> String {
    let mut out = format!(
        "pkg:deb/debian/{}@{}?arch={}",
        encode(name),
        encode(version),
        encode(arch)
    );
    if let Some(distro) = distro {
        out.push_str("&distro=");
        out.push_str(&encode(distro));
    }
    out
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The installed packages of a dpkg status file.
fn installed(text: &str, debs: &std::collections::BTreeMap<String, String>) -> Vec<Package> {
    let mut out = Vec::new();
    for paragraph in kiln_debian::deb822::paragraphs(text) {
        let Ok(p) = paragraph else { break };
        let (Some(name), Some(version)) = (p.get("Package"), p.get("Version")) else {
            continue;
        };
        if !p.get("Status").is_some_and(|s| s.ends_with(" installed")) {
            continue;
        }
        // `Source: glibc (2.36-9)`, `Source: glibc`, or none (same as binary).
        let (source, source_version) = match p.get("Source") {
            Some(s) => match s.split_once(' ') {
                Some((name, v)) => (
                    name.to_owned(),
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_owned(),
                ),
                None => (s.to_owned(), version.to_owned()),
            },
            None => (name.to_owned(), version.to_owned()),
        };
        out.push(Package {
            name: name.to_owned(),
            version: version.to_owned(),
            arch: p.get("Architecture").unwrap_or("all").to_owned(),
            source,
            source_version,
            supplier: p.get("Maintainer").and_then(supplier),
            sha256: debs.get(name).cloned(),
        });
    }
    out
}

/// `Name <email>` as a supplier; whatever is between the brackets must
/// look like an e-mail address to be kept.
fn supplier(maintainer: &str) -> Option<Supplier> {
    let (name, email) = match maintainer.split_once('<') {
        Some((name, rest)) => (name.trim(), rest.split('>').next().map(str::trim)),
        None => (maintainer.trim(), None),
    };
    let email = email.filter(|e| {
        let mut parts = e.splitn(2, '@');
        let (Some(local), Some(domain)) = (parts.next(), parts.next()) else {
            return false;
        };
        !local.is_empty()
            && domain.contains('.')
            && !e.contains("://")
            && !e.chars().any(|c| c.is_whitespace() || c == '(' || c == ')')
    });
    // SPDX's supplier syntax gives parentheses a meaning.
    let name: String = name
        .chars()
        .filter(|c| !matches!(c, '(' | ')'))
        .collect::<String>()
        .trim()
        .to_owned();
    (!name.is_empty()).then(|| Supplier {
        name,
        email: email.map(str::to_owned),
    })
}

/// The host of an `https://host/...` URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_owned())
}

fn read(tree: &Tree, store: &Store, path: &str) -> Option<String> {
    let path = tree.resolve(&ImagePath::new(path).ok()?, true).ok()?;
    match &tree.get(&path)?.kind {
        Kind::File { digest, .. } => String::from_utf8(store.read_to_vec(digest).ok()?).ok(),
        _ => None,
    }
}

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ssZ`.
pub fn iso8601(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_escape_the_version() {
        assert_eq!(
            purl("libc6", "2.36-9+deb12u4", "amd64", Some("debian-12")),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl("bsdutils", "1:2.38.1-5", "source", None),
            "pkg:deb/debian/bsdutils@1%3A2.38.1-5?arch=source"
        );
    }

    #[test]
    fn maintainers_are_cleaned() {
        let s =
            supplier("Debian GNU C Library Maintainers <debian-glibc@lists.debian.org>").unwrap();
        assert_eq!(s.name, "Debian GNU C Library Maintainers");
        assert_eq!(s.email.as_deref(), Some("debian-glibc@lists.debian.org"));
        let s = supplier("Some Team <https://salsa.example/team>").unwrap();
        assert_eq!((s.name.as_str(), s.email), ("Some Team", None));
        assert!(supplier(" <a@b.c>").is_none());
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn status_gives_source_packages() {
        let status = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\nSource: bash\n";
        let debs = [("bash".to_owned(), "ab".to_owned())].into();
        let p = installed(status, &debs);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].source.as_str(), p[0].source_version.as_str()),
            ("glibc", "2.36-9")
        );
        assert_eq!(p[1].source_version, "5.2.15-2+b2");
        assert_eq!(p[1].sha256.as_deref(), Some("ab"));
    }
}
