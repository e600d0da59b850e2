use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINoL8KcSkkmZ54pGBi0A2pLlefZ8xLrR82trLPWJSQ0t ops@test";

fn read(text: &str) -> Result<Provision, Refusals> {
    let mut out = Provision::default();
    user_data(text.as_bytes(), &mut out).map(|()| out)
}

#[test]
fn the_supported_subset() {
    let text = format!(
        "#cloud-config\nhostname: Node-7\nssh_authorized_keys:\n  - {KEY}\nusers:\n  - default\n  - name: ops\n    ssh_authorized_keys: [\"{KEY}\"]\nwrite_files:\n  - path: {TOKEN_PATH}\n    content: K10abc::server:secret\n    permissions: '0600'\n  - path: {KILN_FILE}\n    encoding: b64\n    content: {}\nkiln:\n  node_taints: [\"gpu=true:NoSchedule\"]\n",
        base64::engine::general_purpose::STANDARD
            .encode("node_labels: [zone=a, example.com/rack=r1]\n"),
    );
    let p = read(&text).unwrap();
    assert_eq!(p.hostname.as_deref(), Some("node-7"));
    assert_eq!(p.token.as_deref(), Some(&b"K10abc::server:secret"[..]));
    assert_eq!(p.keys[&None], vec![KEY.to_string()]);
    assert_eq!(p.keys[&Some("ops".into())], vec![KEY.to_string()]);
    assert_eq!(p.node_labels, ["zone=a", "example.com/rack=r1"]);
    assert_eq!(p.node_taints, ["gpu=true:NoSchedule"]);
    let summary = p.to_string();
    assert!(!summary.contains("secret"), "{summary}");
    assert!(summary.contains("the join token"), "{summary}");
}

#[test]
fn anything_else_is_refused_and_named() {
    for (text, says) in [
        ("#!/bin/sh\nrm -rf /\n", "must start with #cloud-config"),
        (
            "#cloud-config\nruncmd: [\"reboot\"]\n",
            "\"runcmd\" is not supported",
        ),
        (
            "#cloud-config\nbootcmd: [x]\npackages: [y]\n",
            "\"bootcmd\"",
        ),
        (
            "#cloud-config\nwrite_files:\n  - path: /etc/shadow\n    content: x\n",
            "\"/etc/shadow\" is not a path",
        ),
        (
            "#cloud-config\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token\n    content: \"\\n\"\n",
            "empty",
        ),
        (
            "#cloud-config\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token\n    content: a\n    append: true\n",
            "\"append\"",
        ),
        (
            "#cloud-config\nusers:\n  - name: ops\n    sudo: ALL=(ALL) NOPASSWD:ALL\n",
            "\"sudo\" is not supported",
        ),
        (
            "#cloud-config\nusers:\n  - name: \"../root\"\n",
            "not a user name",
        ),
        (
            "#cloud-config\nssh_authorized_keys: [\"command=\\\"sh\\\" ssh-ed25519 AAAA\"]\n",
            "not a public key type",
        ),
        (
            "#cloud-config\nssh_authorized_keys: [\"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAINoL8KcSkkmZ54pGBi0A2pLlefZ8xLrR82trLPWJSQ0t\"]\n",
            "does not match its type",
        ),
        (
            "#cloud-config\nhostname: \"bad_host\"\n",
            "not a valid host name",
        ),
        (
            "#cloud-config\nkiln:\n  node_labels: [\"=x\"]\n",
            "not a valid Kubernetes label",
        ),
        (
            "#cloud-config\nkiln:\n  node_taints: [\"a=b:Sometimes\"]\n",
            "node taint",
        ),
        (
            "#cloud-config\nkiln:\n  run: yes\n",
            "\"run\" is not a provisioning setting",
        ),
        ("#cloud-config\na: &x 1\n", "anchors"),
    ] {
        let err = read(text).unwrap_err().join("\n");
        assert!(err.contains(says), "{text:?}: {err}");
    }
    let huge = format!("#cloud-config\nhostname: a\n#{}\n", "x".repeat(MAX_INPUT));
    assert!(read(&huge).unwrap_err()[0].contains("at most"));
    let all = read("#cloud-config\nruncmd: [a]\nhostname: ok\nbootcmd: [b]\n").unwrap_err();
    assert_eq!(all.len(), 2, "every refusal is reported: {all:?}");
}

#[test]
fn meta_data_gives_the_hostname() {
    let mut p = Provision::default();
    meta_data(b"instance-id: iid-1\nlocal-hostname: edge-3\n", &mut p).unwrap();
    assert_eq!(p.hostname.as_deref(), Some("edge-3"));
    assert!(meta_data(b"local-hostname: \"a b\"\n", &mut p).is_err());
}

#[test]
fn labels_and_taints_follow_kubernetes() {
    for good in ["a=b", "example.com/x=y", "a=", "a_b.c-d=E.f"] {
        assert!(check_label(good).is_ok(), "{good}");
    }
    for bad in [
        "a",
        "-a=b",
        "a=b c",
        "ex ample.com/x=y",
        &format!("{}=x", "a".repeat(64)),
    ] {
        assert!(check_label(bad).is_err(), "{bad}");
    }
    for good in ["a=b:NoSchedule", "a:NoExecute", "x/y=z:PreferNoSchedule"] {
        assert!(check_taint(good).is_ok(), "{good}");
    }
    for bad in ["a=b", "a=b:", ":NoSchedule", "a b:NoSchedule"] {
        assert!(check_taint(bad).is_err(), "{bad}");
    }
}
