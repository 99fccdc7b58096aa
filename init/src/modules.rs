//! Kernel module loading and coldplug (placeholder by the init-core engineer;
//! the modules engineer owns this file and replaces it).

/// The modules loaded at boot.
#[allow(dead_code)] // placeholder until the modules engineer's version lands
pub struct Loaded {
    pub names: Vec<String>,
}

/// Loads the configured modules and coldplugs devices. Never fatal.
pub fn load(cfg: &mkrootfs_config::InitConfig) -> Loaded {
    if !cfg.modules.is_empty() {
        crate::warn!(
            "module loading is not implemented yet: {} module(s) skipped",
            cfg.modules.len()
        );
    }
    Loaded { names: Vec::new() }
}
