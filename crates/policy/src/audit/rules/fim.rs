//! fim.*: file-integrity monitoring against the signed manifest.

use super::{Rule, findings, rule};
use crate::audit::{Check, Ctx, Finding, Mode};
use crate::node::{IMAGE_MANIFEST, KEYS_ON_NODE, MANIFEST_ON_NODE};

pub const RULES: &[Rule] = &[rule!("fim.baseline", Medium, baseline,
    title: "the node checks itself against its signed manifest",
    source: "AIDE attributes (p i l n u g s m sha256 caps xattrs)",
    rationale: "kiln's manifest records every file (mode, owner, size, sha256, link target, xattrs) and is signed; a timer running `kiln check` against it, with mutable paths excluded, detects tampering on the node.",
    remediation: "Add `[check] timer = \"hourly\"` to the recipe and sign the build (the node then trusts the build's key and checks itself against the image's own signed manifest); an unsigned build's node needs `keys` and the manifest with its .minisig provisioned at /var/lib/kiln/.",
)];

const SERVICE: &str = "/etc/systemd/system/kiln-check.service";
const TIMER_LINK: &str = "/etc/systemd/system/timers.target.wants/kiln-check.timer";

fn baseline(ctx: &Ctx) -> Check {
    let mut out = Vec::new();
    if !ctx.img.is_file(SERVICE) {
        out.push(Finding::new(SERVICE, "absent", "no kiln-check service"));
    }
    if !ctx.img.exists(TIMER_LINK) {
        out.push(Finding::new(
            TIMER_LINK,
            "absent",
            "the kiln-check timer is not enabled",
        ));
    }
    let keys = ctx
        .img
        .list_dir(KEYS_ON_NODE)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".pub"))
        .count();
    if keys == 0 {
        out.push(Finding::new(
            KEYS_ON_NODE,
            "no keys",
            "no trusted public key to verify the manifest with",
        ));
    }
    // On a live node, the manifest the check uses: the image's own (a
    // signed build's) or the one provisioning brings.
    if ctx.mode == Mode::Live && !ctx.img.is_file(IMAGE_MANIFEST) {
        for path in [
            MANIFEST_ON_NODE.to_owned(),
            format!("{MANIFEST_ON_NODE}.minisig"),
        ] {
            if !ctx.img.is_file(&path) {
                out.push(Finding::new(
                    path,
                    "absent",
                    "the image has no manifest of its own and provisioning did not install one",
                ));
            }
        }
    }
    findings(out)
}
