//! The install stage against a repository made by the tests (dpkg-deb,
//! apt-ftparchive, gpg), without network: packages without maintainer
//! scripts are installed with a dpkg database identical to what the host's
//! own dpkg writes for the same packages (the oracle), and the cases kiln
//! must refuse are refused with a clear message and no artifact.

use crate::common;

use common::debrepo::{Deb, TestRepo};
use common::oracle::{compare_with_oracle, read_tar};
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SUITE: &str = "kilntest";

fn scriptless_debs() -> Vec<Deb> {
    vec![
        Deb {
            name: "app",
            version: "1.0-1",
            depends: "libfoo1",
            files: vec![
                ("/usr/bin/app", "#!/bin/sh\necho app\n"),
                ("/etc/app/app.conf", "setting = 1\n"),
                ("/usr/share/app/data", "data\n"),
            ],
            control: vec![
                ("conffiles", "/etc/app/app.conf\n"),
                (
                    "md5sums",
                    "b026324c6904b2a9cb4b88d6d61c81d1  usr/share/app/data\n",
                ),
            ],
            fields: "Homepage: https://kiln.invalid/app\nMulti-Arch: foreign\n",
            ..Deb::default()
        },
        Deb {
            name: "libfoo1",
            version: "2.0",
            files: vec![("/usr/lib/x86_64-linux-gnu/libfoo.so.1", "foo 2.0\n")],
            control: vec![("shlibs", "libfoo 1 libfoo1 (>= 2.0)\n")],
            fields: "Multi-Arch: same\nSection: libs\n",
            ..Deb::default()
        },
        Deb {
            name: "tool",
            version: "3:0.1",
            arch: "all",
            files: vec![
                ("/usr/sbin/tool", "tool\n"),
                ("/usr/share/doc/tool/README", "r\n"),
            ],
            ..Deb::default()
        },
    ]
}

struct Setup {
    _tmp: tempfile::TempDir,
    /// Other directories the recipe refers to.
    keep: Vec<tempfile::TempDir>,
    dir: PathBuf,
    debs: Vec<PathBuf>,
}

fn setup(debs: &[Deb], packages: &[&str]) -> Setup {
    setup_with(debs, packages, "")
}

fn setup_with(debs: &[Deb], packages: &[&str], extra_recipe: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let repo = TestRepo::new(&dir);
    let files = debs.iter().map(|d| repo.add(SUITE, d)).collect();
    repo.publish(SUITE, "");
    std::fs::copy(&repo.keyring, dir.join("keyring.gpg")).unwrap();
    let packages: Vec<String> = packages.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        dir.join("r.toml"),
        format!(
            "[audit]\nfail_on = \"none\"\n[image]\nname = \"deb\"\nversion = \"1\"\nsource_date_epoch = 1700000000\n\n\
             [debian]\nsuite = \"{SUITE}\"\nupdates = false\nsecurity = false\nvariant = \"essential\"\n\
             packages = [{}]\nkeyring = \"keyring.gpg\"\nmirror = \"{}\"\n{extra_recipe}",
            packages.join(", "),
            repo.url()
        ),
    )
    .unwrap();
    Setup {
        _tmp: tmp,
        keep: Vec::new(),
        dir,
        debs: files,
    }
}

fn build(dir: &Path, extra: &[&str]) -> Output {
    kiln()
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .args(["build", "r.toml", "-o", "out", "--compression", "none"])
        .args(extra)
        .output()
        .unwrap()
}

/// Every path below `root`: (type and mode, owner, content or link target).
fn snapshot(root: &Path) -> BTreeMap<String, (u32, u32, u32, String)> {
    let mut out = BTreeMap::new();
    for path in list_dir(root) {
        let host = root.join(&path);
        let meta = std::fs::symlink_metadata(&host).unwrap();
        let what = if meta.file_type().is_symlink() {
            std::fs::read_link(&host).unwrap().display().to_string()
        } else if meta.is_file() {
            String::from_utf8_lossy(&std::fs::read(&host).unwrap()).into_owned()
        } else {
            String::new()
        };
        out.insert(path, (meta.mode(), meta.uid(), meta.gid(), what));
    }
    out
}

fn extract(tar: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(tar)
            .arg("-C")
            .arg(dest),
    );
}

#[test]
#[ignore = "needs root"]
fn scriptless_packages_get_the_database_dpkg_writes() {
    require_root("dpkg --root as the oracle (chown)");
    let s = setup(&scriptless_debs(), &["app", "tool"]);
    let out = build(&s.dir, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        !output_text(&out).contains("configuring"),
        "nothing had to run in a chroot:\n{}",
        output_text(&out)
    );
    let image = s.dir.join("image");
    extract(&s.dir.join("out/deb-1.rootfs.tar"), &image);

    // The signed manifest lists what was installed, down to each .deb.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("out/deb-1.manifest.json")).unwrap())
            .unwrap();
    let expected: Vec<serde_json::Value> = [("app", "1.0-1", "amd64"), ("libfoo1", "2.0", "amd64"), ("tool", "3:0.1", "all")]
        .iter()
        .zip(&s.debs)
        .map(|((name, version, arch), deb)| {
            serde_json::json!({"name": name, "version": version, "arch": arch, "sha256": sha256_file(deb)})
        })
        .collect();
    assert_eq!(manifest["packages"], serde_json::Value::Array(expected));
    let inspect = run_ok(
        kiln()
            .arg("inspect")
            .arg(s.dir.join("out/deb-1.manifest.json")),
    );
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains("packages     3 Debian packages"),
        "{}",
        output_text(&inspect)
    );

    // The oracle: the host's dpkg installing the same .debs into an empty
    // root with the same merged-/usr skeleton.
    let oracle = s.dir.join("oracle");
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
    ] {
        std::fs::create_dir_all(oracle.join(dir)).unwrap();
    }
    std::fs::write(oracle.join("var/lib/dpkg/status"), "").unwrap();
    for link in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), oracle.join(link)).unwrap();
    }
    run_ok(
        Command::new("dpkg")
            .arg(format!("--root={}", oracle.display()))
            .args(["--log=/dev/null", "--force-unsafe-io", "--install"])
            .args(&s.debs),
    );

    let ours = snapshot(&image);
    let theirs = snapshot(&oracle);
    let status = "var/lib/dpkg/status";
    assert_eq!(
        ours[status].3, theirs[status].3,
        "the status file differs from dpkg's"
    );
    for (path, entry) in &theirs {
        // dpkg's own bookkeeping that is not part of a package's record.
        if path.ends_with("-old")
            || path.starts_with("var/lib/dpkg/triggers")
            || path.contains("lock")
        {
            continue;
        }
        assert_eq!(
            ours.get(path),
            Some(entry),
            "{path}: kiln's image differs from what dpkg installed"
        );
    }
    let extra: Vec<&str> = ours
        .keys()
        .filter(|p| !theirs.contains_key(*p))
        .map(String::as_str)
        .collect();
    // kiln records the native architecture, as mmdebstrap does, and
    // leaves an empty machine-id for systemd's first boot.
    assert_eq!(
        extra,
        ["etc/machine-id", "var/lib/dpkg/arch"],
        "paths only kiln has"
    );
}

fn with_postinst() -> Vec<Deb> {
    let mut debs = scriptless_debs();
    debs.push(Deb {
        name: "daemon",
        version: "1",
        files: vec![("/usr/sbin/daemond", "d\n")],
        control: vec![(
            "postinst",
            "#!/bin/sh\nset -e\necho configured > /etc/daemon.state\n",
        )],
        ..Deb::default()
    });
    debs
}

/// A package with a postinst and a stand-in dpkg: kiln gets as far as
/// configuring.
fn with_postinst_and_dpkg() -> Vec<Deb> {
    let mut debs = with_postinst();
    debs.push(Deb {
        name: "dpkg",
        version: "1.21",
        files: vec![("/usr/bin/dpkg", "#!/bin/sh\n")],
        ..Deb::default()
    });
    debs
}

/// No artifact, no manifest, no leftover work directory.
fn assert_no_output(dir: &Path) {
    let out = dir.join("out");
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a failed build left {left:?} in {}",
        out.display()
    );
}

#[test]
fn maintainer_scripts_without_dpkg_in_the_image_are_refused() {
    let s = setup(&with_postinst(), &["daemon", "tool"]);
    let out = build(&s.dir, &[]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains("packages daemon have maintainer scripts, which need dpkg in the image to run: add dpkg to [debian] packages"),
        "{text}"
    );
    assert_no_output(&s.dir);
}

#[test]
#[ignore = "needs root"]
fn configuring_without_root_is_refused_with_what_kiln_needs() {
    require_root("setpriv to an unprivileged user");
    let s = setup(&with_postinst_and_dpkg(), &["daemon", "dpkg"]);
    // The unprivileged user needs to reach the binary, the recipe and the
    // repository, and to write the output and the cache.
    let bin = s.dir.join("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &bin).unwrap();
    for dir in [s.dir.clone(), s.dir.join("out"), s.dir.join("cache")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["build", "r.toml", "-o", "out"])
        .current_dir(&s.dir)
        .env("XDG_CACHE_HOME", s.dir.join("cache"))
        .env("HOME", &s.dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains("installing Debian packages runs their maintainer scripts in a sandbox (a user namespace), which needs root or subordinate ids"),
        "{text}"
    );
    assert_no_output(&s.dir);
}

#[test]
fn packages_go_onto_a_base_that_has_a_dpkg_database() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    std::fs::create_dir_all(base.join("var/lib/dpkg/info")).unwrap();
    let record = "Package: zbase\nStatus: install ok installed\nPriority: required\n\
                Architecture: amd64\nVersion: 1\nDescription: from the base\n\n";
    std::fs::write(base.join("var/lib/dpkg/status"), record).unwrap();
    std::fs::write(base.join("var/lib/dpkg/info/zbase.list"), "/.\n").unwrap();
    let tar = tmp.path().join("base.tar");
    gnu_tar(&base, &tar);
    let s = setup_with(&scriptless_debs(), &["tool"], &base_table(&tar));
    let out = build(&s.dir, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let image = s.dir.join("image");
    extract(&s.dir.join("out/deb-1.rootfs.tar"), &image);
    let status = std::fs::read_to_string(image.join("var/lib/dpkg/status")).unwrap();
    let names: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .collect();
    assert_eq!(names, ["tool", "zbase"], "{status}");
    assert!(
        status.ends_with(record),
        "the base's record is kept as it was:\n{status}"
    );
    assert!(image.join("var/lib/dpkg/info/zbase.list").is_file());
}

#[test]
#[ignore = "needs root"]
fn root_without_cap_sys_admin_still_configures_and_without_cap_setuid_is_told_why_not() {
    require_root("capsh to drop a capability");
    // Scripts run as root of a user namespace, which needs no capability
    // of the host's but CAP_SETUID and CAP_SETGID to map its ids.
    let s = setup_on_host_tools("#!/bin/sh\nset -e\necho \"postinst $*\" >> /etc/kiln-test.log\n");
    let capsh = |drop: &str| {
        Command::new("capsh")
            .arg(format!("--drop={drop}"))
            .args(["--", "-c"])
            .arg(format!(
                "exec {} build r.toml -o out --compression none",
                env!("CARGO_BIN_EXE_kiln")
            ))
            .current_dir(&s.dir)
            .env("XDG_CACHE_HOME", s.dir.join("cache"))
            .output()
            .unwrap()
    };
    let out = capsh("cap_setuid");
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains("kiln runs as root but lacks CAP_SETUID or CAP_SETGID"),
        "{text}"
    );
    assert_no_output(&s.dir);
    let out = capsh("cap_sys_admin");
    assert!(out.status.success(), "{}", output_text(&out));
    let members = read_tar(&s.dir.join("out/deb-1.rootfs.tar"));
    assert!(
        String::from_utf8_lossy(&members["/etc/kiln-test.log"].1)
            .ends_with("postinst configure \n")
    );
}

/// A base tarball holding the build host's own sh, dpkg and the programs
/// dpkg insists on (with their libraries), on a merged /usr: enough for
/// kiln to configure packages from the test repository without network.
fn host_tools_base(dir: &Path) -> PathBuf {
    let base = dir.join("host-tools");
    sh(
        dir,
        &format!(
            r#"b={base}
            mkdir -p $b/usr/bin $b/usr/sbin $b/usr/lib $b/usr/lib64 $b/etc $b/tmp
            for d in bin sbin lib lib64; do ln -s usr/$d $b/$d; done
            for p in sh rm mv tar diff ldconfig start-stop-daemon dpkg dpkg-deb cat grep sleep chown; do
                src=$(command -v $p)
                cp -L "$src" "$b/usr/bin/$p"
                for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
                    mkdir -p "$b$(dirname "$lib")"
                    cp -L "$lib" "$b$lib"
                done
            done"#,
            base = base.display()
        ),
    );
    let tar = dir.join("host-tools.tar");
    gnu_tar(&base, &tar);
    tar
}

/// The recipe's `[base]` for the tarball `tar`.
fn base_table(tar: &Path) -> String {
    format!(
        "\n[base]\npath = \"{}\"\nsha256 = \"{}\"\n",
        tar.display(),
        sha256_file(tar)
    )
}

fn recorded_debs(postinst: &'static str) -> Vec<Deb> {
    let record = "#!/bin/sh\nset -e\n\
                  echo \"$DPKG_MAINTSCRIPT_NAME $* $DPKG_MAINTSCRIPT_PACKAGE $(cat /var/lib/dpkg/tmp.ci/control 2>/dev/null | grep ^Package:)\" >> /etc/kiln-test.log\n";
    vec![
        Deb {
            name: "daemon",
            version: "1",
            depends: "libdep",
            files: vec![("/usr/sbin/daemond", "d\n")],
            control: vec![("preinst", record), ("postinst", postinst)],
            ..Deb::default()
        },
        Deb {
            name: "libdep",
            version: "1",
            files: vec![("/usr/lib/libdep", "l\n")],
            control: vec![("preinst", record)],
            ..Deb::default()
        },
    ]
}

fn setup_on_host_tools(postinst: &'static str) -> Setup {
    let tools = tempfile::tempdir().unwrap();
    let tar = host_tools_base(tools.path());
    let mut s = setup_with(&recorded_debs(postinst), &["daemon"], &base_table(&tar));
    s.keep.push(tools);
    s
}

#[test]
#[ignore = "needs root"]
fn maintainer_scripts_run_as_dpkg_runs_them() {
    require_root("kiln's install stage (chroot)");
    let s = setup_on_host_tools(
        "#!/bin/sh\nset -e\necho \"postinst $* $DPKG_MAINTSCRIPT_PACKAGE\" >> /etc/kiln-test.log\n",
    );
    let out = build(&s.dir, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let image = s.dir.join("image");
    extract(&s.dir.join("out/deb-1.rootfs.tar"), &image);
    // Each preinst ran first, dependencies first, from tmp.ci beside its
    // control file; then dpkg configured the package.
    assert_eq!(
        std::fs::read_to_string(image.join("etc/kiln-test.log")).unwrap(),
        "preinst install libdep Package: libdep\n\
         preinst install daemon Package: daemon\n\
         postinst configure  daemon\n"
    );
    let status = std::fs::read_to_string(image.join("var/lib/dpkg/status")).unwrap();
    assert_eq!(
        status.matches("Status: install ok installed").count(),
        2,
        "{status}"
    );
    assert!(!image.join("var/lib/dpkg/tmp.ci").exists());
    assert!(
        !image.join("usr/sbin/policy-rc.d").exists(),
        "kiln's policy-rc.d stays out of the image"
    );
}

#[test]
#[ignore = "needs root"]
fn a_verbose_build_names_the_slowest_maintainer_scripts() {
    require_root("kiln's install stage (chroot)");
    let s = setup_on_host_tools("#!/bin/sh\nsleep 0.7\n");
    let quiet = build(&s.dir, &["--no-install-cache"]);
    assert!(quiet.status.success(), "{}", output_text(&quiet));
    assert!(!output_text(&quiet).contains("slowest steps"));
    let out = build(&s.dir, &["-v", "--no-install-cache"]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let profile: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("slowest steps:"))
        .skip(1)
        .take_while(|l| l.starts_with("kiln:   "))
        .collect();
    // the postinst that sleeps comes first, with its time
    let (seconds, what) = profile[0]
        .trim_start_matches("kiln:")
        .trim()
        .split_once("s  ")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(what, "daemon setting up", "{text}");
    let seconds: f64 = seconds.parse().unwrap();
    assert!((0.7..5.0).contains(&seconds), "{text}");
    // and the preinsts are there too
    for step in ["daemon preinst", "libdep preinst", "libdep setting up"] {
        assert!(profile.iter().any(|l| l.ends_with(step)), "{step}: {text}");
    }
}

#[test]
#[ignore = "needs root"]
fn a_failing_maintainer_script_stops_the_build_with_its_output() {
    require_root("kiln's install stage (chroot)");
    let s = setup_on_host_tools("#!/bin/sh\necho 'daemon: cannot work here' >&2\nexit 3\n");
    let out = build(&s.dir, &[]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(text.contains("configuring the packages failed"), "{text}");
    assert!(
        text.contains("daemon: cannot work here"),
        "the script's own words: {text}"
    );
    assert_no_output(&s.dir);
}

/// What differs from mmdebstrap's image of the scriptless set, and why.
const INTENDED_OFFLINE: &[(&str, &str)] = &[
    (
        "{/dev,/dev/**}",
        "mmdebstrap's tarball carries device nodes; kiln leaves /dev to the kernel's devtmpfs",
    ),
    (
        "{/etc/apt,/etc/apt/**}",
        "mmdebstrap writes its sources and options; kiln names no mirror in the image",
    ),
    (
        "/etc/{fstab,hostname,resolv.conf}",
        "mmdebstrap writes a placeholder fstab and copies the host's names",
    ),
    (
        "/etc/machine-id",
        "kiln leaves an empty machine-id for systemd's first boot",
    ),
    (
        "/{bin,sbin,lib,lib64}",
        "merged /usr: mmdebstrap's chrootless mode makes no links",
    ),
    (
        "/usr/{sbin,lib,lib64}",
        "merged /usr, as above (the directories the links point to)",
    ),
    ("/tmp", "mmdebstrap makes /tmp; no package here ships it"),
    (
        "{/var/cache,/var/cache/**,/var/lib/apt,/var/lib/apt/**,/var/log,/var/log/**}",
        "apt's state and logs: mmdebstrap runs apt, kiln never does",
    ),
    (
        "/var/lib/dpkg/{lock,lock-frontend,triggers/Lock,triggers/Unincorp}",
        "dpkg's locks and trigger queue: no dpkg ran in kiln's image",
    ),
    ("/var/lib/dpkg/*-old", "backups: kiln removes them"),
];

#[test]
#[ignore = "needs root"]
fn scriptless_set_matches_the_mmdebstrap_oracle() {
    require_root("mmdebstrap's chrootless mode runs dpkg --root as root");
    let s = setup(&scriptless_debs(), &["app", "tool"]);
    let out = build(&s.dir, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let oracle = s.dir.join("mmdebstrap.tar");
    run_ok(
        Command::new("mmdebstrap")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "--mode=chrootless",
                "--variant=custom",
                "--format=tar",
                "--quiet",
            ])
            .args(["--include=app,tool", SUITE])
            .arg(&oracle)
            .arg(format!(
                "deb [signed-by={}] copy://{} {SUITE} main",
                s.dir.join("keyring.gpg").display(),
                s.dir.join("repo").display()
            )),
    );
    compare_with_oracle(
        &read_tar(&s.dir.join("out/deb-1.rootfs.tar")),
        &read_tar(&oracle),
        INTENDED_OFFLINE,
        &[],
    );
}

/// Processes whose command line is exactly `words`.
fn processes_running(words: &[&str]) -> Vec<String> {
    let wanted: Vec<u8> = words
        .iter()
        .flat_map(|w| [w.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c == wanted))
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
#[ignore = "needs root"]
fn an_interrupted_configure_leaves_nothing_behind() {
    require_root("kiln's install stage (chroot)");
    // A postinst that would run for a long time; its marker file says it
    // has started, and a duration of this run's own tells its sleep from
    // any other.
    let seconds = format!("86.{}", std::process::id());
    let s = setup_on_host_tools(Box::leak(
        format!("#!/bin/sh\necho started > /etc/postinst-started\nexec sleep {seconds}\n")
            .into_boxed_str(),
    ));
    for (signal, code) in [(libc::SIGTERM, Some(143)), (libc::SIGKILL, None)] {
        let mut child = kiln()
            .current_dir(&s.dir)
            .env("XDG_CACHE_HOME", s.dir.join("cache"))
            .args(["build", "r.toml", "-o", "out"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // The image is in the sandbox's own tmpfs: the marker is seen
        // through the root of the script's process.
        let started = || {
            processes_running(&["sleep", &seconds])
                .iter()
                .any(|pid| Path::new(&format!("/proc/{pid}/root/etc/postinst-started")).exists())
        };
        while !started() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the build ended before the postinst ran"
            );
            assert!(Instant::now() < deadline, "the postinst never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(processes_running(&["sleep", &seconds]).len(), 1);
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        assert_eq!(child.wait().unwrap().code(), code, "signal {signal}");
        // The script dies with kiln, even when kiln could not clean up.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_running(&["sleep", &seconds]).is_empty() {
            assert!(
                Instant::now() < deadline,
                "signal {signal}: the postinst outlived kiln"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if signal == libc::SIGTERM {
            assert_no_output(&s.dir);
        }
    }
    // What SIGKILL left (the work directory with the exchange directory),
    // the next build removes before it starts; this one then stops at once.
    assert!(!list_dir(&s.dir.join("out")).is_empty());
    let out = build(&s.dir, &["--artifact", "none=/dev/null"]);
    assert!(!out.status.success());
    assert_no_output(&s.dir);
}

#[test]
fn a_tampered_install_cache_is_not_trusted() {
    let s = setup(&scriptless_debs(), &["app", "tool"]);
    let first = build(&s.dir, &[]);
    assert!(first.status.success(), "{}", output_text(&first));
    let image = s.dir.join("out/deb-1.rootfs.tar");
    let expected = sha256_file(&image);
    std::fs::remove_dir_all(s.dir.join("out")).unwrap();

    // The index names the cached tree's blob; change one byte of it.
    let index = s.dir.join("cache/kiln/installed");
    let entries: Vec<_> = std::fs::read_dir(&index).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "one installed tree is cached");
    let digest = std::fs::read_to_string(entries[0].path()).unwrap();
    let blob = s
        .dir
        .join("cache/kiln/sha256")
        .join(&digest[..2])
        .join(digest.trim());
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&blob, bytes).unwrap();

    let second = build(&s.dir, &[]);
    assert!(second.status.success(), "{}", output_text(&second));
    assert!(
        !output_text(&second).contains("from the install cache"),
        "a blob that no longer matches its digest was used"
    );
    assert_eq!(sha256_file(&image), expected);
    std::fs::remove_dir_all(s.dir.join("out")).unwrap();
    let third = build(&s.dir, &[]);
    assert!(
        output_text(&third).contains("from the install cache"),
        "the cache was not refilled:\n{}",
        output_text(&third)
    );
    assert_eq!(sha256_file(&image), expected);
}

#[test]
fn an_install_cache_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup(&scriptless_debs(), &["app", "tool"]);
    assert!(build(&s.dir, &[]).status.success());
    std::fs::remove_dir_all(s.dir.join("out")).unwrap();
    let index = s.dir.join("cache/kiln/installed");
    let entry = std::fs::read_dir(&index)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = build(&s.dir, &[]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains("is writable by another user, so an installed tree in it cannot be trusted"),
        "{text}"
    );
    assert_no_output(&s.dir);
    let out = build(&s.dir, &["--no-install-cache"]);
    assert!(out.status.success(), "{}", output_text(&out));
}

/// The blobs the unpack cache's index names, by index entry.
fn unpack_cache_blobs(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let index = dir.join("cache/kiln/unpacked");
    let mut entries: Vec<_> = std::fs::read_dir(&index)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|entry| {
            let digest = std::fs::read_to_string(&entry).unwrap();
            let digest = digest.trim();
            let blob = dir
                .join("cache/kiln/sha256")
                .join(&digest[..2])
                .join(digest);
            (entry, blob)
        })
        .collect()
}

#[test]
fn a_patch_rebuild_decompresses_only_what_it_has_not_before() {
    let s = setup(&scriptless_debs(), &["app", "tool"]);
    let first = build(&s.dir, &[]);
    assert!(first.status.success(), "{}", output_text(&first));
    let image = s.dir.join("out/deb-1.rootfs.tar");
    let expected = sha256_file(&image);
    let kept = unpack_cache_blobs(&s.dir);
    assert_eq!(kept.len(), 3, "app, libfoo1 and tool are kept decompressed");
    for (_, blob) in &kept {
        // A plain tar: what `tar` lists, not what xz or zstd would.
        run_ok(Command::new("tar").arg("-tf").arg(blob));
    }

    // A new lock misses the install cache; the packages it shares with
    // the one before are read plain, and the image is the same.
    let rebuild = |expect: &str| {
        std::fs::remove_dir_all(s.dir.join("out")).unwrap();
        std::fs::remove_dir_all(s.dir.join("cache/kiln/installed")).unwrap();
        let out = build(&s.dir, &[]);
        let text = output_text(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(expect), "expected {expect:?} in:\n{text}");
        assert_eq!(sha256_file(&image), expected, "the image changed");
    };
    assert!(!output_text(&first).contains("decompressed before"));
    rebuild("3 of them decompressed before");
    assert!(
        output_text(&build_again(&s.dir)).contains("from the install cache"),
        "a rebuild of the same lock still comes from the install cache"
    );
    rebuild("3 of them decompressed before");

    // A copy whose bytes changed is not used: that package is decompressed
    // again (and kept again), and the image is the same.
    let (_, blob) = &unpack_cache_blobs(&s.dir)[0];
    let mut bytes = std::fs::read(blob).unwrap();
    bytes[700] ^= 1;
    std::fs::write(blob, bytes).unwrap();
    rebuild("2 of them decompressed before");
    rebuild("3 of them decompressed before");

    // --no-install-cache trusts nothing in the cache: every package is
    // decompressed.
    std::fs::remove_dir_all(s.dir.join("out")).unwrap();
    let afresh = build(&s.dir, &["--no-install-cache"]);
    assert!(afresh.status.success(), "{}", output_text(&afresh));
    assert!(!output_text(&afresh).contains("decompressed before"));
    assert_eq!(sha256_file(&image), expected);
}

/// Builds once more into a fresh `out`.
fn build_again(dir: &Path) -> Output {
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    build(dir, &[])
}

#[test]
fn an_unpack_cache_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup(&scriptless_debs(), &["app", "tool"]);
    assert!(build(&s.dir, &[]).status.success());
    std::fs::remove_dir_all(s.dir.join("out")).unwrap();
    std::fs::remove_dir_all(s.dir.join("cache/kiln/installed")).unwrap();
    let (entry, _) = &unpack_cache_blobs(&s.dir)[0];
    std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = build(&s.dir, &[]);
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains(
            "is writable by another user, so the packages' contents in it cannot be trusted"
        ),
        "{text}"
    );
    assert_no_output(&s.dir);
    let out = build(&s.dir, &["--no-install-cache"]);
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
#[ignore = "needs root"]
fn without_root_a_user_namespace_with_subordinate_ids_configures() {
    require_root("making an unprivileged user with subordinate ids for the test");
    assert!(
        Command::new("newuidmap").arg("--help").output().is_ok(),
        "newuidmap is missing: apt-get install uidmap"
    );
    // The postinst gives its file to another user: the image's ids must
    // come back as the image's, not the subordinate ids on the host.
    let s = setup_on_host_tools(
        "#!/bin/sh\nset -e\necho \"postinst $*\" >> /etc/kiln-test.log\nchown 101:102 /etc/kiln-test.log\n",
    );
    // nobody (65534) builds: it reaches the directories, runs its own
    // copy of kiln, and /etc/subuid and /etc/subgid grant it 65536 ids
    // (bind-mounted over the host's in a private mount namespace).
    std::fs::set_permissions(s.keep[0].path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The lockfile goes beside the recipe.
    for dir in [s.dir.clone(), s.dir.join("out"), s.dir.join("cache")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let bin = s.dir.join("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &bin).unwrap();
    std::fs::write(s.dir.join("subids"), "nobody:200000:65536\n").unwrap();
    for file in ["/etc/subuid", "/etc/subgid"] {
        if !Path::new(file).exists() {
            std::fs::write(file, "").unwrap(); // what shadow's tools start from
        }
    }
    let script = format!(
        "mount --bind subids /etc/subuid && mount --bind subids /etc/subgid && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups \
         env HOME={dir} XDG_CACHE_HOME={dir}/cache {bin} build r.toml -o out --compression none",
        dir = s.dir.display(),
        bin = bin.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir(&s.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out)
            .contains("in a user namespace, image ids 1-65535 as subordinate uids from 200000"),
        "{}",
        output_text(&out)
    );
    let members = read_tar(&s.dir.join("out/deb-1.rootfs.tar"));
    let log = &members["/etc/kiln-test.log"];
    assert_eq!((log.0.uid, log.0.gid), (101, 102), "the image's own ids");
    assert_eq!(
        String::from_utf8_lossy(&log.1),
        "preinst install libdep Package: libdep\npreinst install daemon Package: daemon\npostinst configure \n"
    );
    assert!(
        members
            .values()
            .all(|(m, _)| m.uid < 65536 && m.gid < 65536)
    );
    // Nothing is left that nobody could not remove.
    let left: Vec<String> = list_dir(&s.dir.join("out"));
    assert_eq!(
        left,
        [
            "deb-1.cdx.json",
            "deb-1.manifest.json",
            "deb-1.rootfs.tar",
            "deb-1.spdx.json"
        ],
        "the work directory is gone"
    );
}
