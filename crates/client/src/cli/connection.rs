//! The device and its organisation: `pair`, `reconnect`, `status`, `unpair`, `disconnect`.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    confirm, describe, fail, note, out, provider_name, BrowserArg, Context, Failure, PairArgs,
    Result,
};
use crate::advice::{self, Surface};
use crate::api::ProxyClient;
use crate::credentials::Place;
use crate::identity::Identity;
use crate::pairing::{self, PairError};

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

pub(super) async fn pair(cx: &Context, p: &PairArgs) -> Result<()> {
    let identity = Identity::load_or_create(&cx.dir, p.name.as_deref())
        .map_err(|e| fail("data_dir", e.to_string()))?;
    let client = ProxyClient::new(&p.proxy);
    let json = cx.json;
    let no_browser = p.browser.no_browser;
    // Paired now (with this proxy)? Then the pairing may move the device, and says so.
    let current = cx.syncer.current_for(&p.proxy).await;
    let provider = match p.provider.as_deref() {
        Some(name) => ledgerlink_wire::Provider::parse(&name.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                fail(
                    "invalid_request",
                    format!("--provider: '{name}' is not a provider Ledgerlink connects: use xero or hubrise"),
                )
            })?,
        None => current
            .as_ref()
            .map(|c| c.connection.provider)
            .unwrap_or_default(),
    };
    let paired = pairing::pair(&client, &p.proxy, &identity, current.as_ref(), provider, |p| {
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
            note("(Could not open a browser: open the link yourself.)");
        }
    })
    .await
    .map_err(|e: PairError| {
        let code = match &e {
            PairError::Client(c) if c.code().is_none() => "proxy_unreachable",
            _ => e.code(),
        };
        fail(code, e.to_string())
    })?;
    let (creds, moved_from) = (paired.credentials, paired.moved_from);
    let place = cx
        .syncer
        .store
        .save(&creds)
        .map_err(|e| fail("credentials", e.to_string()))?;
    let outbox = cx.outbox();
    outbox
        .reset_cursor()
        .and_then(|()| outbox.set_meta("proxy_url", &p.proxy))
        .and_then(|()| cx.syncer.remember_connection(&creds.connection))
        .map_err(|e| fail("outbox", e.to_string()))?;
    let c = &creds.connection;
    out(
        cx.json,
        {
            let mut line = json!({"event": "paired", "tenant_id": c.tenant_id, "tenant_name": c.organisation_name});
            if let Some(b) = &moved_from {
                line["moved_from"] = json!(b);
            }
            line
        },
        || {
            let moved = match &moved_from {
                Some(b) => format!(" It moved from {b}: documents already sent to {b} stay there."),
                None => String::new(),
            };
            format!(
                "Paired with {}{moved} (credentials kept in {}).\nNext: map your sales categories and tenders (`ledgerlink mappings`), then `ledgerlink push invoice FILE`.",
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

/// Pairs the same device again with the proxy it last used: how a connection that needs
/// reconnecting (or was disconnected) is connected again from a terminal.
pub(super) async fn reconnect(cx: &Context, browser: BrowserArg) -> Result<()> {
    let saved = cx.syncer.store.load().ok().flatten().map(|c| c.proxy_url);
    let remembered = cx.outbox().meta("proxy_url").ok().flatten();
    let Some(proxy) = saved.or(remembered) else {
        return Err(fail(
            "not_paired",
            "This device has never been paired, so there is nothing to reconnect.",
        ));
    };
    let p = PairArgs {
        proxy,
        name: None,
        // The provider it is paired with (Xero when nothing says otherwise).
        provider: None,
        browser,
    };
    pair(cx, &p).await
}

/// "3 minutes ago", or "never".
fn ago(at: Option<DateTime<Utc>>) -> String {
    match at {
        None => "never".into(),
        Some(t) => {
            let elapsed = (Utc::now() - t).to_std().unwrap_or_default();
            let mut f = timeago::Formatter::new();
            f.num_items(1);
            if elapsed.as_secs() < 5 {
                "just now".into()
            } else {
                f.convert(elapsed)
            }
        }
    }
}

/// The organisation, its status and the outbox. With the proxy out of reach it answers from what
/// the device last heard (and says so): a till's status should not depend on the network.
pub(super) async fn status(cx: &Context) -> Result<()> {
    let (info, online, why) = match cx.syncer.connection().await {
        Ok(info) => (info, true, None),
        Err(e) if e.is_transient() => match cx.syncer.known_connection() {
            Some(known) => (known, false, Some(e.to_string())),
            None => return Err(Failure::from(e)),
        },
        // The proxy's answer is the status: the organisation was disconnected (which revoked
        // this device's credentials with it).
        Err(e) if e.code() == "disconnected" => match cx.syncer.known_connection() {
            Some(mut known) => {
                known.status = ledgerlink_wire::ConnectionStatus::Disconnected;
                cx.syncer
                    .remember_connection(&known)
                    .map_err(|e| fail("outbox", e.to_string()))?;
                (known, true, None)
            }
            None => return Err(Failure::from(e)),
        },
        Err(e) => return Err(e.into()),
    };
    let counts = cx.counts()?;
    let last_sync = cx
        .outbox()
        .meta("last_sync_at")
        .map_err(|e| fail("outbox", e.to_string()))?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    let mut value = serde_json::to_value(&info).expect("connection info serializes");
    value["online"] = json!(online);
    if !online {
        // What the device last heard, not what the proxy says now.
        value["status"] = json!(null);
        value["last_known_status"] = json!(info.status.as_str());
        value["offline_reason"] = json!(why);
    }
    value["outbox"] = json!(counts);
    value["needs_attention"] = json!(counts.needs_attention());
    value["last_sync_at"] = json!(last_sync.map(|t| t.to_rfc3339()));
    let advice = match info.status {
        ledgerlink_wire::ConnectionStatus::Connected => None,
        other => advice::advice(other.as_str(), Surface::Cli, None),
    };
    value["advice"] = json!(advice);
    out(cx.json, value, || {
        let status = if online {
            info.status.as_str().to_string()
        } else {
            format!(
                "unknown: the proxy cannot be reached ({}); it was {} when last heard",
                why.as_deref().unwrap_or_default(),
                info.status.as_str()
            )
        };
        let mut text = format!(
            "{} ({}), status: {status}\nThis device: {} ({})\nOutbox: {}\nLast sync: {}",
            info.organisation_name,
            info.tenant_id,
            info.device_name,
            info.device_id,
            describe(&counts),
            ago(last_sync)
        );
        if let Some(a) = &advice {
            text.push('\n');
            text.push_str(a);
        }
        if let Some(w) = &info.timezone_warning {
            text.push('\n');
            text.push_str(w);
        }
        if let Some(hint) = super::attention_hint(&counts) {
            text.push('\n');
            text.push_str(&hint);
        }
        text
    });
    Ok(())
}

pub(super) async fn unpair(cx: &Context) -> Result<()> {
    cx.syncer.unpair().await?;
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

pub(super) async fn disconnect(cx: &Context, yes: bool) -> Result<()> {
    let known = cx.syncer.known_connection();
    let name = known.as_ref().map_or("the organisation".to_string(), |c| {
        c.organisation_name.clone()
    });
    let provider = provider_name(cx);
    confirm(
        yes,
        &format!("Disconnect {name} from {provider} for every device paired with it?"),
        "disconnect stops every device of the organisation from sending",
    )?;
    let info = cx.syncer.disconnect().await?;
    out(
        cx.json,
        json!({"event": "disconnected", "tenant_id": info.tenant_id, "tenant_name": info.organisation_name}),
        || {
            format!(
                "Disconnected {} from {provider}. `ledgerlink reconnect` connects it again; documents saved meanwhile wait here.",
                info.organisation_name
            )
        },
    );
    Ok(())
}
