//! Debian archive primitives: version ordering, deb822 control data and
//! package relations.

pub mod arch;
pub mod archive;
pub mod deb;
pub mod deb822;
pub mod index;
pub mod lock;
pub mod relation;
pub mod resolve;
pub mod sources;
pub mod version;
