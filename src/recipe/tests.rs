use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn extends_merges_image_fields_and_appends_lists() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "common/base.toml",
        "[image]\nname = \"base\"\nversion = \"1\"\narch = \"arm64\"\n[[symlink]]\npath = \"/a\"\ntarget = \"b\"\n",
    );
    let top = write(
        dir.path(),
        "top.toml",
        "extends = \"common/base.toml\"\n[image]\nname = \"top\"\n[[symlink]]\npath = \"/c\"\ntarget = \"d\"\n",
    );
    let plan = load(&top).unwrap();
    assert_eq!(plan.image.name, "top");
    assert_eq!(plan.image.version, "1");
    assert_eq!(plan.image.arch, "arm64");
    let links: Vec<&str> = plan.symlinks.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(links, ["/a", "/c"]);
    let sources: Vec<&str> = plan.sources.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(sources, ["top.toml", "common/base.toml"]);
}

#[test]
fn extends_cycle_is_reported_with_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.toml", "extends = \"a.toml\"\n");
    let a = write(
        dir.path(),
        "a.toml",
        "extends = \"b.toml\"\n[image]\nname = \"x\"\nversion = \"1\"\n",
    );
    let err = load(&a).unwrap_err();
    assert!(err.message.starts_with("extends cycle: "), "{err}");
    assert!(
        err.message.contains("a.toml -> ") && err.message.contains("b.toml"),
        "{err}"
    );
}

#[test]
fn relative_paths_across_folders() {
    assert_eq!(
        join_relative("top.toml", "../shared/base.toml"),
        "../shared/base.toml"
    );
    assert_eq!(join_relative("sub/x.toml", "../y.toml"), "y.toml");
    assert_eq!(join_relative("sub/x.toml", "z/y.toml"), "sub/z/y.toml");
}

#[test]
fn mode_accepts_octal_strings_only() {
    let file = Arc::new(SourceFile {
        name: "r.toml".into(),
        text: "x".into(),
    });
    let value = |v: toml::Value| Spanned::new(0..1, v);
    assert_eq!(mode(&file, &value("4755".into())).unwrap(), 0o4755);
    assert_eq!(mode(&file, &value("0o644".into())).unwrap(), 0o644);
    for bad in ["0999", "", "12345", "rwx"] {
        assert!(mode(&file, &value(bad.into())).is_err(), "{bad}");
    }
    let err = mode(&file, &value(644.into())).unwrap_err();
    assert!(err.message.contains("quoted octal string"), "{err}");
}

#[test]
fn the_k3s_agent_recipe_checks_itself_and_reports_for_the_fleet() {
    let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let plan = load(&recipes.join("k3s-agent.toml")).expect("recipes/k3s-agent.toml loads");
    // on by default: hardened-node.toml's hourly check, run by kiln-node,
    // trusting the key that signs the build (no keys in the repository)
    let timer = plan.check_timer.expect("a check timer");
    assert_eq!(timer.on_calendar, "hourly");
    assert!(timer.keys.is_empty());
    assert_eq!(timer.binary.as_str(), kiln_policy::node::NODE_PROGRAM);
    let fleet = timer.fleet.expect("[fleet]");
    assert_eq!(fleet.after_boot, "15min");
    assert!(fleet.node_labels && fleet.journal);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = dir.path().join("release.pub");
    std::fs::write(
        &key,
        "untrusted comment: minisign public key 0\nRWQAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYn\n",
    )
    .expect("written");
    let path = write(
        dir.path(),
        "node.toml",
        &format!(
            "extends = \"{}\"\n[check]\ntimer = \"hourly\"\nkeys = [\"release.pub\"]\n[fleet]\ncpu_quota = \"10%\"\n",
            recipes.join("k3s-agent.toml").display()
        ),
    );
    let plan = load(&path).expect("loads");
    let timer = plan.check_timer.expect("the check timer kept");
    assert_eq!(timer.keys.len(), 1);
    let fleet = timer.fleet.expect("[fleet] kept");
    assert_eq!(fleet.cpu_quota, "10%");
    assert_eq!(fleet.audit, "daily");
    assert_eq!(
        fleet.textfile_dir.map(|d| d.as_str().to_owned()).as_deref(),
        Some("/var/lib/prometheus/node-exporter")
    );
}

/// One recipe for both architectures: `[arch]` qualifiers on packages
/// and kernel arguments, an `arch` on each pin of an artifact.
const BOTH_ARCHES: &str = r#"[image]
name = "node"
version = "1"

[debian]
suite = "bookworm"
packages = ["systemd", "linux-image-cloud-amd64 [amd64]", "linux-image-cloud-arm64 [arm64]", "x86-only [!arm64]"]
exclude = ["foo [arm64]"]

[[artifact]]
name = "k3s"
url = "https://example.invalid/k3s"
sha256 = "835873f37245fc615f547a2fe2af9402a347875f13fa64a1f136de644955ea3f"
dest = "/usr/local/bin/k3s"

[[artifact]]
name = "k3s"
arch = "arm64"
url = "https://example.invalid/k3s-arm64"
sha256 = "c920706346d5ad4e5cd3c7bf1bb09ce71ebe07fec829e513e40f1caf98aed8bb"
dest = "/usr/local/bin/k3s"

[boot]
cmdline = ["console=tty0", "console=ttyS0,115200 [amd64]", "console=ttyAMA0,115200 [arm64]"]
"#;

#[test]
fn arch_qualifiers_choose_packages_pins_and_kernel_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write(dir.path(), "node.toml", BOTH_ARCHES);
    let amd64 = load(&recipe).unwrap();
    let arm64 = load_for_arch(&recipe, Some("arm64")).unwrap();
    let packages = |p: &Plan| p.debian.section.as_ref().unwrap().packages.clone();
    let excluded = |p: &Plan| p.debian.section.as_ref().unwrap().exclude.clone();
    assert_eq!(
        packages(&amd64),
        ["systemd", "linux-image-cloud-amd64", "x86-only"]
    );
    assert_eq!(packages(&arm64), ["systemd", "linux-image-cloud-arm64"]);
    assert!(excluded(&amd64).is_empty());
    assert_eq!(excluded(&arm64), ["foo"]);
    let pin = |p: &Plan| {
        let [one] = p.debian.artifacts.as_slice() else {
            panic!("one k3s pin: {:?}", p.debian.artifacts)
        };
        one.sha256.hex()
    };
    assert!(pin(&amd64).starts_with("835873f3"));
    assert!(pin(&arm64).starts_with("c9207063"));
    let cmdline = |p: &Plan| p.boot.as_ref().unwrap().cmdline.join(" ");
    assert_eq!(cmdline(&amd64), "console=tty0 console=ttyS0,115200");
    assert_eq!(cmdline(&arm64), "console=tty0 console=ttyAMA0,115200");
    assert_eq!(
        (amd64.image.arch.as_str(), amd64.image.recipe_arch.as_str()),
        ("amd64", "amd64")
    );
    assert_eq!(
        (arm64.image.arch.as_str(), arm64.image.recipe_arch.as_str()),
        ("arm64", "amd64")
    );
    // the lock of another architecture than the recipe's is its own file
    let lock = |p: &Plan| crate::packages::lock_file(&recipe, p);
    assert_eq!(lock(&amd64), dir.path().join("node.lock"));
    assert_eq!(lock(&arm64), dir.path().join("node.arm64.lock"));
    // an unknown architecture is refused with the known ones
    let err = load_for_arch(&recipe, Some("aarch64")).unwrap_err();
    assert!(err.to_string().contains("known: amd64, arm64"), "{err}");
}

#[test]
fn a_recipe_that_extends_replaces_every_pin_of_an_artifact() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "agent.toml", BOTH_ARCHES);
    let top = write(
        dir.path(),
        "test.toml",
        "extends = \"agent.toml\"\n[[artifact]]\nname = \"k3s\"\npath = \"k3s\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\ndest = \"/usr/local/bin/k3s\"\n",
    );
    for arch in ["amd64", "arm64"] {
        let plan = load_for_arch(&top, Some(arch)).unwrap();
        let pins: Vec<String> = plan
            .debian
            .artifacts
            .iter()
            .map(|a| a.sha256.hex())
            .collect();
        assert_eq!(pins, ["0".repeat(64)], "{arch}");
    }
}

#[test]
fn bad_arch_qualifiers_point_at_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "packages = [\"linux-image [aarch64]\"]",
            "did you mean \"arm64\"?",
        ),
        (
            "packages = [\"linux-image []\"]",
            "the architecture list is empty",
        ),
        ("packages = [\"linux-image [amd64 !arm64]\"]", "not both"),
    ];
    for (line, expected) in cases {
        let recipe = write(
            dir.path(),
            "bad.toml",
            &format!(
                "[image]\nname = \"n\"\nversion = \"1\"\n[debian]\nsuite = \"bookworm\"\n{line}\n"
            ),
        );
        let err = load(&recipe).unwrap_err().to_string();
        assert!(err.contains("bad.toml:6:"), "{line}: {err}");
        assert!(err.contains(expected), "{line}: {err}");
    }
    let twice = write(
        dir.path(),
        "twice.toml",
        "[image]\nname = \"n\"\nversion = \"1\"\n[[artifact]]\nname = \"k3s\"\narch = \"arm64\"\npath = \"a\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\ndest = \"/k\"\n[[artifact]]\nname = \"k3s\"\narch = \"arm64\"\npath = \"b\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\ndest = \"/k\"\n",
    );
    let err = load(&twice).unwrap_err().to_string();
    assert!(err.contains("pinned twice for arm64"), "{err}");
}
