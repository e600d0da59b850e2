//! The initrd of a bootable image is the image's own: its kernel package's
//! postinst runs dracut (from the image's packages) while kiln configures
//! them. kiln places dracut's configuration and its own dracut module
//! first, so that initrd is reproducible, the same for every machine, and
//! opens the verified root and the state partition, from the disk or (a
//! PXE boot, `kiln.pxe=` on the command line) fetched and verified first.

use anyhow::{Context, Result};
use kiln_tree::{Entry, ImagePath, Kind, Meta, Store, Tree};

/// Where dracut reads kiln's configuration.
pub const DRACUT_CONF: &str = "/etc/dracut.conf.d/10-kiln.conf";
/// kiln's dracut module (the state partition and the node's identity).
pub const MODULE_DIR: &str = "/usr/lib/dracut/modules.d/90kiln-state";
/// kiln's dracut module for PXE boots (network, fetch, verify).
pub const PXE_MODULE_DIR: &str = "/usr/lib/dracut/modules.d/90kiln-pxe";

/// (path, content, mode) of each file placed before configuring.
pub fn files() -> [(String, &'static str, u32); 8] {
    [
        (DRACUT_CONF.into(), include_str!("files/dracut.conf"), 0o644),
        (
            format!("{MODULE_DIR}/module-setup.sh"),
            include_str!("files/module-setup.sh"),
            0o755,
        ),
        (
            format!("{MODULE_DIR}/kiln-state.service"),
            include_str!("files/kiln-state.service"),
            0o644,
        ),
        (
            format!("{MODULE_DIR}/kiln-state.sh"),
            include_str!("files/kiln-state.sh"),
            0o755,
        ),
        (
            format!("{PXE_MODULE_DIR}/module-setup.sh"),
            include_str!("files/pxe-module-setup.sh"),
            0o755,
        ),
        (
            format!("{PXE_MODULE_DIR}/kiln-pxe.service"),
            include_str!("files/kiln-pxe.service"),
            0o644,
        ),
        (
            format!("{PXE_MODULE_DIR}/pxe-dhcp.network"),
            include_str!("files/pxe-dhcp.network"),
            0o644,
        ),
        (
            format!("{PXE_MODULE_DIR}/pxe-only.conf"),
            include_str!("files/pxe-only.conf"),
            0o644,
        ),
    ]
}

/// True when the package set builds its initrd with dracut.
pub fn uses_dracut<'a>(mut packages: impl Iterator<Item = &'a str>) -> bool {
    packages.any(|p| p == "dracut" || p == "dracut-core")
}

/// Places the files in `tree` (after unpacking, before configuring), and
/// kiln-node, which the initrd of a PXE boot runs.
pub fn place(tree: &mut Tree, store: &Store, arch: &str) -> Result<()> {
    for (path, text, mode) in files() {
        let path = ImagePath::new(&path)?;
        tree.create_dir_all(&path.parent(), &Meta::root(0o755))?;
        tree.insert(path, Entry::file(store, text.as_bytes(), Meta::root(mode))?)?;
    }
    let program = super::layout::node_program(arch)?;
    let file = std::fs::File::open(&program)
        .with_context(|| format!("cannot read {}", program.display()))?;
    let (digest, size) = store.put(std::io::BufReader::new(file))?;
    let path = ImagePath::new(super::layout::NODE_PROGRAM)?;
    tree.create_dir_all(&path.parent(), &Meta::root(0o755))?;
    tree.insert(
        path,
        Entry {
            kind: Kind::File { digest, size },
            meta: Meta::root(0o755),
        },
    )?;
    Ok(())
}
