//! `[check] timer`: installs a systemd service and timer that run
//! `kiln check` on the node against its signed manifest, and the public
//! keys it trusts.
//!
//! The runs are `kiln-node check` and `kiln-node audit` (kiln's node
//! program, which the build puts in) unless `[check] binary` names
//! another. The node trusts the recipe's keys and the key that signs the
//! build. A signed build also puts the image's own signed manifest at
//! /usr/lib/kiln/manifest.json ([`embed_manifest`]): it lists every path
//! but itself and its signature (its digest cannot include itself), and
//! dm-verity covers it on a disk. An unsigned build's node checks against
//! the manifest provisioning puts at /var/lib/kiln/ (a mutable path);
//! until it is there the service is skipped (ConditionPathExists).

use crate::recipe::fleet::FleetPlan;
use crate::recipe::{CheckTimerPlan, RecipeError};
use anyhow::{Context, Result};
use kiln_minisign::PublicKey;
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};

pub use kiln_policy::node::{
    IMAGE_MANIFEST, IMAGE_MANIFEST_SIGNATURE, KEYS_ON_NODE, MANIFEST_ON_NODE,
};
const UNIT_DIR: &str = "/etc/systemd/system";
const TMPFILES: &str = "/usr/lib/tmpfiles.d/kiln-fleet.conf";
/// Where the check leaves the Node patch for kiln-node-labels.service,
/// and the audit its full JSON report: kiln's runtime directory.
const RUN_DIR: &str = "/run/kiln";
const KUBELET_KUBECONFIG: &str = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig";

/// What the node checks against: its image's own manifest when the
/// build signs one, else the one provisioning brings.
fn manifest_path(build_key: Option<&PublicKey>) -> &'static str {
    if build_key.is_some() {
        IMAGE_MANIFEST
    } else {
        MANIFEST_ON_NODE
    }
}

/// Writes the keys, the service, the timer and the timer's enablement
/// link, and kiln-node when it runs them. `build_key` is the public key
/// of the key signing the build, if any. Returns a warning, and installs
/// nothing, when the node would trust no key at all.
pub fn install(
    plan: &CheckTimerPlan,
    arch: &str,
    build_key: Option<&PublicKey>,
    tree: &mut Tree,
    store: &Store,
) -> Result<Option<String>> {
    let located =
        |e: kiln_tree::TreeError| -> anyhow::Error { plan.loc.error(e.to_string()).into() };
    if plan.keys.is_empty() && build_key.is_none() {
        return Ok(Some(format!(
            "{}: [check] trusts the key that signs the build, and this build is not signed (--key or KILN_SIGNING_KEY): the node's check and fleet timers are left out",
            plan.loc.position()
        )));
    }
    if plan.binary.as_str() == crate::boot::layout::NODE_PROGRAM && tree.get(&plan.binary).is_none()
    {
        crate::boot::layout::put_node_program(tree, store, arch, &plan.loc)?;
    }
    let binary = tree.resolve(&plan.binary, true).map_err(located)?;
    if !matches!(tree.get(&binary).map(|e| &e.kind), Some(Kind::File { .. })) {
        let e: RecipeError = plan.loc.error(format!(
            "the check timer runs {}, which is not a file in the image: add it with a [[file]] (source = the kiln binary), or set binary = \"...\" in [check]",
            plan.binary
        ));
        return Err(e.into());
    }
    let mut trusted = Vec::new();
    for (name, host) in &plan.keys {
        let text =
            std::fs::read(host).with_context(|| format!("cannot read {}", host.display()))?;
        trusted.push(
            PublicKey::parse(&text)
                .with_context(|| format!("public key {}", host.display()))?
                .key_id(),
        );
        let key = Entry::file(store, &text, Meta::root(0o644))?;
        put(tree, &format!("{KEYS_ON_NODE}/{name}"), key).map_err(located)?;
    }
    // The key that signs the build signs the image's own manifest too:
    // the node trusts it beside the recipe's.
    if let Some(key) = build_key.filter(|k| !trusted.contains(&k.key_id())) {
        let text = key.to_file_string(Some("kiln public key of the build that made this image"))?;
        let file = Entry::file(store, text.as_bytes(), Meta::root(0o644))?;
        put(
            tree,
            &format!("{KEYS_ON_NODE}/build-{}.pub", key.key_id()),
            file,
        )
        .map_err(located)?;
    }
    let fleet = plan.fleet.as_ref();
    let mut units = vec![
        (
            "kiln-check.service",
            check_service(plan, manifest_path(build_key)),
        ),
        ("kiln-check.timer", check_timer(plan)),
    ];
    if let Some(fleet) = fleet {
        units.push(("kiln-audit.service", audit_service(plan, fleet)));
        units.push(("kiln-audit.timer", audit_timer(fleet)));
        if fleet.node_labels {
            units.push(("kiln-node-labels.service", node_labels_service(fleet)));
        }
    }
    for (name, text) in &units {
        let file = Entry::file(store, text.as_bytes(), Meta::root(0o644))?;
        put(tree, &format!("{UNIT_DIR}/{name}"), file).map_err(located)?;
    }
    if let Some(dir) = fleet.and_then(|f| f.textfile_dir.as_ref()) {
        // node-exporter's package makes the directory root's, 0755; on a
        // node without it, the image has it (so a drift check finds what
        // it expects above it; the directory is a mutable path) and
        // systemd-tmpfiles makes it again should /var start empty.
        tree.create_dir_all(dir, &Meta::root(0o755))
            .map_err(located)?;
        let line = format!("d {dir} 0755 root root -\n");
        let file = Entry::file(store, line.as_bytes(), Meta::root(0o644))?;
        put(tree, TMPFILES, file).map_err(located)?;
    }
    // Provisioning only adds files to this directory (a mutable path), so
    // the directories above it are part of the image and never drift.
    let manifest_dir = ImagePath::new(MANIFEST_ON_NODE)
        .expect("a valid path")
        .parent();
    tree.create_dir_all(&manifest_dir, &Meta::root(0o755))
        .map_err(located)?;
    // What `systemctl enable` of the timers would create.
    let mut timers = vec!["kiln-check.timer"];
    if fleet.is_some() {
        timers.push("kiln-audit.timer");
    }
    for timer in timers {
        let link = Entry {
            kind: Kind::Symlink {
                target: format!("{UNIT_DIR}/{timer}"),
            },
            meta: Meta::root(0o777),
        };
        put(
            tree,
            &format!("{UNIT_DIR}/timers.target.wants/{timer}"),
            link,
        )
        .map_err(located)?;
    }
    Ok(None)
}

/// Puts `manifest` (the image's, without artifacts) and its signature
/// at [`IMAGE_MANIFEST`]: the manifest a node of a signed build checks
/// itself against.
pub fn embed_manifest(
    manifest: &crate::manifest::Manifest,
    key: &kiln_minisign::SecretKey,
    tree: &mut Tree,
    store: &Store,
) -> Result<()> {
    let text = manifest.to_canonical_json();
    let signature = crate::signing::sign_manifest(key, manifest, text.as_bytes())?;
    let file = Entry::file(store, text.as_bytes(), Meta::root(0o644))?;
    put(tree, IMAGE_MANIFEST, file)?;
    let file = Entry::file(
        store,
        signature.to_file_string().as_bytes(),
        Meta::root(0o644),
    )?;
    put(tree, IMAGE_MANIFEST_SIGNATURE, file)?;
    Ok(())
}

fn put(tree: &mut Tree, path: &str, entry: Entry) -> Result<(), kiln_tree::TreeError> {
    let path = ImagePath::new(path).expect("fixed paths are valid");
    let parent = tree.create_dir_all(&path.parent(), &Meta::root(0o755))?;
    let path = parent.join(path.file_name()).expect("a plain name");
    tree.insert(path, entry)
}

/// The sandbox of kiln's runs: it reads the whole root (CAP_DAC_READ_SEARCH
/// and nothing else: root's other powers are gone from the bounding set),
/// writes only where it reports, reaches no network, and yields to the
/// node's work (Nice, idle I/O, a CPU quota). Not ProtectKernelModules=:
/// it hides /usr/lib/modules, which the check must read (a planted module
/// is drift), and without CAP_SYS_MODULE nothing here can load one. Not
/// DynamicUser: reading
/// every file, /etc/shadow included, needs the capability either way, and
/// the textfile directory is root's.
fn sandbox(fleet: Option<&FleetPlan>) -> String {
    let mut lines = vec![
        "Nice=19".to_owned(),
        "IOSchedulingClass=idle".to_owned(),
        "ProtectSystem=strict".to_owned(),
        "PrivateNetwork=yes".to_owned(),
        "NoNewPrivileges=yes".to_owned(),
    ];
    if let Some(fleet) = fleet {
        lines.push(format!("CPUQuota={}", fleet.cpu_quota));
        if let Some(dir) = &fleet.textfile_dir {
            lines.push(format!("ReadWritePaths={dir}"));
        }
        lines.extend(
            [
                "RuntimeDirectory=kiln",
                "RuntimeDirectoryPreserve=yes",
                "UMask=0022",
                "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
                "AmbientCapabilities=",
                "ProtectHome=read-only",
                "PrivateDevices=yes",
                "ProtectKernelTunables=yes",
                "ProtectKernelLogs=yes",
                "ProtectControlGroups=yes",
                "ProtectClock=yes",
                "ProtectHostname=yes",
                "RestrictAddressFamilies=AF_UNIX",
                "RestrictNamespaces=yes",
                "RestrictRealtime=yes",
                "RestrictSUIDSGID=yes",
                "LockPersonality=yes",
                "MemoryDenyWriteExecute=yes",
                "SystemCallArchitectures=native",
                "SystemCallFilter=@system-service",
            ]
            .map(str::to_owned),
        );
    }
    lines.join("\n") + "\n"
}

/// The reporting arguments of a run: metrics, journal.
fn report_args(fleet: &FleetPlan) -> String {
    let mut args = String::new();
    if let Some(dir) = &fleet.textfile_dir {
        args.push_str(&format!(" --textfile-dir {dir}"));
    }
    if fleet.journal {
        args.push_str(" --journal");
    }
    args
}

fn check_service(plan: &CheckTimerPlan, manifest: &str) -> String {
    let fleet = plan.fleet.as_ref();
    let mut args = fleet.map(report_args).unwrap_or_default();
    let mut wants = String::new();
    if fleet.is_some_and(|f| f.node_labels) {
        args.push_str(&format!(" --node-patch {RUN_DIR}/node-patch.json"));
        wants.push_str("Wants=kiln-node-labels.service\n");
    }
    format!(
        "[Unit]\n\
         Description=kiln file-integrity check against the signed image manifest\n\
         ConditionPathExists={manifest}\n\
         After=local-fs.target\n\
         {wants}\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={} check --manifest {manifest} --key {KEYS_ON_NODE} --root / --json-lines --quiet{args}\n\
         {}",
        plan.binary,
        sandbox(fleet)
    )
}

fn check_timer(plan: &CheckTimerPlan) -> String {
    let after_boot = plan
        .fleet
        .as_ref()
        .map(|f| format!("OnBootSec={}\n", f.after_boot))
        .unwrap_or_default();
    format!(
        "[Unit]\n\
         Description=Regular kiln file-integrity check\n\n\
         [Timer]\n\
         OnCalendar={}\n\
         {after_boot}\
         RandomizedDelaySec=30min\n\
         Persistent=true\n\n\
         [Install]\n\
         WantedBy=timers.target\n",
        plan.on_calendar
    )
}

/// `kiln audit /`: the live node against the hardening rules; the full
/// report stays in /run/kiln/audit.json for whoever logs in.
fn audit_service(plan: &CheckTimerPlan, fleet: &FleetPlan) -> String {
    format!(
        "[Unit]\n\
         Description=kiln audit of this node against the hardening rules\n\
         After=local-fs.target\n\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={} audit / --format json --output {RUN_DIR}/audit.json --quiet{}\n\
         {}",
        plan.binary,
        report_args(fleet),
        sandbox(Some(fleet))
    )
}

fn audit_timer(fleet: &FleetPlan) -> String {
    format!(
        "[Unit]\n\
         Description=Regular kiln audit of this node\n\n\
         [Timer]\n\
         OnCalendar={}\n\
         OnBootSec={}\n\
         RandomizedDelaySec=30min\n\
         Persistent=true\n\n\
         [Install]\n\
         WantedBy=timers.target\n",
        fleet.audit, fleet.after_boot
    )
}

/// Applies the check's Node patch with the kubelet's own credential, once
/// the node has joined (docs/fleet.md: why not --node-label). K3s names
/// the Node after the host name unless its config says otherwise.
fn node_labels_service(fleet: &FleetPlan) -> String {
    format!(
        "[Unit]\n\
         Description=Show the image kiln verified on this node's Kubernetes Node\n\
         After=kiln-check.service k3s-agent.service\n\
         ConditionPathExists={RUN_DIR}/node-patch.json\n\
         ConditionPathExists={KUBELET_KUBECONFIG}\n\
         ConditionFileIsExecutable={k3s}\n\n\
         [Service]\n\
         Type=oneshot\n\
         Environment=HOME=/tmp\n\
         ExecStart={k3s} kubectl --kubeconfig={KUBELET_KUBECONFIG} --request-timeout=30s patch node %H --type=merge --patch-file={RUN_DIR}/node-patch.json\n\
         Nice=19\n\
         IOSchedulingClass=idle\n\
         CPUQuota={}\n\
         ProtectSystem=strict\n\
         ProtectHome=yes\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         NoNewPrivileges=yes\n\
         CapabilityBoundingSet=\n\
         RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n\
         SystemCallArchitectures=native\n",
        fleet.cpu_quota,
        k3s = fleet.k3s,
    )
}
