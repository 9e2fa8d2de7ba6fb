//! Security-sensitive: device tokens. 256 random bits, handed to the client once and stored
//! only as a SHA-256, so a copy of the database does not hand out sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;

/// Every token starts with this, so a leaked one is easy to recognise in logs and scanners.
const PREFIX: &str = "hth_";
/// Longest token string accepted before hashing; real ones are 47 characters.
const MAX_LEN: usize = 128;

/// A fresh token and its hash.
pub fn generate() -> Result<(String, [u8; 32]), String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&token);
    Ok((token, hash))
}

pub fn hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Cheap shape check before any database look-up.
pub fn plausible(token: &str) -> bool {
    token.len() <= MAX_LEN
        && token.starts_with(PREFIX)
        && token[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, ha) = generate().unwrap();
        let (b, hb) = generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(hash(&a), ha);
        assert!(plausible(&a));
        assert_eq!(a.len(), 4 + 43);
        assert!(!plausible("hth_<script>"));
        assert!(!plausible("Bearer xyz"));
        assert!(!plausible(&format!("hth_{}", "a".repeat(200))));
    }
}
