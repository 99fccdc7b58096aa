//! Whether the machine can power itself off, read from the firmware's ACPI
//! tables before the init asks for it. On x86 the kernel powers off only
//! through ACPI's S5 sleep state; without it `reboot(RB_POWER_OFF)` halts
//! the CPU and never returns, and a VM whose monitor has no other way out
//! (Firecracker; QEMU `microvm` with `acpi=off`) would never end. The init
//! then reboots instead, which with `reboot=k` ends a Firecracker VM (its
//! documented way) and QEMU under `-no-reboot`.
//!
//! The kernel's own test (`acpi_sleep_state_supported(ACPI_STATE_S5)`)
//! needs an `\_S5_` package in the DSDT (or an SSDT) and, on hardware-
//! reduced ACPI (what microVM monitors present), a sleep control register
//! in the FADT. The tables are in `/sys/firmware/acpi/tables/`.

use std::path::Path;

/// Where the kernel exposes the ACPI tables.
pub const TABLES: &str = "/sys/firmware/acpi/tables";

/// FADT `Flags` (offset 112, 4 bytes): `HW_REDUCED_ACPI` is bit 20.
const FADT_FLAGS: usize = 112;
const HW_REDUCED_ACPI: u32 = 1 << 20;
/// FADT `SLEEP_CONTROL_REG` (ACPI 5.0, offset 244): a Generic Address
/// Structure whose 64-bit address starts 4 bytes in.
const FADT_SLEEP_CONTROL_ADDRESS: usize = 244 + 4;

/// Whether power-off can work on this machine. Not x86: true (PSCI and
/// other firmware interfaces power off without ACPI).
pub fn can_power_off(tables: &Path) -> bool {
    if !cfg!(target_arch = "x86_64") {
        return true;
    }
    let Ok(fadt) = std::fs::read(tables.join("FACP")) else {
        // No ACPI at all (acpi=off, or none offered).
        return false;
    };
    s5_defined(tables) && fadt_can_sleep(&fadt)
}

/// An `_S5_` name in the DSDT or any SSDT (the AML name of the package
/// that holds the sleep type values).
fn s5_defined(tables: &Path) -> bool {
    let has = |p: &Path| std::fs::read(p).is_ok_and(|t| t.windows(4).any(|w| w == b"_S5_"));
    if has(&tables.join("DSDT")) {
        return true;
    }
    let Ok(dir) = std::fs::read_dir(tables) else {
        return false;
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("SSDT"))
        .any(|e| has(&e.path()))
}

/// A full-hardware FADT has the PM1 control registers; a hardware-reduced
/// one must name a sleep control register.
fn fadt_can_sleep(fadt: &[u8]) -> bool {
    let u32_at = |at: usize| {
        fadt.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        fadt.get(at..at + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    match u32_at(FADT_FLAGS) {
        Some(flags) if flags & HW_REDUCED_ACPI != 0 => {
            u64_at(FADT_SLEEP_CONTROL_ADDRESS).is_some_and(|a| a != 0)
        }
        Some(_) => true,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FADT of 276 bytes (ACPI 5+) with the given flags and sleep control
    /// register address.
    fn fadt(flags: u32, sleep_control: u64) -> Vec<u8> {
        let mut t = vec![0u8; 276];
        t[..4].copy_from_slice(b"FACP");
        t[FADT_FLAGS..FADT_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
        t[FADT_SLEEP_CONTROL_ADDRESS..FADT_SLEEP_CONTROL_ADDRESS + 8]
            .copy_from_slice(&sleep_control.to_le_bytes());
        t
    }

    fn tables(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(d.path().join(name), bytes).unwrap();
        }
        d
    }

    #[test]
    fn power_off_needs_s5_and_a_way_to_enter_it() {
        let dsdt_s5 = b"DSDT....\x08_S5_\x12\x06\x04\x00".to_vec();
        // A PC (QEMU pc, Cloud Hypervisor): full hardware, \_S5_ defined.
        let pc = tables(&[("FACP", fadt(0, 0)), ("DSDT", dsdt_s5.clone())]);
        assert!(can_power_off(pc.path()));
        // acpi=off: no tables at all.
        let none = tempfile::tempdir().unwrap();
        assert!(!can_power_off(none.path()));
        assert!(!can_power_off(Path::new("/nonexistent")));
        // Hardware-reduced without a sleep control register (Firecracker).
        let fc = tables(&[
            ("FACP", fadt(HW_REDUCED_ACPI, 0)),
            ("DSDT", dsdt_s5.clone()),
        ]);
        assert!(!can_power_off(fc.path()));
        // Hardware-reduced with one (QEMU microvm's GED).
        let microvm = tables(&[
            ("FACP", fadt(HW_REDUCED_ACPI, 0x600)),
            ("DSDT", b"DSDT".to_vec()),
            ("SSDT1", dsdt_s5),
        ]);
        assert!(can_power_off(microvm.path()));
        // No \_S5_ anywhere.
        let no_s5 = tables(&[("FACP", fadt(0, 0)), ("DSDT", b"DSDT_S4_".to_vec())]);
        assert!(!can_power_off(no_s5.path()));
        // A truncated FADT is not trusted.
        let short = tables(&[("FACP", vec![0u8; 100]), ("DSDT", b"_S5_".to_vec())]);
        assert!(!can_power_off(short.path()));
    }
}
