//! SPDX 2.3 JSON. The image is the described package; it contains the
//! Debian operating system (a package whose purpose is OPERATING-SYSTEM:
//! scanners find the distribution by it), which contains every installed
//! package, and the `[[artifact]]` files.

use super::Inventory;
use serde_json::{Value, json};

const NOASSERTION: &str = "NOASSERTION";

pub fn document(inv: &Inventory) -> Value {
    let mut packages = Vec::new();
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-image",
    })];
    let contains = |from: &str, to: &str| {
        json!({
            "spdxElementId": from,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": to,
        })
    };
    let mut image = json!({
        "SPDXID": "SPDXRef-image",
        "name": inv.name,
        "versionInfo": inv.version,
        "supplier": supplier(inv.supplier.as_ref()),
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
        "comment": format!("kiln image for {}", inv.arch),
    });
    if let Some(base) = &inv.base {
        image["sourceInfo"] = format!("built on a base tarball with sha256 {base}").into();
    }
    packages.push(image);
    let os_id = "SPDXRef-os-debian";
    if let Some(os) = &inv.os {
        packages.push(json!({
            "SPDXID": os_id,
            "name": "debian",
            "versionInfo": os.version,
            "supplier": "Organization: Debian",
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        }));
        relationships.push(contains("SPDXRef-image", os_id));
    }
    let parent = if inv.os.is_some() {
        os_id
    } else {
        "SPDXRef-image"
    };
    let mut ids = std::collections::BTreeSet::new();
    for p in &inv.packages {
        let id = unique(&mut ids, &format!("SPDXRef-deb-{}-{}", p.name, p.arch));
        let mut package = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "supplier": supplier(p.supplier.as_ref()),
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": inv.licenses.by_package.get(&p.name).map_or(NOASSERTION, String::as_str),
            "copyrightText": NOASSERTION,
            "sourceInfo": format!(
                "built package from: {} {} ({})",
                p.source,
                p.source_version,
                inv.source_purl(p)
            ),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": inv.purl(p),
            }],
        });
        if let Some(sha256) = &p.sha256 {
            package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sha256}]);
        }
        relationships.push(contains(parent, &id));
        packages.push(package);
    }
    for a in &inv.artifacts {
        let id = unique(&mut ids, &format!("SPDXRef-artifact-{}", a.name));
        packages.push(json!({
            "SPDXID": id,
            "name": a.name,
            // What identifies a downloaded file is its content.
            "versionInfo": format!("sha256:{}", a.sha256),
            "supplier": supplier(a.supplier.as_ref()),
            "downloadLocation": a.url.as_deref().unwrap_or(NOASSERTION),
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": a.sha256}],
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "FILE",
            "comment": format!("[[artifact]] installed at {}", a.dest),
        }));
        relationships.push(contains("SPDXRef-image", &id));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", inv.name, inv.version),
        "documentNamespace": format!("urn:uuid:{}", inv.uuid),
        "creationInfo": {
            "created": inv.created,
            "creators": [format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !inv.licenses.refs.is_empty() {
        doc["hasExtractedLicensingInfos"] = inv
            .licenses
            .refs
            .iter()
            .map(|(id, name)| {
                json!({
                    "licenseId": id,
                    "name": name,
                    "extractedText": format!(
                        "The license named \"{name}\" in Debian machine-readable copyright files (/usr/share/doc/PACKAGE/copyright)."
                    ),
                })
            })
            .collect::<Vec<_>>()
            .into();
    }
    doc
}

/// `Organization: NAME (EMAIL)`, or NOASSERTION.
fn supplier(s: Option<&super::Supplier>) -> String {
    match s {
        Some(s) => match &s.email {
            Some(email) => format!("Organization: {} ({email})", s.name),
            None => format!("Organization: {}", s.name),
        },
        None => NOASSERTION.to_owned(),
    }
}

/// `raw` with every character an SPDX id may not hold (anything but
/// letters, digits, `.` and `-`) replaced by `-`.
pub(super) fn id_safe(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An SPDX id from `raw`, unique in `ids`.
fn unique(ids: &mut std::collections::BTreeSet<String>, raw: &str) -> String {
    let base = id_safe(raw);
    let mut id = base.clone();
    let mut n = 2;
    while !ids.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}
