use super::*;

fn p(s: &str) -> ImagePath {
    ImagePath::new(s).unwrap()
}

fn file(content: &[u8]) -> Entry {
    Entry {
        kind: Kind::File {
            digest: Digest::of(content),
            size: content.len() as u64,
        },
        meta: Meta::root(0o644),
    }
}

fn symlink(target: &str) -> Entry {
    Entry {
        kind: Kind::Symlink {
            target: target.into(),
        },
        meta: Meta::root(0o777),
    }
}

fn paths(tree: &Tree) -> Vec<&str> {
    tree.iter().map(|(p, _)| p.as_str()).collect()
}

#[test]
fn insert_creates_missing_parents_and_keeps_sorted_order() {
    let mut t = Tree::new();
    t.insert(p("/usr/bin/ls"), file(b"ls")).unwrap();
    t.insert(p("/etc-old"), file(b"x")).unwrap();
    t.insert(p("/etc/passwd"), file(b"root")).unwrap();
    assert_eq!(
        paths(&t),
        [
            "/",
            "/etc",
            "/etc-old",
            "/etc/passwd",
            "/usr",
            "/usr/bin",
            "/usr/bin/ls"
        ]
    );
    assert_eq!(
        t.get(&p("/usr/bin")).unwrap(),
        &Entry::dir(Meta::root(0o755))
    );
}

#[test]
fn insert_refuses_to_write_through_symlink_or_file() {
    let mut t = Tree::new();
    t.insert(p("/evil"), symlink("/")).unwrap();
    let err = t.insert(p("/evil/etc/passwd"), file(b"x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/evil/etc/passwd: /evil is a symlink; writing through it could leave the image"
    );
    t.insert(p("/f"), file(b"x")).unwrap();
    let err = t.insert(p("/f/g"), file(b"y")).unwrap_err();
    assert_eq!(err.to_string(), "/f/g: /f is a file, not a directory");
}

#[test]
fn directory_meets_directory_keeps_children() {
    let mut t = Tree::new();
    t.insert(p("/d/x"), file(b"x")).unwrap();
    t.insert(p("/d"), Entry::dir(Meta::root(0o700))).unwrap();
    assert!(t.contains(&p("/d/x")));
    assert_eq!(t.get(&p("/d")).unwrap().meta.mode, 0o700);
    // a file replacing a directory removes the subtree
    t.insert(p("/d"), file(b"d")).unwrap();
    assert_eq!(paths(&t), ["/", "/d"]);
}

#[test]
fn descendants_exclude_siblings_with_shared_prefix() {
    let mut t = Tree::new();
    for path in ["/a/b", "/a-b", "/a0", "/a/c/d", "/ab"] {
        t.insert(p(path), file(b"")).unwrap();
    }
    let below: Vec<_> = t.descendants(&p("/a")).map(|(p, _)| p.as_str()).collect();
    assert_eq!(below, ["/a/b", "/a/c", "/a/c/d"]);
    assert_eq!(t.descendants(&ImagePath::root()).count(), t.len() - 1);
    t.remove(&p("/a")).unwrap();
    assert_eq!(paths(&t), ["/", "/a-b", "/a0", "/ab"]);
}

#[test]
fn hard_links_keep_content_on_the_first_name() {
    let mut t = Tree::new();
    t.insert(p("/m/z"), file(b"data")).unwrap();
    t.insert_hard_link(p("/m/y"), p("/m/z")).unwrap();
    t.insert_hard_link(p("/m/x"), p("/m/y")).unwrap();
    assert!(matches!(t.get(&p("/m/x")).unwrap().kind, Kind::File { .. }));
    for name in ["/m/y", "/m/z"] {
        assert_eq!(
            t.get(&p(name)).unwrap().kind,
            Kind::HardLink { target: p("/m/x") },
            "{name}"
        );
    }
    // removing the holder promotes the next name and repoints the rest
    t.remove(&p("/m/x")).unwrap();
    assert!(matches!(t.get(&p("/m/y")).unwrap().kind, Kind::File { .. }));
    assert_eq!(
        t.get(&p("/m/z")).unwrap().kind,
        Kind::HardLink { target: p("/m/y") }
    );
    // removing the last link leaves a plain file
    t.remove(&p("/m/z")).unwrap();
    assert_eq!(t.hard_links_of(&p("/m/y")).count(), 0);
    // removing a whole directory takes every name inside with it
    t.insert_hard_link(p("/n/y"), p("/m/y")).unwrap();
    t.remove(&p("/m")).unwrap();
    assert!(matches!(t.get(&p("/n/y")).unwrap().kind, Kind::File { .. }));
}

#[test]
fn hard_link_errors_name_the_problem() {
    let mut t = Tree::new();
    let err = t.insert_hard_link(p("/a"), p("/missing")).unwrap_err();
    assert!(
        err.to_string().contains("the target does not exist"),
        "{err}"
    );
    t.insert(p("/d"), Entry::dir(Meta::root(0o755))).unwrap();
    let err = t.insert_hard_link(p("/a"), p("/d")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "hard link /a -> /d: only regular files can be hard-linked"
    );
}

#[test]
fn set_meta_applies_to_every_name_of_a_file() {
    let mut t = Tree::new();
    t.insert(p("/a"), file(b"x")).unwrap();
    t.insert_hard_link(p("/b"), p("/a")).unwrap();
    t.set_meta(&p("/b"), Meta::root(0o4755));
    assert_eq!(t.get(&p("/a")).unwrap().meta.mode, 0o4755);
    assert_eq!(t.get(&p("/b")).unwrap().meta.mode, 0o4755);
}

#[test]
fn resolve_stays_inside_the_image() {
    let mut t = Tree::new();
    t.insert(p("/usr/bin"), Entry::dir(Meta::root(0o755)))
        .unwrap();
    t.insert(p("/bin"), symlink("usr/bin")).unwrap();
    t.insert(p("/up"), symlink("../../../../etc")).unwrap();
    t.insert(p("/abs"), symlink("/usr/./bin/")).unwrap();
    t.insert(p("/loop"), symlink("loop")).unwrap();
    t.insert(p("/file"), file(b"x")).unwrap();
    assert_eq!(t.resolve(&p("/bin/sh"), false).unwrap(), p("/usr/bin/sh"));
    assert_eq!(t.resolve(&p("/bin"), false).unwrap(), p("/bin"));
    assert_eq!(t.resolve(&p("/bin"), true).unwrap(), p("/usr/bin"));
    assert_eq!(
        t.resolve(&p("/up/passwd"), false).unwrap(),
        p("/etc/passwd")
    );
    assert_eq!(t.resolve(&p("/abs/x"), false).unwrap(), p("/usr/bin/x"));
    assert!(matches!(
        t.resolve(&p("/loop/x"), false),
        Err(TreeError::SymlinkLoop { .. })
    ));
    assert!(matches!(
        t.resolve(&p("/file/x"), false),
        Err(TreeError::NotADirectory { .. })
    ));
}

#[test]
fn create_dir_all_follows_symlinks_inside_the_image() {
    let mut t = Tree::new();
    t.insert(p("/usr"), Entry::dir(Meta::root(0o755))).unwrap();
    t.insert(p("/lib"), symlink("usr/lib")).unwrap();
    let made = t
        .create_dir_all(&p("/lib/modules"), &Meta::root(0o755))
        .unwrap();
    assert_eq!(made, p("/usr/lib/modules"));
    assert!(t.contains(&p("/usr/lib/modules")));
    assert!(matches!(
        t.get(&p("/lib")).unwrap().kind,
        Kind::Symlink { .. }
    ));
}

#[test]
fn root_cannot_be_removed_or_replaced() {
    let mut t = Tree::new();
    assert_eq!(
        t.remove(&ImagePath::root()),
        Err(TreeError::RootIsADirectory)
    );
    assert_eq!(
        t.insert(ImagePath::root(), file(b"x")),
        Err(TreeError::RootIsADirectory)
    );
}

#[test]
fn a_hard_link_cannot_replace_the_directory_holding_its_target() {
    // found by fuzzing: `d/f`, then a hard link `d` -> `d/f`
    let mut t = Tree::new();
    t.insert(p("/d/f"), file(b"")).unwrap();
    let err = t.insert_hard_link(p("/d"), p("/d/f")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "hard link /d -> /d/f: the link would replace the directory that holds its own target"
    );
    assert!(t.contains(&p("/d/f")));
    // the same through an archive member, and through an earlier link name
    t.insert_hard_link(p("/e"), p("/d/f")).unwrap();
    assert!(t.insert_hard_link(p("/d"), p("/e")).is_err());
}

/// A tar stream of `members`: (name, type, link target or content, mode).
fn tar_of(members: &[(&str, tar::EntryType, &str, u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, arg, mode) in members {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(*mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let data = if *kind == tar::EntryType::Regular {
            arg.as_bytes()
        } else {
            if !arg.is_empty() {
                header.set_link_name(arg).unwrap();
            }
            &[]
        };
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, data).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn load_tar_places_members_by_the_policy_naming_the_archive() {
    use tar::EntryType::{Fifo, Regular, Symlink};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tree = load_tar(
        &tar_of(&[
            ("bin", Symlink, "usr/bin", 0o644),
            ("dev/initctl", Fifo, "", 0o600),
        ])[..],
        "base tarball b.tar",
        &store,
    )
    .unwrap();
    assert_eq!(tree.get(&p("/bin")).unwrap().meta.mode, 0o777);
    assert_eq!(tree.get(&p("/dev/initctl")).unwrap().kind, Kind::Fifo);
    let err = load_tar(
        &tar_of(&[("run/p", Fifo, "", 0o600)])[..],
        "base tarball b.tar",
        &store,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "base tarball b.tar: /run/p: a fifo outside /dev; device nodes and fifos are only accepted below /dev"
    );
    let err = load_tar(
        &tar_of(&[
            ("x", Symlink, "/etc", 0o777),
            ("x/passwd", Regular, "pwned", 0o644),
        ])[..],
        "base tarball b.tar",
        &store,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "base tarball b.tar: /x/passwd: /x is a symlink to \"/etc\" placed by this same input; an input never writes through its own symlinks"
    );
}

#[test]
fn symlink_targets_are_bounded_and_modes_stay_0777() {
    let mut t = Tree::new();
    let err = t
        .insert(p("/l"), symlink(&"t".repeat(MAX_LINK_TARGET + 1)))
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is 4096 bytes long; targets are at most 4095 bytes"),
        "{err}"
    );
    assert!(err.to_string().len() < 200, "{err}");
    t.insert(p("/l"), symlink(&"t".repeat(MAX_LINK_TARGET)))
        .unwrap();
    t.set_meta(&p("/l"), Meta::root(0o600));
    assert_eq!(t.get(&p("/l")).unwrap().meta.mode, 0o777);
    // a target with an over-long name cannot be resolved into a path
    t.insert(p("/m"), symlink(&"n".repeat(300))).unwrap();
    assert!(matches!(
        t.resolve(&p("/m/x"), false),
        Err(TreeError::Bounds { .. })
    ));
}

#[test]
fn host_sources_follow_symlinks_only_inside_the_recipe_folder() {
    let work = tempfile::tempdir().unwrap();
    let w = std::fs::canonicalize(work.path()).unwrap();
    let recipe = w.join("recipe");
    std::fs::create_dir_all(recipe.join("files")).unwrap();
    std::fs::create_dir_all(w.join("shared")).unwrap();
    std::fs::write(recipe.join("files/real"), "x").unwrap();
    std::fs::write(w.join("shared/motd"), "x").unwrap();
    std::fs::write(w.join("secret"), "s").unwrap();
    let link =
        |target: &str, at: &str| std::os::unix::fs::symlink(target, recipe.join(at)).unwrap();
    link("real", "files/inside");
    link("../../secret", "files/up");
    link(w.join("secret").to_str().unwrap(), "files/abs");
    link("../shared", "shareddir");
    // a link inside the folder, and a `..` the recipe writes, are fine
    assert_eq!(
        host_source(&recipe, &recipe.join("files/inside")).unwrap(),
        recipe.join("files/real")
    );
    assert_eq!(
        host_source(&recipe, &recipe.join("../shared/motd")).unwrap(),
        w.join("shared/motd")
    );
    for (at, target) in [
        ("files/up", "../../secret".to_owned()),
        ("files/abs", w.join("secret").display().to_string()),
        ("shareddir", "../shared".to_owned()),
    ] {
        let source = if at == "shareddir" {
            recipe.join("shareddir/motd")
        } else {
            recipe.join(at)
        };
        let err = host_source(&recipe, &source).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "{} is a symlink to {target}, which leads to ",
                recipe.join(at).display()
            )),
            "{err}"
        );
    }
}

/// The install stage's round trip: a tree written out from a store that
/// gives its blobs up, read back into one that takes the files.
#[test]
fn a_tree_goes_out_and_back_in_by_moving_files() {
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let meta = |mode| Meta {
        mode,
        uid,
        gid,
        xattrs: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("in")).unwrap();
    let big = vec![9u8; 200 << 10];
    let mut tree = Tree::new();
    tree.set_meta(&ImagePath::root(), meta(0o755));
    tree.insert(p("/etc"), Entry::dir(meta(0o755))).unwrap();
    tree.insert(p("/etc/a"), Entry::file(&store, &big, meta(0o644)).unwrap())
        .unwrap();
    tree.insert(p("/etc/b"), Entry::file(&store, &big, meta(0o600)).unwrap())
        .unwrap();
    tree.insert(
        p("/etc/c"),
        Entry::file(&store, b"small", meta(0o640)).unwrap(),
    )
    .unwrap();
    tree.insert(
        p("/etc/d"),
        Entry {
            kind: Kind::HardLink {
                target: p("/etc/c"),
            },
            meta: meta(0o640),
        },
    )
    .unwrap();
    let mut link = symlink("a");
    link.meta.uid = uid;
    link.meta.gid = gid;
    tree.insert(p("/etc/e"), link).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    write_dir_taking(&tree, &store, &root).unwrap();
    assert!(std::fs::read(root.join("etc/a")).unwrap() == big);
    assert!(std::fs::read(root.join("etc/b")).unwrap() == big);
    assert_eq!(std::fs::read(root.join("etc/d")).unwrap(), b"small");
    let back_store = Store::open(&dir.path().join("back")).unwrap();
    let back = load_dir_taking(&root, &back_store, &|_| false).unwrap();
    assert_eq!(back, tree);
    // the files went into the store
    assert!(!root.join("etc/a").exists() && !root.join("etc/b").exists());
    let Kind::File { digest, .. } = &back.get(&p("/etc/a")).unwrap().kind else {
        panic!("a file");
    };
    assert!(back_store.read_to_vec(digest).unwrap() == big);
}

/// The sandbox's way back: contents the reader holds travel as digests,
/// and only that exchange may refer to contents at all.
#[test]
fn known_contents_travel_as_digests_and_nothing_else_may_refer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = vec![7u8; 100 << 10];
    let changed = b"written by a script".to_vec();
    let mut tree = Tree::new();
    tree.insert(p("/etc/kept"), file(&kept)).unwrap();
    let mut entry = Entry::file(&store, &kept, Meta::root(0o644)).unwrap();
    tree.insert(p("/etc/kept2"), entry.clone()).unwrap();
    entry = Entry::file(&store, &changed, Meta::root(0o600)).unwrap();
    tree.insert(p("/etc/changed"), entry).unwrap();
    let kept_digest = Digest::of(&kept);
    let bytes = crate::pack::write_tar_referring(&tree, &store, 0, Vec::new(), &|_| {}, &|d| {
        *d == kept_digest
    })
    .unwrap();
    // the kept content is not in the archive, the changed one is
    assert!(!bytes.windows(64).any(|w| w == &kept[..64]));
    assert!(bytes.windows(changed.len()).any(|w| w == changed));
    let size = kept.len() as u64;
    let known = |d: &Digest| (*d == kept_digest).then_some(size);
    let back = load_tar_referring(&bytes[..], "exchange", &store, &known).unwrap();
    assert_eq!(back, tree);

    let plain = load_tar(&bytes[..], "an archive", &store).unwrap_err();
    assert!(format!("{plain:#}").contains("KILN.sha256"), "{plain:#}");
    let unknown = load_tar_referring(&bytes[..], "exchange", &store, &|_| None).unwrap_err();
    assert!(
        format!("{unknown:#}").contains("never given"),
        "{unknown:#}"
    );
}

/// The sandbox's way in: every content travels with its digest, which the
/// sandbox takes as given; no other reader accepts such an archive.
#[test]
fn given_digests_are_taken_only_by_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("build")).unwrap();
    let big = vec![9u8; 5 << 20];
    let mut tree = Tree::new();
    for (path, content) in [
        ("/etc/small", &b"small"[..]),
        ("/usr/big", &big),
        ("/usr/big2", &big),
        ("/usr/empty", b""),
    ] {
        let entry = Entry::file(&store, content, Meta::root(0o755)).unwrap();
        tree.insert(p(path), entry).unwrap();
    }
    let bytes = crate::pack::write_tar_with_digests(&tree, &store, Vec::new()).unwrap();
    let sandbox = Store::open(&dir.path().join("sandbox")).unwrap();
    let back = load_tar_given_digests(&bytes[..], "the image", &sandbox).unwrap();
    assert_eq!(back, tree);
    assert_eq!(sandbox.read_to_vec(&Digest::of(&big)).unwrap(), big);
    assert_eq!(
        sandbox.read_to_vec(&Digest::of(b"small")).unwrap(),
        b"small"
    );

    let plain = load_tar(&bytes[..], "an archive", &store).unwrap_err();
    assert!(format!("{plain:#}").contains("KILN.sha256"), "{plain:#}");
    let all = |_: &Digest| Some(5u64);
    let referring = load_tar_referring(&bytes[..], "exchange", &store, &all).unwrap_err();
    assert!(
        format!("{referring:#}").contains("also carries bytes"),
        "{referring:#}"
    );
}

/// A file the caller knows unchanged is neither read nor taken.
#[test]
fn unchanged_files_are_not_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/kept"), b"old").unwrap();
    std::fs::write(root.join("etc/new"), b"new").unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let marker = Digest([1; 32]);
    let tree = load_dir_taking_changed(&root, &store, &|_| false, &|e| {
        (e.path == p("/etc/kept")).then_some((marker, 3))
    })
    .unwrap();
    let digest = |path| match tree.get(&p(path)).unwrap().kind {
        Kind::File { digest, .. } => digest,
        _ => panic!("{path} is a file"),
    };
    assert_eq!(digest("/etc/kept"), marker);
    assert!(root.join("etc/kept").exists(), "left in place");
    assert_eq!(digest("/etc/new"), Digest::of(b"new"));
    assert!(!root.join("etc/new").exists(), "taken");
}
