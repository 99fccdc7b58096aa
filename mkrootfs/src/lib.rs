//! mkrootfs: build minimal Linux root filesystems as deterministic cpio
//! initramfs images.
//!
//! The library is the product; the CLI (`src/main.rs`) and TOML profiles are
//! one way in. [`build::build`] turns a [`profile::Profile`] into an image;
//! [`tree::Tree`] is the image being assembled, which Rust code can also fill
//! directly.

pub mod agent;
pub mod build;
pub mod builder;
pub mod compress;
pub mod config_drive;
pub mod container;
pub mod cpio;
pub mod elf;
pub mod extract;
pub mod fsimage;
pub mod kmod;
pub mod list;
pub mod oci;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod tree;
pub mod vmconfig;
pub mod vmlinux;
mod walk;
