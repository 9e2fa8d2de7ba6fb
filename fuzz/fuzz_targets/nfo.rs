//! NFO sidecars are XML written by other programs (or by anyone who can put a file on a
//! disk): the parser must never panic, and what it keeps must be bounded by its input.
#![no_main]

use hearth::library::nfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nfo::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nfo::ContentRating::parse(text);
    }
});
