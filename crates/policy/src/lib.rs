//! The hardening policy of a K3s node, one module per file format the node
//! reads: each holds its faithful reader and the hardened defaults, so the
//! recipe validates, the hardening stage writes and the audit reads with
//! the same knowledge. [`audit`] is the rule engine over them.

pub mod accounts;
pub mod audit;
pub mod containerd;
pub mod image;
pub mod k3s;
pub mod keys;
pub mod kubelet;
pub mod modules;
pub mod net;
pub mod nft;
pub mod node;
pub mod sshd;
pub mod sysctl;
pub mod units;
pub mod wildcard;
