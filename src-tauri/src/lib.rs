//! The desktop shell: Tauri commands that call the client core (`ledgerlink_client::app`) and
//! nothing more, events that carry the sync loop's news to the window, one instance at a time.
//! Every command that touches the outbox or the keychain runs off the main thread (`async`), so a
//! busy database never freezes the window.
//!
//! Settings come from the environment where a till's installer or a test sets them:
//! `LEDGERLINK_DATA_DIR`, `LEDGERLINK_PROXY` (the proxy until Settings says otherwise),
//! `LEDGERLINK_NO_BROWSER=1` (show the link, open no browser), `LEDGERLINK_CREDENTIALS`.

use ledgerlink_client::app::{
    App, DocumentDetail, DocumentFilter, DocumentRow, InvoicePreview, OrderPreview, Overview,
    PairingView, SavedDocument, Settings, SettingsView, ShiftPreview, UiError,
};
use ledgerlink_wire::documents::{DocumentKind, Mappings};
use ledgerlink_wire::{ConnectionInfo, Provider};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tauri::{AppHandle, Emitter, Manager, State};

mod footprint;

type Shared<'a> = State<'a, Arc<App>>;

fn kind(word: &str) -> Result<DocumentKind, UiError> {
    DocumentKind::parse(word).ok_or_else(|| {
        UiError::new(
            "invalid_request",
            format!("'{word}' is not a kind of document"),
        )
    })
}

#[tauri::command(async)]
fn overview(app: Shared<'_>) -> Result<Overview, UiError> {
    app.overview()
}

#[tauri::command]
async fn check_connection(app: Shared<'_>) -> Result<ConnectionInfo, UiError> {
    app.check_connection().await
}

/// `provider`: `xero` or `hubrise` (none: the one paired with now, or Xero).
#[tauri::command]
async fn start_pairing(
    app: Shared<'_>,
    handle: AppHandle,
    provider: Option<String>,
) -> Result<PairingView, UiError> {
    let provider = match provider.as_deref() {
        None => None,
        Some(name) => Some(Provider::parse(name).ok_or_else(|| {
            UiError::new(
                "invalid_request",
                format!("'{name}' is not a provider this app connects to"),
            )
        })?),
    };
    app.start_pairing(provider, move |outcome| {
        let _ = handle.emit("pairing", outcome);
    })
    .await
}

#[tauri::command(async)]
fn reopen_browser(app: Shared<'_>) -> Result<bool, UiError> {
    app.reopen_browser()
}

#[tauri::command(async)]
fn cancel_pairing(app: Shared<'_>) {
    app.cancel_pairing();
}

#[tauri::command(async)]
fn new_client_ref(app: Shared<'_>, kind_word: String) -> Result<String, UiError> {
    Ok(app.new_client_ref(kind(&kind_word)?))
}

#[tauri::command(async)]
fn preview_invoice(app: Shared<'_>, draft: Value) -> InvoicePreview {
    app.preview_invoice(&draft)
}

#[tauri::command(async)]
fn preview_order(app: Shared<'_>, draft: Value) -> OrderPreview {
    app.preview_order(&draft)
}

#[tauri::command(async)]
fn preview_shift(app: Shared<'_>, draft: Value) -> ShiftPreview {
    app.preview_shift(&draft)
}

#[tauri::command(async)]
fn save_document(
    app: Shared<'_>,
    kind_word: String,
    draft: Value,
) -> Result<SavedDocument, UiError> {
    app.save(kind(&kind_word)?, &draft)
}

#[tauri::command(async)]
fn documents(app: Shared<'_>, filter: DocumentFilter) -> Result<Vec<DocumentRow>, UiError> {
    app.documents(&filter)
}

#[tauri::command(async)]
fn document(app: Shared<'_>, client_ref: String) -> Result<DocumentDetail, UiError> {
    app.document(&client_ref)
}

#[tauri::command]
async fn retry_document(app: Shared<'_>, client_ref: String) -> Result<DocumentDetail, UiError> {
    app.retry(&client_ref).await
}

#[tauri::command]
async fn discard_document(
    app: Shared<'_>,
    client_ref: String,
    reason: String,
) -> Result<DocumentDetail, UiError> {
    app.discard(&client_ref, &reason).await
}

#[tauri::command]
async fn search_contacts(
    app: Shared<'_>,
    q: String,
) -> Result<ledgerlink_wire::documents::ContactList, UiError> {
    app.contacts(&q).await
}

#[tauri::command(async)]
fn void_document(app: Shared<'_>, client_ref: String) -> Result<DocumentDetail, UiError> {
    app.void(&client_ref)
}

#[tauri::command]
async fn mappings(app: Shared<'_>, refresh: bool) -> Result<Value, UiError> {
    app.mappings(refresh).await
}

#[tauri::command]
async fn save_mappings(app: Shared<'_>, mappings: Mappings) -> Result<Value, UiError> {
    app.save_mappings(&mappings).await
}

#[tauri::command(async)]
fn settings(app: Shared<'_>) -> Result<SettingsView, UiError> {
    app.settings()
}

#[tauri::command(async)]
fn save_settings(app: Shared<'_>, settings: Settings) -> Result<SettingsView, UiError> {
    app.save_settings(settings)
}

#[tauri::command]
async fn unpair(app: Shared<'_>, pin: Option<String>) -> Result<(), UiError> {
    app.unpair(pin.as_deref()).await
}

#[tauri::command(async)]
fn set_manager_pin(
    app: Shared<'_>,
    current: Option<String>,
    new: String,
) -> Result<SettingsView, UiError> {
    app.set_manager_pin(current.as_deref(), &new)
}

#[tauri::command]
fn open_in_xero(app: Shared<'_>, client_ref: String) -> Result<bool, UiError> {
    app.open_in_xero(&client_ref)
}

#[tauri::command]
async fn devices(app: Shared<'_>) -> Result<Vec<ledgerlink_wire::PairedDevice>, UiError> {
    app.devices().await
}

/// The device's locale for dates, times and numbers (`en-NZ`), from the operating system: the
/// web view's own default may be another (WebKitGTK falls back to `en-US`).
///
/// Dates follow the time locale, as POSIX orders it (`LC_ALL`, then `LC_TIME`, then `LANG`);
/// where those are not set (Windows, macOS) the system's own locale.
#[tauri::command]
fn device_locale() -> Option<String> {
    ["LC_ALL", "LC_TIME", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .and_then(|v| bcp47(&v))
        .or_else(|| sys_locale::get_locale().and_then(|l| bcp47(&l)))
}

/// `en_NZ.UTF-8` (POSIX) or `en-NZ` → `en-NZ`; `C` and `POSIX` say nothing.
fn bcp47(posix: &str) -> Option<String> {
    let tag = posix.split(['.', '@']).next()?.replace('_', "-");
    (!tag.is_empty() && tag != "C" && tag != "POSIX").then_some(tag)
}

#[tauri::command]
async fn disconnect(
    app: Shared<'_>,
    confirm: bool,
    pin: Option<String>,
) -> Result<ConnectionInfo, UiError> {
    if !confirm {
        return Err(UiError::new(
            "confirmation_required",
            "Disconnecting stops every device of the organisation: confirm it first.",
        ));
    }
    app.disconnect(pin.as_deref()).await
}

/// What time it is, for the forms' defaults. A debug build takes `LEDGERLINK_TEST_NOW` (RFC 3339)
/// when it is set, so the desktop test can run at a chosen local time; a release build always
/// answers the device's clock.
#[tauri::command]
fn clock_now() -> String {
    #[cfg(debug_assertions)]
    if let Some(at) = std::env::var("LEDGERLINK_TEST_NOW")
        .ok()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
    {
        return at.to_rfc3339();
    }
    chrono::Utc::now().to_rfc3339()
}

/// The window's first screen is up: logged (and printed for the start-up benchmark) once.
#[tauri::command]
fn ui_ready(started: State<'_, Started>) {
    if let Some(at) = started.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let ms = at.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(ms, "window interactive");
        println!("ledgerlink-desktop interactive after {ms:.0} ms");
    }
}

struct Started(std::sync::Mutex<Option<Instant>>);

pub fn run() {
    let started = Instant::now();
    // First: it sets environment variables, which is sound only while the process has one thread.
    let footprint = footprint::prepare().unwrap_or_else(|e| {
        eprintln!("ledgerlink-desktop: {e}");
        std::process::exit(1);
    });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if footprint.window_gl_off {
        tracing::info!(
            "no GPU found (or LEDGERLINK_WINDOW_GL=off): the window's process draws without GL"
        );
    }
    let dir = match ledgerlink_client::identity::data_dir(
        std::env::var_os("LEDGERLINK_DATA_DIR")
            .map(std::path::PathBuf::from)
            .as_deref(),
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ledgerlink-desktop: {e}");
            std::process::exit(1);
        }
    };
    let proxy =
        std::env::var("LEDGERLINK_PROXY").unwrap_or_else(|_| "http://127.0.0.1:7400".into());
    let no_browser = std::env::var("LEDGERLINK_NO_BROWSER").is_ok_and(|v| v == "1" || v == "true");
    let app = match App::open(&dir, &proxy, no_browser) {
        Ok(a) => Arc::new(a.with_browser(footprint::open_browser)),
        Err(e) => {
            eprintln!("ledgerlink-desktop: {}", e.message);
            std::process::exit(1);
        }
    };
    tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|handle, _args, _cwd| {
            // A second start brings the running window forward instead.
            if let Some(w) = handle.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.set_focus();
            }
        }))
        .manage(app.clone())
        .manage(Started(std::sync::Mutex::new(Some(started))))
        .setup(move |tauri_app| {
            let handle = tauri_app.handle().clone();
            tauri::async_runtime::spawn(app.run_sync(move |status| {
                let _ = handle.emit("sync", status);
            }));
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            overview,
            check_connection,
            start_pairing,
            reopen_browser,
            cancel_pairing,
            new_client_ref,
            preview_invoice,
            preview_shift,
            preview_order,
            save_document,
            documents,
            document,
            retry_document,
            discard_document,
            void_document,
            search_contacts,
            mappings,
            save_mappings,
            settings,
            save_settings,
            unpair,
            disconnect,
            ui_ready,
            clock_now,
            device_locale,
            devices,
            open_in_xero,
            set_manager_pin,
        ])
        .run(tauri::generate_context!("../tauri.conf.json"))
        .expect("the Ledgerlink window runs");
}

#[cfg(test)]
mod tests {
    use super::bcp47;

    #[test]
    fn posix_locales_become_bcp47_tags() {
        assert_eq!(bcp47("en_NZ.UTF-8").as_deref(), Some("en-NZ"));
        assert_eq!(bcp47("de_DE@euro").as_deref(), Some("de-DE"));
        assert_eq!(bcp47("en-GB").as_deref(), Some("en-GB"));
        assert_eq!(bcp47("C.UTF-8"), None);
        assert_eq!(bcp47("POSIX"), None);
    }
}
