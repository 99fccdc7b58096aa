//! The RESULT line (docs/ARCHITECTURE.md, "The result protocol"): the
//! init writes it on the console at the machine's end, the host
//! (`mkrootfs-qemu`) reads it back. One type for both directions, so the
//! two cannot drift apart:
//!
//! `mkrootfs-init: RESULT status=<code> exited=<n>|signal=<NAME>
//! [boot_ms=<ms>] [service_ms=<ms>] [oom_kill=… pids_max_hits=…
//! memory_peak=… cpu_usec=… [memory_max=…] [pids_max=…]]`

use std::fmt;

/// What starts the line, after any other text on the console line (kernel
/// messages interleave with the init's output).
pub const MARKER: &str = "mkrootfs-init: RESULT ";

/// What the init reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    /// Shell-style: the exit code, or 128 + signal number.
    pub code: i32,
    /// The signal name when the service was killed (`signal=SIGKILL`).
    pub signal: Option<String>,
    pub boot_ms: Option<u64>,
    pub service_ms: Option<u64>,
    /// A containerised main service's cgroup counters and limits; `None`
    /// for a plain service.
    pub container: Option<ContainerCounters>,
}

/// What the init read from the main container's cgroup when it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerCounters {
    /// Processes killed by the OOM killer (`memory.events` `oom_kill`).
    pub oom_kill: u64,
    /// Forks refused at `pids.max` (`pids.events` `max`).
    pub pids_max_hits: u64,
    /// `memory.peak` in bytes.
    pub memory_peak: u64,
    /// CPU time used (`cpu.stat` `usage_usec`).
    pub cpu_usec: u64,
    /// The container's memory.max, when it had one.
    pub memory_max: Option<u64>,
    /// The container's pids.max, when it had one.
    pub pids_max: Option<u64>,
}

impl fmt::Display for ContainerCounters {
    /// `oom_kill=… pids_max_hits=… memory_peak=… cpu_usec=…` and the limits
    /// that were set, as on the RESULT line and the init's log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "oom_kill={} pids_max_hits={} memory_peak={} cpu_usec={}",
            self.oom_kill, self.pids_max_hits, self.memory_peak, self.cpu_usec
        )?;
        if let Some(m) = self.memory_max {
            write!(f, " memory_max={m}")?;
        }
        if let Some(p) = self.pids_max {
            write!(f, " pids_max={p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ResultLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MARKER}status={} ", self.code)?;
        match &self.signal {
            Some(s) => write!(f, "signal={s}")?,
            None => write!(f, "exited={}", self.code)?,
        }
        if let Some(ms) = self.boot_ms {
            write!(f, " boot_ms={ms}")?;
        }
        if let Some(ms) = self.service_ms {
            write!(f, " service_ms={ms}")?;
        }
        if let Some(c) = &self.container {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}

/// Bytes in the largest exact unit: `64M`, `1536K`, `100`.
fn size(n: u64) -> String {
    for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

impl ResultLine {
    /// The last well-formed RESULT line in `console`. A line whose
    /// `status=` is missing or not a number is not a result; unknown fields
    /// are ignored (a newer init may add some).
    pub fn last_in(console: &str) -> Option<ResultLine> {
        console.lines().rev().find_map(ResultLine::parse)
    }

    /// The RESULT line in one console line (after its marker), if any.
    pub fn parse(line: &str) -> Option<ResultLine> {
        let at = line.find(MARKER)?;
        let mut result = ResultLine {
            code: 0,
            signal: None,
            boot_ms: None,
            service_ms: None,
            container: None,
        };
        let mut code = None;
        let mut c = ContainerCounters::default();
        let mut any = false;
        for field in line[at + MARKER.len()..].split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let number = || value.parse::<u64>().ok();
            match key {
                "status" => code = Some(value.parse().ok()?),
                "signal" => result.signal = Some(value.to_string()),
                "boot_ms" => result.boot_ms = number(),
                "service_ms" => result.service_ms = number(),
                "oom_kill" | "pids_max_hits" | "memory_peak" | "cpu_usec" | "memory_max"
                | "pids_max" => {
                    let Some(n) = number() else { continue };
                    any = true;
                    match key {
                        "oom_kill" => c.oom_kill = n,
                        "pids_max_hits" => c.pids_max_hits = n,
                        "memory_peak" => c.memory_peak = n,
                        "cpu_usec" => c.cpu_usec = n,
                        "memory_max" => c.memory_max = Some(n),
                        _ => c.pids_max = Some(n),
                    }
                }
                _ => {}
            }
        }
        if any {
            result.container = Some(c);
        }
        result.code = code?;
        Some(result)
    }

    /// Why a containerised main service ended, in words, when its counters
    /// say more than its status: `killed by the OOM killer at
    /// memory_max=64M`, `hit pids_max=20 (12 forks refused)`.
    pub fn container_reason(&self) -> Option<String> {
        let c = self.container.as_ref()?;
        let mut why = Vec::new();
        if c.oom_kill > 0 {
            why.push(match c.memory_max {
                Some(m) => format!("killed by the OOM killer at memory_max={}", size(m)),
                None => "killed by the OOM killer".to_string(),
            });
        }
        if c.pids_max_hits > 0 {
            let n = c.pids_max_hits;
            let forks = if n == 1 { "fork" } else { "forks" };
            why.push(match c.pids_max {
                Some(p) => format!("hit pids_max={p} ({n} {forks} refused)"),
                None => format!("hit pids.max ({n} {forks} refused)"),
            });
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(code: i32, signal: Option<&str>) -> ResultLine {
        ResultLine {
            code,
            signal: signal.map(str::to_string),
            boot_ms: Some(1234),
            service_ms: Some(56),
            container: None,
        }
    }

    #[test]
    fn written_lines_read_back_the_same() {
        let counters = ContainerCounters {
            oom_kill: 1,
            pids_max_hits: 2,
            memory_peak: 67108864,
            cpu_usec: 5,
            memory_max: Some(67108864),
            pids_max: None,
        };
        let cases = [
            line(3, None),
            line(137, Some("SIGKILL")),
            ResultLine {
                container: Some(counters.clone()),
                ..line(137, Some("SIGKILL"))
            },
            ResultLine {
                container: Some(ContainerCounters {
                    pids_max: Some(20),
                    memory_max: None,
                    ..counters
                }),
                boot_ms: None,
                service_ms: None,
                ..line(0, None)
            },
        ];
        for r in cases {
            let text = r.to_string();
            assert_eq!(ResultLine::parse(&text), Some(r.clone()), "{text}");
            assert_eq!(ResultLine::last_in(&format!("x\n{text}\r\n")), Some(r));
        }
    }

    #[test]
    fn the_documented_format() {
        assert_eq!(
            line(3, None).to_string(),
            "mkrootfs-init: RESULT status=3 exited=3 boot_ms=1234 service_ms=56"
        );
        assert_eq!(
            ResultLine {
                container: Some(ContainerCounters {
                    oom_kill: 1,
                    pids_max_hits: 2,
                    memory_peak: 3,
                    cpu_usec: 4,
                    memory_max: Some(5),
                    pids_max: Some(6),
                }),
                ..line(137, Some("SIGKILL"))
            }
            .to_string(),
            "mkrootfs-init: RESULT status=137 signal=SIGKILL boot_ms=1234 service_ms=56 oom_kill=1 pids_max_hits=2 memory_peak=3 cpu_usec=4 memory_max=5 pids_max=6"
        );
    }

    #[test]
    fn marker_after_interleaved_kernel_text_and_last_line_wins() {
        let console = "mkrootfs-init: RESULT status=1 exited=1\n\
                       [ 2.1] random: crng initmkrootfs-init: RESULT status=42 exited=42 boot_ms=9\n\
                       reboot: Power down\n";
        let r = ResultLine::last_in(console).unwrap();
        assert_eq!((r.code, r.boot_ms, r.service_ms), (42, Some(9), None));
    }

    #[test]
    fn malformed_lines_are_not_results() {
        for bad in [
            "mkrootfs-init: RESULT exited=0 boot_ms=1",
            "mkrootfs-init: RESULT status=abc",
            "mkrootfs-init: RESULTstatus=0",
            "RESULT status=0",
        ] {
            assert_eq!(ResultLine::last_in(bad), None, "{bad}");
        }
        // A malformed later line does not hide a good earlier one.
        let r =
            ResultLine::last_in("mkrootfs-init: RESULT status=3\nmkrootfs-init: RESULT status=x\n");
        assert_eq!(r.map(|r| r.code), Some(3));
    }

    #[test]
    fn container_reason_in_words() {
        let r = ResultLine::last_in(
            "mkrootfs-init: RESULT status=137 signal=SIGKILL oom_kill=1 pids_max_hits=0 memory_peak=67108864 cpu_usec=1200 memory_max=67108864",
        )
        .unwrap();
        assert_eq!(
            r.container_reason().as_deref(),
            Some("killed by the OOM killer at memory_max=64M")
        );
        let r = ResultLine::last_in(
            "mkrootfs-init: RESULT status=3 exited=3 oom_kill=0 pids_max_hits=12 memory_peak=1 cpu_usec=1 pids_max=20",
        )
        .unwrap();
        assert_eq!(
            r.container_reason().as_deref(),
            Some("hit pids_max=20 (12 forks refused)")
        );
        let r = ResultLine::last_in(
            "mkrootfs-init: RESULT status=0 oom_kill=0 pids_max_hits=0 memory_peak=1 cpu_usec=1",
        )
        .unwrap();
        assert_eq!(r.container_reason(), None);
        assert_eq!(
            ResultLine::last_in("mkrootfs-init: RESULT status=0")
                .unwrap()
                .container,
            None
        );
    }
}
