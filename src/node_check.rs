//! `[check] timer`: installs a systemd service and timer that run
//! `kiln check` on the node against its signed manifest, and the public
//! keys it trusts.
//!
//! The manifest cannot be inside the image it describes (its digest would
//! include itself), so provisioning (the PXE server, cloud-init) puts it
//! and its `.minisig` at /var/lib/kiln/, a mutable path. Until it is
//! there the service is skipped (ConditionPathExists), not failed.

use crate::recipe::{CheckTimerPlan, RecipeError};
use anyhow::{Context, Result};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};

pub use kiln_policy::node::{KEYS_ON_NODE, MANIFEST_ON_NODE};
const UNIT_DIR: &str = "/etc/systemd/system";

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
    let service = format!(
        "[Unit]\n\
         Description=kiln file-integrity check against the signed image manifest\n\
         ConditionPathExists={MANIFEST_ON_NODE}\n\
         After=local-fs.target\n\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={} check --manifest {MANIFEST_ON_NODE} --key {KEYS_ON_NODE} --root / --json-lines --quiet\n\
         Nice=19\n\
         IOSchedulingClass=idle\n\
         ProtectSystem=strict\n\
         PrivateNetwork=yes\n\
         NoNewPrivileges=yes\n",
        plan.binary
    );
    let timer = format!(
        "[Unit]\n\
         Description=Regular kiln file-integrity check\n\n\
         [Timer]\n\
         OnCalendar={}\n\
         RandomizedDelaySec=30min\n\
         Persistent=true\n\n\
         [Install]\n\
         WantedBy=timers.target\n",
        plan.on_calendar
    );
    for (name, text) in [("kiln-check.service", service), ("kiln-check.timer", timer)] {
        let file = Entry::file(store, text.as_bytes(), Meta::root(0o644))?;
        put(tree, &format!("{UNIT_DIR}/{name}"), file).map_err(located)?;
    }
    // Provisioning only adds files to this directory (a mutable path), so
    // the directories above it are part of the image and never drift.
    let manifest_dir = ImagePath::new(MANIFEST_ON_NODE)
        .expect("a valid path")
        .parent();
    tree.create_dir_all(&manifest_dir, &Meta::root(0o755))
        .map_err(located)?;
    // What `systemctl enable kiln-check.timer` would create.
    let link = Entry {
        kind: Kind::Symlink {
            target: format!("{UNIT_DIR}/kiln-check.timer"),
        },
        meta: Meta::root(0o777),
    };
    put(
        tree,
        &format!("{UNIT_DIR}/timers.target.wants/kiln-check.timer"),
        link,
    )
    .map_err(located)?;
    Ok(())
}

fn put(tree: &mut Tree, path: &str, entry: Entry) -> Result<(), kiln_tree::TreeError> {
    let path = ImagePath::new(path).expect("fixed paths are valid");
    let parent = tree.create_dir_all(&path.parent(), &Meta::root(0o755))?;
    let path = parent.join(path.file_name()).expect("a plain name");
    tree.insert(path, entry)
}
