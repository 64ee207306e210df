//! Finding out what became of a call whose answer was lost. Each document carries a stable marker
//! (in a field the provider keeps and can search, Xero's `Reference`); once the provider's replay
//! window has passed, the key alone no longer protects a resend, so the documents are looked up by
//! their markers first: those found are `sent` (with the provider's id and number), the rest go.

use ledgerlink_wire::documents::DocumentState;
use sha2::{Digest, Sha256};

use super::claim::update;
use super::Stop;
use crate::providers::Documents;
use crate::store::DocumentRow;

/// A stable marker of a document, derived from its device and `client_ref` (`LL-` and 12 hex
/// characters), carried in what the provider keeps of it so it can be found again when it is
/// unknown whether a call created it. Markers already sent must never change (tests pin them).
pub fn marker(doc: &DocumentRow) -> String {
    let digest = Sha256::new()
        .chain_update(b"ledgerlink marker v1")
        .chain_update(doc.device_id.as_bytes())
        .chain_update(doc.client_ref.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("LL-{hex}")
}

/// Of `docs`, those whose outcome is unknown and past the replay window are looked up in the
/// provider's `collection` by their markers: the ones it has are saved as `sent`; the others are
/// returned with the rest, to be sent.
pub async fn reconcile<D: Documents>(
    d: &mut D,
    docs: Vec<DocumentRow>,
    collection: &str,
) -> Result<Vec<DocumentRow>, Stop> {
    let (stale, mut out): (Vec<DocumentRow>, Vec<DocumentRow>) = docs
        .into_iter()
        .partition(|doc| d.round().past_replay_window(doc));
    if stale.is_empty() {
        return Ok(out);
    }
    let per_lookup = d.markers_per_lookup().max(1);
    let mut stale = stale.into_iter().peekable();
    while stale.peek().is_some() {
        let chunk: Vec<DocumentRow> = stale.by_ref().take(per_lookup).collect();
        let markers: Vec<String> = chunk.iter().map(marker).collect();
        let found = d.find_marked(collection, &markers).await?;
        let mut updates = Vec::new();
        let mut absent = Vec::new();
        for (doc, m) in chunk.into_iter().zip(markers) {
            match found.get(&m) {
                Some(hit) => {
                    tracing::info!(document = %doc.id, "found at the provider after an unknown outcome: not sent again");
                    updates.push(update(
                        doc.id,
                        DocumentState::Sent,
                        Some(hit.id.clone()),
                        hit.number.clone(),
                        None,
                    ));
                }
                None => {
                    absent.push(doc.id);
                    out.push(doc);
                }
            }
        }
        d.round().save(updates).await?;
        // Not there: known again, so a round stopped before sending them does not look again.
        let round = d.round();
        round
            .state
            .storage
            .documents()
            .forget_unknown(&round.lease, &absent)
            .await
            .map_err(Stop::store)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use ledgerlink_wire::documents::DocumentKind;
    use uuid::Uuid;

    fn doc(device: u128, client_ref: &str) -> DocumentRow {
        DocumentRow {
            id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            version: 2,
            resends: 1,
            ..DocumentRow::accepted(
                Uuid::from_u128(device),
                Uuid::from_u128(8),
                DocumentKind::Invoice,
                client_ref.into(),
                "{}".into(),
                DateTime::<Utc>::UNIX_EPOCH,
            )
        }
    }

    #[test]
    fn markers_and_send_keys_are_pinned() {
        let d = doc(7, "INV-1001");
        assert_eq!(marker(&d), "LL-a8af83623b92");
        assert_eq!(
            super::super::bundle::key_for(&[&d.send_identity(), b"void"]),
            "c538857fb4e35539ca5e6f8d3ffeb937a4a602e3a94e832f058d3a8d07c7dac4"
        );
    }

    #[test]
    fn a_marker_belongs_to_a_device_and_its_reference_not_to_a_version() {
        let mut corrected = doc(7, "INV-1001");
        corrected.version = 3;
        assert_eq!(marker(&corrected), marker(&doc(7, "INV-1001")));
        assert_ne!(marker(&doc(7, "INV-1002")), marker(&doc(7, "INV-1001")));
        assert_ne!(marker(&doc(9, "INV-1001")), marker(&doc(7, "INV-1001")));
    }
}
