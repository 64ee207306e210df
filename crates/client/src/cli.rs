//! `ledgerlink`: the command-line client. Human output by default, `--json` for scripts (one JSON
//! object per line). Exit code 0 on success, 1 on failure, with a message that says what to do next.

use clap::{Parser, Subcommand, ValueEnum};
use ledgerlink_wire::documents::{
    CategoryMapping, DocumentKind, DocumentState, Invoice, Mappings, Shift, TenderMapping,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::api::ProxyClient;
use crate::credentials::{CredentialStore, Place};
use crate::documents;
use crate::identity::{data_dir, Identity};
use crate::outbox::{Counts, Entry, Outbox, Saved};
use crate::pairing::{self, PairError};
use crate::sync::{Progress, SyncError, Syncer, Until};

/// Sends a till's invoices, payments and end-of-shift summaries to the organisation's Xero through a
/// Ledgerlink proxy. Documents are saved on this device first and go out when the proxy is
/// reachable, so nothing is lost while it is not.
///
/// Start with `ledgerlink pair --proxy URL`, map your sales categories and tenders with
/// `ledgerlink mappings set ...`, then `ledgerlink push invoice FILE` and `ledgerlink outbox`.
#[derive(Debug, Parser)]
#[command(name = "ledgerlink", version)]
struct Args {
    /// Where the device keeps its identity, credentials and outbox (default: the per-user data
    /// directory).
    #[arg(long, global = true, env = "LEDGERLINK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Invoice,
    Payment,
    Shift,
}

impl From<Kind> for DocumentKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Invoice => DocumentKind::Invoice,
            Kind::Payment => DocumentKind::Payment,
            Kind::Shift => DocumentKind::Shift,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pair this device: shows a code (and a QR code) to confirm in the browser, then waits until
    /// Xero is connected.
    Pair {
        /// The Ledgerlink proxy's URL.
        #[arg(
            long,
            env = "LEDGERLINK_PROXY",
            default_value = "http://127.0.0.1:7400"
        )]
        proxy: String,
        /// This device's name, shown on the pairing page (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Do not open the browser (the link is printed either way). The variable takes 1/0,
        /// true/false, yes/no or on/off.
        #[arg(
            long,
            env = "LEDGERLINK_NO_BROWSER",
            value_parser = clap::builder::BoolishValueParser::new(),
            num_args = 0..=1,
            default_missing_value = "true",
            default_value = "false"
        )]
        no_browser: bool,
    },
    /// Show the connected organisation, its status, and the outbox.
    Status,
    /// Save documents from a file (or `-` for standard input) and send them.
    ///
    /// The file holds one document as in `examples/` (invoice.json, payment.json, shift.json), a list
    /// of them, or a batch (`{"invoices": [...]}`). A document without a `client_ref` is given one.
    /// Every document is checked first: the good ones are saved even when others have problems.
    Push {
        /// What the file holds.
        kind: Kind,
        /// The JSON file, or `-` to read standard input.
        file: PathBuf,
        /// Only save them: they go out with the next `ledgerlink sync`.
        #[arg(long)]
        no_send: bool,
    },
    /// List the documents and their states: pending (on this device only), queued, sending, sent
    /// (with Xero's number), failed (with Xero's message), paid, voided, rejected (with the reasons).
    Outbox {
        /// Keep following: print each document again when its state changes (Ctrl-C to stop).
        #[arg(long)]
        watch: bool,
        /// Only documents in this state.
        #[arg(long)]
        state: Option<String>,
        /// Do not ask the proxy for news first.
        #[arg(long)]
        offline: bool,
    },
    /// Send everything saved, then wait until Xero has it all, showing progress. Retries (with
    /// growing pauses) while the proxy is unreachable.
    Sync {
        /// Give up after this many seconds (default: keep trying).
        #[arg(long)]
        timeout: Option<u64>,
        /// Stop once the proxy has every document, without waiting for Xero.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show how sales categories and tenders map to the organisation's accounts and tax rates, and
    /// what the organisation offers.
    Mappings {
        #[command(subcommand)]
        change: Option<MappingsCommand>,
        /// Read the organisation's accounts and tax rates from Xero now.
        #[arg(long)]
        refresh: bool,
    },
    /// Unpair this device: its credentials stop working at once.
    Unpair,
}

#[derive(Debug, Subcommand)]
enum MappingsCommand {
    /// Set a mapping.
    Set {
        #[command(subcommand)]
        what: SetMapping,
    },
    /// Remove the mapping of a sales category or tender.
    Remove {
        #[command(subcommand)]
        what: RemoveMapping,
    },
}

#[derive(Debug, Subcommand)]
enum SetMapping {
    /// A sales category: the account its sales go to and their tax type.
    Category {
        name: String,
        #[arg(long)]
        account: String,
        #[arg(long)]
        tax_type: String,
    },
    /// A tender (cash, card, ...): the bank account (or payments-enabled account) it pays into.
    Tender {
        name: String,
        #[arg(long)]
        account: String,
    },
    /// Where cash over/short goes.
    OverShort { account: String },
    /// The contact end-of-shift invoices go to (default "POS Sales").
    PosContact { name: String },
}

#[derive(Debug, Subcommand)]
enum RemoveMapping {
    Category { name: String },
    Tender { name: String },
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime builds");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            if json {
                println!(
                    "{}",
                    json!({"event": "error", "code": code, "message": message})
                );
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

type Failure = (String, String);

fn fail(code: &str, message: impl Into<String>) -> Failure {
    (code.to_string(), message.into())
}

fn from_sync(e: SyncError) -> Failure {
    let code = e.code();
    let message = match code {
        "proxy_unreachable" => format!("{e}. Check the proxy URL and that it is running."),
        _ => e.to_string(),
    };
    (code.to_string(), message)
}

fn out(json: bool, value: Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

/// A QR code of `link` for a terminal (two rows of modules per line), to finish on a phone.
pub fn terminal_qr(link: &str) -> Option<String> {
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

struct Context {
    dir: PathBuf,
    json: bool,
    syncer: Syncer,
}

impl Context {
    fn outbox(&self) -> &Outbox {
        &self.syncer.outbox
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let dir = data_dir(args.data_dir.as_deref()).map_err(|e| fail("data_dir", e.to_string()))?;
    let store = CredentialStore::open(&dir).map_err(|e| fail("credentials", e.to_string()))?;
    let local = Outbox::open(&dir).map_err(|e| fail("outbox", e.to_string()))?;
    let cx = Context {
        dir,
        json: args.json,
        syncer: Syncer::new(Arc::new(local), Arc::new(store)),
    };
    match args.command {
        Command::Pair {
            proxy,
            name,
            no_browser,
        } => pair(&cx, &proxy, name.as_deref(), no_browser).await,
        Command::Status => status(&cx).await,
        Command::Push {
            kind,
            file,
            no_send,
        } => push(&cx, kind.into(), &file, no_send).await,
        Command::Outbox {
            watch,
            state,
            offline,
        } => outbox(&cx, watch, state.as_deref(), offline).await,
        Command::Sync { timeout, no_wait } => sync(&cx, timeout, no_wait).await,
        Command::Mappings { change, refresh } => mappings(&cx, change, refresh).await,
        Command::Unpair => unpair(&cx).await,
    }
}

async fn pair(
    cx: &Context,
    proxy: &str,
    name: Option<&str>,
    no_browser: bool,
) -> Result<(), Failure> {
    let identity =
        Identity::load_or_create(&cx.dir, name).map_err(|e| fail("data_dir", e.to_string()))?;
    let client = ProxyClient::new(proxy);
    let json = cx.json;
    let creds = pairing::pair(&client, proxy, &identity, |p| {
        out(
            json,
            json!({"event": "code", "user_code": p.user_code, "verification_uri": p.verification_uri,
                "verification_uri_complete": p.verification_uri_complete, "expires_in": p.expires_in}),
            || {
                let qr = terminal_qr(&p.verification_uri_complete).unwrap_or_default();
                format!(
                    "Your code: {}\n\nConfirm it at {}\n(or open {}, or scan this on a phone)\n{qr}\nWaiting for the browser (the code works for {} minutes)...",
                    p.user_code,
                    p.verification_uri,
                    p.verification_uri_complete,
                    p.expires_in / 60
                )
            },
        );
        if !no_browser && webbrowser::open(&p.verification_uri_complete).is_err() && !json {
            println!("(Could not open a browser: open the link yourself.)");
        }
    })
    .await
    .map_err(|e: PairError| {
        let message = match &e {
            PairError::Client(c) if c.code().is_none() => {
                format!("{e}. Check the proxy URL and that it is running.")
            }
            _ => e.to_string(),
        };
        (e.code().to_string(), message)
    })?;
    let place = cx
        .syncer
        .store
        .save(&creds)
        .map_err(|e| fail("credentials", e.to_string()))?;
    cx.outbox()
        .reset_cursor()
        .map_err(|e| fail("outbox", e.to_string()))?;
    let c = &creds.connection;
    out(
        cx.json,
        json!({"event": "paired", "tenant_id": c.tenant_id, "tenant_name": c.organisation_name}),
        || {
            format!(
                "Paired with {} (credentials kept in {}).\nNext: map your sales categories and tenders (`ledgerlink mappings`), then `ledgerlink push invoice FILE`.",
                c.organisation_name,
                match place {
                    Place::Keychain => "the OS keychain".to_string(),
                    Place::File => cx.dir.join("credentials.json").display().to_string(),
                }
            )
        },
    );
    Ok(())
}

async fn status(cx: &Context) -> Result<(), Failure> {
    let info = cx.syncer.connection().await.map_err(from_sync)?;
    let counts = cx
        .outbox()
        .counts()
        .map_err(|e| fail("outbox", e.to_string()))?;
    let last_sync = cx
        .outbox()
        .meta("last_sync_at")
        .map_err(|e| fail("outbox", e.to_string()))?;
    let mut value = serde_json::to_value(&info).expect("connection info serializes");
    value["outbox"] = json!(counts);
    value["last_sync_at"] = json!(last_sync);
    out(cx.json, value, || {
        format!(
            "{} ({}), status: {}\nThis device: {} ({})\nOutbox: {}\nLast sync: {}",
            info.organisation_name,
            info.tenant_id,
            info.status.as_str(),
            info.device_name,
            info.device_id,
            describe(&counts),
            last_sync.as_deref().unwrap_or("never")
        )
    });
    Ok(())
}

fn describe(c: &Counts) -> String {
    if c.total() == 0 {
        return "empty".into();
    }
    let parts: Vec<String> = [
        ("pending", c.pending),
        ("queued", c.queued + c.sending),
        ("sent", c.sent),
        ("failed", c.failed),
        ("paid", c.paid),
        ("voided", c.voided),
        ("rejected", c.rejected),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(s, n)| format!("{n} {s}"))
    .collect();
    parts.join(", ")
}

fn read_input(file: &std::path::Path) -> Result<String, Failure> {
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

async fn push(
    cx: &Context,
    kind: DocumentKind,
    file: &std::path::Path,
    no_send: bool,
) -> Result<(), Failure> {
    let prepared = documents::prepare(kind, &read_input(file)?);
    let (mappings, rates) = documents::totals_basis(cx.syncer.cached_mappings().as_ref());
    let mut saved = 0;
    for document in &prepared.documents {
        let client_ref = document["client_ref"].as_str().unwrap_or_default();
        let outcome = match cx.outbox().save(kind, document) {
            Ok(s) => s,
            Err(e @ crate::outbox::OutboxError::ClientRefInUse { .. }) => {
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
            "saved": match outcome { Saved::New => "new", Saved::AlreadySaved => "already_saved", Saved::Replaced => "replaced" }});
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
        }
        out(cx.json, line, || match outcome {
            Saved::AlreadySaved => format!("{client_ref}: already saved, nothing changed"),
            Saved::Replaced => {
                format!("Saved {client_ref} again (it replaces the rejected one){summary}")
            }
            Saved::New => format!("Saved {client_ref}{summary}"),
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
                            format!("Sent to the proxy; it refused {} (see `ledgerlink outbox --state rejected`).", pass.rejected)
                        } else {
                            "Sent to the proxy; `ledgerlink outbox` shows when Xero has it."
                                .to_string()
                        }
                    },
                );
            }
            Err(e) => {
                let (code, message) = from_sync(e);
                out(
                    cx.json,
                    json!({"event": "not_sent", "code": code, "message": message}),
                    || {
                        format!("Saved on this device only. {message}\nIt goes out with the next `ledgerlink sync`.")
                    },
                );
            }
        }
    }
    if !prepared.problems.is_empty() || saved < prepared.documents.len() {
        let refused = prepared.refused + prepared.documents.len() - saved;
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
    Ok(())
}

fn entry_json(e: &Entry) -> Value {
    json!({"client_ref": e.client_ref, "kind": e.kind.as_str(), "state": e.state.as_str(),
        "xero_id": e.xero_id, "xero_number": e.xero_number, "message": e.message})
}

fn entry_text(e: &Entry) -> String {
    let mut line = format!(
        "{:<36} {:<8} {:<9} {}",
        e.client_ref,
        e.kind.as_str(),
        e.state.as_str(),
        e.xero_number.as_deref().unwrap_or("")
    );
    if let Some(m) = &e.message {
        line.push_str(&format!("  {m}"));
    }
    line
}

async fn outbox(
    cx: &Context,
    watch: bool,
    state: Option<&str>,
    offline: bool,
) -> Result<(), Failure> {
    let state = match state {
        None => None,
        Some(s) => Some(DocumentState::parse(s).ok_or_else(|| {
            fail(
                "invalid_request",
                format!("'{s}' is not a state: use pending, queued, sending, sent, failed, paid, voided or rejected"),
            )
        })?),
    };
    if !offline {
        if let Err(e) = cx.syncer.pass(0).await {
            let (_, message) = from_sync(e);
            eprintln!("(showing what this device knows: {message})");
        }
    }
    let mut entries = cx
        .outbox()
        .list(state)
        .map_err(|e| fail("outbox", e.to_string()))?;
    entries.reverse();
    if !cx.json {
        if entries.is_empty() && !watch {
            println!("The outbox is empty.");
        } else {
            println!(
                "{:<36} {:<8} {:<9} XERO NUMBER / MESSAGE",
                "CLIENT_REF", "KIND", "STATE"
            );
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
            Progress::Retrying { wait, reason } => {
                eprintln!(
                    "(the proxy cannot be reached: {reason}; trying again in {} s)",
                    wait.as_secs().max(1)
                )
            }
        })
        .await;
    result.map(|_| ()).map_err(from_sync)
}

async fn sync(cx: &Context, timeout: Option<u64>, no_wait: bool) -> Result<(), Failure> {
    let json = cx.json;
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    let report = |p: Progress| match p {
        Progress::Counts(c) => {
            let line = format!(
                "{} of {} with the proxy; in Xero: {}; failed: {}; waiting: {}",
                c.total() - c.pending,
                c.total(),
                c.sent + c.paid + c.voided,
                c.failed + c.rejected,
                c.queued + c.sending
            );
            if json {
                println!("{}", json!({"event": "progress", "outbox": c}));
            } else if line != last {
                if tty {
                    eprint!("\r{line}   ");
                } else {
                    eprintln!("{line}");
                }
                last = line;
            }
        }
        Progress::Retrying { wait, reason } => {
            if json {
                println!(
                    "{}",
                    json!({"event": "retrying", "in_secs": wait.as_secs_f64(), "reason": reason})
                );
            } else {
                eprintln!(
                    "{}the proxy cannot be reached ({reason}); trying again in {} s",
                    if tty { "\n" } else { "" },
                    wait.as_secs().max(1)
                );
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
                    format!("not finished after {secs} s: run `ledgerlink sync` again to carry on (nothing is lost)"),
                )
            })?,
        None => work.await,
    };
    if tty && !json {
        eprintln!();
    }
    match result.map_err(from_sync)? {
        Some(c) => {
            out(cx.json, json!({"event": "synced", "outbox": c}), || {
                format!("Done: {}.", describe(&c))
            });
            if c.failed + c.rejected > 0 && !cx.json {
                println!("`ledgerlink outbox --state failed` and `--state rejected` show what to fix.");
            }
            Ok(())
        }
        None => Err(fail(
            "needs_reconnect",
            "The proxy has every document, but the organisation's Xero connection needs attention (`ledgerlink status`): they go to Xero once someone connects Xero again.",
        )),
    }
}

async fn mappings(
    cx: &Context,
    change: Option<MappingsCommand>,
    refresh: bool,
) -> Result<(), Failure> {
    let read = |offered: bool| async move {
        cx.syncer
            .read_mappings(offered, refresh)
            .await
            .map_err(from_sync)
    };
    let answer = match change {
        None => read(true).await?,
        Some(change) => {
            let current = read(false).await?;
            let mut m: Mappings = serde_json::from_value(current["mappings"].clone())
                .map_err(|e| fail("protocol", e.to_string()))?;
            match change {
                MappingsCommand::Set { what } => match what {
                    SetMapping::Category {
                        name,
                        account,
                        tax_type,
                    } => {
                        m.categories.insert(
                            name,
                            CategoryMapping {
                                account_code: account,
                                tax_type,
                            },
                        );
                    }
                    SetMapping::Tender { name, account } => {
                        m.tenders.insert(
                            name,
                            TenderMapping {
                                account_code: account,
                            },
                        );
                    }
                    SetMapping::OverShort { account } => m.over_short_account = Some(account),
                    SetMapping::PosContact { name } => m.pos_contact_name = name,
                },
                MappingsCommand::Remove { what } => {
                    let (gone, what) = match what {
                        RemoveMapping::Category { name } => {
                            (m.categories.remove(&name).is_some(), name)
                        }
                        RemoveMapping::Tender { name } => (m.tenders.remove(&name).is_some(), name),
                    };
                    if !gone {
                        return Err(fail("not_found", format!("'{what}' has no mapping")));
                    }
                }
            }
            cx.syncer.write_mappings(&m).await.map_err(from_sync)?;
            read(true).await?
        }
    };
    out(cx.json, answer.clone(), || mappings_text(&answer));
    Ok(())
}

fn mappings_text(answer: &Value) -> String {
    let m = &answer["mappings"];
    let mut lines = vec!["Sales categories:".to_string()];
    let empty = serde_json::Map::new();
    let categories = m["categories"].as_object().unwrap_or(&empty);
    if categories.is_empty() {
        lines.push(
            "  (none: `ledgerlink mappings set category NAME --account CODE --tax-type TYPE`)"
                .into(),
        );
    }
    for (name, c) in categories {
        lines.push(format!(
            "  {name:<20} account {:<6} tax {}",
            c["account_code"].as_str().unwrap_or_default(),
            c["tax_type"].as_str().unwrap_or_default()
        ));
    }
    lines.push("Tenders:".into());
    let tenders = m["tenders"].as_object().unwrap_or(&empty);
    if tenders.is_empty() {
        lines.push("  (none: `ledgerlink mappings set tender NAME --account CODE`)".into());
    }
    for (name, t) in tenders {
        lines.push(format!(
            "  {name:<20} account {}",
            t["account_code"].as_str().unwrap_or_default()
        ));
    }
    lines.push(format!(
        "Cash over/short: {}",
        m["over_short_account"].as_str().unwrap_or("(not set)")
    ));
    lines.push(format!(
        "Shift invoices go to: {}",
        m["pos_contact_name"].as_str().unwrap_or("POS Sales")
    ));
    if let Some(accounts) = answer["accounts"].as_array() {
        lines.push("The organisation's accounts:".into());
        for a in accounts {
            lines.push(format!(
                "  {:<6} {:<40} {}{}",
                a["code"].as_str().unwrap_or_default(),
                a["name"].as_str().unwrap_or_default(),
                a["type"].as_str().unwrap_or_default(),
                if a["takes_payments"] == true {
                    " (takes payments)"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(rates) = answer["tax_rates"].as_array() {
        lines.push("Tax rates:".into());
        for t in rates {
            lines.push(format!(
                "  {:<12} {:<40} {}%",
                t["tax_type"].as_str().unwrap_or_default(),
                t["name"].as_str().unwrap_or_default(),
                t["rate"]
            ));
        }
    }
    lines.join("\n")
}

async fn unpair(cx: &Context) -> Result<(), Failure> {
    cx.syncer.unpair().await.map_err(from_sync)?;
    let waiting = cx.outbox().counts().map(|c| c.pending).unwrap_or(0);
    out(cx.json, json!({"event": "unpaired"}), || {
        if waiting > 0 {
            format!("Unpaired. {waiting} document(s) not yet sent stay in the outbox and go out after the next `ledgerlink pair`.")
        } else {
            "Unpaired.".to_string()
        }
    });
    Ok(())
}
