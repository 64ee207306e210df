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
//! and network processes), after 10 s idle, median of 3, twice: a new till (the Connect screen) and
//! a till in use (paired with the sandbox through an in-process proxy, 100 invoices sent, the app
//! on Home with its sync loop long-polling). Uses the build that ships (the `desktop`
//! profile) when there is one, else release, else debug (`LEDGERLINK_DESKTOP_BIN` picks another).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgerlink_client::app::App;
use ledgerlink_client::sync::Until;
use ledgerlink_e2e::{process_family, World, NZ};
use ledgerlink_wire::documents::DocumentKind;
use serde_json::json;

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

/// Starts the app on `dir` with `proxy`; answers it and the time until it was interactive.
// The child is handed back to the caller, whose `stop` waits for it.
#[allow(clippy::zombie_processes)]
fn start(bin: &Path, dir: &Path, proxy: &str) -> (Child, Duration) {
    let began = Instant::now();
    let mut child = Command::new(bin)
        .env("LEDGERLINK_DATA_DIR", dir)
        .env("LEDGERLINK_PROXY", proxy)
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
            return (child, began.elapsed());
        }
    }
}

fn fresh_dir() -> PathBuf {
    std::env::temp_dir().join(format!("ll-bench-desktop-{}", uuid::Uuid::new_v4()))
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    // Let WebKit's helper processes go before the next start (one instance at a time).
    std::thread::sleep(Duration::from_millis(500));
}

/// A till in use: a data directory paired with the sandbox's demo organisation through the proxy,
/// with `invoices` invoices sent to Xero. Done with the client core, as the app itself would.
fn till_in_use(rt: &tokio::runtime::Runtime, world: &World, invoices: usize) -> PathBuf {
    let dir = fresh_dir();
    rt.block_on(async {
        let app = Arc::new(App::open(&dir, &world.proxy_url, true).unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let view = app
            .start_pairing(None, move |outcome| {
                let _ = tx.send(outcome);
            })
            .await
            .unwrap();
        world
            .browser()
            .consent(&view.verification_uri_complete, &[NZ], true)
            .await;
        let outcome = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcome.outcome, "paired", "{outcome:?}");
        for i in 0..invoices {
            let invoice = json!({
                "client_ref": format!("bench-{i:04}"),
                "type": "sale",
                "contact": {"name": format!("Customer {i}")},
                "date": "2026-11-20",
                "tax_mode": "inclusive",
                "status": "authorised",
                "lines": [{"description": "Flat white", "quantity": "2", "unit_amount": "4.80",
                           "account_code": "200", "tax_type": "OUTPUT2"}]
            });
            app.save(DocumentKind::Invoice, &invoice).unwrap();
        }
        let counts = app.syncer.run(Until::Delivered, |_| {}).await.unwrap();
        assert_eq!(counts.sent, invoices, "{counts:?}");
    });
    dir
}

/// Starts the app `runs` times on the data directory `dir()` gives, each time measuring the PSS
/// of it and its processes after 10 s idle; prints each run and answers the median (KiB).
fn idle_memory(bin: &Path, runs: usize, proxy: &str, mut dir: impl FnMut() -> PathBuf) -> u64 {
    let mut memory = Vec::new();
    for _ in 0..runs {
        let d = dir();
        let (c, _) = start(bin, &d, proxy);
        std::thread::sleep(Duration::from_secs(10));
        let procs = process_family(c.id());
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
        stop(c);
    }
    median(memory)
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
    // The client core in this process (the till in use) keeps its credentials as the app will.
    std::env::set_var("LEDGERLINK_CREDENTIALS", "file");
    let bin = binary();
    println!("app: {}", bin.display());
    // Nothing listens here: an unpaired app makes no call.
    let nowhere = "http://127.0.0.1:9";
    // One start first, so the page and WebKit's caches are read from disk by a run we do not count.
    let d = fresh_dir();
    let (c, _) = start(&bin, &d, nowhere);
    stop(c);
    let _ = std::fs::remove_dir_all(d);

    let mut starts = Vec::new();
    for _ in 0..RUNS {
        let d = fresh_dir();
        let (c, took) = start(&bin, &d, nowhere);
        starts.push(took);
        stop(c);
        let _ = std::fs::remove_dir_all(d);
    }
    let mut shown: Vec<_> = starts.iter().map(|d| d.as_millis()).collect();
    shown.sort();
    println!("cold start to interactive, {RUNS} runs (ms, sorted): {shown:?}");
    println!("median: {} ms", median(shown.clone()));

    println!("a new till (the Connect screen):");
    let mut dirs = Vec::new();
    let connect = idle_memory(&bin, 3, nowhere, || {
        dirs.push(fresh_dir());
        dirs.last().unwrap().clone()
    });
    println!(
        "median PSS after 10 s idle: {:.1} MiB",
        connect as f64 / 1024.0
    );

    // A till in use: paired, 100 invoices sent, the app on Home with the latest documents and its
    // sync loop long-polling the proxy.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let world = rt.block_on(World::start());
    let till = till_in_use(&rt, &world, 100);
    println!("a till in use (paired, 100 invoices sent, Home):");
    let in_use = idle_memory(&bin, 3, &world.proxy_url, || till.clone());
    println!(
        "median PSS after 10 s idle, in use: {:.1} MiB",
        in_use as f64 / 1024.0
    );
    for d in dirs.into_iter().chain([till]) {
        let _ = std::fs::remove_dir_all(d);
    }
}
