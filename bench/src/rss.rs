//! The server's peak resident memory, from Linux's `/proc`.
//!
//! `VmHWM` in `/proc/PID/status` is the high-water mark of the process's
//! RSS. Writing `5` to `/proc/PID/clear_refs` resets it to the current RSS,
//! so reading it after a run gives the peak of that run alone. Resetting
//! needs the right to write there (root, or the same user on most systems).

use std::fs;
use std::io;

use crate::report::PeakRss;

/// Watches one process's peak RSS over a measured phase.
#[derive(Debug)]
pub struct PeakRssProbe {
    pid: u32,
    reset_error: Option<String>,
}

impl PeakRssProbe {
    /// Resets the peak of process `pid` now. A failed reset is remembered,
    /// not fatal: [`read`](Self::read) then reports the lifetime peak and
    /// says so.
    pub fn start(pid: u32) -> Self {
        let reset_error = fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .err()
            .map(|error| format!("cannot reset the peak RSS of process {pid} ({error})"));
        if let Some(error) = &reset_error {
            eprintln!("users-bench: {error}; reporting the peak over the server's lifetime");
        }
        Self { pid, reset_error }
    }

    /// The peak since [`start`](Self::start), or since the process started
    /// if the reset failed. `None` (with a warning) if the process is gone.
    pub fn read(self) -> Option<PeakRss> {
        match read_vm_hwm_kib(self.pid) {
            Ok(kib) => Some(PeakRss {
                mib: kib as f64 / 1024.0,
                reset: self.reset_error.is_none(),
                note: self
                    .reset_error
                    .map(|error| format!("{error}; peak RSS is over the server's lifetime")),
            }),
            Err(error) => {
                eprintln!(
                    "users-bench: cannot read the peak RSS of process {}: {error}",
                    self.pid
                );
                None
            }
        }
    }
}

fn read_vm_hwm_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_hwm_kib(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmHWM line"))
}

/// The `VmHWM:   1234 kB` line of a `/proc/PID/status`, in KiB.
fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_parsed_in_kib() {
        let status = "Name:\tusers-server\nVmPeak:\t 99 kB\nVmHWM:\t   23456 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(23456));
        assert_eq!(parse_vm_hwm_kib("Name: x\n"), None);
        assert_eq!(parse_vm_hwm_kib("VmHWM: lots\n"), None);
    }

    #[test]
    fn our_own_peak_can_be_reset_and_read() {
        let probe = PeakRssProbe::start(std::process::id());
        let rss = probe.read().expect("our own status is readable");
        assert!(rss.mib > 0.0);
    }
}
