//! The stories every backend must tell the same way, run through the async interface only (no
//! SQL): pairing and its one-way transitions, the connection cap, moving a device, guarded status
//! writes, token sets and device refresh tokens that rotate once, documents and their state rules,
//! the outbox, bundles, events after a cursor, and the sweep. Each story is a function of a fresh
//! [`Storage`]; `conformance!` runs every one of them against a backend, so a backend is added by
//! one line, and a guard missing from any backend fails its story there.

use chrono::{DateTime, Duration, Utc};
use ledgerlink_wire::documents::{DocumentKind, DocumentState};
use ledgerlink_wire::ConnectionStatus;
use uuid::Uuid;

use super::*;

pub(super) fn pairing(now: DateTime<Utc>, expires_in: i64) -> Pairing {
    Pairing {
        id: Uuid::new_v4(),
        device_code_hash: Uuid::new_v4().as_bytes().to_vec(),
        user_code: "BCDFGHJK".into(),
        client_id: "c".into(),
        device_id: Uuid::new_v4(),
        device_name: "Till".into(),
        provider: "xero".into(),
        status: PairingStatus::Pending,
        connection_id: None,
        created_at: now,
        expires_at: now + Duration::seconds(expires_in),
        interval_secs: 5,
        last_poll_at: None,
        moves_from: None,
    }
}

fn approved(a: Approval) -> ConnectionRow {
    match a {
        Approval::Approved(c, _) => c,
        other => panic!("not approved: {other:?}"),
    }
}

pub(super) fn connection(now: DateTime<Utc>) -> ConnectionRow {
    ConnectionRow {
        id: Uuid::new_v4(),
        provider: "xero".into(),
        tenant_id: Uuid::new_v4().to_string(),
        tenant_name: "Org".into(),
        xero_connection_id: None,
        token_set_id: None,
        status: ConnectionStatus::Connected,
        status_reason: None,
        created_at: now,
        updated_at: now,
    }
}

fn token_set(now: DateTime<Utc>) -> TokenSetRow {
    TokenSetRow {
        id: Uuid::new_v4(),
        provider: "xero".into(),
        ciphertext: vec![1, 2, 3],
        access_expires_at: now,
        last_refresh_at: None,
        created_at: now,
        version: 1,
    }
}

fn device_token(device: Uuid, kind: TokenKind, now: DateTime<Utc>) -> DeviceTokenRow {
    DeviceTokenRow {
        hash: Uuid::new_v4().as_bytes().to_vec(),
        device_id: device,
        kind,
        created_at: now,
        expires_at: None,
        rotated_at: None,
        successor: None,
        revoked_at: None,
    }
}

/// Pairs `device` with `c` the way the pairing flow does (approve, then consume): the connection
/// as stored and how consuming went; `None` when the approval was refused because the device is
/// paired elsewhere.
async fn pair(
    s: &Storage,
    c: &ConnectionRow,
    device: Uuid,
    moves_from: Option<Uuid>,
    now: DateTime<Utc>,
) -> Option<(ConnectionRow, Consumed, DeviceTokenRow)> {
    let mut p = pairing(now, 600);
    p.device_id = device;
    p.moves_from = moves_from;
    s.pairing().insert_pairing(&p).await.unwrap();
    let c = match s
        .pairing()
        .approve_pairing(p.id, c, None, now)
        .await
        .unwrap()
    {
        Approval::DeviceElsewhere => return None,
        other => approved(other),
    };
    let d = DeviceRow {
        id: device,
        name: "Till".into(),
        client_id: "c".into(),
        connection_id: c.id,
        paired_at: now,
        revoked_at: None,
        last_seen_at: None,
    };
    let refresh = device_token(device, TokenKind::Refresh, now);
    let consumed = s
        .pairing()
        .consume_pairing(
            p.id,
            &d,
            &device_token(device, TokenKind::Access, now),
            &refresh,
        )
        .await
        .unwrap();
    Some((c, consumed, refresh))
}

/// The delivery lease of connection `c`, as a proxy takes it to deliver.
async fn delivering(s: &Storage, c: &ConnectionRow) -> Lease {
    s.leases()
        .take_lease(c.id, Uuid::new_v4(), std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("nobody else holds it")
        .lease
}

/// A connection with one device paired on it.
pub(super) async fn a_paired_device(s: &Storage) -> (ConnectionRow, Uuid, DateTime<Utc>) {
    let now = Utc::now();
    let device = Uuid::new_v4();
    let (c, consumed, _) = pair(s, &connection(now), device, None, now).await.unwrap();
    assert_eq!(consumed, Consumed::Paired);
    (c, device, now)
}

pub(super) fn document(
    c: &ConnectionRow,
    device: Uuid,
    kind: DocumentKind,
    client_ref: &str,
    now: DateTime<Utc>,
) -> DocumentRow {
    DocumentRow::accepted(device, c.id, kind, client_ref.into(), "{}".into(), now)
}

fn outcome(id: Uuid, state: DocumentState) -> DocumentUpdate {
    DocumentUpdate {
        id,
        state,
        provider_id: None,
        provider_number: None,
        message: None,
        attempt: true,
    }
}

async fn state_of(s: &Storage, device: Uuid, id: Uuid) -> DocumentState {
    s.documents()
        .document(device, id)
        .await
        .unwrap()
        .unwrap()
        .state
}

pub async fn token_set_writes_compare_and_swap_on_version(s: Storage) {
    let mut row = token_set(Utc::now());
    s.vault().insert_token_set(&row).await.unwrap();
    let me = Uuid::new_v4();
    let epoch = s
        .vault()
        .take_refresh_lease(row.id, me, std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    row.ciphertext = vec![4];
    assert!(s.vault().update_token_set(&row, me, epoch).await.unwrap());
    assert!(
        !s.vault().update_token_set(&row, me, epoch).await.unwrap(),
        "a stale version loses"
    );
    let stored = s.vault().token_set(row.id).await.unwrap().unwrap();
    assert_eq!((stored.ciphertext, stored.version), (vec![4], 2));
}

pub async fn transitions_happen_once_and_only_from_pending(s: Storage) {
    let now = Utc::now();
    let p = pairing(now, 600);
    s.pairing().insert_pairing(&p).await.unwrap();
    let c = approved(
        s.pairing()
            .approve_pairing(p.id, &connection(now), None, now)
            .await
            .unwrap(),
    );
    assert!(
        matches!(
            s.pairing()
                .approve_pairing(p.id, &connection(now), None, now)
                .await
                .unwrap(),
            Approval::NotPending
        ),
        "approved once"
    );
    assert!(
        !s.pairing().deny_pairing(p.id, now).await.unwrap(),
        "an approved pairing cannot be denied"
    );
    let stored = s.pairing().pairing(p.id).await.unwrap().unwrap();
    assert_eq!(stored.connection_id, Some(c.id));
    // A poll records itself without touching the status.
    s.pairing().record_poll(p.id, now, 10).await.unwrap();
    let polled = s.pairing().pairing(p.id).await.unwrap().unwrap();
    assert_eq!(
        (polled.status, polled.interval_secs),
        (PairingStatus::Approved, 10)
    );
    assert_eq!(
        s.pairing()
            .pairing_by_user_code("BCDFGHJK")
            .await
            .unwrap()
            .map(|p| p.id),
        Some(p.id)
    );
    assert_eq!(
        s.pairing()
            .pairing_by_device_code(&p.device_code_hash)
            .await
            .unwrap()
            .map(|p| p.id),
        Some(p.id)
    );

    let expired = pairing(now, -1);
    s.pairing().insert_pairing(&expired).await.unwrap();
    assert!(matches!(
        s.pairing()
            .approve_pairing(expired.id, &connection(now), None, now)
            .await
            .unwrap(),
        Approval::NotPending
    ));
    assert_eq!(
        s.connections().connections().await.unwrap().len(),
        1,
        "a refused approval leaves no connection behind"
    );
    // A pending one is denied once.
    let denied = pairing(now, 600);
    s.pairing().insert_pairing(&denied).await.unwrap();
    assert!(s.pairing().deny_pairing(denied.id, now).await.unwrap());
    assert!(!s.pairing().deny_pairing(denied.id, now).await.unwrap());
    // Consumed once: a second poller gets nothing.
    let device = Uuid::new_v4();
    let d = DeviceRow {
        id: device,
        name: "Till".into(),
        client_id: "c".into(),
        connection_id: c.id,
        paired_at: now,
        revoked_at: None,
        last_seen_at: None,
    };
    let tokens = || {
        (
            device_token(device, TokenKind::Access, now),
            device_token(device, TokenKind::Refresh, now),
        )
    };
    let (a, r) = tokens();
    assert_eq!(
        s.pairing().consume_pairing(p.id, &d, &a, &r).await.unwrap(),
        Consumed::Paired
    );
    let (a, r) = tokens();
    assert_eq!(
        s.pairing().consume_pairing(p.id, &d, &a, &r).await.unwrap(),
        Consumed::NotApproved
    );
}

pub async fn the_cap_refuses_a_new_organisation_but_never_a_reconnect(s: Storage) {
    let now = Utc::now();
    let first = connection(now);
    let p = pairing(now, 600);
    s.pairing().insert_pairing(&p).await.unwrap();
    approved(
        s.pairing()
            .approve_pairing(p.id, &first, Some(1), now)
            .await
            .unwrap(),
    );
    assert_eq!(s.pairing().connected_count("xero").await.unwrap(), 1);

    let q = pairing(now, 600);
    s.pairing().insert_pairing(&q).await.unwrap();
    assert!(matches!(
        s.pairing()
            .approve_pairing(q.id, &connection(now), Some(1), now)
            .await
            .unwrap(),
        Approval::AtCap(1)
    ));
    assert_eq!(
        s.pairing().pairing(q.id).await.unwrap().unwrap().status,
        PairingStatus::Pending
    );
    assert_eq!(
        s.connections().connections().await.unwrap().len(),
        1,
        "nothing added"
    );
    // The organisation already connected, again: allowed at the cap.
    let again = ConnectionRow {
        id: Uuid::new_v4(),
        ..first.clone()
    };
    let c = approved(
        s.pairing()
            .approve_pairing(q.id, &again, Some(1), now)
            .await
            .unwrap(),
    );
    assert_eq!(c.tenant_id, first.tenant_id);
    // A disconnected organisation no longer counts.
    s.connections().disconnect(c.id, None, now).await.unwrap();
    assert_eq!(s.pairing().connected_count("xero").await.unwrap(), 0);
}

pub async fn a_paired_device_moves_only_when_it_asked_from_where_it_is(s: Storage) {
    let now = Utc::now();
    let device = Uuid::new_v4();
    let (a, first, _) = pair(&s, &connection(now), device, None, now).await.unwrap();
    assert_eq!(first, Consumed::Paired);
    let b = connection(now);
    assert!(
        pair(&s, &b, device, None, now).await.is_none(),
        "not moved without the device's own request"
    );
    assert_eq!(
        s.devices()
            .device(device)
            .await
            .unwrap()
            .unwrap()
            .connection_id,
        a.id
    );
    assert!(
        s.connections()
            .connections()
            .await
            .unwrap()
            .iter()
            .all(|c| c.tenant_id != b.tenant_id),
        "a refused move writes nothing"
    );
    assert!(
        pair(&s, &b, device, Some(Uuid::new_v4()), now)
            .await
            .is_none(),
        "nor from an organisation it is not on"
    );
    let (moved_to, moved, _) = pair(&s, &b, device, Some(a.id), now).await.unwrap();
    assert_eq!(moved, Consumed::Paired);
    assert_eq!(
        s.devices()
            .device(device)
            .await
            .unwrap()
            .unwrap()
            .connection_id,
        moved_to.id
    );
}

pub async fn a_refresh_token_rotates_once(s: Storage) {
    let now = Utc::now();
    let device = Uuid::new_v4();
    let (_, _, first) = pair(&s, &connection(now), device, None, now).await.unwrap();
    let old = s
        .devices()
        .device_token(&first.hash)
        .await
        .unwrap()
        .expect("the refresh token is stored");
    let next = |kind| device_token(old.device_id, kind, now);
    let (access, refresh) = (next(TokenKind::Access), next(TokenKind::Refresh));
    assert!(s
        .devices()
        .rotate_refresh(&old.hash, &refresh.hash, &access, &refresh, now)
        .await
        .unwrap());
    let (access2, refresh2) = (next(TokenKind::Access), next(TokenKind::Refresh));
    assert!(
        !s.devices()
            .rotate_refresh(&old.hash, &refresh2.hash, &access2, &refresh2, now)
            .await
            .unwrap(),
        "a rotated refresh token does not rotate again"
    );
    let stored = s.devices().device_token(&old.hash).await.unwrap().unwrap();
    assert_eq!(stored.successor.as_deref(), Some(refresh.hash.as_slice()));
    assert!(s
        .devices()
        .device_token(&access2.hash)
        .await
        .unwrap()
        .is_none());
    // Revoking a device revokes it; touching it notes when it was seen.
    s.devices().touch_device(device, now).await.unwrap();
    s.devices().revoke_device(device, now).await.unwrap();
    let d = s.devices().device(device).await.unwrap().unwrap();
    assert!(d.revoked_at.is_some() && d.last_seen_at.is_some());
}

pub async fn connection_status_moves_only_from_what_the_caller_saw(s: Storage) {
    let now = Utc::now();
    let ts = token_set(now);
    s.vault().insert_token_set(&ts).await.unwrap();
    let mut a = connection(now);
    a.token_set_id = Some(ts.id);
    let mut b = connection(now);
    b.token_set_id = Some(ts.id);
    let (a, _) = s.connections().upsert_connection(&a).await.unwrap();
    let (b, _) = s.connections().upsert_connection(&b).await.unwrap();
    let mark = |id, token_set, from, to| {
        s.connections().mark_connection(
            id,
            token_set,
            from,
            to,
            Some(StatusReason::ApiRefused),
            now,
        )
    };
    use ConnectionStatus::*;
    assert!(
        !mark(a.id, None, Connected, NeedsReconnect).await.unwrap(),
        "not on the token set the caller saw"
    );
    assert!(
        !mark(a.id, Some(ts.id), NeedsReconnect, Connected)
            .await
            .unwrap(),
        "not in the status the caller saw"
    );
    assert!(mark(a.id, Some(ts.id), Connected, NeedsReconnect)
        .await
        .unwrap());
    assert_eq!(
        s.connections().connections_to_reprobe().await.unwrap()[0].id,
        a.id
    );
    // Every connection on a refused grant, in one go: only those still connected move.
    let moved = s
        .connections()
        .mark_connections_using(
            ts.id,
            Connected,
            NeedsReconnect,
            Some(StatusReason::RefreshRefused),
            now,
        )
        .await
        .unwrap();
    assert_eq!(moved, 1, "b moved; a already had");
    let b_now = s.connections().connection(b.id).await.unwrap().unwrap();
    assert_eq!(
        (b_now.status, b_now.status_reason),
        (NeedsReconnect, Some(StatusReason::RefreshRefused))
    );
    assert_eq!(
        s.connections()
            .connections_using(ts.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn disconnect_loses_to_a_reconnect_and_sweep_removes_what_is_spent(s: Storage) {
    let now = Utc::now();
    let mut row = connection(now);
    let ts = token_set(now);
    s.vault().insert_token_set(&ts).await.unwrap();
    row.token_set_id = Some(ts.id);
    let (c, _) = s.connections().upsert_connection(&row).await.unwrap();
    assert!(
        !s.connections().disconnect(c.id, None, now).await.unwrap(),
        "it holds a token set the caller did not see"
    );
    assert!(s
        .connections()
        .disconnect(c.id, Some(ts.id), now)
        .await
        .unwrap());

    let old = pairing(now - Duration::days(3), 600);
    s.pairing().insert_pairing(&old).await.unwrap();
    let live = pairing(now, 600);
    s.pairing().insert_pairing(&live).await.unwrap();
    let swept = s
        .health()
        .sweep(now - Duration::days(1), now - Duration::days(30))
        .await
        .unwrap();
    assert!(swept >= 1);
    assert!(s.pairing().pairing(old.id).await.unwrap().is_none());
    assert!(s.pairing().pairing(live.id).await.unwrap().is_some());
}

pub async fn a_document_is_stored_once_corrected_only_when_failed(s: Storage) {
    let (c, device, now) = a_paired_device(&s).await;
    let lease = delivering(&s, &c).await;
    let doc = document(&c, device, DocumentKind::Invoice, "inv-1", now);
    let stored = s
        .documents()
        .insert_documents(std::slice::from_ref(&doc))
        .await
        .unwrap();
    assert!(matches!(stored[..], [Stored::New(_)]));
    let same = s
        .documents()
        .insert_documents(std::slice::from_ref(&doc))
        .await
        .unwrap();
    assert!(matches!(same[..], [Stored::Duplicate(_)]), "{same:?}");
    let mut other = document(&c, device, DocumentKind::Invoice, "inv-1", now);
    other.body = r#"{"changed":true}"#.into();
    let in_use = s
        .documents()
        .insert_documents(std::slice::from_ref(&other))
        .await
        .unwrap();
    assert!(
        matches!(in_use[..], [Stored::InUse(_)]),
        "a queued document is not replaced: {in_use:?}"
    );
    s.documents()
        .update_documents(Some(&lease), &[outcome(doc.id, DocumentState::Failed)], now)
        .await
        .unwrap();
    let corrected = s
        .documents()
        .insert_documents(std::slice::from_ref(&other))
        .await
        .unwrap();
    match &corrected[..] {
        [Stored::Corrected(v)] => {
            assert_eq!((v.version, v.state), (2, DocumentState::Queued))
        }
        other => panic!("not corrected: {other:?}"),
    }
    let versions = s.documents().document_versions(doc.id).await.unwrap();
    assert_eq!(versions.len(), 1, "the replaced version is kept");
    let listed = s
        .documents()
        .document_by_ref(device, "inv-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.id, doc.id);
}

pub async fn a_paid_or_voided_document_never_goes_back(s: Storage) {
    let (c, device, now) = a_paired_device(&s).await;
    let lease = delivering(&s, &c).await;
    let paid = document(&c, device, DocumentKind::Invoice, "paid", now);
    let voided = document(&c, device, DocumentKind::Invoice, "voided", now);
    s.documents()
        .insert_documents(&[paid.clone(), voided.clone()])
        .await
        .unwrap();
    let update = |id, state| {
        let (s, lease) = (s.clone(), lease.clone());
        async move {
            s.documents()
                .update_documents(Some(&lease), &[outcome(id, state)], now)
                .await
        }
    };
    update(paid.id, DocumentState::Sent).await.unwrap();
    update(paid.id, DocumentState::Paid).await.unwrap();
    update(voided.id, DocumentState::Voided).await.unwrap();
    for late in [
        DocumentState::Sent,
        DocumentState::Failed,
        DocumentState::Queued,
    ] {
        update(paid.id, late).await.unwrap();
        update(voided.id, late).await.unwrap();
        assert_eq!(state_of(&s, device, paid.id).await, DocumentState::Paid);
        assert_eq!(state_of(&s, device, voided.id).await, DocumentState::Voided);
    }
    // Paid, then voided in the provider (a refund of the payment): allowed.
    update(paid.id, DocumentState::Voided).await.unwrap();
    assert_eq!(state_of(&s, device, paid.id).await, DocumentState::Voided);
}

pub async fn only_what_cannot_be_at_the_provider_is_discarded(s: Storage) {
    let (c, device, now) = a_paired_device(&s).await;
    let lease = delivering(&s, &c).await;
    let queued = document(&c, device, DocumentKind::Invoice, "queued", now);
    let unknown = document(&c, device, DocumentKind::Invoice, "unknown", now);
    let other = document(&c, device, DocumentKind::Invoice, "other", now);
    s.documents()
        .insert_documents(&[queued.clone(), unknown.clone(), other.clone()])
        .await
        .unwrap();
    let sent = Bundle {
        key: "u".into(),
        connection_id: c.id,
        path: "Invoices".into(),
        collection: "Invoices".into(),
        body: "{}".into(),
        members: vec![unknown.id],
    };
    assert!(s
        .documents()
        .start_bundle(&lease, &sent, now)
        .await
        .unwrap());
    let in_call = s
        .documents()
        .discard_document(device, unknown.id, "x", now)
        .await
        .unwrap();
    assert!(matches!(in_call, Change::Refused(ref r) if r.state == DocumentState::Sending));
    s.documents()
        .mark_unknown(&lease, &[unknown.id], now)
        .await
        .unwrap();
    assert_eq!(
        s.documents()
            .open_bundles(c.id, now - Duration::seconds(1))
            .await
            .unwrap(),
        ["u"],
        "its bundle is open: its outcome is unknown"
    );
    // A bundle is made of two queued documents; one is discarded before it is sent.
    let bundle = Bundle {
        key: "k".into(),
        connection_id: c.id,
        path: "Invoices".into(),
        collection: "Invoices".into(),
        body: "{}".into(),
        members: vec![queued.id, other.id],
    };
    let done = s
        .documents()
        .discard_document(device, queued.id, "twice", now)
        .await
        .unwrap();
    assert!(
        matches!(done, Change::Done(ref r) if r.state == DocumentState::Discarded && r.discard_reason.as_deref() == Some("twice"))
    );
    assert!(
        !s.documents()
            .start_bundle(&lease, &bundle, now)
            .await
            .unwrap(),
        "not sent"
    );
    assert_eq!(
        state_of(&s, device, other.id).await,
        DocumentState::Queued,
        "the rest of the bundle is left queued, to go in the next"
    );
    assert!(s.documents().bundle("k").await.unwrap().is_none());
    // Its outcome is unknown: it may be at the provider, so it stays.
    let refused = s
        .documents()
        .discard_document(device, unknown.id, "x", now)
        .await
        .unwrap();
    assert!(matches!(refused, Change::Refused(ref r) if r.state == DocumentState::Queued));
    // Delivery never moves a discarded document again.
    s.documents()
        .update_documents(
            Some(&lease),
            &[outcome(queued.id, DocumentState::Failed)],
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        state_of(&s, device, queued.id).await,
        DocumentState::Discarded
    );
    // Another device's document is not found.
    assert!(matches!(
        s.documents()
            .discard_document(Uuid::new_v4(), other.id, "x", now)
            .await
            .unwrap(),
        Change::NotFound
    ));
    // The unknown one's bundle settles with its outcome, and goes.
    s.documents()
        .update_documents(
            Some(&lease),
            &[outcome(unknown.id, DocumentState::Sent)],
            now,
        )
        .await
        .unwrap();
    assert!(s.documents().bundle("u").await.unwrap().is_none());
}

pub async fn the_outbox_offers_only_what_can_go_now(s: Storage) {
    let (c, device, now) = a_paired_device(&s).await;
    let earlier = now - Duration::minutes(5);
    let mut docs = Vec::new();
    // 520 payments waiting for invoices that have not come, then one whose invoice is at the
    // provider.
    for i in 0..520 {
        let mut p = document(&c, device, DocumentKind::Payment, &format!("p{i}"), earlier);
        p.waits_for = Some(format!("absent-{i}"));
        docs.push(p);
    }
    let invoice = document(&c, device, DocumentKind::Invoice, "inv", earlier);
    let mut ready = document(&c, device, DocumentKind::Payment, "ready", now);
    ready.waits_for = Some("inv".into());
    // A payment whose invoice never came, waited for an hour: offered, so delivery fails it.
    let mut stale = document(
        &c,
        device,
        DocumentKind::Payment,
        "stale",
        now - Duration::hours(2),
    );
    stale.waits_for = Some("never".into());
    docs.extend([invoice.clone(), ready.clone(), stale.clone()]);
    s.documents().insert_documents(&docs).await.unwrap();
    s.documents()
        .update_documents(None, &[outcome(invoice.id, DocumentState::Sent)], now)
        .await
        .unwrap();
    let offered: Vec<String> = s
        .documents()
        .outbox(c.id, DocumentKind::Payment, 50, now)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.client_ref)
        .collect();
    assert_eq!(offered, ["stale", "ready"]);
    assert_eq!(
        s.documents().connections_with_work(now).await.unwrap(),
        [c.id]
    );
    s.documents()
        .update_documents(
            None,
            &[
                outcome(ready.id, DocumentState::Failed),
                outcome(stale.id, DocumentState::Failed),
            ],
            now,
        )
        .await
        .unwrap();
    assert!(
        s.documents()
            .connections_with_work(now)
            .await
            .unwrap()
            .is_empty(),
        "nothing can go: no worker is started for waiting payments"
    );
}

pub async fn a_connection_is_delivered_by_one_lease_holder_and_a_lost_lease_writes_nothing(
    s: Storage,
) {
    use crate::delivery::pacer::{Limit, Pacer};
    use std::time::Duration as Std;
    let (c, device, now) = a_paired_device(&s).await;
    let doc = document(&c, device, DocumentKind::Invoice, "l1", now);
    s.documents()
        .insert_documents(std::slice::from_ref(&doc))
        .await
        .unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let minute = Std::from_secs(60);
    let leases = s.leases();

    let first = leases.take_lease(c.id, a, minute).await.unwrap().unwrap();
    assert!(first.pacing.is_none() && !first.lost_holder);
    assert!(
        leases.take_lease(c.id, b, minute).await.unwrap().is_none(),
        "held: nobody else takes it"
    );
    let pacing = Pacer::new(Limit {
        per_window: 60,
        window: minute,
    })
    .snapshot(std::time::Instant::now(), now);
    assert!(leases
        .renew_lease(&first.lease, minute, Some(&pacing))
        .await
        .unwrap());
    s.documents()
        .update_documents(
            Some(&first.lease),
            &[outcome(doc.id, DocumentState::Sending)],
            now,
        )
        .await
        .unwrap();
    leases.release_lease(&first.lease, None).await.unwrap();

    // Let go: taken at once, with the pacing the last holder wrote, and the epoch moves on.
    let second = leases.take_lease(c.id, b, minute).await.unwrap().unwrap();
    assert_eq!(second.lease.epoch, first.lease.epoch + 1);
    assert_eq!(second.pacing.as_ref(), Some(&pacing));
    assert!(!second.lost_holder, "it was let go");
    // What the first holder still writes is refused, and changes nothing.
    let stale = &first.lease;
    let fenced = |r: Result<()>| assert!(matches!(r, Err(StoreError::Fenced)), "{r:?}");
    fenced(
        s.documents()
            .update_documents(Some(stale), &[outcome(doc.id, DocumentState::Sent)], now)
            .await
            .map(|_| ()),
    );
    fenced(s.documents().mark_unknown(stale, &[doc.id], now).await);
    fenced(s.documents().forget_unknown(stale, &[doc.id]).await);
    fenced(s.documents().requeue_sending_for(stale).await.map(|_| ()));
    let bundle = Bundle {
        key: "lk".into(),
        connection_id: c.id,
        path: "Invoices".into(),
        collection: "Invoices".into(),
        body: "{}".into(),
        members: vec![doc.id],
    };
    fenced(
        s.documents()
            .start_bundle(stale, &bundle, now)
            .await
            .map(|_| ()),
    );
    assert!(!leases.renew_lease(stale, minute, None).await.unwrap());
    assert_eq!(state_of(&s, device, doc.id).await, DocumentState::Sending);
    assert!(s.documents().bundle("lk").await.unwrap().is_none());
    // Its holder's writes go through; a provider's word (no lease) is guarded by the state rule.
    assert_eq!(
        s.documents()
            .requeue_sending_for(&second.lease)
            .await
            .unwrap(),
        1,
        "the new holder puts back what was left sending"
    );
    s.documents()
        .update_documents(None, &[outcome(doc.id, DocumentState::Failed)], now)
        .await
        .unwrap();
    assert_eq!(state_of(&s, device, doc.id).await, DocumentState::Failed);

    // A holder that stops without letting go keeps it until it runs out; then the next holder
    // is told, and still gets the pacing last written.
    leases.release_lease(&second.lease, None).await.unwrap();
    let short = leases
        .take_lease(c.id, a, Std::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert!(leases.take_lease(c.id, b, minute).await.unwrap().is_none());
    tokio::time::sleep(Std::from_millis(400)).await;
    let after = leases.take_lease(c.id, b, minute).await.unwrap().unwrap();
    assert!(after.lost_holder, "it ran out rather than being let go");
    assert_eq!(after.lease.epoch, short.lease.epoch + 1);
    assert_eq!(after.pacing.as_ref(), Some(&pacing));

    // A round that stops mid-call leaves a document `sending` and nothing queued: no proxy is
    // offered the connection while its lease lives; once nobody holds it, it has work (the next
    // holder puts the document back).
    let stranded = document(&c, device, DocumentKind::Invoice, "l2", now);
    s.documents()
        .insert_documents(std::slice::from_ref(&stranded))
        .await
        .unwrap();
    s.documents()
        .update_documents(
            Some(&after.lease),
            &[outcome(stranded.id, DocumentState::Sending)],
            now,
        )
        .await
        .unwrap();
    let offered = || async {
        s.documents()
            .connections_with_work(now)
            .await
            .unwrap()
            .contains(&c.id)
    };
    assert!(!offered().await, "its holder delivers it");
    leases.release_lease(&after.lease, None).await.unwrap();
    assert!(offered().await, "left sending, held by nobody");
}

pub async fn one_proxy_at_a_time_refreshes_a_token_set(s: Storage) {
    use std::time::Duration as Std;
    let t = token_set(Utc::now());
    s.vault().insert_token_set(&t).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let v = s.vault();
    let first = v
        .take_refresh_lease(t.id, a, Std::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first, Some(1));
    assert_eq!(
        v.take_refresh_lease(t.id, b, Std::from_secs(30))
            .await
            .unwrap(),
        None,
        "another proxy waits for the new row"
    );
    v.end_refresh_lease(t.id, b, 1).await.unwrap();
    assert_eq!(
        v.take_refresh_lease(t.id, b, Std::from_secs(30))
            .await
            .unwrap(),
        None,
        "only its holder lets it go"
    );
    v.end_refresh_lease(t.id, a, 1).await.unwrap();
    let second = v
        .take_refresh_lease(t.id, b, Std::from_millis(200))
        .await
        .unwrap();
    assert_eq!(second, Some(2));
    // A proxy that stopped mid-refresh holds it no longer than its lease.
    tokio::time::sleep(Std::from_millis(300)).await;
    let mut late = t.clone();
    late.ciphertext = vec![7];
    assert!(
        v.update_token_set(&late, b, 2).await.unwrap(),
        "a lease run out that nobody took still writes"
    );
    late.version += 1;
    assert_eq!(
        v.take_refresh_lease(t.id, a, Std::from_secs(30))
            .await
            .unwrap(),
        Some(3)
    );
    // Its tokens come too late once another proxy has taken the lease: fenced, whatever the
    // version.
    late.ciphertext = vec![8];
    assert!(
        !v.update_token_set(&late, b, 2).await.unwrap(),
        "the earlier holder is fenced out"
    );
    assert!(v.update_token_set(&late, a, 3).await.unwrap());
    assert_eq!(
        v.token_set(t.id).await.unwrap().unwrap().ciphertext,
        vec![8]
    );
}

pub async fn attempts_are_counted_to_their_limit_per_window_and_swept(s: Storage) {
    let t = s.throttles();
    let now = Utc::now();
    for _ in 0..3 {
        assert!(t.count_attempt("k", b"a", 7, 0.5, 3, now).await.unwrap());
    }
    assert!(
        !t.count_attempt("k", b"a", 7, 0.6, 3, now).await.unwrap(),
        "over the limit"
    );
    assert_eq!(
        t.attempts("k", b"a", 7, 0.6).await.unwrap(),
        3.0,
        "a refusal is not counted"
    );
    assert!(
        t.count_attempt("k", b"b", 7, 0.6, 3, now).await.unwrap(),
        "another key"
    );
    assert!(
        t.count_attempt("other", b"a", 7, 0.6, 3, now)
            .await
            .unwrap(),
        "another kind"
    );
    // The next window still counts the last one, less as it goes.
    assert!(!t.count_attempt("k", b"a", 8, 0.1, 3, now).await.unwrap());
    assert!(t.count_attempt("k", b"a", 8, 0.5, 3, now).await.unwrap());
    assert_eq!(t.attempts("k", b"a", 8, 0.5).await.unwrap(), 2.5);
    assert_eq!(
        t.attempts("k", b"a", 10, 0.0).await.unwrap(),
        0.0,
        "long gone"
    );
    assert!(!t.count_attempt("k", b"z", 7, 0.0, 0, now).await.unwrap());
    s.health()
        .sweep(now + Duration::seconds(1), now)
        .await
        .unwrap();
    assert_eq!(t.attempts("k", b"a", 8, 0.5).await.unwrap(), 0.0, "swept");
}

pub async fn a_shared_call_budget_keeps_to_its_limit_in_any_window(s: Storage) {
    use std::time::Duration as Std;
    let t = s.throttles();
    // A 6.4 s window: slices of 100 ms. `t0` starts a slice.
    let window = Std::from_millis(6_400);
    let t0 = DateTime::<Utc>::from_timestamp_millis(1_800_000_000_000).unwrap();
    let at = |ms: i64| t0 + Duration::milliseconds(ms);
    for i in 0..5 {
        assert_eq!(
            t.take_call("app", "x", 5, window, at(i * 10))
                .await
                .unwrap(),
            None
        );
    }
    // Full: the first slice's calls stop counting a window and a slice after it started.
    assert_eq!(
        t.take_call("app", "x", 5, window, at(50)).await.unwrap(),
        Some(at(6_500))
    );
    assert!(t
        .take_call("app", "x", 5, window, at(6_499))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        t.take_call("app", "x", 5, window, at(6_500)).await.unwrap(),
        None
    );
    assert_eq!(
        t.take_call("app", "y", 5, window, at(50)).await.unwrap(),
        None,
        "another budget"
    );
    // Taken at once by many callers (several connections of the pool): never more than the limit.
    let takes = (0..60).map(|_| t.take_call("app", "z", 20, window, at(100)));
    let taken = futures_util::future::join_all(takes)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(None)))
        .count();
    assert_eq!(taken, 20);
}

pub async fn events_come_after_the_cursor_in_order_and_to_their_device_only(s: Storage) {
    let (c, device, now) = a_paired_device(&s).await;
    let lease = delivering(&s, &c).await;
    let (_, elsewhere, _) = a_paired_device(&s).await;
    let first = document(&c, device, DocumentKind::Invoice, "e1", now);
    let second = document(&c, device, DocumentKind::Invoice, "e2", now);
    s.documents()
        .insert_documents(&[first.clone(), second.clone()])
        .await
        .unwrap();
    s.documents()
        .update_documents(Some(&lease), &[outcome(first.id, DocumentState::Sent)], now)
        .await
        .unwrap();
    let all = s.events().events_after(device, 0, 100).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 3, "two queued, one sent: {all:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let after = s.events().events_after(device, seqs[1], 100).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].document.as_ref().map(|d| d.state),
        Some(DocumentState::Sent),
        "{after:?}"
    );
    assert_eq!(
        s.events()
            .events_after(device, seqs[0], 1)
            .await
            .unwrap()
            .len(),
        1,
        "at most the limit"
    );
    assert!(
        s.events()
            .events_after(elsewhere, 0, 100)
            .await
            .unwrap()
            .is_empty(),
        "another device hears nothing of these"
    );
    // A provider's word about a document reaches its device once however often it is said.
    let row = s
        .documents()
        .document(device, first.id)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..2 {
        s.documents()
            .record_provider_status(
                &row,
                "cancelled",
                &EventBody::Provider(ProviderNews {
                    document: row.view(),
                    provider_status: Some("cancelled".into()),
                    xero_status: None,
                    amount_due: None,
                    amount_paid: None,
                }),
                now,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        s.events()
            .events_after(device, seqs[2], 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.documents()
            .document(device, first.id)
            .await
            .unwrap()
            .unwrap()
            .provider_status
            .as_deref(),
        Some("cancelled")
    );
}

pub async fn a_notification_is_taken_in_once_while_it_is_kept(s: Storage) {
    let t = s.throttles();
    let now = Utc::now();
    let until = now + Duration::hours(48);
    assert!(t.first_sighting("xero", b"e1", until, now).await.unwrap());
    assert!(
        !t.first_sighting("xero", b"e1", until, now).await.unwrap(),
        "sent again: already taken in"
    );
    assert!(t
        .first_sighting("hubrise", b"e1", until, now)
        .await
        .unwrap());
    // Its handling failed: forgotten, so the provider's next sending is taken in.
    t.forget_sighting("xero", b"e1").await.unwrap();
    assert!(t.first_sighting("xero", b"e1", until, now).await.unwrap());
    // Kept no longer than asked: seen again after that, it is new, and the sweep removes it.
    let later = until + Duration::seconds(1);
    assert!(t
        .first_sighting("xero", b"e1", later + Duration::hours(48), later)
        .await
        .unwrap());
    assert!(
        s.health()
            .sweep(later + Duration::hours(49), later)
            .await
            .unwrap()
            >= 2
    );
    assert!(t
        .first_sighting("hubrise", b"e1", later, now)
        .await
        .unwrap());
}

pub async fn an_operator_finds_any_devices_documents_and_sees_each_queue(s: Storage) {
    let (c, device, now) = a_paired_device(&s).await;
    let (other, other_device, _) = a_paired_device(&s).await;
    let at = |minutes: i64| now - Duration::minutes(minutes);
    let mut ann = document(&c, device, DocumentKind::Invoice, "ann-1", at(30));
    ann.body = r#"{"contact":{"name":"Ann Smith"}}"#.into();
    let mut bob = document(&c, device, DocumentKind::Invoice, "bob-1", at(20));
    bob.body = r#"{"contact":{"name":"Bob"}}"#.into();
    let mut elsewhere = document(&other, other_device, DocumentKind::Invoice, "ann-2", at(10));
    elsewhere.body = r#"{"contact":{"name":"ANN SMITH"}}"#.into();
    s.documents()
        .insert_documents(&[ann.clone(), bob.clone(), elsewhere.clone()])
        .await
        .unwrap();
    // The outcome's write answers the documents as they now stand, in the order asked.
    let stand = s
        .documents()
        .update_documents(
            None,
            &[
                outcome(bob.id, DocumentState::Sent),
                outcome(ann.id, DocumentState::Queued),
            ],
            now,
        )
        .await
        .unwrap();
    let stand: Vec<_> = stand
        .iter()
        .map(|d| (d.client_ref.as_str(), d.state))
        .collect();
    assert_eq!(
        stand,
        [
            ("bob-1", DocumentState::Sent),
            ("ann-1", DocumentState::Queued)
        ],
        "in the order asked"
    );
    let find = |search: DocumentSearch| {
        let s = s.clone();
        async move {
            s.documents()
                .search_documents(&DocumentSearch {
                    limit: 100,
                    ..search
                })
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.client_ref)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        find(DocumentSearch::default()).await,
        ["ann-2", "bob-1", "ann-1"],
        "newest first, every device's"
    );
    assert_eq!(
        find(DocumentSearch {
            contact: Some("ann sm".into()),
            ..Default::default()
        })
        .await,
        ["ann-2", "ann-1"],
        "part of the contact's name, any case"
    );
    assert_eq!(
        find(DocumentSearch {
            state: Some(DocumentState::Sent),
            ..Default::default()
        })
        .await,
        ["bob-1"]
    );
    assert_eq!(
        find(DocumentSearch {
            client_ref: Some("ann-1".into()),
            ..Default::default()
        })
        .await,
        ["ann-1"]
    );
    assert_eq!(
        find(DocumentSearch {
            from: Some(at(25)),
            to: Some(at(15)),
            ..Default::default()
        })
        .await,
        ["bob-1"]
    );
    assert_eq!(
        find(DocumentSearch {
            connection: Some(other.id),
            ..Default::default()
        })
        .await,
        ["ann-2"]
    );
    assert_eq!(
        find(DocumentSearch {
            id: Some(ann.id),
            ..Default::default()
        })
        .await,
        ["ann-1"]
    );

    let queues = s.documents().queue_summaries().await.unwrap();
    let mine = &queues[&c.id];
    assert_eq!(mine.by_state.get("queued"), Some(&1));
    assert_eq!(mine.by_state.get("sent"), Some(&1));
    assert!(mine.last_delivered_at.is_some());
    assert_eq!(queues[&other.id].by_state.get("queued"), Some(&1));
    assert_eq!(queues[&other.id].last_delivered_at, None);
}

pub async fn an_operators_sign_in_is_used_once_and_a_session_lives_until_it_ends(s: Storage) {
    let o = s.operators();
    let now = Utc::now();
    let login = OperatorLogin {
        state_hash: vec![1; 32],
        browser_hash: vec![2; 32],
        sealed: vec![3, 4],
        expires_at: now + Duration::minutes(10),
    };
    o.put_login(&login).await.unwrap();
    let taken = o.take_login(&login.state_hash, now).await.unwrap().unwrap();
    assert_eq!(
        (taken.browser_hash, taken.sealed),
        (vec![2; 32], vec![3, 4])
    );
    assert!(
        o.take_login(&login.state_hash, now)
            .await
            .unwrap()
            .is_none(),
        "a state is used once"
    );
    let late = OperatorLogin {
        state_hash: vec![5; 32],
        ..login.clone()
    };
    o.put_login(&late).await.unwrap();
    assert!(
        o.take_login(&late.state_hash, now + Duration::minutes(11))
            .await
            .unwrap()
            .is_none(),
        "an expired sign-in is refused"
    );

    let session = OperatorSession {
        id_hash: vec![9; 32],
        subject: "00u1".into(),
        name: "Olive".into(),
        role: "operator".into(),
        csrf: "c".into(),
        sealed_id_token: vec![7],
        created_at: now,
        expires_at: now + Duration::hours(8),
    };
    o.put_session(&session).await.unwrap();
    let live = o.session(&session.id_hash, now).await.unwrap().unwrap();
    assert_eq!(
        (live.subject.as_str(), live.role.as_str()),
        ("00u1", "operator")
    );
    assert!(
        o.session(&session.id_hash, now + Duration::hours(9))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(o.session(&[8; 32], now).await.unwrap().is_none());
    assert_eq!(
        o.end_session(&session.id_hash).await.unwrap().unwrap().csrf,
        "c"
    );
    assert!(
        o.session(&session.id_hash, now).await.unwrap().is_none(),
        "ended"
    );
    assert!(o.end_session(&session.id_hash).await.unwrap().is_none());
}

/// Every story against one backend: `conformance!(name, async { Storage })`.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            conformance!(@each $make;
                token_set_writes_compare_and_swap_on_version,
                transitions_happen_once_and_only_from_pending,
                the_cap_refuses_a_new_organisation_but_never_a_reconnect,
                a_paired_device_moves_only_when_it_asked_from_where_it_is,
                a_refresh_token_rotates_once,
                connection_status_moves_only_from_what_the_caller_saw,
                disconnect_loses_to_a_reconnect_and_sweep_removes_what_is_spent,
                a_document_is_stored_once_corrected_only_when_failed,
                a_paid_or_voided_document_never_goes_back,
                only_what_cannot_be_at_the_provider_is_discarded,
                the_outbox_offers_only_what_can_go_now,
                events_come_after_the_cursor_in_order_and_to_their_device_only,
                a_connection_is_delivered_by_one_lease_holder_and_a_lost_lease_writes_nothing,
                one_proxy_at_a_time_refreshes_a_token_set,
                attempts_are_counted_to_their_limit_per_window_and_swept,
                a_shared_call_budget_keeps_to_its_limit_in_any_window,
                a_notification_is_taken_in_once_while_it_is_kept,
                an_operator_finds_any_devices_documents_and_sees_each_queue,
                an_operators_sign_in_is_used_once_and_a_session_lives_until_it_ends,
            );
        }
    };
    (@each $make:expr; $($story:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $story() {
                // The backend, and whatever must live as long as it (a test database).
                let (storage, _keep) = $make.await;
                super::$story(storage).await;
            }
        )*
    };
}

conformance!(sqlite, async {
    (
        Storage::sqlite(SqliteStore::memory().expect("an in-memory database")),
        (),
    )
});

conformance!(postgres, async {
    let db = crate::store::postgres::testing::TestDatabase::migrated().await;
    let store = crate::store::postgres::PostgresStore::connect(db.url(), &Default::default())
        .await
        .expect("the test database");
    (Storage::new(store), db)
});
