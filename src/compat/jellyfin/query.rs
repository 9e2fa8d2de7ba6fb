//! Query parameters and JSON bodies the way Jellyfin reads them: names in any case
//! (`ParentId`, `parentId`, `parentid` — apps differ), lists comma-separated.

use std::collections::HashMap;

use crate::library::{ItemKind, ItemSort};

/// The largest page an app may ask for at once.
pub const MAX_LIMIT: usize = 500;

/// Query parameters by lower-cased name. A repeated name is a list, joined with commas: the
/// official SDK sends `IncludeItemTypes=Movie&IncludeItemTypes=Episode` where others send
/// `IncludeItemTypes=Movie,Episode`.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        let mut map: HashMap<String, String> = HashMap::new();
        for (k, v) in pairs {
            map.entry(k.to_ascii_lowercase())
                .and_modify(|old| {
                    if !v.is_empty() {
                        if !old.is_empty() {
                            old.push(',');
                        }
                        old.push_str(&v);
                    }
                })
                .or_insert(v);
        }
        Params(map)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A comma-separated list (empty when absent).
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A number; a present but unreadable one is an error naming the parameter.
    pub fn number(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{name} must be a whole number, not {v:?}.")),
        }
    }
}

/// A JSON body's field by name, in any case (Jellyfin binds bodies case-insensitively).
pub fn field<'a>(body: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Which kinds of item a listing asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kinds {
    Any,
    /// Only these; empty when the app asked only for kinds Hearth does not have as items
    /// yet (series, seasons, albums, artists…), so the answer is an empty page.
    Only(Vec<ItemKind>),
}

impl Kinds {
    pub fn admits(&self, kind: Option<ItemKind>) -> bool {
        match self {
            Kinds::Any => true,
            Kinds::Only(ks) => kind.is_some_and(|k| ks.contains(&k)),
        }
    }
}

/// A `GET /Items` query, as far as Hearth serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemsQuery {
    /// A view (library) or an item id, as the app sent it.
    pub parent_id: Option<String>,
    pub start: usize,
    pub limit: usize,
    pub sort: ItemSort,
    pub descending: bool,
    pub kinds: Kinds,
    pub recursive: bool,
    /// `Ids=a,b,c`: exactly these items (those visible).
    pub ids: Vec<String>,
    /// `SearchTerm=`.
    pub search: Option<String>,
}

impl ItemsQuery {
    pub fn from_params(p: &Params) -> Result<ItemsQuery, String> {
        let start = p.number("StartIndex")?.unwrap_or(0) as usize;
        let limit = (p.number("Limit")?.unwrap_or(100) as usize).clamp(0, MAX_LIMIT);
        let sort = p
            .list("SortBy")
            .into_iter()
            .find_map(|s| match s.to_ascii_lowercase().as_str() {
                "sortname" | "name" => Some(ItemSort::Title),
                "productionyear" | "premieredate" => Some(ItemSort::Year),
                "datecreated" | "dateadded" => Some(ItemSort::Added),
                _ => None,
            })
            .unwrap_or(ItemSort::Title);
        let descending = p
            .list("SortOrder")
            .first()
            .is_some_and(|o| o.eq_ignore_ascii_case("descending"));
        let types = p.list("IncludeItemTypes");
        let kinds = if types.is_empty() {
            Kinds::Any
        } else {
            let mut ks: Vec<ItemKind> = types
                .iter()
                .filter_map(|t| match t.to_ascii_lowercase().as_str() {
                    "movie" => Some(ItemKind::Movie),
                    "episode" => Some(ItemKind::Episode),
                    "audio" => Some(ItemKind::Track),
                    "photo" => Some(ItemKind::Photo),
                    "video" | "musicvideo" => Some(ItemKind::Video),
                    _ => None,
                })
                .collect();
            ks.dedup();
            Kinds::Only(ks)
        };
        let search = p
            .get("SearchTerm")
            .map(|s| s.chars().take(200).collect::<String>());
        let ids: Vec<String> = p
            .list("Ids")
            .into_iter()
            .take(MAX_LIMIT)
            .map(str::to_owned)
            .collect();
        Ok(ItemsQuery {
            parent_id: p.get("ParentId").map(str::to_owned),
            start,
            limit,
            sort,
            descending,
            kinds,
            recursive: p.flag("Recursive").unwrap_or(false),
            ids,
            search,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> Params {
        Params::from_pairs(q.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn names_in_any_case() {
        let p = params(&[("parentId", "x"), ("STARTINDEX", "20"), ("limit", "5")]);
        let q = ItemsQuery::from_params(&p).unwrap();
        assert_eq!(q.parent_id.as_deref(), Some("x"));
        assert_eq!((q.start, q.limit), (20, 5));
    }

    #[test]
    fn sorting_kinds_and_limits() {
        let p = params(&[
            ("SortBy", "DateCreated,SortName"),
            ("SortOrder", "Descending"),
            ("IncludeItemTypes", "Movie,Series,Episode"),
            ("Limit", "100000"),
            ("Recursive", "true"),
        ]);
        let q = ItemsQuery::from_params(&p).unwrap();
        assert_eq!(q.sort, ItemSort::Added);
        assert!(q.descending && q.recursive);
        assert_eq!(q.limit, MAX_LIMIT);
        assert_eq!(
            q.kinds,
            Kinds::Only(vec![ItemKind::Movie, ItemKind::Episode])
        );
        // Only kinds Hearth has no items of: an empty answer, not everything.
        let q = ItemsQuery::from_params(&params(&[("IncludeItemTypes", "Series,BoxSet")])).unwrap();
        assert_eq!(q.kinds, Kinds::Only(vec![]));
        assert!(!q.kinds.admits(Some(ItemKind::Movie)));
        assert!(Kinds::Any.admits(None));
    }

    #[test]
    fn repeated_names_are_lists() {
        let p = params(&[
            ("includeItemTypes", "Movie"),
            ("IncludeItemTypes", "Episode"),
            ("ids", ""),
            ("Ids", "a"),
        ]);
        assert_eq!(p.list("IncludeItemTypes"), ["Movie", "Episode"]);
        assert_eq!(p.list("Ids"), ["a"]);
    }

    #[test]
    fn bad_numbers_are_named() {
        let e = ItemsQuery::from_params(&params(&[("StartIndex", "-1")])).unwrap_err();
        assert!(e.contains("StartIndex"), "{e}");
    }

    #[test]
    fn body_fields_in_any_case() {
        let v = serde_json::json!({"username": "anna", "Pw": "x"});
        assert_eq!(field(&v, "Username").and_then(|v| v.as_str()), Some("anna"));
        assert_eq!(field(&v, "pw").and_then(|v| v.as_str()), Some("x"));
        assert!(field(&v, "Password").is_none());
    }
}
