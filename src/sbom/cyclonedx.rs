//! CycloneDX 1.6 JSON. The image is the BOM's subject (a platform); the
//! Debian operating system is a component of type `operating-system`
//! (scanners find the distribution by it) that depends on every installed
//! package; the `[[artifact]]` files are `file` components.

use super::Inventory;
use serde_json::{Value, json};

pub fn document(inv: &Inventory) -> Value {
    let mut components = Vec::new();
    let mut image_deps = Vec::new();
    let mut os_deps = Vec::new();
    if let Some(os) = &inv.os {
        components.push(json!({
            "type": "operating-system",
            "bom-ref": "os:debian",
            "name": "debian",
            "version": os.version,
            "supplier": {"name": "Debian"},
        }));
        image_deps.push("os:debian".to_owned());
    }
    for p in &inv.packages {
        let purl = inv.purl(p);
        let mut c = json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": purl,
            "properties": [
                {"name": "kiln:deb:arch", "value": p.arch},
                {"name": "kiln:deb:source", "value": format!("{} {}", p.source, p.source_version)},
                {"name": "kiln:deb:source-purl", "value": inv.source_purl(p)},
            ],
        });
        if let Some(s) = &p.supplier {
            c["supplier"] = supplier(s);
        }
        if let Some(sha256) = &p.sha256 {
            c["hashes"] = json!([{"alg": "SHA-256", "content": sha256}]);
        }
        if let Some(expression) = inv.licenses.by_package.get(&p.name) {
            c["licenses"] = json!([{"expression": expression}]);
        }
        if inv.os.is_some() {
            os_deps.push(purl);
        } else {
            image_deps.push(purl);
        }
        components.push(c);
    }
    for a in &inv.artifacts {
        let bom_ref = format!("artifact:{}", a.name);
        let mut c = json!({
            "type": "file",
            "bom-ref": bom_ref,
            "name": a.name,
            "version": format!("sha256:{}", a.sha256),
            "hashes": [{"alg": "SHA-256", "content": a.sha256}],
            "properties": [{"name": "kiln:artifact:dest", "value": a.dest}],
        });
        if let Some(url) = &a.url {
            c["externalReferences"] = json!([{"type": "distribution", "url": url}]);
        }
        if let Some(s) = &a.supplier {
            c["supplier"] = supplier(s);
        }
        image_deps.push(bom_ref);
        components.push(c);
    }
    let mut dependencies = vec![json!({"ref": "image", "dependsOn": image_deps})];
    if inv.os.is_some() {
        dependencies.push(json!({"ref": "os:debian", "dependsOn": os_deps}));
    }
    let mut image = json!({
        "type": "platform",
        "bom-ref": "image",
        "name": inv.name,
        "version": inv.version,
        "properties": [{"name": "kiln:image:arch", "value": inv.arch}],
    });
    if let Some(s) = &inv.supplier {
        image["supplier"] = supplier(s);
    }
    if let Some(base) = &inv.base {
        image["properties"]
            .as_array_mut()
            .expect("an array")
            .push(json!({"name": "kiln:image:base-sha256", "value": base}));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", inv.uuid),
        "version": 1,
        "metadata": {
            "timestamp": inv.created,
            "tools": {"components": [{
                "type": "application",
                "name": "kiln",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": image,
        },
        "components": components,
        "dependencies": dependencies,
    })
}

fn supplier(s: &super::Supplier) -> Value {
    match &s.email {
        Some(email) => json!({"name": s.name, "contact": [{"email": email}]}),
        None => json!({"name": s.name}),
    }
}
