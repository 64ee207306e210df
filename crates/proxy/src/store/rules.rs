//! The state rules every backend keeps, written once: a backend turns them into the guard of its
//! write (`... AND state IN (...)`), so the rule and its check stay one statement.

use ledgerlink_wire::documents::DocumentState;

const ALL: [DocumentState; 10] = [
    DocumentState::Pending,
    DocumentState::Queued,
    DocumentState::Sending,
    DocumentState::Sent,
    DocumentState::Failed,
    DocumentState::Paid,
    DocumentState::Voiding,
    DocumentState::Voided,
    DocumentState::Rejected,
    DocumentState::Discarded,
];

/// The states a delivery outcome (or a provider's notification) of `to` may move a document from:
/// never out of `discarded` (a person put it aside for good), and out of `paid` or `voided` only to
/// `paid` or `voided` (money recorded at the provider is never undone by a late answer).
pub fn outcome_from(to: DocumentState) -> Vec<DocumentState> {
    let settled = |s: DocumentState| matches!(s, DocumentState::Paid | DocumentState::Voided);
    ALL.into_iter()
        .filter(|s| *s != DocumentState::Discarded)
        .filter(|s| !settled(*s) || settled(to))
        .collect()
}

/// States as an SQL list of literals (`'queued', 'sent'`): only the enum's own names, never input.
pub fn sql_list(states: &[DocumentState]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paid_and_voided_go_only_to_each_other_and_discarded_nowhere() {
        for to in ALL {
            let from = outcome_from(to);
            assert!(!from.contains(&DocumentState::Discarded), "{to:?}");
            let settled_can_move = from.contains(&DocumentState::Paid);
            assert_eq!(
                settled_can_move,
                matches!(to, DocumentState::Paid | DocumentState::Voided),
                "{to:?}"
            );
            assert!(from.contains(&DocumentState::Sending), "{to:?}");
        }
        assert_eq!(
            sql_list(&[DocumentState::Queued, DocumentState::Sent]),
            "'queued', 'sent'"
        );
    }
}
