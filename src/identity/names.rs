//! Security-sensitive: usernames as people read them. A new name is normalised (NFKC) and
//! refused when it looks like a name already on the device — `оwner` with a Cyrillic о,
//! `ｏwner` in full width, `0wner` with a zero — so nobody can pass for someone else in
//! the profile picker, the devices list or the audit log. Looks are compared through
//! Unicode TR39 confusable skeletons, case-insensitively.

use icu_normalizer::ComposingNormalizerBorrowed;

use super::confusables::{ENDS, PROTOTYPES, SOURCES};

/// The name as Hearth keeps it: trimmed, in Unicode normalisation form KC (full-width,
/// ligature and other compatibility forms become their plain letters).
pub fn normalised(name: &str) -> String {
    ComposingNormalizerBorrowed::new_nfkc()
        .normalize(name.trim())
        .into_owned()
}

/// What a name looks like: every character replaced by the confusable prototype it stands
/// for, case folded. Two names with the same skeleton can be mistaken for each other.
pub fn skeleton(name: &str) -> String {
    let lower = normalised(name).to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        match prototype(c) {
            Some(p) => out.push_str(p),
            None => out.push(c),
        }
    }
    // Prototypes may be upper-case Latin (a zero stands for `O`).
    out.to_lowercase()
}

fn prototype(c: char) -> Option<&'static str> {
    let i = SOURCES.binary_search(&u32::from(c)).ok()?;
    let start = if i == 0 { 0 } else { usize::from(ENDS[i - 1]) };
    PROTOTYPES.get(start..usize::from(ENDS[i]))
}

/// The existing name `name` would be mistaken for, if any (`others`: every other user's
/// name).
pub fn lookalike<'a>(name: &str, others: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mine = skeleton(name);
    others.into_iter().find(|o| skeleton(o) == mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookalikes_share_a_skeleton_and_distinct_names_do_not() {
        let same: &[(&str, &str)] = &[
            ("owner13", "\u{43e}wner13"),       // Cyrillic о
            ("owner13", "\u{ff4f}wner13"),      // full-width ｏ
            ("owner13", "OWNER13"),             // case
            ("owner13", "0wner13"),             // zero for o
            ("paul", "\u{440}\u{430}ul"),       // Cyrillic р, а
            ("nico", "n\u{456}\u{441}\u{3bf}"), // Cyrillic і and с, Greek ο
            ("file", "\u{fb01}le"),             // the fi ligature
            ("mary", "rnary"),                  // rn for m
            ("lily", "1i1y"),                   // ones for ells
            ("anna", "\u{1d41a}nn\u{1d41a}"),   // mathematical bold a
            ("émile", "e\u{301}mile"),          // composed and combining accents
            ("ben_x", "ben\u{ff3f}x"),          // full-width low line
        ];
        for (a, b) in same {
            assert_eq!(
                skeleton(a),
                skeleton(b),
                "{a:?} and {b:?} should look alike"
            );
        }
        let different: &[(&str, &str)] = &[
            ("owner13", "owner14"),
            ("anna", "anne"),
            ("mia", "max"),
            ("lily", "lilly"),
            ("émile", "emile"),
            ("jörg", "jorg"),
        ];
        for (a, b) in different {
            assert_ne!(
                skeleton(a),
                skeleton(b),
                "{a:?} and {b:?} are different names"
            );
        }
    }

    #[test]
    fn names_are_kept_in_nfkc() {
        assert_eq!(normalised("  \u{ff41}nna "), "anna");
        assert_eq!(normalised("e\u{301}mile"), "\u{e9}mile");
        assert_eq!(normalised("\u{fb01}le"), "file");
    }

    #[test]
    fn lookalike_names_the_clash() {
        let users = ["anna", "Lily", "Guest"];
        assert_eq!(lookalike("\u{430}nna", users), Some("anna"));
        assert_eq!(lookalike("LILY", users), Some("Lily"));
        assert_eq!(lookalike("mia", users), None);
    }

    #[test]
    fn the_table_is_sorted_and_every_prototype_is_readable() {
        assert!(SOURCES.windows(2).all(|w| w[0] < w[1]));
        for (i, s) in SOURCES.iter().enumerate() {
            let c = char::from_u32(*s).unwrap();
            assert!(prototype(c).is_some_and(|p| !p.is_empty()), "{i}: {c:?}");
        }
    }
}
