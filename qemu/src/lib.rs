//! QEMU harness: find or fetch a kernel, boot an image under QEMU, capture the serial
//! console and read the guest's result (docs/ARCHITECTURE.md "The result protocol" and
//! "Kernel cache").
//!
//! Environment: `MKROOTFS_CACHE` (cache directory), `MKROOTFS_KERNEL` (kernel for
//! [`find_kernel`]), `MKROOTFS_ACCEL=tcg|kvm` (overrides [`Accel::Auto`]),
//! `MKROOTFS_QEMU_JOBS` (QEMUs at once machine-wide), `MKROOTFS_QEMU` (QEMU binary).

mod accel;
mod config;
mod console;
mod error;
mod kernel;
mod lock;
mod qmp;
mod result;
mod run;

pub use accel::{qemu_available, qemu_binary, resolved_accel, Accel};
pub use config::{Disk, GuestFwd, HostFwd, Machine, Net, Nic, VmConfig};
pub use console::{strip_levels, QuietFilter, QUIET_LOGLEVEL};
pub use error::QemuError;
pub use kernel::{cache_dir, debian_cloud_kernel, find_kernel, kernel_from_path, Kernel};
pub use qmp::Qmp;
pub use result::{parse_result_line, ContainerCounters, GuestResult, Outcome};
pub use run::run;
