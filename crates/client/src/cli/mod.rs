//! `ledgerlink`: the command-line client. Human output by default, `--json` for scripts (one JSON
//! object per line). Exit codes (also in `--help` and docs/client.md): 0 all good, 1 an error, 2 a
//! usage error (a destructive command with no terminal to confirm in and no `--yes` among them),
//! 3 when `push`, `sync` or `retry` end with a document still needing attention. Every error says
//! what to do next, from the advice table in [`crate::advice`].

mod connection;
mod documents;
mod mappings;

use clap::{Parser, Subcommand, ValueEnum};
use ledgerlink_wire::documents::{DocumentKind, Problem};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::advice::{self, Surface};
use crate::credentials::CredentialStore;
use crate::identity::data_dir;
use crate::outbox::{Counts, Outbox};
use crate::sync::{SyncError, Syncer};

pub use connection::terminal_qr;

/// Sends a till's invoices, payments and end-of-shift summaries to the organisation's Xero through a
/// Ledgerlink proxy. Documents are saved on this device first and go out when the proxy is
/// reachable, so nothing is lost while it is not.
///
/// Start with `ledgerlink pair --proxy URL`, map your sales categories and tenders with
/// `ledgerlink mappings set ...`, then `ledgerlink push invoice FILE` and `ledgerlink outbox`.
/// When Xero refuses a document: `ledgerlink show REF` says why and what to do.
#[derive(Debug, Parser)]
#[command(
    name = "ledgerlink",
    version,
    after_help = "Exit codes: 0 all good; 1 an error (the message says what to do); 2 a usage error, \
                  including a destructive command run without a terminal and without --yes; \
                  3 push, sync or retry ended with documents that still need attention \
                  (`ledgerlink outbox --state failed` lists them)."
)]
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
    /// A refund (examples/credit-note.json).
    CreditNote,
    /// An order, for a HubRise connection (examples/order.json).
    Order,
}

impl From<Kind> for DocumentKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Invoice => DocumentKind::Invoice,
            Kind::Payment => DocumentKind::Payment,
            Kind::Shift => DocumentKind::Shift,
            Kind::CreditNote => DocumentKind::CreditNote,
            Kind::Order => DocumentKind::Order,
        }
    }
}

/// The proxy to pair with, and how.
#[derive(Debug, clap::Args)]
struct PairArgs {
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
    /// The provider to connect: `xero` or `hubrise` (default: the one it is paired with now,
    /// else Xero).
    #[arg(long)]
    provider: Option<String>,
    #[command(flatten)]
    browser: BrowserArg,
}

/// Whether pairing opens the browser.
#[derive(Debug, Clone, Copy, clap::Args)]
struct BrowserArg {
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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pair this device: shows a code (and a QR code) to confirm in the browser, then waits until
    /// Xero is connected.
    Pair(PairArgs),
    /// Connect Xero again for this device (when the connection needs reconnecting or was
    /// disconnected): the same device, paired again through the browser, with the proxy it used.
    Reconnect {
        #[command(flatten)]
        browser: BrowserArg,
    },
    /// Show the connected organisation, its status, and the outbox (from what this device knows
    /// when the proxy cannot be reached).
    Status,
    /// Save documents from a file (or `-` for standard input) and send them.
    ///
    /// The file holds one document as in `examples/` (invoice.json, payment.json, shift.json), a list
    /// of them, or a batch (`{"invoices": [...]}`). A document without a `client_ref` is given one.
    /// Every document is checked first: the good ones are saved even when others have problems.
    /// A document under the `client_ref` of a failed or rejected one corrects it.
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
    /// (with Xero's number), failed (with Xero's message), paid, voided, rejected (with the
    /// reasons), discarded.
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
    /// One document: its state, Xero's number or message, its versions, and what to do.
    Show {
        /// Its client_ref.
        client_ref: String,
    },
    /// Send a failed or rejected document again, unchanged, once what made it fail is put right
    /// (a mapping set, the contact unarchived in Xero). To change it, push the corrected document
    /// under the same client_ref instead.
    Retry {
        /// Its client_ref.
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        client_ref: Option<String>,
        /// Every failed and rejected document.
        #[arg(long)]
        all_failed: bool,
    },
    /// Put a document aside for good, with the reason: it is not sent and no longer needs
    /// attention. Not for a document that is (or may be) in Xero.
    Discard {
        /// Its client_ref.
        client_ref: String,
        /// Why (kept with the document).
        #[arg(long)]
        reason: String,
        /// Do not ask for confirmation (needed when there is no terminal to ask in).
        #[arg(long)]
        yes: bool,
    },
    /// Void a sent invoice in Xero (a sale made by mistake). Asked for here at once and sent with
    /// the next sync, so it works offline; refused when a payment or refund is recorded against it.
    Void {
        /// Its client_ref.
        client_ref: String,
        /// Do not ask for confirmation (needed when there is no terminal to ask in).
        #[arg(long)]
        yes: bool,
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
        change: Option<mappings::MappingsCommand>,
        /// Read the organisation's accounts and tax rates from Xero now.
        #[arg(long)]
        refresh: bool,
    },
    /// Find the organisation's contacts by part of their name (archived ones marked).
    Contacts {
        /// At least 2 characters of the name.
        search: String,
    },
    /// Unpair this device: its credentials stop working at once.
    Unpair,
    /// Disconnect the organisation from Xero, for every device paired with it (they stop sending
    /// until someone connects Xero again).
    Disconnect {
        /// Do not ask for confirmation (needed when there is no terminal to ask in).
        #[arg(long)]
        yes: bool,
    },
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime builds");
    match runtime.block_on(run(args)) {
        Ok(Done::AllGood) => ExitCode::SUCCESS,
        Ok(Done::NeedsAttention) => ExitCode::from(3),
        Err(f) => {
            let advice = advice::advice(&f.code, Surface::Cli, f.client_ref.as_deref());
            if json {
                say(
                    &json!({"event": "error", "code": f.code, "message": f.message,
                    "advice": advice, "problems": f.problems})
                    .to_string(),
                );
            } else {
                let mut text = format!("error: {}", f.message);
                for p in &f.problems {
                    text.push_str(&format!("\n  {}: {}", p.path, p.message));
                }
                if let Some(a) = advice {
                    text.push_str(&format!("\n{a}"));
                }
                // A closed stderr has nowhere to say anything: nothing more to do.
                let _ = writeln!(std::io::stderr(), "{text}");
            }
            ExitCode::from(if f.usage { 2 } else { 1 })
        }
    }
}

/// How a command that did its work ended.
enum Done {
    AllGood,
    /// Some documents were refused and wait for a person (exit code 3).
    NeedsAttention,
}

impl Done {
    fn by(counts: &Counts) -> Self {
        if counts.needs_attention() > 0 {
            Self::NeedsAttention
        } else {
            Self::AllGood
        }
    }
}

/// Why a command could not do its work: a stable code (the key of its advice), what happened, and
/// for a refusal every problem.
struct Failure {
    code: String,
    message: String,
    problems: Vec<Problem>,
    /// The document it is about, for the advice.
    client_ref: Option<String>,
    /// The command was used wrongly (exit code 2).
    usage: bool,
}

type Result<T> = std::result::Result<T, Failure>;

fn fail(code: &str, message: impl Into<String>) -> Failure {
    Failure {
        code: code.to_string(),
        message: message.into(),
        problems: Vec::new(),
        client_ref: None,
        usage: false,
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        usage: true,
        ..fail("usage", message)
    }
}

impl From<SyncError> for Failure {
    fn from(e: SyncError) -> Self {
        let problems = match &e {
            SyncError::Client(crate::api::ClientError::Api { problems, .. }) => problems.clone(),
            _ => Vec::new(),
        };
        Failure {
            problems,
            ..fail(e.code(), e.to_string())
        }
    }
}

impl Failure {
    fn about(mut self, client_ref: &str) -> Self {
        self.client_ref = Some(client_ref.to_string());
        self
    }
}

/// One line to standard output. When whoever reads it has gone (`ledgerlink outbox | head -1`),
/// there is no one left to tell: the command ends at once, successfully and quietly.
/// The name of the provider this device sends to ("Xero" for a device not paired yet).
fn provider_name(cx: &Context) -> &'static str {
    cx.syncer
        .known_connection()
        .map_or(ledgerlink_wire::Provider::Xero, |c| c.provider)
        .name()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Progress and notes for a person, on standard error.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn out(json: bool, value: Value, text: impl FnOnce() -> String) {
    if json {
        say(&value.to_string());
    } else {
        say(&text());
    }
}

/// Asks before something that cannot be undone. Without a terminal to ask in (a script, a pipe),
/// only `--yes` goes ahead: anything else is a usage error and changes nothing.
fn confirm(yes: bool, question: &str, flag_hint: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(usage(format!(
            "{flag_hint}: there is no terminal to confirm in, so add --yes to go ahead"
        )));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| fail("input", format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(fail("cancelled", "Nothing was changed."))
    }
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

    fn counts(&self) -> Result<Counts> {
        self.outbox()
            .counts()
            .map_err(|e| fail("outbox", e.to_string()))
    }
}

async fn run(args: Args) -> Result<Done> {
    let dir = data_dir(args.data_dir.as_deref()).map_err(|e| fail("data_dir", e.to_string()))?;
    let store = CredentialStore::open(&dir).map_err(|e| fail("credentials", e.to_string()))?;
    let local = Outbox::open(&dir).map_err(|e| fail("outbox", e.to_string()))?;
    let cx = Context {
        dir,
        json: args.json,
        syncer: Syncer::new(Arc::new(local), Arc::new(store)),
    };
    let all_good = |r: Result<()>| r.map(|()| Done::AllGood);
    match args.command {
        Command::Pair(p) => all_good(connection::pair(&cx, &p).await),
        Command::Reconnect { browser } => all_good(connection::reconnect(&cx, browser).await),
        Command::Status => all_good(connection::status(&cx).await),
        Command::Unpair => all_good(connection::unpair(&cx).await),
        Command::Disconnect { yes } => all_good(connection::disconnect(&cx, yes).await),
        Command::Push {
            kind,
            file,
            no_send,
        } => documents::push(&cx, kind.into(), &file, no_send).await,
        Command::Outbox {
            watch,
            state,
            offline,
        } => all_good(documents::outbox(&cx, watch, state.as_deref(), offline).await),
        Command::Show { client_ref } => all_good(documents::show(&cx, &client_ref).await),
        Command::Retry {
            client_ref,
            all_failed,
        } => documents::retry(&cx, client_ref.as_deref(), all_failed).await,
        Command::Discard {
            client_ref,
            reason,
            yes,
        } => all_good(documents::discard(&cx, &client_ref, &reason, yes).await),
        Command::Void { client_ref, yes } => all_good(documents::void(&cx, &client_ref, yes).await),
        Command::Sync { timeout, no_wait } => documents::sync(&cx, timeout, no_wait).await,
        Command::Contacts { search } => all_good(mappings::contacts(&cx, &search).await),
        Command::Mappings { change, refresh } => {
            all_good(mappings::mappings(&cx, change, refresh).await)
        }
    }
}

/// The outbox's counts in words: `3 sent, 1 failed`.
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
        ("discarded", c.discarded),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(s, n)| format!("{n} {s}"))
    .collect();
    parts.join(", ")
}

/// A hint when documents wait for a person, or nothing.
fn attention_hint(c: &Counts) -> Option<String> {
    match c.needs_attention() {
        0 => None,
        n => Some(format!(
            "{n} document{} need{} attention: `ledgerlink outbox --state failed` and `--state rejected` list them, `ledgerlink show REF` says what to do.",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
        )),
    }
}
