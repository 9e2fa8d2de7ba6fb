//! Security-sensitive: mDNS/DNS-SD (RFC 6762/6763) on the LAN interfaces only. Answers
//! `hearth.local` and `<hostname>.local` with the address of the interface the question
//! came in on, and advertises `_http._tcp`, `_https._tcp` and `_hearth._tcp` (TXT: version,
//! claimed). Announces on start, when an interface or address appears, and when the name
//! or claim state changes; says goodbye (TTL 0) on shutdown. Questions are parsed with
//! bounds (compression loops, counts, lengths) and answered at a bounded rate.
//!
//! Not done: probing and conflict resolution (another `hearth.local` on the same network
//! is not detected), IPv6 (AAAA) answers.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use super::multicast::{LanInterface, MulticastSocket, RateLimit, lan_interfaces};

pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
pub const PORT: u16 = 5353;
/// The name every appliance answers, whatever its hostname.
pub const APPLIANCE_NAME: &str = "hearth.local";
const HOST_TTL: u32 = 120;
const OTHER_TTL: u32 = 4500;
/// Legacy unicast answers (a plain DNS client asking port 5353) get short TTLs (RFC 6762 §6.7).
const LEGACY_TTL: u32 = 10;
const LOOK_AGAIN: Duration = Duration::from_secs(5);

const T_A: u16 = 1;
const T_PTR: u16 = 12;
const T_TXT: u16 = 16;
const T_SRV: u16 = 33;
const T_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CACHE_FLUSH: u16 = 0x8000;

/// What is advertised; rebuilt when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// `hearth.local` plus `<hostname>.local` if the hostname differs.
    pub hosts: Vec<String>,
    /// The DNS-SD instance name (the owner's server name, made a valid label).
    pub instance: String,
    pub http_port: u16,
    pub https_port: Option<u16>,
    pub claimed: bool,
}

/// One resource record, before the address of an interface is filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    name: String,
    rtype: u16,
    ttl: u32,
    /// Unique records (A, SRV, TXT) carry the cache-flush bit in multicast answers.
    unique: bool,
    data: Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    A(Ipv4Addr),
    Ptr(String),
    Srv { port: u16, target: String },
    Txt(Vec<String>),
}

/// A DNS-SD instance label: at most 63 bytes, no dots (kept simple rather than escaped).
pub fn instance_label(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c == '.' || c.is_control() { ' ' } else { c })
        .collect();
    let mut out = String::new();
    for c in clean.trim().chars() {
        if out.len() + c.len_utf8() > 63 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() { "Hearth".into() } else { out }
}

impl Advert {
    pub fn new(
        hostname: &str,
        server_name: &str,
        http_port: u16,
        https_port: Option<u16>,
        claimed: bool,
    ) -> Advert {
        let label = hostname
            .split('.')
            .next()
            .unwrap_or("hearth")
            .to_ascii_lowercase();
        let mut hosts = vec![APPLIANCE_NAME.to_owned()];
        let own = format!("{label}.local");
        if !label.is_empty() && own != APPLIANCE_NAME {
            hosts.push(own);
        }
        Advert {
            hosts,
            instance: instance_label(server_name),
            http_port,
            https_port,
            claimed,
        }
    }

    fn services(&self) -> Vec<(&'static str, u16, Vec<String>)> {
        let mut s = vec![(
            "_http._tcp.local",
            self.http_port,
            vec!["path=/".to_owned()],
        )];
        if let Some(p) = self.https_port {
            s.push(("_https._tcp.local", p, vec!["path=/".to_owned()]));
        }
        s.push((
            "_hearth._tcp.local",
            self.http_port,
            vec![
                format!("version={}", crate::model::build::version()),
                format!("claimed={}", self.claimed),
            ],
        ));
        s
    }

    /// Every record, with `addr` as the address (the interface's own).
    fn records(&self, addr: Ipv4Addr) -> Vec<Record> {
        let mut r = Vec::new();
        for h in &self.hosts {
            r.push(Record {
                name: h.clone(),
                rtype: T_A,
                ttl: HOST_TTL,
                unique: true,
                data: Data::A(addr),
            });
        }
        for (ty, port, txt) in self.services() {
            let inst = format!("{}.{ty}", self.instance);
            r.push(Record {
                name: "_services._dns-sd._udp.local".into(),
                rtype: T_PTR,
                ttl: OTHER_TTL,
                unique: false,
                data: Data::Ptr(ty.into()),
            });
            r.push(Record {
                name: ty.into(),
                rtype: T_PTR,
                ttl: OTHER_TTL,
                unique: false,
                data: Data::Ptr(inst.clone()),
            });
            r.push(Record {
                name: inst.clone(),
                rtype: T_SRV,
                ttl: HOST_TTL,
                unique: true,
                data: Data::Srv {
                    port,
                    target: APPLIANCE_NAME.into(),
                },
            });
            r.push(Record {
                name: inst,
                rtype: T_TXT,
                ttl: OTHER_TTL,
                unique: true,
                data: Data::Txt(txt),
            });
        }
        r
    }
}

/// A question from a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: u16,
    /// The QU bit: the asker wants a unicast answer.
    pub unicast: bool,
}

/// A parsed query: its id and questions. Responses and anything malformed are `None`.
pub fn parse_query(msg: &[u8]) -> Option<(u16, Vec<Question>)> {
    if msg.len() < 12 || msg.len() > 9000 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 {
        return None;
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
    if qd == 0 || qd > 32 {
        return None;
    }
    let mut pos = 12;
    let mut qs = Vec::with_capacity(qd);
    for _ in 0..qd {
        let (name, next) = read_name(msg, pos)?;
        let rest = msg.get(next..next + 4)?;
        qs.push(Question {
            name,
            qtype: u16::from_be_bytes([rest[0], rest[1]]),
            unicast: u16::from_be_bytes([rest[2], rest[3]]) & 0x8000 != 0,
        });
        pos = next + 4;
    }
    Some((id, qs))
}

/// A (possibly compressed) name at `pos`; returns it lower-cased and the position after it.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    let mut total = 0;
    loop {
        let len = *msg.get(pos)? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let after = end.unwrap_or(pos + 1);
                    return Some((labels.join(".").to_ascii_lowercase(), after));
                }
                let label = msg.get(pos + 1..pos + 1 + len)?;
                total += len + 1;
                if total > 255 {
                    return None;
                }
                // A dot inside a label is escaped (as in RFC 1035 §5.1), so one label
                // `hearth.local` cannot pass for the two labels of our name.
                labels.push(String::from_utf8_lossy(label).replace('.', "\\."));
                pos += 1 + len;
            }
            0xc0 => {
                let ptr = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
                jumps += 1;
                if jumps > 16 || ptr >= pos {
                    return None;
                }
                if end.is_none() {
                    end = Some(pos + 2);
                }
                pos = ptr;
            }
            _ => return None,
        }
    }
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let b = label.as_bytes();
        let n = b.len().min(63);
        out.push(n as u8);
        out.extend_from_slice(&b[..n]);
    }
    out.push(0);
}

fn write_record(out: &mut Vec<u8>, r: &Record, ttl: u32, flush: bool) {
    write_name(out, &r.name);
    out.extend_from_slice(&r.rtype.to_be_bytes());
    let class = CLASS_IN | if flush && r.unique { CACHE_FLUSH } else { 0 };
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let mut data = Vec::new();
    match &r.data {
        Data::A(a) => data.extend_from_slice(&a.octets()),
        Data::Ptr(n) => write_name(&mut data, n),
        Data::Srv { port, target } => {
            data.extend_from_slice(&0u16.to_be_bytes());
            data.extend_from_slice(&0u16.to_be_bytes());
            data.extend_from_slice(&port.to_be_bytes());
            write_name(&mut data, target);
        }
        Data::Txt(items) => {
            for t in items {
                let b = t.as_bytes();
                let n = b.len().min(255);
                data.push(n as u8);
                data.extend_from_slice(&b[..n]);
            }
        }
    }
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(&data);
}

/// How an answer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// To the group (or QU unicast): cache-flush bits, full TTLs, no question section.
    Multicast,
    /// A plain DNS client: its id and questions echoed, short TTLs, no cache-flush bits.
    Legacy { id: u16 },
    /// TTL 0 for everything.
    Goodbye,
}

/// A response message for `answers` plus `additional` records.
fn message(
    mode: Mode,
    questions: &[Question],
    answers: &[Record],
    additional: &[Record],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let (id, qs) = match mode {
        Mode::Legacy { id } => (id, questions),
        _ => (0, &[][..]),
    };
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x8400u16.to_be_bytes());
    out.extend_from_slice(&(qs.len() as u16).to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(additional.len() as u16).to_be_bytes());
    for q in qs {
        write_name(&mut out, &q.name);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
    }
    for r in answers.iter().chain(additional) {
        let (ttl, flush) = match mode {
            Mode::Multicast => (r.ttl, true),
            Mode::Legacy { .. } => (r.ttl.min(LEGACY_TTL), false),
            Mode::Goodbye => (0, true),
        };
        write_record(&mut out, r, ttl, flush);
    }
    out
}

/// The answer to `questions` on an interface with address `addr`, if we have one.
pub fn answer(
    advert: &Advert,
    addr: Ipv4Addr,
    questions: &[Question],
    mode: Mode,
) -> Option<Vec<u8>> {
    let all = advert.records(addr);
    let mut answers: Vec<Record> = Vec::new();
    // The questions a legacy answer repeats: only those answered, each once, so the answer
    // stays bounded by our own records however many questions (or however long names) the
    // query carried.
    let mut answered: Vec<Question> = Vec::new();
    for q in questions {
        for r in &all {
            if r.name.eq_ignore_ascii_case(&q.name) && (q.qtype == r.rtype || q.qtype == T_ANY) {
                if !answers.contains(r) {
                    answers.push(r.clone());
                }
                if !answered
                    .iter()
                    .any(|a| a.name == q.name && a.qtype == q.qtype)
                {
                    answered.push(q.clone());
                }
            }
        }
    }
    if answers.is_empty() {
        return None;
    }
    // What a resolver will ask next: the instance's SRV/TXT for a PTR, the host's A for an SRV.
    let mut additional: Vec<Record> = Vec::new();
    for a in &answers {
        let wanted: Vec<String> = match &a.data {
            Data::Ptr(n) => vec![n.clone()],
            Data::Srv { target, .. } => vec![target.clone()],
            _ => Vec::new(),
        };
        for r in &all {
            if wanted.iter().any(|w| r.name.eq_ignore_ascii_case(w))
                && r.rtype != T_PTR
                && !answers.contains(r)
                && !additional.contains(r)
            {
                additional.push(r.clone());
            }
        }
    }
    // Hosts for SRVs that came in as additional records too.
    let targets: Vec<String> = additional
        .iter()
        .filter_map(|r| match &r.data {
            Data::Srv { target, .. } => Some(target.clone()),
            _ => None,
        })
        .collect();
    for r in &all {
        if r.rtype == T_A
            && targets.iter().any(|t| r.name.eq_ignore_ascii_case(t))
            && !answers.contains(r)
            && !additional.contains(r)
        {
            additional.push(r.clone());
        }
    }
    Some(message(mode, &answered, &answers, &additional))
}

/// Every record, for announcements and goodbyes.
pub fn announcement(advert: &Advert, addr: Ipv4Addr, goodbye: bool) -> Vec<u8> {
    let all = advert.records(addr);
    let mut seen = Vec::new();
    for r in all {
        if !seen.contains(&r) {
            seen.push(r);
        }
    }
    message(
        if goodbye {
            Mode::Goodbye
        } else {
            Mode::Multicast
        },
        &[],
        &seen,
        &[],
    )
}

/// What the responder tells about the device, read afresh for each announcement: the name
/// the owner gave the server and whether the device is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    pub server_name: String,
    pub claimed: bool,
}

/// Reads [`DeviceFacts`] (blocking; `None` when they cannot be read now).
pub type FactsSource = Arc<dyn Fn() -> Option<DeviceFacts> + Send + Sync>;

/// The responder and what it needs to know.
#[derive(Clone)]
pub struct Responder {
    pub facts: FactsSource,
    pub http_port: u16,
    pub https_port: Option<u16>,
    /// `discovery.interfaces` from the config.
    pub only: Vec<String>,
}

impl Responder {
    async fn advert(&self) -> Option<Advert> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let names = super::tls::DeviceNames::detect();
            let facts = (me.facts)()?;
            Some(Advert::new(
                &names.hostname,
                &facts.server_name,
                me.http_port,
                me.https_port,
                facts.claimed,
            ))
        })
        .await
        .ok()
        .flatten()
    }

    async fn announce(
        sock: &MulticastSocket,
        advert: &Advert,
        ifaces: &[LanInterface],
        goodbye: bool,
    ) {
        for i in ifaces {
            let msg = announcement(advert, i.addr, goodbye);
            if let Err(e) = sock.send_on(&msg, SocketAddrV4::new(GROUP, PORT), i).await {
                tracing::debug!(interface = %i.name, error = %e, "mDNS announcement not sent");
            }
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let sock = match MulticastSocket::bind(GROUP, PORT, 255) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "mDNS cannot listen on UDP port 5353; hearth.local will not resolve");
                return;
            }
        };
        let Some(mut advert) = self.advert().await else {
            tracing::error!("mDNS cannot read the server name; not advertising");
            return;
        };
        let mut limit = RateLimit::new(20, 200);
        let mut tick = tokio::time::interval(LOOK_AGAIN);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 9000];
        // RFC 6762 §8.3: announce at least twice, a second apart.
        let mut repeat: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {
                    let added = sock.sync(&lan_interfaces(&self.only));
                    let now = self.advert().await.unwrap_or_else(|| advert.clone());
                    if now != advert {
                        advert = now;
                        Self::announce(&sock, &advert, &sock.interfaces(), false).await;
                        repeat = Some(tokio::time::Instant::now());
                    } else if !added.is_empty() {
                        Self::announce(&sock, &advert, &added, false).await;
                        repeat = Some(tokio::time::Instant::now());
                    } else if repeat.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
                        Self::announce(&sock, &advert, &sock.interfaces(), false).await;
                        repeat = None;
                    }
                }
                got = sock.recv(&mut buf) => {
                    let r = match got {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(error = %e, "mDNS receive failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    if r.len > buf.len() {
                        continue;
                    }
                    let Some(iface) = sock.lan_origin(&r) else { continue };
                    let Some((id, questions)) = parse_query(&buf[..r.len]) else { continue };
                    if !limit.allow(*r.from.ip()) {
                        continue;
                    }
                    // Answer with what is true now: a claim or a rename must not wait for
                    // the next tick (the query is rate-limited, the read is one redb lookup).
                    if let Some(now) = self.advert().await
                        && now != advert
                    {
                        advert = now;
                        Self::announce(&sock, &advert, &sock.interfaces(), false).await;
                        repeat = Some(tokio::time::Instant::now());
                    }
                    let legacy = r.from.port() != PORT;
                    let mode = if legacy { Mode::Legacy { id } } else { Mode::Multicast };
                    let Some(msg) = answer(&advert, iface.addr, &questions, mode) else { continue };
                    let to = if legacy || questions.iter().all(|q| q.unicast) {
                        r.from
                    } else {
                        SocketAddrV4::new(GROUP, PORT)
                    };
                    if let Err(e) = sock.send_on(&msg, to, &iface).await {
                        tracing::debug!(error = %e, "mDNS answer not sent");
                    }
                }
            }
        }
        Self::announce(&sock, &advert, &sock.interfaces(), true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, qs: &[(&str, u16, bool)]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&(qs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        for (n, t, qu) in qs {
            write_name(&mut m, n);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&(1u16 | if *qu { 0x8000 } else { 0 }).to_be_bytes());
        }
        m
    }

    fn advert() -> Advert {
        Advert::new("den-box", "Den. Media", 80, Some(443), true)
    }

    #[test]
    fn answers_both_host_names_with_the_interface_address() {
        let a = advert();
        assert_eq!(a.hosts, ["hearth.local", "den-box.local"]);
        assert_eq!(a.instance, "Den  Media");
        let addr: Ipv4Addr = "10.231.1.1".parse().unwrap();
        for host in ["hearth.local", "HEARTH.local", "den-box.local"] {
            let (id, qs) = parse_query(&query(7, &[(host, T_A, false)])).unwrap();
            let msg = answer(&a, addr, &qs, Mode::Legacy { id }).expect(host);
            assert_eq!(&msg[..2], &7u16.to_be_bytes());
            assert!(msg.windows(4).any(|w| w == [10, 231, 1, 1]), "{host}");
        }
        let (_, qs) = parse_query(&query(0, &[("other.local", T_A, false)])).unwrap();
        assert!(answer(&a, addr, &qs, Mode::Multicast).is_none());
    }

    #[test]
    fn service_browsing_carries_srv_txt_and_address() {
        let a = advert();
        let (_, qs) = parse_query(&query(0, &[("_hearth._tcp.local", T_PTR, false)])).unwrap();
        let msg = answer(&a, "192.168.1.2".parse().unwrap(), &qs, Mode::Multicast).unwrap();
        let text = String::from_utf8_lossy(&msg);
        assert!(text.contains("claimed=true"), "{text}");
        assert!(text.contains(&format!("version={}", crate::model::build::version())));
        assert!(msg.windows(4).any(|w| w == [192, 168, 1, 2]));
        let ann = announcement(&a, "192.168.1.2".parse().unwrap(), false);
        assert!(String::from_utf8_lossy(&ann).contains("_https"));
    }

    /// Found while writing the `mdns` fuzz target's size bound: a legacy answer repeated
    /// every question, so this 457-byte query (one real question, then 31 copies of one
    /// long name of invalid UTF-8, which grows threefold when read) drew a 22,037-byte
    /// answer, past the 9000-byte mDNS limit: a 48× amplifier towards any address on the
    /// LAN a query claims to come from.
    #[test]
    fn legacy_answers_repeat_only_answered_questions() {
        let mut m = query(9, &[("hearth.local", T_A, false)]);
        m[5] = 32;
        let long_at = m.len();
        for _ in 0..11 {
            m.push(21);
            m.extend_from_slice(&[0xff; 21]);
        }
        m.push(0);
        m.extend_from_slice(&[0, 1, 0, 1]);
        for _ in 0..30 {
            m.extend_from_slice(&[0xc0, long_at as u8, 0, 1, 0, 1]);
        }
        let (id, qs) = parse_query(&m).unwrap();
        assert_eq!(qs.len(), 32);
        let msg = answer(
            &advert(),
            "10.0.0.2".parse().unwrap(),
            &qs,
            Mode::Legacy { id },
        )
        .unwrap();
        assert!(msg.len() <= 9000, "{} bytes", msg.len());
        assert_eq!(
            u16::from_be_bytes([msg[4], msg[5]]),
            1,
            "one question repeated"
        );
        // The same question twice is repeated once.
        let (id, qs) = parse_query(&query(
            3,
            &[("hearth.local", T_A, false), ("HEARTH.local", T_A, false)],
        ))
        .unwrap();
        let msg = answer(
            &advert(),
            "10.0.0.2".parse().unwrap(),
            &qs,
            Mode::Legacy { id },
        )
        .unwrap();
        assert_eq!(u16::from_be_bytes([msg[4], msg[5]]), 1);
    }

    #[test]
    fn a_dot_inside_a_label_is_not_a_separator() {
        // One label `hearth.local` under the root is not the name hearth.local.
        let mut m = query(1, &[]);
        m[5] = 1;
        m.push(12);
        m.extend_from_slice(b"hearth.local");
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        let (_, qs) = parse_query(&m).unwrap();
        assert_eq!(qs[0].name, "hearth\\.local");
        assert!(answer(&advert(), "10.0.0.2".parse().unwrap(), &qs, Mode::Multicast).is_none());
    }

    #[test]
    fn malformed_queries_are_ignored() {
        let mut looped = query(1, &[("a.local", T_A, false)]);
        looped.truncate(12);
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // points at itself
        let mut response = query(1, &[("hearth.local", T_A, false)]);
        response[2] = 0x84;
        let mut forward = query(1, &[]);
        forward[5] = 1;
        forward.extend_from_slice(&[0xc0, 40, 0, 1, 0, 1]);
        for bad in [
            vec![],
            vec![0; 11],
            looped,
            response,
            forward,
            query(1, &[]),
            vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 70],
        ] {
            assert_eq!(parse_query(&bad), None, "{bad:?}");
        }
    }
}
