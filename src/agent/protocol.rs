//! The agent's wire protocol: one JSON object per line each way.
//!
//! Security-relevant: this is what an unprivileged (possibly compromised) server sends to
//! root. Requests are capped at [`MAX_REQUEST_BYTES`], the verb set is fixed, and unknown
//! fields are refused rather than ignored.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::blockdev::Disk;
use crate::model::Version;

/// Largest request line the agent reads, newline included.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Largest answer line the client reads (a disk list of a busy machine fits easily).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Every verb this agent knows; anything else is refused before its arguments are read.
pub const VERBS: &[&str] = &[
    "list_disks",
    "mount",
    "unmount",
    "eject",
    "boot_status",
    "write_slot",
    "set_next_boot",
    "mark_good",
    "mark_bad",
    "reboot",
    "set_time_sync",
];

/// Largest line inside a `write_slot` session (a `reuse` list of chunk ranges).
pub const MAX_SESSION_LINE: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// A struct variant, not a unit one: serde's `deny_unknown_fields` does not reach unit
    /// variants of a tagged enum, and `{"verb": "list_disks", "path": "/"}` must be refused.
    ListDisks {},
    Mount {
        uuid: String,
        read_only: bool,
        /// The mount point name remembered for this disk, used if still free.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Unmount {
        uuid: String,
    },
    Eject {
        uuid: String,
    },
    /// Which slot runs, whether it is on trial, and whether a trial failed.
    BootStatus {},
    /// Starts a slot-writing session: `meta_len` bytes of bundle metadata (preamble,
    /// header, signatures, index) follow the line, then [`SessionOp`] lines.
    WriteSlot {
        meta_len: u32,
        /// The owner allowed installing an older version.
        #[serde(default)]
        allow_downgrade: bool,
    },
    /// Boots the staged slot on trial next time; `version` must be what was staged.
    SetNextBoot {
        version: Version,
    },
    /// The running slot is healthy: keep it.
    MarkGood {},
    /// The running slot on trial is unhealthy: give up on it now instead of retrying.
    MarkBad {},
    Reboot {},
    /// Which NTP servers the device asks: Debian's pool, the owner's own, or none at all.
    SetTimeSync {
        mode: crate::agent::timesync::TimeSyncMode,
        #[serde(default)]
        servers: Vec<String>,
    },
}

impl Request {
    pub fn verb(&self) -> &'static str {
        match self {
            Request::ListDisks {} => "list_disks",
            Request::Mount { .. } => "mount",
            Request::Unmount { .. } => "unmount",
            Request::Eject { .. } => "eject",
            Request::BootStatus {} => "boot_status",
            Request::WriteSlot { .. } => "write_slot",
            Request::SetNextBoot { .. } => "set_next_boot",
            Request::MarkGood {} => "mark_good",
            Request::MarkBad {} => "mark_bad",
            Request::Reboot {} => "reboot",
            Request::SetTimeSync { .. } => "set_time_sync",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Ok { ok: True, result: serde_json::Value },
    Err { ok: False, error: ErrorBody },
}

/// `true` on the wire, and only that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "bool", into = "bool")]
pub struct True;
impl TryFrom<bool> for True {
    type Error = &'static str;
    fn try_from(b: bool) -> Result<Self, Self::Error> {
        if b { Ok(True) } else { Err("expected true") }
    }
}
impl From<True> for bool {
    fn from(_: True) -> bool {
        true
    }
}

/// `false` on the wire, and only that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "bool", into = "bool")]
pub struct False;
impl TryFrom<bool> for False {
    type Error = &'static str;
    fn try_from(b: bool) -> Result<Self, Self::Error> {
        if b { Err("expected false") } else { Ok(False) }
    }
}
impl From<False> for bool {
    fn from(_: False) -> bool {
        false
    }
}

impl Response {
    pub fn error(code: &str, message: impl Into<String>) -> Response {
        Response::Err {
            ok: False,
            error: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskList {
    pub disks: Vec<Disk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounted {
    pub mount_point: PathBuf,
    /// It was mounted there before this request; nothing changed.
    pub already_mounted: bool,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmounted {
    pub unmounted: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ejected {
    pub unmounted: Vec<PathBuf>,
    /// The kernel took the device away (USB disks); it may be unplugged now.
    pub powered_off: bool,
    /// A sentence for the owner about what happened to the device.
    pub note: String,
}

/// One step of a `write_slot` session, sent as a line after the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionOp {
    /// The server's journal says these chunk ranges (`[start, end)`) are already on the
    /// slot; the agent copies what else it finds on the device and answers [`Reused`].
    /// The final read-back check catches a journal that was wrong.
    Reuse { done: Vec<(u32, u32)> },
    /// `len` raw bytes of chunk `index`, decompressed, follow the line.
    Chunk { index: u32, len: u32 },
    /// Make everything written so far durable.
    Sync,
    /// Read the slot back and check every payload against the signed header.
    Finish,
}

/// What `write_slot` answers after checking the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staging {
    pub slot: Slot,
    pub version: Version,
    pub chunks: u32,
    /// Names the target in the server's journal (`agent:root-b`).
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reused {
    /// Chunk ranges `[start, end)` the agent filled from the device itself.
    pub local: Vec<(u32, u32)>,
}

/// The slot was written and read back: it holds `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub slot: Slot,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootInfo {
    pub slot: Slot,
    /// Version of the running boot entry, when the boot method records it.
    pub version: Option<Version>,
    pub on_trial: bool,
    pub rollback: Option<RollbackInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackInfo {
    pub failed_version: Option<Version>,
    pub reason: String,
}

/// Why a request line was refused before any verb ran.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseOutcome {
    Request(Request),
    Refused(Response),
}

/// Parses one request line (without the newline).
pub fn parse_request(line: &[u8]) -> ParseOutcome {
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return ParseOutcome::Refused(Response::error(
                "malformed_request",
                format!("the request is not one JSON object per line: {e}"),
            ));
        }
    };
    let Some(verb) = value
        .get("verb")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
    else {
        return ParseOutcome::Refused(Response::error(
            "malformed_request",
            "the request has no \"verb\" string",
        ));
    };
    let verb = verb.as_str();
    if !VERBS.contains(&verb) {
        return ParseOutcome::Refused(Response::error(
            "unknown_verb",
            format!("`{verb}` is not a verb this agent knows"),
        ));
    }
    match serde_json::from_value::<Request>(value) {
        Ok(r) => ParseOutcome::Request(r),
        Err(e) => ParseOutcome::Refused(Response::error(
            "malformed_request",
            format!("the arguments of `{verb}` are not valid: {e}"),
        )),
    }
}

/// One of the two A/B slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    pub fn letter(self) -> char {
        match self {
            Slot::A => 'a',
            Slot::B => 'b',
        }
    }
}

/// Sorted chunk numbers as `[start, end)` ranges.
pub fn ranges(sorted: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &i in sorted {
        match out.last_mut() {
            Some((_, end)) if *end == i => *end = i + 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> String {
        match parse_request(line.as_bytes()) {
            ParseOutcome::Request(r) => format!("ok:{}", r.verb()),
            ParseOutcome::Refused(Response::Err { error, .. }) => error.code,
            ParseOutcome::Refused(r) => panic!("{r:?}"),
        }
    }

    #[test]
    fn request_table() {
        let cases = [
            (r#"{"verb":"list_disks"}"#, "ok:list_disks"),
            (r#"{"verb":"list_disks","path":"/"}"#, "malformed_request"),
            (
                r#"{"verb":"mount","uuid":"u","read_only":true}"#,
                "ok:mount",
            ),
            (
                r#"{"verb":"mount","uuid":"u","read_only":false,"name":"Films"}"#,
                "ok:mount",
            ),
            (r#"{"verb":"mount","uuid":"u"}"#, "malformed_request"),
            (
                r#"{"verb":"mount","uuid":"u","read_only":"yes"}"#,
                "malformed_request",
            ),
            (
                r#"{"verb":"mount","uuid":"u","read_only":true,"device":"/dev/sda"}"#,
                "malformed_request",
            ),
            (r#"{"verb":"unmount","uuid":"u"}"#, "ok:unmount"),
            (r#"{"verb":"eject","uuid":"u"}"#, "ok:eject"),
            (r#"{"verb":"eject"}"#, "malformed_request"),
            (r#"{"verb":"format","uuid":"u"}"#, "unknown_verb"),
            // The caller never names a slot or a device: the agent works them out.
            (r#"{"verb":"write_slot","slot":"b"}"#, "malformed_request"),
            (
                r#"{"verb":"write_slot","meta_len":100,"device":"/dev/sda2"}"#,
                "malformed_request",
            ),
            (
                r#"{"verb":"write_slot","meta_len":-1}"#,
                "malformed_request",
            ),
            (r#"{"verb":"write_slot","meta_len":100}"#, "ok:write_slot"),
            (
                r#"{"verb":"write_slot","meta_len":100,"allow_downgrade":true}"#,
                "ok:write_slot",
            ),
            (r#"{"verb":"set_next_boot"}"#, "malformed_request"),
            (
                r#"{"verb":"set_next_boot","version":"1.2"}"#,
                "malformed_request",
            ),
            (
                r#"{"verb":"set_next_boot","version":"1.2.3","slot":"a"}"#,
                "malformed_request",
            ),
            (
                r#"{"verb":"set_next_boot","version":"1.2.3"}"#,
                "ok:set_next_boot",
            ),
            (r#"{"verb":"mark_good"}"#, "ok:mark_good"),
            (r#"{"verb":"mark_good","slot":"b"}"#, "malformed_request"),
            (r#"{"verb":"mark_bad"}"#, "ok:mark_bad"),
            (r#"{"verb":"boot_status"}"#, "ok:boot_status"),
            (r#"{"verb":"reboot"}"#, "ok:reboot"),
            (r#"{"verb":"reboot","when":"now"}"#, "malformed_request"),
            (
                r#"{"verb":"set_time_sync","mode":"off"}"#,
                "ok:set_time_sync",
            ),
            (
                r#"{"verb":"set_time_sync","mode":"custom","servers":["ntp.lan"]}"#,
                "ok:set_time_sync",
            ),
            (
                r#"{"verb":"set_time_sync","mode":"sometimes"}"#,
                "malformed_request",
            ),
            (r#"{"verb":"set_time_sync"}"#, "malformed_request"),
            (
                r#"{"verb":"set_time_sync","mode":"off","file":"/etc/passwd"}"#,
                "malformed_request",
            ),
            (r#"{"verb":7}"#, "malformed_request"),
            (r#"["list_disks"]"#, "malformed_request"),
            (r#"{"verb":"list_disks""#, "malformed_request"),
            ("", "malformed_request"),
            ("\u{0}", "malformed_request"),
        ];
        for (line, want) in cases {
            assert_eq!(code(line), want, "{line}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let ok = Response::Ok {
            ok: True,
            result: serde_json::json!({"x": 1}),
        };
        let s = serde_json::to_string(&ok).unwrap();
        assert_eq!(s, r#"{"ok":true,"result":{"x":1}}"#);
        assert_eq!(serde_json::from_str::<Response>(&s).unwrap(), ok);
        let err = Response::error("busy", "in use");
        let s = serde_json::to_string(&err).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&s).unwrap(), err);
        assert!(
            serde_json::from_str::<Response>(r#"{"ok":true,"error":{"code":"a","message":"b"}}"#)
                .is_err()
        );
    }
}
