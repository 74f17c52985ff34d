//! The rules a new password must meet (the seed's Django validators): long enough, not only
//! digits, not a common password, and not too similar to the account's e-mail or username.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::error::FieldError;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 128;
/// Django's default: a password this similar (0–1) to an account attribute is refused.
const MAX_SIMILARITY: f64 = 0.7;

/// What the password is compared with: the e-mail address and the username.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountAttributes<'a> {
    pub email: &'a str,
    pub username: &'a str,
}

/// `Ok`, or the broken rule as a field error on `field`.
pub fn check(
    field: &str,
    password: &str,
    account: AccountAttributes<'_>,
) -> Result<(), FieldError> {
    broken_rule(password, account).map_or(Ok(()), |rule| Err(FieldError::new(field, rule)))
}

fn broken_rule(password: &str, account: AccountAttributes<'_>) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Some(format!("must be at least {MIN_LENGTH} characters"));
    }
    if length > MAX_LENGTH {
        return Some(format!("must be at most {MAX_LENGTH} characters"));
    }
    if password.chars().all(|c| c.is_ascii_digit()) {
        return Some("must not be only digits".into());
    }
    let lowered = password.to_lowercase();
    if common_passwords().contains(lowered.trim()) {
        return Some("is too common".into());
    }
    let attributes = [
        ("e-mail address", account.email),
        ("username", account.username),
    ];
    for (name, value) in attributes {
        if too_similar(&lowered, &value.to_lowercase()) {
            return Some(format!("is too similar to the {name}"));
        }
    }
    None
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common-passwords.txt")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .collect()
    })
}

/// Compared with the whole value and each of its word-separated parts (`ann.lee@example.com`
/// gives `ann`, `lee`, `example`, `com`), as Django does.
fn too_similar(password: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    std::iter::once(value)
        .chain(value.split(|c: char| !c.is_alphanumeric()))
        .filter(|part| !part.is_empty())
        .any(|part| similarity(password, part) >= MAX_SIMILARITY)
}

/// 2·(longest common subsequence) / (total length): 1 for equal strings, 0 for disjoint ones.
#[allow(clippy::float_arithmetic)]
fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let total = a.len() + b.len();
    if total == 0 {
        return 0.0;
    }
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for &x in &a {
        for (j, &y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                current[j].max(previous[j + 1])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let common = previous[b.len()];
    (2 * common) as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(password: &str) -> Option<String> {
        broken_rule(
            password,
            AccountAttributes {
                email: "ann.lee@example.com",
                username: "annlee77",
            },
        )
    }

    #[test]
    fn each_rule_is_named() {
        assert_eq!(
            rule("short1").as_deref(),
            Some("must be at least 8 characters")
        );
        assert_eq!(
            rule("1234567890").as_deref(),
            Some("must not be only digits")
        );
        assert_eq!(rule("password1").as_deref(), Some("is too common"));
        assert_eq!(rule("Sunshine1").as_deref(), Some("is too common"));
        assert_eq!(
            rule("annlee77!").as_deref(),
            Some("is too similar to the username")
        );
        assert_eq!(
            rule("example.com").as_deref(),
            Some("is too similar to the e-mail address")
        );
        assert_eq!(
            rule(&"x".repeat(129)).as_deref(),
            Some("must be at most 128 characters")
        );
        assert_eq!(rule("correct-horse-9"), None);
        assert_eq!(rule("tangerine-boat-41"), None);
    }

    #[test]
    fn the_shipped_list_is_loaded() {
        assert!(common_passwords().len() > 8000);
        assert!(common_passwords().contains("qwertyuiop"));
    }

    #[test]
    fn similarity_is_symmetric_and_bounded() {
        assert!((similarity("abc", "abc") - 1.0).abs() < f64::EPSILON);
        assert!(similarity("abc", "xyz").abs() < f64::EPSILON);
        assert!((similarity("abcd", "ab") - similarity("ab", "abcd")).abs() < f64::EPSILON);
    }
}
