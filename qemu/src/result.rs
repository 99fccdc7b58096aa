//! The host side of the result protocol (docs/ARCHITECTURE.md "The result protocol"):
//! the guest's `RESULT` line, `FATAL` lines, and the exit code of a boot.

use std::time::Duration;

const RESULT_MARKER: &str = "mkrootfs-init: RESULT ";
const FATAL_MARKER: &str = "mkrootfs-init: FATAL ";

/// What the guest's init reported:
/// `mkrootfs-init: RESULT status=<code> exited=<n>|signal=<NAME> boot_ms=<ms> service_ms=<ms>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResult {
    /// Shell-style: the exit code, or 128 + signal number.
    pub code: i32,
    /// The signal name when the service was killed (`signal=SIGKILL` gives "SIGKILL").
    pub signal: Option<String>,
    pub boot_ms: Option<u64>,
    pub service_ms: Option<u64>,
    /// A containerised main service's cgroup counters and limits
    /// (`oom_kill=… pids_max_hits=… memory_peak=… cpu_usec=… memory_max=…
    /// pids_max=…`); `None` for a plain service.
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

/// Bytes in the largest exact unit: `64M`, `1536K`, `100`.
fn size(n: u64) -> String {
    for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

impl GuestResult {
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

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The serial console, with "\r\n" turned into "\n".
    pub console: String,
    /// QEMU's own messages (bad arguments, missing files, warnings).
    pub stderr: String,
    /// The last valid RESULT line on the console.
    pub result: Option<GuestResult>,
    /// QEMU's exit code; `None` when we killed it.
    pub qemu_status: Option<i32>,
    /// QEMU was killed because the timeout passed without a RESULT line.
    pub timed_out: bool,
    /// From slot acquisition to QEMU's end.
    pub elapsed: Duration,
}

impl Outcome {
    /// The code `mkrootfs run` exits with: the RESULT code; else the code the guest
    /// wrote to isa-debug-exit (QEMU status `(code << 1) | 1`); else 1 (timeout, kernel
    /// panic with `panic=-1`, or a guest that powered off without reporting).
    pub fn exit_code(&self) -> i32 {
        if let Some(result) = &self.result {
            return result.code;
        }
        if self.timed_out {
            return 1;
        }
        self.debug_exit_code().unwrap_or(1)
    }

    /// The code written to isa-debug-exit, read back from QEMU's status (odd statuses
    /// only: QEMU's own exits are 0 for a power-off and 1 for errors; an error before the
    /// guest ran is turned into [`crate::QemuError::QemuFailed`] by [`crate::run`]).
    /// Compare with `result` to cross-check the two channels.
    pub fn debug_exit_code(&self) -> Option<i32> {
        self.qemu_status.filter(|s| s % 2 == 1).map(|s| (s - 1) / 2)
    }

    /// The first `mkrootfs-init: FATAL ...` line, from the marker on.
    pub fn fatal_line(&self) -> Option<&str> {
        self.console
            .lines()
            .find_map(|line| line.find(FATAL_MARKER).map(|at| line[at..].trim_end()))
    }
}

/// The last well-formed RESULT line in `console`. The marker may follow other text on
/// the same line (kernel messages interleave with the init's output); a line whose
/// `status=` is missing or not a number is not a result. Unknown fields are ignored.
pub fn parse_result_line(console: &str) -> Option<GuestResult> {
    console.lines().rev().find_map(|line| {
        let at = line.find(RESULT_MARKER)?;
        parse_fields(&line[at + RESULT_MARKER.len()..])
    })
}

fn parse_fields(fields: &str) -> Option<GuestResult> {
    let mut result = GuestResult {
        code: 0,
        signal: None,
        boot_ms: None,
        service_ms: None,
        container: None,
    };
    let mut code = None;
    let mut c = ContainerCounters::default();
    let mut any = false;
    for field in fields.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "status" => code = Some(value.parse().ok()?),
            "signal" => result.signal = Some(value.to_string()),
            "boot_ms" => result.boot_ms = value.parse().ok(),
            "service_ms" => result.service_ms = value.parse().ok(),
            "oom_kill" | "pids_max_hits" | "memory_peak" | "cpu_usec" | "memory_max"
            | "pids_max" => {
                let Ok(n) = value.parse::<u64>() else {
                    continue;
                };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(console: &str, qemu_status: Option<i32>, timed_out: bool) -> Outcome {
        Outcome {
            console: console.to_string(),
            stderr: String::new(),
            result: parse_result_line(console),
            qemu_status,
            timed_out,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn exited_line() {
        let r = parse_result_line(
            "[    1.0] x\nmkrootfs-init: RESULT status=0 exited=0 boot_ms=812 service_ms=3\n",
        );
        assert_eq!(
            r,
            Some(GuestResult {
                code: 0,
                signal: None,
                boot_ms: Some(812),
                service_ms: Some(3),
                container: None,
            })
        );
    }

    #[test]
    fn code_above_127_and_signal() {
        let r = parse_result_line(
            "mkrootfs-init: RESULT status=137 signal=SIGKILL boot_ms=5 service_ms=1001",
        );
        assert_eq!(
            r,
            Some(GuestResult {
                code: 137,
                signal: Some("SIGKILL".to_string()),
                boot_ms: Some(5),
                service_ms: Some(1001),
                container: None,
            })
        );
        let r = parse_result_line(
            "mkrootfs-init: RESULT status=255 exited=255 boot_ms=1 service_ms=2\r",
        );
        assert_eq!(r.map(|r| (r.code, r.service_ms)), Some((255, Some(2))));
    }

    #[test]
    fn marker_after_interleaved_kernel_text_and_last_line_wins() {
        let console = "mkrootfs-init: RESULT status=1 exited=1\n\
                       [ 2.1] random: crng initmkrootfs-init: RESULT status=42 exited=42 boot_ms=9\n\
                       reboot: Power down\n";
        let r = parse_result_line(console).unwrap();
        assert_eq!((r.code, r.boot_ms, r.service_ms), (42, Some(9), None));
    }

    #[test]
    fn container_counters_and_the_reason_in_words() {
        let r = parse_result_line(
            "mkrootfs-init: RESULT status=137 signal=SIGKILL boot_ms=5 service_ms=9 oom_kill=1 pids_max_hits=0 memory_peak=67108864 cpu_usec=1200 memory_max=67108864",
        )
        .unwrap();
        assert_eq!(
            r.container,
            Some(ContainerCounters {
                oom_kill: 1,
                pids_max_hits: 0,
                memory_peak: 67108864,
                cpu_usec: 1200,
                memory_max: Some(67108864),
                pids_max: None,
            })
        );
        assert_eq!(
            r.container_reason().as_deref(),
            Some("killed by the OOM killer at memory_max=64M")
        );
        let r = parse_result_line(
            "mkrootfs-init: RESULT status=3 exited=3 oom_kill=0 pids_max_hits=12 memory_peak=1 cpu_usec=1 pids_max=20",
        )
        .unwrap();
        assert_eq!(
            r.container_reason().as_deref(),
            Some("hit pids_max=20 (12 forks refused)")
        );
        let r = parse_result_line("mkrootfs-init: RESULT status=0 exited=0 oom_kill=0 pids_max_hits=0 memory_peak=1 cpu_usec=1").unwrap();
        assert_eq!(r.container_reason(), None);
        assert_eq!(
            parse_result_line("mkrootfs-init: RESULT status=0")
                .unwrap()
                .container,
            None
        );
    }

    #[test]
    fn malformed_lines_are_not_results() {
        assert_eq!(
            parse_result_line("mkrootfs-init: RESULT exited=0 boot_ms=1"),
            None
        );
        assert_eq!(parse_result_line("mkrootfs-init: RESULT status=abc"), None);
        assert_eq!(parse_result_line("mkrootfs-init: RESULTstatus=0"), None);
        assert_eq!(parse_result_line("RESULT status=0"), None);
        // A malformed later line does not hide a good earlier one.
        let r =
            parse_result_line("mkrootfs-init: RESULT status=3\nmkrootfs-init: RESULT status=x\n");
        assert_eq!(r.map(|r| r.code), Some(3));
    }

    #[test]
    fn exit_code_prefers_the_result_line() {
        let o = outcome(
            "mkrootfs-init: RESULT status=200 exited=200\n",
            Some(401),
            false,
        );
        assert_eq!(o.exit_code(), 200);
        assert_eq!(o.debug_exit_code(), Some(200));
        // The line carries codes the debug-exit device cannot distinguish from QEMU's own.
        let o = outcome("mkrootfs-init: RESULT status=3 exited=3\n", None, false);
        assert_eq!(o.exit_code(), 3);
    }

    #[test]
    fn exit_code_from_debug_exit_without_result() {
        assert_eq!(outcome("booted\n", Some(7), false).exit_code(), 3);
        assert_eq!(outcome("booted\n", Some(1), false).exit_code(), 0);
    }

    #[test]
    fn exit_code_is_1_on_timeout_panic_or_silent_poweroff() {
        assert_eq!(outcome("hang", None, true).exit_code(), 1);
        // panic=-1 + -no-reboot: QEMU exits 0 without a result.
        assert_eq!(
            outcome("Kernel panic - not syncing", Some(0), false).exit_code(),
            1
        );
        assert_eq!(outcome("", Some(2), false).exit_code(), 1);
        assert_eq!(outcome("", None, false).exit_code(), 1);
    }

    #[test]
    fn fatal_line_from_the_marker() {
        let o = outcome(
            "x\n[ 1.2] mkrootfs-init: FATAL mount: /proc: EPERM\r\nmkrootfs-init: FATAL later\n",
            Some(3),
            false,
        );
        assert_eq!(
            o.fatal_line(),
            Some("mkrootfs-init: FATAL mount: /proc: EPERM")
        );
        assert_eq!(outcome("fine\n", Some(1), false).fatal_line(), None);
    }
}
