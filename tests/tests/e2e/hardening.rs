//! The proxy under hostile load and hostile input: one client cannot take it down, one device cannot
//! starve an organisation, memory and disk stay bounded, and what is accepted is what Xero can take.

use crate::push::{invoice, paired_with_mappings};
use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-proxy-under-test");

/// The proxy binary as a child process with its open-files limit (soft and hard) set to `files`
/// before it starts, as systemd's default of 1,024 would; killed when dropped.
struct Child {
    process: std::process::Child,
    url: String,
    _dir: TempDir,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn proxy_with_file_limit(files: u32) -> Child {
    let dir = TempDir(std::env::temp_dir().join(format!("ll-hard-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut process = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn {files} && ulimit -Hn {files} && exec \"$0\" \"$@\""
        ))
        .arg(BIN)
        .args(["--listen", "127.0.0.1:0", "--dev", "--database"])
        .arg(dir.0.join("proxy.db"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEDGERLINK_XERO_CLIENT_ID", CLIENT_ID)
        .env("LEDGERLINK_XERO_CLIENT_SECRET", CLIENT_SECRET)
        .env("LEDGERLINK_XERO_BASE_URL", "http://127.0.0.1:9")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(process.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("ledgerlink-proxy listening on ")
        .unwrap_or_else(|| panic!("the proxy did not start: {first:?}"))
        .to_string();
    Child {
        process,
        url,
        _dir: dir,
    }
}

/// This test process needs more than 1,024 sockets of its own.
fn raise_own_file_limit() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::increase_nofile_limit(hard).unwrap();
    assert!(
        hard >= 2_000,
        "this test opens 1,100 connections: the hard open-files limit is {hard}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_half_sent_requests_from_one_address_leave_everyone_else_served() {
    raise_own_file_limit();
    let proxy = proxy_with_file_limit(1024);
    let addr: std::net::SocketAddr = proxy.url.trim_start_matches("http://").parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..1100 {
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            continue;
        };
        use tokio::io::AsyncWriteExt;
        // Headers never finished.
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n")
            .await;
        held.push(stream);
    }
    assert!(held.len() >= 1000, "the half-sent requests were made");
    // Another client, from another address, is served at once while they are held.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let health = other
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .expect("/healthz answers within 1 s");
    assert_eq!(health.status(), 200);
    let pairing = other
        .post(format!("{}/v1/pairings", proxy.url))
        .form(&[
            ("client_id", "ledgerlink-desktop"),
            ("device_id", &uuid::Uuid::new_v4().to_string()),
            ("device_name", "Front counter"),
        ])
        .send()
        .await
        .expect("a pairing starts within 1 s");
    assert_eq!(pairing.status(), 200);
    // The held ones are cut once their headers are late (5 s): the proxy lets go of them.
    let started = std::time::Instant::now();
    let mut cut = 0;
    for stream in held.iter_mut().take(256) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            cut += 1;
        }
    }
    assert_eq!(cut, 256, "each held connection is closed by the proxy");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_device_holds_at_most_eight_event_streams_and_unpairing_ends_them() {
    let world = World::start().await;
    let (_device, p) = paired_with_mappings(&world).await;
    let http = reqwest::Client::new();
    let open = || {
        http.get(format!("{}/v1/events?after=0", world.proxy_url))
            .bearer_auth(&p.access)
            .header("accept", "text/event-stream")
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..8 {
        let r = open().await.unwrap();
        assert_eq!(r.status(), 200);
        streams.push(r);
    }
    let ninth = Answer::read(open().await.unwrap()).await;
    assert_eq!(ninth.status, 429, "{}", ninth.text);
    assert_eq!(ninth.code(), "rate_limited");
    assert!(ninth.headers.contains_key("retry-after"));
    // A long-poll counts too.
    let poll = Answer::read(
        http.get(format!("{}/v1/events?after=0&wait=1", world.proxy_url))
            .bearer_auth(&p.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(poll.status, 429);

    let unpaired = http
        .delete(format!("{}/v1/device", world.proxy_url))
        .bearer_auth(&p.access)
        .send()
        .await
        .unwrap();
    assert_eq!(unpaired.status(), 204);
    for mut stream in streams {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, stream.chunk()).await {
                Ok(Ok(Some(_))) => continue, // events written before the end
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => panic!("an event stream outlived the device's credentials"),
            }
        }
    }
}

/// `n` payments of 1.00 by card, each to the invoice `target(i)`.
fn payments(prefix: &str, n: usize, target: impl Fn(usize) -> String) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"client_ref": format!("{prefix}-{i}"), "invoice": {"client_ref": target(i)},
                       "amount": "1.00", "date": "2026-11-20", "tender": "card"})
            })
            .collect(),
    )
}

#[tokio::test]
async fn payments_waiting_for_invoices_never_hold_back_a_ready_one() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let waiting = device
        .push(
            "payments",
            &p.access,
            payments("waits", 520, |i| format!("never-{i}")),
        )
        .await;
    assert_eq!(waiting.status, 202, "{}", waiting.text);
    let sent = device
        .push("invoices", &p.access, json!([invoice("inv-1", "Walk-in")]))
        .await;
    assert_eq!(sent.status, 202);
    let ready = device
        .push(
            "payments",
            &p.access,
            payments("ready", 1, |_| "inv-1".into()),
        )
        .await;
    assert_eq!(ready.status, 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let doc = device
            .call(
                Method::GET,
                "/v1/documents?client_ref=ready-0",
                &p.access,
                None,
            )
            .await;
        if doc.json["documents"][0]["state"] == "sent" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ready payment is still waiting behind 520 others: {}",
            doc.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued = device
        .call(
            Method::GET,
            "/v1/documents?state=queued&kind=payment&limit=1000",
            &p.access,
            None,
        )
        .await;
    assert_eq!(
        queued.json["documents"].as_array().unwrap().len(),
        520,
        "the waiting ones still wait for their invoices"
    );
    let paid = world.xero_get("Invoices").await;
    assert_eq!(
        paid["Invoices"][0]["AmountPaid"].as_f64(),
        Some(1.0),
        "the payment reached its invoice in Xero"
    );
}

/// An invoice of `lines` minimal lines.
fn long_invoice(client_ref: &str, lines: usize) -> Value {
    let line =
        json!({"description": "x", "quantity": 1, "unit_amount": 1, "sales_category": "Food"});
    json!({"client_ref": client_ref, "contact": {"name": "Wholesale"}, "date": "2026-11-20",
           "lines": vec![line; lines]})
}

#[tokio::test]
async fn documents_and_bodies_are_bounded_by_what_xero_takes() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    // 40,000 lines: refused at once, with one problem that names the limit.
    let long = device
        .push("invoices", &p.access, json!([long_invoice("long", 40_000)]))
        .await;
    assert_eq!(
        long.status,
        422,
        "{}",
        &long.text[..long.text.len().min(300)]
    );
    let problems = long.json["items"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["code"], "too_long");
    assert_eq!(problems[0]["path"], "invoices[0].lines");
    assert!(problems[0]["message"]
        .as_str()
        .unwrap()
        .contains("at most 200"));
    // 200 lines is fine.
    let ok = device
        .push("invoices", &p.access, json!([long_invoice("ok", 200)]))
        .await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    // A body over 4 MiB: 413, whether its length is declared or it comes in chunks.
    let big = json!({"invoices": (0..400).map(|i| long_invoice(&format!("big-{i}"), 200)).collect::<Vec<_>>()})
        .to_string();
    assert!(big.len() > 4 * 1024 * 1024);
    let http = reqwest::Client::new();
    let declared = Answer::read(
        http.post(format!("{}/v1/invoices", world.proxy_url))
            .bearer_auth(&p.access)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(declared.status, 413);
    assert_eq!(declared.code(), "payload_too_large");
    // Chunked, no length declared: refused once 4 MiB have come.
    let addr = world.proxy_url.trim_start_matches("http://").to_string();
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(
        format!(
            "POST /v1/invoices HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            p.access
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for chunk in big.as_bytes().chunks(64 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if raw.write_all(&frame).await.is_err() {
            break; // the proxy answered and closed before the end
        }
    }
    let _ = raw.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    assert!(answer.contains("payload_too_large"));
    // Once every document of a bundle has its outcome, the bundle's stored body is gone.
    device.settle(&p.access, 1, Duration::from_secs(30)).await;
    assert_eq!(
        world.count_rows("bundles").await,
        0,
        "settled bundles keep no body"
    );
}

#[tokio::test]
async fn a_full_disk_answers_unavailable_and_nothing_accepted_is_lost() {
    let world = World::start().await;
    let (device, p) = paired_with_mappings(&world).await;
    let batch = |prefix: &str| -> Value {
        Value::Array(
            (0..40)
                .map(|i| invoice(&format!("{prefix}-{i}"), &format!("Customer {i}")))
                .collect(),
        )
    };
    let first = device.push("invoices", &p.access, batch("before")).await;
    assert_eq!(first.status, 202);
    device.settle(&p.access, 40, Duration::from_secs(30)).await;
    let logged_before = logs::text().matches("the database refuses writes").count();
    // The disk is full: the database may not grow by a page.
    let storage = world.proxy.state().storage.clone();
    storage.health().limit_size(Some(1)).await.unwrap();
    for _ in 0..5 {
        let refused = device.push("invoices", &p.access, batch("during")).await;
        assert_eq!(refused.status, 503, "{}", refused.text);
        assert_eq!(refused.code(), "unavailable");
        assert!(refused.json["message"]
            .as_str()
            .unwrap()
            .contains("Nothing was stored"));
        assert!(refused.headers.contains_key("retry-after"));
    }
    let ready = reqwest::get(format!("{}/readyz", world.proxy_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        logs::text().matches("the database refuses writes").count() - logged_before,
        1,
        "warned once, not on every failure"
    );
    // Space again: ready, and the device's resend is taken.
    storage.health().limit_size(None).await.unwrap();
    let ready = reqwest::get(format!("{}/readyz", world.proxy_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let resent = device.push("invoices", &p.access, batch("during")).await;
    assert_eq!(resent.status, 202, "{}", resent.text);
    let docs = device.settle(&p.access, 80, Duration::from_secs(60)).await;
    assert_eq!(docs.len(), 80);
    assert!(
        docs.iter().all(|d| d["state"] == "sent"),
        "every accepted document reached Xero"
    );
    let in_xero = world.xero_get("Invoices").await;
    assert_eq!(in_xero["Invoices"].as_array().unwrap().len(), 80);
}

#[tokio::test]
async fn wrong_operator_tokens_are_throttled_and_logged_without_the_token() {
    let mut settings = settings();
    settings.admin_token = Some(ledgerlink_wire::Secret::new("right-admin-token-value"));
    let world = World::start_with(settings).await;
    for i in 0..10 {
        let wrong = world
            .admin(
                Method::GET,
                "/connections",
                &format!("guess-number-{i}-abcdef"),
            )
            .await;
        assert_eq!(wrong.status, 401);
    }
    let locked = world
        .admin(Method::GET, "/connections", "right-admin-token-value")
        .await;
    assert_eq!(
        locked.status, 429,
        "past the limit even the right token waits"
    );
    assert_eq!(locked.code(), "rate_limited");
    assert!(locked.headers.contains_key("retry-after"));
    let logged = logs::text();
    assert!(
        logged
            .matches("operator API: wrong or missing operator token")
            .count()
            >= 10
    );
    assert!(
        !logged.contains("guess-number-"),
        "a presented token reached the log"
    );
    assert!(!logged.contains("right-admin-token-value"));
    // Scheme in any case (RFC 7235), once the window turns.
    world.advance(600).await;
    let r = reqwest::Client::new()
        .get(format!("{}/admin/v1/connections", world.proxy_url))
        .header("authorization", "BEARER right-admin-token-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
