//! Debian archive primitives: version ordering, deb822 control data and
//! package relations.

pub mod arch;
pub mod deb822;
pub mod relation;
pub mod version;
