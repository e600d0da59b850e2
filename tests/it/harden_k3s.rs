//! `[k3s]` and `[sysctl]`: the agent's config.yaml read by a real YAML
//! parser (python3-yaml) holds every value of the K3s hardening guide;
//! a kubelet argument that weakens one fails the build naming the rule,
//! unless waived; the unit refuses to start without a provisioned token;
//! sysctl overrides cannot break the kubelet or K3s networking.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

fn recipe(dir: &Path, k3s: &str, rest: &str) {
    std::fs::write(
        dir.join("r.toml"),
        format!(
            r##"[image]
name = "agent"
version = "1"

[[file]]
dest = "/usr/local/bin/k3s"
content = "#!/bin/sh\n"
mode = "0755"

[k3s]
server = "https://k3s.example.internal:6443"
servers = ["192.0.2.10/32"]
node_cidrs = ["192.0.2.0/24"]
{k3s}
{rest}

# a partial test image: the audit reports only
[audit]
fail_on = "none"
"##
        ),
    )
    .unwrap();
}

fn build(dir: &Path) -> std::path::PathBuf {
    let out = run_ok(
        kiln()
            .current_dir(dir)
            .args(["build", "r.toml", "-o", "dist"]),
    );
    std::fs::write(dir.join("build.log"), &out.stderr).unwrap();
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    run_ok(
        Command::new("tar")
            .args([
                "--zstd",
                "--numeric-owner",
                "-xpf",
                "dist/agent-1.rootfs.tar.zst",
                "-C",
                "root",
            ])
            .current_dir(dir),
    );
    root
}

fn fails(dir: &Path) -> String {
    let out = kiln()
        .current_dir(dir)
        .args(["build", "r.toml", "-o", "dist"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(!dir.join("dist/agent-1.rootfs.tar.zst").exists());
    stderr
}

/// The YAML file as JSON, through PyYAML.
fn yaml(path: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
            .arg(path),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[ignore = "needs root"]
fn config_yaml_holds_the_hardening_guide() {
    // the file's owner, as tar extracts it
    require_root("config_yaml_holds_the_hardening_guide");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "kubelet_args = [\"pod-max-pids=2048\", \"--max-pods=200\"]\nnode_labels = [\"role=worker\", \"zone=a\"]\nkube_proxy_args = [\"metrics-bind-address=127.0.0.1:10249\"]\n",
        "",
    );
    let root = build(w);
    let path = root.join("etc/rancher/k3s/config.yaml");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o600, 0, 0)
    );
    let config = yaml(&path);
    assert_eq!(config["protect-kernel-defaults"], serde_json::json!(true));
    assert_eq!(config["server"], "https://k3s.example.internal:6443");
    assert_eq!(config["token-file"], "/var/lib/rancher/k3s/agent-token");
    for key in ["token", "agent-token"] {
        assert!(config.get(key).is_none(), "{key} baked: {config}");
    }
    // the kubelet's settings are a KubeletConfiguration drop-in; kubelet-arg
    // only names its directory (both recipe arguments have a field)
    assert_eq!(
        config["kubelet-arg"],
        serde_json::json!(["config-dir=/etc/rancher/k3s/kubelet.conf.d"])
    );
    let dropin_path = root.join("etc/rancher/k3s/kubelet.conf.d/50-kiln-hardening.conf");
    let meta = std::fs::metadata(&dropin_path).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o600, 0, 0)
    );
    let dropin = yaml(&dropin_path);
    assert_strict_kubelet_configuration(&dropin);
    assert_eq!(dropin["podPidsLimit"], 2048);
    assert_eq!(dropin["maxPods"], 200);
    assert_eq!(dropin["authentication"]["anonymous"]["enabled"], false);
    assert_eq!(dropin["authorization"]["mode"], "Webhook");
    assert_eq!(dropin["readOnlyPort"], 0);
    assert_eq!(dropin["seccompDefault"], true);
    assert_eq!(dropin["makeIPTablesUtilChains"], true);
    assert_eq!(dropin["protectKernelDefaults"], true);
    assert_eq!(
        dropin["tlsCipherSuites"],
        serde_json::json!([
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"
        ])
    );
    // a stand-in binary: the release is unknown, the newest assumed, and
    // the kubelet's streaming timeout (no effect since 1.34) is left out
    assert!(dropin.get("streamingConnectionIdleTimeout").is_none());
    assert!(!root.join("usr/lib/kiln/k3s-version").exists());
    assert_eq!(
        config["node-label"],
        serde_json::json!(["role=worker", "zone=a"])
    );
    assert_eq!(
        config["kube-proxy-arg"],
        serde_json::json!(["metrics-bind-address=127.0.0.1:10249"])
    );

    // the kubelet's kernel settings and the modules K3s needs
    let sysctl = std::fs::read_to_string(root.join("etc/sysctl.d/90-kubelet.conf")).unwrap();
    for line in [
        "vm.panic_on_oom = 0",
        "vm.overcommit_memory = 1",
        "kernel.panic = 10",
        "kernel.panic_on_oops = 1",
        "kernel.keys.root_maxkeys = 1000000",
        "kernel.keys.root_maxbytes = 25000000",
    ] {
        assert!(sysctl.lines().any(|l| l == line), "{line}:\n{sysctl}");
    }
    let hardening =
        std::fs::read_to_string(root.join("etc/sysctl.d/99-zz-kiln-hardening.conf")).unwrap();
    assert!(
        hardening.contains("\nnet.ipv4.ip_forward = 1\n"),
        "{hardening}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/modules-load.d/kiln.conf")).unwrap(),
        "# Written by kiln: kernel modules loaded at boot.\noverlay\nbr_netfilter\n"
    );
    for tool in ["kubectl", "crictl", "ctr"] {
        assert_eq!(
            std::fs::read_link(root.join("usr/local/bin").join(tool)).unwrap(),
            Path::new("k3s")
        );
    }
    assert_eq!(
        std::fs::read_link(
            root.join("etc/systemd/system/multi-user.target.wants/k3s-agent.service")
        )
        .unwrap(),
        Path::new("/etc/systemd/system/k3s-agent.service")
    );
}

#[test]
fn the_agent_refuses_to_start_without_a_provisioned_token() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, "", "");
    let root = build(w);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/k3s-agent.service")).unwrap();
    assert!(
        !unit.contains("K3S_TOKEN") && !unit.contains("--token "),
        "{unit}"
    );
    let check = unit
        .lines()
        .filter(|l| l.contains("no join token"))
        .find_map(|l| l.strip_prefix("ExecStartPre=/bin/sh -c '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the token check")
        // systemd turns $$ into $
        .replace("$$", "$")
        .replace(
            "/var/lib/rancher/k3s/agent-token",
            &w.join("token").display().to_string(),
        );
    let missing = Command::new("sh").arg("-c").arg(&check).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("k3s-agent: no join token at"),
        "{missing:?}"
    );
    std::fs::write(w.join("token"), "").unwrap();
    let empty = Command::new("sh").arg("-c").arg(&check).output().unwrap();
    assert_eq!(
        empty.status.code(),
        Some(1),
        "an empty token file is no token"
    );
    // K3s trims the token and stops with "--token is required" when nothing
    // is left: so does the check, with its own message
    for blank in ["\n", " \t\n\n", "   "] {
        std::fs::write(w.join("token"), blank).unwrap();
        let out = Command::new("sh").arg("-c").arg(&check).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{blank:?} is no token");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("k3s-agent: no join token at") && stderr.contains("only whitespace"),
            "{stderr}"
        );
    }
    std::fs::write(w.join("token"), "K10secret::server:abc\n").unwrap();
    let present = Command::new("sh").arg("-c").arg(&check).output().unwrap();
    assert_eq!(present.status.code(), Some(0), "{present:?}");
    // the first ExecStartPre is the check, ExecStart the agent itself
    assert!(
        unit.contains("ExecStart=/usr/local/bin/k3s agent\n"),
        "{unit}"
    );
}

#[test]
fn weakening_the_kubelet_fails_naming_the_rule_unless_waived() {
    for (arg, rule, col) in [
        ("anonymous-auth=true", "k3s.anonymous-auth", 17),
        (
            "streaming-connection-idle-timeout=4h",
            "k3s.streaming-timeout",
            17,
        ),
        (
            "tls-cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA",
            "k3s.tls-ciphers",
            17,
        ),
        ("--read-only-port=10255", "k3s.read-only-port", 17),
        ("seccomp-default=false", "k3s.seccomp-default", 17),
    ] {
        let work = tempfile::tempdir().unwrap();
        recipe(work.path(), &format!("kubelet_args = [\"{arg}\"]\n"), "");
        let stderr = fails(work.path());
        assert!(
            stderr.contains(&format!("r.toml:14:{col}: kubelet_args \""))
                && stderr.contains(&format!("({rule}:")),
            "{arg}: {stderr}"
        );
    }
    let work = tempfile::tempdir().unwrap();
    recipe(
        work.path(),
        "kube_proxy_args = [\"metrics-bind-address=0.0.0.0:10249\"]\n",
        "",
    );
    assert!(fails(work.path()).contains("k3s.proxy-metrics"));
    let work = tempfile::tempdir().unwrap();
    recipe(
        work.path(),
        "kubelet_args = [\"streaming-connection-idle-timeout=30m\"]\nwaive = [{ rule = \"k3s.streaming-timeuot\", reason = \"x\" }]\n",
        "",
    );
    assert!(fails(work.path()).contains(
        "unknown rule \"k3s.streaming-timeuot\", did you mean \"k3s.streaming-timeout\"?"
    ));

    // waived, it still has no effect on the K3s this image may run (a
    // stand-in binary: the newest behaviour): the build says so
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "kubelet_args = [\"streaming-connection-idle-timeout=30m\"]\nwaive = [{ rule = \"k3s.streaming-timeout\", reason = \"long kubectl exec sessions for the data team\" }]\n",
        "",
    );
    let stderr = fails(w);
    assert!(
        stderr.contains("streaming-connection-idle-timeout has had no effect since kubelet 1.34"),
        "{stderr}"
    );

    // a waived weakening with a configuration field: built into the
    // drop-in, and the log says what was weakened and why
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "kubelet_args = [\"seccomp-default=false\"]\nwaive = [{ rule = \"k3s.seccomp-default\", reason = \"a legacy workload needs unconfined syscalls\" }]\n",
        "",
    );
    let root = build(w);
    let log = std::fs::read_to_string(w.join("build.log")).unwrap();
    assert!(
        log.contains("seccomp-default=false (k3s.seccomp-default waived: a legacy workload"),
        "{log}"
    );
    let dropin =
        std::fs::read_to_string(root.join("etc/rancher/k3s/kubelet.conf.d/50-kiln-hardening.conf"))
            .unwrap();
    let dropin = kiln_policy::kubelet::parse(&dropin).unwrap();
    assert_eq!(dropin["seccompDefault"], false);
}

#[test]
fn sysctl_overrides_cannot_break_the_kubelet_or_weaken_silently() {
    for (line, expected) in [
        (
            "vm.overcommit_memory = 0",
            "r.toml:16:1: sysctl vm.overcommit_memory = 0: the kubelet (protect-kernel-defaults, rule k3s.sysctl-file) refuses to start unless it is 1",
        ),
        (
            "\"net.ipv4.ip_forward\" = 0",
            "sysctl net.ipv4.ip_forward = 0 turns off forwarding, which K3s networking needs (rule k3s.forwarding)",
        ),
        (
            "kernel.sysrq = 1",
            "sysctl kernel.sysrq = 1 weakens kiln's hardened value (kiln sets 0)",
        ),
        (
            "kernel.yama.ptrace_scope = 0",
            "kernel.yama.ptrace_scope = 0 weakens",
        ),
        (
            "net.core.somaxconn = true",
            "write 1 (kernel parameters are numbers)",
        ),
    ] {
        let work = tempfile::tempdir().unwrap();
        recipe(work.path(), "", &format!("[sysctl]\n{line}\n"));
        let stderr = fails(work.path());
        assert!(stderr.contains(expected), "{line}: {stderr}");
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "",
        "[sysctl]\nkernel.yama.ptrace_scope = 2\n\"net.core.somaxconn\" = 4096\nkernel.sysrq = 176\nallow_weaker = \"the console team needs SysRq sync and reboot\"\n",
    );
    let root = build(w);
    let text =
        std::fs::read_to_string(root.join("etc/sysctl.d/99-zz-kiln-hardening.conf")).unwrap();
    for line in [
        "kernel.yama.ptrace_scope = 2",
        "net.core.somaxconn = 4096",
        "kernel.sysrq = 176",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
    }
}

/// sysctl.d files apply by file name, whatever their directory: procps's
/// /usr/lib/sysctl.d/99-protect-links.conf (fs.protected_fifos = 1) used
/// to override the recipe's value in kiln's 91-kiln-hardening.conf. Now
/// kiln's file is read after it; and a file named after kiln's, which does
/// override a recipe value, fails sys.kiln-effective naming it.
#[test]
fn package_sysctl_files_cannot_silently_override_the_recipe() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(
        w,
        "",
        r#"[[file]]
dest = "/usr/lib/sysctl.d/99-protect-links.conf"
content = "fs.protected_fifos = 1\nfs.protected_regular = 2\n"

[[file]]
dest = "/usr/lib/sysctl.d/99-zzz-late.conf"
content = "net.core.somaxconn = 128\n"

[sysctl]
fs.protected_fifos = 2
"net.core.somaxconn" = 4096
"#,
    );
    let root = build(w);
    assert!(!root.join("etc/sysctl.d/91-kiln-hardening.conf").exists());
    let out = kiln()
        .current_dir(w)
        .args([
            "audit",
            "dist/agent-1.rootfs.tar.zst",
            "--fail-on",
            "none",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "sys.kiln-effective")
        .unwrap();
    assert_eq!(rule["status"], "fail", "{rule:#}");
    let findings = rule["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "only the later file wins: {rule:#}");
    assert_eq!(findings[0]["path"], "/usr/lib/sysctl.d/99-zzz-late.conf");
    assert_eq!(findings[0]["line"], 1);
    assert_eq!(findings[0]["value"], "net.core.somaxconn = 128");
    let message = findings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("net.core.somaxconn = 4096 (/etc/sysctl.d/99-zz-kiln-hardening.conf:"),
        "{message}"
    );
}

/// The same recipe built in another directory, with another umask, time
/// zone, locale and wall clock gives the same bytes.
#[test]
fn the_same_recipe_gives_the_same_image() {
    let work = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for (dir, conditions) in ["a", "elsewhere/deeper/b"].into_iter().zip(&CONDITIONS) {
        let w = work.path().join(dir);
        std::fs::create_dir_all(&w).unwrap();
        recipe(
            &w,
            "",
            "[[group]]\nname = \"ssh-users\"\nsystem = true\n[[user]]\nname = \"ops\"\ngroups = [\"ssh-users\"]\n[[user]]\nname = \"svc\"\nsystem = true\n",
        );
        // the conditions do reach the build: its clock and umask
        let seen = run_ok(under(conditions, "sh").args(["-c", "date +%Y; umask"]));
        assert_eq!(
            String::from_utf8_lossy(&seen.stdout),
            format!("{}\n0{}\n", &conditions.clock[..4], conditions.umask)
        );
        run_ok(
            kiln_under(conditions)
                .current_dir(&w)
                .args(["build", "r.toml", "-o", "dist"]),
        );
        digests.push(sha256_file(&w.join("dist/agent-1.rootfs.tar.zst")));
        let passwd = run_ok(
            Command::new("tar")
                .args([
                    "--zstd",
                    "-xOf",
                    "dist/agent-1.rootfs.tar.zst",
                    "./etc/passwd",
                ])
                .current_dir(&w),
        );
        assert_eq!(
            String::from_utf8_lossy(&passwd.stdout),
            "root:x:0:0:root:/root:/usr/sbin/nologin\nops:x:1000:1000::/home/ops:/bin/bash\nsvc:x:999:998::/nonexistent:/usr/sbin/nologin\n"
        );
    }
    assert_eq!(digests[0], digests[1]);
}

/// The KubeletConfiguration v1beta1 schema, from tests/data/kubelet (its
/// header names the Kubernetes source): struct → field → type.
fn kubelet_schema() -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>
{
    let text =
        std::fs::read_to_string(repo_root().join("tests/data/kubelet/v1beta1-fields.txt")).unwrap();
    let mut schema: std::collections::BTreeMap<_, std::collections::BTreeMap<_, _>> =
        Default::default();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        schema
            .entry(words[0].to_owned())
            .or_default()
            .insert(words[1].to_owned(), words[2].to_owned());
    }
    schema
}

/// Checks a configuration strictly: every key is a field of its struct
/// (unknown fields refused, as `kubelet --config` with strict decoding
/// does), every value of the field's type, no deprecated field.
fn assert_strict_kubelet_configuration(config: &serde_json::Value) {
    let schema = kubelet_schema();
    assert_eq!(config["apiVersion"], "kubelet.config.k8s.io/v1beta1");
    assert_eq!(config["kind"], "KubeletConfiguration");
    fn check(
        schema: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
        strukt: &str,
        value: &serde_json::Value,
        at: &str,
    ) {
        let fields = &schema[strukt];
        let map = value
            .as_object()
            .unwrap_or_else(|| panic!("{at}: not a map"));
        for (key, v) in map {
            let path = format!("{at}{key}");
            let ty = fields
                .get(key)
                .unwrap_or_else(|| panic!("{path}: unknown field of {strukt}"));
            let ok = match ty.as_str() {
                "bool" => v.is_boolean(),
                "int" => v.is_i64() || v.is_u64(),
                "float" => v.is_number(),
                "string" => v.is_string(),
                "duration" => v
                    .as_str()
                    .is_some_and(|d| kiln_policy::k3s::go_duration_seconds(d).is_some()),
                "[]string" => v
                    .as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string)),
                "[]int" => v
                    .as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_i64)),
                "map[string]string" => v
                    .as_object()
                    .is_some_and(|m| m.values().all(serde_json::Value::is_string)),
                "map[string]bool" => v
                    .as_object()
                    .is_some_and(|m| m.values().all(serde_json::Value::is_boolean)),
                "map[string][]string" | "opaque" => true,
                other => {
                    let inner = other.strip_prefix("struct:").expect("a known type");
                    check(schema, inner, v, &format!("{path}."));
                    true
                }
            };
            assert!(ok, "{path}: {v} is not a {ty}");
        }
    }
    check(&schema, "KubeletConfiguration", config, "");
    let text =
        std::fs::read_to_string(repo_root().join("tests/data/kubelet/v1beta1-fields.txt")).unwrap();
    for line in text.lines().filter(|l| l.ends_with(" deprecated")) {
        let field = line.split_whitespace().nth(1).unwrap();
        assert!(config.get(field).is_none(), "{field} has no effect");
    }
}

/// kiln's drop-in, for every K3s release and recipe argument it renders
/// differently, is a KubeletConfiguration the v1beta1 schema accepts; a
/// made-up field is refused (the checker is strict).
#[test]
fn the_kubelet_dropin_is_strict_v1beta1() {
    use kiln_policy::kubelet::{K3sVersion, hardened_dropin, parse, render_dropin};
    let args: Vec<(String, String)> = [
        ("pod-max-pids", "2048"),
        ("max-pods", "200"),
        ("address", "127.0.0.1"),
        ("feature-gates", "RotateKubeletServerCertificate=true"),
        ("event-qps", "0"),
        ("tls-min-version", "VersionTLS12"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for version in [None, K3sVersion::find("v1.36.4+k3s1")] {
        for args in [&[][..], &args[..]] {
            let text = render_dropin(&hardened_dropin(version, args));
            assert_strict_kubelet_configuration(&parse(&text).unwrap());
        }
    }
    // before 1.34 the kubelet's own timeout still applies, and is set
    let old = hardened_dropin(K3sVersion::find("v1.33.5+k3s1"), &[]);
    assert_eq!(old["streamingConnectionIdleTimeout"], "5m");
    let mut wrong = hardened_dropin(None, &[]);
    wrong["streamingConnectionIdelTimeout"] = serde_json::json!("5m");
    let refused = std::panic::catch_unwind(|| assert_strict_kubelet_configuration(&wrong));
    assert!(refused.is_err(), "an unknown field must be refused");
    let mut mistyped = hardened_dropin(None, &[]);
    mistyped["authentication"]["anonymous"]["enabled"] = serde_json::json!("false");
    assert!(std::panic::catch_unwind(|| assert_strict_kubelet_configuration(&mistyped)).is_err());
}

/// The image holds kiln's containerd import (TOML, the timeout, K3s's
/// streaming server settings restated), and the unit installs it where
/// K3s's base configuration imports from, at every start.
#[test]
fn containerd_gets_the_stream_idle_timeout() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    recipe(w, "", "");
    let root = build(w);
    let text =
        std::fs::read_to_string(root.join("etc/rancher/k3s/containerd/50-kiln-cri.toml")).unwrap();
    let toml: toml::Table = text.parse().unwrap();
    assert_eq!(toml["version"].as_integer(), Some(3));
    let cri = toml["plugins"]["io.containerd.grpc.v1.cri"]
        .as_table()
        .unwrap();
    assert_eq!(cri["stream_idle_timeout"].as_str(), Some("5m"));
    assert_eq!(cri["stream_server_address"].as_str(), Some("127.0.0.1"));
    assert_eq!(cri["stream_server_port"].as_str(), Some("10010"));
    assert_eq!(cri.len(), 3, "{cri:?}");
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/k3s-agent.service")).unwrap();
    let install = unit
        .lines()
        .find(|l| l.contains("/install "))
        .expect("the install line");
    assert_eq!(
        install,
        "ExecStartPre=/usr/bin/install -D -m 0600 /etc/rancher/k3s/containerd/50-kiln-cri.toml /var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d/50-kiln-cri.toml"
    );
    // the install command itself, run against a temporary K3s directory
    let dest = w.join("state/config-v3.toml.d/50-kiln-cri.toml");
    let command = install
        .trim_start_matches("ExecStartPre=")
        .replace(
            "/etc/rancher/k3s/containerd/50-kiln-cri.toml",
            &root
                .join("etc/rancher/k3s/containerd/50-kiln-cri.toml")
                .display()
                .to_string(),
        )
        .replace(
            "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d/50-kiln-cri.toml",
            &dest.display().to_string(),
        );
    run_ok(Command::new("sh").arg("-c").arg(&command));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), text);
}
