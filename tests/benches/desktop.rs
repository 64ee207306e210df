//! Desktop app start-up and idle memory, under a display (Xvfb) in a D-Bus session:
//!
//! ```sh
//! cargo build --profile desktop -p ledgerlink-desktop
//! dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" \
//!     cargo bench -p ledgerlink-e2e --bench desktop
//! ```
//!
//! Cold start: from spawning the process to the window's first screen being interactive (the UI
//! calls `ui_ready` once its first screen is drawn and wired; the app prints the moment), median of
//! `RUNS` runs, each with a fresh data directory. Memory: the proportional set size (PSS: shared
//! libraries counted once across processes) of the app and every process it started (WebKit's web
//! and network processes), after 10 s idle, median of 3. Uses the build that ships (the `desktop`
//! profile) when there is one, else release, else debug (`LEDGERLINK_DESKTOP_BIN` picks another).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 9;

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LEDGERLINK_DESKTOP_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    for profile in ["desktop", "release", "debug"] {
        let p = target.join(profile).join("ledgerlink-desktop");
        if p.exists() {
            return p;
        }
    }
    panic!("build the app first: cargo build --profile desktop -p ledgerlink-desktop");
}

/// Starts the app on a fresh data directory; answers it and the time until it was interactive.
// The child is handed back to the caller, whose `stop` waits for it.
#[allow(clippy::zombie_processes)]
fn start(bin: &Path) -> (Child, Duration, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ll-bench-desktop-{}", uuid::Uuid::new_v4()));
    let began = Instant::now();
    let mut child = Command::new(bin)
        .env("LEDGERLINK_DATA_DIR", &dir)
        // Nothing listens here: an unpaired app makes no call, and a paired one would only retry.
        .env("LEDGERLINK_PROXY", "http://127.0.0.1:9")
        .env("LEDGERLINK_NO_BROWSER", "1")
        .env("LEDGERLINK_CREDENTIALS", "file")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the app starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the app printed that it was interactive")
            .unwrap();
        if line.contains("interactive after") {
            return (child, began.elapsed(), dir);
        }
    }
}

fn stop(mut child: Child, dir: PathBuf) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    // Let WebKit's helper processes go before the next start (one instance at a time).
    std::thread::sleep(Duration::from_millis(500));
}

/// `pid` and every process below it.
fn family(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The parent is the second field after the command name in parentheses.
        let after = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        if let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok())
        {
            parents.push((p, ppid));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "run under `dbus-run-session -- xvfb-run -a` (see the header)"
    );
    let bin = binary();
    println!("app: {}", bin.display());
    // One start first, so the page and WebKit's caches are read from disk by a run we do not count.
    let (c, _, d) = start(&bin);
    stop(c, d);

    let mut starts = Vec::new();
    for _ in 0..RUNS {
        let (c, took, d) = start(&bin);
        starts.push(took);
        stop(c, d);
    }
    let mut shown: Vec<_> = starts.iter().map(|d| d.as_millis()).collect();
    shown.sort();
    println!("cold start to interactive, {RUNS} runs (ms, sorted): {shown:?}");
    println!("median: {} ms", median(shown.clone()));

    let mut memory = Vec::new();
    for _ in 0..3 {
        let (c, _, d) = start(&bin);
        std::thread::sleep(Duration::from_secs(10));
        let procs = family(c.id());
        let total: u64 = procs.iter().map(|p| pss_kib(*p)).sum();
        for p in &procs {
            let name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            println!(
                "  {:>8.1} MiB  {}",
                pss_kib(*p) as f64 / 1024.0,
                name.trim()
            );
        }
        println!(
            "after 10 s idle: {} processes, PSS {:.1} MiB",
            procs.len(),
            total as f64 / 1024.0
        );
        memory.push(total);
        stop(c, d);
    }
    println!(
        "median PSS after 10 s idle: {:.1} MiB",
        median(memory) as f64 / 1024.0
    );
}
