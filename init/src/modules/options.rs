//! Module parameters as modprobe passes them: a module built into the
//! kernel takes `name.param=value` from the kernel command line itself, but
//! a loadable module never sees those; modprobe (kmod) reads `/proc/cmdline`
//! and hands them to `finit_module`. Firecracker announces its virtio-mmio
//! devices that way (`virtio_mmio.device=4K@0xd0000000:5`), and with
//! Debian's kernels `virtio_mmio` is a module.
//!
//! The command line is read as kmod's `kmod_config_parse_kcmdline` reads it
//! (libkmod/libkmod-config.c, kmod 34): `module.param[=value]`, the module
//! name with dashes as underscores; a value may be double-quoted and keeps
//! its quotes (the kernel's own parameter parser removes them); a parameter
//! that is quoted as a whole (`"mod.p=a b"`, as some boot loaders pass it)
//! is re-quoted as `p="a b"`; anything else with a quote, a second dot
//! before the `=`, or an `=` before any dot, is not a module parameter.
//! Options are joined as `kmod_module_get_options` joins them: the
//! configuration's (modprobe.d, here the profile's) first, then the command
//! line's in order, separated by one space.

use mkrootfs_config::kmod::normalize;
use std::collections::BTreeMap;

/// `(module, "param[=value]")` for every module parameter of a kernel
/// command line, in order, module names normalized.
pub fn from_cmdline(line: &str) -> Vec<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Ignore,
        Modname,
        Param,
        Value,
    }
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut state = State::Modname;
    let mut quoted = false;
    // Byte offsets into `line`: the module name, the parameter, its value,
    // and the opening quote of a parameter quoted as a whole.
    let (mut modname, mut modname_end, mut param, mut value) = (0, 0, 0, 0);
    let mut quote_start: Option<usize> = None;
    for i in 0..=b.len() {
        let c = b.get(i).copied().unwrap_or(0);
        let mut complete = false;
        match c {
            b'"' => {
                quoted = !quoted;
                // Only a quote opening the whole parameter is allowed
                // outside the value.
                if quoted && state == State::Modname && i == modname {
                    quote_start = Some(i);
                    modname = i + 1;
                } else if state != State::Value {
                    state = State::Ignore;
                }
            }
            0 | b' ' | b'\n' | b'\t' | 0x0b | 0x0c | b'\r' => {
                if quoted && state == State::Value {
                    // A space inside a quoted value.
                } else if quoted {
                    state = State::Ignore;
                } else if matches!(state, State::Param | State::Value) {
                    complete = true;
                } else {
                    modname = i + 1;
                    state = State::Modname;
                    quote_start = None;
                }
            }
            b'.' => match state {
                State::Modname => {
                    modname_end = i;
                    param = i + 1;
                    state = State::Param;
                }
                State::Param => state = State::Ignore,
                _ => {}
            },
            b'=' => match state {
                State::Param => {
                    value = i + 1;
                    state = State::Value;
                }
                State::Modname => state = State::Ignore,
                _ => {}
            },
            _ => {}
        }
        if complete {
            // Delimiters are ASCII, so these are char boundaries.
            let text = if quote_start.is_some() && state == State::Value {
                // `"mod.p=a b"` → `p="a b"` (the closing quote is kept).
                format!("{}\"{}", &line[param..value], &line[value..i])
            } else {
                line[param..i].to_string()
            };
            out.push((normalize(&line[modname..modname_end]), text));
            modname = i + 1;
            state = State::Modname;
            quote_start = None;
        }
    }
    out
}

/// The parameters to load each module with: `configured` (module name →
/// parameters, from the image) first, then the command line's, joined with
/// single spaces; empty strings are skipped, as kmod does.
pub fn join(
    configured: &BTreeMap<String, String>,
    cmdline: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |module: String, opts: &str| {
        if opts.is_empty() {
            return;
        }
        let s = out.entry(module).or_default();
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(opts);
    };
    for (m, o) in configured {
        add(normalize(m), o);
    }
    for (m, o) in cmdline {
        add(m.clone(), o);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(line: &str) -> Vec<(String, String)> {
        from_cmdline(line)
    }

    fn p(m: &str, o: &str) -> (String, String) {
        (m.to_string(), o.to_string())
    }

    #[test]
    fn firecracker_style_virtio_mmio_devices() {
        assert_eq!(
            pairs("console=ttyS0 reboot=k panic=1 pci=off virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 root=/dev/vda\n"),
            [
                p("virtio_mmio", "device=4K@0xd0000000:5"),
                p("virtio_mmio", "device=4K@0xd0001000:6"),
            ]
        );
    }

    #[test]
    fn dashes_become_underscores_and_flags_have_no_value() {
        assert_eq!(
            pairs("virtio-blk.queue_depth=64 usbcore.nousb i8042.noaux"),
            [
                p("virtio_blk", "queue_depth=64"),
                p("usbcore", "nousb"),
                p("i8042", "noaux"),
            ]
        );
    }

    #[test]
    fn quoted_values_keep_their_quotes_for_the_kernel_parser() {
        assert_eq!(
            pairs("dyndbg.x=1 parport.dyndbg=\"file drivers/parport/ieee1284_ops.c +mpf\" ro"),
            [
                p("dyndbg", "x=1"),
                p(
                    "parport",
                    "dyndbg=\"file drivers/parport/ieee1284_ops.c +mpf\""
                ),
            ]
        );
        // Quoted as a whole by a boot loader: re-quoted around the value.
        assert_eq!(
            pairs("\"parport.dyndbg=file drivers/parport/ieee1284_ops.c +mpf\" quiet"),
            [p(
                "parport",
                "dyndbg=\"file drivers/parport/ieee1284_ops.c +mpf\""
            )]
        );
        // Dots after the `=` belong to the value.
        assert_eq!(pairs("m.v=1.5"), [p("m", "v=1.5")]);
    }

    #[test]
    fn what_is_not_a_module_parameter() {
        assert_eq!(
            pairs(
                "BOOT_IMAGE=/vmlinuz-6.1 root=/dev/vda1.x a.b.c=1 m\"x.p=1 m.p\"=1 \"m.flag\" \"m.p x\" mkrootfs.cmd=\"sh -c 'echo a.b=c'\" plain"
            ),
            // mkrootfs.cmd has the module syntax: the init ignores it (no
            // module of that name), as kmod does.
            [p("mkrootfs", "cmd=\"sh -c 'echo a.b=c'\"")]
        );
        assert_eq!(pairs(""), []);
        assert_eq!(pairs("   \n"), []);
    }

    #[test]
    fn profile_options_come_first_then_the_command_line() {
        let configured = BTreeMap::from([
            ("virtio-blk".to_string(), "queue_depth=64".to_string()),
            ("loop".to_string(), String::new()),
        ]);
        let cmdline =
            from_cmdline("virtio_blk.num_request_queues=2 loop.max_loop=8 virtio_blk.x=\"a b\"");
        let joined = join(&configured, &cmdline);
        assert_eq!(
            joined,
            BTreeMap::from([
                (
                    "virtio_blk".to_string(),
                    "queue_depth=64 num_request_queues=2 x=\"a b\"".to_string()
                ),
                ("loop".to_string(), "max_loop=8".to_string()),
            ])
        );
    }
}
