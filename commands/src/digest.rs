//! One way to turn several values into a stable, printable digest.

use sha2::{Digest, Sha256};

/// SHA-256 over `parts` separated by NUL bytes (so `["ab", "c"]` and `["a", "bc"]` differ),
/// as lower-case hex.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hasher.update([0]);
        }
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
