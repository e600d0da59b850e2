//! The squashfs root from kiln's tar, read back with unsquashfs and
//! sqfscat.

use crate::common::*;
use kiln_disk::rootfs;
use kiln_tree::{Kind, Store, Tree};
use std::collections::BTreeMap;
use std::path::Path;

/// `path -> (permissions, uid/gid, symlink target)` from `unsquashfs -lln`.
pub fn listing(image: &Path) -> BTreeMap<String, (String, String, String)> {
    let text = stdout(tool("unsquashfs", "squashfs-tools").arg("-lln").arg(image));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| w.starts_with("squashfs-root")) else {
            continue;
        };
        let path = words[at].trim_start_matches("squashfs-root");
        let target = if words.get(at + 1) == Some(&"->") {
            words[at + 2].to_string()
        } else {
            String::new()
        };
        let path = if path.is_empty() { "/" } else { path };
        out.insert(
            path.to_string(),
            (words[0].to_string(), words[1].to_string(), target),
        );
    }
    out
}

/// What `listing` should say for `tree`.
pub fn expected_listing(tree: &Tree) -> BTreeMap<String, (String, String, String)> {
    tree.iter()
        .map(|(path, entry)| {
            let (kind, meta) = match &entry.kind {
                Kind::HardLink { target } => {
                    let t = tree.get(target).unwrap();
                    (&t.kind, &t.meta)
                }
                kind => (kind, &entry.meta),
            };
            let target = match kind {
                Kind::Symlink { target } => target.clone(),
                _ => String::new(),
            };
            (
                path.as_str().to_string(),
                (
                    ls_mode(kind, meta.mode),
                    format!("{}/{}", meta.uid, meta.gid),
                    target,
                ),
            )
        })
        .collect()
}

fn sqfscat(image: &Path, path: &str) -> Vec<u8> {
    run(tool("sqfscat", "squashfs-tools").arg(image).arg(path)).stdout
}

#[test]
fn squashfs_keeps_every_entry_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let tree = sample_tree(&store, (0, 0));
    let tar = kiln_tar(&tree, &store);

    let a = dir.path().join("a.squashfs");
    let b = dir.path().join("b.squashfs");
    let made = rootfs::squashfs_from_tar(&tar[..], &a, EPOCH).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = rootfs::squashfs_from_tar(&tar[..], &b, EPOCH).unwrap();
    assert_eq!(made, again);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    assert_eq!(made.size % 4096, 0);
    assert_eq!(made.size, std::fs::metadata(&a).unwrap().len());
    assert_eq!(
        made.sha256,
        kiln_tree::hash_reader(std::fs::File::open(&a).unwrap())
            .unwrap()
            .0
    );

    let stat = stdout(tool("unsquashfs", "squashfs-tools").arg("-s").arg(&a));
    assert!(stat.contains("Compression zstd"), "{stat}");
    assert!(
        stat.contains("Creation or last append time Tue Nov 14 22:13:20 2023"),
        "{stat}"
    );
    assert!(stat.contains("Number of xattr ids 2"), "{stat}");

    assert_eq!(listing(&a), expected_listing(&tree));
    let times = stdout(tool("unsquashfs", "squashfs-tools").arg("-lln").arg(&a));
    assert!(times.lines().all(|l| l.contains(EPOCH_DATE)), "{times}");

    assert_eq!(sqfscat(&a, "/etc/hostname"), b"node\n");
    assert!(sqfscat(&a, "/home/kube/big") == noise(300_000, 1));
    assert_eq!(sqfscat(&a, "/etc/empty"), b"");

    // A user xattr comes back out (security.* would need root).
    let out = dir.path().join("out");
    run(tool("unsquashfs", "squashfs-tools")
        .args(["-no-progress", "-d"])
        .arg(&out)
        .arg(&a)
        .arg("/etc/tagged"));
    assert_eq!(
        xattr::get(out.join("etc/tagged"), "user.kiln").unwrap(),
        Some(b"tagged".to_vec())
    );
}

#[test]
fn the_root_directory_keeps_its_owner_whoever_builds() {
    // sqfstar 4.5.1 gives the root directory the caller's ids: kiln runs
    // it in a user namespace as the tar's root owner when they differ.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut tree = sample_tree(&store, (1234, 5678));
    let root = kiln_tree::ImagePath::new("/").unwrap();
    let mut entry = tree.get(&root).unwrap().clone();
    entry.meta.mode = 0o750;
    tree.insert(root, entry).unwrap();
    need("unshare", "util-linux");
    let image = dir.path().join("root.squashfs");
    rootfs::squashfs_from_tar(&kiln_tar(&tree, &store)[..], &image, EPOCH).unwrap();
    let got = listing(&image);
    assert_eq!(got["/"].0, "drwxr-x---");
    assert_eq!(got["/"].1, "1234/5678");
    assert_eq!(got, expected_listing(&tree));
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.squashfs");
    let e = rootfs::squashfs_from_tar(&[0u8; 1024][..], &out, EPOCH).unwrap_err();
    assert!(format!("{e:#}").contains("the tar is empty"), "{e:#}");
    // A tar cut short mid-member: sqfstar's own complaint is passed on.
    let store = Store::open(&dir.path().join("store")).unwrap();
    let tar = kiln_tar(&sample_tree(&store, (0, 0)), &store);
    let e = rootfs::squashfs_from_tar(&tar[..tar.len() / 2], &out, EPOCH).unwrap_err();
    assert!(e.to_string().starts_with("sqfstar failed"), "{e:#}");
}
