//! `kiln-node provision`, the program kiln puts into images that boot,
//! run against a node's root in a temporary directory: a NoCloud seed, a
//! URL from the kernel command line and an EC2-style metadata service
//! (IMDSv2: token first) on loopback; hostile user-data writes nothing.

use crate::common::http::Server;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

pub(super) const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINoL8KcSkkmZ54pGBi0A2pLlefZ8xLrR82trLPWJSQ0t ops@test";

/// A node root with two login users and a system one.
fn node_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\nops:x:1000:1000::/home/ops:/bin/bash\ndev:x:1001:1001::/home/dev:/bin/bash\n",
    )
    .unwrap();
    root
}

fn provision(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln-node"))
        .arg("provision")
        .arg("--root")
        .arg(root)
        .args(["--dmi", "/nonexistent", "--labels", "/nonexistent"])
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const USER_DATA: &str = "#cloud-config
hostname: edge-7
ssh_authorized_keys:
  - KEY
users:
  - default
  - name: dev
    ssh_authorized_keys: [\"KEY\"]
write_files:
  - path: /var/lib/rancher/k3s/agent-token
    content: \"K10secret::server:pass\\n\"
    permissions: '0644'
kiln:
  node_labels: [\"zone=a\"]
  node_taints: [\"gpu=true:NoSchedule\"]
";

#[test]
fn a_nocloud_seed_provisions_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let root = node_root(dir.path());
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).unwrap();
    std::fs::write(
        seed.join("meta-data"),
        "instance-id: i-1\nlocal-hostname: meta-name\n",
    )
    .unwrap();
    std::fs::write(seed.join("user-data"), USER_DATA.replace("KEY", KEY)).unwrap();
    let out = provision(&root, &["--seed", seed.to_str().unwrap()]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains("K10secret"),
        "the token is never logged: {log}"
    );
    let token = root.join("var/lib/rancher/k3s/agent-token");
    assert_eq!(std::fs::read(&token).unwrap(), b"K10secret::server:pass\n");
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600,
        "the token is 0600 whatever user-data asks"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kiln/hostname")).unwrap(),
        "edge-7\n",
        "user-data's hostname wins over meta-data's"
    );
    for user in ["ops", "dev"] {
        let keys =
            std::fs::read_to_string(root.join("var/lib/kiln/authorized_keys").join(user)).unwrap();
        assert!(keys.contains(KEY), "{user}: {keys}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kiln/k3s-agent.env")).unwrap(),
        "KILN_K3S_ARGS=--node-label=zone=a --node-taint=gpu=true:NoSchedule\n"
    );

    // Re-provisioning replaces: dev's keys go, the token rotates.
    std::fs::write(
        seed.join("user-data"),
        "#cloud-config\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token\n    content: K10rotated\n",
    )
    .unwrap();
    let out = provision(&root, &["--seed", seed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&token).unwrap(), b"K10rotated");
    assert!(!root.join("var/lib/kiln/authorized_keys/dev").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kiln/k3s-agent.env")).unwrap(),
        "KILN_K3S_ARGS=\n"
    );
}

#[test]
fn hostile_user_data_writes_nothing_and_says_why() {
    let huge = format!("#cloud-config\n#{}\n", "x".repeat(70 * 1024));
    let cases: &[(&str, &str)] = &[
        (
            "#!/bin/sh\ntouch /tmp/pwned\n",
            "must start with #cloud-config",
        ),
        (
            "#cloud-config\nhostname: ok\nruncmd: [\"touch /tmp/pwned\"]\n",
            "\"runcmd\" is not supported",
        ),
        (
            "#cloud-config\nwrite_files:\n  - path: /etc/ssh/sshd_config\n    content: PermitRootLogin yes\n",
            "is not a path kiln's provisioning writes",
        ),
        (
            "#cloud-config\nusers:\n  - name: mallory\n    ssh_authorized_keys: [\"KEY\"]\n",
            "\"mallory\" is not a user of this image",
        ),
        ("#cloud-config\na: &a [1,2]\nb: [*a, *a]\n", "anchors"),
        ("#cloud-config\nhostname: [unclosed\n", "not valid YAML"),
        (&huge, "larger than"),
    ];
    for (user_data, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = node_root(dir.path());
        let seed = dir.path().join("seed");
        std::fs::create_dir(&seed).unwrap();
        std::fs::write(seed.join("user-data"), user_data.replace("KEY", KEY)).unwrap();
        let out = provision(&root, &["--seed", seed.to_str().unwrap()]);
        let log = text(&out);
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(log.contains(says), "{says:?} in {log}");
        assert!(
            !root.join("var").exists(),
            "nothing written for {user_data:?}: {log}"
        );
    }
}

#[test]
fn a_url_on_the_kernel_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = node_root(dir.path());
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    std::fs::write(served.join("n1.yaml"), "#cloud-config\nhostname: pxe-1\n").unwrap();
    let server = Server::start(&served);
    let cmdline = dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!(
            "console=ttyS0 kiln.provision={}/n1.yaml quiet\n",
            server.addr
        ),
    )
    .unwrap();
    let out = provision(&root, &["--cmdline", cmdline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kiln/hostname")).unwrap(),
        "pxe-1\n"
    );
    // No source at all: the node keeps what it has.
    std::fs::write(&cmdline, "console=ttyS0\n").unwrap();
    let out = provision(&root, &["--cmdline", cmdline.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        text(&out).contains("no provisioning source"),
        "{}",
        text(&out)
    );
    assert!(root.join("var/lib/kiln/hostname").exists());
}

/// An EC2 instance metadata service that answers only with an IMDSv2
/// session token (PUT first), as EC2 does when IMDSv1 is off.
pub(super) fn imds(
    user_data: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut token = None;
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("x-aws-ec2-metadata-token: ") {
                    token = Some(v.to_owned());
                }
                if let Some(v) = l.strip_prefix("content-length: ") {
                    length = v.parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut parts = request.split_whitespace();
            let (method, path) = (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            );
            log.lock().unwrap().push(format!("{method} {path}"));
            let (status, body) = match (method.as_str(), path.as_str(), token.as_deref()) {
                ("PUT", "/latest/api/token", _) => ("200 OK", "tok-123".to_owned()),
                (_, _, t) if t != Some("tok-123") => ("401 Unauthorized", String::new()),
                ("GET", "/latest/user-data", _) => ("200 OK", user_data.to_owned()),
                ("GET", "/latest/meta-data/local-hostname", _) => {
                    ("200 OK", "ip-10-0-0-9.ec2.internal".to_owned())
                }
                ("GET", "/latest/meta-data/public-keys/0/openssh-key", _) => {
                    ("200 OK", format!("{KEY}\n"))
                }
                _ => ("404 Not Found", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

#[test]
fn the_ec2_metadata_service_with_an_imdsv2_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = node_root(dir.path());
    let (addr, seen) = imds(
        "#cloud-config\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token\n    encoding: b64\n    content: SzEwZWMy\n",
    );
    let cmdline = dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!("kiln.provision=ec2 kiln.metadata={addr}\n"),
    )
    .unwrap();
    let out = provision(&root, &["--cmdline", cmdline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(root.join("var/lib/rancher/k3s/agent-token")).unwrap(),
        b"K10ec2"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kiln/hostname")).unwrap(),
        "ip-10-0-0-9.ec2.internal\n"
    );
    assert!(
        std::fs::read_to_string(root.join("var/lib/kiln/authorized_keys/ops"))
            .unwrap()
            .contains(KEY)
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], "PUT /latest/api/token", "token first: {seen:?}");
}

#[test]
fn an_openstack_config_drive() {
    let dir = tempfile::tempdir().unwrap();
    let root = node_root(dir.path());
    let seed = dir.path().join("config-2");
    let latest = seed.join("openstack/latest");
    std::fs::create_dir_all(&latest).unwrap();
    std::fs::write(
        latest.join("meta_data.json"),
        format!(
            r#"{{"uuid": "u-1", "hostname": "worker-3.novalocal", "public_keys": {{"mykey": "{KEY}\n"}}}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        latest.join("user_data"),
        "#cloud-config\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token\n    content: K10os\n",
    )
    .unwrap();
    let out = provision(&root, &["--seed", seed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kiln/hostname")).unwrap(),
        "worker-3\n"
    );
    assert_eq!(
        std::fs::read(root.join("var/lib/rancher/k3s/agent-token")).unwrap(),
        b"K10os"
    );
    assert!(
        std::fs::read_to_string(root.join("var/lib/kiln/authorized_keys/ops"))
            .unwrap()
            .contains(KEY)
    );
    std::fs::write(latest.join("meta_data.json"), "{not json").unwrap();
    let out = provision(&root, &["--seed", seed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("meta_data.json is not valid JSON"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_hostname_file_keeps_its_inode_for_the_bind_mount_over_etc() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = node_root(dir.path());
    let file = root.join("var/lib/kiln/hostname");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "node-0123456789ab\n").unwrap();
    let inode = std::fs::metadata(&file).unwrap().ino();
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).unwrap();
    std::fs::write(seed.join("user-data"), "#cloud-config\nhostname: edge-7\n").unwrap();
    let out = provision(&root, &["--seed", seed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "edge-7\n");
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
}

/// `kiln-node network`: a seed's network-config becomes networkd files
/// (the boot tier shows networkd using one); a refused one writes
/// nothing; without network-config the image's settings stay.
#[test]
fn a_seed_network_config_becomes_networkd_files() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    let into = dir.path().join("network");
    let network = |seed: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kiln-node"))
            .arg("network")
            .arg("--seed")
            .arg(seed)
            .arg("--into")
            .arg(&into)
            .output()
            .unwrap()
    };
    let out = network(&seed);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no network-config"), "{}", text(&out));
    assert!(!into.exists());

    std::fs::write(
        seed.join("network-config"),
        "version: 2\nethernets:\n  eth0:\n    dhcp4: false\n    addresses: [192.0.2.20/24, \"2001:db8::20/64\"]\n    routes:\n      - to: default\n        via: 192.0.2.1\n    mtu: 9000\n",
    )
    .unwrap();
    let out = network(&seed);
    assert!(out.status.success(), "{}", text(&out));
    let file = into.join("10-kiln-provisioned-eth0.network");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# Written at boot by kiln-node from the NoCloud seed's network-config (eth0).\n\
         [Match]\nName=eth0\n\n[Network]\nDHCP=no\nAddress=192.0.2.20/24\nAddress=2001:db8::20/64\n\
         \n[Route]\nGateway=192.0.2.1\n\n[Link]\nMTUBytes=9000\n"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );

    std::fs::remove_dir_all(&into).unwrap();
    std::fs::write(
        seed.join("network-config"),
        "version: 2\nethernets:\n  eth0:\n    addresses: [192.0.2.20/24]\nbridges:\n  br0: {}\n",
    )
    .unwrap();
    let out = network(&seed);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("kiln-network: refused: network-config: \"bridges\" is not supported"),
        "{}",
        text(&out)
    );
    assert!(!into.exists(), "a refused network-config wrote files");
}
