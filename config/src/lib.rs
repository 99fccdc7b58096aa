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

pub mod container;
pub mod init;
pub mod kmod;
pub mod mode;

pub use container::{ContainerConfig, ContainerPlan};
pub use init::*;
pub use mode::Mode;

/// Where the builder writes the init configuration inside the image.
pub const INIT_CONFIG_PATH: &str = "/etc/mkrootfs/init.json";
