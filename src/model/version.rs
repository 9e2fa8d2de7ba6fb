//! Release versions: `MAJOR.MINOR.PATCH`, compared numerically.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Version(pub u32, pub u32, pub u32);

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a version; use MAJOR.MINOR.PATCH, e.g. 1.4.2")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Version, BadVersion> {
        let bad = || BadVersion(s.chars().take(40).collect());
        if s.len() > 32 {
            return Err(bad());
        }
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, BadVersion> {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let v = Version(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_numerically() {
        let table = [
            ("1.2.3", Some(Version(1, 2, 3))),
            ("0.10.0", Some(Version(0, 10, 0))),
            ("1.2", None),
            ("1.2.3.4", None),
            ("1.-2.3", None),
            ("1.2.x", None),
            ("", None),
            ("9999999999.0.0", None),
        ];
        for (s, want) in table {
            assert_eq!(s.parse::<Version>().ok(), want, "{s}");
        }
        assert!(Version(0, 10, 0) > Version(0, 9, 9));
    }
}
