//! Hardening baked into the image: users, SSH, the nftables firewall, the
//! K3s agent, sysctls and modules, first-boot units and minimisation. Each
//! module renders a recipe section into files of the Tree.

use crate::recipe::hardening::HardeningPlan;
use crate::tree::{Store, Tree};
use anyhow::Result;

/// Applies every hardening section of `plan` to `tree`. Returns warnings
/// worth showing.
pub fn apply(_plan: &HardeningPlan, _tree: &mut Tree, _store: &Store) -> Result<Vec<String>> {
    Ok(Vec::new())
}
