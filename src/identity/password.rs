//! Security-sensitive: password hashing (argon2id) and the rules for acceptable passwords.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted. Long passphrases beat complexity rules.
pub const MIN_LEN: usize = 10;
/// Longest accepted: argon2 handles any length, but a cap stops megabyte "passwords".
pub const MAX_LEN: usize = 256;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane. A Pi 4 does this in ~100 ms.
fn hasher() -> Argon2<'static> {
    // The parameters are constants known to be valid, so this cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string. Slow by design: call it off the async runtime.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored PHC string. Slow by design: call it off the runtime.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A well-formed hash of a random password: verifying against it costs the same as a real
/// check, so "no such user" takes as long as "wrong password".
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password nobody has").unwrap_or_default())
}

/// Why a password is refused, in words for the person choosing it.
pub fn weakness(password: &str, username: &str) -> Option<String> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Some(format!(
            "The password is too short: use at least {MIN_LEN} characters (a few words work well)."
        ));
    }
    if len > MAX_LEN {
        return Some(format!(
            "The password is too long: use at most {MAX_LEN} characters."
        ));
    }
    let lower = password.to_lowercase();
    let user = username.trim().to_lowercase();
    if !user.is_empty() && (lower == user || lower.contains(&user) && user.len() >= 4) {
        return Some("The password must not contain the username.".into());
    }
    let distinct: std::collections::HashSet<char> = lower.chars().collect();
    if distinct.len() < 4 {
        return Some(
            "The password repeats too few characters; choose something less predictable.".into(),
        );
    }
    if is_common(&lower) {
        return Some(
            "This password is on lists of commonly used passwords; choose another.".into(),
        );
    }
    None
}

/// Commonly used passwords of the accepted length (from public breach top-lists), plus
/// their stems so `password123456` is caught as well as `password`.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "0123456789",
    "9876543210",
    "0987654321",
    "1111111111",
    "qwertyuiop",
    "asdfghjkl;",
    "zxcvbnm123",
    "password",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "letmein",
    "welcome",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "basketball",
    "superman",
    "batman",
    "dragon",
    "monkey",
    "shadow",
    "master",
    "trustno1",
    "qwerty",
    "abc123",
    "admin",
    "administrator",
    "changeme",
    "default",
    "secret",
    "starwars",
    "pokemon",
    "whatever",
    "freedom",
    "computer",
    "internet",
    "michael",
    "jennifer",
    "jordan23",
    "charlie",
    "hunter2",
    "hearth",
    "plex",
    "jellyfin",
    "media",
    "server",
    "homeserver",
    "mediaserver",
    "raspberry",
    "raspberrypi",
    "qwertyuiop123",
    "1234qwer",
    "qazwsxedc",
    "zaq12wsx",
    "asdfghjkl",
    "asdfasdf",
    "aaaaaaaaaa",
    "abcdefghij",
    "abcd1234",
    "password1",
    "password12",
    "password123",
    "password1234",
    "welcome1",
    "welcome123",
    "letmein123",
    "iloveyou123",
    "sunshine1",
    "princess1",
    "football1",
    "monkey123",
    "dragon123",
    "baseball1",
    "qwerty123",
    "qwerty1234",
    "1q2w3e4r",
    "q1w2e3r4t5",
    "google",
    "facebook",
    "minecraft",
    "summer",
    "winter",
    "spring",
    "autumn",
    "family",
    "familie",
    "passwort",
    "motdepasse",
    "contraseña",
    "wachtwoord",
    "salasana",
    "lösenord",
    "hallo123",
];

fn is_common(lower: &str) -> bool {
    if COMMON.contains(&lower) {
        return true;
    }
    // A common word padded with digits or symbols is still a common password.
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || "!@#$%^&*.?_-".contains(c));
    let stem = stem.trim_start_matches(|c: char| c.is_ascii_digit());
    stem.len() < 4 || COMMON.contains(&stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("anything", decoy_hash()));
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("short", "anna", Some("too short")),
            ("password123", "anna", Some("commonly used")),
            ("Password2024!", "anna", Some("commonly used")),
            ("qwertyuiop", "anna", Some("commonly used")),
            ("1234567890", "anna", Some("commonly used")),
            ("anna-the-owner", "anna", Some("username")),
            ("aaaaaaaaaaaa", "anna", Some("too few")),
            ("2024-05-06!!", "anna", Some("commonly used")),
            ("correct horse battery staple", "anna", None),
            ("tea kettle at dawn", "bob", None),
        ];
        for (pw, user, want) in cases {
            let got = weakness(pw, user);
            match want {
                None => assert!(got.is_none(), "{pw:?} refused: {got:?}"),
                Some(w) => {
                    let got = got.unwrap_or_else(|| panic!("{pw:?} accepted"));
                    assert!(got.contains(w), "{pw:?}: {got}");
                }
            }
        }
        assert!(
            weakness(&"x".repeat(300), "anna")
                .unwrap()
                .contains("too long")
        );
    }
}
