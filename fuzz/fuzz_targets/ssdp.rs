//! Every datagram to UDP 1900 on a LAN interface reaches the SSDP reader: M-SEARCHes,
//! other devices' NOTIFYs, anything else. Nothing may panic; a search target it accepts is
//! short and survives being written into a new M-SEARCH and read again; the answers are at
//! most one per advertised target, each names only our own targets (never echoes the
//! sender's text) and is bounded in size.
#![no_main]

use hearth::dlna::ssdp;
use libfuzzer_sys::fuzz_target;

const UUID: &str = "4d696e69-444c-164e-9d41-b827eb0d1c2a";
const LOC: &str = "http://192.168.1.20:8080/dlna/device.xml";

fuzz_target!(|data: &[u8]| {
    let Some(st) = ssdp::parse_search(data) else {
        return;
    };
    assert!(
        !st.is_empty() && st.len() <= 256,
        "search target of {} bytes",
        st.len()
    );
    assert_eq!(st, st.trim(), "search target not trimmed");
    // Written into a fresh, well-formed search, the target reads back unchanged.
    if !st.contains("\r\n") {
        let again = format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {st}\r\n\r\n"
        );
        assert_eq!(
            ssdp::parse_search(again.as_bytes()).as_deref(),
            Some(st.as_str())
        );
    }
    let ours = ssdp::targets(UUID);
    let answers = ssdp::answers(UUID, &st, LOC);
    assert!(answers.len() <= ours.len());
    if st != "ssdp:all" && !ours.iter().any(|(nt, _)| *nt == st) {
        assert!(answers.is_empty(), "answered a search for {st:?}");
    }
    for a in &answers {
        assert!(a.len() <= 512, "an answer of {} bytes", a.len());
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n") && a.ends_with("\r\n\r\n"));
        let st_line = a
            .split("\r\n")
            .find_map(|l| l.strip_prefix("ST: "))
            .expect("every answer has ST");
        assert!(
            ours.iter().any(|(nt, _)| nt == st_line),
            "ST {st_line:?} is not ours"
        );
        // One header per line: nothing from the search splits or adds a header.
        assert_eq!(a.matches("\r\n").count(), 9, "{a:?}");
    }
});
