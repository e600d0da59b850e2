//! Signed provenance (issue #12): a signed build writes an in-toto
//! Statement v1 with a SLSA Provenance v1 predicate in a DSSE envelope;
//! `kiln verify --provenance` checks its signature and that its subjects
//! are the files beside it, and refuses a changed output, a changed
//! statement and an untrusted key. With the network, an independent
//! implementation judges it: PyNaCl checks the Ed25519 signature over
//! DSSE's pre-authentication encoding, and the in-toto-attestation
//! package parses the statement and the predicate strictly (unknown
//! fields refused) and validates the statement.

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use serde_json::Value;
use std::process::Command;

const NAME: &str = "sb-1.0+rc1";

fn envelope(dir: &std::path::Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(dir.join(format!("dist/{NAME}.provenance.json"))).unwrap(),
    )
    .unwrap()
}

fn statement(envelope: &Value) -> Value {
    serde_json::from_slice(
        &BASE64
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn verify(dir: &std::path::Path, key: &str) -> (Option<i32>, String) {
    let out = kiln()
        .current_dir(dir)
        .args([
            "verify",
            &format!("dist/{NAME}.manifest.json"),
            "--key",
            key,
            "--provenance",
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_signed_build_has_provenance_that_verify_checks() {
    let b = crate::sbom::build();
    let dir = &b.dir;
    let env = envelope(dir);
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    let st = statement(&env);
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    // subjects: every output with its digest, the manifest included
    let subjects: std::collections::BTreeMap<String, String> = st["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["digest"]["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for file in ["rootfs.tar.zst", "spdx.json", "cdx.json", "manifest.json"] {
        let name = format!("{NAME}.{file}");
        assert_eq!(
            subjects.get(&name),
            Some(&sha256_file(&dir.join("dist").join(&name))),
            "{name}"
        );
    }
    // what it was made from: recipe, lock, each .deb, the artifact; by what
    let definition = &st["predicate"]["buildDefinition"];
    let deps = definition["resolvedDependencies"].as_array().unwrap();
    let dep = |name: &str| {
        deps.iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {deps:?}"))
    };
    assert_eq!(
        dep("recipe:r.toml")["digest"]["sha256"],
        sha256_file(&dir.join("r.toml"))
    );
    assert_eq!(
        dep("lock:r.lock")["digest"]["sha256"],
        sha256_file(&dir.join("r.lock"))
    );
    assert_eq!(
        dep("artifact:helper")["digest"]["sha256"],
        sha256_file(&dir.join("helper"))
    );
    for deb in &b.debs {
        assert!(
            deps.iter()
                .any(|d| d["digest"]["sha256"] == sha256_file(deb)),
            "{} not among {deps:?}",
            deb.display()
        );
    }
    let foo = dep("libfoo1_1:1.2-3+deb12u1_amd64.deb");
    assert_eq!(
        foo["uri"],
        "pkg:deb/debian/libfoo1@1%3A1.2-3%2Bdeb12u1?arch=amd64"
    );
    assert_eq!(
        definition["internalParameters"]["source_date_epoch"],
        1_700_000_000
    );
    let builder = &st["predicate"]["runDetails"]["builder"];
    assert_eq!(
        builder["version"]["kiln-sha256"],
        sha256_file(std::path::Path::new(env!("CARGO_BIN_EXE_kiln")))
    );

    let (code, said) = verify(dir, "k.pub");
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "ok      provenance dist/{NAME}.provenance.json: by key "
        )),
        "{said}"
    );

    // what a pipeline reads: every file written, as lines or as JSON
    let out = run_ok(
        kiln()
            .current_dir(dir)
            .args(["build", "r.toml", "-o", "again", "--key", "k.key", "-q"]),
    );
    let lines = String::from_utf8(out.stdout).unwrap();
    assert!(
        lines
            .lines()
            .any(|l| l == format!("again/{NAME}.provenance.json")),
        "{lines}"
    );
    let out = run_ok(kiln().current_dir(dir).args([
        "build", "r.toml", "-o", "again", "--key", "k.key", "-q", "--json",
    ]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["provenance"],
        format!("again/{NAME}.provenance.json")
    );
    assert_eq!(report["image"]["version"], "1.0+rc1");
    for a in report["artifacts"].as_array().unwrap() {
        assert_eq!(
            a["sha256"].as_str().unwrap(),
            sha256_file(&dir.join(a["path"].as_str().unwrap())),
            "{a}"
        );
    }
    let lock = |dir: &std::path::Path| -> Value {
        serde_json::from_slice(
            &run_ok(
                kiln()
                    .current_dir(dir)
                    .args(["lock", "r.toml", "--json", "-q"]),
            )
            .stdout,
        )
        .unwrap()
    };
    let same = lock(dir);
    assert_eq!(
        (
            same["packages"].as_u64(),
            same["added"].as_array().map(Vec::len)
        ),
        (Some(3), Some(0))
    );
    std::fs::remove_file(dir.join("r.lock")).unwrap();
    let fresh = lock(dir);
    assert_eq!(fresh["added"].as_array().map(Vec::len), Some(3), "{fresh}");
    assert!(
        fresh["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "libfoo1" && p["version"] == "1:1.2-3+deb12u1")
    );

    // a statement changed under its signature
    let mut bad = env.clone();
    let mut changed = st.clone();
    changed["subject"][0]["digest"]["sha256"] = "0".repeat(64).into();
    bad["payload"] = BASE64.encode(changed.to_string()).into();
    let path = dir.join(format!("dist/{NAME}.provenance.json"));
    std::fs::write(&path, bad.to_string()).unwrap();
    let (code, said) = verify(dir, "k.pub");
    assert_eq!(code, Some(4), "{said}");
    assert!(said.contains("no signature by a trusted key"), "{said}");
    std::fs::write(&path, env.to_string()).unwrap();

    // another key
    run_ok(
        kiln()
            .current_dir(dir)
            .args(["keygen", "-o", "other", "--no-password"]),
    );
    let (code, said) = verify(dir, "other.pub");
    assert_eq!(code, Some(4), "{said}");

    // an output changed: named
    let sbom = dir.join(format!("dist/{NAME}.cdx.json"));
    let mut text = std::fs::read(&sbom).unwrap();
    text.push(b'\n');
    std::fs::write(&sbom, text).unwrap();
    let (code, said) = verify(dir, "k.pub");
    assert_eq!(code, Some(4), "{said}");
    assert!(
        said.contains(&format!("{NAME}.cdx.json has sha256 ")),
        "{said}"
    );
}

#[test]
#[ignore = "needs network"]
fn an_independent_implementation_accepts_the_provenance() {
    let bin = crate::sbom::validators();
    run_ok(Command::new(bin.join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "in-toto-attestation==0.9.3",
        "pynacl==1.6.2",
    ]));
    let b = crate::sbom::build();
    let envelope = b.dir.join(format!("dist/{NAME}.provenance.json"));
    let script = r#"
import base64, json, sys
from nacl.signing import VerifyKey
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

env = json.load(open(sys.argv[1]))
# the Ed25519 key: a minisign public key is "Ed" + key id (8) + key (32)
raw = base64.b64decode(open(sys.argv[2]).read().splitlines()[1])[10:]
payload = base64.b64decode(env["payload"])
ptype = env["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
VerifyKey(raw).verify(pae, base64.b64decode(env["signatures"][0]["sig"]))
statement = json.loads(payload)
predicate = statement["predicate"]
pb = json_format.ParseDict(statement, statement_pb2.Statement())
Statement.copy_from_pb(pb).validate()
prov = json_format.ParseDict(predicate, provenance_pb2.Provenance())
assert prov.build_definition.build_type, "no buildType"
assert prov.run_details.builder.id, "no builder id"
print("ok", len(pb.subject), "subjects", len(prov.build_definition.resolved_dependencies), "dependencies")
"#;
    let out = run_ok(
        Command::new(bin.join("python"))
            .args(["-c", script])
            .arg(&envelope)
            .arg(b.dir.join("k.pub")),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
    // a changed payload fails PyNaCl's check
    let mut env: Value = serde_json::from_slice(&std::fs::read(&envelope).unwrap()).unwrap();
    let mut st = statement(&env);
    st["subject"][0]["name"] = "forged".into();
    env["payload"] = BASE64.encode(st.to_string()).into();
    std::fs::write(&envelope, env.to_string()).unwrap();
    let out = Command::new(bin.join("python"))
        .args(["-c", script])
        .arg(&envelope)
        .arg(b.dir.join("k.pub"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a forged statement was accepted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("BadSignatureError"));
}
