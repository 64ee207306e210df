//! What to do about an error or a refused document: one table, by stable code, worded twice, as a
//! command for the CLI and as an action on a screen for the desktop app. The proxy's and the wire
//! crate's messages say what is wrong; this says what to do, in the words of the place the person
//! is in. `{ref}` stands for the document's `client_ref`.

use ledgerlink_wire::documents::DocumentState;

/// Where the advice is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Cli,
    Desktop,
}

struct Advice {
    code: &'static str,
    cli: &'static str,
    desktop: &'static str,
}

const fn a(code: &'static str, cli: &'static str, desktop: &'static str) -> Advice {
    Advice { code, cli, desktop }
}

/// Every code a person may meet: the proxy's error codes, the problems of a refused document, the
/// client's own codes, and the two states that need a person (`failed`, `rejected`).
const TABLE: &[Advice] = &[
    // Documents that need a person.
    a("failed",
      "Correct it and push it again under the same client_ref (`ledgerlink push KIND FILE`), or once the cause is put right at the provider send it again unchanged (`ledgerlink retry {ref}`), or put it aside (`ledgerlink discard {ref} --reason TEXT`).",
      "Press Fix to correct it, Send again once the cause is put right at the provider, or Discard to put it aside."),
    a("rejected",
      "Fix what the message names: map the category or tender (`ledgerlink mappings set ...`) and `ledgerlink retry {ref}`, or correct the document and push it again under the same client_ref; or `ledgerlink discard {ref} --reason TEXT`.",
      "Fix what the message names: map the category or tender in Mappings and press Send again, or press Fix to correct the document; or Discard it."),
    // Problems of a refused document.
    a("unmapped",
      "Map it: `ledgerlink mappings set category NAME --account CODE --tax-type TYPE`, `ledgerlink mappings set tender NAME --account CODE` or `ledgerlink mappings set over-short --account CODE`; then `ledgerlink retry {ref}`.",
      "Open Mappings and map it, then press Send again."),
    a("client_ref_in_use",
      "Give the document a client_ref of its own: only a failed or rejected document can be corrected under its client_ref.",
      "This number is taken by another document: start a new document instead of fixing this one."),
    a("unsupported_kind",
      "This device's connection takes other documents (`ledgerlink status` names its provider): push what it takes, or pair the till with the provider that takes these.",
      "This connection does not take this kind of document."),
    a("duplicate_in_batch",
      "Give each document in the file its own client_ref.",
      "Give each document its own number."),
    a("required", "Add the missing field and push again.", "Fill in the field marked."),
    a("invalid", "Correct the field named and push again.", "Correct the field marked."),
    a("too_long", "Shorten the field named (or split the document) and push again.", "Shorten the field marked."),
    a("out_of_range", "Correct the amount or quantity named and push again.", "Correct the amount marked."),
    a("negative_shift",
      "Record refunds larger than the shift's sales in Xero by hand; a shift's total cannot be negative.",
      "A shift cannot take less than nothing: record the refund in Xero by hand."),
    // The connection and this device.
    a("needs_reconnect",
      "Connect it again: `ledgerlink reconnect`. Documents wait on the proxy; nothing is lost.",
      "Press Reconnect on Home and log in again. Documents wait; nothing is lost."),
    a("disconnected",
      "It was disconnected: `ledgerlink reconnect` connects it again.",
      "It was disconnected: press Reconnect on Home."),
    a("not_paired", "Pair this device first: `ledgerlink pair --proxy URL`.", "Connect this device on the Connect screen."),
    a("pair_again",
      "This device was unpaired: `ledgerlink pair` pairs it again (documents not yet sent are kept).",
      "This device was unpaired: connect it again on the Connect screen (documents not yet sent are kept)."),
    a("device_revoked",
      "This device was unpaired: `ledgerlink pair` pairs it again (documents not yet sent are kept).",
      "This device was unpaired: connect it again on the Connect screen (documents not yet sent are kept)."),
    a("unauthenticated", "Pair this device again: `ledgerlink pair`.", "Connect this device on the Connect screen."),
    a("token_expired", "Run the command again: the device renews its credentials by itself.", "Try again in a moment."),
    a("invalid_grant", "Pair this device again: `ledgerlink pair`.", "Connect this device on the Connect screen."),
    a("device_id_in_use",
      "This device is paired with another organisation: `ledgerlink unpair` there first, or use another data directory (`--data-dir`).",
      "This device is paired with another organisation: disconnect it there first."),
    a("access_denied", "The pairing was cancelled in the browser: `ledgerlink pair` starts again.", "The pairing was cancelled: press Try again to start again."),
    a("expired_token", "The code expired: `ledgerlink pair` starts a new one.", "The code expired: press Try again for a new one."),
    a("authorization_pending", "Finish in the browser, then wait.", "Finish in the browser."),
    a("slow_down", "Wait a little: the device asks again by itself.", "Wait a little."),
    // The proxy and the provider.
    a("proxy_unreachable",
      "Check the proxy URL and that the proxy is running; documents stay saved here and `ledgerlink sync` sends them when it is back.",
      "Check the proxy URL in Settings and that the proxy is running; documents stay saved here and go when it is back."),
    a("unavailable", "Nothing was stored: run the same command again in a moment.", "Nothing was stored: it is tried again by itself."),
    a("provider_unavailable", "The provider could not be reached: try again in a moment.", "The provider could not be reached: try again in a moment."),
    a("rate_limited", "Too many attempts: wait a minute and try again.", "Too many attempts: wait a minute."),
    a("payload_too_large", "Push fewer documents at a time.", "Save fewer documents at a time."),
    a("forbidden", "Your role does not allow this: ask whoever runs the proxy.", "Your role does not allow this: ask whoever runs Ledgerlink."),
    a("confirmation_required", "Add --yes to confirm.", "Confirm in the dialog."),
    a("conflict", "Look at it again (`ledgerlink show {ref}`): its state changed.", "Its state changed: look at it again."),
    a("not_found", "Check the client_ref (`ledgerlink outbox` lists them).", "It is no longer there: refresh the list."),
    a("invalid_request", "Correct the request as the message says.", "Correct what the message says."),
    a("invalid_document", "Fix the problems listed and push again; the documents without problems are saved.", "Correct the fields marked."),
    a("invalid_client", "This app is not one the proxy knows: update Ledgerlink.", "Update Ledgerlink."),
    a("unsupported_grant_type", "Update Ledgerlink.", "Update Ledgerlink."),
    a("internal", "Something failed inside the proxy (its log says what): try again, or ask whoever runs it.", "Something failed inside the proxy: try again, or ask whoever runs it."),
    a("protocol", "The proxy answered something this version does not understand: update Ledgerlink.", "Update Ledgerlink."),
    a("credentials", "The device's credentials cannot be read: `ledgerlink pair` pairs it again.", "Connect this device on the Connect screen."),
    a("outbox", "The outbox cannot be used: check the data directory's disk and permissions.", "The outbox cannot be used: check the disk."),
    a("data_dir", "Check the data directory (`--data-dir` or LEDGERLINK_DATA_DIR) exists and is writable.", "Check the data directory in Settings."),
    a("input", "Check the file's path (or pass `-` for standard input).", "Check the file."),
    a("timeout", "Run `ledgerlink sync` again to carry on; nothing is lost.", "It carries on by itself."),
    a("usage", "`ledgerlink --help` lists the commands.", "Check what you typed."),
    a("cancelled", "Nothing was changed.", "Nothing was changed."),
];

/// What to do about `code`, for `surface`, with `{ref}` filled in when given.
pub fn advice(code: &str, surface: Surface, client_ref: Option<&str>) -> Option<String> {
    let entry = TABLE.iter().find(|a| a.code == code)?;
    let text = match surface {
        Surface::Cli => entry.cli,
        Surface::Desktop => entry.desktop,
    };
    Some(text.replace("{ref}", client_ref.unwrap_or("REF")))
}

/// What to do about a document in `state` (only failed and rejected ones need anything); the
/// first problem's code decides when the proxy gave one (`message` starts with its field path).
pub fn for_document(
    state: DocumentState,
    message: Option<&str>,
    surface: Surface,
    client_ref: &str,
) -> Option<String> {
    if !state.needs_attention() {
        return None;
    }
    let message = message.unwrap_or_default();
    let code = if message.contains("is not mapped") {
        "unmapped"
    } else if message.contains("client_ref of a") || message.contains("only a failed document") {
        "client_ref_in_use"
    } else {
        state.as_str()
    };
    advice(code, surface, Some(client_ref))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_wire::documents::ProblemCode;
    use ledgerlink_wire::ErrorCode;

    /// Every code the proxy can answer, listed by a match so a new one fails to compile here.
    fn every_error_code() -> Vec<ErrorCode> {
        use ErrorCode::*;
        let all = [
            InvalidRequest,
            InvalidClient,
            UnsupportedGrantType,
            AuthorizationPending,
            SlowDown,
            AccessDenied,
            ExpiredToken,
            InvalidGrant,
            Unauthenticated,
            TokenExpired,
            DeviceRevoked,
            NeedsReconnect,
            Disconnected,
            ConfirmationRequired,
            NotFound,
            RateLimited,
            ProviderUnavailable,
            DeviceIdInUse,
            Conflict,
            Internal,
            Unavailable,
            PayloadTooLarge,
            Forbidden,
        ];
        for code in all {
            match code {
                InvalidRequest | InvalidClient | UnsupportedGrantType | AuthorizationPending
                | SlowDown | AccessDenied | ExpiredToken | InvalidGrant | Unauthenticated
                | TokenExpired | DeviceRevoked | NeedsReconnect | Disconnected
                | ConfirmationRequired | NotFound | RateLimited | ProviderUnavailable
                | DeviceIdInUse | Conflict | Internal | Unavailable | PayloadTooLarge
                | Forbidden => {}
            }
        }
        all.to_vec()
    }

    fn every_problem_code() -> Vec<ProblemCode> {
        use ProblemCode::*;
        let all = [
            Required,
            Invalid,
            TooLong,
            OutOfRange,
            Unmapped,
            NegativeShift,
            DuplicateInBatch,
            ClientRefInUse,
            UnsupportedKind,
        ];
        for code in all {
            match code {
                Required | Invalid | TooLong | OutOfRange | Unmapped | NegativeShift
                | DuplicateInBatch | ClientRefInUse | UnsupportedKind => {}
            }
        }
        all.to_vec()
    }

    #[test]
    fn every_code_has_advice_for_both_places_and_the_desktop_never_names_a_command() {
        let mut codes: Vec<String> = every_error_code()
            .into_iter()
            .map(|c| c.as_str().to_string())
            .collect();
        codes.extend(every_problem_code().into_iter().map(|c| {
            serde_json::to_value(c)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        }));
        codes.extend(
            [
                "failed",
                "rejected",
                "proxy_unreachable",
                "not_paired",
                "pair_again",
            ]
            .map(String::from),
        );
        for code in &codes {
            let cli = advice(code, Surface::Cli, Some("till-1"));
            let desktop = advice(code, Surface::Desktop, Some("till-1"));
            assert!(cli.is_some() && desktop.is_some(), "no advice for {code}");
            let desktop = desktop.unwrap();
            assert!(
                !desktop.contains("ledgerlink") && !desktop.contains('`'),
                "{code}: {desktop}"
            );
        }
        for a in TABLE {
            assert!(
                !a.cli.contains("/v1/") && !a.desktop.contains("/v1/"),
                "{}",
                a.code
            );
        }
        let unique: std::collections::HashSet<_> = TABLE.iter().map(|a| a.code).collect();
        assert_eq!(unique.len(), TABLE.len(), "a code listed twice");
    }

    #[test]
    fn a_document_is_advised_by_why_it_needs_a_person() {
        let unmapped = for_document(
            DocumentState::Rejected,
            Some("invoices[0].lines[0].sales_category: the sales category 'Tea' is not mapped to an account and tax type yet"),
            Surface::Cli,
            "till-7",
        )
        .unwrap();
        assert!(
            unmapped.contains("ledgerlink mappings set category"),
            "{unmapped}"
        );
        assert!(unmapped.contains("ledgerlink retry till-7"), "{unmapped}");
        let failed = for_document(
            DocumentState::Failed,
            Some("Account code '999' is not valid"),
            Surface::Desktop,
            "x",
        )
        .unwrap();
        assert!(failed.contains("Fix"), "{failed}");
        assert_eq!(
            for_document(DocumentState::Sent, None, Surface::Cli, "x"),
            None
        );
    }
}
