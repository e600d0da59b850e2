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
