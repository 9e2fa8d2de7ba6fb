//! Security-sensitive: password hashing (argon2id) and the rules for acceptable passwords.

use std::num::NonZeroUsize;
use std::ptr::NonNull;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Shortest password accepted. Long passphrases beat complexity rules.
pub const MIN_LEN: usize = 10;
/// Longest accepted: argon2 handles any length, but a cap stops megabyte "passwords".
pub const MAX_LEN: usize = 256;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane. A Pi 4 does this in ~100 ms.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
/// A stored hash asking for more memory than this is refused rather than computed: a hash
/// restored from elsewhere must not make one sign-in take a gigabyte.
const MAX_M_COST_KIB: u32 = 64 * 1024;

fn params() -> Params {
    // The parameters are constants known to be valid, so this cannot fail.
    Params::new(M_COST_KIB, T_COST, 1, None).unwrap_or_default()
}

/// Argon2's working memory, mapped from the kernel for one computation and unmapped when
/// dropped. Going around malloc matters: glibc keeps freed blocks this size in per-thread
/// arenas (its mmap threshold grows to fit them), so a burst of sign-ins across the
/// blocking pool's threads used to leave hundreds of megabytes resident for good.
struct Scratch {
    ptr: NonNull<Block>,
    blocks: usize,
}

impl Scratch {
    fn new(blocks: usize) -> Result<Scratch, String> {
        let len = blocks
            .checked_mul(std::mem::size_of::<Block>())
            .and_then(NonZeroUsize::new)
            .ok_or("argon2 asked for no memory")?;
        use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
        // SAFETY: a fresh private anonymous mapping (no file, no fixed address) aliases
        // nothing; it is unmapped only in Drop.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .map_err(|e| format!("cannot map memory for argon2: {e}"))?;
        Ok(Scratch {
            ptr: ptr.cast(),
            blocks,
        })
    }
}

impl AsMut<[Block]> for Scratch {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: the mapping is page-aligned (Block needs 64), `blocks` Blocks long, zeroed
        // by the kernel (all-zero bits are a valid Block: plain u64s), and borrowed mutably
        // through `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.blocks) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let len = self.blocks * std::mem::size_of::<Block>();
        // SAFETY: exactly the mapping made in `new`, no longer borrowed.
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.ptr.cast(), len) } {
            tracing::warn!(error = %e, "could not unmap argon2 memory");
        }
    }
}

/// Runs argon2 into an output of `out_len` bytes with memory that is returned at once.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out_len: usize,
) -> Result<Output, String> {
    let mut scratch = Scratch::new(params.block_count())?;
    Output::init_with(out_len, |out| {
        argon
            .hash_password_into_with_memory(password, salt, out, &mut scratch)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| e.to_string())
}

/// Hashes a password into a PHC string. Slow by design: call it off the async runtime.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    let salt_string = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    let params = params();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = compute(
        &argon,
        &params,
        password.as_bytes(),
        &salt,
        Params::DEFAULT_OUTPUT_LEN,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt_string.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Checks a password against a stored PHC string (in constant time). Slow by design: call
/// it off the runtime.
pub fn verify(password: &str, phc: &str) -> bool {
    let check = || -> Option<bool> {
        let parsed = PasswordHash::new(phc).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .ok()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).ok()?;
        if params.m_cost() > MAX_M_COST_KIB {
            tracing::warn!("a stored password hash asks for too much memory; refusing it");
            return None;
        }
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let got = compute(&argon, &params, password.as_bytes(), salt, expected.len()).ok()?;
        Some(got == expected)
    };
    check().unwrap_or(false)
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
    fn hashes_are_standard_phc_strings() {
        // Made by the argon2 crate's own PasswordHasher: our verify must accept it, and the
        // crate must accept ours, so stored hashes keep working across the change.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        let theirs = argon
            .hash_password(b"tea kettle at dawn", &salt)
            .unwrap()
            .to_string();
        assert!(verify("tea kettle at dawn", &theirs));
        assert!(!verify("tea kettle at dusk", &theirs));
        let ours = hash("tea kettle at dawn").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon
                .verify_password(b"tea kettle at dawn", &parsed)
                .is_ok()
        );
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
    }

    #[test]
    fn absurd_memory_costs_are_refused() {
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify("anything", huge));
    }

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
