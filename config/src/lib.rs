//! Types shared by the builder (`mkrootfs`) and the PID 1 (`init`).
//!
//! The builder parses a profile's `[init]` table into [`InitConfig`] with the
//! same serde types the init later reads from the image, so a mistake fails
//! the build with a file/line/column instead of failing the boot. The init
//! reads the configuration as JSON from [`INIT_CONFIG_PATH`] (serde_json is
//! far smaller than a TOML parser in a static binary).
//!
//! [`kmod`] holds the parsers for the kernel's module index files
//! (`modules.dep`, `modules.alias`, `modules.softdep`, `modules.builtin`) and
//! modalias matching, used by the builder to compute closures and by the init
//! to load modules and coldplug devices.

pub mod agent;
pub mod container;
pub mod exec;
pub mod init;
pub mod kmod;
pub mod mode;
pub mod network;
pub mod result;
pub mod rlimit;
pub mod settings;
pub mod text;
pub mod users;

#[cfg(feature = "profile")]
pub use container::ContainerConfig;
pub use container::ContainerPlan;
pub use exec::{exec_candidates, service_environment};
pub use init::*;
pub use mode::Mode;
pub use rlimit::{rlimit_number, RLIMITS, RLIMIT_NAMES};
pub use text::{error_chain, line_col, Chain};

/// The `PATH` every service starts with (unless the configuration sets
/// one), and the directories the builder searches for a service's
/// `argv[0]`, as the init will.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment every service and container starts from, before the
/// configuration's `env` and the service's own (`HOME` becomes the user's
/// home directory from `/etc/passwd` when it has one).
pub const DEFAULT_ENV: &[(&str, &str)] =
    &[("PATH", DEFAULT_PATH), ("HOME", "/root"), ("TERM", "linux")];

/// Where the builder writes the init configuration inside the image.
pub const INIT_CONFIG_PATH: &str = "/etc/mkrootfs/init.json";

/// The init's own directory: its configuration and the filters the builder
/// compiled. Never shifted to a container's owner, hidden from containers
/// that share the VM's root.
pub const INIT_CONFIG_DIR: &str = "/etc/mkrootfs";
