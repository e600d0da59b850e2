//! SBOMs (issue #12): an image of packages from a test repository made
//! with dpkg-deb and apt-ftparchive (source packages, an epoch and a `+`
//! in versions, DEP-5 and free-form copyright files, an `[[artifact]]`)
//! gets SPDX 2.3 and CycloneDX 1.6 documents, listed in the signed
//! manifest, that say what is installed, byte for byte the same from
//! another directory. With the network, the formats' own validators
//! judge them: spdx-tools (`pyspdxtools`), cyclonedx-python-lib's strict
//! JSON validator and the NTIA minimum elements checker, installed with
//! pip into a virtual environment under target/.

use crate::common;

use common::debrepo::{Deb, TestRepo};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUITE: &str = "kilntest";
const DEP5: &str = "Format: https://www.example.org/copyright-format/1.0/\n\
Upstream-Name: foo\n\nFiles: *\nCopyright: 2020 Foo Authors\nLicense: GPL-2+ or Artistic\n\n\
Files: compat/*\nCopyright: none\nLicense: public-domain\n\n\
License: public-domain\n No rights reserved.\n";

fn debs() -> Vec<Deb> {
    vec![
        Deb {
            name: "base-files",
            version: "12.4+deb12u12",
            files: vec![("/etc/debian_version", "12.12\n")],
            ..Deb::default()
        },
        Deb {
            name: "libfoo1",
            version: "1:1.2-3+deb12u1",
            files: vec![
                ("/usr/lib/x86_64-linux-gnu/libfoo.so.1", "foo\n"),
                ("/usr/share/doc/libfoo1/copyright", DEP5),
            ],
            fields: "Source: foo (1.2-3)\nMulti-Arch: same\n",
            ..Deb::default()
        },
        Deb {
            name: "tool",
            version: "0.1-1",
            arch: "all",
            depends: "libfoo1",
            files: vec![
                ("/usr/bin/tool", "#!/bin/sh\n"),
                (
                    "/usr/share/doc/tool/copyright",
                    "Tool is free software, under the same terms as foo.\n",
                ),
            ],
            ..Deb::default()
        },
    ]
}

pub(super) struct Built {
    _tmp: tempfile::TempDir,
    pub(super) dir: PathBuf,
    pub(super) debs: Vec<PathBuf>,
}

/// The repository, the recipe (with a `[[artifact]]` from a file), one build.
pub(super) fn build() -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let repo = TestRepo::new(&dir);
    let debs = debs().iter().map(|d| repo.add(SUITE, d)).collect();
    repo.publish(SUITE, "");
    std::fs::copy(&repo.keyring, dir.join("keyring.gpg")).unwrap();
    std::fs::write(dir.join("helper"), "#!/bin/sh\necho helper\n").unwrap();
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"sb\"\nversion = \"1.0+rc1\"\nsource_date_epoch = 1700000000\n\
             supplier = \"Example Builders <release@example.com>\"\n\n\
             [debian]\nsuite = \"{SUITE}\"\nupdates = false\nsecurity = false\nvariant = \"essential\"\n\
             packages = [\"base-files\", \"tool\"]\nkeyring = \"keyring.gpg\"\nmirror = \"{}\"\n\n\
             [[artifact]]\nname = \"helper\"\npath = \"helper\"\nsha256 = \"{}\"\ndest = \"/usr/local/bin/helper\"\nmode = \"0755\"\n",
            repo.url(),
            sha256_file(&dir.join("helper")),
        ),
    )
    .unwrap();
    run_ok(
        kiln()
            .current_dir(&dir)
            .args(["keygen", "-o", "k", "--no-password"]),
    );
    run_ok(
        kiln()
            .current_dir(&dir)
            .args(["build", "r.toml", "-o", "dist", "--key", "k.key", "-q"]),
    );
    Built {
        _tmp: tmp,
        dir,
        debs,
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn sboms_say_what_is_installed_and_are_reproducible() {
    let b = build();
    let dist = b.dir.join("dist");
    let spdx = json(&dist.join("sb-1.0+rc1.spdx.json"));
    let cdx = json(&dist.join("sb-1.0+rc1.cdx.json"));
    let deb_sha = |name: &str| {
        sha256_file(
            b.debs
                .iter()
                .find(|d| d.file_name().unwrap().to_str().unwrap().starts_with(name))
                .unwrap(),
        )
    };

    // SPDX: the image, the OS, each package with its PURLs, .deb digest,
    // supplier and license; the artifact with its digest
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert_eq!(spdx["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let packages = spdx["packages"].as_array().unwrap();
    let package = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap();
    assert_eq!(
        package("debian")["primaryPackagePurpose"],
        "OPERATING-SYSTEM"
    );
    assert_eq!(package("debian")["versionInfo"], "12.12");
    let foo = package("libfoo1");
    assert_eq!(foo["versionInfo"], "1:1.2-3+deb12u1");
    assert_eq!(
        foo["externalRefs"][0]["referenceLocator"],
        "pkg:deb/debian/libfoo1@1%3A1.2-3%2Bdeb12u1?arch=amd64&distro=debian-12"
    );
    assert_eq!(
        foo["sourceInfo"],
        "built package from: foo 1.2-3 (pkg:deb/debian/foo@1.2-3?arch=source&distro=debian-12)"
    );
    assert_eq!(foo["checksums"][0]["checksumValue"], deb_sha("libfoo1"));
    assert_eq!(
        foo["supplier"],
        "Organization: kiln tests (tests@kiln.invalid)"
    );
    assert_eq!(
        foo["licenseDeclared"],
        "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND LicenseRef-public-domain"
    );
    // a free-form copyright file declares nothing
    assert_eq!(package("tool")["licenseDeclared"], "NOASSERTION");
    assert_eq!(
        spdx["hasExtractedLicensingInfos"][0]["licenseId"],
        "LicenseRef-public-domain"
    );
    let helper = package("helper");
    assert_eq!(
        helper["checksums"][0]["checksumValue"],
        sha256_file(&b.dir.join("helper"))
    );
    assert_eq!(packages.len(), 6, "image, os, three packages, one artifact");
    assert_eq!(
        package("sb")["supplier"],
        "Organization: Example Builders (release@example.com)"
    );
    assert_eq!(helper["supplier"], package("sb")["supplier"]);

    // CycloneDX: the same, and an operating-system component
    assert_eq!(cdx["specVersion"], "1.6");
    assert_eq!(cdx["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    let components = cdx["components"].as_array().unwrap();
    let os = components
        .iter()
        .find(|c| c["type"] == "operating-system")
        .unwrap();
    assert_eq!(
        (&os["name"], &os["version"]),
        (&"debian".into(), &"12.12".into())
    );
    let foo = components.iter().find(|c| c["name"] == "libfoo1").unwrap();
    assert_eq!(foo["hashes"][0]["content"], deb_sha("libfoo1"));
    assert_eq!(
        foo["licenses"][0]["expression"],
        "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND LicenseRef-public-domain"
    );
    assert_eq!(spdx["documentNamespace"], cdx["serialNumber"]);

    // listed and hashed in the signed manifest
    let manifest = json(&dist.join("sb-1.0+rc1.manifest.json"));
    for (name, format) in [
        ("sb-1.0+rc1.spdx.json", "spdx-json"),
        ("sb-1.0+rc1.cdx.json", "cyclonedx-json"),
    ] {
        let record = manifest["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in the manifest"));
        assert_eq!(record["format"], format);
        assert_eq!(record["sha256"], sha256_file(&dist.join(name)));
    }
    run_ok(kiln().current_dir(&b.dir).args([
        "verify",
        "dist/sb-1.0+rc1.manifest.json",
        "--key",
        "k.pub",
    ]));

    // another directory (the same recipe and .debs), the same documents
    let other = tempfile::tempdir().unwrap();
    for file in ["r.toml", "keyring.gpg", "helper", "k.key"] {
        std::fs::copy(b.dir.join(file), other.path().join(file)).unwrap();
    }
    run_ok(
        kiln()
            .current_dir(other.path())
            .args(["build", "r.toml", "-o", "dist", "--key", "k.key", "-q"]),
    );
    for name in ["sb-1.0+rc1.spdx.json", "sb-1.0+rc1.cdx.json"] {
        assert_eq!(
            sha256_file(&dist.join(name)),
            sha256_file(&other.path().join("dist").join(name)),
            "{name}"
        );
    }
}

/// A virtual environment under target/ with the validators, made once.
pub(super) fn validators() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let venv = repo_root().join("target/python-sbom");
        let bin = venv.join("bin");
        if !bin.join("pyspdxtools").exists() || !bin.join("sbomcheck").exists() {
            run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run_ok(Command::new(bin.join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "spdx-tools==0.8.5",
                "cyclonedx-python-lib[json-validation]==11.12.0",
                "ntia-conformance-checker==6.0.0",
            ]));
        }
        bin
    })
    .clone()
}

/// Runs the three validators on an image's SBOMs; fails the test on any
/// complaint.
pub(super) fn validate(spdx: &Path, cdx: &Path) {
    let bin = validators();
    run_ok(Command::new(bin.join("pyspdxtools")).arg("-i").arg(spdx));
    let script = "import sys\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        from cyclonedx.schema import SchemaVersion\n\
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
        sys.exit(f'invalid CycloneDX: {error}' if error else 0)\n";
    run_ok(
        Command::new(bin.join("python"))
            .args(["-c", script])
            .arg(cdx),
    );
    let out = run_ok(
        Command::new(bin.join("sbomcheck"))
            .args(["--comply", "ntia"])
            .arg(spdx),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Conformant: True"), "{said}");
}

#[test]
#[ignore = "needs network"]
fn sboms_pass_the_formats_own_validators() {
    let bin = validators();
    let b = build();
    let dist = b.dir.join("dist");
    let spdx = dist.join("sb-1.0+rc1.spdx.json");
    let cdx = dist.join("sb-1.0+rc1.cdx.json");
    validate(&spdx, &cdx);
    // a tampered document is refused: the validators are not rubber stamps
    let mut doc = json(&spdx);
    doc["packages"][0]
        .as_object_mut()
        .unwrap()
        .remove("downloadLocation");
    let bad = b.dir.join("bad.spdx.json");
    std::fs::write(&bad, serde_json::to_string(&doc).unwrap()).unwrap();
    let out = Command::new(bin.join("pyspdxtools"))
        .arg("-i")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "pyspdxtools took a package without downloadLocation"
    );
}
