//! The README's command-line path, run as written: its fenced block's commands, in order, against
//! `scripts/demo` started on free ports, the browser step walked through the pages as a person
//! would. Then the offline story it tells (stop the proxy, push, start it again, sync), and a
//! restart of the whole demo, which must find its organisation, connection and contacts again.

use ledgerlink_e2e::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The commands of the first `sh` block after `heading`, comments and blank lines left out.
fn block_after(readme: &str, heading: &str) -> Vec<String> {
    let from = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has no '{heading}'"));
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("```").unwrap() + start;
    rest[start..end]
        .lines()
        .map(|l| match l.find("  #") {
            Some(i) => l[..i].trim().to_string(),
            None => l.trim().to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// `scripts/demo`, in a process group of its own (stopped as a whole, as Ctrl-C would).
struct Demo {
    child: Child,
    out: PathBuf,
}

impl Demo {
    fn start(env: &[(&str, String)], out: PathBuf) -> Self {
        let file = std::fs::File::create(&out).unwrap();
        let mut c = Command::new("bash");
        c.arg("scripts/demo")
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        for (k, v) in env {
            c.env(k, v);
        }
        Self {
            child: c.spawn().unwrap(),
            out,
        }
    }

    fn printed(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the demo printed `what` (building may come first: minutes on a cold machine).
    async fn until(&mut self, what: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.printed().contains(what) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the demo ended ({status}) before '{what}':\n{}",
                    self.printed()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the demo never printed '{what}':\n{}",
                self.printed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one README command in bash, from the repository, with `prelude` (the alias as a function).
fn sh(prelude: &str, command: &str, demo_dir: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("set -e\n{prelude}\n{command}"))
        .current_dir(root())
        .env("LEDGERLINK_DEMO_DIR", demo_dir)
        .env("LEDGERLINK_CREDENTIALS", "file")
        .env("LEDGERLINK_NO_BROWSER", "1")
        .env_remove("LEDGERLINK_PROXY")
        .env_remove("LEDGERLINK_DATA_DIR")
        .stdin(Stdio::null());
    c
}

async fn run_ok(prelude: &str, command: &str, demo_dir: &Path) -> String {
    let mut c = sh(prelude, command, demo_dir);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{command}` failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `ledgerlink pair ...` as written: the person opens the link it prints and goes through the
/// pages (confirm the code, log in at Xero, tick the organisation, allow).
async fn pair(prelude: &str, command: &str, demo_dir: &Path) {
    let mut child = sh(prelude, command, demo_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (link, rest) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let link = lines
            .by_ref()
            .map(Result::unwrap)
            .find_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("http") && w.contains("code="))
                    .map(|w| w.trim_end_matches([',', ')']).to_string())
            })
            .expect("pair prints the link to open");
        (link, lines)
    })
    .await
    .unwrap();
    let page = Browser::new().consent(&link, &[NZ], true).await;
    assert!(page.text.contains("Connected"), "{}", page.text);
    let status = tokio::task::spawn_blocking(move || {
        let said: Vec<String> = rest.map_while(Result::ok).collect();
        (child.wait().unwrap(), said)
    });
    let (status, said) = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .expect("pair ends once the browser step is done")
        .unwrap();
    assert!(status.success(), "pair failed: {said:?}");
    assert!(
        said.iter()
            .any(|l| l.contains("Paired with Demo Company (NZ)")),
        "{said:?}"
    );
}

async fn outbox(prelude: &str, demo_dir: &Path) -> Vec<Value> {
    run_ok(prelude, "ledgerlink --json outbox", demo_dir)
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_command_line_path_runs_as_written_against_the_demo() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let commands = block_after(&readme, "## A till on the command line");
    let scratch = TempDir(std::env::temp_dir().join(format!("ll-readme-{}", uuid::Uuid::new_v4())));
    let demo_dir = scratch.0.join("demo");
    std::fs::create_dir_all(&demo_dir).unwrap();
    let (sandbox_port, proxy_port) = (free_port(), free_port());
    let env = [
        ("LEDGERLINK_DEMO_SANDBOX_PORT", sandbox_port.to_string()),
        ("LEDGERLINK_DEMO_PROXY_PORT", proxy_port.to_string()),
        ("LEDGERLINK_DEMO_DIR", demo_dir.display().to_string()),
        ("LEDGERLINK_DEMO_HEADLESS", "1".to_string()),
    ];
    let mut demo = Demo::start(&env, scratch.0.join("demo-1.out"));
    demo.until("Ctrl-C stops everything", Duration::from_secs(900))
        .await;

    // The README's commands name the demo's default ports and folder: here they are free ones.
    let adapt = |c: &str| {
        c.replace("127.0.0.1:7400", &format!("127.0.0.1:{proxy_port}"))
            .replace("127.0.0.1:7300", &format!("127.0.0.1:{sandbox_port}"))
            .replace("$PWD/target/demo/", &format!("{}/", demo_dir.display()))
    };
    let alias = commands
        .iter()
        .find_map(|c| c.strip_prefix("alias ledgerlink="))
        .expect("the block defines the ledgerlink alias");
    let prelude = format!(
        "ledgerlink() {{ {} \"$@\"; }}",
        adapt(alias.trim_matches('"'))
    );
    let mut ran = 0;
    for command in commands.iter().filter(|c| !c.starts_with("alias ")) {
        let command = adapt(command);
        if command.starts_with("ledgerlink pair") {
            pair(&prelude, &command, &demo_dir).await;
        } else {
            run_ok(&prelude, &command, &demo_dir).await;
        }
        ran += 1;
    }
    assert!(ran >= 10, "the path has its commands: {commands:?}");

    // Invoice, payment and shift reached the sandbox.
    let docs = outbox(&prelude, &demo_dir).await;
    let state = |r: &str| {
        docs.iter()
            .find(|d| d["client_ref"] == r)
            .unwrap_or_else(|| panic!("{r} is not in the outbox: {docs:?}"))["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (r, states) in [
        ("till1-2026-11-20-0042", &["sent", "paid"][..]),
        ("till1-2026-11-20-0042-pay", &["sent"]),
        ("register1-2026-11-20", &["sent", "paid"]),
    ] {
        assert!(states.contains(&state(r).as_str()), "{r}: {docs:?}");
    }
    let sandbox = format!("http://127.0.0.1:{sandbox_port}");
    let requests: Value = reqwest::get(format!("{sandbox}/_sandbox/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answered = |path: &str| {
        requests["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "PUT" && r["path"] == path && r["status"] == 200)
    };
    assert!(answered("/api.xro/2.0/Invoices") && answered("/api.xro/2.0/Payments"));

    // The README's operators' console: the demo wires it to the sandbox's identity provider, and
    // `ops` / `ops` signs in and sees the organisation just connected.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = browser
        .get(format!("http://127.0.0.1:{proxy_port}/console"))
        .send()
        .await
        .unwrap();
    assert!(
        page.url().path().ends_with("/v1/authorize"),
        "{}",
        page.url()
    );
    let mut form: Vec<(String, String)> = ledgerlink_e2e::html::forms(&page.text().await.unwrap())
        .into_iter()
        .flat_map(|f| f.hidden)
        .collect();
    assert!(
        readme.contains("`ops@ledgerlink.test` /\n`ops`")
            || readme.contains("`ops@ledgerlink.test` / `ops`")
    );
    form.push(("username".into(), "ops@ledgerlink.test".into()));
    form.push(("password".into(), "ops".into()));
    let console = browser
        .post(format!("{sandbox}/oauth2/default/v1/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(console.url().path(), "/console");
    let text = console.text().await.unwrap();
    assert!(
        text.contains("Demo Company (NZ)") && text.contains("Signed in as"),
        "{text}"
    );

    // The offline story: the proxy alone stops, the demo carries on and says how to start it.
    let stopped = run_ok("", "./scripts/demo stop-proxy", &demo_dir).await;
    assert!(stopped.contains("The proxy stopped"), "{stopped}");
    demo.until(
        "Documents wait on the devices. Start it again: ./scripts/demo restart-proxy",
        Duration::from_secs(10),
    )
    .await;
    let file = scratch.0.join("offline.json");
    let mut invoice: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/invoice.json")).unwrap(),
    )
    .unwrap();
    invoice["client_ref"] = "till1-offline-1".into();
    std::fs::write(&file, invoice.to_string()).unwrap();
    run_ok(
        &prelude,
        &format!("ledgerlink push invoice {}", file.display()),
        &demo_dir,
    )
    .await;
    assert_eq!(
        outbox(&prelude, &demo_dir)
            .await
            .iter()
            .find(|d| d["client_ref"] == "till1-offline-1")
            .unwrap()["state"],
        "pending"
    );
    let restarted = run_ok("", "./scripts/demo restart-proxy", &demo_dir).await;
    assert!(restarted.contains("running again"), "{restarted}");
    demo.until("The proxy is back", Duration::from_secs(10))
        .await;
    run_ok(&prelude, "ledgerlink sync --timeout 60", &demo_dir).await;

    // A restart of the whole demo: the sandbox kept its state, so the proxy's connection, tokens
    // and cached contacts still work.
    demo.stop();
    let mut demo = Demo::start(&env, scratch.0.join("demo-2.out"));
    demo.until("Ctrl-C stops everything", Duration::from_secs(300))
        .await;
    let status = run_ok(&prelude, "ledgerlink --json status", &demo_dir).await;
    let status: Value = serde_json::from_str(status.lines().last().unwrap()).unwrap();
    assert_eq!(status["status"], "connected", "{status}");
    invoice["client_ref"] = "till1-after-restart".into();
    std::fs::write(&file, invoice.to_string()).unwrap();
    run_ok(
        &prelude,
        &format!(
            "ledgerlink push invoice {} && ledgerlink sync --timeout 60",
            file.display()
        ),
        &demo_dir,
    )
    .await;
    let docs = outbox(&prelude, &demo_dir).await;
    for r in ["till1-offline-1", "till1-after-restart"] {
        let d = docs.iter().find(|d| d["client_ref"] == r).unwrap();
        assert_eq!(d["state"], "sent", "{d}");
    }
    demo.stop();
}
