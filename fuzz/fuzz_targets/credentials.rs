//! What a person types at a sign-in or PIN pad: TOTP codes, recovery codes, PINs and the
//! setup code. Nothing may panic, a code is accepted at most once, and a PIN or setup code
//! is accepted only in its documented form.
#![no_main]

use hearth::identity::{household, setup_code, totp};
use hearth::store::users::TotpRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (now, rest) = data.split_at(8);
    let now = u64::from_le_bytes(now.try_into().unwrap_or([0; 8]));
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let mut record = TotpRecord {
        secret: b"12345678901234567890".to_vec(),
        confirmed: true,
        last_step: 0,
        recovery_hashes: vec![hearth::identity::token::hash("abcde12345")],
    };
    if totp::check(&mut record, input, now) {
        // Accepted once; the same input straight after must be refused (replay), unless by
        // chance the next time step has the very same six digits.
        let next_same = input.trim().parse::<u32>().ok()
            == Some(totp::code_at(&record.secret, record.last_step + 1));
        if !next_same {
            assert!(!totp::check(&mut record, input, now), "code accepted twice");
        }
    }
    if household::valid_pin(input).is_ok() {
        assert!(input.len() == 4 && input.bytes().all(|b| b.is_ascii_digit()));
    }
    let code = "ABCD-EFGH-JKMN";
    if setup_code::matches(input, code) {
        assert_eq!(setup_code::normalize(input), "ABCDEFGHJKMN");
    }
});
