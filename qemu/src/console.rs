//! What `mkrootfs run` shows of the guest's console.
//!
//! By default a user wants the init's and the service's lines, and the
//! kernel's errors, not a hundred lines of boot messages; but when the boot
//! fails, every kernel message may matter. The kernel's `quiet` would throw
//! those away in the guest, so the filtering is done here instead: the
//! guest gets `console_msg_format=syslog`, which starts each kernel line
//! with its syslog priority (`<6>[    0.123456] ...`), and [`QuietFilter`]
//! shows exactly the kernel lines `quiet` would let through (console log
//! level 4: priorities 0 to 3, emergency to error) plus every line that is
//! not the kernel's. The captured console keeps everything, for
//! [`strip_levels`] to print in full after a failed boot.

/// The largest `<N>` prefix: facility * 8 + level, facilities up to 23.
const MAX_PREFIX: usize = "<191>[".len();

/// Kernel console lines at this level or above are hidden (`quiet` sets the
/// console log level to 4, and the console prints levels below it).
pub const QUIET_LOGLEVEL: u8 = 4;

/// A byte-stream filter: feed it console output as it arrives, echo what it
/// returns. Lines that are not kernel messages pass at once, byte for byte
/// (a shell prompt without a newline shows up); kernel lines are held until
/// their level is known (the first few bytes), then shown without the `<N>`
/// prefix or dropped.
#[derive(Debug, Default)]
pub struct QuietFilter {
    state: State,
}

#[derive(Debug)]
enum State {
    /// At the start of a line; the bytes that may still be a `<N>[` prefix.
    LineStart(Vec<u8>),
    /// Inside a line that is shown.
    Show,
    /// Inside a kernel line that is hidden.
    Hide,
}

impl Default for State {
    fn default() -> Self {
        State::LineStart(Vec::new())
    }
}

/// What the start of a line says about it.
enum Prefix {
    /// Could still become `<N>[`.
    Undecided,
    /// Not a kernel line.
    Other,
    /// A kernel line of this level (0 emergency … 7 debug); the `[` that
    /// follows the prefix is at `len - 1`.
    Kernel { level: u8, len: usize },
}

fn classify(start: &[u8]) -> Prefix {
    if start.is_empty() {
        return Prefix::Undecided;
    }
    if start[0] != b'<' {
        return Prefix::Other;
    }
    let digits = start[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    let after = 1 + digits;
    match start.get(after) {
        None if after < MAX_PREFIX => Prefix::Undecided,
        Some(b'>') if digits > 0 => match start.get(after + 1) {
            None => Prefix::Undecided,
            Some(b'[') => match std::str::from_utf8(&start[1..after])
                .ok()
                .and_then(|d| d.parse::<u16>().ok())
            {
                Some(prio) if prio <= 191 => Prefix::Kernel {
                    level: (prio & 7) as u8,
                    len: after + 2,
                },
                _ => Prefix::Other,
            },
            Some(_) => Prefix::Other,
        },
        _ => Prefix::Other,
    }
}

impl QuietFilter {
    pub fn new() -> QuietFilter {
        QuietFilter::default()
    }

    /// The part of `bytes` to show, given everything fed before.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            match &mut self.state {
                State::Show => {
                    out.push(b);
                    if b == b'\n' {
                        self.state = State::default();
                    }
                }
                State::Hide => {
                    if b == b'\n' {
                        self.state = State::default();
                    }
                }
                State::LineStart(held) => {
                    held.push(b);
                    match classify(held) {
                        Prefix::Undecided if b != b'\n' => {}
                        Prefix::Undecided | Prefix::Other => {
                            out.append(held);
                            self.state = if b == b'\n' {
                                State::default()
                            } else {
                                State::Show
                            };
                        }
                        Prefix::Kernel { level, len } => {
                            if level < QUIET_LOGLEVEL {
                                // Shown as the kernel's plain format prints it.
                                out.extend_from_slice(&held[len - 1..]);
                                self.state = State::Show;
                            } else {
                                self.state = State::Hide;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// `console` with the `<N>` prefix of each kernel line removed: the log as
/// the kernel's plain console format would have printed it.
pub fn strip_levels(console: &str) -> String {
    let mut out = String::with_capacity(console.len());
    for line in console.split_inclusive('\n') {
        match classify(line.as_bytes()) {
            Prefix::Kernel { len, .. } => out.push_str(&line[len - 1..]),
            _ => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "<5>[    0.000000] Linux version 6.1.0\r\n\
        <6>[    0.000000] Command line: console_msg_format=syslog\r\n\
        <3>[    1.500000] virtio_blk: probe of virtio1 failed\r\n\
        mkrootfs-init: [    2.405] mkrootfs-init 0.1.0 starting\r\n\
        <4>[    2.410000] random: crng init done\r\n\
        Hello from mkrootfs!\r\n\
        <0>[    2.500000] Kernel panic - not syncing\r\n\
        <14>[    2.6] from user space at info\r\n\
        <11>[    2.7] from user space at error\r\n\
        <not a level>\r\n<6>no bracket\r\n# ";

    fn all_at_once(input: &str) -> String {
        String::from_utf8(QuietFilter::new().feed(input.as_bytes())).unwrap()
    }

    const SHOWN: &str = "[    1.500000] virtio_blk: probe of virtio1 failed\r\n\
        mkrootfs-init: [    2.405] mkrootfs-init 0.1.0 starting\r\n\
        Hello from mkrootfs!\r\n\
        [    2.500000] Kernel panic - not syncing\r\n\
        [    2.7] from user space at error\r\n\
        <not a level>\r\n<6>no bracket\r\n# ";

    #[test]
    fn quiet_filter_shows_errors_init_and_service_lines_only() {
        assert_eq!(all_at_once(BOOT), SHOWN);
    }

    #[test]
    fn quiet_filter_gives_the_same_result_fed_byte_by_byte() {
        let mut f = QuietFilter::new();
        let mut out = Vec::new();
        for b in BOOT.as_bytes() {
            out.extend(f.feed(std::slice::from_ref(b)));
        }
        assert_eq!(String::from_utf8(out).unwrap(), SHOWN);
    }

    #[test]
    fn a_prompt_without_newline_is_shown_at_once() {
        let mut f = QuietFilter::new();
        assert_eq!(f.feed(b"<6>[ 1.0] x\n"), b"");
        assert_eq!(f.feed(b"/ # "), b"/ # ");
        assert_eq!(f.feed(b"ls\r\n<"), b"ls\r\n");
        assert_eq!(f.feed(b"x"), b"<x");
    }

    #[test]
    fn strip_levels_keeps_every_line() {
        assert_eq!(
            strip_levels("<6>[ 0.1] a\nservice\n<3>[ 0.2] b\n<x>\n"),
            "[ 0.1] a\nservice\n[ 0.2] b\n<x>\n"
        );
    }
}
