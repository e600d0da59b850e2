//! Where kiln's own files live on a node: the signed manifest that
//! provisioning puts there and the public keys the image trusts. The drift
//! check is installed, and audited, against these paths.

/// The image's own manifest and its `.minisig`, when the build was signed:
/// every path of the image but these two (a manifest cannot list its own
/// digest).
pub const IMAGE_MANIFEST: &str = "/usr/lib/kiln/manifest.json";
pub const IMAGE_MANIFEST_SIGNATURE: &str = "/usr/lib/kiln/manifest.json.minisig";
/// Where provisioning puts the manifest (and its `.minisig`) of an image
/// built unsigned, a mutable path.
pub const MANIFEST_ON_NODE: &str = "/var/lib/kiln/manifest.json";
/// kiln's program on the node: provisioning, the PXE root, and the drift
/// check and audit its timers run.
pub const NODE_PROGRAM: &str = "/usr/lib/kiln/kiln-node";
/// The public keys the node's drift check trusts.
pub const KEYS_ON_NODE: &str = "/etc/kiln/keys";
/// The K3s release the image was built with (`v1.36.4+k3s1`), from its
/// K3s artifact's URL; absent when the build did not know it (the audit
/// then assumes the newest K3s behaviour).
pub const K3S_VERSION: &str = "/usr/lib/kiln/k3s-version";
