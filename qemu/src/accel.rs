//! Choosing between KVM and TCG without ever hanging.
//!
//! Opening `/dev/kvm`, or `KVM_CREATE_VM` + `KVM_GET_API_VERSION`, is not enough: under
//! nested virtualisation (a Firecracker host, for one) KVM accepts the VM and then the
//! guest kernel stops dead right after its real-mode setup code, printing nothing. So
//! [`Accel::Auto`] boots a 64 KiB probe firmware (probe/kvm-probe.S) under KVM that
//! walks the same path (real mode -> protected mode -> paging -> long mode) and writes
//! to isa-debug-exit; KVM is used only if QEMU exits with the expected status within
//! 5 seconds. The verdict is kept per process and in `<cache>/kvm-probe` keyed by the
//! host boot id and the QEMU binary, so parallel test processes probe once per boot.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::kernel::cache_dir;
use crate::lock::FileLock;

/// The accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// `MKROOTFS_ACCEL=tcg|kvm` when set; else KVM only if `/dev/kvm` opens and a
    /// 5-second long-mode probe boot under KVM succeeds (see [`crate::resolved_accel`]);
    /// else TCG.
    #[default]
    Auto,
    /// Emulation, `-cpu max`: always works, never hangs, one host core per guest CPU.
    Tcg,
    /// `-cpu host`.
    Kvm,
}

/// How long the probe may take; a working KVM finishes in well under 100 ms.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The value the probe writes to port 0xf4, and QEMU's resulting exit status.
const PROBE_VALUE: i32 = 0x2a;
const PROBE_STATUS: i32 = (PROBE_VALUE << 1) | 1;

/// Code and GDT of probe/kvm-probe.S, placed at offset 0xF000 of the firmware
/// (physical 0xFFFFF000); regenerate with probe/build.sh.
const PROBE_CODE: [u8; 198] = [
    0xfa, 0x2e, 0x66, 0x0f, 0x01, 0x16, 0xc0, 0xf0, 0x0f, 0x20, 0xc0, 0x66, 0x83, 0xc8, 0x01, 0x0f,
    0x22, 0xc0, 0x66, 0xea, 0x1a, 0xf0, 0xff, 0xff, 0x08, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8,
    0x8e, 0xc0, 0x8e, 0xd0, 0xbf, 0x00, 0x10, 0x00, 0x00, 0x31, 0xc0, 0xb9, 0x00, 0x10, 0x00, 0x00,
    0xf3, 0xab, 0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, 0xc7, 0x05, 0x00, 0x20,
    0x00, 0x00, 0x03, 0x30, 0x00, 0x00, 0xc7, 0x05, 0x18, 0x20, 0x00, 0x00, 0x03, 0x40, 0x00, 0x00,
    0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, 0xc7, 0x05, 0xf8, 0x4f, 0x00, 0x00,
    0x83, 0x00, 0xe0, 0xff, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0x0f, 0x20, 0xe0, 0x83,
    0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00,
    0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xea, 0x95,
    0xf0, 0xff, 0xff, 0x18, 0x00, 0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd, 0x8d, 0xb4, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,
    0x1f, 0x00, 0xa0, 0xf0, 0xff, 0xff,
];
const PROBE_CODE_OFFSET: usize = 0xF000;
/// At the reset vector (0xFFFFFFF0): `jmp near 0xF000` within the firmware segment.
const RESET_JUMP: [u8; 3] = [0xe9, 0x0d, 0xf0];
/// QEMU's pc machine wants a firmware size that is a multiple of 64 KiB.
const FIRMWARE_SIZE: usize = 0x10000;

/// The QEMU binary: `$MKROOTFS_QEMU`, else `qemu-system-x86_64` from `$PATH`.
pub fn qemu_binary() -> PathBuf {
    std::env::var_os("MKROOTFS_QEMU")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"))
}

/// Whether [`qemu_binary`] exists (as a path, or in `$PATH`): boot tests skip without it.
pub fn qemu_available() -> bool {
    let bin = qemu_binary();
    if bin.components().count() > 1 {
        return bin.is_file();
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(&bin).is_file()))
        .unwrap_or(false)
}

/// The accelerator a run will use: `Tcg` or `Kvm`, never `Auto`. Explicit choices stand;
/// `Auto` follows `MKROOTFS_ACCEL=tcg|kvm` (other values are ignored), then the probe.
/// Every failure on the way (no /dev/kvm, no cache dir, probe hung) means TCG.
pub fn resolved_accel(requested: Accel) -> Accel {
    match requested {
        Accel::Tcg | Accel::Kvm => requested,
        Accel::Auto => match std::env::var("MKROOTFS_ACCEL").as_deref() {
            Ok("tcg") => Accel::Tcg,
            Ok("kvm") => Accel::Kvm,
            _ => {
                static PROBED: OnceLock<Accel> = OnceLock::new();
                *PROBED.get_or_init(probe_kvm)
            }
        },
    }
}

fn probe_kvm() -> Accel {
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let dir = cache_dir();
    if fs::create_dir_all(&dir).is_err() {
        return Accel::Tcg;
    }
    // One prober at a time machine-wide: the others wait and read its verdict.
    let Ok(_lock) = FileLock::exclusive(&dir.join("kvm-probe.lock")) else {
        return Accel::Tcg;
    };
    let key = format!(
        "{} {}",
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap_or_default()
            .trim(),
        qemu_binary().display()
    );
    let verdict_path = dir.join("kvm-probe");
    if let Ok(saved) = fs::read_to_string(&verdict_path) {
        if let Some(accel) = parse_verdict(&saved, &key) {
            return accel;
        }
    }
    let firmware = dir.join("kvm-probe.bin");
    let accel = match write_atomically(&firmware, &probe_firmware()) {
        Ok(()) if boot_probe(&firmware) => Accel::Kvm,
        _ => Accel::Tcg,
    };
    let word = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    // Losing the saved verdict only costs a later probe.
    let _ = write_atomically(&verdict_path, format!("{key} {word}\n").as_bytes());
    accel
}

fn parse_verdict(saved: &str, key: &str) -> Option<Accel> {
    let (saved_key, word) = saved.trim_end().rsplit_once(' ')?;
    if saved_key != key {
        return None;
    }
    match word {
        "kvm" => Some(Accel::Kvm),
        "tcg" => Some(Accel::Tcg),
        _ => None,
    }
}

/// The 64 KiB probe firmware: `hlt` everywhere, the code at 0xF000, the reset jump at 0xFFF0.
pub(crate) fn probe_firmware() -> Vec<u8> {
    let mut image = vec![0xf4u8; FIRMWARE_SIZE];
    image[PROBE_CODE_OFFSET..PROBE_CODE_OFFSET + PROBE_CODE.len()].copy_from_slice(&PROBE_CODE);
    image[0xFFF0..0xFFF0 + RESET_JUMP.len()].copy_from_slice(&RESET_JUMP);
    image
}

/// The probe command for an accelerator (TCG is used by the tests to check the firmware).
pub(crate) fn probe_command(firmware: &Path, accel: Accel) -> Command {
    let mut cmd = Command::new(qemu_binary());
    cmd.args(["-nodefaults", "-no-user-config", "-machine", "pc"]);
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg | Accel::Auto => cmd.args(["-accel", "tcg", "-cpu", "max"]),
    };
    cmd.args(["-m", "16", "-display", "none", "-no-reboot", "-bios"])
        .arg(firmware)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Runs the probe under KVM; true only for the expected exit status within the timeout.
fn boot_probe(firmware: &Path) -> bool {
    probe_exit_status(&mut probe_command(firmware, Accel::Kvm), PROBE_TIMEOUT) == Some(PROBE_STATUS)
}

/// Spawns, waits at most `timeout`, kills and reaps on timeout; the exit code if any.
pub(crate) fn probe_exit_status(cmd: &mut Command, timeout: Duration) -> Option<i32> {
    let mut child = cmd.spawn().ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_layout() {
        let image = probe_firmware();
        assert_eq!(image.len(), 65536);
        // cli; lgdtl %cs:0xf0c0 -- the GDT descriptor sits at the end of the code block.
        assert_eq!(
            &image[0xF000..0xF008],
            [0xfa, 0x2e, 0x66, 0x0f, 0x01, 0x16, 0xc0, 0xf0]
        );
        assert_eq!(&image[0xF0C0..0xF0C6], [0x1f, 0x00, 0xa0, 0xf0, 0xff, 0xff]);
        assert_eq!(&image[0xFFF0..0xFFF4], [0xe9, 0x0d, 0xf0, 0xf4]);
        assert_eq!(image[0xEFFF], 0xf4);
    }

    #[test]
    fn probe_firmware_reaches_long_mode_under_tcg() {
        if !mkrootfs_tests::require("qemu-system-x86_64", crate::qemu_available()) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let firmware = dir.path().join("probe.bin");
        fs::write(&firmware, probe_firmware()).unwrap();
        let mut cmd = probe_command(&firmware, Accel::Tcg);
        assert_eq!(
            probe_exit_status(&mut cmd, Duration::from_secs(20)),
            Some(PROBE_STATUS)
        );
    }

    #[test]
    fn probe_that_hangs_is_killed_at_the_timeout() {
        let start = Instant::now();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        assert_eq!(
            probe_exit_status(&mut cmd, Duration::from_millis(200)),
            None
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn explicit_accelerators_stand() {
        assert_eq!(resolved_accel(Accel::Tcg), Accel::Tcg);
        assert_eq!(resolved_accel(Accel::Kvm), Accel::Kvm);
    }

    #[test]
    fn verdict_must_match_boot_and_binary() {
        assert_eq!(
            parse_verdict("b1 /usr/bin/q kvm\n", "b1 /usr/bin/q"),
            Some(Accel::Kvm)
        );
        assert_eq!(
            parse_verdict("b1 /usr/bin/q tcg\n", "b1 /usr/bin/q"),
            Some(Accel::Tcg)
        );
        assert_eq!(parse_verdict("b0 /usr/bin/q kvm\n", "b1 /usr/bin/q"), None);
        assert_eq!(
            parse_verdict("b1 /usr/bin/q maybe\n", "b1 /usr/bin/q"),
            None
        );
        assert_eq!(parse_verdict("", "b1 /usr/bin/q"), None);
    }
}
