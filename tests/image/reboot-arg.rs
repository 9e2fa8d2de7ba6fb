//! `reboot-arg ARG`: reboot(2) with LINUX_REBOOT_CMD_RESTART2 and ARG, what `systemctl reboot
//! ARG` ends in. Busybox's reboot passes no argument. Built by tests/image/run for the
//! initramfs that boots a Raspberry Pi board's kernel with the image's hearth_tryboot module;
//! plain rustc, no crates (musl's variadic syscall()).
use std::ffi::CString;

extern "C" {
    fn syscall(number: i64, ...) -> i64;
}

#[cfg(target_arch = "aarch64")]
const SYS_REBOOT: i64 = 142;
#[cfg(target_arch = "x86_64")]
const SYS_REBOOT: i64 = 169;
const MAGIC1: i64 = 0xfee1_dead;
const MAGIC2: i64 = 672_274_793;
const CMD_RESTART2: i64 = 0xa1b2_c3d4;

fn main() {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: reboot-arg ARG");
        std::process::exit(2);
    };
    let arg = CString::new(arg).expect("the argument has a NUL byte");
    // SAFETY: reboot(2) reads a NUL-terminated string; `arg` outlives the call.
    let r = unsafe { syscall(SYS_REBOOT, MAGIC1, MAGIC2, CMD_RESTART2, arg.as_ptr()) };
    // Only reached when the kernel refused.
    eprintln!(
        "reboot-arg: reboot returned {r}: {}",
        std::io::Error::last_os_error()
    );
    std::process::exit(1);
}
