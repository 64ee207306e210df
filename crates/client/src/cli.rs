//! `ledgerlink`: the command-line client. Human output by default, `--json` for scripts (one JSON
//! object per line). Exit code 0 on success, 1 on failure, with a message that says what to do next.

use clap::{Parser, Subcommand};
use ledgerlink_wire::ErrorCode;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::{ClientError, ProxyClient};
use crate::credentials::{Credentials, FileStore};
use crate::identity::{data_dir, Identity};
use crate::pairing::{self, PairError};

/// Connects this device (a till, a front desk, a script) to an organisation's Xero through a
/// Ledgerlink proxy, and shows the connection.
#[derive(Debug, Parser)]
#[command(name = "ledgerlink", version)]
struct Args {
    /// Where the device keeps its identity and credentials (default: the per-user data directory).
    #[arg(long, global = true, env = "LEDGERLINK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pair this device: shows a code to confirm in the browser, then waits until Xero is connected.
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
        /// Do not open the browser (the link is printed either way).
        #[arg(long, env = "LEDGERLINK_NO_BROWSER")]
        no_browser: bool,
    },
    /// Show the connected organisation and its status.
    Status,
    /// Unpair this device: its credentials stop working at once.
    Unpair,
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

fn from_client(e: ClientError) -> Failure {
    match e.code() {
        Some(ErrorCode::DeviceRevoked | ErrorCode::InvalidGrant | ErrorCode::Unauthenticated) => {
            fail(
                "pair_again",
                "This device is no longer paired: run `ledgerlink pair` again.",
            )
        }
        Some(code) => fail(code.as_str(), e.to_string()),
        None => fail(
            "proxy_unreachable",
            format!("{e}. Check the proxy URL and that it is running."),
        ),
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let dir = data_dir(args.data_dir.as_deref()).map_err(|e| fail("data_dir", e.to_string()))?;
    let store = FileStore::new(&dir);
    match args.command {
        Command::Pair {
            proxy,
            name,
            no_browser,
        } => {
            let identity = Identity::load_or_create(&dir, name.as_deref())
                .map_err(|e| fail("data_dir", e.to_string()))?;
            let client = ProxyClient::new(&proxy);
            let json = args.json;
            let creds = pairing::pair(&client, &proxy, &identity, |p| {
                if json {
                    println!(
                        "{}",
                        json!({"event": "code", "user_code": p.user_code, "verification_uri": p.verification_uri,
                            "verification_uri_complete": p.verification_uri_complete, "expires_in": p.expires_in})
                    );
                } else {
                    println!("Your code: {}", p.user_code);
                    println!("Confirm it at {} (or open {}).", p.verification_uri, p.verification_uri_complete);
                    println!("Waiting for the browser...");
                }
                if !no_browser && webbrowser::open(&p.verification_uri_complete).is_err() && !json {
                    println!("(Could not open a browser: open the link yourself.)");
                }
            })
            .await
            .map_err(|e: PairError| (e.code().to_string(), e.to_string()))?;
            store
                .save(&creds)
                .map_err(|e| fail("credentials", e.to_string()))?;
            let c = &creds.connection;
            if args.json {
                println!(
                    "{}",
                    json!({"event": "paired", "tenant_id": c.tenant_id, "tenant_name": c.organisation_name})
                );
            } else {
                println!("Paired with {}.", c.organisation_name);
            }
            Ok(())
        }
        Command::Status => {
            let creds = fresh(&store).await?;
            let info = ProxyClient::new(&creds.proxy_url)
                .connection(&creds.access_token)
                .await
                .map_err(from_client)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&info).expect("connection info serializes")
                );
            } else {
                println!(
                    "{} ({}), status: {}",
                    info.organisation_name,
                    info.tenant_id,
                    info.status.as_str()
                );
                println!("This device: {} ({})", info.device_name, info.device_id);
            }
            Ok(())
        }
        Command::Unpair => {
            let creds = fresh(&store).await?;
            let r = reqwest::Client::new()
                .delete(format!(
                    "{}/v1/device",
                    creds.proxy_url.trim_end_matches('/')
                ))
                .bearer_auth(creds.access_token.expose())
                .send()
                .await
                .map_err(|e| fail("proxy_unreachable", e.without_url().to_string()))?;
            if !r.status().is_success() && r.status() != 401 {
                return Err(fail(
                    "unpair_failed",
                    format!("the proxy answered {}", r.status()),
                ));
            }
            store
                .delete()
                .map_err(|e| fail("credentials", e.to_string()))?;
            if args.json {
                println!("{}", json!({"event": "unpaired"}));
            } else {
                println!("Unpaired.");
            }
            Ok(())
        }
    }
}

/// The stored credentials, refreshed first when they are about to expire.
async fn fresh(store: &FileStore) -> Result<Credentials, Failure> {
    let creds = store
        .load()
        .map_err(|e| fail("credentials", e.to_string()))?
        .ok_or_else(|| {
            fail(
                "not_paired",
                "This device is not paired: run `ledgerlink pair` first.",
            )
        })?;
    if creds.expires_at - chrono::Utc::now() > chrono::Duration::seconds(120) {
        return Ok(creds);
    }
    let tokens = ProxyClient::new(&creds.proxy_url)
        .refresh(&creds.refresh_token)
        .await
        .map_err(from_client)?;
    let renewed = pairing::credentials(&creds.proxy_url, tokens);
    store
        .save(&renewed)
        .map_err(|e| fail("credentials", e.to_string()))?;
    Ok(renewed)
}
