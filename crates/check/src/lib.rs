//! What a node checks of itself, shared by `kiln` and the node's own
//! program (`kiln-node check`, `kiln-node audit`): the manifest's schema
//! (`manifest`), trusting it (`trust`: the signature with the image's
//! keys, before a line of it is read), the drift of a live root from it
//! (`drift`), and the reports fleet tooling reads (`fleet`: node-exporter
//! metrics, journal entries, the Node patch).
//!
//! It knows nothing of recipes, packages or building.

pub mod drift;
pub mod fleet;
pub mod manifest;
pub mod run;
pub mod trust;
