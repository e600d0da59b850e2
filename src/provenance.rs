//! Signed provenance (docs/provenance.md): an in-toto Statement v1 whose
//! predicate is SLSA Provenance v1 — the outputs (subjects) with their
//! sha256; what the build was made from (the recipe files, the lock, every
//! .deb, the base, every artifact) and by what (kiln's version and its own
//! binary's digest) — in a DSSE envelope signed with the release key.
//!
//! The envelope is `NAME-VERSION.provenance.json` beside the manifest. The
//! manifest does not list it (it lists the manifest); `kiln verify
//! --provenance` checks its signature and that its subjects are the files
//! beside it.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kiln_minisign::{KeyId, PublicKey, SecretKey};
use serde_json::{Value, json};

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build this is: the meaning of the parameters below
/// (docs/provenance.md).
pub const BUILD_TYPE: &str = "urn:kiln:build-type:image:v1";
pub const BUILDER_ID: &str = "urn:kiln:builder";
/// Largest envelope read: one image's is tens of KiB per hundred packages.
const ENVELOPE_LIMIT: kiln_diag::Limit = kiln_diag::Limit::mib(64, "provenance");

/// One output or input: a name (or URI) and its sha256.
pub struct Resource {
    pub name: String,
    pub uri: Option<String>,
    pub sha256: String,
}

/// What goes into the predicate.
pub struct Build {
    pub subjects: Vec<Resource>,
    pub external: Value,
    pub internal: Value,
    pub dependencies: Vec<Resource>,
    pub kiln_sha256: String,
}

/// The in-toto statement, canonical JSON.
pub fn statement(build: &Build) -> String {
    let resource = |r: &Resource| {
        let mut v = json!({"name": r.name, "digest": {"sha256": r.sha256}});
        if let Some(uri) = &r.uri {
            v["uri"] = uri.clone().into();
        }
        v
    };
    let value = json!({
        "_type": STATEMENT_TYPE,
        "subject": build.subjects.iter().map(resource).collect::<Vec<_>>(),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": build.external,
                "internalParameters": build.internal,
                "resolvedDependencies": build.dependencies.iter().map(resource).collect::<Vec<_>>(),
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {
                        "kiln": env!("CARGO_PKG_VERSION"),
                        "kiln-sha256": build.kiln_sha256,
                    },
                },
            },
        },
    });
    crate::manifest::canonical_json(&value)
}

/// DSSE's pre-authentication encoding: what the signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The envelope of `statement` signed with `key`, as one JSON line.
pub fn envelope(statement: &str, key: &SecretKey) -> String {
    let signature = key.sign_raw(&pae(PAYLOAD_TYPE, statement.as_bytes()));
    let value = json!({
        "payloadType": PAYLOAD_TYPE,
        "payload": BASE64.encode(statement),
        "signatures": [{"keyid": key.key_id().to_string(), "sig": BASE64.encode(signature)}],
    });
    format!("{value}\n")
}

/// A verified envelope's statement and the key that signed it.
pub struct Verified {
    pub key_id: KeyId,
    pub statement: Value,
}

/// Checks the envelope at `path` with any of `keys`, then parses the
/// statement it signs; every refusal says why.
pub fn verify(path: &std::path::Path, keys: &[PublicKey]) -> Result<Verified> {
    let bytes = kiln_diag::read_file(path, ENVELOPE_LIMIT)?;
    let envelope: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a DSSE envelope (not JSON)", path.display()))?;
    let field = |name: &str| {
        envelope[name]
            .as_str()
            .with_context(|| format!("{}: the envelope has no {name}", path.display()))
    };
    if field("payloadType")? != PAYLOAD_TYPE {
        bail!(
            "{}: the envelope's payloadType is not {PAYLOAD_TYPE}",
            path.display()
        );
    }
    let payload = BASE64
        .decode(field("payload")?)
        .with_context(|| format!("{}: the payload is not base64", path.display()))?;
    let signed = pae(PAYLOAD_TYPE, &payload);
    let signatures = envelope["signatures"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let key = signatures.iter().find_map(|s| {
        let sig = BASE64.decode(s["sig"].as_str()?).ok()?;
        keys.iter().find(|k| k.verify_raw(&signed, &sig))
    });
    let Some(key) = key else {
        bail!(
            "{}: no signature by a trusted key ({} signature(s) in the envelope)",
            path.display(),
            signatures.len()
        );
    };
    let statement: Value = serde_json::from_slice(&payload)
        .with_context(|| format!("{}: the signed statement is not JSON", path.display()))?;
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != PREDICATE_TYPE {
        bail!(
            "{}: the signed statement is not an in-toto v1 SLSA provenance",
            path.display()
        );
    }
    Ok(Verified {
        key_id: key.key_id(),
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
