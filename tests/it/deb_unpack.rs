//! `.deb` unpacking into the Tree against the real dpkg-deb: the same
//! members, modes, owners, links and contents, whatever the compression;
//! merged-/usr placement; hostile packages refused naming the package.

use crate::common;

use common::*;
use kiln_debian::deb::unpack;
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};
use std::path::{Path, PathBuf};
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

/// Every path below `dir` but `skip`, with its type and content: compared
/// before and after an unpack, it shows that nothing was written.
fn snapshot(dir: &Path, skip: &str) -> Vec<String> {
    list_dir(dir)
        .into_iter()
        .filter(|p| p != skip && !p.starts_with(&format!("{skip}/")))
        .map(|p| {
            let full = dir.join(&p);
            let meta = std::fs::symlink_metadata(&full).unwrap();
            if meta.is_file() {
                format!("{p} {}", sha256_file(&full))
            } else {
                format!("{p} {:?}", meta.file_type())
            }
        })
        .collect()
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
    let before = snapshot(w, "store");
    let mut tree = Tree::new();
    let err = unpack(&w.join("evil.deb"), "evil 1", &mut tree, &store).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("package evil 1") && text.contains("'..'"),
        "{text}"
    );
    // nothing placed, nothing written but (content-addressed) blobs
    assert_eq!(tree, Tree::new());
    assert_eq!(snapshot(w, "store"), before);
    let err = unpack(&w.join("truncated.deb"), "evil 1", &mut Tree::new(), &store).unwrap_err();
    assert!(format!("{err:#}").starts_with("evil 1:"), "{err:#}");
    let err = unpack(&w.join("garbage.deb"), "junk 0", &mut Tree::new(), &store).unwrap_err();
    assert_eq!(
        err.to_string(),
        "junk 0: not a Debian package (no ar signature)"
    );
}

/// Builds package `name` with dpkg-deb from the tree `setup` makes (a
/// shell script run in the package root), then appends to its data.tar,
/// with GNU tar, what `extra` makes (run in a directory of its own),
/// archiving it with `tar_args`: what a tampered package looks like.
fn tampered_deb(work: &Path, name: &str, setup: &str, extra: &str, tar_args: &str) -> PathBuf {
    sh(
        work,
        &format!(
            r#"
            n={name}
            mkdir -p $n/DEBIAN $n.x $n.extra
            printf 'Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@kiln.invalid>\nDescription: test\n' > $n/DEBIAN/control
            (cd $n && {setup})
            dpkg-deb --root-owner-group -Zgzip --build $n $n.deb >/dev/null
            (cd $n.extra && {extra})
            cd $n.x
            members=$(ar t ../$n.deb)
            ar x ../$n.deb
            gunzip data.tar.gz
            tar -rf data.tar -C ../$n.extra --owner=root:0 --group=root:0 {tar_args}
            gzip -n data.tar
            rm ../$n.deb
            ar rc ../$n.deb $members
            "#
        ),
    );
    work.join(format!("{name}.deb"))
}

/// The image a package is unpacked into: merged /usr and an /etc.
fn image() -> Tree {
    let mut tree = Tree::new();
    for dir in ["/usr/bin", "/usr/share", "/etc", "/dev"] {
        tree.insert(ImagePath::new(dir).unwrap(), Entry::dir(Meta::root(0o755)))
            .unwrap();
    }
    let link = Entry {
        kind: Kind::Symlink {
            target: "usr/bin".into(),
        },
        meta: Meta::root(0o777),
    };
    tree.insert(ImagePath::new("/bin").unwrap(), link).unwrap();
    tree
}

#[test]
fn a_package_never_writes_through_a_symlink_it_ships() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    for (name, link, target) in [
        ("evil-abs", "abs", "/etc"),
        ("evil-up", "up", "../../../etc"),
        ("evil-in", "in", "sub"),
    ] {
        let deb = tampered_deb(
            work.path(),
            name,
            &format!("mkdir -p usr/share/evil && ln -s {target} usr/share/evil/{link}"),
            &format!("mkdir -p usr/share/evil/{link} && echo pwned > usr/share/evil/{link}/passwd"),
            &format!("./usr/share/evil/{link}/passwd"),
        );
        // the real tools agree the package holds the link, then a file through it
        let listing = dpkg_listing(&deb);
        assert!(
            listing.ends_with(&[
                format!("lrwxrwxrwx root/root /usr/share/evil/{link} -> {target}"),
                format!("-rw-r--r-- root/root /usr/share/evil/{link}/passwd"),
            ]),
            "{listing:#?}"
        );
        let mut tree = image();
        let before = tree.clone();
        let err = unpack(&deb, &format!("{name} 1.0"), &mut tree, &store).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "package {name} 1.0: /usr/share/evil/{link}/passwd: /usr/share/evil/{link} is a symlink to \"{target}\" placed by this same input; an input never writes through its own symlinks"
            )
        );
        for p in ["/etc/passwd", "/usr/share/evil/sub/passwd"] {
            assert!(!tree.contains(&ImagePath::new(p).unwrap()), "{p}");
        }
        let new: Vec<&str> = tree
            .iter()
            .filter(|(p, _)| before.get(p).is_none())
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(
            new,
            [
                "/usr/share/evil".to_owned(),
                format!("/usr/share/evil/{link}")
            ]
        );
    }
}

#[test]
fn package_symlinks_get_mode_0777_as_dpkg_creates_them() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    // GNU tar's --mode reaches the link members too: a hand-made header
    let deb = tampered_deb(
        work.path(),
        "links",
        "mkdir -p usr/share/links",
        "mkdir -p usr/share/links && ln -s ../target usr/share/links/l",
        "--mode=0644 ./usr/share/links/l",
    );
    let listing = dpkg_listing(&deb);
    assert!(
        listing.contains(&"lrw-r--r-- root/root /usr/share/links/l -> ../target".to_owned()),
        "{listing:#?}"
    );
    // dpkg creates the link 0777, whatever the header says
    let x = work.path().join("x");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let stat = run_ok(
        Command::new("stat")
            .args(["-c", "%a"])
            .arg(x.join("usr/share/links/l")),
    );
    assert_eq!(String::from_utf8_lossy(&stat.stdout).trim(), "777");
    let mut tree = image();
    let unpacked = unpack(&deb, "links 1.0", &mut tree, &store).unwrap();
    let ours = kiln_listing(&tree, &unpacked.paths);
    assert!(
        ours.contains(&"lrwxrwxrwx 0/0 /usr/share/links/l -> ../target".to_owned()),
        "{ours:#?}"
    );
}

#[test]
#[ignore = "needs root"]
fn package_devices_and_fifos_outside_dev_are_refused() {
    require_root("package_devices_and_fifos_outside_dev_are_refused");
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    for (i, (what, make, args)) in [
        ("fifo", "mkfifo", ""),
        ("character device", "mknod", " c 1 1"),
        ("block device", "mknod", " b 8 0"),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("special{i}");
        let deb = tampered_deb(
            work.path(),
            &name,
            "true",
            &format!("mkdir -p dev var/tmp && {make} dev/x{args} && {make} var/tmp/x{args}"),
            "./dev/x ./var/tmp/x",
        );
        let mut tree = image();
        let err = unpack(&deb, &format!("{name} 1.0"), &mut tree, &store).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "package {name} 1.0: /var/tmp/x: a {what} outside /dev; device nodes and fifos are only accepted below /dev"
            )
        );
        // the one below /dev was placed; nothing else
        assert!(tree.contains(&ImagePath::new("/dev/x").unwrap()));
        assert!(!tree.contains(&ImagePath::new("/var/tmp/x").unwrap()));
    }
}

#[test]
fn a_package_hard_link_names_only_a_file_of_its_own() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    // GNU tar writes a link member to the first name; deleting that member
    // leaves a link to a file the package does not ship
    let deb = tampered_deb(
        work.path(),
        "grab",
        "true",
        "mkdir etc tmp && echo x > etc/shadow && ln etc/shadow tmp/shadow",
        "./etc/shadow ./tmp/shadow && tar --delete -f data.tar ./etc/shadow",
    );
    let mut tree = image();
    let shadow = Entry::file(&store, b"root:secret:::\n", Meta::root(0o640)).unwrap();
    tree.insert(ImagePath::new("/etc/shadow").unwrap(), shadow.clone())
        .unwrap();
    let err = unpack(&deb, "grab 1.0", &mut tree, &store).unwrap_err();
    assert_eq!(
        err.to_string(),
        "package grab 1.0: /tmp/shadow: hard link to /etc/shadow, which this input did not place; a hard link names an earlier file of the same input"
    );
    assert_eq!(
        tree.get(&ImagePath::new("/etc/shadow").unwrap()),
        Some(&shadow)
    );
    assert!(!tree.contains(&ImagePath::new("/tmp/shadow").unwrap()));
}

#[test]
fn package_member_names_beyond_the_bounds_are_refused_briefly() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let name = "n".repeat(256);
    let deb = tampered_deb(
        work.path(),
        "longname",
        "true",
        "mkdir -p usr/share && echo x > usr/share/f",
        &format!("--transform=s,/f$,/{name}, ./usr/share/f"),
    );
    let err = unpack(&deb, "longname 1.0", &mut image(), &store).unwrap_err();
    let text = format!("{err:#}");
    assert_eq!(
        text,
        format!(
            "package longname 1.0: member \"./usr/share/{}…\": path \"/usr/share/{}…\" has a name of 256 bytes; names are at most 255 bytes (ext4, EROFS, squashfs)",
            "n".repeat(68),
            "n".repeat(69)
        )
    );
}
