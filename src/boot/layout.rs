//! The runtime layout of an image that boots from a read-only root.
//!
//! What a node writes lives on the state partition that the initrd makes
//! at first boot and mounts on /var (`files/kiln-state.sh`); the node's
//! identity files in /etc are bound from /var/lib/kiln over the image's
//! empty ones, SSH host keys are links into /var/lib/kiln/ssh. The
//! network comes up by DHCP on every Ethernet link (systemd-networkd,
//! systemd-resolved), and a node with no hostname gets a unique one.
//! docs/boot.md has the table of what is writable.

use crate::harden::{Ctx, units};
use crate::recipe::{Loc, Plan};
use anyhow::{Context, Result, bail};
use kiln_tree::{ImagePath, Meta, Store, Tree};
use std::collections::BTreeSet;

/// Where the node keeps its own state on the state partition.
pub const STATE_DIR: &str = "/var/lib/kiln";

/// Units a booting node needs, enabled as `systemctl enable` would.
pub const UNITS: &[&str] = &[
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-resolved.service",
    "apparmor.service",
    "kiln-hostname.service",
    "kiln-time-wait.service",
    "kiln-provision.service",
    "kiln-network.service",
];

pub use kiln_policy::node::NODE_PROGRAM;

/// The systemd-networkd file of the node's links, from `[network]`.
pub const NETWORK_FILE: &str = "/etc/systemd/network/80-kiln.network";

/// Packages the layout relies on, with what each brings.
const NEEDS: &[(&str, &str)] = &[
    ("dracut", "the initrd that opens the verified root"),
    (
        "systemd-boot-efi",
        "the EFI stub of the unified kernel image",
    ),
    ("systemd-resolved", "DNS"),
    ("dbus", "logind and power-off"),
    ("apparmor", "the AppArmor profiles containerd expects"),
    ("e2fsprogs", "formatting /var at first boot"),
];

/// The package names a `[boot]` image must have, checked before the
/// long work starts.
pub fn check_packages<'a>(
    loc: &Loc,
    packages: impl Iterator<Item = &'a str> + Clone,
) -> Result<()> {
    let missing: Vec<String> = NEEDS
        .iter()
        .filter(|(name, _)| !packages.clone().any(|p| p == *name))
        .map(|(name, why)| format!("{name} ({why})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: [boot] needs these packages in [debian] packages: {}",
            loc.position(),
            missing.join(", ")
        );
    }
    Ok(())
}

pub fn apply(plan: &Plan, tree: &mut Tree, store: &Store) -> Result<Vec<String>> {
    let Some(boot) = &plan.boot else {
        return Ok(Vec::new());
    };
    let loc = &boot.loc;
    let mut cx = Ctx {
        tree,
        store,
        warnings: Vec::new(),
        enabled: BTreeSet::new(),
    };
    cx.mkdir(STATE_DIR, Meta::root(0o755), loc)?;
    // The initrd binds these over the image's empty files.
    cx.write("/etc/hostname", "", 0o644, loc)?;
    if !cx.is_file("/etc/machine-id") {
        cx.write_owned("/etc/machine-id", b"", Meta::root(0o444), loc)?;
    }
    if let Some(ssh) = &plan.hardening.ssh {
        cx.mkdir(&format!("{STATE_DIR}/ssh"), Meta::root(0o700), loc)?;
        for kind in &ssh.host_keys.value {
            for suffix in ["", ".pub"] {
                let name = format!("ssh_host_{kind}_key{suffix}");
                cx.symlink(
                    &format!("/etc/ssh/{name}"),
                    &format!("{STATE_DIR}/ssh/{name}"),
                    loc,
                )?;
            }
        }
    }
    // First-boot provisioning: kiln's own program (no cloud-init, no
    // interpreter), its unit, and the places it writes that sshd and K3s
    // read.
    let program = ImagePath::new(NODE_PROGRAM)?;
    if cx.tree.get(&program).is_none() {
        put_node_program(cx.tree, store, &plan.image.arch, loc)?;
    }
    cx.write(
        "/usr/lib/systemd/system/kiln-provision.service",
        include_str!("files/kiln-provision.service"),
        0o644,
        loc,
    )?;
    cx.write(
        "/usr/lib/systemd/system/kiln-network.service",
        include_str!("files/kiln-network.service"),
        0o644,
        loc,
    )?;
    if plan.hardening.ssh.is_some() {
        cx.write(
            "/etc/ssh/sshd_config.d/10-kiln-provisioned-keys.conf",
            "# Written by kiln: keys that provisioning adds (kiln-node provision) live\n\
             # on the state partition, beside each user's keys from the image.\n\
             AuthorizedKeysFile .ssh/authorized_keys /var/lib/kiln/authorized_keys/%u\n",
            0o644,
            loc,
        )?;
    }
    if let Some(k3s) = &plan.hardening.k3s {
        cx.write(
            "/etc/systemd/system/k3s-agent.service.d/50-kiln-provision.conf",
            &format!(
                "# Written by kiln: node labels and taints from provisioning\n\
                 # (kiln-node provision writes /var/lib/kiln/k3s-agent.env).\n\
                 [Unit]\nAfter=kiln-provision.service\n\n\
                 [Service]\nEnvironmentFile=-/var/lib/kiln/k3s-agent.env\n\
                 ExecStart=\nExecStart={} agent $KILN_K3S_ARGS\n",
                k3s.binary.value
            ),
            0o644,
            loc,
        )?;
    }
    // K3s keeps the node's password in /etc/rancher/node: a link into
    // the state partition, like the host keys.
    if plan.hardening.k3s.is_some() {
        cx.mkdir(&format!("{STATE_DIR}/rancher-node"), Meta::root(0o700), loc)?;
        cx.remove("/etc/rancher/node")?;
        cx.symlink(
            "/etc/rancher/node",
            &format!("{STATE_DIR}/rancher-node"),
            loc,
        )?;
    }
    // /tmp is a tmpfs: the root is read-only, and systemd's PrivateTmp=
    // needs a writable /tmp.
    cx.write("/etc/fstab", include_str!("files/fstab"), 0o644, loc)?;
    cx.write(
        "/usr/lib/repart.d/50-kiln-var.conf",
        include_str!("files/repart-var.conf"),
        0o644,
        loc,
    )?;
    let network = plan.network.clone().unwrap_or_default();
    cx.write(NETWORK_FILE, &network.render(), 0o644, loc)?;
    // K3s's certificates need a right clock: time-sync.target waits for
    // the first synchronisation, but not forever (see the unit).
    cx.write(
        "/usr/lib/systemd/system/kiln-time-wait.service",
        include_str!("files/kiln-time-wait.service"),
        0o644,
        loc,
    )?;
    cx.write(
        "/usr/lib/systemd/system/kiln-hostname.service",
        include_str!("files/kiln-hostname.service"),
        0o644,
        loc,
    )?;
    cx.write(
        "/usr/lib/kiln/kiln-hostname",
        include_str!("files/kiln-hostname.sh"),
        0o755,
        loc,
    )?;
    // systemd-resolved's stub: the node's DNS servers come from DHCP.
    cx.remove("/etc/resolv.conf")?;
    cx.symlink(
        "/etc/resolv.conf",
        "../run/systemd/resolve/stub-resolv.conf",
        loc,
    )?;
    for unit in UNITS {
        units::enable(&mut cx, unit, loc)?;
    }
    Ok(cx.warnings)
}

/// Puts kiln-node at [`NODE_PROGRAM`]: what provisions a node that
/// boots, and what its check and audit timers run.
pub(crate) fn put_node_program(
    tree: &mut Tree,
    store: &Store,
    arch: &str,
    loc: &Loc,
) -> Result<()> {
    let program = node_program(arch)?;
    let file = std::fs::File::open(&program)
        .with_context(|| format!("cannot read {}", program.display()))?;
    let (digest, size) = store.put(std::io::BufReader::new(file))?;
    let entry = kiln_tree::Entry {
        kind: kiln_tree::Kind::File { digest, size },
        meta: Meta::root(0o755),
    };
    crate::assemble::place(tree, &ImagePath::new(NODE_PROGRAM)?, entry, loc)?;
    Ok(())
}

/// kiln-node for images of `arch`, checked to be a program of that
/// architecture: `KILN_NODE_PROGRAM_ARCH` (`KILN_NODE_PROGRAM_ARM64`), or
/// for the host's own architecture `KILN_NODE_PROGRAM` or kiln-node
/// beside kiln (`cargo build` makes both); for another architecture
/// `kiln-node-ARCH` beside kiln, or cargo's cross build of it
/// (`just node-program ARCH`).
pub(crate) fn node_program(arch: &str) -> Result<std::path::PathBuf> {
    let variable = format!("KILN_NODE_PROGRAM_{}", arch.to_ascii_uppercase());
    let native = crate::install::emulation::is_native(arch);
    let from_env = std::env::var_os(&variable)
        .or_else(|| {
            native
                .then(|| std::env::var_os("KILN_NODE_PROGRAM"))
                .flatten()
        })
        .filter(|p| !p.is_empty());
    let path = match from_env {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().context("cannot find kiln's own program")?;
            let candidates: Vec<std::path::PathBuf> = if native {
                vec![exe.with_file_name("kiln-node")]
            } else {
                let mut found = vec![exe.with_file_name(format!("kiln-node-{arch}"))];
                // target/PROFILE/kiln → target/TRIPLE/PROFILE/kiln-node
                if let (Some(profile_dir), Some(triple)) = (exe.parent(), rust_target(arch))
                    && let (Some(target_dir), Some(profile)) =
                        (profile_dir.parent(), profile_dir.file_name())
                {
                    found.push(target_dir.join(triple).join(profile).join("kiln-node"));
                }
                found
            };
            match candidates.iter().find(|p| p.is_file()) {
                Some(path) => path.clone(),
                None => bail!(
                    "kiln-node for {arch} is missing (looked for {}): kiln puts it into images that boot; {}",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if native {
                        "build it with kiln (cargo build builds both) or set KILN_NODE_PROGRAM"
                            .to_owned()
                    } else {
                        format!("cross-build it with `just node-program {arch}`, or set {variable}")
                    }
                ),
            }
        }
    };
    check_machine(&path, arch)?;
    Ok(path)
}

/// Rust's target triple for a Debian architecture's kiln-node.
pub fn rust_target(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64-unknown-linux-gnu",
        "arm64" => "aarch64-unknown-linux-gnu",
        _ => return None,
    })
}

/// Refuses a kiln-node that is not an ELF program of `arch`: an amd64
/// program in an arm64 image would fail only when the node boots.
fn check_machine(path: &std::path::Path, arch: &str) -> Result<()> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if &head[..4] != b"\x7fELF" {
        bail!("{} is not an ELF program", path.display());
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    let expected = match arch {
        "amd64" => 62,
        "arm64" => 183,
        "i386" => 3,
        "armhf" | "armel" => 40,
        "riscv64" => 243,
        _ => return Ok(()),
    };
    if machine != expected {
        bail!(
            "{} is a program for ELF machine {machine}, not for {arch} (machine {expected}): give kiln-node built for {arch}",
            path.display()
        );
    }
    Ok(())
}
