//! Putting a mistake right with the `ledgerlink` CLI, as a person at a till would: a refused invoice
//! corrected under its client_ref, a rejected one sent again once its category is mapped, one
//! discarded; exit codes that tell a script whether anything still needs attention; a status that
//! works with the proxy down; output into a closed pipe.

use crate::cli::{example, Cli, CLI};
use ledgerlink_e2e::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

/// Writes `document` to a file in the till's directory and answers its path.
fn file(cli: &Cli, name: &str, document: &Value) -> String {
    let path = cli.dir.join(format!("{name}.json"));
    std::fs::create_dir_all(&cli.dir).unwrap();
    std::fs::write(&path, document.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

async fn state_of(cli: &Cli, client_ref: &str) -> Value {
    cli.outbox(&[]).await[client_ref].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_puts_its_mistakes_right_and_its_exit_codes_say_when_all_is_well() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with(settings).await;
    let till = Cli::new();
    till.pair(&world).await;
    till.map_the_examples().await;

    // 1. Xero refuses an invoice (an account code it does not have): sync ends with exit code 3.
    let mut refused = example("invoice.json");
    refused["client_ref"] = json!("till-refused");
    refused["lines"][1]["account_code"] = json!("999");
    let (code, _, _) = till
        .exit(&["push", "invoice", &file(&till, "refused", &refused)])
        .await;
    assert_eq!(code, 0, "the proxy took it: nothing needs attention yet");
    let (code, lines, _) = till.exit(&["sync", "--timeout", "60"]).await;
    assert_eq!(code, 3, "{lines:?}");
    assert_eq!(lines.last().unwrap()["needs_attention"], 1);
    let shown = till.ok(&["show", "till-refused"]).await;
    assert_eq!(shown["state"], "failed");
    assert_eq!(
        shown["message"],
        "Account code '999' is not a valid code for this document."
    );
    let advice = shown["advice"].as_str().unwrap();
    assert!(
        advice.contains("ledgerlink retry till-refused") && advice.contains("same client_ref"),
        "{advice}"
    );

    // Corrected under the same client_ref: the next version, sent once, its history kept.
    let mut fixed = refused.clone();
    fixed["lines"][1]["account_code"] = json!("200");
    let (code, lines, _) = till
        .exit(&["push", "invoice", &file(&till, "fixed", &fixed)])
        .await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0]["saved"], "corrected", "{lines:?}");
    let (code, lines, _) = till.exit(&["sync", "--timeout", "60"]).await;
    assert_eq!(code, 0, "{lines:?}");
    let shown = till.ok(&["show", "till-refused"]).await;
    assert_eq!(shown["state"], "sent", "{shown}");
    assert_eq!(shown["version"], 2);
    assert!(shown["advice"].is_null());
    assert_eq!(shown["history"][0]["state"], "failed", "{shown}");
    assert_eq!(
        shown["history"][0]["document"]["lines"][1]["account_code"],
        "999"
    );
    let in_xero = world.xero_get("Invoices").await;
    assert_eq!(in_xero["Invoices"].as_array().unwrap().len(), 1);

    // 2. The proxy rejects one whose category is not mapped: push ends with exit code 3, and the
    // error names the command that fixes it.
    let mut tea = example("invoice.json");
    tea["client_ref"] = json!("till-tea");
    tea["lines"][0]["sales_category"] = json!("Tea");
    let (code, lines, _) = till
        .exit(&["push", "invoice", &file(&till, "tea", &tea)])
        .await;
    assert_eq!(code, 3, "{lines:?}");
    let rejected = state_of(&till, "till-tea").await;
    assert_eq!(rejected["state"], "rejected");
    let message = rejected["message"].as_str().unwrap();
    assert!(message.contains("'Tea' is not mapped"), "{message}");
    assert!(
        !message.contains("/v1/"),
        "no HTTP paths in messages: {message}"
    );
    let shown = till.ok(&["show", "till-tea"]).await;
    assert!(
        shown["advice"]
            .as_str()
            .unwrap()
            .contains("ledgerlink mappings set category"),
        "{shown}"
    );
    // Sending it again before the mapping exists changes nothing, and says so with exit code 3.
    let (code, _, _) = till.exit(&["retry", "till-tea"]).await;
    assert_eq!(code, 3);
    till.ok(&[
        "mappings",
        "set",
        "category",
        "Tea",
        "--account",
        "200",
        "--tax-type",
        "OUTPUT2",
    ])
    .await;
    let (code, lines, _) = till.exit(&["retry", "till-tea"]).await;
    assert_eq!(code, 0, "{lines:?}");
    let (code, _, _) = till.exit(&["sync", "--timeout", "60"]).await;
    assert_eq!(code, 0);
    assert_eq!(state_of(&till, "till-tea").await["state"], "sent");

    // 3. Another refused one is discarded. Without a terminal and without --yes nothing changes.
    let mut twice = example("invoice.json");
    twice["client_ref"] = json!("till-twice");
    twice["lines"][1]["account_code"] = json!("999");
    till.exit(&["push", "invoice", &file(&till, "twice", &twice)])
        .await;
    let (code, _, _) = till.exit(&["sync", "--timeout", "60"]).await;
    assert_eq!(code, 3);
    let (code, lines, stderr) = till
        .exit(&["discard", "till-twice", "--reason", "rung up twice"])
        .await;
    assert_eq!(code, 2, "{lines:?} {stderr}");
    assert_eq!(lines.last().unwrap()["code"], "usage");
    assert!(
        lines.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("--yes"),
        "{lines:?}"
    );
    assert_eq!(
        state_of(&till, "till-twice").await["state"],
        "failed",
        "unchanged"
    );
    let (code, _, _) = till
        .exit(&["discard", "till-twice", "--reason", " ", "--yes"])
        .await;
    assert_eq!(code, 2, "a blank reason is refused");
    let discarded = till
        .ok(&[
            "discard",
            "till-twice",
            "--reason",
            "rung up twice",
            "--yes",
        ])
        .await;
    assert_eq!(discarded["document"]["state"], "discarded");
    assert_eq!(discarded["document"]["discard_reason"], "rung up twice");
    // It leaves the counts: nothing needs attention, so sync and status are all good.
    let (code, lines, _) = till.exit(&["sync", "--timeout", "60"]).await;
    assert_eq!(code, 0, "{lines:?}");
    let status = till.ok(&["status"]).await;
    assert_eq!(status["needs_attention"], 0);
    assert_eq!(status["outbox"]["discarded"], 1);
    let (code, lines, _) = till.exit(&["retry", "--all-failed"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines[0]["event"], "nothing_to_retry");
    // A document in Xero is neither sent again nor discarded.
    let (code, lines, _) = till.exit(&["retry", "till-refused"]).await;
    assert_eq!(code, 1);
    assert_eq!(lines.last().unwrap()["code"], "conflict");
    assert_eq!(
        till.exit(&["discard", "till-refused", "--reason", "x", "--yes"])
            .await
            .0,
        1
    );

    // 4. Disconnecting is destructive too: refused without a terminal and without --yes.
    let (code, _, _) = till.exit(&["disconnect"]).await;
    assert_eq!(code, 2);
    assert_eq!(till.ok(&["status"]).await["status"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_with_the_proxy_down_and_output_into_a_closed_pipe_ends_quietly() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let mut world = World::start_with(settings).await;
    let till = Cli::new();
    till.pair(&world).await;
    till.ok(&["sync", "--timeout", "20"]).await;

    // `ledgerlink --json mappings | head -c 1`, as a person would type it.
    let piped = Command::new("bash")
        .arg("-c")
        .arg(r#"set -o pipefail; LEDGERLINK_CREDENTIALS=file "$0" --data-dir "$1" --json mappings 2>"$1/stderr" | head -c 1 >/dev/null"#)
        .arg(CLI)
        .arg(&till.dir)
        .status()
        .unwrap();
    assert!(piped.success(), "{piped:?}");
    assert_eq!(
        std::fs::read_to_string(till.dir.join("stderr")).unwrap(),
        ""
    );
    // And with the reader surely gone before the first line is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = till.command();
    command
        .args(["mappings"])
        .stdout(writer)
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    world.stop_proxy().await;
    let (code, lines, stderr) = till.exit(&["status"]).await;
    assert_eq!(code, 0, "{lines:?} {stderr}");
    let status = lines.last().unwrap();
    assert_eq!(status["organisation_name"], "Demo Company (NZ)");
    assert_eq!(status["online"], false);
    assert_eq!(status["last_known_status"], "connected");
    let last_sync = status["last_sync_at"].as_str().expect("synced before");
    assert!(
        chrono::DateTime::parse_from_rfc3339(last_sync).is_ok(),
        "RFC 3339 in --json: {status}"
    );
    // In words: the organisation, and that the proxy cannot be reached.
    let mut text = Command::new(CLI);
    text.arg("--data-dir")
        .arg(&till.dir)
        .arg("status")
        .env("LEDGERLINK_CREDENTIALS", "file");
    let out = tokio::task::spawn_blocking(move || text.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Demo Company (NZ)") && text.contains("cannot be reached"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("Last sync: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.ends_with(" ago") || line.ends_with("just now"),
        "relative in words: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_organisation_is_connected_again_with_reconnect() {
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with(settings).await;
    let till = Cli::new();
    till.pair(&world).await;
    let (code, lines, _) = till.exit(&["disconnect", "--yes"]).await;
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines.last().unwrap()["event"], "disconnected");
    // Disconnecting revoked every device of the organisation, this one too: status says so, and
    // how to come back, in words it can act on.
    let (code, lines, _) = till.exit(&["status"]).await;
    assert_eq!(code, 0, "{lines:?}");
    let status = lines.last().unwrap();
    assert_eq!(status["status"], "disconnected", "{status}");
    assert!(
        status["advice"]
            .as_str()
            .unwrap()
            .contains("ledgerlink reconnect"),
        "{status}"
    );
    let (code, lines, _) = till.exit(&["sync", "--timeout", "10"]).await;
    assert_eq!(code, 1);
    assert!(
        lines.last().unwrap()["advice"]
            .as_str()
            .unwrap()
            .contains("ledgerlink reconnect"),
        "{lines:?}"
    );
    // `reconnect` pairs the same device again, with the proxy it used: no URL to remember.
    let page = till.pair_by(&world, &["reconnect"]).await;
    assert!(page.contains("Demo Company (NZ)"), "{page}");
    let status = till.ok(&["status"]).await;
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(status["online"], true);
}
