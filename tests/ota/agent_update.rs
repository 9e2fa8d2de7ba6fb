//! The agent's update verbs over its real socket: every refusal in one table (callers,
//! arguments, bundles, chunks), each checked to have changed nothing on the slots and the
//! ESP; then one good session end to end.

use serde_json::json;

use crate::device::{Device, Raw, SLOT_BYTES, code};
use crate::support::{Publisher, noise};
use hearth::ota::Version;
use hearth::ota::bundle::{self, CreateSpec};

/// Everything a refusal must leave alone.
fn snapshot(d: &Device) -> (Vec<u8>, Vec<String>, Vec<String>) {
    let mut esp: Vec<String> = walk(&d.path("esp"));
    esp.sort();
    (d.read("slots/root-b.img"), d.entries(), esp)
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(format!(
                "{} {}",
                e.path().display(),
                hex::encode(bundle::sha256_of(&std::fs::read(e.path()).unwrap()))
            ));
        }
    }
    out
}

fn meta_of(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let pre = bundle::parse_preamble(&bytes).unwrap();
    bytes[..pre.meta_len() as usize].to_vec()
}

struct Made {
    meta: Vec<u8>,
    plain: Vec<Vec<u8>>,
}

fn make(
    p: &Publisher,
    name: &str,
    board: &str,
    version: Version,
    payloads: &[(&str, Vec<u8>)],
) -> Made {
    let mut list = Vec::new();
    for (slot, data) in payloads {
        let f = p.path(&format!("{name}-{slot}"));
        std::fs::write(&f, data).unwrap();
        list.push((slot.to_string(), f));
    }
    let out = p.path(&format!("{name}.hbundle"));
    let meta = bundle::create(
        &CreateSpec {
            board: board.into(),
            version,
            min_version: Version(0, 1, 0),
            payloads: list,
        },
        &p.key,
        &out,
    )
    .unwrap();
    // The plain chunks in order, as a server would send them after verifying.
    let mut plain = Vec::new();
    for c in &meta.chunks {
        let data = &payloads[c.payload].1;
        plain.push(data[c.offset as usize..(c.offset + c.len as u64) as usize].to_vec());
    }
    Made {
        meta: meta_of(&out),
        plain,
    }
}

#[test]
fn update_verbs_refuse_bad_callers_arguments_bundles_and_chunks_and_change_nothing() {
    let publisher = Publisher::new("release");
    let stranger = Publisher::new("stranger");
    let root_a = noise(1, 300_000);
    let kernel = noise(2, 100_000);
    let mut dev = Device::new(&publisher.keyring_dir, "1.0.0", &root_a, &kernel);
    let good_payloads = vec![
        ("rootfs", noise(3, 200_000)),
        ("kernel", kernel.clone()),
        ("initrd", noise(4, 70_000)),
    ];
    let good = make(
        &publisher,
        "good",
        "generic-x86_64",
        Version(1, 1, 0),
        &good_payloads,
    );
    let untrusted = make(
        &stranger,
        "untrusted",
        "generic-x86_64",
        Version(1, 1, 0),
        &good_payloads,
    );
    let other_board = make(&publisher, "pi", "rpi4", Version(1, 1, 0), &good_payloads);
    let older = make(
        &publisher,
        "older",
        "generic-x86_64",
        Version(0, 9, 0),
        &good_payloads,
    );
    let same = make(
        &publisher,
        "same",
        "generic-x86_64",
        Version(1, 0, 0),
        &good_payloads,
    );
    let foreign_payload = make(
        &publisher,
        "foreign",
        "generic-x86_64",
        Version(1, 1, 0),
        &[
            ("rootfs", noise(3, 1000)),
            ("kernel", noise(5, 1000)),
            ("initrd", noise(6, 1000)),
            ("bootloader", noise(7, 1000)),
        ],
    );
    let no_kernel = make(
        &publisher,
        "nokernel",
        "generic-x86_64",
        Version(1, 1, 0),
        &[("rootfs", noise(3, 1000))],
    );
    let too_big = make(
        &publisher,
        "big",
        "generic-x86_64",
        Version(1, 1, 0),
        &[
            ("rootfs", noise(3, SLOT_BYTES as usize + 1)),
            ("kernel", noise(5, 1000)),
            ("initrd", noise(6, 1000)),
        ],
    );
    let mut flipped = good.meta.clone();
    flipped[40] ^= 1;

    let before = snapshot(&dev);
    // (what, request line, raw bytes after it, expected code)
    let cases: Vec<(&str, serde_json::Value, Vec<u8>, &str)> = vec![
        (
            "metadata larger than any bundle",
            json!({"verb":"write_slot","meta_len": u32::MAX}),
            vec![],
            "request_too_large",
        ),
        (
            "not a bundle",
            json!({"verb":"write_slot","meta_len": 64}),
            vec![7u8; 64],
            "bundle_invalid",
        ),
        (
            "altered header",
            json!({"verb":"write_slot","meta_len": flipped.len()}),
            flipped.clone(),
            "bundle_invalid",
        ),
        (
            "signed by an unknown key",
            json!({"verb":"write_slot","meta_len": untrusted.meta.len()}),
            untrusted.meta.clone(),
            "bundle_invalid",
        ),
        (
            "another board",
            json!({"verb":"write_slot","meta_len": other_board.meta.len()}),
            other_board.meta.clone(),
            "wrong_board",
        ),
        (
            "older version",
            json!({"verb":"write_slot","meta_len": older.meta.len()}),
            older.meta.clone(),
            "not_newer",
        ),
        (
            "same version even with downgrade",
            json!({"verb":"write_slot","meta_len": same.meta.len(),"allow_downgrade":true}),
            same.meta.clone(),
            "same_version",
        ),
        (
            "a payload this device has no place for",
            json!({"verb":"write_slot","meta_len": foreign_payload.meta.len()}),
            foreign_payload.meta.clone(),
            "wrong_payloads",
        ),
        (
            "no kernel for systemd-boot",
            json!({"verb":"write_slot","meta_len": no_kernel.meta.len()}),
            no_kernel.meta.clone(),
            "wrong_payloads",
        ),
        (
            "larger than the slot",
            json!({"verb":"write_slot","meta_len": too_big.meta.len()}),
            too_big.meta.clone(),
            "payload_too_large",
        ),
        (
            "caller names the device",
            json!({"verb":"write_slot","meta_len": 10,"device":"/dev/sda2"}),
            vec![],
            "malformed_request",
        ),
        (
            "caller names the slot",
            json!({"verb":"set_next_boot","version":"1.1.0","slot":"a"}),
            vec![],
            "malformed_request",
        ),
        (
            "trial of something never staged",
            json!({"verb":"set_next_boot","version":"1.1.0"}),
            vec![],
            "not_staged",
        ),
        (
            "trial of the running version",
            json!({"verb":"set_next_boot","version":"1.0.0"}),
            vec![],
            "not_staged",
        ),
        (
            "bad version",
            json!({"verb":"set_next_boot","version":"1.1"}),
            vec![],
            "malformed_request",
        ),
        (
            "give up on a slot that is not on trial",
            json!({"verb":"mark_bad"}),
            vec![],
            "not_on_trial",
        ),
        (
            "mark_good with arguments",
            json!({"verb":"mark_good","slot":"b"}),
            vec![],
            "malformed_request",
        ),
    ];
    for (what, line, raw, want) in &cases {
        let got = Raw::connect(&dev.socket).send(line, raw);
        assert_eq!(code(&got), *want, "{what}: {got}");
        assert!(
            got["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 20),
            "{what}: a person can read why: {got}"
        );
        assert_eq!(snapshot(&dev), before, "{what}: changed the device");
    }

    // Inside a session: altered chunks, wrong lengths and unknown chunks are refused and
    // never written; the session ends with the first refusal.
    let n = good.plain.len();
    let mut altered = good.plain[0].clone();
    altered[100] ^= 1;
    let session_cases: Vec<(&str, serde_json::Value, Vec<u8>, &str)> = vec![
        (
            "altered chunk",
            json!({"op":"chunk","index":0,"len":altered.len()}),
            altered,
            "chunk_mismatch",
        ),
        (
            "chunk of another index",
            json!({"op":"chunk","index":1,"len":good.plain[0].len()}),
            good.plain[0].clone(),
            "chunk_mismatch",
        ),
        (
            "index outside the bundle",
            json!({"op":"chunk","index":n,"len":10}),
            vec![0; 10],
            "no_such_chunk",
        ),
        (
            "reuse range outside the bundle",
            json!({"op":"reuse","done":[[0, n + 5]]}),
            vec![],
            "malformed_request",
        ),
        (
            "unknown step",
            json!({"op":"format"}),
            vec![],
            "malformed_request",
        ),
        (
            "finish before writing",
            json!({"op":"finish"}),
            vec![],
            "read_back_mismatch",
        ),
    ];
    for (what, line, raw, want) in &session_cases {
        let before_b = dev.read("slots/root-b.img");
        let mut s = Raw::connect(&dev.socket);
        let ok = s.send(
            &json!({"verb":"write_slot","meta_len": good.meta.len()}),
            &good.meta,
        );
        assert_eq!(code(&ok), "ok", "{what}: {ok}");
        assert_eq!(
            ok["result"]["slot"], "b",
            "the agent picks the inactive slot"
        );
        let got = s.send(line, raw);
        assert_eq!(code(&got), *want, "{what}: {got}");
        assert_eq!(
            dev.read("slots/root-b.img"),
            before_b,
            "{what}: wrote to the slot"
        );
        assert!(
            dev.entries() == vec!["hearth-1.0.0.conf"],
            "{what}: entries changed"
        );
    }

    // A refused peer gets nothing, whatever it asks.
    dev.boot("hearth-1.0.0.conf", Some(vec![4242]));
    for verb in [
        "write_slot",
        "set_next_boot",
        "mark_good",
        "mark_bad",
        "reboot",
        "boot_status",
    ] {
        let got = Raw::connect(&dev.socket).send(&json!({"verb": verb}), &[]);
        assert_eq!(code(&got), "forbidden_peer", "{verb}: {got}");
    }
    assert_eq!(dev.reboots(), 0);
    dev.boot("hearth-1.0.0.conf", None);

    // One good session: reuse (the kernel is already on the ESP), chunks, finish, trial.
    let mut s = Raw::connect(&dev.socket);
    let ok = s.send(
        &json!({"verb":"write_slot","meta_len": good.meta.len()}),
        &good.meta,
    );
    assert_eq!(code(&ok), "ok", "{ok}");
    let reused = s.send(&json!({"op":"reuse","done":[]}), &[]);
    assert_eq!(code(&reused), "ok", "{reused}");
    let local: Vec<(u32, u32)> = serde_json::from_value(reused["result"]["local"].clone()).unwrap();
    let local: Vec<usize> = local
        .iter()
        .flat_map(|&(a, b)| a as usize..b as usize)
        .collect();
    assert!(
        !local.is_empty(),
        "the kernel chunks come from the running version's files"
    );
    for (i, data) in good.plain.iter().enumerate() {
        if local.contains(&i) {
            continue;
        }
        let r = s.send(&json!({"op":"chunk","index":i,"len":data.len()}), data);
        assert_eq!(code(&r), "ok", "chunk {i}: {r}");
    }
    let fin = s.send(&json!({"op":"finish"}), &[]);
    assert_eq!(code(&fin), "ok", "{fin}");
    assert_eq!(fin["result"], json!({"slot":"b","version":"1.1.0"}));
    let b = dev.read("slots/root-b.img");
    assert_eq!(&b[..good_payloads[0].1.len()], &good_payloads[0].1[..]);
    assert_eq!(dev.read("esp/hearth/1.1.0/vmlinuz"), kernel);
    assert_eq!(dev.read("esp/hearth/1.1.0/initrd.img"), good_payloads[2].1);
    let r = Raw::connect(&dev.socket).send(&json!({"verb":"set_next_boot","version":"1.2.0"}), &[]);
    assert_eq!(code(&r), "not_staged", "{r}");
    let r = Raw::connect(&dev.socket).send(&json!({"verb":"set_next_boot","version":"1.1.0"}), &[]);
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(
        dev.entries(),
        vec!["hearth-1.0.0.conf", "hearth-1.1.0+3.conf"]
    );
    let entry = String::from_utf8(dev.read("esp/loader/entries/hearth-1.1.0+3.conf")).unwrap();
    assert!(
        entry.contains("options root=PARTLABEL=root-b rootfstype=erofs ro console=ttyS0 quiet"),
        "the new entry boots slot b like the running one: {entry}"
    );
    // A reboot forgets what was staged: a second trial needs a fresh write.
    dev.boot("hearth-1.0.0.conf", None);
    let r = Raw::connect(&dev.socket).send(&json!({"verb":"set_next_boot","version":"1.1.0"}), &[]);
    assert_eq!(code(&r), "not_staged", "{r}");

    // The trial boot: on trial, then given up on at once; the old entry boots next.
    dev.boot_trial("1.1.0");
    let st = Raw::connect(&dev.socket).send(&json!({"verb":"boot_status"}), &[]);
    assert_eq!(st["result"]["slot"], "b", "{st}");
    assert_eq!(st["result"]["on_trial"], true, "{st}");
    let r = Raw::connect(&dev.socket).send(
        &json!({"verb":"write_slot","meta_len": good.meta.len()}),
        &good.meta,
    );
    assert_eq!(
        code(&r),
        "not_newer",
        "nothing is installed over a running trial: {r}"
    );
    let r = Raw::connect(&dev.socket).send(&json!({"verb":"mark_bad"}), &[]);
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(
        dev.entries(),
        vec!["hearth-1.0.0.conf", "hearth-1.1.0+0-1.conf"]
    );
    dev.boot("hearth-1.0.0.conf", None);
    let st = Raw::connect(&dev.socket).send(&json!({"verb":"boot_status"}), &[]);
    assert_eq!(st["result"]["slot"], "a", "{st}");
    assert_eq!(st["result"]["rollback"]["failed_version"], "1.1.0", "{st}");
    assert_eq!(
        st["result"]["rollback"]["reason"],
        "version 1.1.0 did not start successfully after 1 try; the device went back to version 1.0.0",
        "{st}"
    );
    let r = Raw::connect(&dev.socket).send(&json!({"verb":"mark_good"}), &[]);
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(
        dev.entries(),
        vec!["hearth-1.0.0.conf"],
        "blessing drops the failed entry"
    );
    let r = Raw::connect(&dev.socket).send(&json!({"verb":"reboot"}), &[]);
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(dev.reboots(), 1);
}
