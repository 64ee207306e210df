//! `mappings`: how sales categories, tenders and cash over/short map to the organisation's
//! accounts and tax rates. Every kind is set the same way: `mappings set KIND [NAME] --account CODE`.

use clap::Subcommand;
use ledgerlink_wire::documents::{CategoryMapping, Mappings, TenderMapping};
use serde_json::Value;

use super::{fail, out, Context, Failure, Result};

#[derive(Debug, Subcommand)]
pub(super) enum MappingsCommand {
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
pub(super) enum SetMapping {
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
    OverShort {
        #[arg(long)]
        account: String,
    },
    /// The contact end-of-shift invoices go to (default "POS Sales").
    PosContact { name: String },
}

#[derive(Debug, Subcommand)]
pub(super) enum RemoveMapping {
    Category { name: String },
    Tender { name: String },
}

pub(super) async fn mappings(
    cx: &Context,
    change: Option<MappingsCommand>,
    refresh: bool,
) -> Result<()> {
    let read = |offered: bool| async move {
        cx.syncer
            .read_mappings(offered, refresh)
            .await
            .map_err(Failure::from)
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
            cx.syncer.write_mappings(&m).await?;
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

/// `ledgerlink contacts SEARCH`: the organisation's contacts whose name holds SEARCH.
pub(super) async fn contacts(cx: &Context, search: &str) -> Result<()> {
    let found = cx.syncer.contacts(search).await?;
    if cx.json {
        for c in &found.contacts {
            super::say(&serde_json::to_string(c).expect("a contact serializes"));
        }
        return Ok(());
    }
    if found.contacts.is_empty() {
        super::say(&format!("No contact's name holds '{search}'."));
    }
    for c in &found.contacts {
        let mut line = c.name.clone();
        if let Some(n) = &c.contact_number {
            line.push_str(&format!("  #{n}"));
        }
        if let Some(e) = &c.email {
            line.push_str(&format!("  {e}"));
        }
        if c.archived {
            line.push_str("  (archived in Xero)");
        }
        super::say(&line);
    }
    Ok(())
}
