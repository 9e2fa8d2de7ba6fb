//! Security-sensitive: two-factor sign-in with time-based one-time passwords (RFC 6238:
//! HMAC-SHA1, 30-second steps, 6 digits), as every authenticator app speaks it.

use ring::hmac;
use ring::rand::SecureRandom;

use crate::store::users::TotpRecord;

pub const STEP_SECS: u64 = 30;
const DIGITS: u32 = 6;
const SECRET_LEN: usize = 20;
const RECOVERY_CODES: usize = 8;

/// The 6-digit code for one time step (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(DIGITS)
}

/// RFC 4648 base32 without padding, as otpauth URLs carry secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHA: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buf: u64 = 0;
    let mut bits = 0;
    for &b in bytes {
        buf = (buf << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHA[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHA[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A new, unconfirmed enrolment and the recovery codes to show once.
pub fn enroll() -> Result<(TotpRecord, Vec<String>), String> {
    let rng = ring::rand::SystemRandom::new();
    let mut secret = vec![0u8; SECRET_LEN];
    rng.fill(&mut secret)
        .map_err(|_| "random number generator failed".to_owned())?;
    let mut codes = Vec::new();
    let mut hashes = Vec::new();
    for _ in 0..RECOVERY_CODES {
        let mut b = [0u8; 8];
        rng.fill(&mut b)
            .map_err(|_| "random number generator failed".to_owned())?;
        let code = base32(&b)[..10].to_lowercase();
        hashes.push(super::token::hash(&code));
        codes.push(code);
    }
    Ok((
        TotpRecord {
            secret,
            confirmed: false,
            recovery_hashes: hashes,
            last_step: 0,
        },
        codes,
    ))
}

pub fn otpauth_url(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// The otpauth URL as a QR code in SVG, for the enrolment page.
pub fn qr_svg(url: &str) -> Result<String, String> {
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|e| e.to_string())?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

/// Checks a code (or a recovery code) and updates the record: the step is remembered so a
/// code works once; a recovery code is used up. `false` on any mismatch.
pub fn check(record: &mut TotpRecord, input: &str, now_secs: u64) -> bool {
    let input = input.trim();
    if input.len() == 6 && input.bytes().all(|b| b.is_ascii_digit()) {
        let Ok(given) = input.parse::<u32>() else {
            return false;
        };
        let now_step = now_secs / STEP_SECS;
        // One step either side for clock drift between phone and device.
        for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
            if step > record.last_step && code_at(&record.secret, step) == given {
                record.last_step = step;
                return true;
            }
        }
        return false;
    }
    let normalized: String = input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if normalized.len() != 10 {
        return false;
    }
    let h = super::token::hash(&normalized);
    if let Some(pos) = record.recovery_hashes.iter().position(|x| *x == h) {
        record.recovery_hashes.remove(pos);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA1 seed "12345678901234567890", 8 digits → last 6 here.
        let secret = b"12345678901234567890";
        let cases = [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ];
        for (t, want8) in cases {
            assert_eq!(code_at(secret, t / 30), want8 % 1_000_000, "t={t}");
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn codes_work_once_and_recovery_codes_are_used_up() {
        let (mut rec, codes) = enroll().unwrap();
        let now = 1_700_000_000;
        let code = format!("{:06}", code_at(&rec.secret, now / 30));
        assert!(check(&mut rec, &code, now));
        assert!(!check(&mut rec, &code, now), "replay refused");
        assert!(
            !check(&mut rec, "000000", now + 300) || code_at(&rec.secret, (now + 300) / 30) == 0
        );
        assert!(check(&mut rec, &codes[0].to_uppercase(), now));
        assert!(!check(&mut rec, &codes[0], now), "recovery code used up");
        assert_eq!(rec.recovery_hashes.len(), 7);
        assert!(!check(&mut rec, "not a code", now));
        let url = otpauth_url(&rec.secret, "Hearth Den", "anna");
        assert!(url.starts_with("otpauth://totp/Hearth%20Den:anna?secret="));
        assert!(qr_svg(&url).unwrap().contains("<svg"));
    }
}
