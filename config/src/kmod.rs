//! Kernel module index files (filled in by the kmod work).
