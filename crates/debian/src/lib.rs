//! The Debian archive client: version ordering, deb822 control data,
//! package relations, the host's apt sources, signed indexes, the resolver,
//! the lockfile and .deb files. It knows nothing of recipes: what to
//! resolve arrives as plain values.

pub mod arch;
pub mod archive;
pub mod deb;
pub mod deb822;
pub mod fetch;
pub mod index;
pub mod lock;
pub mod relation;
pub mod resolve;
pub mod sources;
pub mod unpack_cache;
pub mod version;
