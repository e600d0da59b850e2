//! kiln: builds immutable, hardened, reproducible and signed OS images for
//! K3s agent nodes.
//!
//! The pipeline (see ARCHITECTURE.md): [`recipe`] → [`tree`] (base) →
//! [`assemble`] → [`pack`] → [`manifest`], driven by [`build`]. Every stage
//! between loading and packing works on one in-memory [`tree::Tree`] whose
//! file contents live in a content-addressed [`tree::Store`] on disk.

pub mod assemble;
pub mod boot;
pub mod build;
pub mod cleanup;
pub mod cmd;
pub mod harden;
pub mod install;
pub mod manifest;
pub mod node_check;
pub mod packages;
pub mod provenance;
pub mod publish;
pub mod recipe;
pub mod sbom;
pub mod signing;
pub mod ui;
