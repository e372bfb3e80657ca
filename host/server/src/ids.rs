//! Opaque ids (random, or time-ordered then random), API key secrets and their digests, and times as ISO-8601.

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

/// A new id that sorts by creation time, such as `run_0193a…`: the Unix time in ms (12
/// hex digits) then 8 random bytes. For rows written thousands a second: a random key
/// lands each insert on a different page of the primary key's B-tree (every batch then
/// rewrites pages all over the index), a time-ordered one appends at its end.
pub fn new_ordered_id(prefix: &str) -> String {
    let ms = u64::try_from(now_ms()).unwrap_or_default() & 0xffff_ffff_ffff;
    format!("{prefix}_{ms:012x}{}", random_hex(8))
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

#[cfg(test)]
mod tests {
    use super::new_ordered_id;

    #[test]
    fn ordered_ids_sort_by_creation_time_and_stay_unique() {
        let first = new_ordered_id("run");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_ordered_id("run");
        let same_ms = new_ordered_id("run");
        assert!(first < second, "{first} then {second}");
        assert_ne!(second, same_ms);
        assert_eq!(first.len(), "run_".len() + 12 + 16);
    }
}
