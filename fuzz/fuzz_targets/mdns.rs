//! Every datagram to UDP 5353 on a LAN interface reaches the mDNS query parser. Nothing may
//! panic; questions read back the same after being written again; an answer is a
//! well-formed DNS response (every count matches, every record's length is right), names
//! only records we own, is at most 9000 bytes (RFC 6762 §17) and, for a legacy (plain DNS)
//! asker, echoes its id, carries short TTLs and no cache-flush bits. The first input byte
//! picks the advertised names, the next ones give the owner's server name.
#![no_main]

use std::net::Ipv4Addr;

use hearth::net::mdns::{self, Advert, Mode, Question};
use libfuzzer_sys::fuzz_target;

/// The largest mDNS message (RFC 6762 §17).
const MAX_MESSAGE: usize = 9000;

fn encode_query(id: u16, qs: &[Question]) -> Option<Vec<u8>> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(qs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0; 6]);
    for q in qs {
        // Invalid UTF-8 was read as U+FFFD, three bytes for one: such a name may no longer
        // fit the 63-byte label and 255-byte name limits, and is not written again.
        let mut total = 0;
        for label in q.name.split('.') {
            total += label.len() + 1;
            if label.is_empty() || label.len() > 63 || total > 255 {
                return None;
            }
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&q.qtype.to_be_bytes());
        m.extend_from_slice(&(1u16 | if q.unicast { 0x8000 } else { 0 }).to_be_bytes());
    }
    Some(m)
}

fn u16_at(m: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([m[at], m[at + 1]])
}

/// An uncompressed name (we never compress) at `at`: the name and where it ends.
fn name_at(m: &[u8], mut at: usize) -> (String, usize) {
    let mut labels = Vec::new();
    loop {
        let len = m[at] as usize;
        assert!(len <= 63, "label of {len} bytes");
        at += 1;
        if len == 0 {
            return (labels.join("."), at);
        }
        labels.push(String::from_utf8_lossy(&m[at..at + len]).into_owned());
        at += len;
    }
}

/// Checks the structure of one of our responses and returns its record names with their
/// TTL and class.
fn check_response(m: &[u8], mode: Mode) -> Vec<(String, u32, u16)> {
    assert!(
        m.len() >= 12 && m.len() <= MAX_MESSAGE,
        "response of {} bytes",
        m.len()
    );
    assert_eq!(u16_at(m, 2) & 0x8000, 0x8000, "QR bit");
    let (qd, an, ns, ar) = (u16_at(m, 4), u16_at(m, 6), u16_at(m, 8), u16_at(m, 10));
    assert_eq!(ns, 0);
    match mode {
        Mode::Legacy { id } => assert_eq!(u16_at(m, 0), id),
        _ => {
            assert_eq!(u16_at(m, 0), 0);
            assert_eq!(qd, 0);
        }
    }
    let mut at = 12;
    for _ in 0..qd {
        let (_, next) = name_at(m, at);
        at = next + 4;
    }
    let mut records = Vec::new();
    for _ in 0..(an as usize + ar as usize) {
        let (name, next) = name_at(m, at);
        let class = u16_at(m, next + 2);
        let ttl = u32::from_be_bytes(m[next + 4..next + 8].try_into().unwrap());
        let len = u16_at(m, next + 8) as usize;
        at = next + 10 + len;
        assert!(at <= m.len(), "record data past the end");
        records.push((name, ttl, class));
    }
    assert_eq!(at, m.len(), "bytes after the last record");
    records
}

fn own_names(advert: &Advert) -> Vec<String> {
    let mut names = advert.hosts.clone();
    names.push("_services._dns-sd._udp.local".into());
    for ty in [
        "_http._tcp.local",
        "_https._tcp.local",
        "_hearth._tcp.local",
    ] {
        names.push(ty.into());
        names.push(format!("{}.{ty}", advert.instance));
    }
    names
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (name_len, rest) = match rest.split_first() {
        Some((&n, r)) => ((n as usize % 80).min(r.len()), r),
        None => (0, rest),
    };
    let (server, msg) = rest.split_at(name_len);
    let hostname = ["hearth", "den-box", "hearth.lan", "", "Living-Room"][pick as usize % 5];
    let https = (pick & 0x80 != 0).then_some(443);
    let advert = Advert::new(
        hostname,
        &String::from_utf8_lossy(server),
        80,
        https,
        pick & 0x40 != 0,
    );
    assert!(!advert.instance.is_empty() && advert.instance.len() <= 63);
    assert!(!advert.instance.contains('.'));
    let addr = Ipv4Addr::new(192, 168, 7, 20);
    let ann = mdns::announcement(&advert, addr, pick & 0x20 != 0);
    check_response(&ann, Mode::Multicast);

    let Some((id, qs)) = mdns::parse_query(msg) else {
        return;
    };
    assert!(!qs.is_empty() && qs.len() <= 32);
    for q in &qs {
        assert_eq!(q.name, q.name.to_ascii_lowercase());
    }
    if let Some(again) = encode_query(id, &qs) {
        assert_eq!(
            mdns::parse_query(&again),
            Some((id, qs.clone())),
            "question round trip"
        );
    }
    let owned = own_names(&advert);
    for mode in [Mode::Multicast, Mode::Legacy { id }] {
        let Some(answer) = mdns::answer(&advert, addr, &qs, mode) else {
            continue;
        };
        let records = check_response(&answer, mode);
        assert!(!records.is_empty());
        for (name, ttl, class) in records {
            assert!(
                owned.iter().any(|o| o.eq_ignore_ascii_case(&name)),
                "answered for a name that is not ours: {name:?}"
            );
            if let Mode::Legacy { .. } = mode {
                assert!(ttl <= 10, "legacy TTL {ttl}");
                assert_eq!(class, 1, "legacy answers carry no cache-flush bit");
            }
        }
    }
});
