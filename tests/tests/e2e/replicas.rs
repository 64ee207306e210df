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
    let world = World::start_on_postgres(settings()).await;
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
