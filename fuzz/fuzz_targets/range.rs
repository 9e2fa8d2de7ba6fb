//! The `Range`, `If-Range` and `If-None-Match` headers of a streaming request: any header
//! text against any file length. Every planned range must lie inside the file, be
//! non-empty, sorted and disjoint, and there are never more than MAX_RANGES of them.
#![no_main]

use hearth::stream::range::{self, MAX_RANGES, RangePlan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len_bytes, rest) = data.split_at(8);
    let mut len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8]));
    // Half the time a realistic length, so the interesting cases are reached.
    if len & 1 == 0 {
        len %= 1 << 20;
    }
    let Ok(header) = std::str::from_utf8(rest) else {
        return;
    };
    match range::plan(Some(header), len) {
        RangePlan::Full | RangePlan::Unsatisfiable => {}
        RangePlan::Partial(ranges) => {
            assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
            let mut prev_end: Option<u64> = None;
            for &(s, e) in &ranges {
                assert!(s <= e, "empty range {s}-{e}");
                assert!(e < len, "range {s}-{e} past the end of {len}");
                if let Some(p) = prev_end {
                    assert!(s > p.saturating_add(1), "ranges not merged: {ranges:?}");
                }
                prev_end = Some(e);
            }
        }
    }
    let etag = range::etag(len, len.rotate_left(7));
    let _ = range::none_match_hits(Some(header), &etag);
    let _ = range::if_range_allows(Some(header), &etag, &range::http_date(len % (1 << 40)));
});
