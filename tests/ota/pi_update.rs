//! The Raspberry Pi update path end to end on file-backed slots: a real agent on its socket
//! with the tryboot boot control, bundles made by `hearth bundle create` with the `rootfs`
//! and `boot` payloads, `write_slot` sessions, `set_next_boot`, `reboot`, `mark_good` and
//! `mark_bad`. The test plays the firmware (it reads `autoboot.txt` and the reboot the agent
//! asked for, and reports the partition it booted and the tryboot flag in a fixture
//! `/proc/device-tree/chosen/bootloader`) and the initramfs (boot-a → root-a, boot-b →
//! root-b; the root's version file comes from the root slot it "mounts"). Then the same
//! through `hearth serve`'s Updates API, which does not care which boot control it drives.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{TestServer, get};
use crate::device::{Raw, code, spawn_agent};
use crate::download::{Fault, serve};
use crate::install_http::{channel_files, claim, login, wait_install};
use crate::support::noise;
use hearth::agent::AgentConfig;
use hearth::agent::boot::Autoboot;
use hearth::agent::update::{BootSetup, RebootAction, SlotDevices, UpdateConfig};
use hearth::ota::Keyring;
use hearth::ota::bundle;

const BOARD: &str = "rpi4";
const ROOT_BYTES: u64 = 2 << 20;
const BOOT_BYTES: u64 = 1 << 20;
/// Partition numbers of boot-a and boot-b in the image's layout.
const BOOT_A: u32 = 2;
const BOOT_B: u32 = 3;

/// A root filesystem of `version`: a first line the fixture initramfs reads, then noise.
fn root_of(version: &str, seed: u64) -> Vec<u8> {
    let mut v = format!("HEARTH-ROOT {version}\n").into_bytes();
    v.extend(noise(seed, 300_000));
    v
}

/// A boot slot image of `version` (firmware, config.txt, kernel … in a FAT on the device).
fn boot_of(version: &str, seed: u64) -> Vec<u8> {
    let mut v = format!("HEARTH-BOOT {version}\n").into_bytes();
    v.extend(noise(seed, 200_000));
    v
}

struct Pi {
    board: String,
    dir: tempfile::TempDir,
    socket: PathBuf,
    keyring: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    boots: u32,
}

/// Part of `/proc/kallsyms` of the Raspberry Pi kernel, whose firmware driver passes
/// `tryboot` on to the firmware when it reboots.
const KALLSYMS_RPI_KERNEL: &str = "ffffffc008010000 T _text\nffffffc0089a1b20 t rpi_firmware_notify_reboot\nffffffc0089a1c40 T rpi_firmware_property\n";
/// The same part of Debian's (mainline) kernel: the driver, but no reboot hook.
const KALLSYMS_DEBIAN_KERNEL: &str = "ffffffc008010000 T _text\nffffffc0089a1c40 T rpi_firmware_property\nffffffc0089a1d00 t rpi_firmware_shutdown\n";
/// Debian's kernel with the image's hearth_tryboot module loaded (module symbols are listed
/// with the module's name after a tab).
const KALLSYMS_DEBIAN_WITH_MODULE: &str = "ffffffc008010000 T _text\nffffffc0089a1c40 T rpi_firmware_property\nffff800000d00000 t hearth_tryboot_notify\t[hearth_tryboot]\n";

impl Pi {
    /// A factory image running `version` from boot-a/root-a; boot-b and root-b are empty.
    fn new(keyring: &Path, board: &str, root_a: &[u8], boot_a: &[u8]) -> Pi {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("slots")).unwrap();
        for (label, data, size) in [
            ("root-a", root_a, ROOT_BYTES),
            ("root-b", &[][..], ROOT_BYTES),
            ("boot-a", boot_a, BOOT_BYTES),
            ("boot-b", &[][..], BOOT_BYTES),
        ] {
            let mut v = data.to_vec();
            v.resize(size as usize, 0);
            std::fs::write(d.join(format!("slots/{label}.img")), v).unwrap();
        }
        std::fs::create_dir_all(d.join("autoboot")).unwrap();
        // What image/build puts on the autoboot partition (board/rpi4/overlay).
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("board/rpi4/overlay/usr/lib/hearth/boot/autoboot.txt"),
            d.join("autoboot/autoboot.txt"),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("dt")).unwrap();
        std::fs::write(d.join("kallsyms"), KALLSYMS_DEBIAN_WITH_MODULE).unwrap();
        let keys = d.join("keys");
        std::fs::create_dir(&keys).unwrap();
        for e in std::fs::read_dir(keyring).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), keys.join(e.file_name())).unwrap();
        }
        let mut pi = Pi {
            board: board.to_owned(),
            socket: d.join("agent.sock"),
            keyring: keys,
            dir,
            stop: None,
            thread: None,
            boots: 0,
        };
        pi.power_on(false);
        pi
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap()
    }

    fn config(&self) -> UpdateConfig {
        UpdateConfig {
            board: self.board.clone(),
            keyring_dir: self.keyring.clone(),
            boot: BootSetup::Tryboot {
                boot_dir: self.path("autoboot"),
                bootloader_dir: self.path("dt"),
                partitions: [BOOT_A, BOOT_B],
                version_file: self.path("version"),
                kernel_symbols: self.path("kallsyms"),
            },
            slots: SlotDevices::TestFiles {
                dir: self.path("slots"),
            },
            state_dir: self.path("run"),
            boot_id_path: self.path("boot_id"),
            reboot: RebootAction::TestRecord(self.path("reboots")),
        }
    }

    fn autoboot(&self) -> Autoboot {
        let text = std::fs::read_to_string(self.path("autoboot/autoboot.txt")).unwrap();
        Autoboot::parse(&text).expect("autoboot.txt always parses")
    }

    /// Power on: the firmware boots [tryboot] once when asked, else [all], and says which
    /// partition in the device tree; the initramfs mounts the root of that boot slot (its
    /// version file is what the agent reads); then the agent starts with a new boot id.
    fn power_on(&mut self, tryboot: bool) {
        self.halt();
        let ab = self.autoboot();
        let part = if tryboot { ab.tryboot } else { ab.committed };
        std::fs::write(self.path("dt/partition"), part.to_be_bytes()).unwrap();
        std::fs::write(self.path("dt/tryboot"), (tryboot as u32).to_be_bytes()).unwrap();
        let root = match part {
            BOOT_A => "root-a",
            BOOT_B => "root-b",
            p => panic!("the firmware booted partition {p}"),
        };
        let data = self.read(&format!("slots/{root}.img"));
        let first = data.split(|&b| b == b'\n').next().unwrap();
        let version = std::str::from_utf8(first)
            .ok()
            .and_then(|l| l.strip_prefix("HEARTH-ROOT "))
            .unwrap_or_else(|| panic!("{root} holds no root filesystem: booted an empty slot"));
        std::fs::write(
            self.path("version"),
            format!("IMAGE_ID=hearth-test\nIMAGE_VERSION={version}\n"),
        )
        .unwrap();
        // The boot slot the firmware read belongs to that root.
        let boot = self.read(&format!("slots/boot-{}.img", &root[5..]));
        assert!(
            boot.starts_with(format!("HEARTH-BOOT {version}\n").as_bytes()),
            "boot-{} does not hold the boot files of {version}",
            &root[5..]
        );
        self.boots += 1;
        std::fs::write(self.path("boot_id"), format!("boot-{}\n", self.boots)).unwrap();
        let _ = std::fs::remove_file(&self.socket);
        let listener = std::os::unix::net::UnixListener::bind(&self.socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let config = AgentConfig {
            sysroot: hearth::disks::Sysroot::default(),
            media_root: self.path("media"),
            allowed_uids: vec![nix::unistd::getuid().as_raw()],
            mount_owner: None,
            update: Some(self.config()),
        };
        let (stop, thread) = spawn_agent(listener, config);
        self.stop = Some(stop);
        self.thread = Some(thread);
    }

    /// The reboot the agent last asked for, carried out: `reboot 0 tryboot` → tryboot.
    fn reboot_as_asked(&mut self) -> bool {
        let log = std::fs::read_to_string(self.path("reboots")).unwrap();
        let last = log.lines().last().expect("the agent was asked to reboot");
        let tryboot = match last {
            "reboot 0 tryboot" => true,
            "reboot" => false,
            other => panic!("unknown reboot record {other}"),
        };
        self.power_on(tryboot);
        tryboot
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn ask(&self, line: Value) -> Value {
        Raw::connect(&self.socket).send(&line, &[])
    }

    fn status(&self) -> Value {
        let s = self.ask(json!({"verb":"boot_status"}));
        assert_eq!(code(&s), "ok", "{s}");
        s["result"].clone()
    }

    /// Everything an update must leave alone when refused: slots, autoboot partition.
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for dir in ["slots", "autoboot"] {
            for e in std::fs::read_dir(self.path(dir)).unwrap() {
                let e = e.unwrap();
                out.push((
                    e.path().display().to_string(),
                    hex::encode(bundle::sha256_of(&std::fs::read(e.path()).unwrap())),
                ));
            }
        }
        out.sort();
        out
    }
}

impl Drop for Pi {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run_hearth(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hearth {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A publisher with a key made by `hearth bundle keygen`.
struct Publisher {
    dir: tempfile::TempDir,
    keyring: PathBuf,
}

impl Publisher {
    fn new() -> Publisher {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        run_hearth(&["bundle", "keygen", "--dir", &d, "--name", "release"]);
        let keyring = dir.path().join("keyring");
        std::fs::create_dir(&keyring).unwrap();
        std::fs::copy(dir.path().join("release.pub"), keyring.join("release.pub")).unwrap();
        Publisher { dir, keyring }
    }

    /// `hearth bundle create` from payload files; the metadata and the plain chunks in
    /// order, as the server sends them after verifying.
    fn bundle(&self, version: &str, payloads: &[(&str, &[u8])]) -> Made {
        let p = self.dir.path();
        let out = p.join(format!("{version}-{}.hbundle", payloads.len()));
        let mut args: Vec<String> = [
            "bundle",
            "create",
            "--board",
            BOARD,
            "--version",
            version,
            "--min-version",
            "1.0.0",
            "--key",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(p.join("release.key").display().to_string());
        args.push("--out".into());
        args.push(out.display().to_string());
        for (slot, data) in payloads {
            let f = p.join(format!("{version}-{slot}.img"));
            std::fs::write(&f, data).unwrap();
            args.push("--payload".into());
            args.push(format!("{slot}={}", f.display()));
        }
        run_hearth(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let verified = run_hearth(&[
            "bundle",
            "verify",
            &out.display().to_string(),
            "--keyring",
            &self.keyring.display().to_string(),
            "--board",
            BOARD,
        ]);
        assert!(verified.starts_with("OK:"), "{verified}");
        let bytes = std::fs::read(&out).unwrap();
        let pre = bundle::parse_preamble(&bytes).unwrap();
        let meta_bytes = bytes[..pre.meta_len() as usize].to_vec();
        let keyring = Keyring::load_dir(&self.keyring).unwrap();
        let meta = bundle::open_meta(&meta_bytes, None, &keyring).unwrap();
        let plain = meta
            .chunks
            .iter()
            .map(|c| {
                let data = payloads[c.payload].1;
                data[c.offset as usize..(c.offset + c.len as u64) as usize].to_vec()
            })
            .collect();
        Made {
            meta: meta_bytes,
            plain,
        }
    }
}

struct Made {
    meta: Vec<u8>,
    plain: Vec<Vec<u8>>,
}

/// One `write_slot` session: reuse what the device has, send the rest, finish.
fn write_slot(pi: &Pi, b: &Made) -> Value {
    let mut s = Raw::connect(&pi.socket);
    let ok = s.send(
        &json!({"verb":"write_slot","meta_len": b.meta.len()}),
        &b.meta,
    );
    assert_eq!(code(&ok), "ok", "{ok}");
    let reused = s.send(&json!({"op":"reuse","done":[]}), &[]);
    assert_eq!(code(&reused), "ok", "{reused}");
    let local: Vec<(u32, u32)> = serde_json::from_value(reused["result"]["local"].clone()).unwrap();
    let local: Vec<usize> = local
        .iter()
        .flat_map(|&(a, b)| a as usize..b as usize)
        .collect();
    for (i, data) in b.plain.iter().enumerate() {
        if local.contains(&i) {
            continue;
        }
        let r = s.send(&json!({"op":"chunk","index":i,"len":data.len()}), data);
        assert_eq!(code(&r), "ok", "chunk {i}: {r}");
    }
    let fin = s.send(&json!({"op":"finish"}), &[]);
    assert_eq!(code(&fin), "ok", "{fin}");
    fin["result"].clone()
}

#[test]
fn pi_update_trial_bless_and_rollbacks_through_the_agent() {
    let publisher = Publisher::new();
    let mut pi = Pi::new(
        &publisher.keyring,
        BOARD,
        &root_of("1.0.0", 1),
        &boot_of("1.0.0", 2),
    );
    let st = pi.status();
    assert_eq!(
        (&st["slot"], &st["version"], &st["on_trial"]),
        (&json!("a"), &json!("1.0.0"), &json!(false)),
        "{st}"
    );

    // Refusals: bundles a Pi cannot take change nothing.
    let (root2, boot2) = (root_of("1.1.0", 3), boot_of("1.1.0", 4));
    let uefi_style = publisher.bundle(
        "1.1.0",
        &[
            ("rootfs", &root2),
            ("kernel", &noise(5, 1000)),
            ("initrd", &noise(6, 1000)),
        ],
    );
    let no_boot = publisher.bundle("1.1.0", &[("rootfs", &root2)]);
    let big_boot = noise(7, BOOT_BYTES as usize + 1);
    let too_big = publisher.bundle("1.1.0", &[("rootfs", &root2), ("boot", &big_boot)]);
    let before = pi.snapshot();
    for (what, b, want) in [
        (
            "kernel and initrd instead of a boot slot",
            &uefi_style,
            "wrong_payloads",
        ),
        ("no boot slot", &no_boot, "wrong_payloads"),
        (
            "a boot image larger than the boot partition",
            &too_big,
            "payload_too_large",
        ),
    ] {
        let r = Raw::connect(&pi.socket).send(
            &json!({"verb":"write_slot","meta_len": b.meta.len()}),
            &b.meta,
        );
        assert_eq!(code(&r), want, "{what}: {r}");
        assert_eq!(pi.snapshot(), before, "{what}: changed the device");
    }
    // On a kernel that cannot pass `tryboot` to the firmware (Debian's), the new slot would
    // never be tried: the install is refused before anything is written, and says why.
    let good = publisher.bundle(
        "1.1.0",
        &[("rootfs", &root2), ("boot", &boot_of("1.1.0", 4))],
    );
    std::fs::write(pi.path("kallsyms"), KALLSYMS_DEBIAN_KERNEL).unwrap();
    let before = pi.snapshot();
    let r = Raw::connect(&pi.socket).send(
        &json!({"verb":"write_slot","meta_len": good.meta.len()}),
        &good.meta,
    );
    assert_eq!(code(&r), "no_trial_boot", "{r}");
    assert!(r.to_string().contains("hearth_tryboot"), "{r}");
    assert_eq!(
        pi.snapshot(),
        before,
        "a refused install changed the device"
    );
    let r = pi.ask(json!({"verb":"set_next_boot","version":"1.1.0"}));
    assert_eq!(code(&r), "no_trial_boot", "{r}");
    // Either hook lets the trial through: the Raspberry Pi kernel's, or Debian's kernel with
    // the image's module loaded.
    for kallsyms in [KALLSYMS_RPI_KERNEL, KALLSYMS_DEBIAN_WITH_MODULE] {
        std::fs::write(pi.path("kallsyms"), kallsyms).unwrap();
        let r = pi.ask(json!({"verb":"set_next_boot","version":"1.1.0"}));
        assert_eq!(code(&r), "not_staged", "{kallsyms}: {r}");
    }
    let r = pi.ask(json!({"verb":"mark_bad"}));
    assert_eq!(code(&r), "not_on_trial", "{r}");
    assert_eq!(pi.snapshot(), before);

    // 1.1.0: written into boot-b and root-b (never the running a), tried once, blessed.
    let good = publisher.bundle("1.1.0", &[("rootfs", &root2), ("boot", &boot2)]);
    let (root_a, boot_a) = (pi.read("slots/root-a.img"), pi.read("slots/boot-a.img"));
    let staged = write_slot(&pi, &good);
    assert_eq!(staged, json!({"slot":"b","version":"1.1.0"}));
    assert!(pi.read("slots/root-b.img").starts_with(&root2));
    assert!(pi.read("slots/boot-b.img").starts_with(&boot2));
    assert_eq!(pi.read("slots/root-a.img"), root_a, "the running root");
    assert_eq!(pi.read("slots/boot-a.img"), boot_a, "the running boot slot");
    // Staged is not armed: the firmware would still boot a, even on tryboot.
    assert_eq!(
        pi.autoboot(),
        Autoboot {
            committed: BOOT_A,
            tryboot: BOOT_B
        }
    );
    let r = pi.ask(json!({"verb":"set_next_boot","version":"1.1.0"}));
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(
        pi.autoboot(),
        Autoboot {
            committed: BOOT_A,
            tryboot: BOOT_B
        }
    );
    let r = pi.ask(json!({"verb":"reboot"}));
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(r["result"]["tryboot"], true, "{r}");
    assert!(
        pi.reboot_as_asked(),
        "the agent asked for the one-shot tryboot"
    );
    let st = pi.status();
    assert_eq!(
        (&st["slot"], &st["version"], &st["on_trial"]),
        (&json!("b"), &json!("1.1.0"), &json!(true)),
        "{st}"
    );
    // Nothing is installed over a running trial.
    let r = Raw::connect(&pi.socket).send(
        &json!({"verb":"write_slot","meta_len": good.meta.len()}),
        &good.meta,
    );
    assert_ne!(code(&r), "ok", "{r}");
    let r = pi.ask(json!({"verb":"mark_good"}));
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(
        pi.autoboot(),
        Autoboot {
            committed: BOOT_B,
            tryboot: BOOT_A
        },
        "blessing commits b by replacing autoboot.txt"
    );
    assert!(!pi.path("autoboot/autoboot.txt.new").exists());
    // A plain reboot (and any later power cut) now boots 1.1.0.
    let r = pi.ask(json!({"verb":"reboot"}));
    assert_eq!(r["result"]["tryboot"], false, "{r}");
    assert!(!pi.reboot_as_asked());
    let st = pi.status();
    assert_eq!(
        (
            &st["slot"],
            &st["version"],
            &st["on_trial"],
            &st["rollback"]
        ),
        (&json!("b"), &json!("1.1.0"), &json!(false), &Value::Null),
        "{st}"
    );

    // 1.2.0 crashes on its trial boot: the power cut (or watchdog) boots the committed b.
    let (root3, boot3) = (root_of("1.2.0", 8), boot_of("1.2.0", 9));
    let crashing = publisher.bundle("1.2.0", &[("rootfs", &root3), ("boot", &boot3)]);
    let (root_b, boot_b) = (pi.read("slots/root-b.img"), pi.read("slots/boot-b.img"));
    assert_eq!(
        write_slot(&pi, &crashing),
        json!({"slot":"a","version":"1.2.0"})
    );
    assert_eq!(pi.read("slots/root-b.img"), root_b, "the running root");
    assert_eq!(pi.read("slots/boot-b.img"), boot_b, "the running boot slot");
    assert_eq!(
        code(&pi.ask(json!({"verb":"set_next_boot","version":"1.2.0"}))),
        "ok"
    );
    assert_eq!(pi.ask(json!({"verb":"reboot"}))["result"]["tryboot"], true);
    assert!(pi.reboot_as_asked());
    let st = pi.status();
    assert_eq!(
        (&st["slot"], &st["on_trial"]),
        (&json!("a"), &json!(true)),
        "{st}"
    );
    pi.power_on(false);
    let st = pi.status();
    assert_eq!(
        (&st["slot"], &st["version"], &st["on_trial"]),
        (&json!("b"), &json!("1.1.0"), &json!(false)),
        "{st}"
    );
    assert_eq!(st["rollback"]["failed_version"], "1.2.0", "{st}");
    assert_eq!(pi.autoboot().committed, BOOT_B);
    let r = pi.ask(json!({"verb":"mark_good"}));
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(pi.status()["rollback"], Value::Null);
    assert_eq!(pi.autoboot().committed, BOOT_B);

    // 1.3.0 comes up but fails its health check: `hearth boot unhealthy` gives up on it
    // (mark_bad) and reboots plainly, which boots the committed b again.
    let (root4, boot4) = (root_of("1.3.0", 10), boot_of("1.3.0", 11));
    let unhealthy = publisher.bundle("1.3.0", &[("rootfs", &root4), ("boot", &boot4)]);
    assert_eq!(
        write_slot(&pi, &unhealthy),
        json!({"slot":"a","version":"1.3.0"})
    );
    assert_eq!(
        code(&pi.ask(json!({"verb":"set_next_boot","version":"1.3.0"}))),
        "ok"
    );
    assert_eq!(pi.ask(json!({"verb":"reboot"}))["result"]["tryboot"], true);
    assert!(pi.reboot_as_asked());
    assert_eq!(pi.status()["version"], "1.3.0");
    let r = pi.ask(json!({"verb":"mark_bad"}));
    assert_eq!(code(&r), "ok", "{r}");
    let r = pi.ask(json!({"verb":"reboot"}));
    assert_eq!(
        r["result"]["tryboot"], false,
        "the way back is a plain reboot: {r}"
    );
    assert!(!pi.reboot_as_asked());
    let st = pi.status();
    assert_eq!(
        (&st["slot"], &st["version"], &st["on_trial"]),
        (&json!("b"), &json!("1.1.0"), &json!(false)),
        "{st}"
    );
    assert_eq!(st["rollback"]["failed_version"], "1.3.0", "{st}");
    assert_eq!(pi.autoboot().committed, BOOT_B);
}

#[test]
fn pi_install_through_the_server_tries_and_commits_the_other_slot() {
    // The server checks the board against its own (this machine's: generic-x86_64), the
    // agent against its configuration; the boot control behind it is the Pi's.
    let publisher = crate::support::Publisher::new("release");
    let mut pi = Pi::new(
        &publisher.keyring_dir,
        "generic-x86_64",
        &root_of("1.0.0", 21),
        &boot_of("1.0.0", 22),
    );
    // The new boot slot keeps most of the old one (firmware, device tree): those chunks
    // come from boot-a, not the network.
    let mut boot_new = boot_of("1.0.0", 22);
    boot_new[..18].copy_from_slice(b"HEARTH-BOOT 1.1.0\n");
    boot_new[150_000..160_000].copy_from_slice(&noise(23, 10_000));
    let root_new = root_of("1.1.0", 24);
    let (bundle, meta) = publisher.bundle(
        "pi110",
        hearth::ota::Version(1, 1, 0),
        &[("rootfs", &root_new), ("boot", &boot_new)],
    );
    let bundle = std::fs::read(bundle).unwrap();
    let channel = serve(channel_files("1.1.0", &bundle), Fault::None);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let start = |pi: &Pi| {
        let (sock, keys) = (pi.socket.clone(), pi.keyring.clone());
        let ch = format!("{}/ch", channel.base);
        TestServer::start_with(&data, move |c| {
            c.agent_socket = Some(sock);
            c.updates.keyring = keys;
            c.updates.channel_url = ch;
            c.updates.check_interval_hours = 0;
        })
    };
    let s = start(&pi);
    let t = claim(&s);
    let v = get(&s.url("/api/v1/updates"), Some(&t)).json();
    assert_eq!(
        (&v["slot"], &v["current_version"], &v["can_install"]),
        (&json!("a"), &json!("1.0.0"), &json!(true)),
        "{v}"
    );
    let v = crate::install_http::post(&s, &t, "/api/v1/updates/check", &json!({})).json();
    assert_eq!(v["available"]["version"], "1.1.0", "{v}");
    let r = crate::install_http::post(&s, &t, "/api/v1/updates/install", &json!({}));
    assert_eq!(r.status, 202, "{}", r.body);
    let v = wait_install(&s, &t);
    assert_eq!(v["install"]["state"], "rebooting", "{v}");
    assert_eq!(v["install"]["chunks_total"], meta.chunks.len() as u64);
    let reused = v["install"]["chunks_reused"].as_u64().unwrap();
    assert!(reused >= 1, "unchanged boot chunks come from boot-a: {v}");
    println!(
        "pi install: {} chunks, {reused} reused from the device",
        v["install"]["chunks_total"]
    );
    assert!(pi.read("slots/root-b.img").starts_with(&root_new));
    assert!(pi.read("slots/boot-b.img").starts_with(&boot_new));
    assert_eq!(
        pi.autoboot(),
        Autoboot {
            committed: BOOT_A,
            tryboot: BOOT_B
        }
    );

    drop(s);
    assert!(
        pi.reboot_as_asked(),
        "the server's reboot is the one-shot tryboot"
    );
    let s = start(&pi);
    let t = login(&s);
    let v = get(&s.url("/api/v1/updates"), Some(&t)).json();
    assert_eq!(
        (&v["slot"], &v["current_version"]),
        (&json!("b"), &json!("1.1.0")),
        "the version comes from the running root: {v}"
    );
    assert_eq!(v["history"][0]["outcome"], "installed", "{v}");
    // hearth-health.service's `hearth boot mark-good`.
    let r = pi.ask(json!({"verb":"mark_good"}));
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(
        pi.autoboot(),
        Autoboot {
            committed: BOOT_B,
            tryboot: BOOT_A
        }
    );
}
