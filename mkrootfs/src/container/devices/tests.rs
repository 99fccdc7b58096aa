use super::*;
use DeviceKind::{All, Block, Char};

fn rule(
    allow: bool,
    kind: DeviceKind,
    major: Option<u32>,
    minor: Option<u32>,
    access: &str,
) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: Access::parse(access).unwrap(),
    }
}

/// The rules read directly: the last that matches decides, else deny.
fn reference(rules: &[DeviceRule], kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
    let req = DeviceRule {
        allow: true,
        kind,
        major: Some(major),
        minor: Some(minor),
        access: Access(access),
    };
    rules
        .iter()
        .rev()
        .find(|r| r.covers(&req))
        .is_some_and(|r| r.allow)
}

/// Runs `prog` as the kernel would for one device check, with just the
/// instructions `compile` emits; panics on anything else, on a
/// backward jump and on running off the end (the verifier's refusals).
fn run(prog: &[u8], kind: DeviceKind, major: u32, minor: u32, access: u8) -> u64 {
    const CTX: u64 = 0x1000;
    let t = match kind {
        Block => 1u32,
        Char => 2,
        All => panic!("a request has a type"),
    };
    let mut ctx = Vec::new();
    for v in [u32::from(access) << 16 | t, major, minor] {
        ctx.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(prog.len() % 8, 0);
    let mut r = [0u64; 11];
    r[1] = CTX;
    let mut pc = 0usize;
    loop {
        let i = &prog[pc * 8..pc * 8 + 8];
        let (code, dst, src) = (i[0], usize::from(i[1] & 0xf), usize::from(i[1] >> 4));
        let off = i16::from_le_bytes([i[2], i[3]]);
        let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]);
        pc += 1;
        let jump = |taken: bool, pc: &mut usize| {
            assert!(off >= 0, "backward jump");
            if taken {
                *pc += off as usize;
            }
        };
        match code {
            op::LDXW => {
                let at = (r[src] - CTX) as usize + off as usize;
                assert!(at + 4 <= ctx.len(), "load outside the context");
                r[dst] = u64::from(u32::from_le_bytes(ctx[at..at + 4].try_into().unwrap()));
            }
            op::AND32_IMM => r[dst] = u64::from(r[dst] as u32 & imm as u32),
            op::RSH32_IMM => r[dst] = u64::from((r[dst] as u32) >> imm),
            op::MOV32_REG => r[dst] = u64::from(r[src] as u32),
            op::MOV32_IMM => r[dst] = u64::from(imm as u32),
            // The immediate is sign-extended to 64 bits.
            op::JNE_IMM => jump(r[dst] != imm as i64 as u64, &mut pc),
            op::JNE_REG => jump(r[dst] != r[src], &mut pc),
            op::EXIT => return r[0],
            c => panic!("opcode {c:#x} at {}", pc - 1),
        }
        assert!(pc * 8 < prog.len(), "ran off the end");
    }
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn golden_bytes_of_a_small_policy() {
    let rules = [
        rule(false, All, None, None, "rwm"),
        rule(true, Char, Some(1), Some(3), "rwm"),
        rule(true, Char, None, None, "m"),
        rule(true, Char, Some(136), None, "wr"),
    ];
    let want = hex(
        "6112000000000000 54020000ffff0000 6113000000000000 7403000010000000
         6114040000000000 6115080000000000
         5502060002000000 bc31000000000000 5401000006000000 5d31030000000000
         5504020088000000 b400000001000000 9500000000000000
         5502050002000000 bc31000000000000 5401000001000000 5d31020000000000
         b400000001000000 9500000000000000
         5502040002000000 5504030001000000 5505020003000000 b400000001000000
         9500000000000000
         b400000000000000 9500000000000000",
    );
    // r2 = type, r3 = access, r4 = major, r5 = minor; then c 136:* rw,
    // c *:* m and c 1:3 rwm, last rule first; then deny.
    assert_eq!(compile(&rules), want);
    // Nothing allowed, and everything allowed.
    assert_eq!(compile(&[]), hex("6112000000000000 54020000ffff0000 6113000000000000 7403000010000000 6114040000000000 6115080000000000 b400000000000000 9500000000000000"));
    let all = compile(&[
        rule(false, Block, Some(8), Some(0), "rwm"),
        rule(true, All, None, None, "rwm"),
    ]);
    assert_eq!(
        all[all.len() - 16..],
        hex("b400000001000000 9500000000000000")
    );
    assert_eq!(all.len(), 8 * 8);
}

/// The program the init's test loads into a real kernel: regenerate
/// with `MKROOTFS_BLESS=1` after a deliberate change.
#[test]
fn golden_bytes_of_docker_policy() {
    let got = compile(&docker_default_rules());
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../init/src/sys/testdata/docker-devices.bpf");
    if std::env::var_os("MKROOTFS_BLESS").is_some() {
        std::fs::write(&fixture, &got).unwrap();
    }
    let want = std::fs::read(&fixture).expect("init/src/sys/testdata/docker-devices.bpf");
    assert_eq!(got, want, "program bytes changed");
    assert_eq!(got.len() / 8, 69, "instructions");
}

#[test]
fn docker_policy_keeps_the_rules_that_decide() {
    let (kept, default) = reduce(&docker_default_rules());
    assert!(!default);
    let kept: Vec<String> = kept.iter().map(ToString::to_string).collect();
    assert_eq!(
        kept,
        [
            "allow c 5:1 rwm",
            "allow c *:* m",
            "allow b *:* m",
            "allow c 1:3 rwm",
            "allow c 1:8 rwm",
            "allow c 1:7 rwm",
            "allow c 5:0 rwm",
            "allow c 1:5 rwm",
            "allow c 1:9 rwm",
            "allow c 136:* rwm",
            "allow c 5:2 rwm",
            "allow c 10:200 rwm",
        ]
    );
}

#[test]
fn docker_policy_decides_like_docker() {
    let prog = compile(&docker_default_rules());
    let (r, w, m) = (2, 4, 1);
    #[rustfmt::skip]
    let table = [
        (Char, 1, 3, r | w, true),     // /dev/null
        (Char, 1, 3, m, true),
        (Char, 1, 7, w, true),         // full
        (Char, 1, 9, r, true),         // urandom
        (Char, 5, 1, r | w, true),     // console (moby's rule)
        (Char, 5, 2, r | w, true),     // ptmx
        (Char, 136, 5, r | w, true),   // /dev/pts/5
        (Char, 10, 200, r | w, true),  // tun
        (Char, 4, 0, m, true),         // mknod of anything ...
        (Block, 8, 0, m, true),
        (Block, 253, 0, r, false),     // ... but no opening the VM's disk
        (Block, 8, 0, r | w, false),
        (Block, 7, 0, r, false),       // loop
        (Char, 4, 0, w, false),        // tty0
        (Char, 1, 1, r, false),        // /dev/mem
        (Char, 1, 11, r, false),       // kmsg
        (Char, 10, 229, r | w, false), // fuse
        (Char, 136, 5, m | r, true),
        (Char, 5, 3, r, false),
        (Char, 1, 3, 0, true),         // access(2): no bit asked
    ];
    for (kind, major, minor, access, want) in table {
        let got = run(&prog, kind, major, minor, access);
        assert_eq!(
            got,
            u64::from(want),
            "{kind:?} {major}:{minor} access {access}"
        );
        assert_eq!(
            reference(&docker_default_rules(), kind, major, minor, access),
            want
        );
    }
}

/// Random policies over a few devices decide every request the way the
/// rules read directly do, whatever `reduce` dropped.
#[test]
fn compiled_programs_decide_like_the_rules() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let kinds = [Char, Block, All];
    let numbers = [None, Some(1), Some(5)];
    for _ in 0..3000 {
        let rules: Vec<DeviceRule> = (0..next(7))
            .map(|_| DeviceRule {
                allow: next(2) == 1,
                kind: kinds[next(3) as usize],
                major: numbers[next(3) as usize],
                minor: numbers[next(3) as usize],
                access: Access(next(8) as u8),
            })
            .collect();
        let prog = compile(&rules);
        for kind in [Char, Block] {
            for major in [1, 5, 9] {
                for minor in [1, 5, 9] {
                    for access in 0..8 {
                        assert_eq!(
                            run(&prog, kind, major, minor, access) == 1,
                            reference(&rules, kind, major, minor, access),
                            "{kind:?} {major}:{minor} access {access} under {rules:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn large_numbers_never_match() {
    let prog = compile(&[rule(true, Char, Some(u32::MAX), Some(0x8000_0000), "rwm")]);
    assert_eq!(run(&prog, Char, u32::MAX, 0x8000_0000, 2), 0);
}

#[test]
fn access_strings() {
    assert_eq!(Access::parse("mwr"), Some(Access::RWM));
    assert_eq!(Access::parse("rw"), Some(Access::RW));
    assert_eq!(Access::parse(""), Some(Access(0)));
    assert_eq!(Access::parse("rx"), None);
    assert_eq!(Access::parse("wm").unwrap().to_string(), "wm");
    assert_eq!(
        rule(false, All, None, None, "rwm").to_string(),
        "deny a *:* rwm"
    );
}
