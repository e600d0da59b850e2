//! img.*: per-node identity that must not be cloned by the image.

use super::{Rule, findings, not_applicable, rule};
use crate::audit::{Check, Ctx, Finding, Mode};

pub const RULES: &[Rule] = &[rule!("img.machine-id", Critical, machine_id,
    title: "machine-id is generated on each node",
    source: "systemd machine-id(5)",
    rationale: "A machine-id in the image is the same on every node: journald, DHCP client ids and the kubelet's node identity collide. An absent file on a read-only root stops systemd from setting one up.",
    remediation: "Ship /etc/machine-id empty (or containing `uninitialized`) and /var/lib/dbus/machine-id absent or a symlink to it.",
)];

fn machine_id(ctx: &Ctx) -> Check {
    if ctx.mode == Mode::Live {
        return not_applicable("a live node has its own machine-id");
    }
    let mut out = Vec::new();
    let path = "/etc/machine-id";
    match ctx.img.entry(path) {
        None => out.push(Finding::new(
            path,
            "absent",
            "absent: ship it empty so that systemd generates a unique id at first boot",
        )),
        Some(_) => match ctx.img.read_text(path) {
            None => out.push(Finding::new(path, "not a file", "not a regular file")),
            Some(text) => {
                let id = text.trim();
                if !(id.is_empty() || id == "uninitialized") {
                    out.push(Finding::new(
                        path,
                        id,
                        "a machine-id baked into the image is shared by every node",
                    ));
                }
            }
        },
    }
    let dbus = "/var/lib/dbus/machine-id";
    if let Some(entry) = ctx.img.entry(dbus) {
        let is_link = matches!(entry.kind, kiln_tree::Kind::Symlink { .. });
        let content = ctx.img.read_text(dbus).unwrap_or_default();
        if !is_link && !content.trim().is_empty() {
            out.push(Finding::new(
                dbus,
                content.trim(),
                "D-Bus's copy of a machine-id baked into the image",
            ));
        }
    }
    findings(out)
}
