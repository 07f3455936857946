//! What the operating system says about this process: CPU time used
//! (`getrusage(RUSAGE_SELF)`, user + system, all threads) and peak resident
//! memory (`VmHWM` in `/proc/self/status`, else `ru_maxrss`).
//!
//! The only unsafe code of the load generator is the `getrusage` call here.
#![allow(unsafe_code)]

use std::time::Duration;

use super::error::BenchError;

/// The process's resource usage at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// User plus system CPU time of every thread so far.
    pub cpu: Duration,
    /// Peak resident set size so far, in KiB, as `ru_maxrss` reports it.
    pub max_rss_kib: u64,
}

/// The calling process's resource usage now.
///
/// # Errors
///
/// When `getrusage` fails (it does not for `RUSAGE_SELF`).
pub fn usage() -> Result<Usage, BenchError> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory the size of a `rusage`, which
    // `getrusage` fills on success; `RUSAGE_SELF` is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return Err(BenchError::with_source(
            "getrusage(RUSAGE_SELF)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `getrusage` returned 0, so it initialised `ru`; an all-zero
    // `rusage` is valid besides (it is plain integers).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Ok(Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
    })
}

/// The process's peak resident set size in MiB: `VmHWM` from
/// `/proc/self/status` where there is one, else `ru_maxrss`.
///
/// # Errors
///
/// When neither source can be read.
pub fn peak_rss_mib() -> Result<f64, BenchError> {
    let kib = match std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_hwm_kib(&s))
    {
        Some(kib) => kib,
        None => usage()?.max_rss_kib,
    };
    Ok(kib as f64 / 1024.0)
}

/// The `VmHWM:` line of a `/proc/<pid>/status` text, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(4321));
        assert_eq!(vm_hwm_kib("VmRSS: 1 kB\n"), None);
        assert_eq!(vm_hwm_kib("VmHWM: lots\n"), None);
    }

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let before = usage().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = usage().unwrap();
        assert!(after.cpu >= before.cpu);
        assert!(peak_rss_mib().unwrap() > 1.0);
    }
}
