//! `[check] timer`: installs a systemd service and timer that run
//! `kiln check` on the node against its signed manifest, and the public
//! keys it trusts.
//!
//! The manifest cannot be inside the image it describes (its digest would
//! include itself), so provisioning (the PXE server, cloud-init) puts it
//! and its `.minisig` at /var/lib/kiln/, a mutable path. Until it is
//! there the service is skipped (ConditionPathExists), not failed.

use crate::recipe::fleet::FleetPlan;
use crate::recipe::{CheckTimerPlan, RecipeError};
use anyhow::{Context, Result};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};

pub use kiln_policy::node::{KEYS_ON_NODE, MANIFEST_ON_NODE};
const UNIT_DIR: &str = "/etc/systemd/system";
const TMPFILES: &str = "/usr/lib/tmpfiles.d/kiln-fleet.conf";
/// Where the check leaves the Node patch for kiln-node-labels.service,
/// and the audit its full JSON report: kiln's runtime directory.
const RUN_DIR: &str = "/run/kiln";
const KUBELET_KUBECONFIG: &str = "/var/lib/rancher/k3s/agent/kubelet.kubeconfig";

/// Writes the keys, the service, the timer and the timer's enablement link.
pub fn install(plan: &CheckTimerPlan, tree: &mut Tree, store: &Store) -> Result<()> {
    let located =
        |e: kiln_tree::TreeError| -> anyhow::Error { plan.loc.error(e.to_string()).into() };
    let binary = tree.resolve(&plan.binary, true).map_err(located)?;
    if !matches!(tree.get(&binary).map(|e| &e.kind), Some(Kind::File { .. })) {
        let e: RecipeError = plan.loc.error(format!(
            "the check timer runs {}, which is not a file in the image: add it with a [[file]] (source = the kiln binary), or set binary = \"...\" in [check]",
            plan.binary
        ));
        return Err(e.into());
    }
    for (name, host) in &plan.keys {
        let file =
            std::fs::File::open(host).with_context(|| format!("cannot read {}", host.display()))?;
        let (digest, size) = store.put(file)?;
        let key = Entry {
            kind: Kind::File { digest, size },
            meta: Meta::root(0o644),
        };
        put(tree, &format!("{KEYS_ON_NODE}/{name}"), key).map_err(located)?;
    }
    let fleet = plan.fleet.as_ref();
    let mut units = vec![
        ("kiln-check.service", check_service(plan)),
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
        // node without it, systemd-tmpfiles makes it at boot.
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
/// node's work (Nice, idle I/O, a CPU quota). Not DynamicUser: reading
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
                "ProtectKernelModules=yes",
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

fn check_service(plan: &CheckTimerPlan) -> String {
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
         ConditionPathExists={MANIFEST_ON_NODE}\n\
         After=local-fs.target\n\
         {wants}\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={} check --manifest {MANIFEST_ON_NODE} --key {KEYS_ON_NODE} --root / --json-lines --quiet{args}\n\
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
