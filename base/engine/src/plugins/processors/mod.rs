//! Processor plugins: one file each.

pub mod add_fields;
pub mod default;
pub mod desensitize;
pub mod drop;
pub mod filter_key_regex;
pub mod filter_regex;
pub mod gotime;
pub mod json;
pub(crate) mod parse_support;
pub mod regex;
pub mod rename;
pub mod split_char;
pub mod split_log_regex;
pub mod split_log_string;
pub mod strptime;
#[cfg(feature = "test-plugins")]
pub mod test_panic;
#[cfg(test)]
pub(crate) mod test_support;
mod timefmt;
