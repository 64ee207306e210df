//! The desktop app end to end, as shop staff use it: the real app (built by `cargo build -p
//! ledgerlink-desktop`) under a display, driven through WebDriver (`tauri-driver` with
//! `WebKitWebDriver`), against the sandbox and the proxy. Connect (the browser step done over HTTP
//! with the code the app shows), map categories and tenders, create an invoice in the form and see
//! it sent with Xero's number, pay it in the sandbox and see it paid, send an end-of-shift summary,
//! fix an invoice Xero refused and see the correction sent, discard another,
//! disconnect. A screenshot of each screen goes to `target/e2e-screens/`.
//!
//! It needs a display, a D-Bus session and the driver: `./scripts/test` runs it inside
//! `dbus-run-session -- xvfb-run`. Without them it fails and says so (it never skips).

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use ledgerlink_e2e::*;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// `target/debug` (or wherever this test binary was built), from the test binary's own path.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tauri-driver`, stopped with SIGTERM (a killed driver leaves WebKitWebDriver behind).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn tauri_driver() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    [
        PathBuf::from(&home).join(".cargo/bin/tauri-driver"),
        PathBuf::from("/usr/local/bin/tauri-driver"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("tauri-driver is missing: `cargo install tauri-driver --locked` (./scripts/test does)")
}

/// The app opened the system browser on the pairing link, and the browser's environment is the
/// app's without the memory settings meant for WebKit's processes (`footprint.rs`).
fn browser_was_opened_without_the_apps_settings(dir: &Path, link: &str) {
    let opened: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("opened-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let start = opened
        .iter()
        .find(|o| o.lines().next() == Some(&format!("link={link}")))
        .unwrap_or_else(|| panic!("no browser was opened on {link}: {opened:?}"));
    let env: Vec<&str> = start.lines().skip(1).collect();
    assert!(
        env.iter().any(|l| l.starts_with("LEDGERLINK_DATA_DIR=")),
        "the browser keeps the rest of the environment"
    );
    for ours in [
        "JSC_useJIT=",
        "MALLOC_ARENA_MAX=",
        "MALLOC_TRIM_THRESHOLD_=",
        "MALLOC_MMAP_THRESHOLD_=",
        "GDK_GL=",
    ] {
        assert!(
            !env.iter().any(|l| l.starts_with(ours)),
            "the browser inherited {ours}"
        );
    }
}

/// Without a GPU the app keeps its own process off GL (`footprint.rs`): Mesa (and the LLVM it
/// links) must not be loaded there, while WebKit's web process, started with the environment
/// restored, must still have it (it paints the page). With a GPU, WebKit's defaults stay.
fn window_process_draws_without_gl(data_dir: &Path) {
    let marker = format!("LEDGERLINK_DATA_DIR={}", data_dir.display());
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let maps = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let app = *pids
        .iter()
        .find(|p| {
            comm(**p).trim() == "ledgerlink-desk"
                && std::fs::read(format!("/proc/{p}/environ"))
                    .unwrap_or_default()
                    .split(|b| *b == 0)
                    .any(|kv| kv == marker.as_bytes())
        })
        .expect("the app's process");
    let web = process_family(app)
        .into_iter()
        .find(|p| comm(*p).trim() == "WebKitWebProces")
        .expect("the app's web process");
    let gpu = std::fs::read_dir("/dev/dri").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    });
    // glvnd's vendor libraries (libEGL_mesa, libGLX_mesa, libEGL_nvidia...): a GL driver is in.
    let has_gl = |maps: &str| maps.contains("/libEGL_") || maps.contains("/libGLX_");
    let (app_maps, web_maps) = (maps(app), maps(web));
    if gpu {
        assert!(
            has_gl(&app_maps),
            "with a GPU the app's process keeps WebKit's GL"
        );
    } else {
        assert!(
            !has_gl(&app_maps) && !app_maps.contains("libLLVM"),
            "the app's own process loaded GL on a machine without a GPU"
        );
    }
    assert!(
        has_gl(&web_maps),
        "the web process has no GL: the environment was not restored for it"
    );
}

struct Ui {
    c: Client,
    shots: PathBuf,
    n: std::cell::Cell<usize>,
}

impl Ui {
    async fn find(&self, css: &str) -> Element {
        match self
            .c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                self.shot("timed-out").await;
                panic!("{css} never appeared: {e}");
            }
        }
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn select(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        self.c
            .execute(
                "arguments[0].scrollIntoView({block: 'center'})",
                vec![serde_json::to_value(&e).unwrap()],
            )
            .await
            .unwrap();
        e.select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css} has no option {value}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Waits until `check` holds of the text of `css`.
    async fn until_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.c.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if check(&t) {
                        return t;
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                self.shot("timed-out").await;
                panic!("{css} never showed {what}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A new invoice of one line in the Food category, saved once its total shows `total`:
    /// answers its client_ref.
    async fn one_line_invoice(
        &self,
        contact: &str,
        description: &str,
        price: &str,
        total: &str,
    ) -> String {
        self.go("invoice").await;
        self.fill("#invoice-form [name=contact]", contact).await;
        self.fill(
            "#invoice-lines tr:first-child [name=description]",
            description,
        )
        .await;
        self.fill("#invoice-lines tr:first-child [name=unit_amount]", price)
            .await;
        self.select("#invoice-lines tr:first-child [name=choice]", "cat:Food")
            .await;
        self.until_text("#invoice-total", total, |t| t == total)
            .await;
        // The form still says what happened to the one before: wait for news of this one.
        let before = self.text("#invoice-message").await;
        self.click("#invoice-save").await;
        let saved = self
            .until_text("#invoice-message", "saved", |t| {
                t.starts_with("Saved") && t != before
            })
            .await;
        saved
            .trim_start_matches("Saved ")
            .split(':')
            .next()
            .unwrap()
            .to_string()
    }

    async fn go(&self, screen: &str) {
        self.click(&format!(".sidebar a[data-screen={screen}]"))
            .await;
    }

    /// What the X server shows in the window, after the page has painted twice since the last
    /// change. Taken with ImageMagick's `import` rather than WebDriver's screenshot: on a machine
    /// without a GPU the window draws without GL (see `ledgerlink_desktop::footprint`), and there
    /// WebKitWebDriver's screenshot command never answers (WebKitGTK 2.50).
    async fn shot(&self, name: &str) {
        self.n.set(self.n.get() + 1);
        self.c
            .execute_async(
                "const done = arguments[0]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await
            .unwrap();
        let (x, y, w, h) = self.c.get_window_rect().await.unwrap();
        let path = self.shots.join(format!("{:02}-{name}.png", self.n.get()));
        let out = Command::new("import")
            .args([
                "-window",
                "root",
                "-crop",
                &format!("{w}x{h}+{x}+{y}"),
                "+repage",
            ])
            .arg(&path)
            .output()
            .expect("ImageMagick's import runs (./scripts/test installs it)");
        assert!(
            out.status.success(),
            "import could not take {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // A window that drew nothing (black, or one flat colour) is a failure, not a screenshot.
        let colours = Command::new("identify")
            .args(["-format", "%k"])
            .arg(&path)
            .output()
            .expect("ImageMagick's identify runs");
        let colours: u32 = String::from_utf8_lossy(&colours.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            colours >= 16,
            "{} has {colours} colours: the window drew nothing",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_connect_send_an_invoice_and_a_shift_see_them_paid_and_disconnect() {
    // Every step has its own 30 s limit, but a WebDriver command itself can block; this bounds the
    // whole flow so CI fails instead of hanging (dropping it stops the driver and the app).
    tokio::time::timeout(Duration::from_secs(300), flow())
        .await
        .expect("the desktop flow did not finish within 5 minutes (a WebDriver command blocked)");
}

/// The desktop tests take turns: two apps (and two WebKits) at once on a 2-core machine only make
/// each slower, and the app allows one instance at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The app running under tauri-driver against `world`, with its own data directory and a system
/// browser that records how it was opened.
struct Desk {
    ui: Ui,
    data: TempDir,
    browser: TempDir,
    _driver: Driver,
}

impl Drop for Desk {
    /// The app itself goes with its test, even one that failed before closing its window: a
    /// second app started while it lives would hand over to it (one instance at a time).
    fn drop(&mut self) {
        let marker = format!("LEDGERLINK_DATA_DIR={}", self.data.0.display());
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let mine = std::fs::read(format!("/proc/{pid}/environ"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .any(|kv| kv == marker.as_bytes());
            if mine {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Starts the app for a till in time zone `tz` whose clock says `now` (UTC).
async fn launch(world: &World, tz: &str, now: &str) -> Desk {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "the desktop test needs a display: run it under `dbus-run-session -- xvfb-run -a` (./scripts/test does)"
    );
    let app = build_dir().join("ledgerlink-desktop");
    assert!(
        app.exists(),
        "{} is missing: `cargo build -p ledgerlink-desktop` first (./scripts/test does)",
        app.display()
    );
    let data = TempDir(std::env::temp_dir().join(format!("ll-desktop-{}", uuid::Uuid::new_v4())));
    // The system browser, as the app starts it (`xdg-open LINK`): this one records how.
    let browser =
        TempDir(std::env::temp_dir().join(format!("ll-browser-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&browser.0).unwrap();
    let xdg_open = browser.0.join("xdg-open");
    std::fs::write(
        &xdg_open,
        "#!/bin/sh\n{ printf 'link=%s\\n' \"$1\"; env; } > \"$(dirname \"$0\")/opened-$$.txt\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &xdg_open,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        browser.0.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shots = build_dir().parent().unwrap().join("e2e-screens");
    std::fs::create_dir_all(&shots).unwrap();
    let port = free_port();
    let driver = Driver(
        Command::new(tauri_driver())
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &free_port().to_string(),
            ])
            .env("LEDGERLINK_DATA_DIR", &data.0)
            .env("LEDGERLINK_PROXY", &world.proxy_url)
            .env("PATH", &path)
            .env_remove("LEDGERLINK_NO_BROWSER")
            .env_remove("LEDGERLINK_WINDOW_GL")
            .env("LEDGERLINK_CREDENTIALS", "file")
            .env("TZ", tz)
            .env("LEDGERLINK_TEST_NOW", now)
            // A New Zealand till's locale: dates read day first.
            .env("LANG", "en_NZ.UTF-8")
            .env("LC_TIME", "en_NZ.UTF-8")
            .env_remove("LC_ALL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tauri-driver starts"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tauri-driver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "tauri:options".into(),
        json!({"application": app.to_str().unwrap()}),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with the app");
    Desk {
        ui: Ui {
            c,
            shots,
            n: Default::default(),
        },
        data,
        browser,
        _driver: driver,
    }
}

async fn flow() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let mut world = World::start_with_webhooks(settings).await;
    // A till in Auckland at 08:00 on the 21st, which is still the 20th in UTC: the forms must
    // fill the local day.
    let desk = launch(&world, "Pacific/Auckland", "2026-11-20T19:00:00Z").await;
    let (ui, data, browser) = (&desk.ui, &desk.data, &desk.browser);

    // Connect, first declined at Xero: the app says so and offers to try again.
    ui.find("#connect-start").await;
    ui.shot("connect").await;
    window_process_draws_without_gl(&data.0);
    ui.click("#connect-start").await;
    ui.until_text("#pair-code", "a code", |t| t.len() == 9)
        .await;
    let declined = ui.text("#pair-link").await;
    browser_was_opened_without_the_apps_settings(&browser.0, &declined);
    let page = world.browser().consent(&declined, &[], false).await;
    assert!(page.text.contains("nothing was connected"), "{}", page.text);
    ui.until_text("#outcome-title", "the denied outcome", |t| {
        t == "Connecting was cancelled"
    })
    .await;
    ui.shot("connect-declined").await;

    // Then for real: the code in large type and a QR code; the person confirms it in the browser.
    ui.click("#outcome-retry").await;
    ui.until_text("#pair-link", "a new link", |t| t != declined)
        .await;
    let code = ui
        .until_text("#pair-code", "a code", |t| t.len() == 9)
        .await;
    let link = ui.text("#pair-link").await;
    assert!(link.ends_with(&format!("code={code}")), "{link}");
    let qr = ui
        .find("#pair-qr")
        .await
        .attr("src")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(qr.starts_with("data:image/svg+xml;base64,"));
    ui.shot("code").await;
    let page = world.browser().consent(&link, &[NZ], true).await;
    assert!(page.text.contains("Connected"), "{}", page.text);
    ui.until_text("#home-org", "the organisation", |t| {
        t == "Demo Company (NZ)"
    })
    .await;
    ui.until_text("#home-status", "connected", |t| t == "Connected")
        .await;
    ui.shot("home").await;

    // Settings: map a sales category, two tenders and the over/short account.
    ui.go("settings").await;
    ui.find("#map-over-short option[value='408']").await;
    ui.click("#map-add-category").await;
    ui.fill("#map-categories tr:last-child [name=name]", "Food")
        .await;
    ui.select("#map-categories tr:last-child [name=account]", "200")
        .await;
    ui.select("#map-categories tr:last-child [name=tax]", "OUTPUT2")
        .await;
    for (tender, account) in [("cash", "092"), ("card", "615")] {
        ui.click("#map-add-tender").await;
        ui.fill("#map-tenders tr:last-child [name=name]", tender)
            .await;
        ui.select("#map-tenders tr:last-child [name=account]", account)
            .await;
    }
    ui.select("#map-over-short", "408").await;
    ui.click("#mappings-form button[type=submit]").await;
    ui.until_text("#mappings-message", "saved", |t| t == "Mappings saved.")
        .await;
    ui.shot("settings").await;

    // A new invoice: totals live as Xero will compute them; a missing contact is caught at the field.
    ui.go("invoice").await;
    let date = ui
        .find("#invoice-form [name=date]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        date.as_deref(),
        Some("2026-11-21"),
        "the till's local day, not the UTC one"
    );
    ui.fill(
        "#invoice-lines tr:first-child [name=description]",
        "Flat white",
    )
    .await;
    ui.fill("#invoice-lines tr:first-child [name=quantity]", "2")
        .await;
    ui.fill("#invoice-lines tr:first-child [name=unit_amount]", "4.80")
        .await;
    ui.select("#invoice-lines tr:first-child [name=choice]", "cat:Food")
        .await;
    ui.until_text("#invoice-total", "9.60 + 15% GST", |t| t == "11.04")
        .await;
    assert_eq!(ui.text("#invoice-tax").await, "1.44");
    ui.click("#invoice-save").await;
    ui.until_text("#invoice-message", "a problem", |t| t.contains("attention"))
        .await;
    let contact = ui.find("#invoice-form [name=contact]").await;
    assert_eq!(
        contact.attr("class").await.unwrap().as_deref(),
        Some("invalid"),
        "the contact field shows its problem"
    );
    ui.fill("#invoice-form [name=contact]", "Harbour Cafe")
        .await;
    // Fixing the field clears its problem as staff type (the live check), before any save.
    ui.until_text("#invoice-message", "the problem cleared", |t| t.is_empty())
        .await;
    assert_ne!(
        contact.attr("class").await.unwrap().as_deref(),
        Some("invalid"),
        "the contact field no longer shows a problem"
    );
    ui.shot("invoice").await;
    ui.click("#invoice-save").await;
    let first_ref = ui
        .until_text("#invoice-message", "saved", |t| t.starts_with("Saved"))
        .await
        .trim_start_matches("Saved ")
        .split(':')
        .next()
        .unwrap()
        .to_string();

    // Documents: it becomes sent with Xero's number, without a refresh.
    ui.go("documents").await;
    let number = ui
        .until_text(
            "#docs-rows tr.doc[data-state=sent] .xero-number",
            "a Xero number",
            |t| t.starts_with("INV-"),
        )
        .await;
    // A row reads as staff know the sale: the local date, the contact, the total, the state and
    // Xero's number; no till reference in hex.
    let row = ui.text("#docs-rows tr.doc[data-state=sent]").await;
    assert!(
        row.contains("21 Nov 2026"),
        "the local date, day first: {row}"
    );
    assert!(
        row.contains("Harbour Cafe") && row.contains("11.04") && row.contains(&number),
        "{row}"
    );
    assert!(!row.contains(&first_ref), "no client_ref in the row: {row}");
    ui.shot("documents-sent").await;
    let invoices = world.xero_get("Invoices").await;
    let inv = invoices["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["InvoiceNumber"] == number.as_str())
        .expect("the invoice is in Xero")
        .clone();
    assert_eq!(inv["Total"].to_string(), "11.04");
    assert_eq!(inv["Contact"]["Name"], "Harbour Cafe");

    // Paid in Xero: the list says so.
    let id = inv["InvoiceID"].as_str().unwrap();
    let paid = world
        .control(Method::POST, &format!("/invoices/{id}/pay"), json!({}))
        .await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    ui.until_text(
        "#docs-rows tr.doc[data-state=paid] .xero-number",
        "paid",
        |t| t == number,
    )
    .await;
    ui.click("#docs-rows tr.doc[data-state=paid] .title").await;
    ui.until_text("#doc-facts", "the detail", |t| t.contains(&number))
        .await;
    // The detail: lines under their headers with tax, and Xero's number linked to the invoice in
    // Xero through the organisation's short code.
    let head = ui.text("#doc-lines-head").await;
    assert!(
        head.contains("Qty") && head.contains("Tax") && head.contains("Amount"),
        "{head}"
    );
    let lines = ui.text("#doc-lines").await;
    assert!(
        lines.contains("Flat white") && lines.contains("1.44") && lines.contains("11.04"),
        "{lines}"
    );
    let href = ui
        .find("#doc-xero-link")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        href.starts_with("https://go.xero.com/organisationlogin/default.aspx?shortcode=")
            && href.ends_with(&format!(
                "&redirecturl=/AccountsReceivable/View.aspx?InvoiceID={id}"
            )),
        "{href}"
    );
    ui.shot("documents-paid").await;
    // A printable receipt of what was sent.
    ui.click("#doc-receipt").await;
    let receipt = ui
        .until_text("#receipt", "the receipt", |t| t.contains(&number))
        .await;
    for part in [
        "Demo Company (NZ)",
        "21 Nov 2026",
        "Flat white",
        "Subtotal",
        "1.44",
        "11.04",
        "Paid",
    ] {
        assert!(
            receipt.contains(part),
            "the receipt shows {part}: {receipt}"
        );
    }
    ui.shot("receipt").await;
    ui.click("#receipt-close").await;
    ui.click("#doc-close").await;

    // End of shift: the over/short shows before sending.
    ui.go("shift").await;
    ui.select("#shift-sales .row:first-child [name=category]", "Food")
        .await;
    ui.fill("#shift-sales .row:first-child [name=amount]", "100.00")
        .await;
    ui.fill("#shift-tenders .row:first-child [name=amount]", "60.00")
        .await;
    ui.click("#shift-form [data-add=tenders]").await;
    ui.select("#shift-tenders .row:last-child [name=tender]", "card")
        .await;
    ui.fill("#shift-tenders .row:last-child [name=amount]", "40.00")
        .await;
    // The drawer started with a 200.00 float: expected cash is the float plus the cash takings.
    ui.fill("#shift-form [name=opening_float]", "200.00").await;
    ui.fill("#shift-form [name=counted_cash]", "259.50").await;
    ui.fill("#shift-form [name=notes]", "Till roll changed at noon")
        .await;
    ui.until_text("#shift-over-short", "short by 0.50", |t| t == "Short 0.50")
        .await;
    ui.shot("shift").await;
    ui.click("#shift-save").await;
    ui.until_text("#shift-message", "saved", |t| t.starts_with("Saved"))
        .await;
    ui.go("documents").await;
    ui.until_text("#docs-rows", "the shift in Xero", |t| {
        t.lines().any(|l| l.contains("End of shift"))
    })
    .await;
    ui.until_text(
        "#docs-rows tr.doc:first-child .xero-number",
        "the shift's invoice number",
        |t| t.starts_with("INV-"),
    )
    .await;
    ui.shot("documents-shift").await;
    // The float stays in the drawer: Xero is paid the cash counted less the float.
    ui.click("#docs-rows tr.doc:first-child .title").await;
    let shift_lines = ui
        .until_text("#doc-lines", "the shift's lines", |t| {
            t.contains("Opening float")
        })
        .await;
    assert!(
        shift_lines.contains("200.00") && shift_lines.contains("Till roll changed at noon"),
        "{shift_lines}"
    );
    let payments = world.xero_get("Payments").await;
    assert!(
        payments["Payments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| matches!(p["Amount"].to_string().as_str(), "59.5" | "59.50")),
        "the cash payment is 259.50 - 200.00: {payments}"
    );
    ui.shot("document-shift").await;
    ui.click("#doc-close").await;

    // A mistake put right: an invoice to a contact archived in Xero fails with the reason and what
    // to do; Fix opens it in the form, the corrected one is sent as the same document.
    let fixed_ref = ui
        .one_line_invoice("Old Supplies Ltd", "Scones", "5.00", "5.75")
        .await;
    ui.go("documents").await;
    let failed_row = format!("#docs-rows tr.doc[data-ref='{fixed_ref}'][data-state=failed]");
    ui.find(&failed_row).await;
    ui.click(&format!("{failed_row} .title")).await;
    let message = ui
        .until_text("#doc-message", "Xero's refusal", |t| t.contains("archived"))
        .await;
    assert!(message.contains("Old Supplies Ltd"), "{message}");
    let advice = ui.text("#doc-advice").await;
    assert!(
        advice.contains("Fix") && !advice.contains("ledgerlink"),
        "{advice}"
    );
    ui.go("home").await;
    ui.until_text("#count-failed", "one needing attention", |t| t == "1")
        .await;
    ui.go("documents").await;
    ui.click(&format!("{failed_row} .title")).await;
    ui.find("#doc-fix").await;
    ui.shot("document-failed").await;
    ui.click("#doc-fix").await;
    ui.until_text("#invoice-heading", "the fix form", |t| {
        t == format!("Fix invoice {fixed_ref}")
    })
    .await;
    assert_eq!(
        ui.find("#invoice-form [name=contact]")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Old Supplies Ltd"),
        "the form opens with the document"
    );
    ui.until_text("#invoice-total", "the same total", |t| t == "5.75")
        .await;
    ui.fill("#invoice-form [name=contact]", "Harbour Cafe")
        .await;
    // The organisation's contacts are suggested as a name is typed (archived ones are not).
    ui.find("#contact-suggestions option[value='Harbour Cafe']")
        .await;
    ui.shot("invoice-fix").await;
    ui.click("#invoice-save").await;
    ui.until_text("#invoice-message", "corrected", |t| {
        t.starts_with(&format!("Corrected {fixed_ref}"))
    })
    .await;
    ui.go("documents").await;
    let fixed_number = ui
        .until_text(
            &format!("#docs-rows tr.doc[data-ref='{fixed_ref}'][data-state=sent] .xero-number"),
            "the correction in Xero",
            |t| t.starts_with("INV-"),
        )
        .await;
    let invoices = world.xero_get("Invoices").await;
    let fixed_in_xero: Vec<_> = invoices["Invoices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["InvoiceNumber"] == fixed_number.as_str())
        .collect();
    assert_eq!(fixed_in_xero.len(), 1);
    assert_eq!(fixed_in_xero[0]["Contact"]["Name"], "Harbour Cafe");
    ui.click(&format!("#docs-rows tr.doc[data-ref='{fixed_ref}'] .title"))
        .await;
    ui.until_text("#doc-facts", "version 2", |t| t.contains("2 (corrected)"))
        .await;
    ui.shot("document-fixed").await;

    // Another one is discarded, with a reason; it leaves what needs attention.
    let discard_ref = ui
        .one_line_invoice("Old Supplies Ltd", "Rung up twice", "1.00", "1.15")
        .await;
    ui.go("documents").await;
    let failed_row = format!("#docs-rows tr.doc[data-ref='{discard_ref}'][data-state=failed]");
    ui.find(&failed_row).await;
    ui.click(&format!("{failed_row} .title")).await;
    ui.click("#doc-discard").await;
    ui.click("#discard-ok").await;
    ui.until_text("#discard-form .field-msg", "a reason asked for", |t| {
        t.contains("say why")
    })
    .await;
    ui.fill(
        "#discard-form [name=reason]",
        "Rung up twice; the customer paid once",
    )
    .await;
    ui.shot("discard").await;
    ui.click("#discard-ok").await;
    ui.until_text(
        &format!("#docs-rows tr.doc[data-ref='{discard_ref}']"),
        "discarded",
        |t| t.contains("Discarded"),
    )
    .await;
    ui.until_text("#doc-facts", "the reason", |t| {
        t.contains("Rung up twice; the customer paid once")
    })
    .await;
    ui.shot("document-discarded").await;
    ui.go("home").await;
    ui.until_text("#count-failed", "nothing needing attention", |t| t == "0")
        .await;
    ui.go("documents").await;

    // A refund of the paid sale: its lines ticked, the total offered as what is paid back in cash;
    // it reaches Xero as a credit note, with Xero's number.
    ui.click(&format!(
        "#docs-rows tr.doc[data-ref='{first_ref}'][data-state=paid] .title"
    ))
    .await;
    ui.click("#doc-refund").await;
    ui.until_text("#refund-total", "the refund's total", |t| {
        t == "Refund total 11.04"
    })
    .await;
    ui.select("#refund-form [name=tender]", "cash").await;
    ui.shot("refund").await;
    ui.click("#refund-ok").await;
    let credit_number = ui
        .until_text(
            "#docs-rows tr.doc[data-state=sent] .xero-number",
            "the credit note's number",
            |t| t.starts_with("CN-"),
        )
        .await;
    let notes = world.xero_get("CreditNotes").await;
    let note = &notes["CreditNotes"][0];
    assert_eq!(note["CreditNoteNumber"], credit_number.as_str());
    assert_eq!(note["Total"].to_string(), "11.04");
    assert_eq!(note["Status"], "PAID", "paid back in full");
    ui.shot("documents-refund").await;

    // Void the corrected sale (sent, unpaid): after a confirmation, it is voided in Xero.
    ui.click(&format!("#docs-rows tr.doc[data-ref='{fixed_ref}'] .title"))
        .await;
    ui.click("#doc-void").await;
    let warning = ui.text("#confirm-text").await;
    assert!(warning.contains("cancelled in Xero"), "{warning}");
    ui.click("#confirm-ok").await;
    ui.until_text(
        &format!("#docs-rows tr.doc[data-ref='{fixed_ref}']"),
        "voided",
        |t| t.contains("Voided"),
    )
    .await;
    let voided = world
        .xero_get("Invoices?where=Status%3D%3D%22VOIDED%22")
        .await;
    assert_eq!(
        voided["Invoices"].as_array().unwrap().len(),
        1,
        "the corrected sale, voided in Xero"
    );
    ui.shot("documents-void").await;
    // The list, all of it: dates, contacts, references, totals, states and Xero's numbers.
    ui.click("#doc-close").await;
    ui.shot("documents").await;

    // Offline: with the proxy gone, an invoice is still taken, the app says it waits on this
    // device, and it goes out once the proxy is back.
    world.stop_proxy().await;
    ui.go("invoice").await;
    ui.fill("#invoice-form [name=contact]", "Walk-in").await;
    ui.fill("#invoice-lines tr:first-child [name=description]", "Tea")
        .await;
    ui.fill("#invoice-lines tr:first-child [name=unit_amount]", "3.50")
        .await;
    ui.select("#invoice-lines tr:first-child [name=choice]", "cat:Food")
        .await;
    ui.until_text("#invoice-total", "4.03", |t| t == "4.03")
        .await;
    ui.click("#invoice-save").await;
    ui.until_text("#invoice-message", "saved", |t| t.starts_with("Saved"))
        .await;
    ui.until_text("#offline", "the offline banner", |t| {
        t.starts_with("Offline: The proxy at")
            && t.contains("nothing answers at that address")
            && t.contains("1 document waits on this device and goes out when the proxy is back")
    })
    .await;
    ui.shot("offline").await;
    world.start_proxy().await;
    ui.go("documents").await;
    ui.until_text(
        "#docs-rows tr.doc:first-child",
        "the offline invoice in Xero",
        |t| t.contains("Walk-in") && t.contains("INV-"),
    )
    .await;
    ui.until_text("#offline", "the banner gone", |t| t.is_empty())
        .await;

    // A second till of the same shop. Without a manager PIN, Disconnect asks for a confirmation
    // that names every device that stops.
    world.pair(&world.device("Back office"), &[NZ], None).await;
    ui.go("settings").await;
    ui.click("#disconnect").await;
    let confirm = ui
        .until_text("#confirm-text", "the confirmation", |t| !t.is_empty())
        .await;
    assert!(
        confirm.contains("(this one)") && confirm.contains("Back office"),
        "{confirm}"
    );
    ui.shot("disconnect-confirm").await;
    ui.click("#confirm-cancel").await;

    // A manager PIN guards what stops every till: set it, then Disconnect asks for it, says what
    // it does, and refuses a wrong one.
    ui.go("settings").await;
    ui.fill("#pin-form [name=new_pin]", "24a8").await;
    ui.click("#pin-save").await;
    ui.until_text("#pin-form .field-msg", "the PIN's form", |t| {
        t.contains("4 to 8 digits")
    })
    .await;
    ui.fill("#pin-form [name=new_pin]", "2468").await;
    ui.click("#pin-save").await;
    ui.until_text("#pin-message", "the PIN set", |t| {
        t == "The manager PIN is set."
    })
    .await;
    ui.click("#disconnect").await;
    let warning = ui
        .until_text("#pin-ask-text", "the warning", |t| !t.is_empty())
        .await;
    assert!(warning.contains("Every device"), "{warning}");
    assert!(
        warning.contains("(this one)") && warning.contains("Back office"),
        "it names every device that stops: {warning}"
    );
    ui.fill("#pin-ask-form [name=pin]", "1111").await;
    ui.click("#pin-ask-ok").await;
    ui.until_text("#pin-ask-form .field-msg", "a wrong PIN refused", |t| {
        t.contains("not the manager PIN")
    })
    .await;
    ui.shot("disconnect-pin").await;
    assert_eq!(
        world.connections().await[0].status.as_str(),
        "connected",
        "nothing happened on a wrong PIN"
    );
    ui.fill("#pin-ask-form [name=pin]", "2468").await;
    ui.click("#pin-ask-ok").await;
    ui.until_text("#home-status", "disconnected", |t| {
        t == "Disconnected from Xero"
    })
    .await;
    assert!(ui
        .find("#home-reconnect")
        .await
        .is_displayed()
        .await
        .unwrap());
    ui.shot("disconnected").await;
    let connections = world.connections().await;
    assert!(connections
        .iter()
        .all(|c| c.status.as_str() == "disconnected"));

    ui.c.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restaurant_till_connects_hubrise_sends_an_order_and_hears_it_was_cancelled() {
    tokio::time::timeout(Duration::from_secs(300), hubrise_flow())
        .await
        .expect("the HubRise desktop flow did not finish within 5 minutes (a WebDriver command blocked)");
}

async fn hubrise_flow() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut settings = settings();
    settings.pairing.interval_secs = 1;
    let world = World::start_with(settings).await;
    // A bistro in Paris at noon.
    let desk = launch(&world, "Europe/Paris", "2026-11-20T11:00:00Z").await;
    let ui = &desk.ui;

    // Connect offers both; HubRise is chosen, and the waiting screen says where to log in.
    // Shown once the app has read it is not paired (the element exists, hidden, before).
    ui.until_text("#connect-hubrise", "the HubRise button", |t| {
        t == "Connect to HubRise"
    })
    .await;
    assert_eq!(ui.text("#connect-start").await, "Connect to Xero");
    ui.shot("hubrise-connect").await;
    ui.click("#connect-hubrise").await;
    ui.until_text("#pair-code", "a code", |t| t.len() == 9)
        .await;
    let waiting = ui.text("#connect-waiting").await;
    assert!(
        waiting.contains("log in to HubRise and choose your location"),
        "{waiting}"
    );
    let link = ui.text("#pair-link").await;
    browser_was_opened_without_the_apps_settings(&desk.browser.0, &link);
    ui.shot("hubrise-code").await;
    let page = world.browser().hubrise_consent(&link, PARIS, true).await;
    assert!(page.text.contains("Connected"), "{}", page.text);
    ui.until_text("#home-org", "the location", |t| t == "Demo Bistro – Paris")
        .await;
    ui.until_text("#home-status", "connected", |t| t == "Connected")
        .await;
    // A HubRise till takes orders: no invoice, shift or mappings.
    assert!(ui
        .find(".sidebar a[data-screen=order]")
        .await
        .is_displayed()
        .await
        .unwrap());
    for xero_only in [
        ".sidebar a[data-screen=invoice]",
        ".sidebar a[data-screen=shift]",
    ] {
        assert!(
            !ui.find(xero_only).await.is_displayed().await.unwrap(),
            "{xero_only} shows on a HubRise till"
        );
    }
    ui.shot("hubrise-home").await;

    // An order: items, quantities and prices; the total as HubRise works it out, and the payment
    // following it.
    ui.go("order").await;
    ui.fill("#order-items tr:first-child [name=name]", "Croque monsieur")
        .await;
    ui.fill("#order-items tr:first-child [name=quantity]", "2")
        .await;
    ui.fill("#order-items tr:first-child [name=price]", "8.90")
        .await;
    ui.fill("#order-items tr:first-child [name=tax_rate]", "10")
        .await;
    ui.click("#order-add-item").await;
    ui.fill("#order-items tr:last-child [name=name]", "Espresso")
        .await;
    ui.fill("#order-items tr:last-child [name=price]", "2.20")
        .await;
    ui.fill("#order-form [name=reference]", "Table 7").await;
    ui.until_text("#order-total", "20.00", |t| t == "20.00")
        .await;
    ui.until_text("#order-paid", "paid in full", |t| t == "20.00")
        .await;
    ui.shot("hubrise-order").await;
    ui.click("#order-save").await;
    ui.until_text("#order-message", "saved", |t| t.starts_with("Saved"))
        .await;

    // Sent, with HubRise's order id, without a refresh.
    ui.go("documents").await;
    let id = ui
        .until_text(
            "#docs-rows tr.doc[data-state=sent] .provider-ref",
            "HubRise's order id",
            |t| t.len() == 5,
        )
        .await;
    let row = ui.text("#docs-rows tr.doc[data-state=sent]").await;
    assert!(
        row.contains("Table 7") && row.contains("20.00") && row.contains("Sent"),
        "{row}"
    );
    assert!(ui
        .text("#screen-documents thead")
        .await
        .contains("In HubRise"));
    ui.shot("hubrise-documents-sent").await;
    let held = world
        .control(
            Method::GET,
            &format!("/hubrise/orders?location_id={PARIS}"),
            json!({}),
        )
        .await;
    let orders = held.json["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{}", held.text);
    assert_eq!(orders[0]["id"], id.as_str());
    assert_eq!(orders[0]["total"], "20.00 EUR");
    assert_eq!(orders[0]["ref"], "Table 7");
    assert_eq!(orders[0]["payments"][0]["amount"], "20.00 EUR");

    // Cancelled by the restaurant in HubRise: the till hears it; the order stays sent.
    let cancelled = world
        .control(
            Method::POST,
            &format!("/hubrise/orders/{id}/status"),
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    ui.until_text(
        "#docs-rows tr.doc[data-state=sent] .provider-status",
        "the cancellation",
        |t| t == "Cancelled in HubRise",
    )
    .await;
    ui.click("#docs-rows tr.doc[data-state=sent] .title").await;
    let facts = ui
        .until_text("#doc-facts", "the detail", |t| t.contains(&id))
        .await;
    assert!(
        facts.contains("In HubRise") && facts.contains("Cancelled in HubRise"),
        "{facts}"
    );
    let lines = ui.text("#doc-lines").await;
    assert!(
        lines.contains("Croque monsieur")
            && lines.contains("Espresso")
            && lines.contains("Paid by Card"),
        "{lines}"
    );
    ui.shot("hubrise-document-cancelled").await;

    // Settings name HubRise and show no Xero mappings.
    ui.go("settings").await;
    assert_eq!(ui.text("#disconnect").await, "Disconnect from HubRise");
    assert!(!ui
        .find("#mappings-form")
        .await
        .is_displayed()
        .await
        .unwrap());
    ui.shot("hubrise-settings").await;

    ui.c.clone().close().await.unwrap();
}
