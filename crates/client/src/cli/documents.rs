//! Documents: `push`, `outbox`, `show`, `retry`, `discard`, `sync`.

use ledgerlink_wire::documents::{CreditNote, DocumentKind, DocumentState, Invoice, Shift};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::Duration;

use super::{
    attention_hint, confirm, describe, fail, note, out, provider_name, say, usage, Context, Done,
    Failure, Result,
};
use crate::advice::{self, Surface};
use crate::documents;
use crate::outbox::{Entry, OutboxError, Saved};
use crate::sync::{Progress, Until};

fn read_input(file: &Path) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| fail("input", format!("cannot read standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(file)
        .map_err(|e| fail("input", format!("cannot read {}: {e}", file.display())))
}

fn saved_word(s: Saved) -> &'static str {
    match s {
        Saved::New => "new",
        Saved::AlreadySaved => "already_saved",
        Saved::Replaced => "replaced",
        Saved::Corrected => "corrected",
    }
}

/// Saves a file's documents (each checked first), then sends them. Exit code 3 when, after
/// sending, documents of the outbox need attention.
pub(super) async fn push(
    cx: &Context,
    kind: DocumentKind,
    file: &Path,
    no_send: bool,
) -> Result<Done> {
    let prepared = documents::prepare(kind, &read_input(file)?);
    let (mappings, rates) = documents::totals_basis(cx.syncer.cached_mappings().as_ref());
    let mut saved = 0;
    for document in &prepared.documents {
        let client_ref = document["client_ref"].as_str().unwrap_or_default();
        let outcome = match cx.outbox().save(kind, document) {
            Ok(s) => s,
            Err(e @ OutboxError::ClientRefInUse { .. }) => {
                out(
                    cx.json,
                    json!({"event": "problem", "path": client_ref, "code": "client_ref_in_use", "message": e.to_string()}),
                    || format!("{client_ref}: {e}"),
                );
                continue;
            }
            Err(e) => return Err(fail("outbox", e.to_string())),
        };
        saved += 1;
        let mut line = json!({"event": "saved", "client_ref": client_ref, "kind": kind.as_str(),
            "saved": saved_word(outcome)});
        let mut summary = String::new();
        match kind {
            DocumentKind::Invoice => {
                if let Ok(inv) = serde_json::from_value::<Invoice>(document.clone()) {
                    if let Ok(t) = documents::invoice_totals(&inv, &rates, &mappings) {
                        summary = format!(
                            ": {}, total {} (tax {})",
                            inv.contact.name, t.total, t.total_tax
                        );
                        line["totals"] = json!(t);
                    }
                }
            }
            DocumentKind::CreditNote => {
                if let Ok(note) = serde_json::from_value::<CreditNote>(document.clone()) {
                    if let Ok(t) = documents::credit_note_totals(&note, &rates, &mappings) {
                        summary = format!(
                            ": refund to {}, total {} (tax {})",
                            note.contact.name, t.total, t.total_tax
                        );
                        line["totals"] = json!(t);
                    }
                }
            }
            DocumentKind::Shift => {
                if let Some((shift, s)) = serde_json::from_value::<Shift>(document.clone())
                    .ok()
                    .and_then(|shift| documents::shift_summary(&shift).map(|s| (shift, s)))
                {
                    summary = format!(
                        ": {}, taken {}, cash over/short {}",
                        shift.register, s.taken, s.over_short
                    );
                    line["summary"] = json!(s);
                }
            }
            DocumentKind::Payment => {
                summary = format!(": {}", document["amount"].as_str().unwrap_or_default());
            }
            DocumentKind::Order => {
                if let Ok(order) =
                    serde_json::from_value::<ledgerlink_wire::documents::Order>(document.clone())
                {
                    if let Some(total) = order.total() {
                        summary = format!(": {} items, total {total}", order.items.len());
                        line["total"] = json!(total.to_string());
                    }
                }
            }
        }
        out(cx.json, line, || {
            match outcome {
            Saved::AlreadySaved => format!(
                "{client_ref}: already saved, nothing changed (to send a refused one again unchanged: `ledgerlink retry {client_ref}`)"
            ),
            Saved::Replaced => {
                format!("Saved {client_ref} again (it replaces the rejected one){summary}")
            }
            Saved::Corrected => {
                format!("Saved the correction of {client_ref} (it replaces the failed one){summary}")
            }
            Saved::New => format!("Saved {client_ref}{summary}"),
        }
        });
    }
    for p in &prepared.problems {
        out(
            cx.json,
            json!({"event": "problem", "path": p.path, "code": p.code, "message": p.message}),
            || {
                if p.path.is_empty() {
                    format!("{}: {}", file.display(), p.message)
                } else {
                    format!("{}: {}", p.path, p.message)
                }
            },
        );
    }
    if saved > 0 && !no_send {
        match cx.syncer.upload().await {
            Ok(pass) => {
                out(
                    cx.json,
                    json!({"event": "sent", "accepted": pass.uploaded, "rejected": pass.rejected}),
                    || {
                        if pass.rejected > 0 {
                            format!("Sent to the proxy; it refused {} (`ledgerlink outbox --state rejected` lists them with the reasons).", pass.rejected)
                        } else {
                            format!(
                                "Sent to the proxy; `ledgerlink outbox` shows when {} has it.",
                                provider_name(cx)
                            )
                        }
                    },
                );
            }
            Err(e) => {
                let f = Failure::from(e);
                let advice = advice::advice(&f.code, Surface::Cli, None);
                out(
                    cx.json,
                    json!({"event": "not_sent", "code": f.code, "message": f.message, "advice": advice}),
                    || {
                        format!(
                            "Saved on this device only: {}\nIt goes out with the next `ledgerlink sync`.",
                            f.message
                        )
                    },
                );
            }
        }
    }
    if !prepared.problems.is_empty() || saved < prepared.documents.len() {
        let refused = prepared.refused + prepared.documents.len() - saved;
        // Each problem was printed above, as an event of its own.
        return Err(fail(
            "invalid_document",
            format!(
                "{} (listed above): fix and push again{}",
                match refused {
                    0 => "The input cannot be read".to_string(),
                    1 => "1 document has problems".to_string(),
                    n => format!("{n} documents have problems"),
                },
                if saved > 0 {
                    "; the others are saved"
                } else {
                    ""
                }
            ),
        ));
    }
    let counts = cx.counts()?;
    if !cx.json {
        if let Some(hint) = attention_hint(&counts) {
            note(&hint);
        }
    }
    Ok(Done::by(&counts))
}

fn entry_json(e: &Entry) -> Value {
    json!({"client_ref": e.client_ref, "kind": e.kind.as_str(), "state": e.state.as_str(),
        "version": e.version, "provider_id": e.xero_id, "provider_number": e.xero_number,
        // The names before the provider seam, kept for scripts that read them.
        "xero_id": e.xero_id, "xero_number": e.xero_number,
        "organisation": e.organisation,
        "message": e.message, "discard_reason": e.discard_reason,
        "created_at": e.created_at.to_rfc3339(), "updated_at": e.updated_at.to_rfc3339()})
}

fn entry_text(e: &Entry) -> String {
    let mut line = format!(
        "{:<36} {:<8} {:<9} {}",
        e.client_ref,
        e.kind.as_str(),
        e.state.as_str(),
        e.xero_number.as_deref().unwrap_or("")
    );
    if let Some(m) = e.discard_reason.as_ref().or(e.message.as_ref()) {
        line.push_str(&format!("  {m}"));
    }
    line
}

pub(super) async fn outbox(
    cx: &Context,
    watch: bool,
    state: Option<&str>,
    offline: bool,
) -> Result<()> {
    let state = match state {
        None => None,
        Some(s) => Some(DocumentState::parse(s).ok_or_else(|| {
            usage(format!(
                "'{s}' is not a state: use pending, queued, sending, sent, failed, paid, voided, rejected or discarded"
            ))
        })?),
    };
    if !offline {
        if let Err(e) = cx.syncer.pass(0).await {
            note(&format!("(showing what this device knows: {e})"));
        }
    }
    let mut entries = cx
        .outbox()
        .list(state)
        .map_err(|e| fail("outbox", e.to_string()))?;
    entries.reverse();
    if !cx.json {
        if entries.is_empty() && !watch {
            say("The outbox is empty.");
        } else {
            say(&format!(
                "{:<36} {:<8} {:<9} XERO NUMBER / MESSAGE",
                "CLIENT_REF", "KIND", "STATE"
            ));
        }
    }
    let mut shown: HashMap<String, Value> = HashMap::new();
    for e in &entries {
        out(cx.json, entry_json(e), || entry_text(e));
        shown.insert(e.client_ref.clone(), entry_json(e));
    }
    if !watch {
        return Ok(());
    }
    let json = cx.json;
    let outbox = cx.outbox();
    let mut show_changes = || {
        let Ok(mut now) = outbox.list(state) else {
            return;
        };
        now.reverse();
        for e in &now {
            let j = entry_json(e);
            if shown.get(&e.client_ref) != Some(&j) {
                out(json, j.clone(), || entry_text(e));
                shown.insert(e.client_ref.clone(), j);
            }
        }
    };
    let result = cx
        .syncer
        .run(Until::Forever, |p| match p {
            Progress::Counts(_) => show_changes(),
            Progress::Retrying { wait, reason } => note(&format!(
                "(the proxy cannot be reached: {reason}; trying again in {} s)",
                wait.as_secs().max(1)
            )),
        })
        .await;
    result.map(|_| ()).map_err(Failure::from)
}

/// One document: what the device knows, the proxy's versions when it can be reached, and what to
/// do about it.
pub(super) async fn show(cx: &Context, client_ref: &str) -> Result<()> {
    let not_found = || {
        fail(
            "not_found",
            format!("There is no document '{client_ref}' on this device."),
        )
        .about(client_ref)
    };
    let entry = cx
        .outbox()
        .get(client_ref)
        .map_err(|e| fail("outbox", e.to_string()))?
        .ok_or_else(not_found)?;
    let (proxy, offline) =
        if entry.state == DocumentState::Pending || entry.state == DocumentState::Rejected {
            (None, None)
        } else {
            match cx.syncer.proxy_document(client_ref, true).await {
                Ok(v) => {
                    if let Some(v) = &v {
                        // The freshest word on it.
                        let _ = cx.outbox().record(v);
                    }
                    (v, None)
                }
                Err(e) => (None, Some(e.to_string())),
            }
        };
    let entry = cx
        .outbox()
        .get(client_ref)
        .map_err(|e| fail("outbox", e.to_string()))?
        .ok_or_else(not_found)?;
    let advice = advice::for_document(
        entry.state,
        entry.message.as_deref(),
        Surface::Cli,
        client_ref,
    );
    let history = proxy
        .as_ref()
        .and_then(|v| v.history.clone())
        .unwrap_or_default();
    let mut value = entry_json(&entry);
    value["document"] = entry.body.clone();
    value["history"] = json!(history);
    value["advice"] = json!(advice);
    value["offline_reason"] = json!(offline);
    out(cx.json, value, || {
        let mut lines = vec![
            format!(
                "{} ({}, version {}): {}{}",
                entry.client_ref,
                entry.kind.as_str(),
                entry.version,
                entry.state.as_str(),
                entry
                    .xero_number
                    .as_ref()
                    .or(entry.xero_id.as_ref())
                    .map(|n| format!(", in {} {n}", provider_name(cx)))
                    .unwrap_or_default()
            ),
            format!(
                "Saved {}, last changed {}",
                entry.created_at.to_rfc3339(),
                entry.updated_at.to_rfc3339()
            ),
        ];
        if let Some(m) = &entry.message {
            lines.push(format!("Message: {m}"));
        }
        if let Some(r) = &entry.discard_reason {
            lines.push(format!("Discarded because: {r}"));
        }
        for v in &history {
            lines.push(format!(
                "Version {}: {}{} (replaced {})",
                v.version,
                v.state.as_str(),
                v.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
                v.replaced_at.to_rfc3339()
            ));
        }
        if let Some(why) = &offline {
            lines.push(format!(
                "(the proxy cannot be reached, so this is what the device knows: {why})"
            ));
        }
        if let Some(a) = &advice {
            lines.push(format!("What to do: {a}"));
        }
        lines.join("\n")
    });
    Ok(())
}

/// Sends refused documents again, unchanged. Exit code 3 when documents still need attention
/// after (the cause was not put right yet, or others wait).
pub(super) async fn retry(cx: &Context, client_ref: Option<&str>, all: bool) -> Result<Done> {
    let refs: Vec<String> = match client_ref {
        Some(r) => vec![r.to_string()],
        None => {
            debug_assert!(all);
            cx.outbox()
                .list(None)
                .map_err(|e| fail("outbox", e.to_string()))?
                .into_iter()
                .rev()
                .filter(|e| e.state.needs_attention())
                .map(|e| e.client_ref)
                .collect()
        }
    };
    if refs.is_empty() {
        out(cx.json, json!({"event": "nothing_to_retry"}), || {
            "Nothing failed or rejected: nothing to send again.".into()
        });
    }
    for r in &refs {
        let entry = cx
            .syncer
            .retry(r)
            .await
            .map_err(|e| Failure::from(e).about(r))?;
        out(
            cx.json,
            json!({"event": "retried", "document": entry_json(&entry)}),
            || {
                match entry.state {
                DocumentState::Rejected => format!(
                    "{r}: refused again: {}",
                    entry.message.as_deref().unwrap_or_default()
                ),
                DocumentState::Pending => format!("{r}: saved to go again with the next `ledgerlink sync` (the proxy cannot be reached)"),
                s => format!("{r}: {} again; `ledgerlink sync` waits until {} has it", s.as_str(), provider_name(cx)),
            }
            },
        );
    }
    let counts = cx.counts()?;
    if !cx.json {
        if let Some(hint) = attention_hint(&counts) {
            note(&hint);
        }
    }
    Ok(Done::by(&counts))
}

/// The document `client_ref` in this device's outbox, or the failure that says it is not there.
fn local(cx: &Context, client_ref: &str) -> Result<Entry> {
    cx.outbox()
        .get(client_ref)
        .map_err(|e| fail("outbox", e.to_string()))?
        .ok_or_else(|| {
            fail(
                "not_found",
                format!("There is no document '{client_ref}' on this device."),
            )
            .about(client_ref)
        })
}

pub(super) async fn discard(cx: &Context, client_ref: &str, reason: &str, yes: bool) -> Result<()> {
    let request = ledgerlink_wire::documents::DiscardRequest {
        reason: reason.to_string(),
    };
    let reason = request
        .checked_reason()
        .map_err(|why| usage(format!("--reason: {why}")))?;
    // Said before asking: a document that cannot be discarded is not worth a question.
    let entry = local(cx, client_ref)?;
    confirm(
        yes,
        &format!(
            "Discard {client_ref} ({}, {})? It will never be sent.",
            entry.kind.as_str(),
            entry.state.as_str()
        ),
        "discard puts the document aside for good",
    )?;
    let entry = cx
        .syncer
        .discard(client_ref, &reason)
        .await
        .map_err(|e| Failure::from(e).about(client_ref))?;
    out(
        cx.json,
        json!({"event": "discarded", "document": entry_json(&entry)}),
        || format!("Discarded {client_ref}: it will not be sent."),
    );
    Ok(())
}

/// Asks for a sent invoice to be voided: recorded here (`voiding`), then sent to the proxy now if
/// it can be reached, or with the next sync.
pub(super) async fn void(cx: &Context, client_ref: &str, yes: bool) -> Result<()> {
    let entry = local(cx, client_ref)?;
    confirm(
        yes,
        &format!(
            "Void {client_ref} ({}) in Xero?",
            entry.xero_number.as_deref().unwrap_or("no number yet")
        ),
        "void cancels the invoice in Xero for good",
    )?;
    cx.outbox()
        .request_void(client_ref)
        .map_err(|e| Failure::from(crate::sync::SyncError::from(e)).about(client_ref))?;
    let sent = cx.syncer.send_voids().await;
    let entry = cx
        .outbox()
        .get(client_ref)
        .map_err(|e| fail("outbox", e.to_string()))?
        .expect("it was there a moment ago");
    if entry.state == DocumentState::Sent {
        // The proxy refused it at once: why is the document's message.
        return Err(fail(
            "conflict",
            entry
                .message
                .unwrap_or_else(|| "The proxy refused the void.".into()),
        )
        .about(client_ref));
    }
    out(
        cx.json,
        json!({"event": "voiding", "document": entry_json(&entry)}),
        || {
            match sent {
        Ok(_) => format!("{client_ref} is being voided in Xero; `ledgerlink sync` waits until it is."),
        Err(e) => format!("{client_ref} will be voided once the proxy can be reached ({e}): `ledgerlink sync` sends it."),
    }
        },
    );
    Ok(())
}

/// Sends everything, then waits for the provider. Exit code 3 when documents need attention at the end.
pub(super) async fn sync(cx: &Context, timeout: Option<u64>, no_wait: bool) -> Result<Done> {
    let json = cx.json;
    let provider = provider_name(cx);
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    let report = |p: Progress| match p {
        Progress::Counts(c) => {
            let line = format!(
                "{} of {} with the proxy; in {}: {}; needs attention: {}; waiting: {}",
                c.total() - c.pending - c.discarded,
                c.total() - c.discarded,
                provider,
                c.sent + c.paid + c.voided,
                c.needs_attention(),
                c.queued + c.sending
            );
            if json {
                say(&json!({"event": "progress", "outbox": c}).to_string());
            } else if line != last {
                if tty {
                    eprint!("\r{line}   ");
                } else {
                    note(&line);
                }
                last = line;
            }
        }
        Progress::Retrying { wait, reason } => {
            if json {
                say(
                    &json!({"event": "retrying", "in_secs": wait.as_secs_f64(), "reason": reason})
                        .to_string(),
                );
            } else {
                note(&format!(
                    "{}the proxy cannot be reached ({reason}); trying again in {} s",
                    if tty { "\n" } else { "" },
                    wait.as_secs().max(1)
                ));
            }
        }
    };
    let work = async {
        let mut report = report;
        let counts = cx.syncer.run(Until::Uploaded, &mut report).await?;
        if no_wait || counts.in_flight() == 0 {
            return Ok(Some(counts));
        }
        // The proxy has everything; Xero gets it only while the organisation is connected.
        let info = cx.syncer.connection().await?;
        if info.status != ledgerlink_wire::ConnectionStatus::Connected {
            return Ok(None);
        }
        cx.syncer.run(Until::Delivered, &mut report).await.map(Some)
    };
    let result = match timeout {
        Some(secs) => tokio::time::timeout(Duration::from_secs(secs), work)
            .await
            .map_err(|_| {
                fail(
                    "timeout",
                    format!("not finished after {secs} s (nothing is lost)"),
                )
            })?,
        None => work.await,
    };
    if tty && !json {
        note("");
    }
    match result.map_err(Failure::from)? {
        Some(c) => {
            out(cx.json, json!({"event": "synced", "outbox": c, "needs_attention": c.needs_attention()}), || {
                format!("Done: {}.", describe(&c))
            });
            if !cx.json {
                if let Some(hint) = attention_hint(&c) {
                    note(&hint);
                }
            }
            Ok(Done::by(&c))
        }
        None => Err(fail(
            "needs_reconnect",
            format!("The proxy has every document, but the connection to {0} needs attention: they go to {0} once someone connects it again (`ledgerlink reconnect`).", provider_name(cx)),
        )),
    }
}
