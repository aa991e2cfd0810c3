//! What the server process costs, read from Linux's `/proc`: resident memory and CPU time of a
//! process, the time one of its threads ran and waited for a CPU, and which process listens on
//! a loopback port.

use std::io;
use std::path::Path;
use std::time::Instant;

/// Clock ticks per second of `/proc/PID/stat` times: Linux reports them in `USER_HZ`, which
/// is 100 on every architecture it runs on (the kernel's own `HZ` does not leak through).
pub const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When it was read, to turn CPU ticks into a share of wall time.
    pub at: Instant,
    /// Resident set size.
    pub rss_bytes: u64,
    /// Peak resident set size since the process started.
    pub peak_rss_bytes: u64,
    /// User plus system CPU time, in [`TICKS_PER_SEC`] ticks.
    pub cpu_ticks: u64,
    pub threads: u64,
}

impl ProcSample {
    /// CPU used between `earlier` and this sample, in percent of one core (200 % is two
    /// cores busy).
    pub fn cpu_percent_since(&self, earlier: &ProcSample) -> f64 {
        ticks_percent(
            self.cpu_ticks.saturating_sub(earlier.cpu_ticks),
            self.at.saturating_duration_since(earlier.at),
        )
    }
}

/// Reads process `pid` (`"self"` works too, through [`sample_path`]).
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    sample_path(&Path::new("/proc").join(pid.to_string()))
}

/// Reads the process whose `/proc` directory is `dir`.
pub fn sample_path(dir: &Path) -> io::Result<ProcSample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(dir.join("stat"))?;
    let status = std::fs::read_to_string(dir.join("status"))?;
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let cpu_ticks = parse_stat_ticks(&stat).ok_or_else(|| invalid("unreadable /proc stat"))?;
    let field = |name| status_kib(&status, name).map(|kib| kib * 1024);
    Ok(ProcSample {
        at,
        rss_bytes: field("VmRSS:").ok_or_else(|| invalid("no VmRSS in /proc status"))?,
        peak_rss_bytes: field("VmHWM:").unwrap_or(0),
        cpu_ticks,
        threads: status_kib(&status, "Threads:").unwrap_or(0),
    })
}

/// A thread's time on a CPU, and runnable but waiting for one, from its
/// `/proc/PID/task/TID/schedstat` (nanoseconds since it started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadTimes {
    pub on_cpu_ns: u64,
    pub waiting_ns: u64,
}

/// The times of process `pid`'s first thread called `name` (Linux keeps a thread's first 15
/// bytes of name); `None` when it has none, or `/proc` cannot tell.
pub fn thread_times(pid: u32, name: &str) -> Option<ThreadTimes> {
    let shown = name.get(..15).unwrap_or(name);
    let dir = Path::new("/proc").join(pid.to_string());
    let task = named_tasks(&dir, |comm| comm == shown)?.next()?;
    parse_schedstat(&std::fs::read_to_string(task.join("schedstat")).ok()?).map(
        |(on_cpu_ns, waiting_ns)| ThreadTimes {
            on_cpu_ns,
            waiting_ns,
        },
    )
}

/// The `/proc` directories of the threads of the process at `dir` whose names (as Linux keeps
/// them, their first 15 bytes) `keep` takes; `None` when `/proc` cannot list them.
fn named_tasks(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Option<impl Iterator<Item = std::path::PathBuf>> {
    let tasks = std::fs::read_dir(dir.join("task")).ok()?;
    Some(tasks.flatten().map(|task| task.path()).filter(move |task| {
        std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| keep(comm.trim_end()))
    }))
}

/// The CPU time, in [`TICKS_PER_SEC`] ticks, of this process's threads whose names (as Linux
/// keeps them, their first 15 bytes) begin with one of `prefixes`: what a server this process
/// runs on threads of its own costs. `None` when `/proc` cannot tell.
pub fn own_threads_ticks(prefixes: &[&str]) -> Option<u64> {
    let tasks = named_tasks(Path::new("/proc/self"), |comm| {
        prefixes.iter().any(|prefix| comm.starts_with(prefix))
    })?;
    // A thread that ended since the listing has no stat: its time is not counted.
    Some(
        tasks
            .filter_map(|task| std::fs::read_to_string(task.join("stat")).ok())
            .filter_map(|stat| parse_stat_ticks(&stat))
            .sum(),
    )
}

/// `ticks` of CPU over `wall`, in percent of one core (200 % is two cores busy).
pub fn ticks_percent(ticks: u64, wall: std::time::Duration) -> f64 {
    let wall = wall.as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    ticks as f64 / TICKS_PER_SEC / wall * 100.0
}

impl ThreadTimes {
    /// The shares of `wall` this thread spent on a CPU and waiting for one since `earlier`
    /// (each 1.0 at most for one thread over the time between the two readings).
    pub fn shares_since(&self, earlier: &ThreadTimes, wall: std::time::Duration) -> (f64, f64) {
        let wall = wall.as_nanos() as f64;
        if wall <= 0.0 {
            return (0.0, 0.0);
        }
        let share = |now: u64, then: u64| now.saturating_sub(then) as f64 / wall;
        (
            share(self.on_cpu_ns, earlier.on_cpu_ns),
            share(self.waiting_ns, earlier.waiting_ns),
        )
    }
}

/// (time on a CPU, time waiting on a run queue) from the text of a `schedstat` file.
fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The number after `name` in `/proc/PID/status` (`VmRSS:   1234 kB` gives 1234).
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The process listening on TCP `port` (IPv4 or IPv6), if this user can see it.
pub fn find_listener(port: u16) -> io::Result<Option<u32>> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return Ok(None);
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // Gone, or another user's.
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                return Ok(Some(pid));
            }
        }
    }
    Ok(None)
}

/// The socket inodes of `/proc/net/tcp{,6}` rows in state LISTEN (`0A`) on `port`.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *state == "0A").then(|| fields.get(9)?.parse().ok())?
        })
        .collect()
}

/// The machine's CPU time so far: (busy, total) in ticks over all cores, from `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// (busy, total) from the `cpu` line of `/proc/stat`: busy is everything but idle and iowait.
pub fn parse_machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle, total))
}

/// What the machine is, for the report: logical cores, CPU model, kernel.
pub fn machine() -> (usize, String, String) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    (cores, model, kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedstat_gives_the_time_on_a_cpu_then_the_wait_for_one() {
        assert_eq!(
            parse_schedstat("2071234567 1950000000 6916\n"),
            Some((2_071_234_567, 1_950_000_000))
        );
        assert_eq!(parse_schedstat("12"), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
        let earlier = ThreadTimes {
            on_cpu_ns: 1_000,
            waiting_ns: 500,
        };
        let later = ThreadTimes {
            on_cpu_ns: 3_000_001_000,
            waiting_ns: 1_000_000_500,
        };
        let (on_cpu, waiting) = later.shares_since(&earlier, std::time::Duration::from_secs(4));
        assert!((on_cpu - 0.75).abs() < 1e-9 && (waiting - 0.25).abs() < 1e-9);
    }

    #[test]
    fn a_thread_is_found_by_its_name_as_linux_keeps_it() {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel::<()>();
        // The new thread names itself before it runs this: once it says so, its name shows.
        let thread = std::thread::Builder::new()
            .name("loadgen-named-probe".into())
            .spawn(move || {
                let _ = ready.send(());
                let _ = stopped.recv();
            })
            .unwrap();
        started.recv().unwrap();
        let found = thread_times(std::process::id(), "loadgen-named-probe");
        // Kernels built without scheduler statistics have no `schedstat` to read.
        if Path::new("/proc/self/schedstat").exists() {
            assert!(
                found.is_some(),
                "a thread named past 15 bytes is found by its first 15"
            );
        }
        assert_eq!(thread_times(std::process::id(), "no-such-thread"), None);
        drop(stop);
        thread.join().unwrap();
    }

    #[test]
    fn the_cpu_of_this_process_s_threads_is_summed_by_their_name() {
        // Each busy for a quarter of a second, then waiting (alive) until the test ends.
        let spin = |name: &str| {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let until = Instant::now() + std::time::Duration::from_millis(250);
                    let mut n = 0_u64;
                    while Instant::now() < until {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                    let _ = stopped.recv();
                })
                .unwrap();
            (stop, thread)
        };
        let threads = [spin("ticks-probe-a"), spin("ticks-probe-b")];
        std::thread::sleep(std::time::Duration::from_millis(400));
        let both = own_threads_ticks(&["ticks-probe"]).unwrap();
        let one = own_threads_ticks(&["ticks-probe-a"]).unwrap();
        // About 25 ticks each (fewer on a loaded machine): some, and the pair more than one.
        assert!(one > 0 && both > one, "{one} and {both} ticks");
        assert_eq!(own_threads_ticks(&["no-such-prefix"]), Some(0));
        // Done spinning: either prefix's threads add up to what the common prefix takes.
        let either = own_threads_ticks(&["ticks-probe-a", "ticks-probe-b"]).unwrap();
        assert_eq!(either, both, "both threads counted once each");
        for (stop, thread) in threads {
            drop(stop);
            thread.join().unwrap();
        }
    }

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 \
                    9 0 1000 123456 789 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn machine_ticks_count_everything_but_idle_and_iowait_as_busy() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(parse_machine_ticks(stat), Some((160, 1000)));
        assert_eq!(parse_machine_ticks("intr 1 2 3"), None);
        assert!(machine_ticks().is_some_and(|(busy, total)| busy <= total));
    }

    #[test]
    fn status_fields_are_read_by_name() {
        let status = "Name:\tnudge\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t7\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(102_400));
        assert_eq!(status_kib(status, "VmHWM:"), Some(204_800));
        assert_eq!(status_kib(status, "Threads:"), Some(7));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0 100 0 0 10 0\n\
            1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 6666 1 0 20 4 30 10 -1\n\
            2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7777 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8080), [5555]);
        assert_eq!(listening_inodes(table, 8081), [7777]);
        assert!(listening_inodes(table, 9).is_empty());
    }

    #[test]
    fn this_process_can_be_read_and_its_cpu_share_computed() {
        let first = sample(std::process::id()).unwrap();
        assert!(first.rss_bytes > 0);
        assert!(first.threads >= 1);
        let later = ProcSample {
            at: first.at + std::time::Duration::from_secs(2),
            cpu_ticks: first.cpu_ticks + 300,
            ..first
        };
        assert!((later.cpu_percent_since(&first) - 150.0).abs() < 1e-9);
    }

    #[test]
    fn the_process_listening_on_a_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(find_listener(port).unwrap(), Some(std::process::id()));
    }
}
