//! Feeds arbitrary bytes to every parser that sees bundle bytes before or after the
//! signature check: preamble, signature block, header, index and the full meta check.
#![no_main]

use hearth::ota::bundle::{self, SIG_BLOCK_LEN};
use hearth::ota::keys::Keyring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bundle::parse_preamble(data);
    if data.len() >= SIG_BLOCK_LEN {
        let _ = bundle::SignatureBlock::parse(&data[..SIG_BLOCK_LEN]);
    }
    // The header parser alone, and the index parser against any header it accepts: the
    // first byte splits the input between the two.
    if let Some((&split, rest)) = data.split_first() {
        let cut = (split as usize * rest.len()) / 256;
        let (h, i) = rest.split_at(cut);
        if let Ok(header) = bundle::parse_header(h) {
            let _ = bundle::parse_index(i, &header);
        }
    }
    let _ = bundle::open_meta(data, Some(data.len() as u64), &Keyring::default());
});
