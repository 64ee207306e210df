//! Documents cut into calls, each call's idempotency key, and recorded bundles: a bundle is kept
//! exactly as sent so that while its outcome is unknown it goes again byte for byte under the same
//! key, and the provider answers from its replay instead of creating anything twice.

use ledgerlink_wire::documents::DocumentState;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Stop;
use crate::providers::{Documents, Limits};
use crate::store::{Bundle, DocumentRow, DocumentUpdate};

/// An idempotency key from `parts`, each length-prefixed so no two lists of parts share a key.
/// Keys already sent must never change (tests pin them).
pub fn key_for(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"ledgerlink bundle v1");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Documents cut into calls of at most `limits.batch` documents and `limits.max_body_bytes` of
/// JSON each (a document larger than that alone goes alone; intake's line limit keeps any one
/// under it).
pub fn bundles<T>(ready: Vec<(T, Value)>, limits: &Limits) -> Vec<Vec<(T, Value)>> {
    let mut out = Vec::new();
    let mut part: Vec<(T, Value)> = Vec::new();
    let mut size = 0;
    for (doc, x) in ready {
        let len = x.to_string().len() + 1;
        if !part.is_empty() && (part.len() == limits.batch || size + len > limits.max_body_bytes) {
            out.push(std::mem::take(&mut part));
            size = 0;
        }
        size += len;
        part.push((doc, x));
    }
    if !part.is_empty() {
        out.push(part);
    }
    out
}

/// A bundle of `members` to send as `body` to `path`: its key covers what is sent, not only which
/// documents, so the same documents sent again with something changed (a contact found again by
/// name) are a new request.
pub fn seal(
    connection_id: Uuid,
    path: String,
    collection: &str,
    members: &[&DocumentRow],
    body: String,
) -> Bundle {
    let identities: Vec<[u8; 24]> = members.iter().map(|d| d.send_identity()).collect();
    let mut parts: Vec<&[u8]> = identities.iter().map(|i| i.as_slice()).collect();
    parts.push(body.as_bytes());
    Bundle {
        key: key_for(&parts),
        connection_id,
        path,
        collection: collection.to_string(),
        body,
        members: members.iter().map(|d| d.id).collect(),
    }
}

/// Sends a recorded bundle (the first time or again): recorded and its members claimed in one
/// step, sent, and each member's outcome saved; after a failed call the members go back to the
/// queue (their outcome unknown if the call may have arrived).
pub async fn send_recorded<D: Documents>(d: &mut D, bundle: &Bundle) -> Result<(), Stop> {
    let now = d.round().state.clock.now();
    let b = bundle.clone();
    let round = d.round();
    let started = round
        .state
        .storage
        .documents()
        .start_bundle(&round.lease, &b, now)
        .await
        .map_err(Stop::store)?;
    if !started {
        // A member was discarded since the bundle was made: nothing was sent, and the next round
        // makes the bundle again without it.
        return Ok(());
    }
    d.round().state.events_ready.notify_waiters();
    let answer = match d.deliver_bundle(bundle).await {
        Ok(a) => a,
        Err(stop) => {
            d.round().requeue_ids(&bundle.members, &stop).await?;
            return Err(stop);
        }
    };
    let updates: Vec<DocumentUpdate> = d.outcomes(bundle, &answer).await?;
    debug_assert!(updates
        .iter()
        .all(|u| u.state != DocumentState::Sending && bundle.members.contains(&u.id)));
    d.round().save(updates).await
}

/// Bundles whose outcome is unknown and still inside the provider's replay window go again
/// exactly as they were sent, under the same key.
pub async fn resend_open<D: Documents>(d: &mut D) -> Result<(), Stop> {
    let round = d.round();
    let window = chrono::Duration::seconds(round.state.settings.delivery.replay_window_secs as i64);
    let since = round.state.clock.now() - window;
    let connection = round.connection.id;
    let keys = round
        .state
        .storage
        .documents()
        .open_bundles(connection, since)
        .await
        .map_err(Stop::store)?;
    for key in keys {
        let k = key.clone();
        let Some(bundle) = d
            .round()
            .state
            .storage
            .documents()
            .bundle(&k)
            .await
            .map_err(Stop::store)?
        else {
            continue;
        };
        tracing::info!(bundle = %key, "resending a bundle whose outcome is unknown, under its key");
        send_recorded(d, &bundle).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn limits(batch: usize, max_body_bytes: usize) -> Limits {
        Limits {
            per_window: 60,
            app_per_window: 10_000,
            window: Duration::from_secs(60),
            batch,
            max_body_bytes,
            replay_window: Some(Duration::from_secs(300)),
            longer: Vec::new(),
            heavy: None,
        }
    }

    #[test]
    fn keys_are_pinned_and_length_prefixed() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(
            key_for(&[id.as_bytes(), b"invoice"]),
            "c766ebb2a29ccc6201c56bd74925371ae46afa5ec90ff5a6b65d5774c0813d83"
        );
        assert_ne!(key_for(&[b"ab", b"c"]), key_for(&[b"a", b"bc"]));
    }

    #[test]
    fn bundles_stop_at_the_batch_size() {
        let ready: Vec<(usize, Value)> = (0..120).map(|i| (i, json!({"n": i}))).collect();
        let parts = bundles(ready, &limits(50, 3_400_000));
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, [50, 50, 20]);
        assert_eq!(parts[2][19].0, 119, "in order");
    }

    #[test]
    fn bundles_stop_before_the_body_limit_and_a_large_document_goes_alone() {
        let big = json!({"text": "x".repeat(900)});
        let small = json!({"n": 1});
        let ready = vec![
            (0, small.clone()),
            (1, big.clone()),
            (2, small.clone()),
            (3, big.clone()),
            (4, big),
        ];
        let parts = bundles(ready, &limits(50, 1_000));
        let members: Vec<Vec<i32>> = parts
            .iter()
            .map(|p| p.iter().map(|(d, _)| *d).collect())
            .collect();
        assert_eq!(members, vec![vec![0, 1, 2], vec![3], vec![4]]);
        let alone = bundles(
            vec![(0, json!({"text": "x".repeat(2_000)}))],
            &limits(50, 1_000),
        );
        assert_eq!(alone.len(), 1);
    }

    #[test]
    fn bundles_of_nothing_are_no_calls() {
        assert!(bundles(Vec::<(u8, Value)>::new(), &limits(50, 1_000)).is_empty());
    }
}
