//! The one type through which personal data (e-mail addresses, names) enters events.
//!
//! Keeping every such value behind [`Personal`] means erasure (encrypting it with a per-user key
//! that can be deleted) has a single place to change, and a stray `{:?}` never prints it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Reads `null` as the empty value: that is what a sealed field whose key was erased becomes.
#[derive(Clone, PartialEq, Eq, Default, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Personal<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Personal<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(deserializer).map(|value| Self(value.unwrap_or_default()))
    }
}

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Personal(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_value() {
        let email = Personal::new("alice@example.com".to_string());
        assert_eq!(format!("{email:?}"), "Personal(<redacted>)");
    }

    #[test]
    fn an_erased_value_reads_as_empty() {
        let email: Personal<String> = serde_json::from_str("null").expect("reads null");
        assert_eq!(email.expose(), "");
        let name: Personal<Option<String>> = serde_json::from_str("null").expect("reads null");
        assert_eq!(name.expose(), &None);
        let kept: Personal<Option<String>> = serde_json::from_str("\"Ann\"").expect("reads");
        assert_eq!(kept.expose().as_deref(), Some("Ann"));
    }

    #[test]
    fn serializes_as_the_bare_value() {
        let email = Personal::new("alice@example.com".to_string());
        assert_eq!(
            serde_json::to_string(&email).expect("serializes"),
            "\"alice@example.com\""
        );
    }
}
