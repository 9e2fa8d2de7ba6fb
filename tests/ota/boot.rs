//! Boot control against fixture ESPs and fixture device trees, with a model of what the
//! firmware does between boots, and a power cut after every filesystem step.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use hearth::agent::boot::{
    BootControl, EntryName, FsOps, RealFs, SORT_KEY, Slot, SystemdBoot, TRIAL_SORT_KEY, TrialSpec,
    Tryboot, sort_key_of,
};
use hearth::ota::Version;

/// Real filesystem operations that start failing after `left` of them, like a power cut.
struct PowerCut {
    left: AtomicUsize,
    used: AtomicUsize,
}

impl PowerCut {
    fn after(n: usize) -> PowerCut {
        PowerCut {
            left: AtomicUsize::new(n),
            used: AtomicUsize::new(0),
        }
    }
    fn step(&self) -> std::io::Result<()> {
        if self.left.load(Ordering::SeqCst) == 0 {
            return Err(std::io::Error::other("power cut"));
        }
        self.left.fetch_sub(1, Ordering::SeqCst);
        self.used.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl FsOps for &'static PowerCut {
    fn write_file(&self, p: &Path, d: &[u8]) -> std::io::Result<()> {
        self.step()?;
        RealFs.write_file(p, d)
    }
    fn sync_file(&self, p: &Path) -> std::io::Result<()> {
        self.step()?;
        RealFs.sync_file(p)
    }
    fn rename(&self, a: &Path, b: &Path) -> std::io::Result<()> {
        self.step()?;
        RealFs.rename(a, b)
    }
    fn remove(&self, p: &Path) -> std::io::Result<()> {
        self.step()?;
        RealFs.remove(p)
    }
    fn sync_dir(&self, p: &Path) -> std::io::Result<()> {
        self.step()?;
        RealFs.sync_dir(p)
    }
}

fn leak(p: PowerCut) -> &'static PowerCut {
    Box::leak(Box::new(p))
}

// --- systemd-boot ----------------------------------------------------------------------

fn entry_files(esp: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(esp.join("loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".conf"))
        .collect();
    v.sort();
    v
}

/// What systemd-boot does at power-on: sort entries (bad ones last, then by sort-key,
/// then newest version first), pick the first, count a try down in its name. Returns
/// LoaderEntrySelected.
fn firmware_boot(esp: &Path) -> String {
    let dir = esp.join("loader/entries");
    let mut entries: Vec<(String, EntryName, String)> = entry_files(esp)
        .into_iter()
        .map(|f| {
            let n = EntryName::parse(&f).unwrap_or_else(|| panic!("unbootable entry name {f}"));
            let text = std::fs::read_to_string(dir.join(&f)).unwrap();
            let key = sort_key_of(&text).map(str::to_owned);
            assert!(
                key.is_some() && text.contains("options root=PARTLABEL=root-"),
                "incomplete entry {f}: {text:?}"
            );
            (f, n, key.unwrap())
        })
        .collect();
    assert!(
        !entries.is_empty(),
        "no boot entry left: the device would not boot"
    );
    entries.sort_by(|a, b| {
        a.1.is_bad()
            .cmp(&b.1.is_bad())
            .then(a.2.cmp(&b.2))
            .then(b.1.version.cmp(&a.1.version))
    });
    let (file, name, _) = entries[0].clone();
    if let Some(left) = name.tries_left.filter(|l| *l > 0) {
        let next = EntryName {
            tries_left: Some(left - 1),
            tries_done: Some(name.tries_done.unwrap_or(0) + 1),
            ..name.clone()
        };
        std::fs::rename(dir.join(&file), dir.join(next.file_name())).unwrap();
    }
    file
}

/// Never `x.conf` next to `x+N.conf`.
fn assert_no_twins(esp: &Path) {
    let ids: Vec<String> = entry_files(esp)
        .iter()
        .filter_map(|f| EntryName::parse(f))
        .map(|e| e.id())
        .collect();
    let mut dedup = ids.clone();
    dedup.dedup();
    assert_eq!(
        ids,
        dedup,
        "two entries for one version: {:?}",
        entry_files(esp)
    );
}

fn esp_with_blessed(version: Version, slot: Slot) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("loader/entries")).unwrap();
    let sb = SystemdBoot::new(dir.path(), None);
    std::fs::write(
        dir.path()
            .join(format!("loader/entries/hearth-{version}.conf")),
        sb.entry_text(version, slot),
    )
    .unwrap();
    dir
}

fn sd(esp: &Path, selected: &str) -> SystemdBoot {
    SystemdBoot::new(esp, Some(selected.to_owned()))
}

const V1: Version = Version(1, 0, 0);
const V2: Version = Version(1, 1, 0);
const V3: Version = Version(1, 2, 0);

#[test]
fn systemd_boot_trial_then_bless() {
    let esp = esp_with_blessed(V1, Slot::A);
    let e = esp.path();
    let sel = firmware_boot(e);
    let s = sd(e, &sel).status().unwrap();
    assert_eq!(
        (s.current, s.on_trial, s.rollback.clone()),
        (Slot::A, false, None)
    );

    sd(e, &sel)
        .set_trial(&TrialSpec {
            slot: Slot::B,
            version: V2,
        })
        .unwrap();
    assert_eq!(entry_files(e), ["hearth-1.0.0.conf", "hearth-1.1.0+3.conf"]);
    let sel = firmware_boot(e);
    let s = sd(e, &sel).status().unwrap();
    assert_eq!(
        (s.current, s.version, s.on_trial),
        (Slot::B, Some(V2), true)
    );
    sd(e, &sel).bless().unwrap();
    assert_eq!(entry_files(e), ["hearth-1.0.0.conf", "hearth-1.1.0.conf"]);
    let sel = firmware_boot(e);
    let s = sd(e, &sel).status().unwrap();
    assert_eq!((s.current, s.on_trial, s.rollback), (Slot::B, false, None));

    // The next update goes to A and first retires the old A entry.
    let err = sd(e, &sel)
        .set_trial(&TrialSpec {
            slot: Slot::B,
            version: V3,
        })
        .unwrap_err();
    assert!(err.to_string().contains("running slot"), "{err}");
    sd(e, &sel)
        .set_trial(&TrialSpec {
            slot: Slot::A,
            version: V3,
        })
        .unwrap();
    assert_eq!(entry_files(e), ["hearth-1.1.0.conf", "hearth-1.2.0+3.conf"]);
}

#[test]
fn systemd_boot_three_failures_fall_back_to_the_old_slot() {
    let esp = esp_with_blessed(V1, Slot::A);
    let e = esp.path();
    let sel = firmware_boot(e);
    sd(e, &sel)
        .set_trial(&TrialSpec {
            slot: Slot::B,
            version: V2,
        })
        .unwrap();
    for _ in 0..3 {
        // The new version boots but never becomes healthy: nobody blesses it.
        let sel = firmware_boot(e);
        assert!(sel.starts_with("hearth-1.1.0+"), "{sel}");
        assert!(sd(e, &sel).status().unwrap().on_trial);
    }
    let sel = firmware_boot(e);
    assert_eq!(sel, "hearth-1.0.0.conf");
    let s = sd(e, &sel).status().unwrap();
    assert_eq!((s.current, s.on_trial), (Slot::A, false));
    let rb = s.rollback.expect("the rollback must be reported");
    assert_eq!((rb.failed_slot, rb.failed_version), (Slot::B, Some(V2)));
    assert!(
        rb.reason
            .contains("did not start successfully after 3 tries"),
        "{}",
        rb.reason
    );
    // Blessing the old slot forgets the failed entry; the next status is clean.
    sd(e, &sel).bless().unwrap();
    assert_eq!(entry_files(e), ["hearth-1.0.0.conf"]);
    assert_eq!(sd(e, &sel).status().unwrap().rollback, None);
}

fn key_of(esp: &Path, file: &str) -> String {
    let text = std::fs::read_to_string(esp.join("loader/entries").join(file)).unwrap();
    sort_key_of(&text).unwrap().to_owned()
}

/// A downgrade the owner allowed: the older version's trial entry sorts first (its trial
/// sort key), boots, and once blessed is the only good entry left, so the device stays on
/// it; the next update is tried as usual.
#[test]
fn systemd_boot_downgrade_is_tried_and_kept_once_blessed() {
    let esp = esp_with_blessed(V2, Slot::B);
    let e = esp.path();
    let sel = firmware_boot(e);
    sd(e, &sel)
        .set_trial(&TrialSpec {
            slot: Slot::A,
            version: V1,
        })
        .unwrap();
    assert_eq!(entry_files(e), ["hearth-1.0.0+3.conf", "hearth-1.1.0.conf"]);
    assert_eq!(key_of(e, "hearth-1.0.0+3.conf"), TRIAL_SORT_KEY);
    let sel = firmware_boot(e);
    assert_eq!(
        sel, "hearth-1.0.0+3.conf",
        "the older trial must boot first"
    );
    let s = sd(e, &sel).status().unwrap();
    assert_eq!(
        (s.current, s.version, s.on_trial, s.rollback),
        (Slot::A, Some(V1), true, None)
    );
    sd(e, &sel).bless().unwrap();
    assert_eq!(entry_files(e), ["hearth-1.0.0.conf"]);
    assert_eq!(key_of(e, "hearth-1.0.0.conf"), SORT_KEY);
    for _ in 0..2 {
        let sel = firmware_boot(e);
        assert_eq!(sel, "hearth-1.0.0.conf");
        let s = sd(e, &sel).status().unwrap();
        assert_eq!((s.current, s.on_trial, s.rollback), (Slot::A, false, None));
        // The health check blesses every boot: nothing changes.
        sd(e, &sel).bless().unwrap();
        assert_eq!(entry_files(e), ["hearth-1.0.0.conf"]);
    }
    // An update after the downgrade is tried first, as always.
    let sel = firmware_boot(e);
    sd(e, &sel)
        .set_trial(&TrialSpec {
            slot: Slot::B,
            version: V3,
        })
        .unwrap();
    assert_eq!(firmware_boot(e), "hearth-1.2.0+3.conf");
}

/// A downgrade that never becomes healthy: three tries, then the newer version it came
/// from boots again and the failed downgrade is reported as a rollback.
#[test]
fn systemd_boot_failed_downgrade_returns_to_the_newer_version() {
    let esp = esp_with_blessed(V2, Slot::B);
    let e = esp.path();
    let sel = firmware_boot(e);
    sd(e, &sel)
        .set_trial(&TrialSpec {
            slot: Slot::A,
            version: V1,
        })
        .unwrap();
    for _ in 0..3 {
        let sel = firmware_boot(e);
        assert!(sel.starts_with("hearth-1.0.0+"), "{sel}");
    }
    let sel = firmware_boot(e);
    assert_eq!(sel, "hearth-1.1.0.conf");
    let s = sd(e, &sel).status().unwrap();
    assert_eq!(
        (s.current, s.version, s.on_trial),
        (Slot::B, Some(V2), false)
    );
    let rb = s.rollback.expect("the failed downgrade must be reported");
    assert_eq!((rb.failed_slot, rb.failed_version), (Slot::A, Some(V1)));
    sd(e, &sel).bless().unwrap();
    assert_eq!(entry_files(e), ["hearth-1.1.0.conf"]);
    assert_eq!(sd(e, &sel).status().unwrap().rollback, None);
}

#[test]
fn systemd_boot_unknown_selected_entry_is_an_error() {
    let esp = esp_with_blessed(V1, Slot::A);
    let e = esp.path();
    assert!(
        SystemdBoot::new(e, None)
            .status()
            .unwrap_err()
            .to_string()
            .contains("LoaderEntrySelected")
    );
    assert!(
        sd(e, "debian-6.1.conf")
            .status()
            .unwrap_err()
            .to_string()
            .contains("not a hearth entry")
    );
}

/// Runs `action` with a power cut after each possible step and checks the ESP still boots
/// a complete entry with no twins, and that running the action again afterwards succeeds.
fn cut_everywhere(
    prepare: impl Fn() -> (tempfile::TempDir, String),
    action: impl Fn(&SystemdBoot),
    allowed: &[&str],
) {
    let mut k = 0;
    loop {
        let (esp, sel) = prepare();
        let e = esp.path();
        let cut = leak(PowerCut::after(k));
        let mut sb = sd(e, &sel);
        sb.ops = Box::new(cut);
        let before = entry_files(e);
        action(&sb);
        let finished = cut.left.load(Ordering::SeqCst) > 0;
        assert_no_twins(e);
        let booted = firmware_boot(e);
        assert!(
            allowed.iter().any(|a| booted.starts_with(a)),
            "cut after step {k}: booted {booted}; entries before {before:?}"
        );
        // Retrying after the power returns reaches the goal.
        let again = firmware_boot_state_only(e, &sel);
        action(&again);
        assert_no_twins(e);
        if finished {
            println!("power cut tested after each of {k} steps");
            return;
        }
        k += 1;
        assert!(k < 50, "too many steps");
    }
}

/// A SystemdBoot on real files (after the power is back).
fn firmware_boot_state_only(e: &Path, sel: &str) -> SystemdBoot {
    sd(e, sel)
}

#[test]
fn systemd_boot_power_cut_at_every_step_of_an_entry_write() {
    // Running 1.1.0 on B (blessed); 1.0.0 on A is retired; a leftover failed 1.2.0 try exists.
    let prepare = || {
        let esp = esp_with_blessed(V1, Slot::A);
        let e = esp.path();
        std::fs::write(
            e.join("loader/entries/hearth-1.1.0.conf"),
            sd(e, "x").entry_text(V2, Slot::B),
        )
        .unwrap();
        std::fs::write(
            e.join("loader/entries/hearth-1.2.0+0-3.conf"),
            sd(e, "x").entry_text(V3, Slot::A),
        )
        .unwrap();
        (esp, "hearth-1.1.0.conf".to_owned())
    };
    cut_everywhere(
        prepare,
        |sb| {
            let _ = sb.set_trial(&TrialSpec {
                slot: Slot::A,
                version: V3,
            });
        },
        &["hearth-1.1.0.conf", "hearth-1.2.0+3.conf"],
    );
}

#[test]
fn systemd_boot_power_cut_at_every_step_of_a_bless() {
    let prepare = || {
        let esp = esp_with_blessed(V1, Slot::A);
        let e = esp.path();
        std::fs::write(
            e.join("loader/entries/hearth-1.1.0+2-1.conf"),
            sd(e, "x").entry_text(V2, Slot::B),
        )
        .unwrap();
        (esp, "hearth-1.1.0+2-1.conf".to_owned())
    };
    // Either the rename happened (blessed) or the trial continues with its tries.
    cut_everywhere(
        prepare,
        |sb| {
            let _ = sb.bless();
        },
        &["hearth-1.1.0.conf", "hearth-1.1.0+2-1.conf"],
    );
}

#[test]
fn systemd_boot_power_cut_at_every_step_of_a_downgrade_bless() {
    // Running the older 1.0.0 on A on trial (its second try); 1.1.0 on B is blessed.
    let prepare = || {
        let esp = esp_with_blessed(V2, Slot::B);
        let e = esp.path();
        std::fs::write(
            e.join("loader/entries/hearth-1.0.0+2-1.conf"),
            hearth::agent::boot::with_sort_key(&sd(e, "x").entry_text(V1, Slot::A), TRIAL_SORT_KEY),
        )
        .unwrap();
        (esp, "hearth-1.0.0+2-1.conf".to_owned())
    };
    // Whatever the cut, the device boots 1.0.0 (blessed or still on trial), never the
    // newer version the owner chose to leave.
    cut_everywhere(
        prepare,
        |sb| {
            let _ = sb.bless();
        },
        &["hearth-1.0.0.conf", "hearth-1.0.0+2-1.conf"],
    );
}

// --- Raspberry Pi tryboot -----------------------------------------------------------------

struct Pi {
    boot: tempfile::TempDir,
    dt: tempfile::TempDir,
    boot_no: u32,
}

impl Pi {
    fn new() -> Pi {
        let boot = tempfile::tempdir().unwrap();
        std::fs::write(
            boot.path().join("autoboot.txt"),
            "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n",
        )
        .unwrap();
        Pi {
            boot,
            dt: tempfile::tempdir().unwrap(),
            boot_no: 0,
        }
    }

    /// What the firmware does: a tryboot reboot uses [tryboot] once, any other boot [all].
    fn power_on(&mut self, tryboot: bool) {
        let text = std::fs::read_to_string(self.boot.path().join("autoboot.txt")).unwrap();
        let ab =
            hearth::agent::boot::Autoboot::parse(&text).expect("autoboot.txt must always parse");
        let part = if tryboot { ab.tryboot } else { ab.committed };
        std::fs::write(
            self.dt.path().join("tryboot"),
            (tryboot as u32).to_be_bytes(),
        )
        .unwrap();
        std::fs::write(self.dt.path().join("partition"), part.to_be_bytes()).unwrap();
        self.boot_no += 1;
    }

    fn control(&self) -> Tryboot {
        Tryboot::new(
            self.boot.path(),
            self.dt.path(),
            [2, 3],
            &format!("boot-{}", self.boot_no),
        )
    }
}

#[test]
fn tryboot_trial_then_commit() {
    let mut pi = Pi::new();
    pi.power_on(false);
    let s = pi.control().status().unwrap();
    assert_eq!((s.current, s.on_trial, s.rollback), (Slot::A, false, None));
    pi.control()
        .set_trial(&TrialSpec {
            slot: Slot::B,
            version: V2,
        })
        .unwrap();
    // Not rebooted yet: no rollback is claimed.
    assert_eq!(pi.control().status().unwrap().rollback, None);
    pi.power_on(true);
    let s = pi.control().status().unwrap();
    assert_eq!((s.current, s.on_trial), (Slot::B, true));
    pi.control().bless().unwrap();
    assert!(!pi.boot.path().join("autoboot.txt.new").exists());
    pi.power_on(false);
    let s = pi.control().status().unwrap();
    assert_eq!((s.current, s.on_trial, s.rollback), (Slot::B, false, None));
}

#[test]
fn tryboot_failed_trial_returns_to_the_old_slot_and_says_so() {
    let mut pi = Pi::new();
    pi.power_on(false);
    pi.control()
        .set_trial(&TrialSpec {
            slot: Slot::B,
            version: V2,
        })
        .unwrap();
    pi.power_on(true);
    assert!(pi.control().status().unwrap().on_trial);
    // It crashes before the health check; the one-shot tryboot is spent.
    pi.power_on(false);
    let s = pi.control().status().unwrap();
    assert_eq!((s.current, s.on_trial), (Slot::A, false));
    let rb = s.rollback.expect("rollback must be reported");
    assert_eq!((rb.failed_slot, rb.failed_version), (Slot::B, Some(V2)));
    pi.control().bless().unwrap();
    assert_eq!(pi.control().status().unwrap().rollback, None);
    let err = pi
        .control()
        .set_trial(&TrialSpec {
            slot: Slot::A,
            version: V3,
        })
        .unwrap_err();
    assert!(err.to_string().contains("running slot"), "{err}");
}

#[test]
fn tryboot_power_cut_at_every_step_keeps_a_good_committed_slot() {
    for phase in ["set_trial", "bless"] {
        let mut k = 0;
        loop {
            let mut pi = Pi::new();
            pi.power_on(false);
            if phase == "bless" {
                pi.control()
                    .set_trial(&TrialSpec {
                        slot: Slot::B,
                        version: V2,
                    })
                    .unwrap();
                pi.power_on(true);
            }
            let cut = leak(PowerCut::after(k));
            let mut c = pi.control();
            c.ops = Box::new(cut);
            let r = if phase == "set_trial" {
                c.set_trial(&TrialSpec {
                    slot: Slot::B,
                    version: V2,
                })
            } else {
                c.bless()
            };
            let finished = r.is_ok();
            // A normal power-on always works and lands on a slot that was good.
            pi.power_on(false);
            let s = pi.control().status().unwrap();
            match phase {
                "set_trial" => assert_eq!(s.current, Slot::A, "{phase} cut after {k}"),
                _ => assert!(!s.on_trial, "{phase} cut after {k}"),
            }
            if finished {
                println!("{phase}: power cut tested after each of {k} steps");
                break;
            }
            k += 1;
            assert!(k < 50);
        }
    }
}
