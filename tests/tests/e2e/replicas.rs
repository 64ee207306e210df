//! Several proxies on one Postgres database: what one records, the others hear at once.
//! (These run on Postgres whatever the run's backend: replicas need a database they share.)

use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// A device's long-poll on replica B answers within a second of replica A recording its event:
/// B is told through the database (LISTEN/NOTIFY), not by its own next look.
#[tokio::test]
async fn an_event_recorded_on_one_replica_reaches_a_long_poll_on_another_within_a_second() {
    let world = World::start_on(settings(), "postgres").await;
    let (_b, b_url) = world.replica().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    let on_b = device.via(&b_url);
    let start = on_b
        .call(Method::GET, "/v1/events?after=0", &p.access, None)
        .await;
    assert_eq!(start.status, 200, "{}", start.text);
    let mut cursor = start.json["next"].as_i64().unwrap();

    for round in 0..3 {
        let poll = {
            let (on_b, access) = (on_b.via(&b_url), p.access.clone());
            tokio::spawn(async move {
                let a = on_b
                    .call(
                        Method::GET,
                        &format!("/v1/events?after={cursor}&wait=20"),
                        &access,
                        None,
                    )
                    .await;
                (a, Instant::now())
            })
        };
        // The long-poll is waiting on B before A records anything.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!poll.is_finished(), "nothing to answer yet");
        let pushed = device
            .push(
                "invoices",
                &p.access,
                json!([{"client_ref": format!("r{round}"), "contact": {"name": "Ann"}, "date": "2026-11-20",
                        "lines": [{"description": "Tea", "quantity": 1, "unit_amount": "4.00", "account_code": "200", "tax_type": "OUTPUT2"}]}]),
            )
            .await;
        assert_eq!(pushed.status, 202, "{}", pushed.text);
        let recorded = Instant::now();
        let (answer, at) = poll.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
        let events = answer.json["events"].as_array().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e["document"]["client_ref"] == format!("r{round}")),
            "{}",
            answer.text
        );
        let took = at.saturating_duration_since(recorded);
        assert!(
            took < Duration::from_secs(1),
            "B answered {took:?} after A recorded the event"
        );
        println!("round {round}: B's long-poll answered {took:?} after A's push");
        // Delivered (its `sending` and `sent` events recorded) before the next round listens.
        device
            .settle(&p.access, round + 1, Duration::from_secs(30))
            .await;
        let drained = on_b
            .call(
                Method::GET,
                &format!("/v1/events?after={cursor}"),
                &p.access,
                None,
            )
            .await;
        cursor = drained.json["next"].as_i64().unwrap();
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_ledgerlink-proxy-under-test");

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Three proxy processes on one database, the devices (one per organisation) paired through the
/// first and pushing through the other two at random, while one replica after another is
/// SIGKILLed and started again: every invoice reaches Xero exactly once (counted in the sandbox),
/// and Xero's limit, kept tight here, is never hit (no 429), though the organisations' deliveries
/// moved from one replica to another mid-flight.
///
/// Longer soak: `REPLICA_KILLS=20 REPLICA_INVOICES=2000 REPLICA_ORGS=10 cargo test -p
/// ledgerlink-e2e --test e2e replicas::three -- --nocapture`.
#[tokio::test]
async fn three_replicas_killed_in_turn_lose_and_duplicate_nothing_and_never_hit_the_limit() {
    let kills = env_or("REPLICA_KILLS", 5);
    let total = env_or("REPLICA_INVOICES", 500);
    let orgs = env_or("REPLICA_ORGS", 2).max(1);
    let mut world = World::start_on(settings(), "postgres").await;
    // Xero's shape, in a short window so the limit binds: 10 calls an organisation every 2 s.
    let limits = world
        .control(
            Method::PUT,
            "/limits",
            json!({"tenant_per_window": 10, "window_seconds": 2, "tenant_per_day": 1_000_000,
                   "app_per_window": 1_000_000, "tenant_concurrent": 5}),
        )
        .await;
    assert_eq!(limits.status, 200, "{}", limits.text);
    // Xero takes its time answering, so kills land while calls are out (their outcome unknown).
    world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "latency_ms": 300, "phase": "after"}),
        )
        .await;
    let tenants = world.organisations(orgs).await;
    let mut tills = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let device = world.device(&format!("Till {i}"));
        let p = world.pair(&device, &[*t], None).await;
        let m = device
            .call(
                Method::PUT,
                "/v1/mappings",
                &p.access,
                Some(
                    json!({"categories": {"Food": {"account_code": "200", "tax_type": "OUTPUT2"}}}),
                ),
            )
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        tills.push((device, p.access));
    }
    let since = world.last_seq().await;

    // The in-process proxy gives way to three processes: the first on its address (the public
    // URL the pairing pages use), two more beside it.
    world.proxy.kill().await;
    let dir = world.db.parent().unwrap().to_path_buf();
    let config = dir.join("replicas.toml");
    std::fs::write(
        &config,
        "[delivery]\ntenant_per_window = 10\nwindow_secs = 2\n\n[cluster]\nlease_secs = 2\n",
    )
    .unwrap();
    // A log each: a replica's log names it (its id holds its leases).
    let logs: Vec<_> = (0..3)
        .map(|i| dir.join(format!("replica-{i}.log")))
        .collect();
    let addrs = [world.proxy_settings.listen, free_port(), free_port()];
    let mut replicas: Vec<ProxyProcess> = addrs
        .iter()
        .zip(&logs)
        .map(|(a, log)| world.spawn_proxy_on(BIN, &config, log, *a))
        .collect();
    let db = world.postgres().await;
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();

    // Pushes through replicas 2 and 3 at random, the organisations in turn, each batch sent again
    // elsewhere when the one it went to was down (the same client_refs: a resend is answered as
    // the same documents).
    let pushing = {
        let tills: Vec<_> = tills
            .iter()
            .map(|(d, a)| (d.via(&urls[1]), a.clone()))
            .collect();
        let urls = urls.clone();
        tokio::spawn(async move {
            let batch = 25;
            for chunk in 0..total.div_ceil(batch) {
                let (device, access) = &tills[chunk % tills.len()];
                let n = (total - chunk * batch).min(batch);
                let body: Vec<_> = (0..n)
                    .map(|i| json!({"client_ref": format!("r{chunk}-{i:03}"), "contact": {"name": format!("Customer {}", i % 5)},
                        "date": "2026-11-20", "lines": [{"description": "Lunch", "quantity": 1, "unit_amount": "9.50", "sales_category": "Food"}]}))
                    .collect();
                loop {
                    let to = 1 + (uuid::Uuid::new_v4().as_u128() % 2) as usize;
                    let answer = device
                        .via(&urls[to])
                        .try_call(Method::POST, "/v1/invoices", access, Some(json!(body)))
                        .await;
                    if answer.is_some_and(|a| a.status == 202) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    // Kills while delivery runs, at random moments: the replica delivering the organisation while
    // a call of it is out, when that comes within a few seconds (found by its lease and the
    // documents `sending`), else each in turn.
    let in_flight_holder = || async {
        db.query_opt(
            "SELECT l.holder FROM delivery_leases l
              WHERE NOT l.released AND l.expires_at > now()
                AND EXISTS (SELECT 1 FROM documents d WHERE d.connection_id = l.connection_id AND d.state = 'sending')
              LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .map(|r| r.get::<_, uuid::Uuid>(0))
    };
    for k in 0..kills {
        let pause = 500 + (uuid::Uuid::new_v4().as_u128() % 1_000) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let mut holder = None;
        let looking = Instant::now();
        while holder.is_none() && looking.elapsed() < Duration::from_secs(3) {
            holder = in_flight_holder().await;
            if holder.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let victim = holder
            .and_then(|h| {
                logs.iter().position(|log| {
                    std::fs::read_to_string(log)
                        .unwrap_or_default()
                        .lines()
                        .rev()
                        .find(|l| l.contains("proxy ready"))
                        .is_some_and(|l| l.contains(&h.to_string()))
                })
            })
            .unwrap_or(k % 3);
        replicas[victim].child.kill().unwrap(); // SIGKILL
        replicas[victim].child.wait().unwrap();
        replicas[victim] = world.spawn_proxy_on(BIN, &config, &logs[victim], addrs[victim]);
    }
    pushing.await.unwrap();

    // Everything settles, whichever replica delivers it.
    let count = |states: &'static [&'static str]| {
        let db = &db;
        async move {
            let states: Vec<&str> = states.to_vec();
            db.query_one(
                "SELECT count(*) FROM documents WHERE state = ANY($1)",
                &[&states],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let moving = count(&["queued", "sending"]).await;
        if moving == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{moving} documents still moving after 240 s (logs: {})",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(count(&["failed"]).await, 0, "none failed");
    let in_xero = {
        let shared = world.sandbox.shared().clone();
        let sandbox = shared.world();
        let mut refs: Vec<String> = tenants
            .iter()
            .flat_map(|t| sandbox.tenant(*t).unwrap().invoices.iter())
            .filter_map(|i| i.reference.clone())
            .collect();
        refs.sort();
        refs
    };
    let requests = world.sandbox_requests(since).await;
    let limited = requests.iter().filter(|r| r["status"] == 429).count();
    drop(replicas);
    let taken_over: usize = logs
        .iter()
        .map(|log| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .matches("mid-delivery")
                .count()
        })
        .sum();
    println!(
        "{kills} kills over {total} invoices for {orgs} organisations on 3 replicas: {} invoices in Xero, {limited} × 429, {} provider calls, {taken_over} takeovers with documents in flight",
        in_xero.len(),
        requests.len()
    );
    assert_eq!(in_xero.len(), total, "every invoice in Xero exactly once");
    let mut unique = in_xero.clone();
    unique.dedup();
    assert_eq!(unique.len(), total, "none twice");
    assert_eq!(limited, 0, "Xero's limit was never hit");
    assert!(
        taken_over >= 1,
        "no replica took over documents left in flight: the test proved nothing"
    );
}

/// A refresh storm across three replica processes: one Xero token set covers two organisations
/// whose deliveries are leased to different replicas, its access token runs out at Xero, and a
/// thousand device requests that need Xero (`GET /v1/mappings?refresh=true`) come in over all
/// three while both deliveries are calling too. One refresh reaches Xero; every caller is answered
/// and every invoice lands once.
///
/// Pairing makes one connection per consent, so the second organisation (ticked in the first
/// consent too, which Xero's grant covers) is pointed at the first's token set in the database:
/// the shape of a token set shared by several connections that the vault is built for.
#[tokio::test]
async fn a_refresh_storm_over_three_replica_processes_makes_one_refresh_call() {
    use futures_util::StreamExt;
    let mut world = World::start_on(settings(), "postgres").await;
    let limits = world
        .control(
            Method::PUT,
            "/limits",
            json!({"tenant_per_window": 1_000_000, "window_seconds": 60, "tenant_per_day": 1_000_000,
                   "app_per_window": 1_000_000, "tenant_concurrent": 1_000}),
        )
        .await;
    assert_eq!(limits.status, 200, "{}", limits.text);
    let (till_nz, till_uk) = (world.device("NZ till"), world.device("UK till"));
    let nz = world.pair(&till_nz, &[NZ, UK], Some(NZ)).await;
    let uk = world.pair(&till_uk, &[NZ, UK], Some(UK)).await;
    let db = world.postgres().await;
    let connections = world.connections().await;
    let of = |tenant: uuid::Uuid| {
        connections
            .iter()
            .find(|c| c.tenant_id == tenant.to_string())
            .unwrap()
            .clone()
    };
    let (nz_conn, uk_conn) = (of(NZ), of(UK));
    let shared = nz_conn.token_set_id.unwrap();
    db.execute(
        "UPDATE connections SET token_set_id = $1 WHERE id = $2",
        &[&shared, &uk_conn.id],
    )
    .await
    .unwrap();

    // Three processes; leases long enough that a replica paused for a moment keeps its own.
    world.proxy.kill().await;
    let dir = world.db.parent().unwrap().to_path_buf();
    let config = dir.join("replicas.toml");
    std::fs::write(
        &config,
        "[delivery]\ntenant_per_window = 100000\nwindow_secs = 60\n\n[cluster]\nlease_secs = 15\n",
    )
    .unwrap();
    let logs: Vec<_> = (0..3)
        .map(|i| dir.join(format!("replica-{i}.log")))
        .collect();
    let addrs = [world.proxy_settings.listen, free_port(), free_port()];
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    // Xero answers invoices slowly, so each delivery is out at Xero when the storm comes.
    world
        .control(
            Method::POST,
            "/faults",
            json!({"path_prefix": "/api.xro/2.0/Invoices", "method": "PUT", "latency_ms": 1500, "phase": "after"}),
        )
        .await;
    let holder = |connection: uuid::Uuid| {
        let db = &db;
        async move {
            db.query_opt(
                "SELECT holder FROM delivery_leases WHERE connection_id = $1 AND NOT released AND expires_at > now()",
                &[&connection],
            )
            .await
            .unwrap()
            .map(|r| r.get::<_, uuid::Uuid>(0))
        }
    };
    let wait_for_holder = |connection: uuid::Uuid| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(h) = holder(connection).await {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "nobody took {connection}'s lease"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Invoices trickle in for both organisations until told to stop, so both stay leased.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pushing = |device: Device, access: String, tag: &'static str| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!([{"client_ref": format!("{tag}-{n}"), "contact": {"name": "Ann"}, "date": "2026-11-20",
                    "lines": [{"description": "Tea", "quantity": 1, "unit_amount": "4.00", "account_code": "200", "tax_type": "OUTPUT2"}]}]);
                let a = device
                    .try_call(Method::POST, "/v1/invoices", &access, Some(body))
                    .await;
                if a.is_some_and(|a| a.status == 202) {
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            n
        })
    };
    let mut replicas = vec![world.spawn_proxy_on(BIN, &config, &logs[0], addrs[0])];
    let pushing_nz = pushing(till_nz.via(&urls[0]), nz.access.clone(), "nz");
    let first = wait_for_holder(nz_conn.id).await;
    // The first replica pauses while the others start and the UK organisation gets work, so one
    // of them takes its lease; it carries on with its own afterwards.
    let pid = replicas[0].child.id().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    replicas.push(world.spawn_proxy_on(BIN, &config, &logs[1], addrs[1]));
    replicas.push(world.spawn_proxy_on(BIN, &config, &logs[2], addrs[2]));
    let pushing_uk = pushing(till_uk.via(&urls[1]), uk.access.clone(), "uk");
    let second = wait_for_holder(uk_conn.id).await;
    signal("-CONT");
    assert_ne!(
        first, second,
        "the two organisations are delivered by different replicas"
    );

    // Xero's clock moves on: the access token has expired there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.advance(1800).await;
    let since = world.last_seq().await;
    let answers: Vec<u16> = futures_util::stream::iter(0..1000)
        .map(|i| {
            let (device, access) = if i % 2 == 0 {
                (&till_nz, &nz.access)
            } else {
                (&till_uk, &uk.access)
            };
            let device = device.via(&urls[i % 3]);
            async move {
                device
                    .call(Method::GET, "/v1/mappings?refresh=true", access, None)
                    .await
                    .status
                    .as_u16()
            }
        })
        .buffer_unordered(250)
        .collect()
        .await;
    let during = (holder(nz_conn.id).await, holder(uk_conn.id).await);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent_nz, sent_uk) = (pushing_nz.await.unwrap(), pushing_uk.await.unwrap());
    till_nz
        .via(&urls[2])
        .settle(&nz.access, sent_nz, Duration::from_secs(120))
        .await;
    till_uk
        .via(&urls[2])
        .settle(&uk.access, sent_uk, Duration::from_secs(120))
        .await;

    let refreshes = refresh_calls(&world.sandbox_requests(since).await);
    let ok = answers.iter().filter(|s| **s == 200).count();
    println!(
        "1,000 callers over 3 replicas, leases held by {first} and {second} (during the storm: {during:?}): {ok} answered 200, {} refresh call(s) at Xero, {sent_nz} + {sent_uk} invoices delivered",
        refreshes.len()
    );
    assert_eq!(ok, 1000, "every caller answered: {answers:?}");
    assert_eq!(refreshes, [Some(200)], "exactly one refresh reached Xero");
    let in_xero = |tenant| {
        let shared = world.sandbox.shared().clone();
        let sandbox = shared.world();
        let mut refs: Vec<String> = sandbox
            .tenant(tenant)
            .unwrap()
            .invoices
            .iter()
            .filter_map(|i| i.reference.clone())
            .collect();
        let n = refs.len();
        refs.sort();
        refs.dedup();
        (n, refs.len())
    };
    assert_eq!(in_xero(NZ), (sent_nz, sent_nz), "every NZ invoice once");
    assert_eq!(in_xero(UK), (sent_uk, sent_uk), "every UK invoice once");
    drop(replicas);
}

/// A client's pairing budget is one across replicas: starts spread over three proxies are counted
/// together, so a fourth start is refused whichever proxy it reaches.
#[tokio::test]
async fn pairing_starts_spread_over_replicas_share_one_budget() {
    let mut s = settings();
    s.pairing.max_pairings_per_address = 3;
    let world = World::start_on(s, "postgres").await;
    let (_b, b_url) = world.replica().await;
    let (_c, c_url) = world.replica().await;
    let urls = [world.proxy_url.clone(), b_url, c_url];
    for (i, url) in urls.iter().enumerate() {
        let started = world.device(&format!("Till {i}")).via(url).start().await;
        assert_eq!(started.status, 200, "{}", started.text);
    }
    for url in &urls {
        let over = world.device("One more").via(url).start().await;
        assert_eq!(over.status, 429, "{url}: {}", over.text);
        assert_eq!(over.json["error"], "rate_limited");
    }
}

/// Xero sends a webhook again when it heard no answer, and a load balancer may hand the copies to
/// different replicas: the till hears of the change once. (Without the sightings shared in the
/// database, each of the four copies below would tell it.)
#[tokio::test]
async fn a_webhook_sent_again_to_two_replicas_reaches_the_till_once() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut s = settings();
    s.providers.xero.webhook_key = Some(ledgerlink_wire::Secret::new(
        ledgerlink_sandbox::settings::DEMO_WEBHOOK_KEY,
    ));
    let world = World::start_on(s, "postgres").await;
    let (_b, b_url) = world.replica().await;
    let device = world.device("Till");
    let p = world.pair(&device, &[NZ], None).await;
    device
        .push(
            "invoices",
            &p.access,
            json!([{"client_ref": "part-paid", "contact": {"name": "Ann"}, "date": "2026-11-20",
                    "lines": [{"description": "Tea", "quantity": 1, "unit_amount": "40.00", "account_code": "200", "tax_type": "OUTPUT2"}]}]),
        )
        .await;
    let docs = device.settle(&p.access, 1, Duration::from_secs(30)).await;
    let xero_id = docs[0]["xero_id"].as_str().unwrap().to_string();
    // Part paid in Xero: it stays AUTHORISED, with less due, which the till is told as news.
    let paid = world
        .control(
            Method::POST,
            &format!("/invoices/{xero_id}/pay"),
            json!({"amount": "10.00"}),
        )
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    let cursor = device
        .call(Method::GET, "/v1/events?after=0", &p.access, None)
        .await
        .json["next"]
        .as_i64()
        .unwrap();

    let body = json!({"events": [{
        "resourceUrl": format!("https://api.xero.com/api.xro/2.0/Invoices/{xero_id}"),
        "resourceId": xero_id, "eventDateUtc": "2026-11-20T10:00:00.000", "eventType": "UPDATE",
        "eventCategory": "INVOICE", "tenantId": NZ.to_string(), "tenantType": "ORGANISATION"}],
        "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "KQWPZDSTCVCZNPFKJRLU"})
    .to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(
        ledgerlink_sandbox::settings::DEMO_WEBHOOK_KEY.as_bytes(),
    )
    .unwrap();
    mac.update(body.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let copies = [&world.proxy_url, &b_url, &world.proxy_url, &b_url].map(|url| {
        reqwest::Client::new()
            .post(format!("{url}/webhooks/xero"))
            .header("x-xero-signature", &signature)
            .body(body.clone())
            .send()
    });
    for answer in futures_util::future::join_all(copies).await {
        assert_eq!(answer.unwrap().status(), 200);
    }

    // The news arrives (each replica handles its copies after answering)...
    let news = |events: &serde_json::Value| {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "provider" && e["amount_paid"] == "10.00")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let feed = device
            .call(
                Method::GET,
                &format!("/v1/events?after={cursor}&wait=2"),
                &p.access,
                None,
            )
            .await;
        if news(&feed.json) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no news: {}", feed.text);
    }
    // ...and once every copy has been handled, it is there once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let feed = device
        .call(
            Method::GET,
            &format!("/v1/events?after={cursor}"),
            &p.access,
            None,
        )
        .await;
    assert_eq!(news(&feed.json), 1, "{}", feed.text);
}
