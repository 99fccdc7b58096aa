//! Boot tests of what the init does for microVM monitors, on QEMU's
//! `microvm` machine shaped like Firecracker: no ACPI, no command line
//! added by QEMU (`acpi=off,auto-kernel-cmdline=off`), no isa-debug-exit,
//! an i8042 whose reset ends the VM (`reboot=k`; QEMU runs with
//! `-no-reboot`), and devices announced with `virtio_mmio.device=` on the
//! command line the test writes.
//!
//! QEMU's microvm without ACPI has 8 virtio-mmio transports of 512 bytes
//! from 0xfeb00000 on IRQs 5 to 12, and puts the first device on the last
//! one: QEMU itself announces it as `virtio_mmio.device=512@0xfeb00e00:12`
//! when `auto-kernel-cmdline` is on.

use mkrootfs_qemu::{Disk, Machine, Outcome, VmConfig};
use mkrootfs_tests::{assert_console, build_image, chain, kernel, kernel_modules, BUSYBOX_IMAGE};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// The first virtio-mmio slot of QEMU's microvm without ACPI.
const FIRST_SLOT: &str = "virtio_mmio.device=512@0xfeb00e00:12";

/// A microvm-preset image whose service reports what the modules got and
/// which block devices exist, then exits 7.
fn image() -> &'static PathBuf {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| {
        let service = "echo \"PARAMS queue_depth=$(cat /sys/module/virtio_blk/parameters/queue_depth) num_request_queues=$(cat /sys/module/virtio_blk/parameters/num_request_queues)\"; \
                       echo \"BLOCK $(ls /sys/block | tr '\\n' ' ')\"; \
                       dmesg | grep virtio_mmio | sed 's/^/KERNEL /'; exit 7";
        build_image(
            "microvm-firecracker",
            &format!(
                r#"{BUSYBOX_IMAGE}
[modules]
kernel = "{}"
preset = "microvm"
options = {{ virtio-blk = "num_request_queues=1" }}

[init]
[[init.services]]
argv = ["/bin/sh", "-c", {service:?}]
[init.shutdown]
grace_ms = 500
"#,
                kernel_modules().display()
            ),
        )
    })
}

/// Whether the test kernel creates virtio-mmio devices from
/// `virtio_mmio.device=` (Debian's kernels do not: the option is off in
/// both the cloud and the generic configurations).
fn kernel_has_cmdline_devices() -> bool {
    let boot = kernel().vmlinuz.parent().expect("kernel directory");
    std::fs::read_dir(boot)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("config-"))
        .any(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .any(|l| l == "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y")
        })
}

/// Boots on a Firecracker-shaped microvm with an empty disk of its own
/// (`<name>.img`: tests run in parallel, and QEMU locks its disks) and the
/// given kernel parameters and QEMU arguments.
fn boot(name: &str, append: &str, qemu_args: &[&str]) -> Outcome {
    let disk = mkrootfs_tests::work_dir().join(format!("{name}.img"));
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut cfg = VmConfig::new(kernel().vmlinuz.clone(), image().clone());
    cfg.machine = Machine::Microvm;
    cfg.debug_exit = false;
    cfg.append = format!("quiet reboot=k {append}");
    cfg.disks = vec![Disk::raw(&disk)];
    cfg.extra_args = [
        "-machine",
        "acpi=off,auto-kernel-cmdline=off",
        "-device",
        "i8042",
    ]
    .iter()
    .chain(qemu_args)
    .map(|s| s.to_string())
    .collect();
    cfg.timeout = Duration::from_secs(180);
    let out = mkrootfs_qemu::run(&cfg).unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e)));
    assert!(!out.timed_out, "guest timed out; console:\n{}", out.console);
    out
}

/// The result line comes first, then the kernel's restart: `reboot=k`
/// with `RB_AUTOBOOT` resets the machine through the i8042, which ends
/// QEMU under `-no-reboot` (status 0), as it ends a Firecracker VM.
#[track_caller]
fn assert_rebooted_after_result(out: &Outcome) {
    assert_eq!(
        out.result.as_ref().map(|r| r.code),
        Some(7),
        "RESULT line; console:\n{}",
        out.console
    );
    let result = out.console.find("mkrootfs-init: RESULT status=7 exited=7");
    let restart = out.console.find("reboot: Restarting system");
    assert!(
        matches!((result, restart), (Some(a), Some(b)) if a < b),
        "RESULT, then the restart; console:\n{}",
        out.console
    );
    assert_eq!(
        out.qemu_status,
        Some(0),
        "QEMU ended by the reset; stderr:\n{}",
        out.stderr
    );
    assert_eq!(out.exit_code(), 7);
}

#[test]
fn firecracker_shaped_guest_gets_module_parameters_reboots_and_signals_the_boot_timer() {
    let out = boot(
        "microvm-firecracker-disk",
        &format!("{FIRST_SLOT} mkrootfs.shutdown=reboot virtio_blk.queue_depth=32 mkrootfs.boot_timer=firecracker"),
        &["-d", "guest_errors"],
    );
    // Each module got its own parameters: the profile's first, then the
    // command line's.
    assert_console(&out, "module virtio_blk loaded in ");
    let line = |name: &str| {
        out.console
            .lines()
            .find(|l| l.contains(&format!("module {name} loaded in ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("virtio_blk").ends_with(" with num_request_queues=1 queue_depth=32"),
        "{}",
        line("virtio_blk")
    );
    assert!(
        line("virtio_mmio").ends_with(" with device=512@0xfeb00e00:12"),
        "{}",
        line("virtio_mmio")
    );
    assert!(!line("virtio").contains(" with "), "{}", line("virtio"));
    assert_console(&out, "PARAMS queue_depth=32 num_request_queues=1\n");
    if kernel_has_cmdline_devices() {
        assert_console(&out, "BLOCK vda");
    } else {
        // The kernel got the parameter from the init's finit_module and
        // says it has no such parameter (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES
        // is off): without ACPI the disk cannot be found with this kernel.
        assert_console(&out, "virtio_mmio: unknown parameter 'device' ignored");
    }
    // Firecracker's boot timer at 0xc0000000: QEMU has nothing there and
    // logs the guest's one-byte write.
    assert!(
        out.stderr
            .contains("Invalid write at addr 0xC0000000, size 1, region '(null)'"),
        "QEMU stderr:\n{}",
        out.stderr
    );
    assert_rebooted_after_result(&out);
}

#[test]
fn boot_timer_on_an_io_port_writes_the_byte_once() {
    let out = boot(
        "microvm-pio-disk",
        "mkrootfs.boot_timer=pio:0x3f0",
        &["-d", "trace:memory_region_ops_write"],
    );
    let writes: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(" addr 0x3f0 "))
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        writes[0].contains("addr 0x3f0 value 0x7b size 1"),
        "{writes:?}"
    );
    // Issue 20: no `mkrootfs.shutdown=reboot` here. Without ACPI the init
    // cannot power off (the CPU would halt and the VM never end): it says
    // so and reboots, which `reboot=k` turns into the VM's end.
    assert_console(
        &out,
        "power-off is not available (no ACPI S5 sleep state): rebooting to end the machine",
    );
    assert_rebooted_after_result(&out);
}
