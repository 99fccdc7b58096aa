//! Fuzzes the initramfs reader with untrusted bytes: it must return Ok or
//! Err within tight limits, never panic or allocate without bound. When it
//! succeeds, the entries must survive a write/read round trip unchanged,
//! and the listings must render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkrootfs::cpio::{read_archive, write_archive, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_total: 1 << 20,
        max_name: 256,
        max_entries: 1000,
    };
    let Ok(segments) = read_archive(data, &limits) else {
        return;
    };
    let _ = mkrootfs::list::format_long(&segments);
    let _ = mkrootfs::list::to_json(&segments);
    for seg in &segments {
        // The writer leaves out "." and refuses names it cannot write
        // (empty, absolute): compare only what it writes.
        let kept: Vec<_> = seg.entries.iter().filter(|e| e.name != ".").cloned().collect();
        let mut bytes = Vec::new();
        if write_archive(&mut bytes, &kept).is_err() {
            continue;
        }
        let again = read_archive(&bytes, &limits).expect("re-reading our own archive");
        let entries: Vec<_> = again.into_iter().flat_map(|s| s.entries).collect();
        assert_eq!(entries, kept, "write/read round trip changed the entries");
    }
});
