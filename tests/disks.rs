//! Real filesystems on real loop devices (root only; the `disks` tier runs these in CI):
//! discovered, mounted through the agent into a temp media folder, read, ejected, detached,
//! re-attached and re-mounted at the same place by the server. And the Raspberry Pi update
//! path on loop devices standing in for the partitions.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth::agent::{Agent, AgentConfig, Client, ClientError};
use hearth::disks::Sysroot;
use serde_json::json;

fn need_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("HEARTH_REQUIRE_ROOT_TESTS").is_none(),
        "{test} needs root, and HEARTH_REQUIRE_ROOT_TESTS is set"
    );
    // Written to the real stderr, not the test harness's captured output, so it shows.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root (run tests/disks/run as root, as CI does)"
    );
    false
}

/// A loop device; dropping it unmounts whatever is still mounted from it and detaches it,
/// even when the test failed half-way.
struct Loop {
    dev: String,
}

impl Loop {
    fn attach(img: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(img)
            .output()
            .expect("losetup missing");
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            dev: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        }
    }

    fn mount_points(&self) -> Vec<PathBuf> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        hearth::disks::discover::parse_mountinfo(&info)
            .into_iter()
            .filter(|m| m.source == self.dev)
            .map(|m| m.mount_point)
            .collect()
    }

    fn detach(mut self) {
        self.cleanup();
        self.dev.clear();
    }

    fn cleanup(&mut self) {
        if self.dev.is_empty() {
            return;
        }
        for mp in self.mount_points() {
            let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn unique_uuid(n: u8) -> String {
    format!(
        "{:08x}-4e41-4b2d-8000-{:010x}{n:02x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            & 0xff_ffff_ffff
    )
}

/// An ext4 image with a few media files in it.
fn ext4_image(dir: &Path, label: &str, uuid: &str) -> PathBuf {
    let src = dir.join(format!("src-{label}"));
    std::fs::create_dir_all(src.join("Show")).unwrap();
    std::fs::write(src.join("Movie (2020).mkv"), b"not really a film").unwrap();
    std::fs::write(src.join("Show/S01E01.mkv"), b"episode").unwrap();
    let img = dir.join(format!("{label}.img"));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-U", uuid, "-d"])
        .arg(&src)
        .arg(&img)
        .output()
        .expect("mkfs.ext4 missing; run scripts/install-deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

fn start_agent(socket: &Path, media: &Path) -> tokio::task::JoinHandle<()> {
    let agent = Agent::new(AgentConfig {
        sysroot: Sysroot::default(),
        media_root: media.to_owned(),
        allowed_uids: vec![0],
        mount_owner: None,
        update: None,
    });
    let l = hearth::agent::server::listener(socket, None).unwrap();
    let l = tokio::net::UnixListener::from_std(l).unwrap();
    tokio::spawn(agent.run(l, std::future::pending()))
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                if e.file_name() != "lost+found" {
                    stack.push(p);
                }
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_devices_mount_read_and_eject_through_the_agent() {
    if !need_root("loop_devices_mount_read_and_eject_through_the_agent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let uuid = unique_uuid(1);
    let img = ext4_image(dir.path(), "My Films", &uuid);
    let lo = Loop::attach(&img);
    let socket = dir.path().join("agent.sock");
    let task = start_agent(&socket, &media);
    let client = Client::new(&socket);

    // Discovered with its label and UUID, not mounted.
    let list = client.list_disks().await.unwrap();
    let (disk, vol) = hearth::disks::find_uuid(&list.disks, &uuid).expect("loop disk not found");
    assert_eq!(format!("/dev/{}", disk.name), lo.dev);
    assert_eq!(vol.label.as_deref(), Some("My Films"));
    assert_eq!(vol.fs_type, Some(hearth::disks::FsType::Ext4));
    assert!(vol.mount_points.is_empty());
    assert!(!disk.usb);

    // Read-write mount at media/My_Films with the safe options.
    let m = client.mount(&uuid, false, None).await.unwrap();
    assert_eq!(m.mount_point, media.join("My_Films"));
    assert!(!m.already_mounted);
    assert_eq!(
        files_under(&m.mount_point),
        ["Movie (2020).mkv", "Show/S01E01.mkv"]
    );
    std::fs::write(m.mount_point.join("written.txt"), b"rw works").unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(m.mount_point.to_str().unwrap()))
        .unwrap();
    for opt in ["nosuid", "nodev", "noexec"] {
        assert!(line.contains(opt), "{opt} missing: {line}");
    }
    // Asking again changes nothing.
    let again = client.mount(&uuid, true, None).await.unwrap();
    assert!(again.already_mounted);
    assert_eq!(again.mount_point, m.mount_point);
    let list = client.list_disks().await.unwrap();
    let (_, vol) = hearth::disks::find_uuid(&list.disks, &uuid).unwrap();
    assert_eq!(vol.mount_points, std::slice::from_ref(&m.mount_point));
    assert!(vol.free_bytes.unwrap() > 0 && vol.total_bytes.unwrap() > vol.free_bytes.unwrap());

    // Unmount, then a read-only mount refuses writes.
    let u = client.unmount(&uuid).await.unwrap();
    assert_eq!(u.unmounted, std::slice::from_ref(&m.mount_point));
    assert!(
        !m.mount_point.exists(),
        "the mount point directory stays behind"
    );
    let m = client.mount(&uuid, true, None).await.unwrap();
    assert!(m.mount_point.join("written.txt").exists());
    let err = std::fs::write(m.mount_point.join("nope.txt"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS));

    // Busy: a file open on the disk makes eject refuse, and nothing changes.
    let held = std::fs::File::open(m.mount_point.join("Movie (2020).mkv")).unwrap();
    let err = client.eject(&uuid).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused { code, .. } if code == "busy"),
        "{err}"
    );
    assert_eq!(lo.mount_points(), std::slice::from_ref(&m.mount_point));
    drop(held);

    // Eject: unmounted and flushed; a loop device is not USB, so it stays attached.
    let e = client.eject(&uuid).await.unwrap();
    assert_eq!(e.unmounted, std::slice::from_ref(&m.mount_point));
    assert!(!e.powered_off);
    assert!(lo.mount_points().is_empty());
    assert!(std::fs::read_dir(&media).unwrap().next().is_none());

    // A FAT stick: mounted if this kernel has the driver, else a clear refusal.
    let fat = dir.path().join("fat.img");
    std::fs::File::create(&fat)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    assert!(
        Command::new("mkfs.vfat")
            .args(["-n", "CAMERA", "-i", &format!("{:08x}", std::process::id())])
            .arg(&fat)
            .output()
            .expect("mkfs.vfat missing; run scripts/install-deps")
            .status
            .success()
    );
    let fat_lo = Loop::attach(&fat);
    let list = client.list_disks().await.unwrap();
    let fat_uuid = list
        .disks
        .iter()
        .find(|d| format!("/dev/{}", d.name) == fat_lo.dev)
        .and_then(|d| d.volumes[0].uuid.clone())
        .expect("FAT loop not discovered");
    match client.mount(&fat_uuid, true, None).await {
        Ok(m) => {
            println!("vfat: this kernel mounts it");
            assert_eq!(m.mount_point, media.join("CAMERA"));
            assert_eq!(fat_lo.mount_points(), std::slice::from_ref(&m.mount_point));
            client.eject(&fat_uuid).await.unwrap();
        }
        Err(ClientError::Refused { code, message }) => {
            println!("vfat: this kernel has no driver: {message}");
            assert_eq!(code, "kernel_unsupported");
            assert!(message.contains("cannot mount vfat"), "{message}");
        }
        Err(e) => panic!("{e}"),
    }
    assert!(fat_lo.mount_points().is_empty());
    assert!(std::fs::read_dir(&media).unwrap().next().is_none());
    fat_lo.detach();
    lo.detach();
    task.abort();
}

/// Btrfs and XFS (the other Linux filesystems this kernel has): found with their labels,
/// mounted read-write through the agent with the safe options, written, read, ejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn btrfs_and_xfs_mount_through_the_agent() {
    if !need_root("btrfs_and_xfs_mount_through_the_agent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let socket = dir.path().join("agent.sock");
    let task = start_agent(&socket, &media);
    let client = Client::new(&socket);
    // mkfs.xfs wants at least 300 MiB; the images are sparse.
    for (n, fs, size, label_flag, uuid_flag) in [
        (3u8, "btrfs", 128u64 << 20, "-L", "-U"),
        (4u8, "xfs", 320u64 << 20, "-L", "-m"),
    ] {
        let uuid = unique_uuid(n);
        let label = format!("Disk{n}");
        let img = dir.path().join(format!("{fs}.img"));
        std::fs::File::create(&img).unwrap().set_len(size).unwrap();
        let uuid_arg = if fs == "xfs" {
            format!("uuid={uuid}")
        } else {
            uuid.clone()
        };
        let out = Command::new(format!("mkfs.{fs}"))
            .args(["-q", "-f", label_flag, &label, uuid_flag, &uuid_arg])
            .arg(&img)
            .output()
            .unwrap_or_else(|e| panic!("mkfs.{fs}: {e}; run scripts/install-deps"));
        assert!(
            out.status.success(),
            "mkfs.{fs}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lo = Loop::attach(&img);
        let list = client.list_disks().await.unwrap();
        let (_, vol) = hearth::disks::find_uuid(&list.disks, &uuid)
            .unwrap_or_else(|| panic!("{fs} loop disk not found"));
        assert_eq!(vol.label.as_deref(), Some(label.as_str()), "{fs}");
        assert_eq!(
            vol.fs_type.as_ref().map(|t| t.to_string()).as_deref(),
            Some(fs)
        );
        let m = client.mount(&uuid, false, None).await.unwrap();
        assert_eq!(m.mount_point, media.join(&label), "{fs}");
        std::fs::write(m.mount_point.join("Film (2020).mkv"), b"bytes").unwrap();
        assert_eq!(files_under(&m.mount_point), ["Film (2020).mkv"], "{fs}");
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.contains(m.mount_point.to_str().unwrap()))
            .unwrap();
        for opt in ["nosuid", "nodev", "noexec"] {
            assert!(line.contains(opt), "{fs}: {opt} missing: {line}");
        }
        let e = client.eject(&uuid).await.unwrap();
        assert_eq!(e.unmounted, std::slice::from_ref(&m.mount_point), "{fs}");
        assert!(lo.mount_points().is_empty(), "{fs}");
        lo.detach();
    }
    assert!(std::fs::read_dir(&media).unwrap().next().is_none());
    task.abort();
}

/// The whole path through HTTP: the owner mounts a disk, ejects it, it is pulled and put
/// back, and the server re-mounts it at the same place by itself.
#[test]
fn server_remounts_a_known_disk_at_the_same_place() {
    if !need_root("server_remounts_a_known_disk_at_the_same_place") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let uuid = unique_uuid(2);
    let img = ext4_image(dir.path(), "Films", &uuid);
    let mut lo = Some(Loop::attach(&img));
    let socket = dir.path().join("agent.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent_task = {
        let _g = rt.enter();
        start_agent(&socket, &media)
    };

    let data = dir.path().join("data");
    let s = common::TestServer::start_with(&data, |c| c.agent_socket = Some(socket.clone()));
    let code = hearth::identity::setup_code::read(&s.data)
        .unwrap()
        .unwrap();
    let r = common::send(
        "POST",
        &s.url("/api/v1/setup/claim"),
        None,
        &json!({"setup_code": code, "server_name": "Den",
                "owner": {"username": "anna", "password": "correct horse battery"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let volume = |token: &str| -> Option<serde_json::Value> {
        let r = common::get(&s.url("/api/v1/disks"), Some(token));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["agent"], true, "{v}");
        v["disks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["volumes"].as_array().unwrap().clone())
            .find(|v| v["uuid"] == uuid.as_str())
    };
    let wait_for = |what: &str, cond: &dyn Fn(Option<serde_json::Value>) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(volume(&token)) {
            assert!(Instant::now() < deadline, "gave up waiting: {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    let v = volume(&token).expect("disk not listed");
    assert_eq!(v["label"], "Films");
    assert_eq!(v["mount_points"], json!([]));

    let url = s.url(&format!("/api/v1/disks/{uuid}/mount"));
    let r = common::send("POST", &url, Some(&token), &json!({"read_only": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mp = media.join("Films");
    assert_eq!(r.json()["mount_point"], mp.to_str().unwrap());
    assert!(mp.join("Movie (2020).mkv").exists());
    let r = common::send(
        "POST",
        &s.url("/api/v1/disks/no-such-uuid/mount"),
        Some(&token),
        &json!({"read_only": true}),
    );
    assert_eq!(r.status, 404, "{}", r.body);

    // A library on the disk: scanned (the two files are not real video: scan errors).
    let r = common::send(
        "POST",
        &s.url("/api/v1/libraries"),
        Some(&token),
        &json!({"name": "Films", "kind": "movies", "folders": [mp.to_str().unwrap()]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let lib_id = r.json()["id"].as_u64().unwrap();
    let library = |token: &str| -> serde_json::Value {
        let r = common::get(&s.url("/api/v1/libraries"), Some(token));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == lib_id)
            .cloned()
            .expect("library listed")
    };
    let wait_library = |what: &str, cond: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = library(&token);
            if cond(&l) {
                return l;
            }
            assert!(Instant::now() < deadline, "gave up waiting: {what}: {l}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let l = wait_library("the first scan", &|l| l["scan"]["running"] == false);
    assert_eq!(l["online"], true, "{l}");
    assert_eq!(l["scan"]["files_seen"], 2, "{l}");
    assert_eq!(l["scan"]["errors"], 2, "{l}");
    assert_eq!(l["offline_folders"], json!([]), "{l}");

    let r = common::send(
        "POST",
        &s.url(&format!("/api/v1/disks/{uuid}/eject")),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["unmounted"], json!([mp.to_str().unwrap()]));
    assert!(!mp.exists());
    // Ejected: the library is offline and keeps what it knew.
    let l = library(&token);
    assert_eq!(l["online"], false, "{l}");
    assert_eq!(l["offline_folders"], json!([mp.to_str().unwrap()]), "{l}");
    let errors = common::get(
        &s.url(&format!("/api/v1/libraries/{lib_id}/scan")),
        Some(&token),
    );
    assert_eq!(
        errors.json()["errors"].as_array().unwrap().len(),
        2,
        "{}",
        errors.body
    );

    // Pulled…
    lo.take().unwrap().detach();
    // …and while it was away, a real film was put on it elsewhere.
    let clip = common::test_media().join("Shows/Evening News/Evening News 2024-03-01.mkv");
    let plain = dir.path().join("clip.mkv");
    std::fs::copy(&clip, &plain).unwrap();
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg(format!("write {} Added.2021.mkv", plain.display()))
        .arg(&img)
        .output()
        .expect("debugfs (e2fsprogs) missing; run scripts/install-deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the pulled disk to disappear", &|v| v.is_none());
    let r = common::get(&s.url("/api/v1/disks"), Some(&token)).json();
    let known = r["known"].as_array().unwrap();
    assert_eq!(known.len(), 1, "{r}");
    assert_eq!(known[0]["uuid"], uuid.as_str());
    assert_eq!(known[0]["online"], false, "a pulled disk is offline");
    assert_eq!(known[0]["mount_point"], mp.to_str().unwrap());
    // …and plugged back in: the server mounts it again where it was, read-only as before.
    let lo2 = Loop::attach(&img);
    wait_for("the known disk to be re-mounted", &|v| {
        v.is_some_and(|v| v["mount_points"] == json!([mp.to_str().unwrap()]))
    });
    assert!(mp.join("Show/S01E01.mkv").exists());
    assert_eq!(lo2.mount_points(), std::slice::from_ref(&mp));
    assert!(
        std::fs::write(mp.join("x"), b"x").is_err(),
        "read-only was not kept"
    );
    let r = common::get(&s.url("/api/v1/disks"), Some(&token)).json();
    assert_eq!(r["known"][0]["online"], true, "{r}");
    // The library is back online by itself and was rescanned: the film added elsewhere is
    // an item now, the two bad files are still scan errors.
    let l = wait_library("the library back and rescanned", &|l| {
        l["online"] == true && l["items"] == 1 && l["scan"]["running"] == false
    });
    assert_eq!(l["scan"]["files_seen"], 3, "{l}");
    assert_eq!(l["scan"]["files_expected"], 2, "{l}");
    assert_eq!(l["scan"]["new"], 1, "{l}");
    // The owner's mount and eject are in the audit log, with the disk's UUID.
    let audit = common::get(&s.url("/api/v1/audit"), Some(&token)).json();
    for event in ["disk_mounted", "disk_ejected"] {
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == event && e["detail"].as_str().unwrap().contains(&uuid)),
            "{event} missing: {audit}"
        );
    }

    drop(s);
    drop(lo2);
    agent_task.abort();
}

/// One request line (plus raw bytes) to the agent, one answer line back.
fn agent_line(
    r: &mut std::io::BufReader<std::os::unix::net::UnixStream>,
    line: &serde_json::Value,
    raw: &[u8],
) -> serde_json::Value {
    use std::io::BufRead;
    let mut w = r.get_ref().try_clone().unwrap();
    let mut b = serde_json::to_vec(line).unwrap();
    b.push(b'\n');
    let _ = w.write_all(&b);
    let _ = w.write_all(raw);
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
}

fn agent_conn(socket: &Path) -> std::io::BufReader<std::os::unix::net::UnixStream> {
    let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::io::BufReader::new(s)
}

/// Unmounts a mount point when dropped (the test may fail half-way).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The Raspberry Pi layout on real block devices (loop): the agent finds the tryboot
/// partitions through a device folder and sysfs, mounts the autoboot FAT itself, refuses a
/// mounted target partition, writes root-b and boot-b (never the running a), and commits
/// by replacing autoboot.txt on the real FAT.
#[test]
fn pi_tryboot_on_real_partitions() {
    use hearth::agent::update::{BootSetup, RebootAction, SlotDevices, UpdateConfig};
    if !need_root("pi_tryboot_on_real_partitions") {
        return;
    }
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let d = dir.path();
    // One loop device per partition (partition tables on loop devices need a kernel with
    // partition scanning, which CI machines may lack), a device folder of our own with
    // their block nodes and by-partlabel links, and a sysfs folder that puts them on one
    // disk as partitions 1-5, as the kernel would.
    let dev_root = d.join("dev");
    let sys_block = d.join("sys/class/block");
    std::fs::create_dir_all(dev_root.join("disk/by-partlabel")).unwrap();
    std::fs::create_dir_all(&sys_block).unwrap();
    let mut loops = Vec::new();
    let mut nodes = Vec::new();
    for (n, (label, mib)) in [
        ("autoboot", 4u64),
        ("boot-a", 4),
        ("boot-b", 4),
        ("root-a", 8),
        ("root-b", 8),
    ]
    .iter()
    .enumerate()
    {
        let img = d.join(format!("{label}.img"));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let lo = Loop::attach(&img);
        let name = lo.dev.trim_start_matches("/dev/").to_owned();
        let rdev = nix::sys::stat::stat(lo.dev.as_str()).unwrap().st_rdev;
        nix::sys::stat::mknod(
            &dev_root.join(&name),
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            rdev,
        )
        .unwrap();
        std::os::unix::fs::symlink(
            format!("../../{name}"),
            dev_root.join("disk/by-partlabel").join(label),
        )
        .unwrap();
        let part = d.join("sys/devices/mmcblk0").join(&name);
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("partition"), format!("{}\n", n + 1)).unwrap();
        std::os::unix::fs::symlink(&part, sys_block.join(&name)).unwrap();
        nodes.push(dev_root.join(&name));
        loops.push(lo);
    }
    // The agent mounts the autoboot FAT itself. On a kernel without vfat (some CI VMs), the
    // test mounts an ext4 stand-in read-write first, and the agent must use that mount.
    let vfat = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("\tvfat\n");
    let fs = if vfat { "mkfs.vfat" } else { "mkfs.ext4" };
    let st = Command::new(fs).arg(&nodes[0]).output().unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let bootloader = d.join("dt");
    std::fs::create_dir(&bootloader).unwrap();
    std::fs::write(bootloader.join("partition"), 2u32.to_be_bytes()).unwrap();
    std::fs::write(bootloader.join("tryboot"), 0u32.to_be_bytes()).unwrap();

    // Not a Pi without the firmware's report; a Pi with it.
    let mount = d.join("run/autoboot");
    if !vfat {
        println!("vfat: this kernel has no driver; the autoboot partition is an ext4 stand-in");
        std::fs::create_dir_all(&mount).unwrap();
        assert!(
            Command::new("mount")
                .arg(&nodes[0])
                .arg(&mount)
                .status()
                .unwrap()
                .success()
        );
    }
    assert!(matches!(
        hearth::agent::update::detect_tryboot(&dev_root, &sys_block, &d.join("no-dt"), &mount),
        Ok(None)
    ));
    let found = hearth::agent::update::detect_tryboot(&dev_root, &sys_block, &bootloader, &mount)
        .unwrap()
        .expect("the tryboot layout");
    let _unmount = Unmount(mount.clone());
    let BootSetup::Tryboot {
        boot_dir,
        partitions,
        ..
    } = &found
    else {
        panic!("{found:?}")
    };
    assert_eq!((boot_dir, *partitions), (&mount, [2, 3]));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(mount.to_str().unwrap()))
        .expect("the autoboot FAT is mounted");
    if vfat {
        for opt in ["nosuid", "nodev", "noexec", "vfat"] {
            assert!(line.contains(opt), "{opt} missing: {line}");
        }
    }
    // Asked again (the agent restarted): the mount is found, not made twice.
    let again = hearth::agent::update::detect_tryboot(&dev_root, &sys_block, &bootloader, &mount)
        .unwrap()
        .unwrap();
    assert!(matches!(again, BootSetup::Tryboot { boot_dir, .. } if boot_dir == mount));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(info.matches(mount.to_str().unwrap()).count(), 1);
    std::fs::write(
        mount.join("autoboot.txt"),
        "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n",
    )
    .unwrap();
    std::fs::write(
        d.join("version"),
        "IMAGE_ID=hearth-test\nIMAGE_VERSION=1.0.0\n",
    )
    .unwrap();
    std::fs::write(d.join("boot_id"), "boot-1\n").unwrap();
    // A Raspberry Pi kernel: its firmware driver passes `tryboot` on at reboot.
    std::fs::write(
        d.join("kallsyms"),
        "ffffffc0089a1b20 t rpi_firmware_notify_reboot\n",
    )
    .unwrap();

    // The agent, on the real partitions.
    let keys = d.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let g = hearth::ota::keys::generate(d, "release").unwrap();
    std::fs::copy(&g.public, keys.join("release.pub")).unwrap();
    let BootSetup::Tryboot {
        boot_dir,
        bootloader_dir,
        partitions,
        ..
    } = found
    else {
        unreachable!()
    };
    let config = UpdateConfig {
        board: "rpi4".into(),
        keyring_dir: keys,
        boot: BootSetup::Tryboot {
            boot_dir,
            bootloader_dir,
            partitions,
            version_file: d.join("version"),
            kernel_symbols: d.join("kallsyms"),
        },
        slots: SlotDevices::PartLabel {
            dev_root: dev_root.clone(),
        },
        state_dir: d.join("run"),
        boot_id_path: d.join("boot_id"),
        reboot: RebootAction::TestRecord(d.join("reboots")),
    };
    let socket = d.join("agent.sock");
    let listener = hearth::agent::server::listener(&socket, None).unwrap();
    listener.set_nonblocking(true).unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::UnixListener::from_std(listener).unwrap();
            Agent::new(AgentConfig {
                sysroot: Sysroot::default(),
                media_root: PathBuf::from("/nonexistent-media"),
                allowed_uids: vec![0],
                mount_owner: None,
                update: Some(config),
            })
            .run(l, async {
                let _ = stop_rx.await;
            })
            .await;
        });
    });

    let st = agent_line(
        &mut agent_conn(&socket),
        &json!({"verb":"boot_status"}),
        &[],
    );
    assert_eq!(st["result"]["slot"], "a", "{st}");
    assert_eq!(st["result"]["version"], "1.0.0", "{st}");

    let root = common::noise(1, 3 << 20);
    let boot = common::noise(2, 1 << 20);
    std::fs::write(d.join("root.img"), &root).unwrap();
    std::fs::write(d.join("boot.img"), &boot).unwrap();
    let meta = hearth::ota::bundle::create(
        &hearth::ota::bundle::CreateSpec {
            board: "rpi4".into(),
            version: hearth::ota::Version(1, 1, 0),
            min_version: hearth::ota::Version(1, 0, 0),
            payloads: vec![
                ("rootfs".into(), d.join("root.img")),
                ("boot".into(), d.join("boot.img")),
            ],
        },
        &hearth::ota::keys::SigningKey::load(&g.private).unwrap(),
        &d.join("b.hbundle"),
    )
    .unwrap();
    let bytes = std::fs::read(d.join("b.hbundle")).unwrap();
    let pre = hearth::ota::bundle::parse_preamble(&bytes).unwrap();
    let meta_bytes = &bytes[..pre.meta_len() as usize];

    // The target partition is mounted: refused, whatever the boot control says.
    let root_b = nodes[4].clone();
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&root_b)
        .output()
        .unwrap();
    assert!(st.status.success());
    let busy = d.join("busy");
    std::fs::create_dir(&busy).unwrap();
    Command::new("mount")
        .args(["-o", "ro"])
        .arg(&root_b)
        .arg(&busy)
        .status()
        .unwrap();
    let held = Unmount(busy.clone());
    let r = agent_line(
        &mut agent_conn(&socket),
        &json!({"verb":"write_slot","meta_len": meta_bytes.len()}),
        meta_bytes,
    );
    assert_eq!(r["error"]["code"], "bad_slot", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("mounted"),
        "{r}"
    );
    drop(held);

    // Written, read back, staged, tried, committed on the real FAT.
    let mut s = agent_conn(&socket);
    let r = agent_line(
        &mut s,
        &json!({"verb":"write_slot","meta_len": meta_bytes.len()}),
        meta_bytes,
    );
    assert_eq!(r["result"]["slot"], "b", "{r}");
    for (i, c) in meta.chunks.iter().enumerate() {
        let data = if c.payload == 0 { &root } else { &boot };
        let plain = &data[c.offset as usize..(c.offset + c.len as u64) as usize];
        let r = agent_line(
            &mut s,
            &json!({"op":"chunk","index":i,"len":plain.len()}),
            plain,
        );
        assert_eq!(r["ok"], true, "chunk {i}: {r}");
    }
    let r = agent_line(&mut s, &json!({"op":"finish"}), &[]);
    assert_eq!(r["result"], json!({"slot":"b","version":"1.1.0"}), "{r}");
    let mut on_disk = vec![0u8; root.len()];
    use std::os::unix::fs::FileExt;
    std::fs::File::open(&root_b)
        .unwrap()
        .read_exact_at(&mut on_disk, 0)
        .unwrap();
    assert!(on_disk == root, "root-b holds the new root");
    let root_a = std::fs::read(&nodes[3]).unwrap();
    assert!(root_a.iter().all(|&b| b == 0), "root-a (running) untouched");
    let r = agent_line(
        &mut agent_conn(&socket),
        &json!({"verb":"set_next_boot","version":"1.1.0"}),
        &[],
    );
    assert_eq!(r["ok"], true, "{r}");
    let r = agent_line(&mut agent_conn(&socket), &json!({"verb":"reboot"}), &[]);
    assert_eq!(r["result"]["tryboot"], true, "{r}");
    // The firmware tries boot-b; the health check passes; the agent commits it.
    std::fs::write(bootloader.join("partition"), 3u32.to_be_bytes()).unwrap();
    std::fs::write(bootloader.join("tryboot"), 1u32.to_be_bytes()).unwrap();
    std::fs::write(d.join("boot_id"), "boot-2\n").unwrap();
    std::fs::write(
        d.join("version"),
        "IMAGE_ID=hearth-test\nIMAGE_VERSION=1.1.0\n",
    )
    .unwrap();
    let r = agent_line(&mut agent_conn(&socket), &json!({"verb":"mark_good"}), &[]);
    assert_eq!(r["result"]["slot"], "b", "{r}");
    let _ = stop.send(());
    thread.join().unwrap();
    nix::mount::umount2(&mount, nix::mount::MntFlags::empty()).unwrap();
    // What the firmware reads after the FAT was unmounted (and so written out).
    std::fs::create_dir_all(&mount).unwrap();
    Command::new("mount")
        .args(["-o", "ro"])
        .arg(&nodes[0])
        .arg(&mount)
        .status()
        .unwrap();
    let ab = std::fs::read_to_string(mount.join("autoboot.txt")).unwrap();
    let ab = hearth::agent::boot::Autoboot::parse(&ab).unwrap();
    assert_eq!((ab.committed, ab.tryboot), (3, 2));
    assert!(!mount.join("autoboot.txt.new").exists());
}
