//! A fixture device for the update verbs: a real agent on a real unix socket, whose slots
//! are files (`root-a.img`, `root-b.img`) and whose ESP is a folder, with systemd-boot's
//! report of the booted entry fixed by the test (the test plays the firmware).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use hearth::agent::update::{BootSetup, LoaderEntry, RebootAction, SlotDevices, UpdateConfig};
use hearth::agent::{Agent, AgentConfig};
use serde_json::Value;

pub const SLOT_BYTES: u64 = 2 << 20;

pub struct Device {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub keyring: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Device {
    /// A device running `version` from slot a, its entry blessed; the slots hold `root_a`
    /// and zeros.
    pub fn new(keyring: &Path, version: &str, root_a: &[u8], kernel: &[u8]) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("slots")).unwrap();
        let mut a = root_a.to_vec();
        a.resize(SLOT_BYTES as usize, 0);
        std::fs::write(d.join("slots/root-a.img"), a).unwrap();
        std::fs::write(d.join("slots/root-b.img"), vec![0u8; SLOT_BYTES as usize]).unwrap();
        std::fs::create_dir_all(d.join("esp/loader/entries")).unwrap();
        std::fs::create_dir_all(d.join(format!("esp/hearth/{version}"))).unwrap();
        std::fs::write(d.join(format!("esp/hearth/{version}/vmlinuz")), kernel).unwrap();
        std::fs::write(
            d.join(format!("esp/hearth/{version}/initrd.img")),
            b"old initrd",
        )
        .unwrap();
        std::fs::write(
            d.join(format!("esp/loader/entries/hearth-{version}.conf")),
            format!(
                "title Hearth {version}\nsort-key hearth\nversion {version}\nlinux /hearth/{version}/vmlinuz\ninitrd /hearth/{version}/initrd.img\noptions root=PARTLABEL=root-a rootfstype=erofs ro console=ttyS0 quiet\n"
            ),
        )
        .unwrap();
        std::fs::write(d.join("boot_id"), "boot-1\n").unwrap();
        let keys = d.join("keys");
        std::fs::create_dir(&keys).unwrap();
        for e in std::fs::read_dir(keyring).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), keys.join(e.file_name())).unwrap();
        }
        let mut dev = Device {
            socket: d.join("agent.sock"),
            keyring: keys,
            dir,
            stop: None,
            thread: None,
        };
        dev.boot(&format!("hearth-{version}.conf"), None);
        dev
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self, entry: &str) -> UpdateConfig {
        let d = self.dir.path();
        UpdateConfig {
            board: "generic-x86_64".into(),
            keyring_dir: self.keyring.clone(),
            boot: BootSetup::SystemdBoot {
                esp: d.join("esp"),
                loader_entry: LoaderEntry::Fixed(entry.to_owned()),
            },
            slots: SlotDevices::TestFiles {
                dir: d.join("slots"),
            },
            state_dir: d.join("run"),
            boot_id_path: d.join("boot_id"),
            reboot: RebootAction::TestRecord(d.join("reboots")),
        }
    }

    /// (Re)starts the agent as if the firmware had booted `entry`; `uids` defaults to
    /// this process's.
    pub fn boot(&mut self, entry: &str, uids: Option<Vec<u32>>) {
        self.halt();
        let n = std::fs::read_to_string(self.path("boot_id")).unwrap_or_default();
        std::fs::write(self.path("boot_id"), format!("{}x", n.trim())).unwrap();
        let _ = std::fs::remove_file(&self.socket);
        let listener = std::os::unix::net::UnixListener::bind(&self.socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let config = AgentConfig {
            sysroot: hearth::disks::Sysroot::default(),
            media_root: self.path("media"),
            allowed_uids: uids.unwrap_or_else(|| vec![nix::unistd::getuid().as_raw()]),
            mount_owner: None,
            update: Some(self.config(entry)),
        };
        let (stop, thread) = spawn_agent(listener, config);
        self.stop = Some(stop);
        self.thread = Some(thread);
    }

    pub fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("esp/loader/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap()
    }

    pub fn reboots(&self) -> usize {
        std::fs::read_to_string(self.path("reboots"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Plays systemd-boot: the counted entry of `version` is renamed as the firmware
    /// does before booting it (`+3` → `+2-1`), and the agent restarts on that entry.
    pub fn boot_trial(&mut self, version: &str) {
        let from = format!("hearth-{version}+3.conf");
        let to = format!("hearth-{version}+2-1.conf");
        std::fs::rename(
            self.path(&format!("esp/loader/entries/{from}")),
            self.path(&format!("esp/loader/entries/{to}")),
        )
        .unwrap();
        self.boot(&to, None);
    }

    /// Plays systemd-boot after every try of the trial failed: the entry is at `+0-3`
    /// and the old entry boots.
    pub fn fall_back(&mut self, version: &str, old: &str) {
        for e in self.entries() {
            if e.starts_with(&format!("hearth-{version}+")) {
                std::fs::rename(
                    self.path(&format!("esp/loader/entries/{e}")),
                    self.path(&format!("esp/loader/entries/hearth-{version}+0-3.conf")),
                )
                .unwrap();
            }
        }
        self.boot(&format!("hearth-{old}.conf"), None);
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Runs a real agent with `config` on `listener` in a thread of its own, until the sender
/// is used or dropped.
pub fn spawn_agent(
    listener: std::os::unix::net::UnixListener,
    config: AgentConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::UnixListener::from_std(listener).unwrap();
            Agent::new(config)
                .run(l, async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    (stop, thread)
}

/// One raw exchange with the agent: a request line (plus raw bytes), one answer line.
pub struct Raw {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Raw {
    pub fn connect(socket: &Path) -> Raw {
        let w = UnixStream::connect(socket).unwrap();
        w.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        Raw {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }

    pub fn send(&mut self, line: &Value, raw: &[u8]) -> Value {
        let mut b = serde_json::to_vec(line).unwrap();
        b.push(b'\n');
        // The agent may refuse and hang up before reading every byte (a refused peer is
        // answered before it sends anything): the answer is what counts.
        let _ = self.w.write_all(&b);
        let _ = self.w.write_all(raw);
        self.answer()
    }

    pub fn answer(&mut self) -> Value {
        let mut s = String::new();
        self.r.read_line(&mut s).unwrap();
        serde_json::from_str(&s).unwrap_or(Value::Null)
    }
}

pub fn code(v: &Value) -> String {
    if v["ok"] == true {
        "ok".into()
    } else {
        v["error"]["code"].as_str().unwrap_or("?").to_owned()
    }
}
