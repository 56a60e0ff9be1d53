//! Gateway-issued API keys: `sk-gw-<id>_<secret>_<checksum>`.
//!
//! The id (16 random bytes, 32 hex characters: collisions are not a
//! practical concern) is public and names the key in the admin API; the
//! secret is 32 random bytes (base64url); the checksum is the first 4 bytes
//! of the SHA-256 of everything before it (8 hex characters), so a mistyped
//! or made-up key is refused before any store read. The checksum is not a
//! secret and proves nothing about who made the key: the store lookup does.
//! Only the SHA-256 of the whole key is stored; the key itself is shown
//! once, when it is created. A presented key is found by its hash, then the
//! stored hash is compared in constant time.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::platform::Platform;
use crate::util::hex;

pub const KEY_PREFIX: &str = "sk-gw-";
/// Keys longer than this are refused before hashing.
pub const MAX_KEY_LEN: usize = 128;

/// A freshly generated key. `key` is returned to the caller once and never
/// stored.
#[derive(Debug)]
pub struct GeneratedKey {
    pub id: String,
    pub key: String,
    pub sha256_hex: String,
}

pub fn generate_key<P: Platform>(platform: &P) -> GeneratedKey {
    let mut id = [0u8; 16];
    platform.fill_random(&mut id);
    let mut secret = [0u8; 32];
    platform.fill_random(&mut secret);
    let id = hex(&id);
    let body = format!(
        "{KEY_PREFIX}{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let key = format!("{body}_{}", checksum(&body));
    let sha256_hex = hex(&sha256(key.as_bytes()));
    GeneratedKey {
        id,
        key,
        sha256_hex,
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The checksum of a key's `body` (see the module docs).
fn checksum(body: &str) -> String {
    hex(&sha256(body.as_bytes())[..4])
}

/// Whether `candidate` is a well-formed gateway key with a correct checksum
/// (a cheap check before any store read).
pub fn looks_like_api_key(candidate: &str) -> bool {
    candidate.starts_with(KEY_PREFIX)
        && candidate.len() <= MAX_KEY_LEN
        && candidate
            .rsplit_once('_')
            .is_some_and(|(body, sum)| sum.len() == 8 && digest_eq(&checksum(body), sum))
}

/// Constant-time equality of two hex digests.
pub fn digest_eq(a_hex: &str, b_hex: &str) -> bool {
    a_hex.len() == b_hex.len() && bool::from(a_hex.as_bytes().ct_eq(b_hex.as_bytes()))
}

/// What the store keeps about a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub consumer_id: String,
    /// Hex SHA-256 of the full key.
    pub key_sha256: String,
    pub created_at_unix_s: u64,
    #[serde(default)]
    pub expires_at_unix_s: Option<u64>,
    #[serde(default)]
    pub revoked: bool,
}

impl KeyRecord {
    /// The display form: prefix and id, never the secret.
    pub fn display_prefix(&self) -> String {
        format!("{KEY_PREFIX}{}_…", self.id)
    }

    pub fn is_expired(&self, now_unix_s: u64) -> bool {
        self.expires_at_unix_s.is_some_and(|at| at <= now_unix_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeHttp, FakeReply, TestPlatform};

    #[test]
    fn generated_keys_are_distinct_and_hash_matches() {
        let platform = TestPlatform::new(FakeHttp::new(|_| FakeReply::Hang));
        let a = generate_key(&platform);
        let b = generate_key(&platform);
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(&format!("{KEY_PREFIX}{}_", a.id)));
        assert_eq!(a.id.len(), 32, "128-bit ids");
        assert_eq!(a.key.len(), KEY_PREFIX.len() + 32 + 1 + 43 + 1 + 8);
        assert!(looks_like_api_key(&a.key));
        assert_eq!(a.sha256_hex, hex(&sha256(a.key.as_bytes())));
        assert!(digest_eq(&a.sha256_hex, &a.sha256_hex.clone()));
        assert!(!digest_eq(&a.sha256_hex, &b.sha256_hex));
    }

    #[test]
    fn a_forged_or_mistyped_key_fails_the_checksum() {
        let platform = TestPlatform::new(FakeHttp::new(|_| FakeReply::Hang));
        let key = generate_key(&platform).key;
        assert!(looks_like_api_key(&key));
        // One character changed anywhere, or the checksum dropped.
        let mut typo = key.clone().into_bytes();
        typo[KEY_PREFIX.len() + 40] ^= 1;
        assert!(!looks_like_api_key(&String::from_utf8(typo).unwrap()));
        let (body, _) = key.rsplit_once('_').unwrap();
        assert!(!looks_like_api_key(body));
        assert!(!looks_like_api_key(&format!("{body}_00000000")));
        assert!(!looks_like_api_key("sk-gw-0011aabb_secret"));
    }
}
