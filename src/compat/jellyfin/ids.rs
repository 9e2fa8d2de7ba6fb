//! Jellyfin names everything with a GUID (32 hex digits, with or without dashes). Hearth's
//! ids are numbers per table, so a GUID here carries which table and which number: eight hex
//! digits of kind, eight of zeros, sixteen of id. Anything else is no id at all (404).

use std::fmt;

/// Which of Hearth's tables an id points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    /// A library, shown to apps as a view (a `CollectionFolder`).
    Library,
    Item,
}

impl Kind {
    fn tag(self) -> u32 {
        match self {
            Kind::User => 0x4845_0001,
            Kind::Library => 0x4845_0002,
            Kind::Item => 0x4845_0003,
        }
    }
}

/// An id as apps see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JfId {
    pub kind: Kind,
    pub id: u64,
}

impl JfId {
    pub fn user(id: u64) -> JfId {
        JfId {
            kind: Kind::User,
            id,
        }
    }
    pub fn library(id: u64) -> JfId {
        JfId {
            kind: Kind::Library,
            id,
        }
    }
    pub fn item(id: u64) -> JfId {
        JfId {
            kind: Kind::Item,
            id,
        }
    }

    /// Reads a GUID in either of Jellyfin's spellings (`N`: 32 hex digits; `D`: with dashes),
    /// any case. `None` for anything that is not one of ours.
    pub fn parse(s: &str) -> Option<JfId> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        // Dashes only where the `D` form puts them.
        if s.len() != 32
            && (s.len() != 36 || [8, 13, 18, 23].iter().any(|i| s.as_bytes()[*i] != b'-'))
        {
            return None;
        }
        let tag = u32::from_str_radix(&hex[0..8], 16).ok()?;
        if &hex[8..16] != "00000000" {
            return None;
        }
        let id = u64::from_str_radix(&hex[16..32], 16).ok()?;
        let kind = [Kind::User, Kind::Library, Kind::Item]
            .into_iter()
            .find(|k| k.tag() == tag)?;
        Some(JfId { kind, id })
    }

    /// Parses and insists on a kind.
    pub fn parse_as(s: &str, kind: Kind) -> Option<u64> {
        JfId::parse(s).filter(|j| j.kind == kind).map(|j| j.id)
    }
}

impl fmt::Display for JfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}00000000{:016x}", self.kind.tag(), self.id)
    }
}

/// The server's id: the device's stable UPnP uuid in the `N` form.
pub fn server_id(uuid: &str) -> String {
    uuid.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_both_spellings() {
        for j in [JfId::user(1), JfId::library(7), JfId::item(u64::MAX)] {
            let n = j.to_string();
            assert_eq!(n.len(), 32);
            assert_eq!(JfId::parse(&n), Some(j));
            assert_eq!(JfId::parse(&n.to_uppercase()), Some(j));
            let d = format!(
                "{}-{}-{}-{}-{}",
                &n[0..8],
                &n[8..12],
                &n[12..16],
                &n[16..20],
                &n[20..32]
            );
            assert_eq!(JfId::parse(&d), Some(j), "{d}");
        }
    }

    #[test]
    fn anything_else_is_no_id() {
        let item = JfId::item(5).to_string();
        for bad in [
            "",
            "5",
            "zz",
            &item[..31],
            &format!("{item}0"),
            "48450003000000010000000000000005", // the zeros are not zero
            "48450009000000000000000000000005", // unknown kind
            "4845-0003000000000000000000000005", // dashes in the wrong places
            "4845000300000000000000000000000g",
        ] {
            assert_eq!(JfId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(JfId::parse_as(&item, Kind::Library), None);
        assert_eq!(JfId::parse_as(&item, Kind::Item), Some(5));
    }
}
