//! `.deb` unpacking into the Tree against the real dpkg-deb: the same
//! members, modes, owners, links and contents, whatever the compression;
//! merged-/usr placement; hostile packages refused naming the package.

use crate::common;

use common::*;
use kiln_debian::deb::unpack;
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use std::path::Path;
use std::process::Command;

/// Builds a package with dpkg-deb from a directory made by the real tools.
fn build_deb(work: &Path, compression: &str) -> std::path::PathBuf {
    let pkg = work.join(format!("pkg-{compression}"));
    sh(
        work,
        &format!(
            r#"
            p=pkg-{compression}
            mkdir -p $p/DEBIAN $p/bin $p/usr/share/doc/tool $p/etc/tool
            printf 'Package: tool\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@kiln.invalid>\nDescription: test\n' > $p/DEBIAN/control
            printf '#!/bin/sh\nexit 0\n' > $p/DEBIAN/postinst && chmod 755 $p/DEBIAN/postinst
            printf '/etc/tool/tool.conf\n' > $p/DEBIAN/conffiles
            printf '#!/bin/sh\necho tool\n' > $p/bin/tool && chmod 4755 $p/bin/tool
            ln $p/bin/tool $p/bin/tool-again
            ln -s tool $p/bin/tool-link
            printf 'setting=1\n' > $p/etc/tool/tool.conf
            printf 'docs\n' > $p/usr/share/doc/tool/README
            "#
        ),
    );
    let deb = work.join(format!("tool-{compression}.deb"));
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
            .arg(&pkg)
            .arg(&deb),
    );
    deb
}

/// `dpkg-deb -c` lines reduced to "mode owner path [-> target]".
fn dpkg_listing(deb: &Path) -> Vec<String> {
    let out = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[5].trim_start_matches('.').trim_end_matches('/');
            let path = if path.is_empty() { "/" } else { path };
            let rest = f[6..].join(" ");
            format!("{} {} {path} {rest}", f[0], f[1])
                .trim_end()
                .to_owned()
        })
        .collect()
}

fn kiln_listing(tree: &Tree, paths: &[ImagePath]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            let e = tree.get(p).unwrap_or_else(|| panic!("{p} missing"));
            let (type_char, suffix) = match &e.kind {
                Kind::Dir => ('d', String::new()),
                Kind::File { .. } => ('-', String::new()),
                Kind::Symlink { target } => ('l', format!("-> {target}")),
                Kind::HardLink { target } => ('h', format!("link to .{target}")),
                _ => ('?', String::new()),
            };
            let mode = e.meta.mode;
            let bits: String = (0..9)
                .map(|i| {
                    let bit = mode & (0o400 >> i) != 0;
                    let c = ['r', 'w', 'x'][i % 3];
                    match (
                        i,
                        bit,
                        mode & 0o4000 != 0,
                        mode & 0o2000 != 0,
                        mode & 0o1000 != 0,
                    ) {
                        (2, true, true, _, _) => 's',
                        (2, false, true, _, _) => 'S',
                        (5, true, _, true, _) => 's',
                        (8, true, _, _, true) => 't',
                        (_, true, ..) => c,
                        _ => '-',
                    }
                })
                .collect();
            format!(
                "{type_char}{bits} {}/{} {p} {suffix}",
                e.meta.uid, e.meta.gid
            )
            .trim_end()
            .to_owned()
        })
        .collect()
}

#[test]
fn unpack_matches_dpkg_deb_for_every_compression() {
    let work = tempfile::tempdir().unwrap();
    for compression in ["gzip", "xz", "zstd", "none"] {
        let deb = build_deb(work.path(), compression);
        let mut tree = Tree::new();
        let store_dir = work.path().join(format!("store-{compression}"));
        let store = Store::open(&store_dir).unwrap();
        let unpacked = unpack(&deb, "tool 1.0", &mut tree, &store).unwrap();
        // dpkg-deb prints numeric owners as "root/root"
        let ours: Vec<String> = kiln_listing(&tree, &unpacked.paths)
            .into_iter()
            .map(|l| l.replacen(" 0/0 ", " root/root ", 1))
            .collect();
        assert_eq!(ours, dpkg_listing(&deb), "{compression}");
        assert!(
            unpacked
                .control
                .control()
                .unwrap()
                .contains("Package: tool")
        );
        assert_eq!(
            unpacked.control.files["conffiles"],
            b"/etc/tool/tool.conf\n"
        );
        assert!(unpacked.control.files.contains_key("postinst"));
        // contents equal what dpkg-deb -x extracts
        let x = work.path().join(format!("x-{compression}"));
        run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
        let Kind::File { digest, .. } = tree
            .get(&ImagePath::new("/etc/tool/tool.conf").unwrap())
            .unwrap()
            .kind
        else {
            panic!()
        };
        assert_eq!(digest.hex(), sha256_file(&x.join("etc/tool/tool.conf")));
    }
}

#[test]
fn packages_follow_merged_usr_inside_the_image() {
    let work = tempfile::tempdir().unwrap();
    let deb = build_deb(work.path(), "xz");
    let store = Store::open(&work.path().join("store")).unwrap();
    let mut tree = Tree::new();
    tree.insert(
        ImagePath::new("/usr/bin").unwrap(),
        Entry::dir(Meta::root(0o755)),
    )
    .unwrap();
    let link = Entry {
        kind: Kind::Symlink {
            target: "usr/bin".into(),
        },
        meta: Meta::root(0o777),
    };
    tree.insert(ImagePath::new("/bin").unwrap(), link).unwrap();
    // an existing directory keeps its metadata
    tree.insert(
        ImagePath::new("/etc").unwrap(),
        Entry::dir(Meta {
            mode: 0o750,
            uid: 0,
            gid: 4,
            ..Meta::default()
        }),
    )
    .unwrap();
    let unpacked = unpack(&deb, "tool 1.0", &mut tree, &store).unwrap();
    let get = |p: &str| tree.get(&ImagePath::new(p).unwrap()).cloned();
    assert!(
        matches!(get("/bin").unwrap().kind, Kind::Symlink { .. }),
        "the /bin symlink was replaced"
    );
    assert_eq!(get("/usr/bin/tool").unwrap().meta.mode, 0o4755);
    assert_eq!(
        get("/usr/bin/tool-again").unwrap().kind,
        Kind::HardLink {
            target: ImagePath::new("/usr/bin/tool").unwrap()
        }
    );
    assert_eq!(get("/etc").unwrap().meta.mode, 0o750);
    // the package's own names are kept for dpkg's file list
    assert!(
        unpacked
            .paths
            .contains(&ImagePath::new("/bin/tool").unwrap())
    );
}

#[test]
fn hostile_and_broken_packages_are_refused_naming_the_package() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    sh(
        w,
        r#"
        printf '2.0\n' > debian-binary
        mkdir c && printf 'Package: evil\nVersion: 1\nArchitecture: all\n' > c/control && tar -C c -czf control.tar.gz ./control
        python3 -c '
import io, tarfile
with tarfile.open("data.tar.gz", "w:gz") as t:
    i = tarfile.TarInfo("./../../escaped"); i.size = 3; t.addfile(i, io.BytesIO(b"bad"))
'
        ar rc evil.deb debian-binary control.tar.gz data.tar.gz
        head -c 100 evil.deb > truncated.deb
        printf 'not a package' > garbage.deb
        "#,
    );
    let store = Store::open(&w.join("store")).unwrap();
    let err = unpack(&w.join("evil.deb"), "evil 1", &mut Tree::new(), &store).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("package evil 1") && text.contains("'..'"),
        "{text}"
    );
    assert!(!w.parent().unwrap().join("escaped").exists());
    let err = unpack(&w.join("truncated.deb"), "evil 1", &mut Tree::new(), &store).unwrap_err();
    assert!(format!("{err:#}").starts_with("evil 1:"), "{err:#}");
    let err = unpack(&w.join("garbage.deb"), "junk 0", &mut Tree::new(), &store).unwrap_err();
    assert_eq!(
        err.to_string(),
        "junk 0: not a Debian package (no ar signature)"
    );
}
