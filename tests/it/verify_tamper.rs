//! `kiln verify` against a signed image changed one way at a time, after
//! signing: each artifact, manifest and signature tamper is refused, and
//! the whole report is asserted, so that it names exactly what changed and
//! nothing else.

use crate::common::*;
use sha2::Digest as _;
use std::path::PathBuf;
use std::process::Output;

const RECIPE: &str = "[audit]\nfail_on = \"none\"\n[image]\nname = \"tamper\"\nversion = \"1.2.0\"\nsource_date_epoch = 1700000000\n\
    [[file]]\ndest = \"/etc/motd\"\ncontent = \"hello\\n\"\n\
    [[symlink]]\npath = \"/etc/issue\"\ntarget = \"motd\"\n";

const MANIFEST: &str = "dist/tamper-1.2.0.manifest.json";
const SIG: &str = "dist/tamper-1.2.0.manifest.json.minisig";
const ARCHIVE: &str = "dist/tamper-1.2.0.rootfs.tar.zst";
const ARTIFACT: &str = "tamper-1.2.0.rootfs.tar.zst";

/// A key pair and a signed build, made once per test; each case works on
/// a copy of it.
struct Pristine {
    dir: tempfile::TempDir,
}

impl Pristine {
    fn new() -> Pristine {
        let dir = tempfile::tempdir().unwrap();
        for key in ["release", "other"] {
            run_ok(kiln().current_dir(dir.path()).args([
                "keygen",
                "-o",
                &format!("keys/{key}"),
                "--no-password",
            ]));
        }
        std::fs::write(dir.path().join("r.toml"), RECIPE).unwrap();
        run_ok(kiln().current_dir(dir.path()).args([
            "build",
            "r.toml",
            "-o",
            "dist",
            "--key",
            "keys/release.key",
            "-q",
        ]));
        Pristine { dir }
    }

    fn case(&self) -> Case {
        let dir = tempfile::tempdir().unwrap();
        run_ok(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(self.dir.path().join("."))
                .arg(dir.path()),
        );
        Case { dir }
    }
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path(rel), bytes).unwrap();
    }

    fn kiln(&self, args: &[&str]) -> Output {
        kiln()
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    /// `kiln verify --key keys/release.pub ARGS`: exit code and stdout,
    /// with stderr required empty.
    fn verify(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.kiln(&[&["verify", "--key", "keys/release.pub"], args].concat());
        assert!(
            !output_text(&out).contains("panicked"),
            "{}",
            output_text(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "verify {args:?} wrote to stderr"
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `kiln verify`'s error (exit 1, stderr only).
    fn verify_error(&self, args: &[&str]) -> String {
        let out = self.kiln(&[&["verify", "--key", "keys/release.pub"], args].concat());
        assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn key_id(&self, key: &str) -> String {
        let text = std::fs::read_to_string(self.path(&format!("keys/{key}.pub"))).unwrap();
        text.lines().next().unwrap()["untrusted comment: minisign public key ".len()..].to_owned()
    }

    fn trusted_comment(&self) -> String {
        let text = std::fs::read_to_string(self.path(SIG)).unwrap();
        text.lines().nth(2).unwrap()["trusted comment: ".len()..].to_owned()
    }

    /// The first line of every report of an intact signature.
    fn signature_ok(&self) -> String {
        format!(
            "ok      signature: by key {} (\"{}\")\n",
            self.key_id("release"),
            self.trusted_comment()
        )
    }

    fn manifest(&self) -> serde_json::Value {
        serde_json::from_slice(&self.read(MANIFEST)).unwrap()
    }

    /// Writes `manifest` and signs it again with the release key: a
    /// manifest that lies, but is signed.
    fn resign(&self, manifest: &serde_json::Value) {
        self.write(
            MANIFEST,
            serde_json::to_string_pretty(manifest).unwrap() + "\n",
        );
        run_ok(kiln().current_dir(self.dir.path()).args([
            "sign",
            "--key",
            "keys/release.key",
            MANIFEST,
        ]));
    }
}

/// A comment as the report quotes it: cut after 60 characters.
fn clipped(comment: &str) -> String {
    match comment.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &comment[..cut]),
        None => comment.to_owned(),
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

const FAILED_1: &str = "verification FAILED: 1 problem(s)\n";

#[test]
fn every_change_to_an_artifact_is_refused_naming_it() {
    let pristine = Pristine::new();
    let original = pristine.case().read(ARCHIVE);
    let (size, digest) = (original.len(), sha256(&original));
    let flipped = |at: usize| {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        bytes
    };
    let extended = [&original[..], b"\0"].concat();
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        ("first byte flipped", flipped(0), String::new()),
        ("middle byte flipped", flipped(size / 2), String::new()),
        ("last byte flipped", flipped(size - 1), String::new()),
        (
            "truncated by a byte",
            original[..size - 1].to_vec(),
            format!("size is {} bytes, the manifest says {size}", size - 1),
        ),
        (
            "emptied",
            Vec::new(),
            format!("size is 0 bytes, the manifest says {size}"),
        ),
        (
            "extended by a byte",
            extended,
            format!("size is {} bytes, the manifest says {size}", size + 1),
        ),
    ];
    for (name, bytes, detail) in cases {
        let case = pristine.case();
        case.write(ARCHIVE, &bytes);
        let detail = if detail.is_empty() {
            format!("sha256 is {}, the manifest says {digest}", sha256(&bytes))
        } else {
            detail
        };
        let expected = format!(
            "{}FAILED  artifact {ARTIFACT}: {detail}\n{FAILED_1}",
            case.signature_ok()
        );
        // named through its manifest or by itself, with or without --contents
        for args in [
            &[MANIFEST][..],
            &[ARCHIVE],
            &[MANIFEST, "--contents"],
            &[ARCHIVE, "--contents"],
        ] {
            assert_eq!(
                case.verify(args),
                (Some(4), expected.clone()),
                "{name}, verify {args:?}"
            );
        }
        // two problems are counted as two
        let (code, report) = case.verify(&[MANIFEST, "--min-version", "1.3"]);
        assert_eq!(code, Some(4), "{name}");
        assert!(
            report.ends_with(&format!(
                "FAILED  version: 1.2.0 is older than the minimum 1.3: refusing a rollback\n\
                 FAILED  artifact {ARTIFACT}: {detail}\n\
                 verification FAILED: 2 problem(s)\n"
            )),
            "{name}: {report}"
        );
    }
}

#[test]
fn missing_renamed_and_unlisted_artifacts() {
    let pristine = Pristine::new();
    let case = pristine.case();
    let intact = case.verify(&[MANIFEST]).1;
    let artifact_ok = intact.lines().nth(1).unwrap().to_owned();
    let archive = case.read(ARCHIVE);
    assert!(archive.len() < 1024, "{} bytes", archive.len());
    assert_eq!(
        artifact_ok,
        format!(
            "ok      artifact {ARTIFACT}: {} B, sha256 {}",
            archive.len(),
            &sha256(&archive)[..16]
        )
    );

    // an extra file beside the image is no part of it: the manifest does
    // not mention it, and it cannot be verified on its own
    case.write("dist/extra.bin", b"not signed\n");
    case.write("dist/extra.manifest.json.bak", b"{}");
    assert_eq!(case.verify(&[MANIFEST]), (Some(0), intact.clone()));
    assert_eq!(
        case.verify_error(&["dist/extra.bin"]),
        "error: no *.manifest.json in dist lists extra.bin; pass the manifest itself\n"
    );

    // renamed: the manifest's artifact is absent (a manifest is verified
    // with whatever artifacts are beside it), and the new name is listed
    // by no manifest
    std::fs::rename(case.path(ARCHIVE), case.path("dist/renamed.tar.zst")).unwrap();
    let absent = format!(
        "{}ok      artifact {ARTIFACT}: not present here, skipped\nverified tamper 1.2.0 (amd64)\n",
        case.signature_ok()
    );
    assert_eq!(case.verify(&[MANIFEST]), (Some(0), absent.clone()));
    // --contents has no archive to open
    assert_eq!(case.verify(&[MANIFEST, "--contents"]), (Some(0), absent));
    assert_eq!(
        case.verify_error(&["dist/renamed.tar.zst"]),
        "error: no *.manifest.json in dist lists renamed.tar.zst; pass the manifest itself\n"
    );
    assert_eq!(
        case.verify_error(&[ARCHIVE]),
        format!(
            "error: cannot open {ARCHIVE}\n  caused by: No such file or directory (os error 2)\n"
        )
    );

    // an artifact that cannot be read is no absent one
    let case = pristine.case();
    std::fs::remove_file(case.path(ARCHIVE)).unwrap();
    std::os::unix::fs::symlink(ARTIFACT, case.path(ARCHIVE)).unwrap();
    assert_eq!(
        case.verify(&[MANIFEST]),
        (
            Some(4),
            format!(
                "{}FAILED  artifact {ARTIFACT}: cannot read: Too many levels of symbolic links \
                 (os error 40)\n{FAILED_1}",
                case.signature_ok()
            )
        )
    );

    // a manifest under another name is still known by its JSON
    let case = pristine.case();
    std::fs::copy(case.path(MANIFEST), case.path("dist/release.json")).unwrap();
    std::fs::copy(case.path(SIG), case.path("dist/release.json.minisig")).unwrap();
    let (code, report) = case.verify(&["dist/release.json"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.ends_with("verified tamper 1.2.0 (amd64)\n"),
        "{report}"
    );

    // named without a directory, from the directory itself
    let case = pristine.case();
    let out = kiln()
        .current_dir(case.path("dist"))
        .args(["verify", "--key", "../keys/release.pub", ARTIFACT])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

    // a file whose name is not UTF-8 is not the artifact whose name shows
    // like it: the artifact the manifest lists is missing
    let case = pristine.case();
    let shown = "odd-\u{FFFD}.bin";
    let mut manifest = case.manifest();
    let mut record = manifest["artifacts"][0].clone();
    record["name"] = shown.into();
    record["format"] = "file".into();
    manifest["artifacts"].as_array_mut().unwrap().push(record);
    case.resign(&manifest);
    let odd = {
        use std::os::unix::ffi::OsStrExt;
        case.path("dist")
            .join(std::ffi::OsStr::from_bytes(b"odd-\xff.bin"))
    };
    std::fs::copy(case.path(ARCHIVE), &odd).unwrap();
    let out = kiln()
        .current_dir(case.dir.path())
        .args(["verify", "--key", "keys/release.pub"])
        .arg(&odd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("FAILED  artifact {shown}: missing\n")),
        "{report}"
    );

    // another image's artifact under this one's name
    let other = pristine.case();
    std::fs::write(
        other.path("r.toml"),
        RECIPE.replace("hello", "hello, world"),
    )
    .unwrap();
    run_ok(
        kiln()
            .current_dir(other.dir.path())
            .args(["build", "r.toml", "-o", "dist", "-q"]),
    );
    let swapped = other.read(ARCHIVE);
    case.write(ARCHIVE, &swapped);
    let (code, report) = case.verify(&[ARCHIVE]);
    assert_eq!(code, Some(4), "{report}");
    let detail = if swapped.len() == pristine.case().read(ARCHIVE).len() {
        format!("sha256 is {}, the manifest says", sha256(&swapped))
    } else {
        format!("size is {} bytes, the manifest says", swapped.len())
    };
    assert!(
        report.contains(&format!("FAILED  artifact {ARTIFACT}: {detail}")),
        "{report}"
    );
}

#[test]
fn a_manifest_edited_after_signing_is_refused() {
    let pristine = Pristine::new();
    let mismatch = format!(
        "FAILED  signature: signature of {MANIFEST}: signature does not match the data\n{FAILED_1}"
    );
    type Edit = fn(&str) -> String;
    let cases: Vec<(&str, Edit)> = vec![
        ("version raised", |m| {
            m.replace("\"version\": \"1.2.0\"", "\"version\": \"9.9.9\"")
        }),
        ("artifact digest", |m| {
            m.replacen("\"sha256\": \"", "\"sha256\": \"0", 1)
        }),
        ("trailing newline", |m| format!("{m}\n")),
        ("last newline removed", |m| m.trim_end().to_owned()),
        ("a file removed", |m| {
            m.replace("\"path\": \"/etc/motd\"", "\"path\": \"/etc/motd2\"")
        }),
    ];
    for (name, edit) in cases {
        let case = pristine.case();
        let text = String::from_utf8(case.read(MANIFEST)).unwrap();
        let edited = edit(&text);
        assert_ne!(edited, text, "{name}: the edit did not apply");
        case.write(MANIFEST, edited);
        for args in [
            &[MANIFEST][..],
            &[MANIFEST, "--contents", "--min-version", "1.0"],
        ] {
            assert_eq!(
                case.verify(args),
                (Some(4), mismatch.clone()),
                "{name}, verify {args:?}"
            );
        }
    }
}

#[test]
fn a_changed_or_foreign_signature_is_refused() {
    let pristine = Pristine::new();
    let signature_failed = |detail: &str| format!("FAILED  signature: {detail}\n{FAILED_1}");

    // signed by another key, one that is not trusted
    let case = pristine.case();
    run_ok(
        kiln()
            .current_dir(case.dir.path())
            .args(["sign", "--key", "keys/other.key", MANIFEST]),
    );
    assert_eq!(
        case.verify(&[MANIFEST]),
        (
            Some(4),
            signature_failed(&format!(
                "signature of {MANIFEST}: signature was made with key {} but the trusted key is {}",
                case.key_id("other"),
                case.key_id("release")
            ))
        )
    );
    // ...and trusted once its key is
    let (code, report) = case.verify(&["--key", "keys/other.pub", MANIFEST]);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.starts_with(&format!(
            "ok      signature: by key {} (",
            case.key_id("other")
        )),
        "{report}"
    );

    // the trusted comment edited: the global signature no longer holds
    let case = pristine.case();
    let text = String::from_utf8(case.read(SIG)).unwrap();
    case.write(SIG, text.replace("version:1.2.0", "version:1.3.0"));
    assert_eq!(
        case.verify(&[MANIFEST]),
        (
            Some(4),
            signature_failed(&format!(
                "signature of {MANIFEST}: trusted comment was modified (global signature invalid)"
            ))
        )
    );

    // no signature at all, or a directory where it should be
    let case = pristine.case();
    std::fs::remove_file(case.path(SIG)).unwrap();
    assert_eq!(
        case.verify(&[MANIFEST]),
        (
            Some(4),
            signature_failed(&format!("no signature: {SIG} does not exist"))
        )
    );
    std::fs::create_dir(case.path(SIG)).unwrap();
    let error = case.verify_error(&[MANIFEST]);
    assert!(
        error.starts_with(&format!(
            "error: cannot read signature {SIG}\n  caused by: "
        )),
        "{error}"
    );

    // the signature of another manifest, by the same key
    let case = pristine.case();
    std::fs::copy(case.path(MANIFEST), case.path("dist/copy.manifest.json")).unwrap();
    let mut edited = String::from_utf8(case.read("dist/copy.manifest.json")).unwrap();
    edited.push('\n');
    case.write("dist/copy.manifest.json", edited);
    run_ok(kiln().current_dir(case.dir.path()).args([
        "sign",
        "--key",
        "keys/release.key",
        "dist/copy.manifest.json",
    ]));
    std::fs::copy(case.path("dist/copy.manifest.json.minisig"), case.path(SIG)).unwrap();
    assert_eq!(
        case.verify(&[MANIFEST]),
        (
            Some(4),
            signature_failed(&format!(
                "signature of {MANIFEST}: signature does not match the data"
            ))
        )
    );
}

#[test]
fn a_valid_signature_whose_kiln_comment_names_another_manifest_is_refused() {
    let pristine = Pristine::new();
    let case = pristine.case();
    let digest = sha256(&case.read(MANIFEST));
    let sign = |comment: &str| {
        sh(
            case.dir.path(),
            &format!("minisign -S -s keys/release.key -m {MANIFEST} -t '{comment}'"),
        );
    };
    // kiln's own comment, for another image: signed, but not for this one
    for comment in [
        format!("kiln image:other version:1.2.0 arch:amd64 manifest-sha256:{digest}"),
        format!("kiln image:tamper version:1.3.0 arch:amd64 manifest-sha256:{digest}"),
        format!("kiln image:tamper version:1.2.0 arch:arm64 manifest-sha256:{digest}"),
        format!(
            "kiln image:tamper version:1.2.0 arch:amd64 manifest-sha256:{}",
            sha256(b"other")
        ),
        "kiln ".to_owned(),
    ] {
        sign(&comment);
        assert_eq!(
            case.verify(&[MANIFEST]),
            (
                Some(4),
                format!(
                    "FAILED  signature: the signature's trusted comment \"{}\" does not \
                     describe this manifest\n{FAILED_1}",
                    clipped(&comment)
                )
            ),
        );
    }
    // a comment kiln did not write (minisign's own) is the signer's business
    for comment in ["timestamp:1700000000\tfile:m", "kiln", "Kiln image:other"] {
        sign(comment);
        let (code, report) = case.verify(&[MANIFEST]);
        assert_eq!(code, Some(0), "{comment:?}: {report}");
        assert!(
            report.starts_with(&format!(
                "ok      signature: by key {} (",
                case.key_id("release")
            )),
            "{report}"
        );
    }
    // kiln's exact comment, by minisign: the same as kiln's signature
    sign(&case.trusted_comment());
    assert_eq!(case.verify(&[MANIFEST]).0, Some(0));
}

/// A manifest that is signed but that this kiln cannot read is an error
/// (exit 1) that says why, not a verification failure.
#[test]
fn a_signed_manifest_of_another_version_is_an_error_saying_so() {
    let pristine = Pristine::new();
    let case = pristine.case();
    let text = String::from_utf8(case.read(MANIFEST)).unwrap();
    let edited = text.replace("\"manifest_version\": 1,", "\"manifest_version\": 2,");
    assert_ne!(edited, text);
    case.write(MANIFEST, edited);
    sh(
        case.dir.path(),
        &format!("minisign -S -s keys/release.key -m {MANIFEST} -t test"),
    );
    assert_eq!(
        case.verify_error(&[MANIFEST]),
        format!(
            "error: {MANIFEST}: manifest_version 2 is not supported by kiln {} (it reads \
             version 1)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn a_truncated_signature_file_is_refused_saying_what_is_missing() {
    let pristine = Pristine::new();
    let full = String::from_utf8(pristine.case().read(SIG)).unwrap();
    let line_ends: Vec<usize> = full.match_indices('\n').map(|(i, _)| i + 1).collect();
    let sig_failed =
        |problem: &str| format!("FAILED  signature: signature file {SIG}: {problem}\n{FAILED_1}");
    let cases: Vec<(&str, usize, String)> = vec![
        (
            "empty",
            0,
            sig_failed("signature file: line 1 (untrusted comment) is missing"),
        ),
        (
            "one line",
            line_ends[0],
            sig_failed("signature file: line 2 (signature) is missing"),
        ),
        (
            "half the signature line",
            line_ends[0] + 40,
            sig_failed("signature file: line 3 (trusted comment) is missing"),
        ),
        (
            "two lines",
            line_ends[1],
            sig_failed("signature file: line 3 (trusted comment) is missing"),
        ),
        (
            "three lines",
            line_ends[2],
            sig_failed("signature file: line 4 (global signature) is missing"),
        ),
        (
            "half the global signature",
            line_ends[2] + 44,
            sig_failed(
                "signature file (global signature, line 4): expected 64 bytes after base64 \
                 decoding, found 33",
            ),
        ),
        (
            "the last byte",
            full.len() - 2,
            sig_failed(
                "signature file (global signature, line 4): invalid base64: Invalid padding",
            ),
        ),
    ];
    for (name, len, expected) in cases {
        let case = pristine.case();
        case.write(SIG, &full.as_bytes()[..len]);
        assert_eq!(case.verify(&[MANIFEST]), (Some(4), expected), "{name}");
    }
    // only the final newline missing: still the same signature
    let case = pristine.case();
    case.write(SIG, &full.as_bytes()[..full.len() - 1]);
    assert_eq!(case.verify(&[MANIFEST]).0, Some(0));
}

/// Manifests that lie about the files, signed by the release key: the
/// artifact digests match, only `--contents` can tell, and it says how.
#[test]
fn contents_that_differ_from_a_signed_manifest_are_listed() {
    let pristine = Pristine::new();
    let files = |m: &mut serde_json::Value| -> Vec<serde_json::Value> {
        m["files"].as_array().unwrap().clone()
    };
    let record = |path: &str| {
        serde_json::json!({
            "gid": 0, "mode": "0644", "path": path, "sha256": sha256(path.as_bytes()),
            "size": path.len(), "type": "file", "uid": 0
        })
    };
    type Lie = Box<dyn Fn(&mut Vec<serde_json::Value>)>;
    let cases: Vec<(&str, Lie, String)> = vec![
        (
            "a file left out",
            Box::new(|files| files.retain(|f| f["path"] != "/etc/motd")),
            "/etc/motd is in the archive but not in the manifest".to_owned(),
        ),
        (
            "a file left out before another",
            Box::new(|files| files.retain(|f| f["path"] != "/etc/issue")),
            "/etc/issue is in the archive but not in the manifest".to_owned(),
        ),
        (
            "a file made up at the end",
            Box::new(move |files| files.push(record("/zzz"))),
            "/zzz is in the manifest but not in the archive".to_owned(),
        ),
        (
            "a file made up in the middle",
            Box::new(move |files| files.insert(1, record("/a"))),
            "/a is in the manifest but not in the archive".to_owned(),
        ),
        (
            "another mode and owner",
            Box::new(|files| {
                let motd = files.iter_mut().find(|f| f["path"] == "/etc/motd").unwrap();
                motd["mode"] = "0600".into();
                motd["uid"] = 1000.into();
            }),
            format!(
                "/etc/motd differs: manifest file 0600 1000:0 sha256 {0}, archive file 0644 0:0 sha256 {0}",
                &sha256(b"hello\n")[..16]
            ),
        ),
        (
            "another symlink target",
            Box::new(|files| {
                let issue = files.iter_mut().find(|f| f["path"] == "/etc/issue").unwrap();
                issue["target"] = "/etc/shadow".into();
            }),
            "/etc/issue differs: manifest symlink 0777 0:0 -> /etc/shadow, archive symlink 0777 0:0 -> motd"
                .to_owned(),
        ),
    ];
    for (name, lie, problem) in cases {
        let case = pristine.case();
        let mut manifest = case.manifest();
        let mut list = files(&mut manifest);
        lie(&mut list);
        manifest["files"] = list.into();
        case.resign(&manifest);
        let (code, report) = case.verify(&[MANIFEST]);
        assert_eq!(code, Some(0), "{name} without --contents: {report}");
        let (code, report) = case.verify(&[MANIFEST, "--contents"]);
        assert_eq!(code, Some(4), "{name}: {report}");
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 4, "{name}: {report}");
        assert!(lines[1].starts_with(&format!("ok      artifact {ARTIFACT}: ")));
        assert_eq!(
            lines[2..],
            [
                format!("FAILED  contents {ARTIFACT}: {problem}").as_str(),
                "verification FAILED: 1 problem(s)",
            ],
            "{name}"
        );
    }

    // many lies: the first 20 are listed, then how many more
    let case = pristine.case();
    let mut manifest = case.manifest();
    let mut list = files(&mut manifest);
    let made_up: Vec<String> = (0..23).map(|i| format!("/zz{i:02}")).collect();
    list.extend(made_up.iter().map(|p| record(p)));
    manifest["files"] = list.into();
    case.resign(&manifest);
    let (code, report) = case.verify(&[MANIFEST, "--contents"]);
    assert_eq!(code, Some(4), "{report}");
    let problems: Vec<String> = made_up[..20]
        .iter()
        .map(|p| format!("{p} is in the manifest but not in the archive"))
        .chain(["and 3 more".to_owned()])
        .collect();
    assert!(
        report.contains(&format!(
            "FAILED  contents {ARTIFACT}: {}\n",
            problems.join("; ")
        )),
        "{report}"
    );
    // exactly 20 is not "more"
    let case = pristine.case();
    let mut manifest = case.manifest();
    let mut list = files(&mut manifest);
    list.extend(made_up[..20].iter().map(|p| record(p)));
    manifest["files"] = list.into();
    case.resign(&manifest);
    let (_, report) = case.verify(&[MANIFEST, "--contents"]);
    assert!(
        report.contains(&format!(
            "FAILED  contents {ARTIFACT}: {}\n",
            problems[..20].join("; ")
        )),
        "{report}"
    );

    // an artifact that is signed but not an archive
    let case = pristine.case();
    let garbage = b"not a tar archive, not compressed either\n".repeat(20);
    case.write(ARCHIVE, &garbage);
    let mut manifest = case.manifest();
    manifest["artifacts"][0]["sha256"] = sha256(&garbage).into();
    manifest["artifacts"][0]["size"] = garbage.len().into();
    case.resign(&manifest);
    let (code, report) = case.verify(&[MANIFEST, "--contents"]);
    assert_eq!(code, Some(4), "{report}");
    assert!(
        report.contains(&format!(
            "FAILED  contents {ARTIFACT}: cannot read the archive: "
        )),
        "{report}"
    );
}
