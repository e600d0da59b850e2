//! Where kiln's own files live on a node: the signed manifest that
//! provisioning puts there and the public keys the image trusts. The drift
//! check is installed, and audited, against these paths.

/// The manifest cannot be inside the image it describes (its digest would
/// include itself): provisioning puts it and its `.minisig` here, a mutable
/// path.
pub const MANIFEST_ON_NODE: &str = "/var/lib/kiln/manifest.json";
/// The public keys the node's drift check trusts.
pub const KEYS_ON_NODE: &str = "/etc/kiln/keys";
/// The K3s release the image was built with (`v1.36.4+k3s1`), from its
/// K3s artifact's URL; absent when the build did not know it (the audit
/// then assumes the newest K3s behaviour).
pub const K3S_VERSION: &str = "/usr/lib/kiln/k3s-version";
