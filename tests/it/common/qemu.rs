//! Boots a `kiln build --format raw` disk in QEMU (UEFI firmware, TCG: no
//! KVM) and talks to it with the real OpenSSH client through a port
//! forward of QEMU's user network (the guest is 10.0.2.15, connections
//! forwarded from the host come from the gateway, 10.0.2.2).
//!
//! [`Node`] is one machine: a grown copy of the image and its own UEFI
//! variables, which survive its boots. [`Vm`] is one boot: the QEMU
//! process (killed on drop), its serial console in a file, a monitor
//! socket for an ACPI power-off, and the forwarded ports.

use super::run_ok;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Secure Boot: the firmware that needs SMM, and Debian's test variables
/// with its "snakeoil" key enrolled as PK, KEK and db.
pub const OVMF_CODE_SECURE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
pub const OVMF_VARS_SNAKEOIL: &str = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd";
/// The snakeoil key (its password is "snakeoil") and certificate.
pub const SNAKEOIL_KEY: &str = "/usr/share/ovmf/PkKek-1-snakeoil.key";
pub const SNAKEOIL_CERT: &str = "/usr/share/ovmf/PkKek-1-snakeoil.pem";

/// How long a boot may take to answer SSH (a TCG boot on 2 cores takes
/// about a minute).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// arm64 machines: QEMU's `virt` board with AAVMF, Debian's UEFI for it
/// (qemu-efi-aarch64). Emulating another architecture costs more than
/// TCG on the same one: allow a quarter of an hour.
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
pub const ARM64_BOOT_TIMEOUT: Duration = Duration::from_secs(900);

/// The machine QEMU emulates, by the image's Debian architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// q35 with OVMF.
    Amd64,
    /// virt (Cortex-A72) with AAVMF.
    Arm64,
}

impl Machine {
    fn program(self) -> &'static str {
        match self {
            Machine::Amd64 => "qemu-system-x86_64",
            Machine::Arm64 => "qemu-system-aarch64",
        }
    }

    fn vars(self) -> &'static str {
        match self {
            Machine::Amd64 => OVMF_VARS,
            Machine::Arm64 => AAVMF_VARS,
        }
    }
}

/// [`require_qemu`] for arm64 machines: qemu-system-aarch64 and AAVMF.
pub fn require_qemu_arm64() {
    require_qemu();
    let found = Command::new("qemu-system-aarch64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "qemu-system-aarch64 is missing: apt-get install qemu-system-arm"
    );
    for file in [AAVMF_CODE, AAVMF_VARS] {
        assert!(
            Path::new(file).is_file(),
            "{file} is missing: apt-get install qemu-efi-aarch64"
        );
    }
}

/// Panics, naming the package to install, unless QEMU, qemu-img and the
/// UEFI firmware are there: a boot test must fail, not pass, when it
/// cannot boot.
pub fn require_qemu() {
    let missing = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
    };
    assert!(
        !missing("qemu-system-x86_64"),
        "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
    );
    assert!(
        !missing("qemu-img"),
        "qemu-img is missing: apt-get install qemu-utils"
    );
    for file in [OVMF_CODE, OVMF_VARS] {
        assert!(
            Path::new(file).is_file(),
            "{file} is missing: apt-get install ovmf"
        );
    }
    assert!(
        !missing("ssh"),
        "the OpenSSH client is missing: apt-get install openssh-client"
    );
}

/// A free TCP port on the host's loopback (free when asked: QEMU binds it
/// a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The last `lines` lines of a file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A machine's own UEFI variables and a copy of the login key in `dir`
/// (ssh refuses a private key others may read).
fn machine_files(dir: &Path, key: &Path, machine: Machine) -> (PathBuf, PathBuf) {
    let vars = dir.join("vars.fd");
    std::fs::copy(machine.vars(), &vars).unwrap();
    let own_key = dir.join("id");
    std::fs::copy(key, &own_key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&own_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (vars, own_key)
}

/// One machine: its disk and UEFI variables in `dir`, and the known_hosts
/// file the client fills at its first boot.
pub struct Node {
    pub dir: PathBuf,
    pub disk: PathBuf,
    vars: PathBuf,
    known_hosts: PathBuf,
    /// The private key of the user the tests log in as.
    pub key: PathBuf,
    /// A NoCloud seed volume attached to the next boots, if any.
    pub seed: Option<PathBuf>,
    /// A diskless machine: the URL iPXE boots (QEMU's DHCP boot file).
    netboot: Option<String>,
    secure_boot: bool,
    machine: Machine,
    boots: u32,
}

impl Node {
    /// A new machine in `dir` (which must exist) from the image `raw`:
    /// the copy grows to 2 GiB, the room first boot makes /var in.
    /// `edit` may change the copy before its first boot.
    pub fn new(dir: &Path, raw: &Path, key: &Path, edit: impl FnOnce(&Path)) -> Node {
        Node::new_for(Machine::Amd64, dir, raw, key, edit)
    }

    /// [`Node::new`] for an image of another architecture.
    pub fn new_for(
        machine: Machine,
        dir: &Path,
        raw: &Path,
        key: &Path,
        edit: impl FnOnce(&Path),
    ) -> Node {
        match machine {
            Machine::Amd64 => require_qemu(),
            Machine::Arm64 => require_qemu_arm64(),
        }
        let disk = dir.join("disk.raw");
        std::fs::copy(raw, &disk).unwrap();
        edit(&disk);
        run_ok(
            Command::new("qemu-img")
                .args(["resize", "-q", "-f", "raw"])
                .arg(&disk)
                .arg("2G"),
        );
        let (vars, own_key) = machine_files(dir, key, machine);
        Node {
            dir: dir.to_owned(),
            disk,
            vars,
            known_hosts: dir.join("known_hosts"),
            key: own_key,
            seed: None,
            netboot: None,
            secure_boot: false,
            machine,
            boots: 0,
        }
    }

    /// A new machine in `dir` without a disk: its firmware's iPXE (Debian's
    /// ipxe-qemu ROM) gets `bootfile`, a URL the guest reaches (the host's
    /// loopback is 10.0.2.2), from QEMU's DHCP server.
    pub fn diskless(dir: &Path, key: &Path, bootfile: &str) -> Node {
        require_qemu();
        assert!(
            Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").is_file(),
            "iPXE for QEMU is missing: apt-get install ipxe-qemu"
        );
        let (vars, own_key) = machine_files(dir, key, Machine::Amd64);
        Node {
            dir: dir.to_owned(),
            disk: PathBuf::new(),
            vars,
            known_hosts: dir.join("known_hosts"),
            key: own_key,
            seed: None,
            netboot: Some(bootfile.to_owned()),
            secure_boot: false,
            machine: Machine::Amd64,
            boots: 0,
        }
    }

    /// Boots with UEFI Secure Boot on, trusting only the snakeoil key.
    pub fn use_secure_boot(&mut self) {
        std::fs::copy(OVMF_VARS_SNAKEOIL, &self.vars).unwrap();
        self.secure_boot = true;
    }

    /// Removes the disk (2 GiB, mostly sparse), keeping the logs.
    pub fn remove_disk(&self) {
        let _ = std::fs::remove_file(&self.disk);
    }

    /// Starts QEMU on the disk; `guest_ports` are forwarded from free
    /// ports of the host's loopback besides 22 ([`Vm::port`]).
    pub fn boot(&mut self, guest_ports: &[u16]) -> Vm {
        self.boots += 1;
        let serial = self.dir.join(format!("serial-{}.log", self.boots));
        let monitor = self.dir.join(format!("monitor-{}.sock", self.boots));
        let stderr = self.dir.join(format!("qemu-{}.log", self.boots));
        let mut forwards = vec![(free_port(), 22)];
        forwards.extend(guest_ports.iter().map(|&p| (free_port(), p)));
        let qemu_log = std::fs::File::create(&stderr).unwrap();
        let mut netdev: String = forwards
            .iter()
            .map(|(host, guest)| format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"))
            .collect();
        let mut extra: Vec<String> = Vec::new();
        let nic = match &self.netboot {
            Some(url) => {
                netdev.push_str(&format!(",bootfile={url}"));
                "virtio-net-pci,netdev=n0,bootindex=0"
            }
            None => {
                extra.extend([
                    "-drive".to_owned(),
                    format!("if=none,id=d0,format=raw,file={}", self.disk.display()),
                    "-device".to_owned(),
                    "virtio-blk-pci,drive=d0,bootindex=0".to_owned(),
                ]);
                "virtio-net-pci,netdev=n0"
            }
        };
        if let Some(path) = &self.seed {
            extra.push("-drive".to_owned());
            extra.push(format!(
                "if=none,id=s0,format=raw,readonly=on,file={}",
                path.display()
            ));
            extra.extend(["-device".to_owned(), "virtio-blk-pci,drive=s0".to_owned()]);
        }
        let (machine, code) = match (self.machine, self.secure_boot) {
            (Machine::Amd64, true) => {
                extra.extend([
                    "-global".to_owned(),
                    "driver=cfi.pflash01,property=secure,value=on".to_owned(),
                ]);
                ("q35,smm=on", OVMF_CODE_SECURE)
            }
            (Machine::Amd64, false) => ("q35", OVMF_CODE),
            (Machine::Arm64, false) => {
                // a Cortex-A72: `max` emulates pointer authentication,
                // which costs much under TCG
                extra.extend(["-cpu".to_owned(), "cortex-a72".to_owned()]);
                ("virt", AAVMF_CODE)
            }
            (Machine::Arm64, true) => panic!("the arm64 harness has no Secure Boot firmware"),
        };
        let child = Command::new(self.machine.program())
            .args([
                "-machine", machine, "-accel", "tcg", "-m", "2048", "-smp", "2",
            ])
            .args(["-nographic", "-no-reboot"])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={code}"
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                self.vars.display()
            ))
            .args(&extra)
            .arg("-netdev")
            .arg(format!("user,id=n0{netdev}"))
            .args(["-device", nic])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-monitor")
            .arg(format!("unix:{},server,nowait", monitor.display()))
            .stdin(Stdio::null())
            .stdout(qemu_log.try_clone().unwrap())
            .stderr(qemu_log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.machine.program()));
        Vm {
            child,
            started: Instant::now(),
            serial,
            monitor,
            stderr,
            forwards,
            key: self.key.clone(),
            known_hosts: self.known_hosts.clone(),
        }
    }
}

/// One boot of a [`Node`]: QEMU runs until [`Vm::power_off`], or is
/// killed when this is dropped.
pub struct Vm {
    child: Child,
    pub started: Instant,
    pub serial: PathBuf,
    monitor: PathBuf,
    stderr: PathBuf,
    /// (host port, guest port); the first is SSH.
    forwards: Vec<(u16, u16)>,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Vm {
    /// The host port that reaches `guest` port.
    pub fn port(&self, guest: u16) -> u16 {
        self.forwards
            .iter()
            .find(|(_, g)| *g == guest)
            .unwrap_or_else(|| panic!("port {guest} is not forwarded"))
            .0
    }

    /// The serial console so far.
    pub fn serial_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Panics with `message`, the end of the serial console and QEMU's
    /// own messages.
    pub fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n--- serial console ({}), last lines:\n{}\n--- qemu:\n{}",
            self.serial.display(),
            tail(&self.serial, 60),
            tail(&self.stderr, 20)
        )
    }

    /// `ssh` to the guest as `user` with the node's key, in batch mode
    /// (never a prompt), checking the host key against the node's
    /// known_hosts (`strict`: it must be there already; otherwise a new
    /// one is added, a changed one still refused). Add options, then the
    /// remote command.
    pub fn ssh_command(&self, user: &str, strict: bool) -> Command {
        self.ssh_command_with_key(user, strict, &self.key)
    }

    /// [`Vm::ssh_command`] with another private key.
    pub fn ssh_command_with_key(&self, user: &str, strict: bool, key: &Path) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
            .arg("IdentitiesOnly=yes")
            .arg("-i")
            .arg(key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-o")
            .arg(if strict {
                "StrictHostKeyChecking=yes"
            } else {
                "StrictHostKeyChecking=accept-new"
            })
            // one name for the node whatever port this boot forwards
            .args(["-o", "HostKeyAlias=kiln-node", "-o", "ConnectTimeout=20"])
            .args(["-o", "LogLevel=ERROR", "-p"])
            .arg(self.port(22).to_string())
            .arg("-l")
            .arg(user)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `script` in the guest as `user`; its output, whatever the
    /// exit status.
    pub fn ssh_output(&self, user: &str, script: &str) -> Output {
        self.ssh_command(user, true)
            .arg("127.0.0.1")
            .arg(script)
            .output()
            .unwrap()
    }

    /// Runs `script` in the guest as `user`; its stdout, panicking with
    /// the console unless it succeeds.
    pub fn ssh(&self, user: &str, script: &str) -> String {
        let out = self.ssh_output(user, script);
        if !out.status.success() {
            self.fail(&format!(
                "ssh {user}: `{script}` failed with {}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `user` can log in with the key; panics (with the
    /// console) after `timeout`, when QEMU exits, or at once when the host
    /// key differs from the known one. `strict`: the host key must be
    /// known already (a later boot of the node). Returns the time since
    /// QEMU started.
    pub fn wait_for_ssh(&mut self, user: &str, strict: bool, timeout: Duration) -> Duration {
        let deadline = self.started + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.fail(&format!("QEMU exited ({status}) before SSH answered"));
            }
            let out = self
                .ssh_command(user, strict)
                .args(["127.0.0.1", "true"])
                .output()
                .unwrap();
            if out.status.success() {
                return self.started.elapsed();
            }
            let last = String::from_utf8_lossy(&out.stderr);
            if last.contains("IDENTIFICATION HAS CHANGED")
                || (strict && last.contains("Host key verification failed"))
            {
                self.fail(&format!(
                    "the node's host key is not the known one:\n{last}"
                ));
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "no SSH login as {user} within {timeout:?}; the last attempt said:\n{last}"
                ));
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }

    /// Waits until the serial console shows one of `needles` (returned),
    /// or QEMU exits, or `timeout` passes (None).
    pub fn wait_for_serial(&mut self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.serial_log();
            if let Some(found) = needles.iter().find(|n| log.contains(*n)) {
                return Some((*found).to_owned());
            }
            if self.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// True while QEMU runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Presses the power button (ACPI, through QEMU's monitor) and waits
    /// up to `timeout` for the guest to power off, which ends QEMU
    /// (-no-reboot). Panics with the console when it does not.
    pub fn power_off(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let pressed = Instant::now();
        let mut monitor = std::os::unix::net::UnixStream::connect(&self.monitor)
            .unwrap_or_else(|e| self.fail(&format!("QEMU's monitor: {e}")));
        monitor.write_all(b"system_powerdown\n").unwrap();
        monitor
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // the banner's prompt, then the one after the command: the
        // monitor took it
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while String::from_utf8_lossy(&answer).matches("(qemu)").count() < 2 {
            match monitor.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, pressed.elapsed());
            }
            if pressed.elapsed() > timeout {
                self.fail(&format!(
                    "the guest did not power off within {timeout:?} of the ACPI power button"
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
