//! `ConfigPath`: the dotted path of an entry, as printed in errors.

/// The path of an entry in a config file: `backends.spade.processors[0]`
/// (keys that are not bare are quoted: `backends."my sink"`).
pub use tidings_toml::KeyPath as ConfigPath;
