//! Real boots of a tiny busybox initramfs under QEMU (TCG) with the Debian cloud kernel.
//!
//! Skipped only when qemu-system-x86_64 (or busybox, or cpio) is missing and `CI` is
//! not set; in CI a missing tool fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use mkrootfs_qemu::{Accel, Machine, QemuError, VmConfig};

/// One QEMU of ours at a time: each TCG guest keeps a host core busy.
static ONE_GUEST: Mutex<()> = Mutex::new(());

const BUSYBOX: &str = "/bin/busybox";

/// The kernel and a scratch dir, or `None` to skip.
fn setup() -> Option<(PathBuf, tempfile::TempDir)> {
    let missing = if !mkrootfs_qemu::qemu_available() {
        Some("qemu-system-x86_64")
    } else if !Path::new(BUSYBOX).is_file() {
        Some(BUSYBOX)
    } else if Command::new("cpio").arg("--version").output().is_err() {
        Some("cpio")
    } else {
        None
    };
    if let Some(tool) = missing {
        mkrootfs_tests::require(tool, false);
        return None;
    }
    let kernel = mkrootfs_qemu::debian_cloud_kernel().unwrap();
    Some((kernel.vmlinuz, tempfile::tempdir().unwrap()))
}

/// A newc archive with /bin/busybox and `init_script` as /init.
fn initramfs(scratch: &Path, init_script: &str) -> PathBuf {
    initramfs_with(scratch, init_script, &[])
}

/// Same, plus executables at the given paths.
fn initramfs_with(scratch: &Path, init_script: &str, extra: &[(&str, Vec<u8>)]) -> PathBuf {
    let root = scratch.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let script = format!("#!/bin/busybox sh\n{init_script}");
    for (path, bytes) in [("init", script.as_bytes())]
        .into_iter()
        .chain(extra.iter().map(|(p, b)| (*p, b.as_slice())))
    {
        let path = root.join(path);
        std::fs::write(&path, bytes).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&path, mode).unwrap();
    }
    let image = scratch.join("initramfs.cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . | cpio -o -H newc --quiet > \"$2\"")
        .args(["sh"])
        .arg(&root)
        .arg(&image)
        .status()
        .unwrap();
    assert!(status.success());
    image
}

const REPORTS_3: &str = "\
/bin/busybox echo hello from guest
/bin/busybox echo 'mkrootfs-init: RESULT status=3 exited=3 boot_ms=1 service_ms=2'
/bin/busybox poweroff -f
";

fn tcg(kernel: &Path, image: &Path) -> VmConfig {
    let mut cfg = VmConfig::new(kernel, image);
    cfg.accel = Accel::Tcg;
    cfg
}

#[test]
fn pc_guest_reports_result_and_powers_off() {
    let Some((kernel, scratch)) = setup() else {
        return;
    };
    let image = initramfs(scratch.path(), REPORTS_3);
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = mkrootfs_qemu::run(&tcg(&kernel, &image)).unwrap();
    assert!(
        out.console.contains("\nhello from guest\n"),
        "{}",
        out.console
    );
    let result = out.result.clone().expect("RESULT line");
    assert_eq!(
        (result.code, result.boot_ms, result.service_ms),
        (3, Some(1), Some(2))
    );
    assert_eq!(out.exit_code(), 3);
    assert!(!out.timed_out);
    // poweroff -f: QEMU exits 0, no debug-exit write.
    assert_eq!(out.qemu_status, Some(0), "{}", out.console);
}

#[test]
fn microvm_guest_reports_result_and_powers_off() {
    let Some((kernel, scratch)) = setup() else {
        return;
    };
    let image = initramfs(scratch.path(), REPORTS_3);
    let mut cfg = tcg(&kernel, &image);
    cfg.machine = Machine::Microvm;
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = mkrootfs_qemu::run(&cfg).unwrap();
    assert!(
        out.console.contains("\nhello from guest\n"),
        "{}",
        out.console
    );
    assert_eq!(out.exit_code(), 3, "{}", out.console);
    assert!(!out.timed_out);
}

/// A static x86-64 ELF that does `ioperm(0xf4, 1, 1)` then `outb(code, 0xf4)`, as the
/// mkrootfs init does (the Debian kernel has no /dev/port to do it from a shell).
fn debug_exit_elf(code: u8) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const CODE_AT: u64 = 64 + 56;
    #[rustfmt::skip]
    let text = [
        0xbf, 0xf4, 0x00, 0x00, 0x00, // mov edi, 0xf4
        0xbe, 0x01, 0x00, 0x00, 0x00, // mov esi, 1
        0xba, 0x01, 0x00, 0x00, 0x00, // mov edx, 1
        0xb8, 0xad, 0x00, 0x00, 0x00, // mov eax, 173 (ioperm)
        0x0f, 0x05,                   // syscall
        0xb0, code,                   // mov al, code
        0xe6, 0xf4,                   // out 0xf4, al
        0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit), reached only if QEMU went on
        0x31, 0xff,                   // xor edi, edi
        0x0f, 0x05,                   // syscall
    ];
    let size = CODE_AT + text.len() as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + CODE_AT).to_le_bytes()); // e_entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [64u16, 56, 1, 64, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    for word in [0, BASE, BASE, size, size, 0x1000u64] {
        // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
        elf.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(elf.len() as u64, CODE_AT);
    elf.extend_from_slice(&text);
    elf
}

#[test]
fn debug_exit_code_without_result_line() {
    let Some((kernel, scratch)) = setup() else {
        return;
    };
    let image = initramfs_with(
        scratch.path(),
        "/bin/debug-exit\n/bin/busybox echo debug-exit returned\n/bin/busybox sleep 1000\n",
        &[("bin/debug-exit", debug_exit_elf(5))],
    );
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = mkrootfs_qemu::run(&tcg(&kernel, &image)).unwrap();
    assert_eq!(out.result, None);
    // QEMU exits with (5 << 1) | 1.
    assert_eq!(out.qemu_status, Some(11), "{}", out.console);
    assert_eq!(out.exit_code(), 5);
}

#[test]
fn guest_stuck_after_its_result_is_killed_without_waiting_for_the_timeout() {
    let Some((kernel, scratch)) = setup() else {
        return;
    };
    let image = initramfs(
        scratch.path(),
        "/bin/busybox echo 'mkrootfs-init: RESULT status=130 signal=SIGINT boot_ms=4 service_ms=5'\n\
         exec /bin/busybox sleep 1000\n",
    );
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = mkrootfs_qemu::run(&tcg(&kernel, &image)).unwrap();
    assert!(!out.timed_out);
    assert_eq!(
        out.qemu_status, None,
        "stderr: {}; console:\n{}",
        out.stderr, out.console
    );
    assert_eq!(out.exit_code(), 130);
    assert_eq!(out.result.unwrap().signal.as_deref(), Some("SIGINT"));
    // 10 s of grace after the line, far below the 120 s timeout.
    assert!(out.elapsed < Duration::from_secs(60), "{:?}", out.elapsed);
}

#[test]
fn kernel_panic_is_exit_code_1() {
    let Some((kernel, scratch)) = setup() else {
        return;
    };
    // PID 1 exiting panics the kernel; panic=-1 reboots and -no-reboot ends QEMU.
    let image = initramfs(scratch.path(), "exit 0\n");
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = mkrootfs_qemu::run(&tcg(&kernel, &image)).unwrap();
    assert!(out.console.contains("Kernel panic"), "{}", out.console);
    assert_eq!(out.result, None);
    assert!(!out.timed_out);
    assert_eq!(out.qemu_status, Some(0));
    assert_eq!(out.exit_code(), 1);
}

#[test]
fn hanging_guest_times_out_and_qemu_is_killed() {
    let Some((kernel, scratch)) = setup() else {
        return;
    };
    let image = initramfs(scratch.path(), "exec /bin/busybox sleep 1000\n");
    let mut cfg = tcg(&kernel, &image);
    cfg.timeout = Duration::from_secs(20);
    // A marker to find this QEMU among all processes afterwards.
    let marker = format!("mkrootfs.hangtest={}", std::process::id());
    cfg.append = marker.clone();
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = mkrootfs_qemu::run(&cfg).unwrap();
    assert!(
        out.timed_out,
        "status {:?} after {:?}; stderr: {}; console:\n{}",
        out.qemu_status, out.elapsed, out.stderr, out.console
    );
    assert_eq!(out.qemu_status, None);
    assert_eq!(out.exit_code(), 1);
    assert!(out.elapsed >= Duration::from_secs(20), "{:?}", out.elapsed);
    assert!(out.elapsed < Duration::from_secs(30), "{:?}", out.elapsed);
    assert!(
        out.console.contains("Run /init as init process"),
        "{}",
        out.console
    );
    assert_eq!(processes_with(&marker), Vec::<String>::new());
}

#[test]
fn missing_kernel_is_a_qemu_error_with_its_message() {
    if !mkrootfs_tests::require("qemu-system-x86_64", mkrootfs_qemu::qemu_available()) {
        return;
    }
    let cfg = tcg(
        Path::new("/nonexistent/vmlinuz"),
        Path::new("/nonexistent/initrd"),
    );
    let err = mkrootfs_qemu::run(&cfg).unwrap_err();
    match &err {
        QemuError::QemuFailed { status, stderr } => {
            assert_eq!(status.code(), Some(1));
            assert!(stderr.contains("/nonexistent/vmlinuz"), "{stderr}");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

/// Command lines of live processes that contain `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            // Our own test binary does not carry the marker in its arguments.
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}
