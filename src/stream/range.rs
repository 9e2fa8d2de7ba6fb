//! HTTP conditional and range request rules (RFC 9110 §13–14) as pure functions:
//! `Range`, `If-Range`, `If-None-Match`, entity tags and HTTP dates.

/// What to send for a `Range` header against a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// The whole file, 200.
    Full,
    /// One or more byte ranges (inclusive), 206.
    Partial(Vec<(u64, u64)>),
    /// None of the ranges overlaps the file: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// More ranges than this in one request are answered with the whole file (allowed by the
/// RFC, and it stops a request for thousands of tiny ranges from amplifying work).
pub const MAX_RANGES: usize = 16;

/// Interprets a `Range` header. Syntax errors make the header ignored (full answer), as the
/// RFC asks; ranges past the end are dropped; overlapping ones are merged.
pub fn plan(header: Option<&str>, len: u64) -> RangePlan {
    let Some(h) = header else {
        return RangePlan::Full;
    };
    let Some((unit, set)) = h.split_once('=') else {
        return RangePlan::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangePlan::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return RangePlan::Full;
    }
    let mut ranges = Vec::new();
    for spec in specs {
        let Some((a, b)) = spec.split_once('-') else {
            return RangePlan::Full;
        };
        let (a, b) = (a.trim(), b.trim());
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        if a.is_empty() {
            // Suffix: the last `n` bytes.
            let Some(n) = num(b) else {
                return RangePlan::Full;
            };
            if n > 0 && len > 0 {
                ranges.push((len - n.min(len), len - 1));
            }
            continue;
        }
        let Some(start) = num(a) else {
            return RangePlan::Full;
        };
        let end = if b.is_empty() {
            u64::MAX
        } else {
            match num(b) {
                Some(e) if e >= start => e,
                _ => return RangePlan::Full,
            }
        };
        if start < len {
            ranges.push((start, end.min(len - 1)));
        }
    }
    if ranges.is_empty() {
        return RangePlan::Unsatisfiable;
    }
    // Merge overlapping or touching ranges, keeping the first-asked order otherwise simple:
    // clients asking for overlaps get them once, in ascending order.
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    RangePlan::Partial(merged)
}

/// A strong entity tag from a file's size and modification time.
pub fn etag(size: u64, mtime_ns: u64) -> String {
    format!("\"{size:x}-{mtime_ns:x}\"")
}

/// `If-None-Match`: true when one of the listed tags (weak comparison) or `*` matches.
pub fn none_match_hits(header: Option<&str>, etag: &str) -> bool {
    let Some(h) = header else { return false };
    let bare = etag.trim_start_matches("W/");
    h.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

/// `If-Range`: true when the range may be honoured (the validator still matches, strong
/// comparison for tags, exact match for dates); a missing header always allows ranges.
pub fn if_range_allows(header: Option<&str>, etag: &str, last_modified: &str) -> bool {
    match header.map(str::trim) {
        None => true,
        Some(v) if v.starts_with("W/") => false,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) => v == last_modified,
    }
}

/// An IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = crate::library::scan::format_unix(unix_secs);
    // iso = YYYY-MM-DDTHH:MM:SS
    let (y, mo, d, t) = (&iso[0..4], &iso[5..7], &iso[8..10], &iso[11..19]);
    let month = mo.parse::<usize>().unwrap_or(1).clamp(1, 12);
    let weekday = DAYS[((unix_secs / 86_400) % 7) as usize];
    format!("{weekday}, {d} {} {y} {t} GMT", MONTHS[month - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangePlan::*;

    #[test]
    fn range_table() {
        let len = 1000;
        let cases: &[(Option<&str>, RangePlan)] = &[
            (None, Full),
            (Some("bytes=0-99"), Partial(vec![(0, 99)])),
            (Some("bytes=500-"), Partial(vec![(500, 999)])),
            (Some("bytes=-100"), Partial(vec![(900, 999)])),
            (Some("bytes=-5000"), Partial(vec![(0, 999)])),
            (Some("bytes=990-2000"), Partial(vec![(990, 999)])),
            (Some("bytes=0-0,-1"), Partial(vec![(0, 0), (999, 999)])),
            (Some("bytes=0-9, 20-29"), Partial(vec![(0, 9), (20, 29)])),
            (Some("bytes=20-29,0-9"), Partial(vec![(0, 9), (20, 29)])),
            (Some("bytes=0-50,40-99"), Partial(vec![(0, 99)])),
            (Some("bytes=0-9,10-19"), Partial(vec![(0, 19)])),
            (Some("BYTES=0-1"), Partial(vec![(0, 1)])),
            (Some("bytes=1000-"), Unsatisfiable),
            (Some("bytes=5000-6000"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=1000-,2000-"), Unsatisfiable),
            (Some("bytes=1000-,0-0"), Partial(vec![(0, 0)])),
            (Some("bytes=9-5"), Full),
            (Some("bytes=abc"), Full),
            (Some("bytes=1-2-3"), Full),
            (Some("bytes=--5"), Full),
            (Some("bytes=+1-5"), Full),
            (Some("items=0-5"), Full),
            (Some("bytes="), Full),
            (Some("0-5"), Full),
            (Some("bytes=99999999999999999999-"), Full),
        ];
        for (h, want) in cases {
            assert_eq!(&plan(*h, len), want, "{h:?}");
        }
        let many = format!(
            "bytes={}",
            (0..17)
                .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(plan(Some(&many), len), Full);
        assert_eq!(plan(Some("bytes=0-5"), 0), Unsatisfiable);
        assert_eq!(plan(Some("bytes=-5"), 0), Unsatisfiable);
    }

    #[test]
    fn validators() {
        let tag = etag(1000, 42);
        assert_eq!(tag, "\"3e8-2a\"");
        assert!(none_match_hits(Some(&tag), &tag));
        assert!(none_match_hits(Some(&format!("\"x\", W/{tag}")), &tag));
        assert!(none_match_hits(Some("*"), &tag));
        assert!(!none_match_hits(Some("\"other\""), &tag));
        assert!(!none_match_hits(None, &tag));
        let lm = http_date(784_111_777);
        assert_eq!(lm, "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(if_range_allows(None, &tag, &lm));
        assert!(if_range_allows(Some(&tag), &tag, &lm));
        assert!(!if_range_allows(Some("\"stale\""), &tag, &lm));
        assert!(!if_range_allows(Some(&format!("W/{tag}")), &tag, &lm));
        assert!(if_range_allows(Some(&lm), &tag, &lm));
        assert!(!if_range_allows(
            Some("Mon, 07 Nov 1994 08:49:37 GMT"),
            &tag,
            &lm
        ));
    }
}
