//! kiln's integration tests: one binary, one module per area. They run the
//! real `kiln` binary against real tools (dpkg, apt, gpg, sshd, nft,
//! minisign, mmdebstrap); `common` has the shared helpers.

#![allow(clippy::unwrap_used)] // a panic in a test is its failure

mod archive;
mod audit_cli;
mod audit_debian;
mod audit_nft;
mod audit_recipe;
mod audit_reports;
mod audit_rules;
mod audit_sources;
mod audit_sshd;
mod boot;
mod boot_arm64;
mod check;
mod cli_docs;
mod cloud_formats;
mod common;
mod deb_unpack;
mod debian_archive;
mod debian_primitives;
mod debian_real;
mod diff;
mod exits;
mod fleet;
mod fleet_boot;
mod harden_firewall;
mod harden_image;
mod harden_k3s;
mod harden_ssh;
mod hostile;
mod hostile_packages;
mod install_arm64;
mod install_debian;
mod install_offline;
mod interrupt;
mod layering;
mod minimal_recipe;
mod minisign_interop;
mod node_check;
mod optional_artifact;
mod overlay;
mod provenance;
mod provision;
mod pxe;
mod recipe_errors;
mod registry;
mod registry_cache;
mod reproducible;
mod resolve;
mod sandbox_probe;
mod sbom;
mod signing;
mod signing_cli;
mod verify_tamper;
