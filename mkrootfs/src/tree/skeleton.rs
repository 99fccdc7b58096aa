//! The default FHS skeleton every image starts from.

use super::{Meta, Node, Tree, TreeError};
use std::fs;

impl Tree {
    /// The default FHS skeleton: directories, `/dev/console` and `/dev/null`,
    /// and the sysroot's merged-/usr symlinks (`/bin -> usr/bin`, …).
    pub fn add_skeleton(&mut self) -> Result<(), TreeError> {
        const ORIGIN: &str = "skeleton";
        // Only the directories the skeleton creates; others (lib64, lib32)
        // come with the first path that goes through them.
        for top in ["bin", "sbin", "lib"] {
            let host = self.sysroot.join(top);
            if let Ok(target) = fs::read_link(&host) {
                self.add_symlink(&format!("/{top}"), &target.to_string_lossy(), ORIGIN)?;
            }
        }
        for (dir, perm) in [
            ("/bin", 0o755),
            ("/sbin", 0o755),
            ("/etc", 0o755),
            ("/lib", 0o755),
            ("/usr", 0o755),
            ("/usr/bin", 0o755),
            ("/usr/sbin", 0o755),
            ("/usr/lib", 0o755),
            ("/dev", 0o755),
            ("/proc", 0o555),
            ("/sys", 0o555),
            ("/run", 0o755),
            ("/tmp", 0o1777),
            ("/root", 0o700),
        ] {
            self.add_dir(dir, Meta::root(perm), ORIGIN)?;
        }
        self.add("/dev/console", Node::Char(5, 1), Meta::root(0o600), ORIGIN)?;
        self.add("/dev/null", Node::Char(1, 3), Meta::root(0o666), ORIGIN)?;
        Ok(())
    }
}
