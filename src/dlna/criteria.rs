//! The ContentDirectory:1 search-criteria language (section 2.5.5 of the service
//! specification) and sort criteria, parsed into a tree and evaluated against objects. A
//! criteria string comes from any player on the LAN: parsing is bounded in length and depth.
//!
//! ```text
//! searchCrit  ::= searchExp | '*'
//! searchExp   ::= relExp | searchExp wChar+ logOp wChar+ searchExp | '(' wChar* searchExp wChar* ')'
//! logOp       ::= 'and' | 'or'
//! relExp      ::= property wChar+ binOp wChar+ quotedVal | property wChar+ existsOp wChar+ boolVal
//! binOp       ::= relOp | stringOp
//! relOp       ::= '=' | '!=' | '<' | '<=' | '>' | '>='
//! stringOp    ::= 'contains' | 'doesNotContain' | 'derivedfrom'
//! existsOp    ::= 'exists'
//! ```

/// Longest criteria string accepted.
pub const MAX_LEN: usize = 2048;
/// Deepest nesting of parentheses and operators accepted.
const MAX_DEPTH: usize = 32;

/// Properties this server can search on (the answer to GetSearchCapabilities).
pub const SEARCH_CAPABILITIES: &str =
    "@id,@parentID,upnp:class,dc:title,dc:creator,upnp:artist,upnp:album,upnp:genre,dc:date";
/// Properties this server can sort on (the answer to GetSortCapabilities).
pub const SORT_CAPABILITIES: &str =
    "dc:title,dc:date,upnp:class,upnp:originalTrackNumber,dc:creator,upnp:artist,upnp:album";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    DoesNotContain,
    DerivedFrom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `*`: everything.
    All,
    Rel {
        property: String,
        op: Op,
        value: String,
    },
    Exists {
        property: String,
        exists: bool,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid search criteria: {0}")]
pub struct CriteriaError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, CriteriaError> {
    Err(CriteriaError(m.into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

/// `wChar` of the grammar. Only these separate words: other Unicode white space (a
/// no-break space, say) is part of a word, and no property or operator contains it.
fn is_wchar(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}')
}

fn tokens(s: &str) -> Result<Vec<Tok>, CriteriaError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if is_wchar(c) => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Tok::Open);
            }
            ')' => {
                chars.next();
                out.push(Tok::Close);
            }
            '"' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next() {
                        None => return err("a quoted value is not closed"),
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => v.push(c),
                            _ => return err("only \\\" and \\\\ may be escaped"),
                        },
                        Some('"') => break,
                        Some(c) => v.push(c),
                    }
                }
                out.push(Tok::Quoted(v));
            }
            _ => {
                let mut w = String::new();
                // Stops only at what the arms above consume, so every word holds at least
                // one character and the outer loop always moves on.
                while let Some(&c) = chars.peek() {
                    if is_wchar(c) || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

/// Parses a criteria string.
pub fn parse(s: &str) -> Result<Expr, CriteriaError> {
    if s.len() > MAX_LEN {
        return err("the criteria are too long");
    }
    let toks = tokens(s)?;
    if toks == [Tok::Word("*".into())] {
        return Ok(Expr::All);
    }
    if toks.is_empty() {
        return err("the criteria are empty");
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or(0)?;
    if p.pos != p.toks.len() {
        return err("unexpected text after the end of an expression");
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    // `and` binds tighter than `or`, as in the specification's examples.
    fn or(&mut self, depth: usize) -> Result<Expr, CriteriaError> {
        let mut left = self.and(depth + 1)?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and(depth + 1)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, CriteriaError> {
        let mut left = self.primary(depth + 1)?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.primary(depth + 1)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, CriteriaError> {
        if depth > MAX_DEPTH {
            return err("the criteria are nested too deeply");
        }
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or(depth + 1)?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => err("a parenthesis is not closed"),
                }
            }
            Some(Tok::Word(property)) => {
                if !is_property(&property) {
                    return err(format!("{property:?} is not a property name"));
                }
                let op = match self.next() {
                    Some(Tok::Word(op)) => op,
                    _ => return err(format!("an operator must follow {property}")),
                };
                if op == "exists" {
                    let exists = match self.next() {
                        Some(Tok::Word(b)) if b == "true" => true,
                        Some(Tok::Word(b)) if b == "false" => false,
                        _ => return err("exists takes true or false"),
                    };
                    return Ok(Expr::Exists { property, exists });
                }
                let op = match op.as_str() {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    "contains" => Op::Contains,
                    "doesNotContain" => Op::DoesNotContain,
                    "derivedfrom" => Op::DerivedFrom,
                    other => return err(format!("{other:?} is not an operator")),
                };
                let value = match self.next() {
                    Some(Tok::Quoted(v)) => v,
                    _ => return err("values must be in double quotes"),
                };
                Ok(Expr::Rel {
                    property,
                    op,
                    value,
                })
            }
            _ => err("expected a property or a parenthesis"),
        }
    }
}

fn is_property(p: &str) -> bool {
    let body = p.strip_prefix('@').unwrap_or(p);
    !body.is_empty()
        && p.len() <= 64
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '@' | '_' | '-' | '.'))
}

/// What an object offers to criteria: the values of a property (none, one or several).
pub trait Searchable {
    fn values(&self, property: &str) -> Vec<String>;
}

impl Expr {
    /// Whether `obj` matches. Unknown properties have no values: `=` is false, `!=` true,
    /// `exists false` true (the specification's reading).
    pub fn matches(&self, obj: &impl Searchable) -> bool {
        match self {
            Expr::All => true,
            Expr::And(a, b) => a.matches(obj) && b.matches(obj),
            Expr::Or(a, b) => a.matches(obj) || b.matches(obj),
            Expr::Exists { property, exists } => obj.values(property).is_empty() != *exists,
            Expr::Rel {
                property,
                op,
                value,
            } => {
                let vals = obj.values(property);
                let want = value.to_lowercase();
                let any = |f: &dyn Fn(&str) -> bool| vals.iter().any(|v| f(&v.to_lowercase()));
                match op {
                    Op::Eq => any(&|v| v == want),
                    Op::Ne => !any(&|v| v == want),
                    Op::Contains => any(&|v| v.contains(&want)),
                    Op::DoesNotContain => !any(&|v| v.contains(&want)),
                    // `object.item.videoItem` is derived from `object.item` and from itself.
                    Op::DerivedFrom => any(&|v| {
                        v == want
                            || (v.starts_with(&want) && v.as_bytes().get(want.len()) == Some(&b'.'))
                    }),
                    Op::Lt => any(&|v| compare(v, &want).is_lt()),
                    Op::Le => any(&|v| compare(v, &want).is_le()),
                    Op::Gt => any(&|v| compare(v, &want).is_gt()),
                    Op::Ge => any(&|v| compare(v, &want).is_ge()),
                }
            }
        }
    }
}

/// Numbers compare as numbers, everything else (dates in ISO form included) as text.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// One key of a sort: the property and whether it sorts descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub property: String,
    pub descending: bool,
}

/// Parses `+dc:title,-dc:date`; an empty string means the server's natural order.
pub fn parse_sort(s: &str) -> Result<Vec<SortKey>, CriteriaError> {
    if s.len() > MAX_LEN {
        return err("the sort criteria are too long");
    }
    let mut keys = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (descending, property) = match part.as_bytes()[0] {
            b'+' => (false, &part[1..]),
            b'-' => (true, &part[1..]),
            _ => return err(format!("{part:?} must start with + or -")),
        };
        let supported = SORT_CAPABILITIES.split(',').any(|p| p == property);
        if !supported {
            return err(format!("cannot sort by {property:?}"));
        }
        keys.push(SortKey {
            property: property.to_owned(),
            descending,
        });
        if keys.len() > 8 {
            return err("too many sort keys");
        }
    }
    Ok(keys)
}

/// Orders two objects by sort keys: numbers as numbers, text case-insensitively; a missing
/// value sorts first.
pub fn sort_order(
    keys: &[SortKey],
    a: &impl Searchable,
    b: &impl Searchable,
) -> std::cmp::Ordering {
    for k in keys {
        let first = |o: &dyn Fn(&str) -> Vec<String>| {
            o(&k.property).into_iter().next().map(|v| v.to_lowercase())
        };
        let (x, y) = (first(&|p| a.values(p)), first(&|p| b.values(p)));
        let ord = match (&x, &y) {
            (Some(x), Some(y)) => compare(x, y),
            _ => x.cmp(&y),
        };
        let ord = if k.descending { ord.reverse() } else { ord };
        if ord.is_ne() {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Obj(Vec<(&'static str, &'static str)>);
    impl Searchable for Obj {
        fn values(&self, p: &str) -> Vec<String> {
            self.0
                .iter()
                .filter(|(k, _)| *k == p)
                .map(|(_, v)| v.to_string())
                .collect()
        }
    }

    fn track() -> Obj {
        Obj(vec![
            ("upnp:class", "object.item.audioItem.musicTrack"),
            ("dc:title", "Harbour Lights"),
            ("upnp:artist", "The Gulls"),
            ("dc:creator", "The Gulls"),
            ("upnp:album", "Low Tide"),
            ("upnp:genre", "Folk"),
            ("dc:date", "2019-01-01"),
            ("upnp:originalTrackNumber", "3"),
        ])
    }

    /// The examples of the ContentDirectory:1 specification (section 2.5.5.1) and the
    /// criteria real players send, each with whether our music track matches.
    #[test]
    fn specification_examples_and_player_criteria() {
        let cases = [
            ("*", true),
            ("upnp:class = \"object.item.audioItem.musicTrack\"", true),
            ("upnp:class derivedfrom \"object.item.audioItem\"", true),
            ("upnp:class derivedfrom \"object.item\"", true),
            ("upnp:class derivedfrom \"object.item.audio\"", false),
            ("upnp:class derivedfrom \"object.item.videoItem\"", false),
            (
                "(upnp:class = \"object.item.audioItem.musicTrack\" and dc:title contains \"harbour\")",
                true,
            ),
            (
                "dc:title contains \"Lights\" and upnp:artist = \"The Gulls\"",
                true,
            ),
            ("dc:creator = \"Sting\"", false),
            ("upnp:artist = \"Sting\" or upnp:album = \"Low Tide\"", true),
            (
                "dc:date >= \"2001-10-01\" and dc:date <= \"2021-10-31\"",
                true,
            ),
            ("dc:date < \"2001-10-01\"", false),
            ("upnp:genre doesNotContain \"rock\"", true),
            ("upnp:album exists true", true),
            ("upnp:author exists true", false),
            ("upnp:author exists false", true),
            ("upnp:originalTrackNumber > \"2\"", true),
            ("upnp:originalTrackNumber > \"10\"", false),
            ("dc:title != \"Harbour Lights\"", false),
            (
                "upnp:class derivedfrom \"object.item.videoItem\" or (upnp:class derivedfrom \"object.item.audioItem\" and (upnp:genre = \"folk\"))",
                true,
            ),
            ("dc:title contains \"say \\\"hi\\\"\"", false),
        ];
        for (c, want) in cases {
            let e = parse(c).unwrap_or_else(|e| panic!("{c}: {e}"));
            assert_eq!(e.matches(&track()), want, "{c}");
        }
    }

    #[test]
    fn malformed_criteria_are_refused() {
        let long = format!("dc:title = \"{}\"", "a".repeat(MAX_LEN));
        let deep = format!("{}dc:title exists true{}", "(".repeat(100), ")".repeat(100));
        for c in [
            "",
            "   ",
            "dc:title",
            "dc:title =",
            "dc:title = unquoted",
            "dc:title = \"open",
            "dc:title like \"x\"",
            "(dc:title exists true",
            "dc:title exists true)",
            "dc:title exists maybe",
            "dc:title exists true and",
            "and dc:title exists true",
            "dc:title = \"a\" xor dc:title = \"b\"",
            "\"dc:title\" = \"x\"",
            "dc:title = \"bad \\escape\"",
            &long,
            &deep,
        ] {
            assert!(parse(c).is_err(), "{c:?} must be refused");
        }
    }

    /// Found while writing the `soap` fuzz target: white space outside ASCII (U+00A0, U+3000
    /// …) ended a word before its first character and was never consumed, so the tokenizer
    /// pushed empty words forever: one Search from any player on the LAN held a thread and
    /// ate memory until the server died.
    struct Title(String);
    impl Searchable for Title {
        fn values(&self, p: &str) -> Vec<String> {
            if p == "dc:title" {
                vec![self.0.clone()]
            } else {
                Vec::new()
            }
        }
    }

    #[test]
    fn unicode_white_space_cannot_stall_the_tokenizer() {
        for c in ["\u{a0}", "\u{85}", "\u{2028}", "\u{3000}", "\u{1680}"] {
            for crit in [
                c.to_owned(),
                format!("dc:title{c}= \"x\""),
                format!("dc:title ={c}\"x\""),
                format!("({c}dc:title exists true)"),
            ] {
                assert!(parse(&crit).is_err(), "{crit:?} must be refused");
            }
            // Inside a quoted value it is just a character.
            let e = parse(&format!("dc:title contains \"a{c}b\"")).unwrap();
            assert!(e.matches(&Title(format!("Harbour a{c}b"))));
            assert!(!e.matches(&Title("Harbour a b".into())));
        }
    }

    #[test]
    fn sort_criteria() {
        let k = parse_sort("+dc:title,-dc:date").unwrap();
        assert_eq!(k.len(), 2);
        assert!(k[1].descending);
        assert!(parse_sort("").unwrap().is_empty());
        assert!(parse_sort("dc:title").is_err());
        assert!(parse_sort("+upnp:rating").is_err());
        let a = Obj(vec![("dc:title", "b"), ("upnp:originalTrackNumber", "10")]);
        let b = Obj(vec![("dc:title", "A"), ("upnp:originalTrackNumber", "9")]);
        use std::cmp::Ordering::*;
        assert_eq!(
            sort_order(&parse_sort("+dc:title").unwrap(), &a, &b),
            Greater
        );
        assert_eq!(sort_order(&parse_sort("-dc:title").unwrap(), &a, &b), Less);
        assert_eq!(
            sort_order(&parse_sort("+upnp:originalTrackNumber").unwrap(), &a, &b),
            Greater
        );
    }
}
