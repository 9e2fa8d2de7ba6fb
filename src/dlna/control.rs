//! Security-sensitive: the ContentDirectory and ConnectionManager actions, run against the
//! store through the viewer's access filters. `web::dlna` reads the HTTP request, decides
//! who the viewer is (the DLNA profile) and hands the parsed call here; the `soap` fuzz
//! target drives [`run`] with arbitrary bodies against a real store. What a player sees is
//! only ever what `access` lets through, and each answer holds at most [`MAX_RETURNED`]
//! objects whatever the request asks for.

use super::criteria;
use super::soap::{
    self, CONNECTION_MANAGER, CONTENT_DIRECTORY, Call, Fault, Links, PropertyFilter,
};
use super::tree::{self, Access, Object, ObjectId};
use crate::store::Store;

/// Most objects one Browse or Search returns; players page for more.
pub const MAX_RETURNED: usize = 1000;

/// Reads a SOAP body and runs it as an action of `service` (one of the two service types).
/// The web handlers do the same in steps (they check the `SOAPACTION` header and who asks
/// between reading and running).
pub fn run(
    store: &Store,
    access: &Access<'_>,
    links: &dyn Links,
    service: &str,
    body: &[u8],
) -> Result<Vec<u8>, Fault> {
    let call = soap::parse_call(body)?;
    if call.service != service {
        return Err(Fault::InvalidAction);
    }
    match service {
        CONTENT_DIRECTORY => content_directory(store, access, links, &call),
        CONNECTION_MANAGER => connection_manager(&call),
        _ => Err(Fault::InvalidAction),
    }
}

fn arg<'a>(call: &'a Call, name: &str) -> Result<&'a str, Fault> {
    call.arg(name).ok_or(Fault::InvalidArgs)
}

fn ui4(call: &Call, name: &str) -> Result<usize, Fault> {
    let v = arg(call, name)?.trim();
    v.parse::<u32>()
        .map(|n| n as usize)
        .map_err(|_| Fault::InvalidArgs)
}

/// SystemUpdateID: changes when a chosen library is rescanned (the end of its last scan).
fn system_update_id(store: &Store, access: &Access<'_>) -> Result<u32, Fault> {
    let libs = store
        .read(|rx| rx.libraries())
        .map_err(|_| Fault::ActionFailed)?;
    Ok(libs
        .iter()
        .filter(|l| (access.library)(l))
        .filter_map(|l| l.last_scan)
        .max()
        .unwrap_or(0) as u32)
}

/// Runs one ContentDirectory action. Blocks on the database.
pub fn content_directory(
    store: &Store,
    access: &Access<'_>,
    links: &dyn Links,
    call: &Call,
) -> Result<Vec<u8>, Fault> {
    let out = |args: &[(&str, String)]| soap::response(CONTENT_DIRECTORY, &call.action, args);
    match call.action.as_str() {
        "GetSearchCapabilities" => Ok(out(&[("SearchCaps", criteria::SEARCH_CAPABILITIES.into())])),
        "GetSortCapabilities" => Ok(out(&[("SortCaps", criteria::SORT_CAPABILITIES.into())])),
        "GetSystemUpdateID" => Ok(out(&[("Id", system_update_id(store, access)?.to_string())])),
        "Browse" | "Search" => {
            let browse = call.action == "Browse";
            let id_arg = if browse { "ObjectID" } else { "ContainerID" };
            let id = ObjectId::parse(arg(call, id_arg)?.trim());
            let filter = PropertyFilter::parse(arg(call, "Filter")?);
            let start = ui4(call, "StartingIndex")?;
            let count = ui4(call, "RequestedCount")?;
            let keys = criteria::parse_sort(arg(call, "SortCriteria")?)
                .map_err(|_| Fault::InvalidSortCriteria)?;
            let mut objects: Vec<Object> = if browse {
                let flag = arg(call, "BrowseFlag")?;
                let Some(id) = id else {
                    return Err(Fault::NoSuchObject);
                };
                match flag {
                    "BrowseMetadata" => {
                        if start != 0 {
                            return Err(Fault::InvalidArgs);
                        }
                        match tree::object(store, &id, access).map_err(|_| Fault::ActionFailed)? {
                            Some(o) => vec![o],
                            None => return Err(Fault::NoSuchObject),
                        }
                    }
                    "BrowseDirectChildren" => {
                        match tree::children(store, &id, access).map_err(|_| Fault::ActionFailed)? {
                            Some(c) => c,
                            None if matches!(id, ObjectId::Item(_)) => {
                                // An item has no children; the spec allows an empty answer.
                                match tree::object(store, &id, access)
                                    .map_err(|_| Fault::ActionFailed)?
                                {
                                    Some(_) => Vec::new(),
                                    None => return Err(Fault::NoSuchObject),
                                }
                            }
                            None => return Err(Fault::NoSuchObject),
                        }
                    }
                    _ => return Err(Fault::InvalidArgs),
                }
            } else {
                let crit = criteria::parse(arg(call, "SearchCriteria")?)
                    .map_err(|_| Fault::InvalidSearchCriteria)?;
                let Some(id) = id else {
                    return Err(Fault::NoSuchContainer);
                };
                tree::search(store, &id, &crit, access)
                    .map_err(|_| Fault::ActionFailed)?
                    .ok_or(Fault::NoSuchContainer)?
            };
            tree::sort(&mut objects, &keys);
            let total = objects.len();
            let take = if count == 0 {
                MAX_RETURNED
            } else {
                count.min(MAX_RETURNED)
            };
            let page: Vec<Object> = objects.into_iter().skip(start).take(take).collect();
            let didl = soap::didl(&page, &filter, links);
            let update = system_update_id(store, access)?;
            Ok(out(&[
                ("Result", didl),
                ("NumberReturned", page.len().to_string()),
                ("TotalMatches", total.to_string()),
                ("UpdateID", update.to_string()),
            ]))
        }
        _ => Err(Fault::InvalidAction),
    }
}

/// Runs one ConnectionManager action: one output-only connection (ID 0) that always exists.
pub fn connection_manager(call: &Call) -> Result<Vec<u8>, Fault> {
    let out = |args: &[(&str, String)]| soap::response(CONNECTION_MANAGER, &call.action, args);
    match call.action.as_str() {
        "GetProtocolInfo" => Ok(out(&[
            ("Source", super::profile::source_protocols()),
            ("Sink", String::new()),
        ])),
        "GetCurrentConnectionIDs" => Ok(out(&[("ConnectionIDs", "0".into())])),
        "GetCurrentConnectionInfo" => match call.arg("ConnectionID").map(str::trim) {
            Some("0") => Ok(out(&[
                ("RcsID", "-1".into()),
                ("AVTransportID", "-1".into()),
                ("ProtocolInfo", String::new()),
                ("PeerConnectionManager", String::new()),
                ("PeerConnectionID", "-1".into()),
                ("Direction", "Output".into()),
                ("Status", "OK".into()),
            ])),
            Some(_) => Err(Fault::InvalidConnectionReference),
            None => Err(Fault::InvalidArgs),
        },
        _ => Err(Fault::InvalidAction),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::{ItemRecord, LibraryRecord};

    struct NoLinks;
    impl Links for NoLinks {
        fn media_url(&self, id: u64) -> String {
            format!("http://h/{id}")
        }
    }

    fn call(service: &str, action: &str, args: &[(&str, &str)]) -> Vec<u8> {
        let inner: String = args
            .iter()
            .map(|(k, v)| format!("<{k}>{v}</{k}>"))
            .collect();
        format!(
            r#"<s:Envelope xmlns:s="{}"><s:Body><u:{action} xmlns:u="{service}">{inner}</u:{action}></s:Body></s:Envelope>"#,
            soap::SOAP_ENV
        )
        .into_bytes()
    }

    /// Each body with the fault it must give (or `None`: answered), through the same entry
    /// the `soap` fuzz target uses. The U+00A0 and U+3000 criteria once hung the tokenizer.
    #[test]
    fn calls_and_their_faults() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let (lib_ok, item_ok) = (|_: &LibraryRecord| true, |_: &ItemRecord| true);
        let access = Access {
            library: &lib_ok,
            item: &item_ok,
        };
        let browse = |id: &str, flag: &str, start: &str| {
            call(
                CONTENT_DIRECTORY,
                "Browse",
                &[
                    ("ObjectID", id),
                    ("BrowseFlag", flag),
                    ("Filter", "*"),
                    ("StartingIndex", start),
                    ("RequestedCount", "0"),
                    ("SortCriteria", ""),
                ],
            )
        };
        let search = |crit: &str| {
            call(
                CONTENT_DIRECTORY,
                "Search",
                &[
                    ("ContainerID", "0"),
                    ("SearchCriteria", crit),
                    ("Filter", "*"),
                    ("StartingIndex", "0"),
                    ("RequestedCount", "0"),
                    ("SortCriteria", ""),
                ],
            )
        };
        let cases: Vec<(&str, Vec<u8>, Option<Fault>)> = vec![
            ("root", browse("0", "BrowseDirectChildren", "0"), None),
            ("metadata", browse("0", "BrowseMetadata", "0"), None),
            (
                "metadata past 0",
                browse("0", "BrowseMetadata", "1"),
                Some(Fault::InvalidArgs),
            ),
            (
                "no such id",
                browse("l.7", "BrowseDirectChildren", "0"),
                Some(Fault::NoSuchObject),
            ),
            (
                "foreign id",
                browse("zz", "BrowseMetadata", "0"),
                Some(Fault::NoSuchObject),
            ),
            (
                "bad flag",
                browse("0", "Browse", "0"),
                Some(Fault::InvalidArgs),
            ),
            (
                "bad index",
                browse("0", "BrowseMetadata", "-1"),
                Some(Fault::InvalidArgs),
            ),
            ("search all", search("*"), None),
            (
                "nbsp",
                search("dc:title\u{a0}exists true"),
                Some(Fault::InvalidSearchCriteria),
            ),
            (
                "ideographic space",
                search("\u{3000}"),
                Some(Fault::InvalidSearchCriteria),
            ),
            (
                "criteria",
                search("dc:title = &quot;x"),
                Some(Fault::InvalidSearchCriteria),
            ),
            (
                "missing args",
                call(CONTENT_DIRECTORY, "Search", &[]),
                Some(Fault::InvalidArgs),
            ),
            (
                "unknown action",
                call(CONTENT_DIRECTORY, "DestroyObject", &[]),
                Some(Fault::InvalidAction),
            ),
            (
                "other service",
                call(CONNECTION_MANAGER, "GetSortCapabilities", &[]),
                Some(Fault::InvalidAction),
            ),
            ("not xml", b"\xff\xfe".to_vec(), Some(Fault::InvalidAction)),
        ];
        for (what, body, want) in cases {
            let got = run(&store, &access, &NoLinks, CONTENT_DIRECTORY, &body);
            assert_eq!(got.as_ref().err().copied(), want, "{what}");
        }
        let cm = |id: Option<&str>| {
            let args: Vec<(&str, &str)> = id.map(|i| ("ConnectionID", i)).into_iter().collect();
            let body = call(CONNECTION_MANAGER, "GetCurrentConnectionInfo", &args);
            run(&store, &access, &NoLinks, CONNECTION_MANAGER, &body).err()
        };
        assert_eq!(cm(Some(" 0 ")), None);
        assert_eq!(cm(Some("7")), Some(Fault::InvalidConnectionReference));
        assert_eq!(cm(None), Some(Fault::InvalidArgs));
    }
}
