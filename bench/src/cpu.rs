//! CPU time per call, from Linux's `/proc`: of the server (`--server-pid`)
//! and of every process of one name (`--cpu-of`, e.g. `postgres`: the
//! database's backends), over the measured phase only.
//!
//! `utime + stime` in `/proc/PID/stat` count clock ticks (`CLK_TCK`, 100 a
//! second on Linux): over a few seconds of load, a resolution well under
//! 1 % of the total. A process that starts during the phase counts from
//! zero; one that exits during it is lost (the database's pooled
//! connections live throughout).

use std::collections::BTreeMap;
use std::fs;

/// Linux's `CLK_TCK`.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks of the watched processes when the phase started.
#[derive(Debug)]
pub struct CpuProbe {
    server: Option<(u32, u64)>,
    named: Option<(String, BTreeMap<u32, u64>)>,
}

/// CPU seconds over the phase.
#[derive(Debug, Clone, Copy)]
pub struct CpuUsed {
    /// The server's, if its pid was given and readable throughout.
    pub server_s: Option<f64>,
    /// The named processes', together.
    pub named_s: Option<f64>,
}

impl CpuProbe {
    /// Reads the ticks now.
    pub fn start(server_pid: Option<u32>, name: Option<&str>) -> Self {
        Self {
            server: server_pid.and_then(|pid| ticks(pid).map(|ticks| (pid, ticks))),
            named: name.map(|name| (name.to_owned(), ticks_of_named(name))),
        }
    }

    /// The CPU used since [`start`](Self::start).
    pub fn read(&self) -> CpuUsed {
        let server_s = self.server.and_then(|(pid, before)| {
            ticks(pid).map(|now| now.saturating_sub(before) as f64 / TICKS_PER_SECOND)
        });
        let named_s = self.named.as_ref().map(|(name, before)| {
            let used: u64 = ticks_of_named(name)
                .iter()
                .map(|(pid, now)| now.saturating_sub(before.get(pid).copied().unwrap_or(0)))
                .sum();
            used as f64 / TICKS_PER_SECOND
        });
        CpuUsed { server_s, named_s }
    }
}

/// `utime + stime` of `pid`.
fn ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ticks(&stat)
}

/// From a `/proc/PID/stat` line: the fields after the command (which is
/// in parentheses and may hold spaces) are state, ppid, .., with utime and
/// stime the 14th and 15th fields of the line.
fn parse_ticks(stat: &str) -> Option<u64> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    // after_command starts at field 3 (state): utime is field 14.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The ticks of every process whose command name is `name`.
fn ticks_of_named(name: &str) -> BTreeMap<u32, u64> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let command = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            (command == name).then(|| parse_ticks(&stat).map(|ticks| (pid, ticks)))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_past_a_command_with_spaces() {
        let stat = "4242 (users server) S 1 4242 4242 0 -1 4194560 1500 0 0 0 731 264 0 0 20 0 9 0";
        assert_eq!(parse_ticks(stat), Some(731 + 264));
    }
}
