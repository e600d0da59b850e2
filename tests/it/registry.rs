//! `kiln push`, `kiln pull` and `kiln verify REF` against a real registry:
//! Debian's docker-registry (distribution 2.8, which has no referrers API,
//! so every referrer goes through the tag schema) on loopback, plain, with
//! TLS and basic auth, a credential helper, a proxy that cuts transfers,
//! and blobs corrupted in its storage.

use crate::common;

use common::registry::{FaultyProxy, ProxyFault, Registry, RegistryOptions};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A signed image with a rootfs of about 3 MiB that does not compress,
/// so that uploads can be cut part way and chunked.
struct Image {
    dir: tempfile::TempDir,
    dist: PathBuf,
    public: PathBuf,
}

const STEM: &str = "node-1.0+b1";

fn signed_image() -> Image {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        kiln()
            .current_dir(dir.path())
            .args(["keygen", "-o", "keys/release", "--no-password"]),
    );
    // xorshift bytes: incompressible and the same every run.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.path().join("noise"), noise).unwrap();
    std::fs::write(
        dir.path().join("r.toml"),
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"node\"\nversion = \"1.0+b1\"\n\
         source_date_epoch = 1700000000\n\
         [[file]]\ndest = \"/usr/share/noise\"\nsource = \"noise\"\n",
    )
    .unwrap();
    run_ok(kiln().current_dir(dir.path()).args([
        "build",
        "r.toml",
        "-o",
        "dist",
        "--key",
        "keys/release.key",
        "-q",
    ]));
    let dist = dir.path().join("dist");
    let public = dir.path().join("keys/release.pub");
    Image { dir, dist, public }
}

fn kiln_in(dir: &Path, args: &[&str]) -> Output {
    kiln().current_dir(dir).args(args).output().unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        output_text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kiln pull REFERENCE -o out --key KEY` over plain HTTP, in `work`.
fn pull_out(work: &Path, reference: &str, key: &str) -> Output {
    kiln_in(
        work,
        &["pull", reference, "-o", "out", "--key", key, "--plain-http"],
    )
}

/// `kiln push dist REFERENCE --plain-http --json` in `work`: its report.
fn push_json(work: &Path, reference: &str, what: &str) -> serde_json::Value {
    let out = kiln_in(work, &["push", "dist", reference, "--plain-http", "--json"]);
    serde_json::from_str(&ok(out, what)).unwrap()
}

/// A command that failed with `code`, saying `says`.
fn refused(out: &Output, code: i32, says: &str) {
    let text = output_text(out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    assert!(text.contains(says), "expected {says:?} in:\n{text}");
}

fn curl_json(url: &str, accept: &str) -> serde_json::Value {
    let out = run_ok(Command::new("curl").args(["-sf", "-H", &format!("Accept: {accept}"), url]));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn push_publishes_one_artifact_with_referrers_and_pull_gives_back_the_same_files() {
    let image = signed_image();
    let registry = Registry::start(RegistryOptions::default());
    let host = registry.host();
    let work = image.dir.path();

    let report = push_json(work, &format!("{host}/nodes/k3s"), "push");
    let digest = report["digest"].as_str().unwrap().to_owned();
    // No tag given: the image's version, made a valid tag.
    assert_eq!(
        report["reference"],
        format!("{host}/nodes/k3s:1.0_b1@{digest}")
    );
    assert!(
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["uploaded"] == true)
    );

    // What the registry holds, read with curl: one layer per artifact
    // and the manifest, titled with file names, the empty config.
    let manifest = curl_json(
        &format!("http://{host}/v2/nodes/k3s/manifests/1.0_b1"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(manifest["artifactType"], "application/vnd.kiln.image.v1");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let titles: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["annotations"]["org.opencontainers.image.title"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        titles,
        [
            format!("{STEM}.rootfs.tar.zst"),
            format!("{STEM}.manifest.json")
        ]
    );
    assert_eq!(
        manifest["layers"][0]["digest"],
        format!(
            "sha256:{}",
            sha256_file(&image.dist.join(format!("{STEM}.rootfs.tar.zst")))
        )
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    // distribution 2.8 has no referrers API: the fallback tag lists the
    // signature and the provenance, each with its subject.
    let index = curl_json(
        &format!(
            "http://{host}/v2/nodes/k3s/manifests/sha256-{}",
            &digest[7..]
        ),
        "application/vnd.oci.image.index.v1+json",
    );
    let mut kinds: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "application/vnd.in-toto+json",
            "application/vnd.kiln.signature.v1"
        ]
    );
    for m in index["manifests"].as_array().unwrap() {
        let referrer = curl_json(
            &format!(
                "http://{host}/v2/nodes/k3s/manifests/{}",
                m["digest"].as_str().unwrap()
            ),
            "application/vnd.oci.image.manifest.v1+json",
        );
        assert_eq!(referrer["subject"]["digest"], digest.as_str());
    }

    // The same image pushed again: the same digest, nothing uploaded.
    let again: serde_json::Value = serde_json::from_str(&ok(
        kiln_in(
            work,
            &[
                "push",
                "dist",
                &format!("{host}/nodes/k3s"),
                "--plain-http",
                "--json",
            ],
        ),
        "second push",
    ))
    .unwrap();
    assert_eq!(again["digest"], digest.as_str());
    assert!(
        again["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["uploaded"] == false)
    );
    let tags = curl_json(
        &format!("http://{host}/v2/nodes/k3s/tags/list"),
        "application/json",
    );
    assert_eq!(tags["tags"].as_array().unwrap().len(), 2, "{tags}");

    // Pull by tag and by digest: the same files, byte for byte.
    let key = image.public.to_str().unwrap();
    for (reference, out) in [
        (format!("{host}/nodes/k3s:1.0_b1"), "by-tag"),
        (format!("{host}/nodes/k3s@{digest}"), "by-digest"),
    ] {
        let printed = ok(
            kiln_in(
                work,
                &["pull", &reference, "-o", out, "--key", key, "--plain-http"],
            ),
            "pull",
        );
        assert!(
            printed.contains(&format!("{STEM}.rootfs.tar.zst")),
            "{printed}"
        );
        assert_eq!(
            file_digests(&work.join(out)),
            file_digests(&image.dist),
            "{reference}"
        );
        // Nothing is left of the staging directory.
        assert!(list_dir(work).iter().all(|p| !p.contains(".kiln-pull-")));
    }

    // kiln verify takes the reference itself, --contents included.
    let verified = ok(
        kiln_in(
            work,
            &[
                "verify",
                "--key",
                key,
                &format!("{host}/nodes/k3s:1.0_b1"),
                "--plain-http",
                "--contents",
                "--provenance",
            ],
        ),
        "verify REF",
    );
    assert!(verified.contains("verified node 1.0+b1"), "{verified}");
    assert!(verified.contains("contents"), "{verified}");
}

#[test]
fn pull_refuses_an_untrusted_key_a_corrupted_blob_and_a_layer_not_signed_writing_nothing() {
    let image = signed_image();
    let registry = Registry::start(RegistryOptions::default());
    let host = registry.host();
    let work = image.dir.path();
    let reference = format!("{host}/nodes/k3s:1");
    let pushed = push_json(work, &reference, "push");
    let pushed_digest = pushed["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();

    // Another key: exit 4, no output directory.
    run_ok(
        kiln()
            .current_dir(work)
            .args(["keygen", "-o", "keys/other", "--no-password"]),
    );
    let out = pull_out(work, &reference, "keys/other.pub");
    refused(&out, 4, "no attached signature verifies");
    assert!(!work.join("out").exists());

    // A name that is not a reference says what to write.
    let out = kiln_in(
        work,
        &[
            "pull",
            "nodes/k3s:1",
            "-o",
            "out",
            "--key",
            "keys/release.pub",
        ],
    );
    refused(&out, 1, "does not name its registry");

    // A blob corrupted in the registry's storage (same size): refused
    // while downloading, exit 4, nothing written.
    let rootfs_digest = sha256_file(&image.dist.join(format!("{STEM}.rootfs.tar.zst")));
    let data = registry.blob_data(&rootfs_digest);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let out = pull_out(work, &reference, "keys/release.pub");
    refused(&out, 4, "tampered or corrupted storage");
    assert!(!work.join("out").exists());
    let out = kiln_in(
        work,
        &[
            "verify",
            "--key",
            "keys/release.pub",
            &reference,
            "--plain-http",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", output_text(&out));

    // Forged artifact manifests with the real signature attached (it signs
    // the kiln manifest, not the OCI one): an extra layer the signed
    // manifest does not list, and the rootfs layer swapped for another
    // blob. Both refused before anything is downloaded.
    bytes[1000] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let original = curl_json(
        &format!("http://{host}/v2/nodes/k3s/manifests/1"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let mut extra = original.clone();
    let mut unlisted = original["layers"][1].clone();
    unlisted["annotations"]["org.opencontainers.image.title"] = "implant.sh".into();
    unlisted["mediaType"] = "application/vnd.kiln.rootfs-tar-zstd".into();
    extra["layers"].as_array_mut().unwrap().push(unlisted);
    let mut swapped = original.clone();
    swapped["layers"][0]["digest"] = original["layers"][1]["digest"].clone();
    swapped["layers"][0]["size"] = original["layers"][1]["size"].clone();
    for (forged, says) in [
        (extra, "that the signed manifest does not list"),
        (swapped, "is not the signed one"),
    ] {
        forge_with_signature(&registry, work, &pushed_digest, &forged);
        let out = pull_out(work, &reference, "keys/release.pub");
        refused(&out, 4, says);
        assert!(!work.join("out").exists());
    }
    assert!(list_dir(work).iter().all(|p| !p.contains(".kiln-pull-")));
}

fn put_manifest(host: &str, reference: &str, media_type: &str, bytes: &[u8], work: &Path) {
    let file = work.join("put.json");
    std::fs::write(&file, bytes).unwrap();
    run_ok(
        Command::new("curl")
            .args(["-sf", "-X", "PUT", "-H"])
            .arg(format!("Content-Type: {media_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("http://{host}/v2/nodes/k3s/manifests/{reference}")),
    );
}

/// Tags `forged` as `1` and attaches to it the signature referrer of
/// `original`, through the tag schema.
fn forge_with_signature(
    registry: &Registry,
    work: &Path,
    original_digest: &str,
    forged: &serde_json::Value,
) {
    let host = registry.host();
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let index_type = "application/vnd.oci.image.index.v1+json";
    let forged_bytes = serde_json::to_vec(forged).unwrap();
    let forged_digest = format!("{:x}", sha2_of(&forged_bytes));
    put_manifest(&host, "1", manifest_type, &forged_bytes, work);
    let index = curl_json(
        &format!("http://{host}/v2/nodes/k3s/manifests/sha256-{original_digest}"),
        index_type,
    );
    let signature = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/vnd.kiln.signature.v1")
        .unwrap();
    let mut referrer = curl_json(
        &format!(
            "http://{host}/v2/nodes/k3s/manifests/{}",
            signature["digest"].as_str().unwrap()
        ),
        manifest_type,
    );
    referrer["subject"]["digest"] = format!("sha256:{forged_digest}").into();
    referrer["subject"]["size"] = forged_bytes.len().into();
    let referrer_bytes = serde_json::to_vec(&referrer).unwrap();
    let referrer_digest = format!("sha256:{:x}", sha2_of(&referrer_bytes));
    put_manifest(
        &host,
        &referrer_digest,
        manifest_type,
        &referrer_bytes,
        work,
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [{
            "mediaType": manifest_type,
            "digest": referrer_digest,
            "size": referrer_bytes.len(),
            "artifactType": "application/vnd.kiln.signature.v1",
        }],
    });
    put_manifest(
        &host,
        &format!("sha256-{forged_digest}"),
        index_type,
        &serde_json::to_vec(&index).unwrap(),
        work,
    );
}

fn sha2_of(bytes: &[u8]) -> impl std::fmt::LowerHex {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
}

#[test]
fn tls_basic_auth_and_a_credential_helper() {
    let image = signed_image();
    let registry = Registry::start(RegistryOptions {
        tls: true,
        basic_auth: Some(("builder".into(), "s3cret".into())),
        ..Default::default()
    });
    let host = registry.host();
    let work = image.dir.path();
    let ca = registry.ca_cert.clone().unwrap();
    let ca = ca.to_str().unwrap();
    let reference = format!("{host}/nodes/k3s:1");

    // The system's roots do not know the test CA.
    let out = kiln()
        .current_dir(work)
        .env("DOCKER_CONFIG", work.join("none"))
        .args(["push", "dist", &reference])
        .output()
        .unwrap();
    refused(&out, 1, &host);
    assert!(
        output_text(&out).to_lowercase().contains("certificate"),
        "{}",
        output_text(&out)
    );

    // The CA, but no credentials: says where it looked and what to do.
    let out = kiln()
        .current_dir(work)
        .env("DOCKER_CONFIG", work.join("none"))
        .args(["push", "dist", &reference, "--ca-cert", ca])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = output_text(&out);
    assert!(
        text.contains("needs a login") && text.contains("docker login"),
        "{text}"
    );

    // Wrong credentials from the docker config file.
    std::fs::create_dir_all(work.join("docker")).unwrap();
    let config = work.join("docker/config.json");
    std::fs::write(
        &config,
        format!(r#"{{"auths": {{"{host}": {{"auth": "YnVpbGRlcjp3cm9uZw=="}}}}}}"#),
    )
    .unwrap();
    let out = kiln_in(
        work,
        &[
            "push",
            "dist",
            &reference,
            "--ca-cert",
            ca,
            "--registry-config",
            config.to_str().unwrap(),
        ],
    );
    refused(&out, 1, "refused the credentials");

    // Right credentials (base64 of builder:s3cret) from $DOCKER_CONFIG.
    std::fs::write(
        &config,
        format!(r#"{{"auths": {{"https://{host}/v1/": {{"auth": "YnVpbGRlcjpzM2NyZXQ="}}}}}}"#),
    )
    .unwrap();
    let out = kiln()
        .current_dir(work)
        .env("DOCKER_CONFIG", work.join("docker"))
        .args(["push", "dist", &reference, "--ca-cert", ca])
        .output()
        .unwrap();
    ok(out, "push with TLS and auth");

    // Pull through a credential helper named by credsStore, as the docker
    // config of a CI runner with a secrets store has it.
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-kilntest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\n[ \"$host\" = \"{host}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             echo '{{\"ServerURL\":\"'$host'\",\"Username\":\"builder\",\"Secret\":\"s3cret\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&config, r#"{"credsStore": "kilntest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = kiln()
        .current_dir(work)
        .env("DOCKER_CONFIG", work.join("docker"))
        .env("PATH", &path)
        .args([
            "pull",
            &reference,
            "-o",
            "out",
            "--key",
            image.public.to_str().unwrap(),
            "--ca-cert",
            ca,
        ])
        .output()
        .unwrap();
    ok(out, "pull with a credential helper");
    assert_eq!(file_digests(&work.join("out")), file_digests(&image.dist));
}

#[test]
fn cut_uploads_start_a_new_session_and_cut_downloads_resume() {
    let image = signed_image();
    let registry = Registry::start(RegistryOptions::default());
    let work = image.dir.path();
    let key = image.public.to_str().unwrap();

    // A cut chunk (PATCH) of a chunked upload; distribution 2.8 drops the
    // session, so kiln starts a new one and the push succeeds.
    let proxy = FaultyProxy::start(
        registry.addr,
        ProxyFault::DropUploadAfter {
            after_bytes: 300_000,
            times: 1,
        },
    );
    let out = kiln_in(
        work,
        &[
            "push",
            "dist",
            &format!("{}/nodes/chunked:1", proxy.host()),
            "--plain-http",
            "--chunk-mib",
            "1",
        ],
    );
    ok(out, "chunked push through a cutting proxy");
    assert_eq!(proxy.cuts(), 1);
    let requests = proxy.requests();
    assert!(
        requests.iter().filter(|r| r.starts_with("PATCH ")).count() >= 4,
        "{requests:?}"
    );
    drop(proxy);

    // A cut monolithic upload (PUT with the body).
    let proxy = FaultyProxy::start(
        registry.addr,
        ProxyFault::DropUploadAfter {
            after_bytes: 300_000,
            times: 2,
        },
    );
    let out = kiln_in(
        work,
        &[
            "push",
            "dist",
            &format!("{}/nodes/whole:1", proxy.host()),
            "--plain-http",
        ],
    );
    ok(out, "push through a cutting proxy");
    assert_eq!(proxy.cuts(), 2);
    drop(proxy);

    // A download cut part way resumes with a range request.
    let proxy = FaultyProxy::start(
        registry.addr,
        ProxyFault::DropDownloadAfter {
            after_bytes: 1_000_000,
            times: 1,
        },
    );
    let out = kiln_in(
        work,
        &[
            "pull",
            &format!("{}/nodes/whole:1", proxy.host()),
            "-o",
            "out",
            "--key",
            key,
            "--plain-http",
        ],
    );
    ok(out, "pull through a cutting proxy");
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(file_digests(&work.join("out")), file_digests(&image.dist));
    let blob_gets: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET") && r.contains("/blobs/"))
        .collect();
    assert!(blob_gets.len() >= 3, "{blob_gets:?}");

    // A registry that is not there: the error names it, after retries.
    let out = kiln_in(
        work,
        &["push", "dist", "127.0.0.1:9/nodes/x:1", "--plain-http"],
    );
    refused(&out, 1, "127.0.0.1:9");
}

#[test]
fn push_refuses_unsigned_and_modified_outputs_sending_nothing() {
    let image = signed_image();
    let registry = Registry::start(RegistryOptions::default());
    let host = registry.host();
    let work = image.dir.path();
    let rootfs = image.dist.join(format!("{STEM}.rootfs.tar.zst"));
    let mut bytes = std::fs::read(&rootfs).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&rootfs, &bytes).unwrap();
    let out = kiln_in(
        work,
        &[
            "push",
            "dist",
            &format!("{host}/nodes/k3s:1"),
            "--plain-http",
        ],
    );
    refused(&out, 1, "not what the manifest lists");
    bytes[100] ^= 1;
    std::fs::write(&rootfs, &bytes).unwrap();
    std::fs::remove_file(image.dist.join(format!("{STEM}.manifest.json.minisig"))).unwrap();
    let out = kiln_in(
        work,
        &[
            "push",
            "dist",
            &format!("{host}/nodes/k3s:1"),
            "--plain-http",
        ],
    );
    refused(&out, 1, "is not signed");
    // Nothing reached the registry.
    let catalog = curl_json(&format!("http://{host}/v2/_catalog"), "application/json");
    assert_eq!(catalog["repositories"], serde_json::json!([]), "{catalog}");
}

/// A token service beside the registry: the Python script in
/// tests/data/registry, killed on drop.
struct TokenService {
    child: std::process::Child,
    realm: String,
}

impl Drop for TokenService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bearer_tokens_from_the_registry_token_service() {
    let image = signed_image();
    let work = image.dir.path();
    let auth = work.join("token-auth");
    std::fs::create_dir_all(&auth).unwrap();
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/CN=kiln-test-token-issuer",
            ])
            .arg("-keyout")
            .arg(auth.join("key.pem"))
            .arg("-out")
            .arg(auth.join("cert.pem")),
    );
    let port_file = auth.join("port");
    let child = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/data/registry/token-server.py"))
        .arg(auth.join("key.pem"))
        .arg(auth.join("cert.pem"))
        .args([
            "kiln-test-issuer",
            "kiln-test-registry",
            "builder",
            "s3cret",
        ])
        .arg(&port_file)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !port_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the token service did not start (python3-cryptography?)"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let port = std::fs::read_to_string(&port_file).unwrap();
    let tokens = TokenService {
        child,
        realm: format!("http://127.0.0.1:{port}/token"),
    };
    let registry = Registry::start(RegistryOptions {
        token: Some(common::registry::TokenAuth {
            realm: tokens.realm.clone(),
            service: "kiln-test-registry".into(),
            issuer: "kiln-test-issuer".into(),
            root_cert: auth.join("cert.pem"),
        }),
        ..Default::default()
    });
    let host = registry.host();
    let reference = format!("{host}/nodes/k3s:1");
    let docker = work.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let with_config = |args: &[&str]| {
        kiln()
            .current_dir(work)
            .env("DOCKER_CONFIG", &docker)
            .args(args)
            .output()
            .unwrap()
    };

    // No credentials: the token service refuses, kiln says what to do.
    let out = with_config(&["push", "dist", &reference, "--plain-http"]);
    refused(&out, 1, "needs a login");
    // Wrong ones.
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"username": "builder", "password": "wrong"}}}}}}"#),
    )
    .unwrap();
    let out = with_config(&["push", "dist", &reference, "--plain-http"]);
    refused(&out, 1, "refused the credentials");
    // Right ones: a token for the repository's scope, push and pull.
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"username": "builder", "password": "s3cret"}}}}}}"#),
    )
    .unwrap();
    ok(
        with_config(&["push", "dist", &reference, "--plain-http"]),
        "push with a token",
    );
    let key = image.public.to_str().unwrap();
    ok(
        with_config(&[
            "pull",
            &reference,
            "-o",
            "out",
            "--key",
            key,
            "--plain-http",
        ]),
        "pull with a token",
    );
    assert_eq!(file_digests(&work.join("out")), file_digests(&image.dist));
    drop(tokens);
}

/// `kiln build --arch amd64,arm64` of one recipe, pushed from its output
/// directory: one OCI index under the tag, listing each architecture's
/// image by digest with its platform. `kiln pull` takes the host's
/// architecture by default and another with `--arch`; an architecture the
/// index lacks is named with those it has; an index whose entries were
/// swapped is refused, the signed manifest naming the other architecture.
#[test]
fn a_multi_architecture_build_is_one_index_and_pull_takes_one_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    ok(
        kiln_in(work, &["keygen", "-o", "keys/release", "--no-password"]),
        "keygen",
    );
    std::fs::write(
        work.join("r.toml"),
        "[audit]\nfail_on = \"none\"\n[image]\nname = \"node\"\nversion = \"2\"\n\
         source_date_epoch = 1700000000\n\
         [[file]]\ndest = \"/etc/motd\"\ncontent = \"hello\\n\"\n",
    )
    .unwrap();
    let built = ok(
        kiln_in(
            work,
            &[
                "build",
                "r.toml",
                "-o",
                "dist",
                "--key",
                "keys/release.key",
                "--arch",
                "amd64,arm64",
                "--json",
            ],
        ),
        "build",
    );
    let builds: serde_json::Value = serde_json::from_str(&built).unwrap();
    let arches: Vec<&str> = builds
        .as_array()
        .expect("several builds print a list")
        .iter()
        .map(|b| b["image"]["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    for arch in ["amd64", "arm64"] {
        assert!(
            work.join(format!("dist/{arch}/node-2.manifest.json"))
                .is_file()
        );
    }

    let registry = Registry::start(RegistryOptions::default());
    let host = registry.host();
    let report = push_json(work, &format!("{host}/nodes/k3s"), "push");
    let index_type = "application/vnd.oci.image.index.v1+json";
    let index = curl_json(
        &format!("http://{host}/v2/nodes/k3s/manifests/2"),
        index_type,
    );
    assert_eq!(index["mediaType"], index_type);
    let members: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["artifactType"], "application/vnd.kiln.image.v1");
            assert_eq!(m["platform"]["os"], "linux");
            (
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let images = report["images"].as_array().unwrap();
    assert_eq!(
        members,
        images
            .iter()
            .map(|i| (
                i["arch"].as_str().unwrap().to_owned(),
                i["digest"].as_str().unwrap().to_owned()
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(members.len(), 2);

    // the host's architecture by default (this suite runs on amd64), then arm64
    let reference = format!("{host}/nodes/k3s:2");
    let pull_arch = |out: &str, arch: &str| {
        let key = "keys/release.pub";
        kiln_in(
            work,
            &[
                "pull",
                &reference,
                "-o",
                out,
                "--key",
                key,
                "--plain-http",
                "--arch",
                arch,
            ],
        )
    };
    ok(pull_out(work, &reference, "keys/release.pub"), "pull");
    let pulled = std::fs::read(work.join("out/node-2.manifest.json")).unwrap();
    assert_eq!(
        pulled,
        std::fs::read(work.join("dist/amd64/node-2.manifest.json")).unwrap()
    );
    let out = pull_arch("out-arm64", "arm64");
    ok(out, "pull --arch arm64");
    assert_eq!(
        std::fs::read(work.join("out-arm64/node-2.manifest.json")).unwrap(),
        std::fs::read(work.join("dist/arm64/node-2.manifest.json")).unwrap()
    );
    let out = kiln_in(
        work,
        &[
            "verify",
            "--key",
            "keys/release.pub",
            &reference,
            "--plain-http",
            "--arch",
            "arm64",
        ],
    );
    ok(out, "verify REF --arch arm64");
    let out = pull_arch("out-riscv", "riscv64");
    assert!(!out.status.success());
    refused(&out, 1, "has no riscv64 image (it has: amd64, arm64)");

    // the index's entries swapped: each signed image names its own arch
    let mut swapped = index.clone();
    let list = swapped["manifests"].as_array_mut().unwrap();
    let first = list[0]["platform"].clone();
    list[0]["platform"] = list[1]["platform"].clone();
    list[1]["platform"] = first;
    put_manifest(
        &host,
        "2",
        index_type,
        &serde_json::to_vec(&swapped).unwrap(),
        work,
    );
    let out = pull_arch("out-swapped", "arm64");
    refused(&out, 4, "the index lists an amd64 image as its arm64 one");
    assert!(!work.join("out-swapped").exists());
}
