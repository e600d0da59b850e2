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
use anyhow::{Result, bail};
use kiln_tree::{Meta, Store, Tree};
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
];

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
