//! Fuzzes the ELF reader behind the dependency resolver (program headers,
//! dynamic section, notes) and the ld.so.cache parser with untrusted bytes:
//! they must return, never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mkrootfs::elf::fuzz::elf_object(data);
    let _ = mkrootfs::elf::fuzz::ld_so_cache(data);
});
