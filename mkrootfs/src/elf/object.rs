//! What the resolver needs from one ELF file: class and machine,
//! `PT_INTERP`, `DT_NEEDED`, `DT_RPATH`/`DT_RUNPATH`, `DT_SONAME`,
//! `DF_1_NODEFLIB` and the `.note.dlopen` entries; plus `#!` detection.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use goblin::elf::{header, Elf};

use super::ElfError;

/// An ELF file's class and machine: the two things the loader compares
/// before accepting a library (`EI_CLASS`, `e_machine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch {
    /// `ELFCLASS32` (1) or `ELFCLASS64` (2).
    pub class: u8,
    /// `e_machine`, e.g. `EM_X86_64` (62).
    pub machine: u16,
}

impl Arch {
    /// x86-64 (ELF64).
    pub const X86_64: Arch = Arch {
        class: header::ELFCLASS64,
        machine: header::EM_X86_64,
    };
    /// i386 (ELF32).
    pub const I386: Arch = Arch {
        class: header::ELFCLASS32,
        machine: header::EM_386,
    };
    /// AArch64 (ELF64).
    pub const AARCH64: Arch = Arch {
        class: header::ELFCLASS64,
        machine: header::EM_AARCH64,
    };

    /// The Debian multiarch triplet (`x86_64-linux-gnu`), when known.
    pub fn multiarch_triplet(&self) -> Option<&'static str> {
        Some(match (self.machine, self.class) {
            (header::EM_X86_64, header::ELFCLASS64) => "x86_64-linux-gnu",
            (header::EM_X86_64, header::ELFCLASS32) => "x86_64-linux-gnux32",
            (header::EM_386, _) => "i386-linux-gnu",
            (header::EM_AARCH64, _) => "aarch64-linux-gnu",
            (header::EM_ARM, _) => "arm-linux-gnueabihf",
            (header::EM_RISCV, header::ELFCLASS64) => "riscv64-linux-gnu",
            (header::EM_PPC64, _) => "powerpc64le-linux-gnu",
            (header::EM_S390, header::ELFCLASS64) => "s390x-linux-gnu",
            (EM_LOONGARCH, header::ELFCLASS64) => "loongarch64-linux-gnu",
            _ => return None,
        })
    }

    /// What the kernel passes as `AT_PLATFORM` for the baseline CPU, which
    /// `$PLATFORM` expands to. (glibc may substitute a CPU-specific name such
    /// as `haswell` at run time; an image cannot know its CPU, so the
    /// baseline is used.)
    pub fn platform(&self) -> &'static str {
        match (self.machine, self.class) {
            (header::EM_X86_64, _) => "x86_64",
            (header::EM_386, _) => "i686",
            (header::EM_AARCH64, _) => "aarch64",
            (header::EM_ARM, _) => "v7l",
            (header::EM_RISCV, _) => "riscv64",
            (header::EM_PPC64, _) => "power8",
            (header::EM_S390, _) => "z900",
            _ => "unknown",
        }
    }

    /// The arch of the machine running this code.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "x86") {
            Some(Arch::I386)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::AARCH64)
        } else {
            None
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let machine = match self.machine {
            header::EM_X86_64 => "x86-64".to_string(),
            header::EM_386 => "i386".to_string(),
            header::EM_AARCH64 => "AArch64".to_string(),
            header::EM_ARM => "ARM".to_string(),
            header::EM_RISCV => "RISC-V".to_string(),
            header::EM_PPC64 => "PowerPC64".to_string(),
            header::EM_PPC => "PowerPC".to_string(),
            header::EM_S390 => "S/390".to_string(),
            header::EM_MIPS => "MIPS".to_string(),
            EM_LOONGARCH => "LoongArch".to_string(),
            other => format!("machine {other}"),
        };
        let class = match self.class {
            header::ELFCLASS32 => "ELF32".to_string(),
            header::ELFCLASS64 => "ELF64".to_string(),
            other => format!("ELF class {other}"),
        };
        write!(f, "{machine} ({class})")
    }
}

/// The arch in an ELF identification, or `None` when `head` does not start
/// with the ELF magic. `head` needs the first 20 bytes.
pub(crate) fn arch_of(head: &[u8]) -> Option<Arch> {
    if head.len() < 20 || &head[..4] != header::ELFMAG {
        return None;
    }
    let raw = [head[18], head[19]];
    let machine = match head[header::EI_DATA] {
        header::ELFDATA2MSB => u16::from_be_bytes(raw),
        _ => u16::from_le_bytes(raw),
    };
    Some(Arch {
        class: head[header::EI_CLASS],
        machine,
    })
}

/// Reads just enough of `host` to tell its arch; `Ok(None)` for a non-ELF.
pub(crate) fn probe_arch(host: &Path) -> io::Result<Option<Arch>> {
    let mut head = Vec::with_capacity(20);
    std::fs::File::open(host)?.take(20).read_to_end(&mut head)?;
    Ok(arch_of(&head))
}

/// One entry of a `.note.dlopen` note: alternatives, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct DlopenEntry {
    pub soname: Vec<String>,
    /// "required", "recommended" or "suggested"; the spec's default is
    /// "recommended".
    #[serde(default)]
    pub priority: Option<String>,
}

impl DlopenEntry {
    pub fn required(&self) -> bool {
        self.priority.as_deref() == Some("required")
    }
}

/// `e_machine` of LoongArch, which goblin does not name.
const EM_LOONGARCH: u16 = 258;
/// `.note.dlopen` note type (systemd's ELF dlopen metadata).
const NT_FDO_DLOPEN: u32 = 0x407c_0c0a;
const DF_1_NODEFLIB: u64 = 0x800;

/// The parts of one ELF object the search needs.
#[derive(Debug, Clone)]
pub(crate) struct ElfObject {
    pub arch: Arch,
    pub interp: Option<String>,
    pub needed: Vec<String>,
    /// `DT_RPATH` entries, empty when there is a `DT_RUNPATH` (glibc then
    /// ignores `DT_RPATH`).
    pub rpath: Vec<String>,
    pub runpath: Option<Vec<String>>,
    pub soname: Option<String>,
    /// `DF_1_NODEFLIB`: skip ld.so.cache and the default directories.
    pub nodeflib: bool,
    /// The `.note.dlopen` entries, or why they could not be read (an
    /// error only when notes are asked for).
    pub dlopen: Result<Vec<DlopenEntry>, String>,
}

impl ElfObject {
    /// Parses the ELF at `host` (named `shown` in errors, its path inside the
    /// sysroot). Non-ELF files are [`ElfError::NotElf`].
    pub fn read(host: &Path, shown: &Path) -> Result<ElfObject, ElfError> {
        let bytes = std::fs::read(host).map_err(|source| ElfError::Read {
            path: shown.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, shown)
    }

    /// Parses ELF bytes; `shown` names the file in errors. Never panics on
    /// malformed input (fuzzed through [`super::fuzz`]).
    pub fn parse(bytes: &[u8], shown: &Path) -> Result<ElfObject, ElfError> {
        if arch_of(bytes).is_none() {
            let script = parse_shebang(bytes);
            return Err(ElfError::NotElf {
                path: shown.to_path_buf(),
                script_interpreter: script,
            });
        }
        let elf = Elf::parse(bytes).map_err(|source| ElfError::Parse {
            path: shown.to_path_buf(),
            source,
        })?;
        let arch = Arch {
            class: if elf.is_64 {
                header::ELFCLASS64
            } else {
                header::ELFCLASS32
            },
            machine: elf.header.e_machine,
        };
        let split = |entries: &[&str]| -> Vec<String> {
            entries
                .iter()
                .flat_map(|e| e.split(':'))
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect()
        };
        let runpath = (!elf.runpaths.is_empty()).then(|| split(&elf.runpaths));
        let rpath = if runpath.is_some() {
            Vec::new()
        } else {
            split(&elf.rpaths)
        };
        let nodeflib = elf
            .dynamic
            .as_ref()
            .is_some_and(|d| d.info.flags_1 & DF_1_NODEFLIB != 0);
        Ok(ElfObject {
            arch,
            interp: elf.interpreter.map(str::to_string),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            rpath,
            runpath,
            soname: elf.soname.map(str::to_string),
            nodeflib,
            dlopen: dlopen_entries(&elf, bytes),
        })
    }
}

/// Every `.note.dlopen` entry, from the section (or, for files without
/// section headers, the `PT_NOTE` segments).
fn dlopen_entries(elf: &Elf<'_>, bytes: &[u8]) -> Result<Vec<DlopenEntry>, String> {
    let notes = elf
        .iter_note_sections(bytes, Some(".note.dlopen"))
        .or_else(|| elf.iter_note_headers(bytes));
    let Some(notes) = notes else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for note in notes {
        // goblin's iterator does not advance past a malformed note (it
        // would yield the same error forever), so reading notes stops there;
        // damaged notes must not stop the closure either.
        let Ok(note) = note else { break };
        if note.n_type != NT_FDO_DLOPEN || note.name.trim_end_matches('\0') != "FDO" {
            continue;
        }
        let end = note
            .desc
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(note.desc.len());
        let entries: Vec<DlopenEntry> =
            serde_json::from_slice(&note.desc[..end]).map_err(|e| e.to_string())?;
        out.extend(entries);
    }
    Ok(out)
}

/// The interpreter of a `#!` script: `"#!/bin/sh -e"` gives `Some("/bin/sh")`.
/// `Ok(None)` for anything that is not a `#!` script (including ELF files).
pub fn script_interpreter(path_on_host: &Path) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(256);
    // The kernel reads at most BINPRM_BUF_SIZE (256) bytes of the `#!` line.
    std::fs::File::open(path_on_host)?
        .take(256)
        .read_to_end(&mut head)?;
    Ok(parse_shebang(&head))
}

fn parse_shebang(bytes: &[u8]) -> Option<String> {
    parse_shebang_line(bytes).map(|(interp, _)| interp)
}

/// The `#!` line of the script at `path_on_host`: the interpreter and the
/// rest of the line (the kernel passes it as one argument), if any.
pub fn script_shebang(path_on_host: &Path) -> io::Result<Option<(String, Option<String>)>> {
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(path_on_host)?
        .take(256)
        .read_to_end(&mut head)?;
    Ok(parse_shebang_line(&head))
}

fn parse_shebang_line(bytes: &[u8]) -> Option<(String, Option<String>)> {
    let rest = bytes.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    let line = String::from_utf8_lossy(line);
    let line = line.trim_matches([' ', '\t', '\r']);
    let (interp, arg) = match line.split_once([' ', '\t']) {
        Some((interp, arg)) => (interp, Some(arg.trim_matches([' ', '\t']).to_string())),
        None => (line, None),
    };
    (!interp.is_empty()).then(|| (interp.to_string(), arg.filter(|a| !a.is_empty())))
}

/// The program a `#!/usr/bin/env ARG` line runs: `ARG` (after `-S` and
/// `NAME=VALUE` assignments), or `None` when the line is not `env`'s or
/// names no program (`env -i`: an option this cannot follow).
pub fn env_program(interp: &str, arg: Option<&str>) -> Option<String> {
    if interp.rsplit('/').next() != Some("env") {
        return None;
    }
    let mut words = arg?.split_whitespace().peekable();
    if words.peek() == Some(&"-S") {
        words.next();
    } else if let Some(rest) = words.peek().and_then(|w| w.strip_prefix("-S")) {
        let rest = rest.to_string();
        words.next();
        if !rest.is_empty() {
            return (!rest.contains('=')).then_some(rest);
        }
    }
    words
        .find(|w| !w.contains('='))
        .filter(|w| !w.starts_with('-'))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21: a `#!/usr/bin/env bash` script brought `env` but not
    /// `bash`. What env runs is found from the line.
    #[test]
    fn env_shebang_names_its_program() {
        let line = |b: &[u8]| parse_shebang_line(b);
        assert_eq!(
            line(b"#!/usr/bin/env bash\n"),
            Some(("/usr/bin/env".into(), Some("bash".into())))
        );
        assert_eq!(
            line(b"#!/bin/sh -e \r\n"),
            Some(("/bin/sh".into(), Some("-e".into())))
        );
        assert_eq!(line(b"#!/bin/sh\n"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            env_program("/usr/bin/env", Some("bash")).as_deref(),
            Some("bash")
        );
        assert_eq!(
            env_program("/usr/bin/env", Some("-S python3 -u")).as_deref(),
            Some("python3")
        );
        assert_eq!(
            env_program("/usr/bin/env", Some("-Sperl")).as_deref(),
            Some("perl")
        );
        assert_eq!(
            env_program("/bin/env", Some("LC_ALL=C awk -f")).as_deref(),
            Some("awk")
        );
        assert_eq!(env_program("/usr/bin/env", Some("-i bash")), None);
        assert_eq!(env_program("/usr/bin/env", None), None);
        assert_eq!(env_program("/bin/sh", Some("bash")), None);
    }

    #[test]
    fn shebang_takes_the_first_word() {
        assert_eq!(
            parse_shebang(b"#!/bin/sh -e\necho hi\n").as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(
            parse_shebang(b"#! \t/usr/bin/env python3\n").as_deref(),
            Some("/usr/bin/env")
        );
        assert_eq!(parse_shebang(b"#!/bin/bash").as_deref(), Some("/bin/bash"));
        assert_eq!(parse_shebang(b"#!\n"), None);
        assert_eq!(parse_shebang(b"\x7fELF"), None);
    }

    #[test]
    fn arch_display_and_probe() {
        assert_eq!(Arch::X86_64.to_string(), "x86-64 (ELF64)");
        assert_eq!(Arch::I386.to_string(), "i386 (ELF32)");
        assert_eq!(
            Arch {
                class: 7,
                machine: 999
            }
            .to_string(),
            "machine 999 (ELF class 7)"
        );
        let mut head = *b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0";
        assert_eq!(arch_of(&head), Some(Arch::X86_64));
        head[5] = 2; // big endian: e_machine bytes swap meaning
        assert_eq!(
            arch_of(&head),
            Some(Arch {
                class: 2,
                machine: 0x3e00
            })
        );
        assert_eq!(arch_of(&head[..19]), None);
        assert_eq!(arch_of(b"#!/bin/sh\n.................."), None);
    }

    #[test]
    fn dlopen_priority_defaults_to_recommended() {
        let e: Vec<DlopenEntry> =
            serde_json::from_str(r#"[{"soname":["libz.so.1"],"feature":"z","priority":"required"},{"soname":["a","b"]}]"#).unwrap();
        assert!(e[0].required());
        assert!(!e[1].required());
        assert_eq!(e[1].soname, vec!["a".to_string(), "b".to_string()]);
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// A flipped bit in `e_phoff` made goblin yield the same note error
    /// forever, and the note loop spun on it.
    #[test]
    fn damaged_program_header_offset_does_not_loop_forever() {
        let Ok(mut bytes) = std::fs::read("/usr/bin/true") else {
            eprintln!("skipped: no /usr/bin/true");
            return;
        };
        bytes[33] ^= 1; // e_phoff += 256
        let _ = ElfObject::parse(&bytes, Path::new("/usr/bin/true"));
    }

    /// Truncations and byte flips of a real executable are errors or
    /// results, never panics or hangs (the resolver reads untrusted files).
    #[test]
    fn damaged_copies_of_a_real_elf_neither_panic_nor_hang() {
        let Ok(good) = std::fs::read("/usr/bin/true") else {
            eprintln!("skipped: no /usr/bin/true");
            return;
        };
        let shown = Path::new("/usr/bin/true");
        let parsed = ElfObject::parse(&good, shown).unwrap();
        assert_eq!(parsed.arch, Arch::host().unwrap());
        assert_eq!(parsed.needed, vec!["libc.so.6".to_string()]);
        let mut lens: Vec<usize> = (0..=256).collect();
        lens.extend((0..good.len()).step_by(97));
        for len in lens {
            let _ = ElfObject::parse(&good[..len.min(good.len())], shown);
        }
        for at in (0..good.len().min(8192)).step_by(3) {
            for flip in [0xff_u8, 0x80, 0x01] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let _ = ElfObject::parse(&bad, shown);
            }
        }
    }
}
