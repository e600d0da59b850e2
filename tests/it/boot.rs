//! The boot tier: recipes/k3s-agent.toml (with a stand-in K3s binary and
//! an operator, as in harden_image) built as a raw disk and booted in QEMU
//! with UEFI firmware, under TCG (no KVM: about a minute to SSH on 2
//! cores). Everything is checked from outside with the real OpenSSH
//! client, as the operator (who has no sudo) would. Needs root (the
//! build), the network (the packages) and QEMU with OVMF
//! (common::qemu::require_qemu names what to install).
//!
//! The image is built once per test run and shared; each test boots it as
//! few times as its checks need: the first boots a node twice (everything
//! a running node shows, then what a second boot keeps), the second boots
//! a copy with one flipped byte in the verified root.

use crate::common;
use crate::harden_image::{build, build_with, write_recipe};

use common::qemu::{BOOT_TIMEOUT, Node, Vm};
use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Forwarded connections from the host come from QEMU's gateway,
/// 10.0.2.2: in the administrators' network, so SSH reaches the node.
pub(super) const SSH_FROM: &str = "10.0.2.0/24";

/// The control for the kubelet's port: the same listener on a port the
/// firewall opens to the gateway ([[firewall.allow]]; a NodePort, one of
/// the ports kiln's audit lets an agent open); the kubelet's
/// (10250) is open only to `[k3s] servers` (10.99.0.1 in write_recipe's
/// recipe) and the pod CIDR, never to 10.0.2.2.
pub(super) const OPEN_PORT: u16 = 30080;
pub(super) const KUBELET_PORT: u16 = 10250;

pub(super) fn extra() -> String {
    format!(
        "\n[[firewall.allow]]\nname = \"boot-test\"\nproto = \"tcp\"\nport = {OPEN_PORT}\nfrom = [\"10.0.2.2/32\"]\n"
    )
}

/// The built image: its directory under target/ (kept after the run, for
/// a look at what failed) and what the tests read of it.
struct Image {
    dir: PathBuf,
    raw: PathBuf,
    manifest: serde_json::Value,
    rootfs: PathBuf,
    key: PathBuf,
}

/// Checks what a boot test needs; the guard it returns keeps other boot
/// tests waiting (one VM at a time: two TCG guests on a small CI machine
/// would each take minutes to boot).
pub(super) fn needs(test: &str) -> std::sync::MutexGuard<'static, ()> {
    require_root(test);
    common::qemu::require_qemu();
    static ONE_VM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_VM.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh directory for this run under target/boot-test: the image,
/// and each test's node (its serial logs stay for a look after a
/// failure; its disk goes when the test passes).
pub(super) fn fresh_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("target/boot-test").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The image, built by the first test that asks.
fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = fresh_dir("a");
        write_recipe(&dir, SSH_FROM, &extra());
        let started = Instant::now();
        build(&dir);
        eprintln!("boot: built the image in {:?}", started.elapsed());
        let dist = dir.join("dist");
        let manifest =
            serde_json::from_slice(&std::fs::read(dist.join("node-1.manifest.json")).unwrap())
                .unwrap();
        Image {
            raw: dist.join("node-1.raw"),
            rootfs: dist.join("node-1.rootfs.tar.zst"),
            key: dir.join("ops"),
            manifest,
            dir,
        }
    })
}

impl Image {
    /// A file of the image, from its rootfs archive.
    fn file(&self, path: &str) -> String {
        let out = run_ok(
            Command::new("tar")
                .args(["--zstd", "-xOf"])
                .arg(&self.rootfs)
                .arg(format!(".{path}")),
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// (offset, size) of the partition with `role` on the disk.
    fn partition(&self, role: &str) -> (u64, u64) {
        manifest_partition(&self.manifest, role)
    }
}

/// The raw disk's `disk` record in a build's manifest.
pub(super) fn manifest_disk(manifest: &serde_json::Value) -> &serde_json::Value {
    &manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["format"] == "raw")
        .expect("the manifest lists the raw disk")["disk"]
}

/// (offset, data size) of the partition with `role` in a build's manifest.
pub(super) fn manifest_partition(manifest: &serde_json::Value, role: &str) -> (u64, u64) {
    let part = manifest_disk(manifest)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == role)
        .unwrap_or_else(|| panic!("no {role} partition in the manifest"));
    (
        part["offset"].as_u64().unwrap(),
        part["data_size"].as_u64().unwrap(),
    )
}

/// The sysctl settings of a sysctl.d file: (key, value) with the value's
/// whitespace as the kernel prints it normalised.
pub(super) fn sysctl_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (key, value) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not a sysctl setting: {l}"));
            (
                key.trim().trim_start_matches('-').to_owned(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

/// Reads from the host's end of a port forward: what the guest's
/// listener said, or nothing when no connection reached it (QEMU accepts
/// the host's connection itself and then finds no answer in the guest).
fn read_forwarded(port: u16) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// 1-3: the operator's key logs in; a password never gets asked for (the
/// server offers public keys only); root is refused even with a key
/// that logs the operator in.
pub(super) fn check_logins(vm: &Vm) {
    assert_eq!(vm.ssh("ops", "id -un").trim(), "ops");

    let password = vm
        .ssh_command("ops", true)
        .args(["-o", "PubkeyAuthentication=no", "-o"])
        .arg("PreferredAuthentications=password,keyboard-interactive")
        .args(["127.0.0.1", "true"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&password.stderr);
    assert!(!password.status.success(), "{said}");
    // the methods the server still offers: public keys only
    assert!(said.contains("Permission denied (publickey)"), "{said}");

    let root = vm.ssh_output("root", "true");
    let said = String::from_utf8_lossy(&root.stderr);
    assert!(
        !root.status.success() && said.contains("Permission denied"),
        "{said}"
    );
}

/// 4: the address came from QEMU's DHCP server.
pub(super) fn check_dhcp(vm: &Vm) {
    let addr = vm.ssh("ops", "ip -4 addr show scope global");
    let line = addr
        .lines()
        .find(|l| l.contains("inet 10.0.2.15/24"))
        .unwrap_or_else(|| panic!("no 10.0.2.15/24:\n{addr}"));
    assert!(line.contains("dynamic"), "not a DHCP lease: {line}");
}

/// 5: the kubelet's port is closed to a source outside `[k3s] servers`.
///
/// The image has no nc, socat or python; it has systemd-socket-activate,
/// which an unprivileged user may run on a port above 1023: it listens,
/// and for each connection runs `echo` with the connection as its output,
/// so whoever reaches the listener reads a banner. The operator starts
/// one on 10250 (no kubelet listens: the agent waits for its token) and
/// one on 30080 (a NodePort), which the test's recipe opens to the gateway. Both are
/// proven up from inside over loopback (which the firewall accepts);
/// then, through QEMU's port forwards, whose connections reach the guest
/// from 10.0.2.2, 30080 answers (so the path works) and 10250 does not
/// (the firewall drops it). An `ssh -L` tunnel would have come in over
/// loopback and proven nothing.
pub(super) fn check_kubelet_port_closed(vm: &Vm) {
    let script = format!(
        "systemd-socket-activate -l {KUBELET_PORT} --inetd -a /bin/echo kiln-listener-{KUBELET_PORT} &
         exec systemd-socket-activate -l {OPEN_PORT} --inetd -a /bin/echo kiln-listener-{OPEN_PORT}"
    );
    let mut listeners = vm
        .ssh_command("ops", true)
        .args(["127.0.0.1", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let probe = format!(
        "for port in {KUBELET_PORT} {OPEN_PORT}; do
           exec 3<>/dev/tcp/127.0.0.1/$port || exit 1; timeout 5 cat <&3; exec 3<&-
         done"
    );
    let mut inside = String::new();
    for _ in 0..10 {
        let out = vm.ssh_output("ops", &probe);
        inside = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        inside,
        format!("kiln-listener-{KUBELET_PORT}\nkiln-listener-{OPEN_PORT}\n"),
        "the listeners answer over loopback"
    );
    let open = read_forwarded(vm.port(OPEN_PORT));
    assert_eq!(
        open,
        format!("kiln-listener-{OPEN_PORT}\n"),
        "an allowed port answers through the forward"
    );
    let kubelet = read_forwarded(vm.port(KUBELET_PORT));
    assert!(
        !kubelet.contains("kiln-listener"),
        "10250 answered a source outside [k3s] servers: {kubelet:?}"
    );
    let _ = listeners.kill();
    let _ = listeners.wait();
}

/// 6: systemd is up; the one unit allowed to fail is the K3s agent, for
/// want of its join token. The operator cannot read the system journal
/// (not in adm or systemd-journal), so the failing step comes from
/// `systemctl status`.
pub(super) fn check_units(vm: &Vm) {
    // up to 90 s of it waiting for a clock no time server sets here
    let deadline = Instant::now() + Duration::from_secs(300);
    let state = loop {
        let out = vm.ssh_output("ops", "systemctl is-system-running");
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !matches!(state.as_str(), "starting" | "initializing") || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_secs(5));
    };
    let failed = vm.ssh("ops", "systemctl --failed --plain --no-legend --no-pager");
    let failed: Vec<&str> = failed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    match state.as_str() {
        "running" => assert!(failed.is_empty(), "{failed:?}"),
        "degraded" => assert_eq!(failed, ["k3s-agent.service"], "failed units"),
        other => panic!("systemctl is-system-running: {other}, failed units {failed:?}"),
    }
    let status = String::from_utf8_lossy(
        &vm.ssh_output(
            "ops",
            "systemctl status --no-pager --lines=0 k3s-agent.service",
        )
        .stdout,
    )
    .into_owned();
    assert!(
        status.contains("no join token at /var/lib/rancher/k3s/agent-token")
            && status.contains("ExecStartPre=")
            && status.contains("status=1/FAILURE"),
        "{status}"
    );
}

/// 7: the kernel runs with the recipe's sysctls. Keys only root may read
/// (mode 0600 in /proc/sys) are checked through systemd-sysctl, which
/// fails when it cannot apply a setting.
fn check_sysctls(vm: &Vm, image: &Image) {
    let mut settings = Vec::new();
    for file in ["90-kubelet.conf", "99-zz-kiln-hardening.conf"] {
        settings.extend(sysctl_settings(
            &image.file(&format!("/etc/sysctl.d/{file}")),
        ));
    }
    assert!(settings.len() > 10, "{settings:?}");
    let keys: Vec<&str> = settings.iter().map(|(k, _)| k.as_str()).collect();
    let script = format!(
        "for key in {}; do
           file=/proc/sys/$(echo \"$key\" | tr . /)
           if [ -r \"$file\" ]; then printf '%s=%s\\n' \"$key\" \"$(cat \"$file\")\"
           elif [ -e \"$file\" ]; then echo \"$key root-only\"
           else echo \"$key missing\"; fi
         done",
        keys.join(" ")
    );
    let effective = vm.ssh("ops", &script);
    let mut wrong = Vec::new();
    let mut root_only = Vec::new();
    for ((key, want), line) in settings.iter().zip(effective.lines()) {
        match line.split_once('=') {
            Some((k, got)) if k == key => {
                let got = got.split_whitespace().collect::<Vec<_>>().join(" ");
                if &got != want {
                    wrong.push(format!("{key}: {got}, the recipe says {want}"));
                }
            }
            _ if line == format!("{key} root-only") => root_only.push(key.as_str()),
            _ => wrong.push(format!("{key}: {line}")),
        }
    }
    assert_eq!(effective.lines().count(), settings.len(), "{effective}");
    assert!(wrong.is_empty(), "effective sysctls differ: {wrong:#?}");
    eprintln!(
        "boot: {} sysctls as the recipe says; root-only, left to systemd-sysctl: {root_only:?}",
        settings.len() - root_only.len()
    );
    assert_eq!(
        vm.ssh(
            "ops",
            "systemctl show -P Result systemd-sysctl.service; systemctl show -P ExecMainStatus systemd-sysctl.service"
        ),
        "success\n0\n"
    );
}

/// 8: the root is the verified, read-only squashfs; /var the state
/// partition; /tmp a tmpfs without exec; the node named after its
/// machine-id. Returns the machine-id.
pub(super) fn check_layout(vm: &Vm) -> String {
    let mounts = vm.ssh(
        "ops",
        "findmnt -no SOURCE,FSTYPE,OPTIONS /; findmnt -no SOURCE,FSTYPE,OPTIONS /var; findmnt -no SOURCE,FSTYPE,OPTIONS /tmp; readlink -f /dev/disk/by-label/kiln-var /dev/disk/by-partlabel/kiln-var",
    );
    let lines: Vec<Vec<&str>> = mounts
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let opts = |line: &[&str]| line[2].split(',').map(str::to_owned).collect::<Vec<_>>();
    let [root, var, tmp, label, partlabel] = lines.as_slice() else {
        panic!("{mounts}")
    };
    assert_eq!(root[..2], ["/dev/mapper/root", "squashfs"], "{mounts}");
    assert!(opts(root).contains(&"ro".into()), "{mounts}");
    assert_eq!(var[1], "ext4", "{mounts}");
    assert_eq!(
        (var[0], var[0]),
        (label[0], partlabel[0]),
        "/var is the kiln-var partition: {mounts}"
    );
    for o in ["rw", "nodev", "nosuid"] {
        assert!(opts(var).contains(&o.into()), "/var lacks {o}: {mounts}");
    }
    assert_eq!(tmp[1], "tmpfs", "{mounts}");
    for o in ["noexec", "nodev", "nosuid"] {
        assert!(opts(tmp).contains(&o.into()), "/tmp lacks {o}: {mounts}");
    }
    let write = vm.ssh_output("ops", "echo x >/etc/kiln-boot-test");
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("Read-only file system"),
        "{write:?}"
    );

    let id = vm.ssh("ops", "cat /etc/machine-id").trim().to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "machine-id {id:?}"
    );
    let hostname = vm.ssh("ops", "cat /proc/sys/kernel/hostname /etc/hostname");
    let want = format!("node-{}", &id[..12]);
    assert_eq!(hostname, format!("{want}\n{want}\n"));
    id
}

/// 1-9: one node, booted twice. The first boot shows everything a running
/// node should; the guest then powers off by the ACPI button (logind),
/// and the second boot of the same disk keeps the machine-id, the SSH
/// host key (the client's known_hosts, checked strictly) and what was
/// written to /var.
#[test]
#[ignore = "needs root, network and boot"]
fn a_node_boots_serves_its_operator_and_keeps_its_state() {
    let _vm = needs("a_node_boots_serves_its_operator_and_keeps_its_state");
    let image = image();
    let mut node = Node::new(&fresh_dir("node"), &image.raw, &image.key, |_| {});

    let mut vm = node.boot(&[KUBELET_PORT, OPEN_PORT]);
    let up = vm.wait_for_ssh("ops", false, BOOT_TIMEOUT);
    eprintln!("boot: first boot: SSH after {up:?}");
    check_logins(&vm);
    check_dhcp(&vm);
    check_kubelet_port_closed(&vm);
    check_units(&vm);
    check_sysctls(&vm, image);
    let id = check_layout(&vm);
    let first = vm.serial_log();
    assert!(
        first.contains("kiln-state: first boot: adding the state partition"),
        "{}",
        common::qemu::tail(&vm.serial, 40)
    );
    let mark = format!("written at the first boot of {id}\n");
    vm.ssh(
        "ops",
        &format!("printf '%s' '{mark}' >/var/tmp/kiln-boot-test"),
    );
    let (status, took) = vm.power_off(Duration::from_secs(120));
    eprintln!("boot: first boot: powered off {took:?} after the button");
    assert!(status.success(), "QEMU: {status}");
    assert_clean_power_off(&vm);
    drop(vm);

    // The second boot is provisioned from a NoCloud seed (a vfat volume
    // labelled cidata): a hostname, a second key, the join token, a label,
    // and a static address.
    let second_key = node.dir.join("second");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "second@test", "-f"])
            .arg(&second_key),
    );
    let second_pub = std::fs::read_to_string(node.dir.join("second.pub")).unwrap();
    node.seed = Some(nocloud_seed(
        &node.dir,
        &format!(
            "#cloud-config\nhostname: edge-7\nusers:\n  - name: ops\n    ssh_authorized_keys: [\"{}\"]\nwrite_files:\n  - path: /var/lib/rancher/k3s/agent-token\n    content: {TOKEN}\nkiln:\n  node_labels: [\"zone=a\"]\n",
            second_pub.trim()
        ),
        Some(NETWORK_CONFIG),
    ));
    let mut vm = node.boot(&[]);
    let up = vm.wait_for_ssh("ops", true, BOOT_TIMEOUT);
    eprintln!("boot: second boot: SSH after {up:?} (host key as known)");
    assert_eq!(vm.ssh("ops", "cat /etc/machine-id").trim(), id);
    assert_eq!(vm.ssh("ops", "cat /var/tmp/kiln-boot-test"), mark);
    // Provisioning runs once the network is online, beside sshd.
    if vm
        .wait_for_serial(
            &["kiln-provision: provisioned from"],
            Duration::from_secs(180),
        )
        .is_none()
    {
        vm.fail("the second boot was not provisioned");
    }
    check_provisioned(&vm, &second_key);
    check_static_network(&vm);
    let second = vm.serial_log();
    assert!(
        !second.contains("kiln-state: first boot"),
        "/var made again: {}",
        common::qemu::tail(&vm.serial, 40)
    );
    // the first power-off left /var clean: no journal to replay
    assert!(
        !second.contains("recovery complete"),
        "/var was not cleanly unmounted: {second}"
    );
    let (_, took) = vm.power_off(Duration::from_secs(120));
    eprintln!("boot: second boot: powered off {took:?} after the button");
    assert_clean_power_off(&vm);
    drop(vm);
    node.remove_disk();
}

/// systemd unmounted the file systems (/var in order, the journal having
/// left it) and the kernel powered the machine off.
pub(super) fn assert_clean_power_off(vm: &Vm) {
    let log = vm.serial_log();
    assert!(
        !log.contains("Failed unmounting"),
        "{}",
        common::qemu::tail(&vm.serial, 60)
    );
    for line in [
        "systemd-shutdown[1]: All filesystems unmounted.",
        "reboot: Power down",
    ] {
        assert!(
            log.contains(line),
            "not a clean power-off (no {line:?}): {}",
            common::qemu::tail(&vm.serial, 40)
        );
    }
}

/// 10: one byte changed in the root partition, in its first 4 KiB block
/// (the block that holds the squashfs superblock, read when the root is
/// mounted; the changed byte itself is past the superblock, where squashfs
/// alone would not notice): dm-verity refuses the block, the root is never
/// mounted and SSH never answers. The kernel names the corrupted block.
/// (The initrd then waits for /dev/mapper/root without a time limit,
/// dracut's rd.timeout being 0: the test stops QEMU once the error and
/// the absence of a login are seen.)
#[test]
#[ignore = "needs root, network and boot"]
fn a_changed_byte_in_the_root_stops_the_boot() {
    let _vm = needs("a_changed_byte_in_the_root_stops_the_boot");
    let image = image();
    let (offset, size) = image.partition("root");
    assert!(size > 4096);
    let mut node = Node::new(&fresh_dir("changed-root"), &image.raw, &image.key, |disk| {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(disk)
            .unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset + 256).unwrap();
        file.write_all_at(&[byte[0] ^ 0xff], offset + 256).unwrap();
    });
    let mut vm = node.boot(&[]);
    let needle = "data block 0 is corrupted";
    let seen = vm.wait_for_serial(&[needle], BOOT_TIMEOUT);
    if seen.is_none() {
        vm.fail("no dm-verity error on the console");
    }
    eprintln!(
        "boot: changed root: verity error {:?} after QEMU started",
        vm.started.elapsed()
    );
    let log = vm.serial_log();
    let line = log.lines().find(|l| l.contains(needle)).unwrap();
    assert!(line.contains("device-mapper: verity:"), "{line}");
    // the root never comes up: no sshd, no login
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        vm.running(),
        "QEMU ended: {}",
        common::qemu::tail(&vm.serial, 30)
    );
    let out = vm.ssh_output("ops", "true");
    assert!(!out.status.success(), "logged in to a changed root");
    let log = vm.serial_log();
    for never in ["Multi-User System", "OpenBSD Secure Shell server"] {
        assert!(
            !log.contains(never),
            "the boot went on past the root: {never}"
        );
    }
}

/// Two builds of the same recipe, in different directories, make the
/// same disk, byte for byte.
#[test]
#[ignore = "needs root and network"]
fn two_builds_make_the_same_disk() {
    require_root("two_builds_make_the_same_disk");
    let image = image();
    let other = fresh_dir("b");
    for file in ["node.toml", "k3s", "node.lock"] {
        let from = image.dir.join(file);
        if from.exists() {
            std::fs::copy(&from, other.join(file)).unwrap();
        }
    }
    // Configured afresh, not from the install cache the first build
    // filled: maintainer scripts (dracut making the initrd) run again.
    let started = Instant::now();
    build_with(&other, &["--no-install-cache"]);
    eprintln!("boot: built again in {:?}", started.elapsed());
    let dist = |dir: &Path, name: &str| sha256_file(&dir.join("dist").join(name));
    for name in ["node-1.raw", "node-1.rootfs.tar.zst"] {
        assert_eq!(
            dist(&image.dir, name),
            dist(&other, name),
            "{name} differs between target/boot-test/a and b"
        );
    }
}

/// The join token the seed gives; it must never show on the console.
const TOKEN: &str = "K10kilnboottest::server:secret";

/// A NoCloud seed: a small vfat volume labelled CIDATA with `user-data`
/// and `meta-data`, made with dosfstools and mtools as cloud-localds would.
fn nocloud_seed(dir: &Path, user_data: &str, network_config: Option<&str>) -> PathBuf {
    let seed = dir.join("seed.img");
    let _ = std::fs::remove_file(&seed);
    std::fs::write(dir.join("user-data"), user_data).unwrap();
    std::fs::write(dir.join("meta-data"), "instance-id: boot-test\n").unwrap();
    let mut files = vec![dir.join("user-data"), dir.join("meta-data")];
    if let Some(text) = network_config {
        std::fs::write(dir.join("network-config"), text).unwrap();
        files.push(dir.join("network-config"));
    }
    run_ok(
        Command::new("mkfs.fat")
            .args(["-C", "-n", "CIDATA"])
            .arg(&seed)
            .arg("2048"),
    );
    run_ok(
        Command::new("mcopy")
            .arg("-i")
            .arg(&seed)
            .args(&files)
            .arg("::"),
    );
    seed
}

/// The second boot's static address (QEMU's user network, as DHCP would
/// give it, but without a lease), from the seed's network-config.
const NETWORK_CONFIG: &str = "version: 2\nethernets:\n  lan:\n    match:\n      macaddress: \"52:54:00:12:34:56\"\n    addresses: [10.0.2.15/24]\n    gateway4: 10.0.2.2\n    nameservers:\n      addresses: [10.0.2.3]\n";

/// kiln-node wrote the seed's network-config for networkd, which uses it:
/// a static address (no `dynamic` lease) from that file.
fn check_static_network(vm: &Vm) {
    let status = vm.ssh(
        "ops",
        "for link in /sys/class/net/en*; do networkctl status --no-pager \"${link##*/}\"; done",
    );
    assert!(
        status.contains("/run/systemd/network/10-kiln-provisioned-lan.network"),
        "{status}"
    );
    let address = vm.ssh("ops", "ip -4 -o addr show scope global");
    assert!(address.contains("inet 10.0.2.15/24"), "{address}");
    assert!(!address.contains("dynamic"), "a DHCP lease: {address}");
    assert!(
        vm.serial_log()
            .contains("kiln-network: wrote /run/systemd/network/10-kiln-provisioned-lan.network"),
        "{}",
        common::qemu::tail(&vm.serial, 40)
    );
}

/// kiln-node provisioned the node from the seed: its hostname, a key that
/// logs in, the token (root's, 0600, never printed) and K3s started with
/// the label.
fn check_provisioned(vm: &Vm, second_key: &Path) {
    let out = vm
        .ssh_command_with_key("ops", true, second_key)
        .arg("127.0.0.1")
        .arg("hostname")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the provisioned key does not log in: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "edge-7");
    assert_eq!(vm.ssh("ops", "cat /etc/hostname").trim(), "edge-7");
    assert_eq!(
        vm.ssh("ops", "stat -c '%a %U %s' /var/lib/rancher/k3s/agent-token")
            .trim(),
        format!("600 root {}", TOKEN.len())
    );
    let log = vm.serial_log();
    assert!(
        log.contains("kiln-provision: provisioned from the NoCloud seed volume"),
        "{}",
        common::qemu::tail(&vm.serial, 40)
    );
    assert!(
        !log.contains("server:secret"),
        "the token reached the console"
    );
    // k3s-agent (the stand-in) ran with the arguments K3s gets.
    let deadline = Instant::now() + Duration::from_secs(120);
    let args = loop {
        let out = vm.ssh_output("ops", "cat /run/k3s-stand-in.args");
        if out.status.success() || Instant::now() > deadline {
            break String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        std::thread::sleep(Duration::from_secs(5));
    };
    assert_eq!(args, "agent --node-label=zone=a");
}

/// Optional Secure Boot: the same recipe built with `--secure-boot-key`
/// (Debian's snakeoil test key, which OVMF's snakeoil variables trust)
/// has a UKI that sbverify accepts and boots with Secure Boot on; the
/// unsigned disk is refused by the firmware.
#[test]
#[ignore = "needs root, network and boot"]
fn secure_boot_starts_the_signed_disk_only() {
    let _vm = needs("secure_boot_starts_the_signed_disk_only");
    let image = image();
    let dir = fresh_dir("secure-boot");
    for file in ["node.toml", "k3s", "node.lock", "ops", "ops.pub"] {
        let from = image.dir.join(file);
        if from.exists() {
            std::fs::copy(&from, dir.join(file)).unwrap();
        }
    }
    let key = dir.join("db.key");
    run_ok(
        Command::new("openssl")
            .args([
                "rsa",
                "-passin",
                "pass:snakeoil",
                "-in",
                common::qemu::SNAKEOIL_KEY,
                "-out",
            ])
            .arg(&key),
    );
    let started = Instant::now();
    build_with(
        &dir,
        &[
            "--format",
            "raw",
            "--secure-boot-key",
            key.to_str().unwrap(),
            "--secure-boot-cert",
            common::qemu::SNAKEOIL_CERT,
        ],
    );
    eprintln!("boot: built the signed disk in {:?}", started.elapsed());
    let raw = dir.join("dist/node-1.raw");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dist/node-1.manifest.json")).unwrap())
            .unwrap();
    let esp = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["format"] == "raw")
        .unwrap()["disk"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "esp")
        .unwrap()["offset"]
        .as_u64()
        .unwrap();
    let uki = dir.join("uki.efi");
    run_ok(
        Command::new("mcopy")
            .arg("-i")
            .arg(format!("{}@@{esp}", raw.display()))
            .arg("::EFI/BOOT/BOOTX64.EFI")
            .arg(&uki),
    );
    run_ok(
        Command::new("sbverify")
            .args(["--cert", common::qemu::SNAKEOIL_CERT])
            .arg(&uki),
    );

    let mut node = Node::new(
        &fresh_dir("secure-boot-node"),
        &raw,
        &dir.join("ops"),
        |_| {},
    );
    node.use_secure_boot();
    let mut vm = node.boot(&[]);
    let up = vm.wait_for_ssh("ops", false, BOOT_TIMEOUT);
    eprintln!("boot: Secure Boot: SSH after {up:?}");
    // The firmware's SecureBoot variable: 4 attribute bytes, then 1.
    let state = vm.ssh(
        "ops",
        "od -An -t u1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
    );
    assert_eq!(state.split_whitespace().last(), Some("1"), "{state}");
    drop(vm);
    node.remove_disk();

    let mut node = Node::new(
        &fresh_dir("secure-boot-unsigned"),
        &image.raw,
        &image.key,
        |_| {},
    );
    node.use_secure_boot();
    let mut vm = node.boot(&[]);
    let seen = vm.wait_for_serial(&["Access Denied", "login:"], Duration::from_secs(180));
    assert_eq!(
        seen.as_deref(),
        Some("Access Denied"),
        "the unsigned disk under Secure Boot: {}",
        common::qemu::tail(&vm.serial, 30)
    );
    drop(vm);
    node.remove_disk();
}
