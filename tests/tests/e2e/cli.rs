//! The `ledgerlink` CLI as a headless till uses it: pair (the person's browser step driven over HTTP),
//! status, unpair, and a clear "pair again" when the device was unpaired elsewhere.

use ledgerlink_e2e::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub(crate) const CLI: &str = env!("CARGO_BIN_EXE_ledgerlink-under-test");

/// A device's data directory and the CLI run on it (with the file credential store, as in CI).
#[derive(Clone)]
pub(crate) struct Cli {
    pub(crate) dir: PathBuf,
    /// Removes the directory when the last clone goes.
    _guard: std::sync::Arc<TempDir>,
}

impl Cli {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ll-cli-{}", uuid::Uuid::new_v4()));
        Self {
            _guard: std::sync::Arc::new(TempDir(dir.clone())),
            dir,
        }
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(CLI);
        c.arg("--data-dir")
            .arg(&self.dir)
            .arg("--json")
            .env("LEDGERLINK_CREDENTIALS", "file")
            .env_remove("LEDGERLINK_PROXY")
            .env_remove("LEDGERLINK_DATA_DIR");
        c
    }

    /// Runs the CLI to the end (with no terminal: standard input closed): whether it succeeded
    /// and every JSON line it printed.
    pub(crate) async fn run(&self, args: &[&str]) -> (bool, Vec<Value>) {
        let (code, lines, _) = self.exit(args).await;
        (code == 0, lines)
    }

    /// Runs the CLI to the end: its exit code, every JSON line it printed, and its stderr.
    pub(crate) async fn exit(&self, args: &[&str]) -> (i32, Vec<Value>, String) {
        let mut command = self.command();
        command.args(args);
        let out = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
            .collect();
        (
            out.status.code().expect("ended, not killed"),
            lines,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The last line of a successful run.
    pub(crate) async fn ok(&self, args: &[&str]) -> Value {
        let (ok, lines) = self.run(args).await;
        assert!(ok, "ledgerlink {args:?} failed: {lines:?}");
        lines.last().cloned().unwrap_or(Value::Null)
    }

    /// `ledgerlink pair`, with the person's browser step done over HTTP.
    pub(crate) async fn pair(&self, world: &World) {
        self.pair_named(world, None).await;
    }

    /// `ledgerlink pair [--name NAME]`: answers the page the person saw at the end.
    async fn pair_named(&self, world: &World, name: Option<&str>) -> String {
        let mut args = vec!["pair", "--proxy", &world.proxy_url];
        if let Some(name) = name {
            args.extend(["--name", name]);
        }
        self.pair_by(world, &args).await
    }

    /// A command that pairs (`pair`, `reconnect`), with the person's browser step done over HTTP:
    /// answers the page the person saw at the end.
    pub(crate) async fn pair_by(&self, world: &World, args: &[&str]) -> String {
        let (page, paired) = self.pair_to(world, args, NZ).await;
        assert_eq!(paired["tenant_name"], "Demo Company (NZ)");
        page
    }

    /// Like `pair_by`, consenting to `tenant`: answers the page and the `paired` line.
    pub(crate) async fn pair_to(
        &self,
        world: &World,
        args: &[&str],
        tenant: uuid::Uuid,
    ) -> (String, Value) {
        let mut command = self.command();
        // As docs/client.md says: LEDGERLINK_NO_BROWSER=1 (not only "true").
        command.args(args).env("LEDGERLINK_NO_BROWSER", "1");
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let code: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(code["event"], "code", "{code}");
        assert_eq!(code["user_code"].as_str().unwrap().len(), 9);
        let page = world
            .browser()
            .consent(
                code["verification_uri_complete"].as_str().unwrap(),
                &[tenant],
                true,
            )
            .await;
        assert!(page.text.contains("Connected"), "{}", page.text);
        let paired = tokio::task::spawn_blocking(move || {
            let line = lines.next().unwrap().unwrap();
            assert!(child.wait().unwrap().success());
            line
        });
        let paired: Value = serde_json::from_str(
            &tokio::time::timeout(Duration::from_secs(20), paired)
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(paired["event"], "paired", "{paired}");
        (page.text, paired)
    }

    /// The mappings the examples need, set through the CLI.
    pub(crate) async fn map_the_examples(&self) {
        for args in [
            &[
                "mappings",
                "set",
                "category",
                "Food",
                "--account",
                "200",
                "--tax-type",
                "OUTPUT2",
            ][..],
            &[
                "mappings",
                "set",
                "category",
                "Drinks",
                "--account",
                "260",
                "--tax-type",
                "OUTPUT2",
            ],
            &["mappings", "set", "tender", "cash", "--account", "092"],
            &["mappings", "set", "tender", "card", "--account", "615"],
            &["mappings", "set", "tender", "voucher", "--account", "091"],
            &["mappings", "set", "over-short", "--account", "408"],
        ] {
            self.ok(args).await;
        }
    }

    /// `ledgerlink outbox --json`, by client_ref.
    pub(crate) async fn outbox(&self, extra: &[&str]) -> std::collections::BTreeMap<String, Value> {
        let mut args = vec!["outbox"];
        args.extend_from_slice(extra);
        let (ok, lines) = self.run(&args).await;
        assert!(ok, "{lines:?}");
        lines
            .into_iter()
            .map(|l| (l["client_ref"].as_str().unwrap().to_string(), l))
            .collect()
    }
}

pub(crate) fn example(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}")),
        )
        .unwrap(),
    )
    .unwrap()
}

// Multi-threaded: the test reads the CLI's output with blocking calls while the in-process proxy serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_till_pairs_shows_its_status_and_unpairs() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with(settings).await;
    let till = Cli::new();
    let page = till.pair_named(&world, Some("Headless till")).await;
    assert!(
        page.contains("Headless till") && page.contains("Demo Company (NZ)"),
        "{page}"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(till.dir.join("credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "credentials readable by the user only");
    }
    let status = till.ok(&["status"]).await;
    assert_eq!(
        (
            status["organisation_name"].as_str(),
            status["status"].as_str()
        ),
        (Some("Demo Company (NZ)"), Some("connected"))
    );
    assert_eq!(status["device_name"], "Headless till");

    // Unpaired from elsewhere (say, the operator): the CLI says to pair again, no stack trace.
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(till.dir.join("credentials.json")).unwrap())
            .unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/device", world.proxy_url))
        .bearer_auth(creds["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (ok, lines) = till.run(&["status"]).await;
    assert!(!ok);
    let err = lines.last().unwrap();
    assert_eq!(err["code"], "pair_again");
    assert!(err["message"].as_str().unwrap().contains("ledgerlink pair"));
}

#[tokio::test]
async fn a_device_that_never_paired_is_told_how_to() {
    let (ok, lines) = Cli::new().run(&["status"]).await;
    assert!(!ok);
    assert_eq!(lines.last().unwrap()["code"], "not_paired");
}

/// Quantity `q` of the example's 4.80 flat whites plus its 3.95 muffin, 15% GST inclusive, by the
/// per-line rule worked by hand: (total, tax) in cents.
fn expected_cents(q: i64) -> (i64, i64) {
    let drinks = q * 480;
    // The tax contained in a line: amount × 15/115, rounded half away from zero to the cent.
    let tax = |cents: i64| (cents * 15 * 2 + 115) / (115 * 2);
    (drinks + 395, tax(drinks) + tax(395))
}

fn cents(v: &Value) -> i64 {
    let d: rust_decimal::Decimal = v.to_string().trim_matches('"').parse().unwrap();
    (d * rust_decimal::Decimal::ONE_HUNDRED)
        .round()
        .try_into()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_pushes_100_invoice_files_and_a_shift_and_sees_one_paid() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with_webhooks(settings).await;

    let till = Cli::new();
    till.pair(&world).await;
    till.map_the_examples().await;

    // 100 files, each an invoice as in examples/invoice.json with its own client_ref and quantity;
    // half of them leave the client_ref out and get one made.
    let files = till.dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let mut quantities = std::collections::HashMap::new();
    for i in 0..100 {
        let mut inv = example("invoice.json");
        let q = i % 7 + 1;
        inv["lines"][0]["quantity"] = serde_json::json!(q.to_string());
        inv["contact"]["name"] = serde_json::json!(format!("Customer {}", i % 3));
        if i % 2 == 0 {
            inv["client_ref"] = serde_json::json!(format!("till1-{i:04}"));
        } else {
            inv.as_object_mut().unwrap().remove("client_ref");
        }
        let path = files.join(format!("invoice-{i:03}.json"));
        std::fs::write(&path, inv.to_string()).unwrap();
        let (ok, lines) = till.run(&["push", "invoice", path.to_str().unwrap()]).await;
        assert!(ok, "{lines:?}");
        let saved = &lines[0];
        assert_eq!(saved["event"], "saved");
        // The client core's totals, from the mappings and the organisation's tax rates.
        let (total, tax) = expected_cents(q);
        assert_eq!(cents(&saved["totals"]["total"]), total, "{saved}");
        assert_eq!(cents(&saved["totals"]["total_tax"]), tax, "{saved}");
        quantities.insert(saved["client_ref"].as_str().unwrap().to_string(), q);
    }
    assert_eq!(
        quantities.len(),
        100,
        "client_refs made for the files without"
    );
    let shift = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shift.json");
    let (ok, lines) = till.run(&["push", "shift", shift]).await;
    assert!(ok, "{lines:?}");
    assert_eq!(lines[0]["summary"]["over_short"], "-1.50");

    let done = till.ok(&["sync", "--timeout", "60"]).await;
    assert_eq!(done["event"], "synced");
    // The shift's invoice is paid by its own tender payments: Xero may already say so.
    let in_xero_now =
        done["outbox"]["sent"].as_u64().unwrap() + done["outbox"]["paid"].as_u64().unwrap();
    assert_eq!(in_xero_now, 101, "{done}");

    // In Xero: each invoice once, with the totals the till showed.
    let outbox = till.outbox(&[]).await;
    let in_xero = world.xero_get("Invoices").await;
    let in_xero = in_xero["Invoices"].as_array().unwrap();
    assert_eq!(
        in_xero.len(),
        101,
        "100 invoices and the shift's, once each"
    );
    for (client_ref, q) in &quantities {
        let entry = &outbox[client_ref];
        assert_eq!(entry["state"], "sent");
        let inv = in_xero
            .iter()
            .find(|i| i["InvoiceID"] == entry["xero_id"])
            .unwrap_or_else(|| panic!("{client_ref} is not in Xero"));
        assert_eq!(inv["InvoiceNumber"], entry["xero_number"]);
        let (total, tax) = expected_cents(*q);
        assert_eq!(
            (cents(&inv["Total"]), cents(&inv["TotalTax"])),
            (total, tax)
        );
    }
    let shift = &outbox["register1-2026-11-20"];
    assert_eq!(shift["kind"], "shift");
    assert!(
        shift["state"] == "sent" || shift["state"] == "paid",
        "{shift}"
    );

    // A customer pays one in Xero: the outbox reports it paid.
    let paid_ref = "till1-0042";
    let xero_id = outbox[paid_ref]["xero_id"].as_str().unwrap().to_string();
    // The provider's names, and Xero's before them, carry the same.
    assert_eq!(outbox[paid_ref]["provider_id"], outbox[paid_ref]["xero_id"]);
    assert_eq!(
        outbox[paid_ref]["provider_number"],
        outbox[paid_ref]["xero_number"]
    );
    let r = world
        .control(
            reqwest::Method::POST,
            &format!("/invoices/{xero_id}/pay"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let outbox = till.outbox(&[]).await;
        if outbox[paid_ref]["state"] == "paid" {
            let paid = outbox
                .values()
                .filter(|e| e["kind"] == "invoice" && e["state"] == "paid")
                .count();
            assert_eq!(paid, 1, "only the invoice paid in Xero");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not paid within 20 s: {}",
            outbox[paid_ref]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_pushed_while_the_proxy_is_down_arrive_once_it_is_back() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let mut world = World::start_with(settings).await;
    let till = Cli::new();
    till.pair(&world).await;
    till.map_the_examples().await;
    world.stop_proxy().await;

    // 500 invoices through the CLI while the proxy is down: 200 one file each, from four
    // processes at a time (one outbox, several writers), and 300 as three lists of 100.
    let files = till.dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let invoice = |i: usize| {
        let mut inv = example("invoice.json");
        inv["client_ref"] = serde_json::json!(format!("offline-{i:04}"));
        inv
    };
    let mut workers = Vec::new();
    for w in 0..4 {
        let till = till.clone();
        let files = files.clone();
        workers.push(tokio::spawn(async move {
            for i in (w * 50)..(w * 50 + 50) {
                let path = files.join(format!("{i}.json"));
                std::fs::write(&path, invoice(i).to_string()).unwrap();
                let (ok, lines) = till.run(&["push", "invoice", path.to_str().unwrap()]).await;
                assert!(ok, "{lines:?}");
                assert_eq!(lines[1]["event"], "not_sent", "{lines:?}");
                assert_eq!(lines[1]["code"], "proxy_unreachable");
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    for list in 0..3 {
        let batch: Vec<Value> = (200 + list * 100..300 + list * 100).map(invoice).collect();
        let path = files.join(format!("list-{list}.json"));
        std::fs::write(&path, Value::Array(batch).to_string()).unwrap();
        let (ok, lines) = till.run(&["push", "invoice", path.to_str().unwrap()]).await;
        assert!(ok, "{lines:?}");
        assert_eq!(lines.iter().filter(|l| l["event"] == "saved").count(), 100);
    }
    let waiting = till.outbox(&["--offline"]).await;
    assert_eq!(waiting.len(), 500);
    assert!(waiting.values().all(|e| e["state"] == "pending"));

    // `ledgerlink sync` keeps trying while the proxy is down, and finishes once it is back.
    let mut sync = till
        .command()
        .args(["sync", "--timeout", "120"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sync.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&tokio::task::block_in_place(|| {
        lines.next().unwrap().unwrap()
    }))
    .unwrap();
    assert_eq!(first["event"], "retrying", "{first}");
    world.start_proxy().await;
    let rest = tokio::task::spawn_blocking(move || {
        let rest: Vec<Value> = lines
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect();
        (sync.wait().unwrap().success(), rest)
    });
    let (ok, rest) = tokio::time::timeout(Duration::from_secs(150), rest)
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "{rest:?}");
    let last = rest.last().unwrap();
    assert_eq!(last["event"], "synced");
    assert_eq!(last["outbox"]["sent"], 500, "{last}");

    // Exactly once in Xero, and the outbox says sent with Xero's numbers.
    let outbox = till.outbox(&[]).await;
    assert_eq!(outbox.len(), 500);
    assert!(outbox.values().all(|e| e["state"] == "sent"
        && e["xero_number"]
            .as_str()
            .is_some_and(|n| n.starts_with("INV-"))));
    let in_xero = world.xero_get("Invoices").await;
    let in_xero: std::collections::HashSet<&str> = in_xero["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InvoiceID"].as_str().unwrap())
        .collect();
    assert_eq!(in_xero.len(), 500, "each invoice once");
    let ours: std::collections::HashSet<&str> = outbox
        .values()
        .map(|e| e["xero_id"].as_str().unwrap())
        .collect();
    assert_eq!(ours, in_xero);
}

/// `outbox --watch` long-polls the proxy's feed for 20 s at a time; a document another process on
/// the device only saved (`push --no-send`) still goes out within moments, not when the poll ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_outbox_sends_what_another_process_saved_without_waiting_for_its_poll() {
    let world = World::start().await;
    let till = Cli::new();
    till.pair(&world).await;
    till.map_the_examples().await;
    let mut watch = till
        .command()
        .args(["outbox", "--watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // Past its first pass (which never waits) and into the long-poll.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut invoice = example("invoice.json");
    invoice["client_ref"] = serde_json::json!("saved-beside-the-watcher");
    let file = till.dir.join("beside.json");
    std::fs::write(&file, invoice.to_string()).unwrap();
    let (ok, out) = till
        .run(&["push", "invoice", "--no-send", file.to_str().unwrap()])
        .await;
    assert!(ok, "{out:?}");
    let pushed = std::time::Instant::now();

    let sent = tokio::task::spawn_blocking(move || {
        for line in lines {
            let line: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if line["client_ref"] == "saved-beside-the-watcher" && line["state"] == "sent" {
                return Some(line);
            }
        }
        None
    });
    // Well under the 20 s the poll would otherwise hold it back.
    let sent = tokio::time::timeout(Duration::from_secs(12), sent).await;
    let _ = watch.kill();
    let _ = watch.wait();
    let sent = sent
        .expect("the watcher sent it before its long-poll ended")
        .unwrap()
        .expect("the watcher printed the document as sent");
    assert!(
        sent["xero_number"]
            .as_str()
            .is_some_and(|n| n.starts_with("INV-")),
        "{sent}"
    );
    assert!(pushed.elapsed() < Duration::from_secs(12));
    let in_xero = world.xero_get("Invoices").await;
    assert_eq!(in_xero["Invoices"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_device_refresh_its_credentials_one_at_a_time() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    // No grace for a reused refresh token: were two processes to spend the same one, the device
    // would be unpaired on the spot.
    settings.devices.refresh_reuse_grace_secs = 0;
    let world = World::start_with(settings).await;
    let till = Cli::new();
    till.pair(&world).await;
    let path = till.dir.join("credentials.json");
    let mut stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let first_refresh = stored["refresh_token"].as_str().unwrap().to_string();
    // About to expire: every process below wants to refresh.
    stored["expires_at"] = serde_json::json!("2000-01-01T00:00:00Z");
    std::fs::write(&path, stored.to_string()).unwrap();

    let runs: Vec<_> = (0..8)
        .map(|_| {
            let till = till.clone();
            tokio::spawn(async move { till.run(&["status"]).await })
        })
        .collect();
    for run in runs {
        let (ok, lines) = run.await.unwrap();
        assert!(ok, "{lines:?}");
        assert_eq!(lines[0]["status"], "connected");
    }
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_ne!(after["refresh_token"], first_refresh.as_str());
    // One process refreshed; the others waited for the lock and took what it stored. Spending the
    // same refresh token twice would have unpaired the device (no grace here).
    let (ok, lines) = till.run(&["status"]).await;
    assert!(ok, "{lines:?}");
}

#[tokio::test]
async fn absurd_amounts_are_refused_before_saving_not_a_panic() {
    let cli = Cli::new();
    // 150 lines of 10^11 × 10^12 each: the file that made `push` panic ("Addition overflowed").
    let line = serde_json::json!({"description": "x", "quantity": "99999999999",
        "unit_amount": "999999999999", "account_code": "200", "tax_type": "OUTPUT2"});
    let file = cli.dir.join("huge.json");
    std::fs::create_dir_all(&cli.dir).unwrap();
    std::fs::write(
        &file,
        serde_json::json!({"client_ref": "huge", "contact": {"name": "c"}, "date": "2026-11-20",
            "lines": vec![line; 150]})
        .to_string(),
    )
    .unwrap();
    let mut command = cli.command();
    command.args(["push", "invoice", "--no-send"]).arg(&file);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.status.success(), "nothing is saved");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("out_of_range"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_a_paired_till_again_moves_it_and_says_so() {
    let world = World::start().await;
    let till = Cli::new();
    till.pair(&world).await;
    let args = ["pair", "--proxy", world.proxy_url.as_str()];
    // The CLI pairs with the till's own credentials, so the person may move it.
    let (page, paired) = till.pair_to(&world, &args, UK).await;
    assert!(
        page.contains("It moved from <strong>Demo Company (NZ)</strong>"),
        "{page}"
    );
    assert_eq!(paired["tenant_name"], "Demo Company (UK)");
    assert_eq!(paired["moved_from"], "Demo Company (NZ)", "{paired}");
    // Unpaired at the proxy behind its back, its credentials no longer prove anything: it pairs
    // again as a new device, without a word about moving.
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(till.dir.join("credentials.json")).unwrap())
            .unwrap();
    let unpaired = world
        .device("the till")
        .call(
            reqwest::Method::DELETE,
            "/v1/device",
            creds["access_token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(unpaired.status, 204);
    let (_, paired) = till.pair_to(&world, &args, NZ).await;
    assert_eq!(paired["tenant_name"], "Demo Company (NZ)");
    assert!(paired.get("moved_from").is_none(), "{paired}");
}
