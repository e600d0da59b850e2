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
