//! Subcommands that read what a build made, apart from the pipeline:
//! `verify` (signature, artifacts, contents), `check` (drift of a live
//! root), `inspect` (summaries) and `diff` (two images compared).

pub mod check;
pub mod diff;
pub mod inspect;
pub mod verify;
