//! Resource-limit names: the one table the profile's `rlimits` (of `[init]`
//! and of a container) and the init's setrlimit(2) calls share.

/// Every limit by name, with its resource number (x86_64 and every other
/// Linux architecture but alpha, mips, sparc), in resource order.
pub const RLIMITS: &[(&str, u32)] = &[
    ("cpu", 0),
    ("fsize", 1),
    ("data", 2),
    ("stack", 3),
    ("core", 4),
    ("rss", 5),
    ("nproc", 6),
    ("nofile", 7),
    ("memlock", 8),
    ("as", 9),
    ("locks", 10),
    ("sigpending", 11),
    ("msgqueue", 12),
    ("nice", 13),
    ("rtprio", 14),
    ("rttime", 15),
];

/// The names of [`RLIMITS`], for messages.
pub const RLIMIT_NAMES: [&str; RLIMITS.len()] = {
    let mut names = [""; RLIMITS.len()];
    let mut i = 0;
    while i < RLIMITS.len() {
        names[i] = RLIMITS[i].0;
        i += 1;
    }
    names
};

/// The resource number of a limit's name.
pub fn rlimit_number(name: &str) -> Option<u32> {
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_resource_order() {
        for (i, (name, r)) in RLIMITS.iter().enumerate() {
            assert_eq!(*r as usize, i, "{name}");
            assert_eq!(rlimit_number(name), Some(*r));
        }
        assert_eq!(rlimit_number("bogus"), None);
        assert_eq!(RLIMIT_NAMES[7], "nofile");
    }
}
