//! Where kiln's own files live on a node: the signed manifest that
//! provisioning puts there and the public keys the image trusts. The drift
//! check is installed, and audited, against these paths.

/// The manifest cannot be inside the image it describes (its digest would
/// include itself): provisioning puts it and its `.minisig` here, a mutable
/// path.
pub const MANIFEST_ON_NODE: &str = "/var/lib/kiln/manifest.json";
/// The public keys the node's drift check trusts.
pub const KEYS_ON_NODE: &str = "/etc/kiln/keys";
