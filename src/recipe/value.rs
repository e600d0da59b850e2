//! The one raw type both the schema and the section modules use; it lives
//! apart so that neither has to import the other.

use toml::Spanned;

/// Modes and owners are read as any TOML value so that the validator, not
/// serde, explains what to write (a bare `mode = 644` is decimal).
pub type RawValue = Spanned<toml::Value>;
