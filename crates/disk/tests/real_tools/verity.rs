//! The Rust dm-verity tree against `veritysetup format` and `verify`.

use crate::common::*;
use kiln_disk::guid::Guid;
use kiln_disk::verity::{self, VerityParams};
use std::path::Path;

fn veritysetup() -> std::process::Command {
    tool("veritysetup", "cryptsetup-bin")
}

/// A `Key: value` line of veritysetup's report.
fn field(report: &str, key: &str) -> String {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{report}"))
        .trim()
        .to_string()
}

fn verify(data: &Path, hash: &Path, root: &str) -> std::process::Output {
    veritysetup()
        .arg("verify")
        .args([data, hash])
        .arg(root)
        .output()
        .unwrap()
}

#[test]
fn tree_is_byte_identical_to_veritysetup() {
    let dir = tempfile::tempdir().unwrap();
    // 1 block (no levels), 2, one full hash block, one more (two levels),
    // thousands not a multiple of 128, and three levels.
    for (i, blocks) in [1usize, 2, 128, 129, 5000, 16_385].into_iter().enumerate() {
        let data = dir.path().join(format!("data{blocks}"));
        std::fs::write(&data, noise(blocks * 4096, i as u64)).unwrap();
        let salt = noise(32, 100 + i as u64);
        let uuid = Guid::derive("test", &[&salt]);
        let ours = dir.path().join(format!("ours{blocks}"));
        let tree = verity::format(
            &data,
            &ours,
            &VerityParams {
                salt: salt.clone(),
                uuid,
            },
        )
        .unwrap();

        let theirs = dir.path().join(format!("theirs{blocks}"));
        let report = stdout(
            veritysetup()
                .args(["format", "--salt"])
                .arg(hex(&salt))
                .arg("--uuid")
                .arg(uuid.to_string())
                .arg(&data)
                .arg(&theirs),
        );
        assert_eq!(
            tree.root_hash_hex(),
            field(&report, "Root hash"),
            "{blocks} blocks"
        );
        let (a, b) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
        );
        assert_eq!(a.len() as u64, tree.hash_size, "{blocks} blocks");
        assert!(
            a == b,
            "{blocks} blocks: the hash device differs from veritysetup's"
        );
        assert_eq!(tree.data_blocks, blocks as u64);
        assert_eq!(verity::hash_size(blocks as u64 * 4096), tree.hash_size);

        let ok = verify(&data, &ours, &tree.root_hash_hex());
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        // veritysetup reads our superblock back as we meant it.
        let dump = stdout(veritysetup().arg("dump").arg(&ours));
        assert_eq!(field(&dump, "UUID"), uuid.to_string());
        assert_eq!(field(&dump, "Data blocks"), blocks.to_string());
        assert_eq!(field(&dump, "Salt"), hex(&salt));
        assert_eq!(field(&dump, "Hash algorithm"), "sha256");
    }
}

#[test]
fn verify_fails_after_one_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut bytes = noise(300 * 4096, 7);
    std::fs::write(&data, &bytes).unwrap();
    let hash = dir.path().join("hash");
    let params = VerityParams {
        salt: verity::salt_for(&[1; 32]),
        uuid: Guid::derive("test", &[]),
    };
    let tree = verity::format(&data, &hash, &params).unwrap();
    assert!(verify(&data, &hash, &tree.root_hash_hex()).status.success());

    bytes[200 * 4096 + 17] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let bad = verify(&data, &hash, &tree.root_hash_hex());
    assert!(
        !bad.status.success(),
        "veritysetup verify accepted changed data"
    );
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("Verification failed"), "{said}");

    // A wrong root hash is refused too, with the data intact again.
    bytes[200 * 4096 + 17] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let mut wrong = tree.root_hash;
    wrong[0] ^= 1;
    assert!(!verify(&data, &hash, &hex(&wrong)).status.success());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
