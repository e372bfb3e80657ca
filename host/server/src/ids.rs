//! Opaque random ids, API key secrets and their digests, and times as ISO-8601.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// What every API key secret starts with, so leaked keys are easy to scan for.
pub const KEY_PREFIX: &str = "hyyve_sk_";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    hex::encode(buf)
}

/// A new id such as `prj_3f9c…`: 12 random bytes after a prefix naming the kind.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(12))
}

/// A new API key secret: 32 random bytes. Shown once, stored only as [`secret_digest`].
pub fn new_key_secret() -> String {
    format!("{KEY_PREFIX}{}", random_hex(32))
}

/// The stored form of a key secret. A plain sha256 suffices: the secret is 256 random
/// bits, so there is nothing to brute-force that a slow hash would protect.
pub fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Unix milliseconds as ISO-8601 UTC (`2026-11-22T08:00:00.000Z`).
pub fn iso8601(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}
