//! DLNA over HTTP against the real server on loopback: the owner's settings API, the device
//! description, ContentDirectory Browse and Search checked against the ContentDirectory:1
//! specification's rules (paging, sort, metadata, criteria), ConnectionManager, the media
//! bytes with ranges, malformed and oversized SOAP, and home mode. Discovery over real
//! multicast (SSDP, mDNS) is in the netns tier (`tests/netns`).

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, get, send};
use quick_xml::events::Event;
use serde_json::{Value, json};

const CD: &str = "urn:schemas-upnp-org:service:ContentDirectory:1";
const CM: &str = "urn:schemas-upnp-org:service:ConnectionManager:1";

fn media(dir: &str) -> String {
    common::test_media()
        .join(dir)
        .canonicalize()
        .expect("the generated test media")
        .to_str()
        .unwrap()
        .to_owned()
}

fn library(s: &TestServer, token: &str, name: &str, kind: &str, dir: &str) -> u64 {
    let r = send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(token),
        &json!({"name": name, "kind": kind, "folders": [media(dir)]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(&s.url(&format!("/api/v1/libraries/{id}/scan")), Some(token)).json();
        if v["progress"]["running"] == false {
            return id;
        }
        assert!(Instant::now() < deadline, "scan never finished: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Soap {
    status: u16,
    body: String,
}

impl Soap {
    /// Text of the first element with this local name.
    fn field(&self, name: &str) -> Option<String> {
        let mut r = quick_xml::Reader::from_str(&self.body);
        let mut inside = false;
        loop {
            match r.read_event().unwrap() {
                Event::Start(e) if e.local_name().as_ref() == name.as_bytes() => inside = true,
                Event::Text(t) if inside => return Some(t.unescape().unwrap().into_owned()),
                Event::End(_) if inside => return Some(String::new()),
                Event::Eof => return None,
                _ => {}
            }
        }
    }
    fn error_code(&self) -> Option<String> {
        self.field("errorCode")
    }
    fn num(&self, name: &str) -> usize {
        self.field(name)
            .unwrap_or_else(|| panic!("{name} missing: {}", self.body))
            .parse()
            .unwrap()
    }
}

fn soap_raw(
    s: &TestServer,
    service: &str,
    action: &str,
    body: &[u8],
    soapaction: Option<&str>,
) -> Soap {
    let path = if service == CD {
        "/dlna/control/ContentDirectory"
    } else {
        "/dlna/control/ConnectionManager"
    };
    let default = format!("\"{service}#{action}\"");
    let mut req = common::agent()
        .post(&s.url(path))
        .header("Content-Type", "text/xml; charset=\"utf-8\"");
    let sa = soapaction.unwrap_or(&default);
    if !sa.is_empty() {
        req = req.header("SOAPACTION", sa);
    }
    let mut resp = req.send(body).expect("transport");
    Soap {
        status: resp.status().as_u16(),
        body: resp.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn soap(s: &TestServer, service: &str, action: &str, args: &[(&str, &str)]) -> Soap {
    let mut inner = String::new();
    for (k, v) in args {
        let v = v
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;");
        inner.push_str(&format!("<{k}>{v}</{k}>"));
    }
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:{action} xmlns:u="{service}">{inner}</u:{action}></s:Body></s:Envelope>"#
    );
    soap_raw(s, service, action, body.as_bytes(), None)
}

#[derive(Debug, Clone)]
struct DidlObject {
    container: bool,
    id: String,
    parent: String,
    title: String,
    class: String,
    child_count: Option<usize>,
    res: Option<String>,
    protocol_info: Option<String>,
}

fn didl(result: &str) -> Vec<DidlObject> {
    let mut r = quick_xml::Reader::from_str(result);
    let mut out: Vec<DidlObject> = Vec::new();
    let mut field = String::new();
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) if matches!(e.local_name().as_ref(), b"container" | b"item") => {
                let attr = |n: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == n.as_bytes())
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                out.push(DidlObject {
                    container: e.local_name().as_ref() == b"container",
                    id: attr("id").unwrap(),
                    parent: attr("parentID").unwrap(),
                    title: String::new(),
                    class: String::new(),
                    child_count: attr("childCount").map(|c| c.parse().unwrap()),
                    res: None,
                    protocol_info: None,
                });
                assert_eq!(attr("restricted").as_deref(), Some("1"));
            }
            Event::Start(e) => {
                field = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if field == "res" {
                    let pi = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"protocolInfo")
                        .map(|a| a.unescape_value().unwrap().into_owned());
                    out.last_mut().unwrap().protocol_info = pi;
                }
            }
            Event::Text(t) => {
                let t = t.unescape().unwrap().into_owned();
                if let Some(o) = out.last_mut() {
                    match field.as_str() {
                        "dc:title" => o.title = t,
                        "upnp:class" => o.class = t,
                        "res" => o.res = Some(t),
                        _ => {}
                    }
                }
            }
            Event::End(_) => field.clear(),
            Event::Eof => return out,
            _ => {}
        }
    }
}

fn browse(
    s: &TestServer,
    id: &str,
    flag: &str,
    start: u32,
    count: u32,
    sort: &str,
) -> (Soap, Vec<DidlObject>) {
    let (start, count) = (start.to_string(), count.to_string());
    let r = soap(
        s,
        CD,
        "Browse",
        &[
            ("ObjectID", id),
            ("BrowseFlag", flag),
            ("Filter", "*"),
            ("StartingIndex", &start),
            ("RequestedCount", &count),
            ("SortCriteria", sort),
        ],
    );
    let objects = if r.status == 200 {
        didl(&r.field("Result").unwrap())
    } else {
        Vec::new()
    };
    (r, objects)
}

fn search(s: &TestServer, id: &str, criteria: &str) -> (Soap, Vec<DidlObject>) {
    let r = soap(
        s,
        CD,
        "Search",
        &[
            ("ContainerID", id),
            ("SearchCriteria", criteria),
            ("Filter", "*"),
            ("StartingIndex", "0"),
            ("RequestedCount", "0"),
            ("SortCriteria", "+dc:title"),
        ],
    );
    let objects = if r.status == 200 {
        didl(&r.field("Result").unwrap())
    } else {
        Vec::new()
    };
    (r, objects)
}

fn titles(o: &[DidlObject]) -> Vec<&str> {
    o.iter().map(|o| o.title.as_str()).collect()
}

#[test]
fn settings_browse_search_stream_and_faults() {
    let (s, owner) = common::claimed();
    let movies = library(&s, &owner, "Films", "movies", "Movies");
    let music = library(&s, &owner, "Music", "music", "Music");
    let shows = library(&s, &owner, "Shows", "shows", "Shows");

    // Defaults: on, no library chosen, so a player sees an empty root.
    let v = get(&s.url("/api/v1/dlna"), Some(&owner)).json();
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(v["libraries"], json!([]));
    assert_eq!(v["active"], true);
    assert_eq!(v["home_mode"], false);
    assert_eq!(v["friendly_name"], "Den");
    assert!(v["warning"].as_str().unwrap().contains("no library"), "{v}");
    let (r, root) = browse(&s, "0", "BrowseDirectChildren", 0, 0, "");
    assert_eq!(
        (r.status, root.len(), r.num("TotalMatches")),
        (200, 0, 0),
        "{}",
        r.body
    );

    // Only the owner may see or change the settings; bad changes are refused and change nothing.
    assert_eq!(get(&s.url("/api/v1/dlna"), None).status, 401);
    assert_eq!(
        send(
            "PUT",
            &s.url("/api/v1/dlna"),
            None,
            &json!({"enabled": false})
        )
        .status,
        401
    );
    for bad in [
        json!({"libraries": [movies, 999]}),
        json!({"libraries": "all"}),
        json!({"enabled": "yes"}),
        json!({"colour": "blue"}),
    ] {
        let r = send("PUT", &s.url("/api/v1/dlna"), Some(&owner), &bad);
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    assert_eq!(
        get(&s.url("/api/v1/dlna"), Some(&owner)).json()["libraries"],
        json!([])
    );

    let r = send(
        "PUT",
        &s.url("/api/v1/dlna"),
        Some(&owner),
        &json!({"libraries": [music, movies, music]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut want = vec![movies, music];
    want.sort();
    assert_eq!(r.json()["libraries"], json!(want));
    assert!(
        r.json()["warning"].as_str().unwrap().contains("Films"),
        "{}",
        r.body
    );
    let audit = get(&s.url("/api/v1/audit"), Some(&owner)).body;
    assert!(audit.contains("dlna_settings_changed"), "{audit}");

    // The device description names the server and both services.
    let d = get(&s.url("/dlna/device.xml"), None);
    assert_eq!(d.status, 200);
    for want in [
        "<friendlyName>Den</friendlyName>",
        "urn:schemas-upnp-org:device:MediaServer:1",
        CD,
        CM,
        "<UDN>uuid:",
    ] {
        assert!(d.body.contains(want), "{want}: {}", d.body);
    }
    assert!(
        get(&s.url("/dlna/ContentDirectory.xml"), None)
            .body
            .contains("<name>Search</name>")
    );

    // Root: the two chosen libraries, by name; the shows library is not there.
    let (r, root) = browse(&s, "0", "BrowseDirectChildren", 0, 0, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(titles(&root), ["Films", "Music"]);
    assert!(root.iter().all(|o| o.container && o.parent == "0"));
    assert_eq!((r.num("NumberReturned"), r.num("TotalMatches")), (2, 2));
    let (r, meta) = browse(&s, "0", "BrowseMetadata", 0, 0, "");
    assert_eq!(r.num("TotalMatches"), 1);
    assert_eq!(
        (
            meta[0].id.as_str(),
            meta[0].parent.as_str(),
            meta[0].child_count
        ),
        ("0", "-1", Some(2))
    );
    let (r, _) = browse(&s, &format!("l.{shows}"), "BrowseDirectChildren", 0, 0, "");
    assert_eq!(
        r.error_code().as_deref(),
        Some("701"),
        "a library not chosen does not exist for DLNA"
    );
    assert_eq!(r.status, 500);

    // Films: every item, paged; TotalMatches stays the whole count.
    let films = &root[0];
    let (r, all) = browse(&s, &films.id, "BrowseDirectChildren", 0, 0, "");
    let total = r.num("TotalMatches");
    assert_eq!(all.len(), total);
    assert_eq!(films.child_count, Some(total));
    assert!(total >= 8, "{total}");
    assert!(all.iter().all(|o| !o.container
        && o.parent == films.id
        && o.class.starts_with("object.item.videoItem")));
    let mut paged = Vec::new();
    for start in (0..total).step_by(3) {
        let (r, page) = browse(&s, &films.id, "BrowseDirectChildren", start as u32, 3, "");
        assert_eq!(r.num("TotalMatches"), total);
        assert_eq!(r.num("NumberReturned"), page.len());
        assert!(page.len() <= 3);
        paged.extend(page);
    }
    assert_eq!(titles(&paged), titles(&all));
    let (_, past) = browse(&s, &films.id, "BrowseDirectChildren", 1000, 5, "");
    assert!(past.is_empty());
    // Sort: descending title reverses the ascending order.
    let (_, up) = browse(&s, &films.id, "BrowseDirectChildren", 0, 0, "+dc:title");
    let (_, down) = browse(&s, &films.id, "BrowseDirectChildren", 0, 0, "-dc:title");
    let mut rev = titles(&down);
    rev.reverse();
    assert_eq!(titles(&up), rev);
    let mut sorted = titles(&up)
        .iter()
        .map(|t| t.to_lowercase())
        .collect::<Vec<_>>();
    sorted.sort();
    assert_eq!(
        titles(&up)
            .iter()
            .map(|t| t.to_lowercase())
            .collect::<Vec<_>>(),
        sorted
    );
    let (r, _) = browse(&s, &films.id, "BrowseDirectChildren", 0, 0, "+upnp:rating");
    assert_eq!(r.error_code().as_deref(), Some("709"));
    let (r, _) = browse(&s, &films.id, "BrowseDirectChildren", 0, 0, "dc:title");
    assert_eq!(r.error_code().as_deref(), Some("709"));

    // An item's metadata names the same parent; its res streams with ranges.
    let meadow = all
        .iter()
        .find(|o| o.title == "Sunny Meadow")
        .expect("Sunny Meadow");
    let (_, m) = browse(&s, &meadow.id, "BrowseMetadata", 0, 0, "");
    assert_eq!(
        (m[0].id.as_str(), m[0].parent.as_str()),
        (meadow.id.as_str(), films.id.as_str())
    );
    let (r, kids) = browse(&s, &meadow.id, "BrowseDirectChildren", 0, 0, "");
    assert_eq!((r.status, kids.len()), (200, 0));
    let pi = meadow.protocol_info.clone().unwrap();
    assert!(
        pi.starts_with("http-get:*:video/") && pi.contains("DLNA.ORG_OP=01"),
        "{pi}"
    );
    let url = meadow.res.clone().unwrap();
    assert!(
        url.starts_with(&format!("http://{}/dlna/media/", s.addr)),
        "{url}"
    );
    let mut resp = common::agent()
        .get(&url)
        .header("Range", "bytes=0-15")
        .header("getcontentFeatures.dlna.org", "1")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.headers()["content-range"]
            .to_str()
            .unwrap()
            .split('/')
            .next(),
        Some("bytes 0-15")
    );
    assert!(
        resp.headers()["contentfeatures.dlna.org"]
            .to_str()
            .unwrap()
            .contains("DLNA.ORG_OP=01")
    );
    assert_eq!(resp.headers()["transfermode.dlna.org"], "Streaming");
    assert_eq!(resp.body_mut().read_to_vec().unwrap().len(), 16);
    // A changed signature, another item, or the web's stream path: refused.
    let tampered = url.replace("sig=", "sig=00");
    assert_eq!(get(&tampered, None).status, 403);
    let other = all.iter().find(|o| o.id != meadow.id).unwrap();
    let swapped = url.replace(
        &format!("/media/{}", meadow.id.trim_start_matches("i.")),
        &format!("/media/{}", other.id.trim_start_matches("i.")),
    );
    assert_eq!(get(&swapped, None).status, 403);
    let (item_id, query) = url
        .split_once("/dlna/media/")
        .unwrap()
        .1
        .split_once('?')
        .unwrap();
    let exp = query
        .split('&')
        .find_map(|p| p.strip_prefix("exp="))
        .unwrap();
    let sig = query
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap();
    let web = s.url(&format!(
        "/api/v1/stream/{item_id}?u=0&d=0&exp={exp}&sig={sig}"
    ));
    assert_eq!(
        get(&web, None).status,
        403,
        "a DLNA link is not a user's link"
    );

    // Music: artist → album → tracks in track order, with the MP3 profile named.
    let music_c = &root[1];
    let (_, artists) = browse(&s, &music_c.id, "BrowseDirectChildren", 0, 0, "");
    assert_eq!(titles(&artists), ["The Test Tones"]);
    assert_eq!(artists[0].class, "object.container.person.musicArtist");
    let (_, albums) = browse(&s, &artists[0].id, "BrowseDirectChildren", 0, 0, "");
    assert_eq!(titles(&albums), ["First Light"]);
    assert_eq!(albums[0].child_count, Some(3));
    let (_, tracks) = browse(&s, &albums[0].id, "BrowseDirectChildren", 0, 0, "");
    assert_eq!(titles(&tracks), ["Dawn", "Noon", "Dusk"]);
    assert!(
        tracks
            .iter()
            .all(|t| t.parent == albums[0].id && t.class == "object.item.audioItem.musicTrack")
    );
    assert!(
        tracks[2]
            .protocol_info
            .as_ref()
            .unwrap()
            .contains("audio/mpeg:DLNA.ORG_PN=MP3")
    );
    let (_, sorted) = browse(
        &s,
        &albums[0].id,
        "BrowseDirectChildren",
        0,
        0,
        "-upnp:originalTrackNumber",
    );
    assert_eq!(titles(&sorted), ["Dusk", "Noon", "Dawn"]);

    // Search, with the specification's criteria forms.
    let (r, found) = search(&s, "0", "upnp:class derivedfrom \"object.item.audioItem\"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(titles(&found), ["Dawn", "Dusk", "Noon"]);
    let (_, found) = search(
        &s,
        "0",
        "dc:title contains \"MEADOW\" and upnp:class = \"object.item.videoItem.movie\"",
    );
    assert_eq!(titles(&found), ["Sunny Meadow"]);
    let (_, found) = search(
        &s,
        "0",
        "upnp:artist = \"The Test Tones\" or dc:title = \"Sunny Meadow\"",
    );
    assert_eq!(found.len(), 4);
    let (_, found) = search(&s, &albums[0].id, "*");
    assert_eq!(found.len(), 3);
    let (_, found) = search(
        &s,
        &films.id,
        "upnp:class derivedfrom \"object.item.audioItem\"",
    );
    assert!(found.is_empty());
    let (_, found) = search(
        &s,
        "0",
        "dc:title contains \"Garden\" or dc:title contains \"Arrival\"",
    );
    assert!(
        found.is_empty(),
        "the shows library is not shown to DLNA: {:?}",
        titles(&found)
    );
    for (bad, code) in [
        ("dc:title contains", "708"),
        ("dc:title = \"x\" and", "708"),
        ("(dc:title exists true", "708"),
    ] {
        let (r, _) = search(&s, "0", bad);
        assert_eq!(r.error_code().as_deref(), Some(code), "{bad}: {}", r.body);
    }
    let (r, _) = search(&s, &format!("l.{shows}"), "*");
    assert_eq!(r.error_code().as_deref(), Some("710"));

    // The small actions.
    let r = soap(&s, CD, "GetSearchCapabilities", &[]);
    assert!(r.field("SearchCaps").unwrap().contains("dc:title"));
    let r = soap(&s, CD, "GetSortCapabilities", &[]);
    assert!(r.field("SortCaps").unwrap().contains("dc:title"));
    let r = soap(&s, CD, "GetSystemUpdateID", &[]);
    assert!(r.num("Id") > 0, "{}", r.body);
    let r = soap(&s, CM, "GetProtocolInfo", &[]);
    let source = r.field("Source").unwrap();
    for pn in [
        "audio/mpeg:DLNA.ORG_PN=MP3",
        "image/jpeg:DLNA.ORG_PN=JPEG_LRG",
        "video/x-matroska:*",
    ] {
        assert!(source.contains(pn), "{pn}: {source}");
    }
    assert_eq!(
        soap(&s, CM, "GetCurrentConnectionIDs", &[])
            .field("ConnectionIDs")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        soap(&s, CM, "GetCurrentConnectionInfo", &[("ConnectionID", "7")])
            .error_code()
            .as_deref(),
        Some("706")
    );

    // Malformed requests: faults, never a crash, never data.
    let env = |inner: &str| {
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{inner}</s:Body></s:Envelope>"#
        )
    };
    let cases: Vec<(Vec<u8>, &str, Option<&str>)> = vec![
        (b"".to_vec(), "401", None),
        (b"hello".to_vec(), "401", None),
        (b"\xff\xfe<\x00".to_vec(), "401", None),
        (env("").into_bytes(), "401", None),
        (env(&format!(r#"<u:Browse xmlns:u="{CD}"><ObjectID>0</ObjectID>"#)).into_bytes(), "401", None),
        (
            format!(r#"<!DOCTYPE lol [<!ENTITY a "aaaa">]>{}"#, env(&format!(r#"<u:Browse xmlns:u="{CD}"><ObjectID>&a;</ObjectID></u:Browse>"#)))
                .into_bytes(),
            "401",
            None,
        ),
        (env(&format!(r#"<u:Browse xmlns:u="{CD}"><ObjectID>0</ObjectID></u:Browse>"#)).into_bytes(), "402", None),
        (env(&format!(r#"<u:Explode xmlns:u="{CD}"></u:Explode>"#)).into_bytes(), "401", Some("")),
        (env(&format!(r#"<u:Browse xmlns:u="{CM}"></u:Browse>"#)).into_bytes(), "401", Some("")),
        (
            env(&format!(
                r#"<u:Browse xmlns:u="{CD}"><ObjectID>0</ObjectID><BrowseFlag>BrowseSideways</BrowseFlag><Filter>*</Filter><StartingIndex>0</StartingIndex><RequestedCount>0</RequestedCount><SortCriteria></SortCriteria></u:Browse>"#
            ))
            .into_bytes(),
            "402",
            None,
        ),
        (
            env(&format!(
                r#"<u:Browse xmlns:u="{CD}"><ObjectID>0</ObjectID><BrowseFlag>BrowseMetadata</BrowseFlag><Filter>*</Filter><StartingIndex>-1</StartingIndex><RequestedCount>0</RequestedCount><SortCriteria></SortCriteria></u:Browse>"#
            ))
            .into_bytes(),
            "402",
            None,
        ),
        (
            env(&format!(
                r#"<u:Browse xmlns:u="{CD}"><ObjectID>i.999999</ObjectID><BrowseFlag>BrowseMetadata</BrowseFlag><Filter>*</Filter><StartingIndex>0</StartingIndex><RequestedCount>0</RequestedCount><SortCriteria></SortCriteria></u:Browse>"#
            ))
            .into_bytes(),
            "701",
            None,
        ),
    ];
    for (body, code, sa) in cases {
        let r = soap_raw(&s, CD, "Browse", &body, sa);
        assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            r.error_code().as_deref(),
            Some(code),
            "{}: {}",
            String::from_utf8_lossy(&body),
            r.body
        );
    }
    // The SOAPACTION header must name the action in the body.
    let ok = env(&format!(
        r#"<u:GetSystemUpdateID xmlns:u="{CD}"></u:GetSystemUpdateID>"#
    ));
    let r = soap_raw(
        &s,
        CD,
        "GetSystemUpdateID",
        ok.as_bytes(),
        Some(&format!("\"{CD}#Browse\"")),
    );
    assert_eq!(r.error_code().as_deref(), Some("401"));
    // Oversized bodies are refused before parsing; the server keeps answering.
    let big = env(&format!(
        r#"<u:Search xmlns:u="{CD}"><SearchCriteria>{}</SearchCriteria></u:Search>"#,
        "a".repeat(64 * 1024)
    ));
    let r = soap_raw(&s, CD, "Search", big.as_bytes(), None);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(soap(&s, CD, "GetSystemUpdateID", &[]).status, 200);

    // Home mode (a managed profile appears) switches DLNA off...
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Mia"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = get(&s.url("/api/v1/dlna"), Some(&owner)).json();
    assert_eq!(
        (
            v["enabled"].clone(),
            v["active"].clone(),
            v["home_mode"].clone()
        ),
        (json!(true), json!(false), json!(true)),
        "the owner's switch stays as it was; home mode keeps DLNA quiet: {v}"
    );
    assert!(v["warning"].as_str().unwrap().contains("home mode"), "{v}");
    assert_eq!(get(&s.url("/dlna/device.xml"), None).status, 404);
    assert_eq!(soap(&s, CD, "GetSystemUpdateID", &[]).status, 404);
    assert_eq!(
        get(&url, None).status,
        404,
        "links made before home mode stop working"
    );
    // ...the owner may turn it on again knowingly, and another profile does not undo that.
    let r = send(
        "PUT",
        &s.url("/api/v1/dlna"),
        Some(&owner),
        &json!({"enabled": true}),
    );
    assert_eq!(
        (r.json()["enabled"].clone(), r.json()["active"].clone()),
        (json!(true), json!(true)),
        "{}",
        r.body
    );
    let r = send(
        "POST",
        &s.url("/api/v1/users"),
        Some(&owner),
        &json!({"kind": "managed", "name": "Leo"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        get(&s.url("/api/v1/dlna"), Some(&owner)).json()["active"],
        true
    );
    assert_eq!(get(&url, None).status, 200);
    // The network settings show the same switch.
    let net: Value = get(&s.url("/api/v1/settings/network"), Some(&owner)).json();
    assert_eq!(net["dlna"], true);
    // Off: players get nothing.
    let r = send(
        "PUT",
        &s.url("/api/v1/dlna"),
        Some(&owner),
        &json!({"enabled": false}),
    );
    assert_eq!(r.json()["active"], false);
    let (r, _) = browse(&s, "0", "BrowseDirectChildren", 0, 0, "");
    assert_eq!(r.status, 404);
}

/// Domain separation: a link signed for DLNA players never passes the API's stream route,
/// and a user's API link never passes DLNA's media route. Both are refused at the signature
/// (`invalid_media_link`), not by a later check that a change elsewhere could loosen.
#[test]
fn dlna_and_api_media_links_do_not_pass_for_each_other() {
    let (s, owner) = common::claimed();
    let movies = library(&s, &owner, "Films", "movies", "Movies");
    let r = send(
        "PUT",
        &s.url("/api/v1/dlna"),
        Some(&owner),
        &json!({"libraries": [movies]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, root) = browse(&s, "0", "BrowseDirectChildren", 0, 0, "");
    let (_, films) = browse(&s, &root[0].id, "BrowseDirectChildren", 0, 0, "");
    let meadow = films
        .iter()
        .find(|o| o.title == "Sunny Meadow")
        .expect("Sunny Meadow");
    let dlna_url = meadow.res.clone().unwrap();
    let (item_id, query) = dlna_url
        .split_once("/dlna/media/")
        .unwrap()
        .1
        .split_once('?')
        .unwrap();
    let param = |q: &str, k: &str| {
        q.split('&')
            .find_map(|p| p.strip_prefix(&format!("{k}=")).map(str::to_owned))
            .unwrap()
    };
    let (exp, sig) = (param(query, "exp"), param(query, "sig"));
    // The DLNA link itself works.
    assert_eq!(get(&dlna_url, None).status, 200);

    // DLNA's signature on the API route, with the fields DLNA signed (user 0, device 0).
    let r = get(
        &s.url(&format!(
            "/api/v1/stream/{item_id}?u=0&d=0&exp={exp}&sig={sig}"
        )),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.error_code(),
        "invalid_media_link",
        "a DLNA signature verified as an API one"
    );

    // The owner's API link for the same item works; its signature on DLNA's route does not.
    let item = get(&s.url(&format!("/api/v1/items/{item_id}")), Some(&owner)).json();
    let api_url = s.url(item["stream_url"].as_str().unwrap());
    assert_eq!(get(&api_url, None).status, 200);
    let api_query = api_url.split_once('?').unwrap().1;
    let r = get(
        &s.url(&format!(
            "/dlna/media/{item_id}?exp={}&sig={}",
            param(api_query, "exp"),
            param(api_query, "sig")
        )),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "invalid_media_link");
}
