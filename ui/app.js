// The window: screens wired to the client core through Tauri commands. Every number shown is a
// decimal string from Rust; nothing here does arithmetic on money.
import {
  problemsByField, invoiceDraft, shiftDraft, formatMoney, overShort, ago, homeCounts,
  invoiceFormValues, invoiceFitsForm, refundDraft, localDay, localMinute,
  connectionLabel, offlineNotice, setLocale, currentLocale, showDate, showDateTime,
  providerName, orderDraft, orderFormValues, orderFitsForm,
} from "./logic.js";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
};

const app = {
  overview: null,
  sync: null,
  offer: null, // GET /v1/mappings: mappings, accounts, tax_rates
  screen: "home",
  docsState: "",
  selected: null,
  invoiceRef: null,
  shiftRef: null,
  invoiceTried: false,
  shiftTried: false,
  orderRef: null,
  orderTried: false,
  pairingTimer: null,
  // The provider of the pairing in progress (its name on the waiting screen, and "Try again").
  pairingProvider: null,
};

/** The provider this till is paired with ("xero" for a till not paired yet). */
function provider() {
  return app.overview?.connection?.provider || "xero";
}

/** Its name as people write it: "Xero", "HubRise". */
function P() {
  return providerName(provider());
}

/** Says `which` provider wherever a screen names one, and shows only what its tills do. */
function showProvider(which) {
  document.body.dataset.provider = which;
  for (const e of document.querySelectorAll(".provider-name")) e.textContent = providerName(which);
  for (const e of document.querySelectorAll(".provider-place")) e.textContent = which === "hubrise" ? "location" : "organisation";
}

/** What time it is, for the forms' defaults: the device's clock (a debug build can be told another
 * with LEDGERLINK_TEST_NOW, so a test can be at 08:00 in Auckland whatever the machine says). */
async function now() {
  return new Date(await call("clock_now"));
}

async function call(cmd, args) {
  try {
    return await invoke(cmd, args);
  } catch (e) {
    throw typeof e === "object" && e ? e : { code: "error", message: String(e) };
  }
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 3500);
}

function say(id, text, tone = "") {
  const m = $(id);
  m.textContent = text || "";
  m.className = `form-message ${tone}`;
}

/** Shows problems at their fields inside `form`; answers whether there were any. */
function showProblems(form, problems) {
  const byField = problemsByField(problems);
  for (const input of form.querySelectorAll("[data-field]")) {
    const msgs = byField.get(input.dataset.field);
    input.classList.toggle("invalid", !!msgs);
    input.setAttribute("aria-invalid", msgs ? "true" : "false");
    // The message sits right under its field.
    let note = input.nextElementSibling?.classList.contains("field-msg") ? input.nextElementSibling : null;
    if (msgs) {
      if (!note) {
        note = el("div", { class: "field-msg" });
        input.after(note);
      }
      note.textContent = msgs.join("; ");
      byField.delete(input.dataset.field);
    } else if (note) {
      note.remove();
    }
  }
  for (const box of form.querySelectorAll("[data-error-for]")) box.textContent = "";
  // What has no field of its own goes under the nearest group ("contact", "lines") or the form.
  const rest = [];
  for (const [path, msgs] of byField) {
    const group = form.querySelector(`[data-error-for="${path.split(/[.[]/)[0]}"]`);
    const text = msgs.map((m) => (path ? `${path}: ${m}` : m)).join(" · ");
    if (group) group.textContent = [group.textContent, text].filter(Boolean).join(" · ");
    else rest.push(text);
  }
  const general = form.querySelector('[data-error-for=""]');
  if (general) general.textContent = rest.join(" · ");
  return (problems || []).length > 0;
}

// ---------- start ----------

async function boot() {
  await listen("sync", (e) => onSync(e.payload));
  await listen("pairing", (e) => onPairing(e.payload));
  window.addEventListener("hashchange", route);
  // Dates and times as the device's locale writes them (the web view's own default is en-US).
  setLocale(await call("device_locale").catch(() => null));
  // (The date and time fields are the web view's own, written as the operating system's locale
  // says: that locale must exist there, as `locale -a` lists it.)
  if (currentLocale()) document.documentElement.lang = currentLocale();
  wireConnect();
  wireInvoice();
  wireShift();
  wireOrder();
  wireDocuments();
  wireSettings();
  wireReceipt();
  app.overview = await call("overview");
  app.sync = app.overview.sync;
  $("loading").hidden = true;
  if (app.overview.paired) await enterShell();
  else await showConnect();
  await call("ui_ready");
}

function onSync(status) {
  app.sync = status;
  renderSync();
  if (!status.paired && app.overview?.paired) {
    app.overview.paired = false;
    showConnect();
    return;
  }
  if (app.screen === "home") renderHome(false);
  if (app.screen === "documents") renderDocuments();
}

function renderSync() {
  const s = app.sync || {};
  const notice = offlineNotice(s);
  $("offline").hidden = !notice;
  $("offline").textContent = notice || "";
  const nav = $("nav-sync");
  nav.className = `nav-sync ${s.online || !s.message ? "" : "offline"}`;
  const words = s.online ? `Synced ${ago(s.last_sync_at)}` : s.message ? "Offline" : "Syncing…";
  nav.replaceChildren(el("span", { class: "dot" }), words);
}

// ---------- connect ----------

function wireConnect() {
  $("connect-start").addEventListener("click", () => startPairing("xero"));
  $("connect-hubrise").addEventListener("click", () => startPairing("hubrise"));
  $("outcome-retry").addEventListener("click", () => startPairing(app.pairingProvider));
  $("pair-reopen").addEventListener("click", async () => {
    try {
      const opened = await call("reopen_browser");
      toast(opened ? "The browser was opened again." : "Open the link shown here in a browser.");
    } catch (e) {
      toast(e.message);
    }
  });
  $("pair-link").addEventListener("click", () => $("pair-reopen").click());
  $("pair-cancel").addEventListener("click", async () => {
    await call("cancel_pairing");
    clearInterval(app.pairingTimer);
    if (app.overview?.paired) return enterShell();
    connectView("idle");
  });
  $("connect-change-proxy").addEventListener("click", () => {
    $("connect-proxy-form").hidden = false;
    $("connect-proxy-input").focus();
  });
  $("connect-proxy-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    try {
      const current = await call("settings");
      const saved = await call("save_settings", {
        settings: { proxy_url: $("connect-proxy-input").value, device_name: current.device_name },
      });
      showProblems(form, []);
      $("connect-proxy").textContent = saved.proxy_url;
      form.hidden = true;
    } catch (e) {
      showProblems(form, e.problems || [{ path: "proxy_url", message: e.message }]);
    }
  });
}

function connectView(which) {
  $("connect-idle").hidden = which !== "idle";
  $("connect-waiting").hidden = which !== "waiting";
  $("connect-outcome").hidden = which !== "outcome";
}

async function showConnect() {
  $("shell").hidden = true;
  $("connect").hidden = false;
  const s = await call("settings");
  $("connect-proxy").textContent = s.proxy_url;
  $("connect-proxy-input").value = s.proxy_url;
  if (app.overview?.pairing) showCode(app.overview.pairing);
  else connectView("idle");
}

/** Pairs with `which` provider (none: the one paired with now). */
async function startPairing(which) {
  app.pairingProvider = which || provider();
  showProvider(app.pairingProvider);
  $("shell").hidden = true;
  $("connect").hidden = false;
  const buttons = [$("connect-start"), $("connect-hubrise")];
  for (const b of buttons) b.disabled = true;
  try {
    showCode(await call("start_pairing", { provider: which || null }));
  } catch (e) {
    showOutcome(e.code, e.message);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function showCode(p) {
  connectView("waiting");
  $("pair-code").textContent = p.user_code;
  $("pair-link").textContent = p.verification_uri_complete;
  $("pair-link").dataset.href = p.verification_uri_complete;
  $("pair-uri").textContent = p.verification_uri;
  $("pair-qr").src = `data:image/svg+xml;base64,${btoa(p.qr_svg)}`;
  const expires = new Date(p.expires_at);
  clearInterval(app.pairingTimer);
  const tick = () => {
    const left = Math.max(0, Math.round((expires - new Date()) / 1000));
    $("pair-expiry").textContent = `(the code works for ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} more)`;
  };
  tick();
  app.pairingTimer = setInterval(tick, 1000);
}

const OUTCOME_TITLES = {
  access_denied: "Connecting was cancelled",
  expired_token: "The code expired",
  proxy_unreachable: "The proxy cannot be reached",
};

function showOutcome(code, message) {
  clearInterval(app.pairingTimer);
  connectView("outcome");
  $("outcome-title").textContent = OUTCOME_TITLES[code] || "Connecting did not finish";
  $("outcome-message").textContent = message;
}

async function onPairing(outcome) {
  if (outcome.outcome === "paired") {
    clearInterval(app.pairingTimer);
    toast(outcome.message);
    app.overview = await call("overview");
    await enterShell();
  } else {
    showOutcome(outcome.outcome, outcome.message);
  }
}

// ---------- shell and routing ----------

async function enterShell() {
  app.overview = await call("overview");
  $("connect").hidden = true;
  $("shell").hidden = false;
  $("nav-org").textContent = app.overview.connection?.organisation_name || "";
  showProvider(provider());
  renderSync();
  // Mappings are Xero's: a HubRise till has none to read.
  if (provider() === "xero") loadOffer(false);
  if (!location.hash) location.hash = "#home";
  await route();
}

async function loadOffer(refresh) {
  try {
    app.offer = await call("mappings", { refresh });
    app.offerError = null;
  } catch (e) {
    app.offerError = e.message;
  }
  return app.offer;
}

async function route() {
  if ($("shell").hidden) return;
  const [screen, arg] = location.hash.replace(/^#/, "").split("/");
  // Each provider's screens: invoices and shifts go to Xero, orders to HubRise.
  const screens = provider() === "hubrise"
    ? ["home", "order", "documents", "settings"]
    : ["home", "invoice", "shift", "documents", "settings"];
  app.screen = screens.includes(screen) ? screen : "home";
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== `screen-${app.screen}`;
  for (const a of document.querySelectorAll(".sidebar a")) a.classList.toggle("active", a.dataset.screen === app.screen);
  if (app.screen === "home") await renderHome(true);
  if (app.screen === "invoice") await openInvoice();
  if (app.screen === "shift") await openShift();
  if (app.screen === "order") await openOrder();
  if (app.screen === "documents") {
    if (arg !== undefined) app.docsState = arg;
    await renderDocuments();
  }
  if (app.screen === "settings") await renderSettings();
}

// ---------- home ----------

async function renderHome(ask) {
  const ov = (app.overview = await call("overview"));
  let conn = ov.connection;
  if (ask) {
    try {
      conn = await call("check_connection");
    } catch (_) {
      // Offline: the banner says so; show what is known.
    }
  }
  $("home-org").textContent = conn?.organisation_name || "Not connected";
  $("nav-org").textContent = conn?.organisation_name || "";
  showProvider(conn?.provider || provider());
  const c = connectionLabel(conn?.status, conn?.provider);
  $("home-status").textContent = c.label;
  $("home-status").className = `pill ${c.tone}`;
  $("home-reconnect").hidden = !c.reconnect;
  $("home-reconnect-note").hidden = !c.reconnect;
  $("home-reconnect-note").textContent = c.reconnect
    ? `Documents wait at the proxy until someone connects this ${conn?.provider === "hubrise" ? "location" : "organisation"} to ${providerName(conn?.provider)} again.`
    : "";
  $("home-timezone").hidden = !conn?.timezone_warning;
  $("home-timezone").textContent = conn?.timezone_warning || "";
  const s = ov.sync;
  $("home-last-sync").textContent = `Last sync: ${ago(s.last_sync_at)}`;
  const counts = homeCounts(s.counts);
  for (const k of ["queued", "sent", "failed", "paid"]) $(`count-${k}`).textContent = counts[k];
  const rows = (await call("documents", { filter: {} })).slice(0, 6);
  $("home-latest").replaceChildren(...rows.map(docRow));
  if (!rows.length) $("home-latest").append(el("tr", {}, el("td", { class: "muted" }, "Nothing sent yet.")));
}

// ---------- invoice ----------

function accountOptions(filter = () => true) {
  return (app.offer?.accounts || []).filter(filter).map((a) => el("option", { value: a.code }, `${a.code} · ${a.name}`));
}

function taxOptions() {
  return [el("option", { value: "" }, "Tax rate…"),
    ...(app.offer?.tax_rates || []).map((t) => el("option", { value: t.tax_type }, `${t.name} (${t.rate}%)`))];
}

function lineChoices() {
  const cats = Object.keys(app.offer?.mappings?.categories || {});
  const groups = [el("option", { value: "" }, "Choose…")];
  if (cats.length) groups.push(el("optgroup", { label: "Sales categories" }, cats.map((c) => el("option", { value: `cat:${c}` }, c))));
  const accounts = (app.offer?.accounts || []).filter((a) => ["REVENUE", "SALES", "OTHERINCOME"].includes(a.type));
  groups.push(el("optgroup", { label: "Accounts" }, accounts.map((a) => el("option", { value: `acc:${a.code}` }, `${a.code} · ${a.name}`))));
  return groups;
}

function addLine(values = {}) {
  const body = $("invoice-lines");
  const i = body.children.length;
  const tr = el("tr", { class: "line" },
    el("td", {}, el("input", { class: "desc", name: "description", "data-field": `lines[${i}].description`, "aria-label": "Description", value: values.description || "" })),
    el("td", {}, el("input", { class: "qty num", name: "quantity", inputmode: "decimal", "data-field": `lines[${i}].quantity`, "aria-label": "Quantity", value: values.quantity ?? "1" })),
    el("td", {}, el("input", { class: "price num", name: "unit_amount", inputmode: "decimal", "data-field": `lines[${i}].unit_amount`, "aria-label": "Unit price", value: values.unit_amount || "" })),
    el("td", {}, el("select", { name: "choice", "data-field": `lines[${i}].account_code`, "aria-label": "Account or category" }, lineChoices())),
    el("td", {}, el("select", { name: "tax_type", "data-field": `lines[${i}].tax_type`, "aria-label": "Tax rate" }, taxOptions())),
    el("td", { class: "amount" }, ""),
    el("td", {}, el("button", { type: "button", class: "remove", title: "Remove this line", "aria-label": "Remove this line", onclick: () => { tr.remove(); renumberLines(); previewInvoice(); } }, "×")));
  body.append(tr);
  const choice = tr.querySelector("[name=choice]");
  choice.addEventListener("change", () => syncTaxSelect(tr));
  syncTaxSelect(tr);
  return tr;
}

function renumberLines() {
  [...$("invoice-lines").children].forEach((tr, i) => {
    for (const input of tr.querySelectorAll("[data-field]")) input.dataset.field = input.dataset.field.replace(/^lines\[\d+\]/, `lines[${i}]`);
  });
}

/** A category's tax comes from its mapping: the tax select shows it and is locked. */
function syncTaxSelect(tr) {
  const choice = tr.querySelector("[name=choice]").value;
  const tax = tr.querySelector("[name=tax_type]");
  if (choice.startsWith("cat:")) {
    const m = app.offer?.mappings?.categories?.[choice.slice(4)];
    tax.value = m?.tax_type || "";
    tax.disabled = true;
  } else {
    tax.disabled = false;
  }
}

function invoiceValues() {
  const f = $("invoice-form");
  return {
    client_ref: app.invoiceRef,
    contact: f.contact.value,
    email: f.email.value,
    date: f.date.value,
    due_date: f.due_date.value,
    reference: f.reference.value,
    tax_mode: f.tax_mode.value,
    approve: f.approve.checked,
    lines: [...$("invoice-lines").children].map((tr) => ({
      description: tr.querySelector("[name=description]").value,
      quantity: tr.querySelector("[name=quantity]").value,
      unit_amount: tr.querySelector("[name=unit_amount]").value,
      choice: tr.querySelector("[name=choice]").value,
      tax_type: tr.querySelector("[name=tax_type]").value,
    })),
  };
}

/**
 * A live preview from the client core: `show(answer)` after `command` with the form's draft, 80 ms
 * after the last change, and only for the latest change (an answer about an older form is dropped).
 */
function livePreview(command, draft, show) {
  let timer = null;
  let seq = 0;
  return () => {
    clearTimeout(timer);
    const mine = ++seq;
    timer = setTimeout(async () => {
      const answer = await call(command, { draft: draft() });
      if (mine === seq) show(answer);
    }, 80);
  };
}

const previewInvoice = livePreview("preview_invoice", () => invoiceDraft(invoiceValues()), (p) => {
  const t = p.totals;
  $("invoice-subtotal").textContent = t ? formatMoney(t.subtotal) : "—";
  $("invoice-tax").textContent = t ? formatMoney(t.total_tax) : "—";
  $("invoice-total").textContent = t ? formatMoney(t.total) : "—";
  $("invoice-totals-note").textContent = t ? "Totals as Xero will show them." : p.totals_note || "";
  [...$("invoice-lines").children].forEach((tr, i) => {
    tr.querySelector(".amount").textContent = t?.lines[i] ? formatMoney(t.lines[i].amount) : "";
  });
  if (app.invoiceTried && !showProblems($("invoice-form"), p.problems)) say("invoice-message", "");
});

async function openInvoice() {
  if (app.invoiceRef) return; // keep a half-filled form
  await resetInvoice();
}

/** The invoice form filled with a saved invoice that needs fixing: saving it sends the correction. */
async function fixInvoice(d) {
  if (!app.offer) await loadOffer(false);
  const f = $("invoice-form");
  f.reset();
  app.invoiceTried = true;
  showProblems(f, []);
  const v = invoiceFormValues(d.body);
  app.invoiceRef = d.client_ref;
  app.fixing = d.client_ref;
  f.contact.value = v.contact;
  f.email.value = v.email;
  f.date.value = v.date;
  f.due_date.value = v.due_date;
  f.reference.value = v.reference;
  f.tax_mode.value = v.tax_mode;
  f.approve.checked = v.approve;
  $("invoice-lines").replaceChildren();
  for (const l of v.lines) {
    const tr = addLine(l);
    tr.querySelector("[name=choice]").value = l.choice;
    syncTaxSelect(tr);
    if (!l.choice.startsWith("cat:")) tr.querySelector("[name=tax_type]").value = l.tax_type;
  }
  $("invoice-heading").textContent = `Fix invoice ${d.client_ref}`;
  $("invoice-cancel-fix").hidden = false;
  say("invoice-message", d.message ? `${d.state === "rejected" ? "Ledgerlink" : P()} said: ${d.message}` : "", "bad");
  location.hash = "#invoice";
  previewInvoice();
}

async function resetInvoice() {
  const f = $("invoice-form");
  f.reset();
  app.invoiceTried = false;
  app.fixing = null;
  $("invoice-heading").textContent = "New invoice";
  $("invoice-cancel-fix").hidden = true;
  showProblems(f, []);
  app.invoiceRef = await call("new_client_ref", { kindWord: "invoice" });
  f.date.value = localDay(await now());
  if (!app.offer) await loadOffer(false);
  $("invoice-lines").replaceChildren();
  addLine();
  say("invoice-message", "");
  for (const id of ["invoice-subtotal", "invoice-tax", "invoice-total"]) $(id).textContent = "0.00";
  $("invoice-totals-note").textContent = "";
  previewInvoice();
}

function wireInvoice() {
  const f = $("invoice-form");
  f.addEventListener("input", previewInvoice);
  f.addEventListener("change", previewInvoice);
  $("invoice-cancel-fix").addEventListener("click", () => resetInvoice());
  // The organisation's contacts whose name holds what is typed (from 2 characters), as
  // suggestions; archived ones are not offered (Xero refuses documents to them).
  let asked = null;
  f.contact.addEventListener("input", () => {
    clearTimeout(asked);
    const q = f.contact.value.trim();
    if (q.length < 2) return;
    asked = setTimeout(async () => {
      try {
        const found = await call("search_contacts", { q });
        $("contact-suggestions").replaceChildren(...found.contacts.filter((c) => !c.archived)
          .map((c) => el("option", { value: c.name }, c.contact_number ? `#${c.contact_number}` : "")));
      } catch (_) {
        // Offline or not connected: typing goes on without suggestions.
      }
    }, 200);
  });
  $("invoice-add-line").addEventListener("click", () => {
    addLine().querySelector("[name=description]").focus();
    previewInvoice();
  });
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    app.invoiceTried = true;
    $("invoice-save").disabled = true;
    try {
      const fixing = app.fixing;
      const saved = await call("save_document", { kindWord: "invoice", draft: invoiceDraft(invoiceValues()) });
      if (fixing && saved.already_saved) {
        say("invoice-message", "Nothing changed: correct the invoice first, or use Send again in Documents.", "bad");
        return;
      }
      toast(saved.already_saved ? "Already saved." : saved.corrected ? "Correction saved. Sending to Xero…" : "Saved. Sending to Xero…");
      app.invoiceRef = null;
      await resetInvoice();
      say("invoice-message", `${saved.corrected ? "Corrected" : "Saved"} ${saved.client_ref}: see Documents for its state.`, "good");
    } catch (e) {
      showProblems(f, e.problems || []);
      say("invoice-message", e.message, "bad");
    } finally {
      $("invoice-save").disabled = false;
    }
  });
}

// ---------- shift ----------

function shiftRow(kind, values = {}) {
  const key = kind === "tenders" ? "tender" : "category";
  const names = Object.keys((kind === "tenders" ? app.offer?.mappings?.tenders : app.offer?.mappings?.categories) || {});
  const box = $(`shift-${kind}`);
  const i = box.children.length;
  const select = el("select", { name: key, "data-field": `${kind}[${i}].${key}`, "aria-label": key === "tender" ? "Tender" : "Category" },
    el("option", { value: "" }, names.length ? "Choose…" : "Map some in Settings first"),
    names.map((n) => el("option", { value: n }, n)));
  select.value = values[key] || "";
  const row = el("div", { class: "row", dataset: { kind } },
    select,
    el("input", { name: "amount", class: "num", inputmode: "decimal", placeholder: "0.00", "data-field": `${kind}[${i}].amount`, "aria-label": "Amount", value: values.amount || "" }),
    el("button", { type: "button", class: "remove", title: "Remove", "aria-label": "Remove", onclick: () => { row.remove(); previewShift(); } }, "×"));
  box.append(row);
  return row;
}

function shiftValues() {
  const f = $("shift-form");
  const rows = (kind, key) => [...$(`shift-${kind}`).children].map((r) => ({
    [key]: r.querySelector(`[name=${key}]`).value,
    amount: r.querySelector("[name=amount]").value,
  }));
  return {
    client_ref: app.shiftRef,
    register: f.register.value,
    opened_at: f.opened_at.value,
    closed_at: f.closed_at.value,
    sales: rows("sales", "category"),
    refunds: rows("refunds", "category"),
    tenders: rows("tenders", "tender"),
    counted_cash: f.counted_cash.value,
    opening_float: f.opening_float.value,
    notes: f.notes.value,
  };
}

const previewShift = livePreview("preview_shift", () => shiftDraft(shiftValues()), (p) => {
  const s = p.summary;
  if (s) {
    $("shift-net").textContent = formatMoney(s.net_sales);
    $("shift-taken").textContent = formatMoney(s.taken);
    const o = overShort(s.over_short);
    $("shift-over-short").textContent = o.label === "Balanced" ? "Balanced" : `${o.label} ${o.amount}`;
    $("shift-over-short").className = `pill ${o.tone}`;
  }
  if (app.shiftTried && !showProblems($("shift-form"), p.problems)) say("shift-message", "");
});

async function openShift() {
  if (app.shiftRef) return;
  await resetShift();
}

async function resetShift() {
  const f = $("shift-form");
  f.reset();
  app.shiftTried = false;
  showProblems(f, []);
  app.shiftRef = await call("new_client_ref", { kindWord: "shift" });
  if (!app.offer) await loadOffer(false);
  const at = await now();
  const opened = new Date(at);
  opened.setHours(8, 0, 0, 0);
  f.opened_at.value = localMinute(opened < at ? opened : new Date(at.getTime() - 3600000));
  f.closed_at.value = localMinute(at);
  f.register.value = (await call("settings")).device_name;
  for (const k of ["sales", "refunds", "tenders"]) $(`shift-${k}`).replaceChildren();
  shiftRow("sales");
  shiftRow("tenders", { tender: "cash" });
  say("shift-message", "");
  previewShift();
}

function wireShift() {
  const f = $("shift-form");
  f.addEventListener("input", previewShift);
  f.addEventListener("change", previewShift);
  for (const b of f.querySelectorAll("[data-add]")) {
    b.addEventListener("click", () => {
      shiftRow(b.dataset.add).querySelector("select").focus();
    });
  }
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    app.shiftTried = true;
    $("shift-save").disabled = true;
    try {
      const saved = await call("save_document", { kindWord: "shift", draft: shiftDraft(shiftValues()) });
      toast("End of shift saved. Sending to Xero…");
      app.shiftRef = null;
      await resetShift();
      say("shift-message", `Saved ${saved.client_ref}: see Documents for its state.`, "good");
    } catch (e) {
      showProblems(f, e.problems || []);
      say("shift-message", e.message, "bad");
    } finally {
      $("shift-save").disabled = false;
    }
  });
}

// ---------- order (HubRise) ----------

function orderItem(values = {}) {
  const body = $("order-items");
  const i = body.children.length;
  const tr = el("tr", { class: "line" },
    el("td", {}, el("input", { class: "desc", name: "name", "data-field": `items[${i}].name`, "aria-label": "Item", value: values.name || "" })),
    el("td", {}, el("input", { class: "qty num", name: "quantity", inputmode: "decimal", "data-field": `items[${i}].quantity`, "aria-label": "Quantity", value: values.quantity ?? "1" })),
    el("td", {}, el("input", { class: "price num", name: "price", inputmode: "decimal", "data-field": `items[${i}].price`, "aria-label": "Price each", value: values.price || "" })),
    el("td", {}, el("input", { class: "qty num", name: "tax_rate", inputmode: "decimal", "data-field": `items[${i}].tax_rate`, "aria-label": "Tax rate in percent", value: values.tax_rate || "" })),
    el("td", {}, el("button", { type: "button", class: "remove", title: "Remove this item", "aria-label": "Remove this item", onclick: () => { tr.remove(); renumber("order-items", "items"); previewOrder(); } }, "×")));
  body.append(tr);
  return tr;
}

/** A payment row; `auto` rows follow the total until someone types an amount. */
function orderPayment(values = {}, auto = false) {
  const box = $("order-payments");
  const i = box.children.length;
  const amount = el("input", { name: "amount", class: "num", inputmode: "decimal", placeholder: "0.00", "data-field": `payments[${i}].amount`, "aria-label": "Amount paid", value: values.amount || "" });
  if (auto) amount.dataset.auto = "1";
  amount.addEventListener("input", () => delete amount.dataset.auto);
  const row = el("div", { class: "row" },
    el("input", { name: "tender", list: "order-tenders", "data-field": `payments[${i}].tender`, "aria-label": "Paid by", value: values.tender || "Card" }),
    amount,
    el("button", { type: "button", class: "remove", title: "Remove", "aria-label": "Remove", onclick: () => { row.remove(); renumber("order-payments", "payments"); previewOrder(); } }, "×"));
  box.append(row);
  return row;
}

function renumber(boxId, list) {
  [...$(boxId).children].forEach((row, i) => {
    for (const input of row.querySelectorAll("[data-field]")) input.dataset.field = input.dataset.field.replace(new RegExp(`^${list}\\[\\d+\\]`), `${list}[${i}]`);
  });
}

function orderValues() {
  const f = $("order-form");
  return {
    client_ref: app.orderRef,
    reference: f.reference.value,
    service_type: f.service_type.value,
    seller_notes: f.seller_notes.value,
    items: [...$("order-items").children].map((tr) => ({
      name: tr.querySelector("[name=name]").value,
      quantity: tr.querySelector("[name=quantity]").value,
      price: tr.querySelector("[name=price]").value,
      tax_rate: tr.querySelector("[name=tax_rate]").value,
    })),
    payments: [...$("order-payments").children].map((r) => ({
      tender: r.querySelector("[name=tender]").value,
      amount: r.querySelector("[name=amount]").value,
    })),
  };
}

const previewOrder = livePreview("preview_order", () => orderDraft(orderValues()), (p) => {
  $("order-total").textContent = p.total ? formatMoney(p.total) : "—";
  // One payment nobody typed into follows the total: the usual sale is paid in full.
  const auto = [...$("order-payments").querySelectorAll("[name=amount][data-auto]")];
  const follow = p.total && !/^0(\.0+)?$/.test(p.total) ? p.total : "";
  if (auto.length === 1 && $("order-payments").children.length === 1 && auto[0].value !== follow) {
    auto[0].value = follow;
    previewOrder();
  }
  $("order-paid").textContent = p.paid ? formatMoney(p.paid) : "—";
  $("order-totals-note").textContent = "Total as HubRise will work it out, from each item's price and quantity.";
  if (app.orderTried && !showProblems($("order-form"), p.problems)) say("order-message", "");
});

async function openOrder() {
  if (app.orderRef) return; // keep a half-filled form
  await resetOrder();
}

async function resetOrder() {
  const f = $("order-form");
  f.reset();
  app.orderTried = false;
  app.orderFixing = null;
  $("order-heading").textContent = "New order";
  $("order-cancel-fix").hidden = true;
  showProblems(f, []);
  app.orderRef = await call("new_client_ref", { kindWord: "order" });
  $("order-items").replaceChildren();
  $("order-payments").replaceChildren();
  orderItem();
  orderPayment({ tender: "Card" }, true);
  say("order-message", "");
  $("order-total").textContent = "0.00";
  $("order-paid").textContent = "0.00";
  previewOrder();
}

/** The order form filled with a saved order that needs fixing: saving it sends the correction. */
function fixOrder(d) {
  const f = $("order-form");
  f.reset();
  app.orderTried = true;
  showProblems(f, []);
  const v = orderFormValues(d.body);
  app.orderRef = d.client_ref;
  app.orderFixing = d.client_ref;
  f.reference.value = v.reference;
  f.service_type.value = v.service_type;
  f.seller_notes.value = v.seller_notes;
  $("order-items").replaceChildren();
  $("order-payments").replaceChildren();
  for (const i of v.items) orderItem(i);
  for (const p of v.payments) orderPayment(p);
  $("order-heading").textContent = `Fix order ${d.client_ref}`;
  $("order-cancel-fix").hidden = false;
  say("order-message", d.message ? `${d.state === "rejected" ? "Ledgerlink" : P()} said: ${d.message}` : "", "bad");
  location.hash = "#order";
  previewOrder();
}

function wireOrder() {
  const f = $("order-form");
  f.addEventListener("input", previewOrder);
  f.addEventListener("change", previewOrder);
  $("order-cancel-fix").addEventListener("click", () => resetOrder());
  $("order-add-item").addEventListener("click", () => {
    orderItem().querySelector("[name=name]").focus();
    previewOrder();
  });
  $("order-add-payment").addEventListener("click", () => {
    orderPayment({ tender: "Cash" }).querySelector("[name=amount]").focus();
    previewOrder();
  });
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    app.orderTried = true;
    $("order-save").disabled = true;
    try {
      const fixing = app.orderFixing;
      const saved = await call("save_document", { kindWord: "order", draft: orderDraft(orderValues()) });
      if (fixing && saved.already_saved) {
        say("order-message", "Nothing changed: correct the order first, or use Send again in Documents.", "bad");
        return;
      }
      toast(saved.already_saved ? "Already saved." : saved.corrected ? `Correction saved. Sending to ${P()}…` : `Saved. Sending to ${P()}…`);
      app.orderRef = null;
      await resetOrder();
      say("order-message", `${saved.corrected ? "Corrected" : "Saved"} ${saved.client_ref}: see Documents for its state.`, "good");
    } catch (e) {
      showProblems(f, e.problems || []);
      say("order-message", e.message, "bad");
    } finally {
      $("order-save").disabled = false;
    }
  });
}

// ---------- documents ----------

function stateCell(r) {
  return el("span", { class: `pill ${r.tone}`, dataset: { state: r.state } }, r.state_label);
}

function docRow(r) {
  const tr = el("tr", { class: `doc${app.selected === r.client_ref ? " selected" : ""}`, dataset: { ref: r.client_ref, state: r.state }, tabindex: "0" },
    el("td", { class: "date" }, r.date ? showDate(r.date) : showDate(r.created_at)),
    el("td", {}, el("div", { class: "title" }, r.contact || r.title),
      ["invoice", "order"].includes(r.kind) ? null : el("div", { class: "kind" }, kindLabel(r)),
      r.provider_status ? el("div", { class: "provider-status" }, providerStatus(r)) : null,
      r.message && ["failed", "rejected"].includes(r.state) ? el("div", { class: "message" }, r.message) : null),
    el("td", { class: "reference" }, r.reference || ""),
    el("td", { class: "num" }, r.amount ? formatMoney(r.amount) : ""),
    el("td", {}, stateCell(r)),
    el("td", { class: "xero-number provider-ref" }, r.provider_ref || ""));
  const open = () => showDocument(r.client_ref);
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (e) => e.key === "Enter" && open());
  return tr;
}

function kindLabel(r) {
  return { credit_note: "Refund", payment: "Payment", shift: "End of shift", order: "Order" }[r.kind] || r.kind;
}

/** What the provider last said of a sent document, in words: "Cancelled in HubRise". */
function providerStatus(r) {
  const words = String(r.provider_status).replace(/_/g, " ");
  return `${words.charAt(0).toUpperCase()}${words.slice(1)} in ${P()}`;
}

async function renderDocuments() {
  for (const b of document.querySelectorAll(".chips button")) b.classList.toggle("active", b.dataset.state === app.docsState);
  const filter = { state: app.docsState || null, kind: $("docs-kind").value || null, text: $("docs-text").value || null };
  const rows = await call("documents", { filter });
  $("docs-rows").replaceChildren(...rows.map(docRow));
  $("docs-empty").hidden = rows.length > 0;
  if (app.selected) await showDocument(app.selected, false);
}

async function showDocument(clientRef, highlight = true) {
  app.selected = clientRef;
  let d;
  try {
    d = await call("document", { clientRef });
  } catch (e) {
    $("doc-detail").hidden = true;
    return;
  }
  if (highlight) for (const tr of $("docs-rows").children) tr.classList.toggle("selected", tr.dataset.ref === clientRef);
  $("doc-detail").hidden = false;
  $("doc-title").textContent = d.kind === "invoice" ? (d.contact || d.title) : d.title;
  const ref = d.provider_ref;
  const fact = (k, v) => (v ? [el("dt", {}, k), el("dd", {}, v)] : []);
  const number = d.xero_number && d.xero_url
    ? el("a", { href: d.xero_url, id: "doc-xero-link", title: `Open ${d.xero_number} in Xero (${d.organisation || "its organisation"})`,
      onclick: (ev) => { ev.preventDefault(); call("open_in_xero", { clientRef: d.client_ref }).catch((e) => toast(e.message)); } }, d.xero_number)
    : ref;
  $("doc-facts").replaceChildren(
    ...fact("State", stateCell(d)),
    ...fact("Date", d.date ? showDate(d.date) : null),
    ...fact(d.kind === "shift" ? "Register" : "Contact", d.contact),
    ...fact("Reference", d.reference),
    ...fact(`In ${P()}`, number),
    ...fact(`Status in ${P()}`, d.provider_status ? el("span", { class: "provider-status" }, providerStatus(d)) : null),
    ...fact("Organisation", d.organisation),
    ...fact("Total", d.amount ? formatMoney(d.amount) : null),
    ...fact("Version", d.version > 1 ? `${d.version} (corrected)` : null),
    ...fact("Discarded because", d.discard_reason),
    ...fact("Saved", showDateTime(d.created_at)),
    ...fact("Updated", showDateTime(d.updated_at)),
    ...fact("Till ref", el("span", { class: "mono muted" }, d.client_ref)));
  // A refusal waiting for a person is red; one put right or put aside is history.
  const open = ["failed", "rejected"].includes(d.state);
  $("doc-message").hidden = !d.message;
  $("doc-message").className = open ? "banner bad" : "banner plain";
  $("doc-message").textContent = d.message ? `${d.state === "rejected" ? "Ledgerlink" : P()} ${open ? "says" : "said"}: ${d.message}` : "";
  $("doc-advice").hidden = !d.advice;
  $("doc-advice").textContent = d.advice || "";
  const fits = d.kind === "order" ? orderFitsForm(d.body) : d.kind === "invoice" && invoiceFitsForm(d.body);
  const receipt = d.kind === "invoice" && ["sent", "paid"].includes(d.state) && !!d.totals;
  $("doc-actions").hidden = !(d.can_fix || d.can_retry || d.can_discard || d.can_refund || d.can_void || receipt);
  $("doc-refund").hidden = !d.can_refund;
  $("doc-void").hidden = !d.can_void;
  $("doc-fix").hidden = !d.can_fix;
  $("doc-fix").disabled = !fits;
  $("doc-fix").title = fits ? "" : `This ${d.kind === "order" ? "order" : "invoice"} has details the form does not show: correct it with \`ledgerlink push\` under the same client_ref.`;
  $("doc-retry").hidden = !d.can_retry;
  $("doc-discard").hidden = !d.can_discard;
  $("doc-receipt").hidden = !receipt;
  app.shown = d;
  $("doc-lines-head").replaceChildren(...linesHead(d));
  $("doc-lines").replaceChildren(...documentLines(d));
}

/** The header of a document's lines: what each column is. */
function linesHead(d) {
  const th = (t, num) => el("th", num ? { class: "num" } : {}, t);
  if (d.kind === "invoice" || d.kind === "credit_note") {
    return [el("tr", {}, th("Description"), th("Qty", 1), th("Unit price", 1), th("Tax", 1), th("Amount", 1))];
  }
  if (d.kind === "order") return [el("tr", {}, th("Item"), th("Qty", 1), th("Price each", 1))];
  return [el("tr", {}, th("What"), th("Amount", 1))];
}

/** A document's lines, with tax and totals as Xero shows them. */
function documentLines(d) {
  const num = (v, strong) => el("td", { class: "num" }, strong ? el("strong", {}, v) : v);
  if (d.kind === "invoice" || d.kind === "credit_note") {
    const lines = (d.body.lines || []).map((l, i) => el("tr", {},
      el("td", {}, l.description, l.tax_type || l.sales_category ? el("div", { class: "muted small" }, [l.sales_category, l.tax_type].filter(Boolean).join(" · ")) : null),
      num(l.quantity ?? "1"), num(formatMoney(l.unit_amount)),
      num(d.totals?.lines[i] ? formatMoney(d.totals.lines[i].tax) : ""),
      num(d.totals?.lines[i] ? formatMoney(d.totals.lines[i].amount) : "")));
    if (d.totals) {
      const inclusive = d.body.tax_mode === "inclusive";
      lines.push(
        el("tr", { class: "sum" }, el("td", { colspan: 4 }, inclusive ? "Subtotal (tax inclusive)" : "Subtotal"), num(formatMoney(d.totals.subtotal))),
        el("tr", {}, el("td", { colspan: 4 }, inclusive ? "Includes tax" : "Tax"), num(formatMoney(d.totals.total_tax))),
        el("tr", {}, el("td", { colspan: 4 }, el("strong", {}, "Total")), num(formatMoney(d.totals.total), true)));
    }
    return lines;
  }
  const row = (k, v, extra = {}) => el("tr", extra, el("td", {}, k), num(formatMoney(v)));
  if (d.kind === "order") {
    const b = d.body;
    const three = (k, qty, v, strong) => el("tr", {}, el("td", {}, k), num(qty), num(formatMoney(v), strong));
    return [
      ...(b.items || []).flatMap((i) => [
        three(el("span", {}, i.name, i.tax_rate ? el("div", { class: "muted small" }, `Tax ${i.tax_rate}%`) : null), i.quantity, i.price),
        ...(i.options || []).map((o) => three(el("span", { class: "muted" }, `+ ${o.name}`), String(o.quantity ?? 1), o.price)),
      ]),
      ...(b.charges || []).map((c) => three(c.name, "", c.amount)),
      ...(b.discounts || []).map((x) => three(`Less ${x.name}`, "", `-${x.amount}`)),
      ...(d.amount ? [el("tr", { class: "sum" }, el("td", { colspan: 2 }, el("strong", {}, "Total")), num(formatMoney(d.amount), true))] : []),
      ...(b.payments || []).map((p) => el("tr", {}, el("td", { colspan: 2 }, `Paid by ${p.tender}`), num(formatMoney(p.amount)))),
      ...(b.seller_notes ? [el("tr", {}, el("td", { colspan: 3, class: "muted" }, `Notes: ${b.seller_notes}`))] : []),
    ];
  }
  if (d.kind === "shift") {
    return [...(d.body.sales || []).map((s) => row(`Sales: ${s.category}`, s.amount)),
      ...(d.body.refunds || []).map((s) => row(`Refunds: ${s.category}`, s.amount)),
      ...(d.body.tenders || []).map((t) => row(`Tender: ${t.tender}`, t.amount)),
      ...(d.body.opening_float ? [row("Opening float (stays in the drawer)", d.body.opening_float)] : []),
      row("Cash counted", d.body.counted_cash),
      ...(d.body.notes ? [el("tr", {}, el("td", { colspan: 2, class: "muted" }, `Notes: ${d.body.notes}`))] : [])];
  }
  return [row(`${d.body.tender} payment`, d.body.amount)];
}

// ---------- receipt ----------

/** A printable receipt of what was sent: number, date, lines, tax and total, as in Xero. */
function showReceipt(d) {
  $("receipt-org").textContent = d.organisation || "";
  $("receipt-number").textContent = d.xero_number || "";
  $("receipt-date").textContent = d.date ? showDate(d.date) : "";
  $("receipt-contact").textContent = d.contact || "";
  $("receipt-reference").textContent = d.reference ? `Reference ${d.reference}` : "";
  const num = (v) => el("td", { class: "num" }, v);
  const lines = (d.body.lines || []).map((l, i) => el("tr", {},
    el("td", {}, l.description), num(l.quantity ?? "1"), num(formatMoney(l.unit_amount)),
    num(d.totals?.lines[i] ? formatMoney(d.totals.lines[i].amount) : "")));
  $("receipt-lines").replaceChildren(...lines);
  const inclusive = d.body.tax_mode === "inclusive";
  $("receipt-totals").replaceChildren(
    el("tr", {}, el("td", { colspan: 3 }, inclusive ? "Subtotal (tax inclusive)" : "Subtotal"), num(formatMoney(d.totals.subtotal))),
    el("tr", {}, el("td", { colspan: 3 }, inclusive ? "Includes tax" : "Tax"), num(formatMoney(d.totals.total_tax))),
    el("tr", { class: "total" }, el("td", { colspan: 3 }, "Total"), num(formatMoney(d.totals.total))));
  $("receipt-paid").textContent = d.state === "paid" ? "Paid" : "";
  $("receipt-dialog").showModal();
}

function wireReceipt() {
  $("receipt-print").addEventListener("click", () => window.print());
}

function wireDocuments() {
  for (const b of document.querySelectorAll(".chips button")) {
    b.addEventListener("click", () => {
      location.hash = b.dataset.state ? `#documents/${b.dataset.state}` : "#documents/";
    });
  }
  $("docs-kind").addEventListener("change", renderDocuments);
  $("docs-text").addEventListener("input", renderDocuments);
  $("doc-fix").addEventListener("click", () => app.shown && (app.shown.kind === "order" ? fixOrder(app.shown) : fixInvoice(app.shown)));
  $("doc-retry").addEventListener("click", async () => {
    const d = app.shown;
    if (!d) return;
    $("doc-retry").disabled = true;
    try {
      const now = await call("retry_document", { clientRef: d.client_ref });
      toast(now.state === "rejected" ? `Refused again: ${now.message}` : "Sending again…");
      await renderDocuments();
    } catch (e) {
      toast(e.advice ? `${e.message} ${e.advice}` : e.message);
    } finally {
      $("doc-retry").disabled = false;
    }
  });
  $("doc-discard").addEventListener("click", () => app.shown && discardDocument(app.shown));
  $("doc-refund").addEventListener("click", () => app.shown && refundSale(app.shown));
  $("doc-receipt").addEventListener("click", () => app.shown && showReceipt(app.shown));
  $("doc-void").addEventListener("click", async () => {
    const d = app.shown;
    if (!d) return;
    const number = d.xero_number ? ` (${d.xero_number})` : "";
    if (!(await confirmDialog(`Void ${d.title || d.client_ref}${number}?`, "It is cancelled in Xero for good. A sale the customer paid is refunded instead.", "Void"))) return;
    try {
      await call("void_document", { clientRef: d.client_ref });
      toast("Voiding in Xero…");
      await renderDocuments();
    } catch (e) {
      toast(e.advice ? `${e.message} ${e.advice}` : e.message);
    }
  });
  $("doc-close").addEventListener("click", () => {
    app.selected = null;
    $("doc-detail").hidden = true;
    for (const tr of $("docs-rows").children) tr.classList.remove("selected");
  });
}

// ---------- settings ----------

function mappingRow(kind, name = "", m = {}) {
  const tr = el("tr", { dataset: { kind } },
    el("td", {}, el("input", { name: "name", value: name, placeholder: kind === "tender" ? "cash, card, …" : "Food, Drinks, …", "aria-label": "Name" })),
    el("td", {}, el("select", { name: "account", "aria-label": "Account" }, el("option", { value: "" }, "Choose an account…"),
      accountOptions(kind === "tender" ? (a) => a.takes_payments : (a) => !a.takes_payments || a.type !== "BANK"))));
  if (kind === "category") tr.append(el("td", {}, el("select", { name: "tax", "aria-label": "Tax rate" }, taxOptions())));
  tr.append(el("td", {}, el("button", { type: "button", class: "remove", title: "Remove", "aria-label": "Remove", onclick: () => tr.remove() }, "×")));
  tr.querySelector("[name=account]").value = m.account_code || "";
  if (kind === "category") tr.querySelector("[name=tax]").value = m.tax_type || "";
  $(kind === "tender" ? "map-tenders" : "map-categories").append(tr);
  return tr;
}

function renderMappings() {
  const m = app.offer?.mappings || {};
  $("map-categories").replaceChildren();
  $("map-tenders").replaceChildren();
  for (const [n, c] of Object.entries(m.categories || {})) mappingRow("category", n, c);
  for (const [n, t] of Object.entries(m.tenders || {})) mappingRow("tender", n, t);
  $("map-over-short").replaceChildren(el("option", { value: "" }, "Not set"), ...accountOptions());
  $("map-over-short").value = m.over_short_account || "";
  $("map-pos-contact").value = m.pos_contact_name || "POS Sales";
  if (app.offerError) say("mappings-message", `Could not read the organisation's accounts: ${app.offerError}`, "bad");
  else say("mappings-message", app.offer?.stale ? "Offline: showing the last copy." : "");
}

async function renderSettings() {
  const s = await call("settings");
  const f = $("settings-form");
  f.proxy_url.value = s.proxy_url;
  f.device_name.value = s.device_name;
  $("settings-device-id").textContent = s.device_id;
  app.pinSet = s.pin_set;
  $("current-pin-label").hidden = !s.pin_set;
  $("pin-save").textContent = s.pin_set ? "Change the PIN" : "Set the PIN";
  $("pin-state").textContent = s.pin_set
    ? "A PIN is set: disconnecting the organisation or unpairing this device asks for it."
    : "No PIN is set: anyone at this till can disconnect the organisation or unpair this device.";
  $("settings-dir").textContent = s.data_dir;
  await loadOffer(false);
  renderMappings();
}

function collectMappings() {
  const out = { categories: {}, tenders: {}, pos_contact_name: $("map-pos-contact").value.trim() };
  for (const tr of $("map-categories").children) {
    const name = tr.querySelector("[name=name]").value.trim();
    if (!name) continue;
    out.categories[name] = { account_code: tr.querySelector("[name=account]").value, tax_type: tr.querySelector("[name=tax]").value };
  }
  for (const tr of $("map-tenders").children) {
    const name = tr.querySelector("[name=name]").value.trim();
    if (!name) continue;
    out.tenders[name] = { account_code: tr.querySelector("[name=account]").value };
  }
  if ($("map-over-short").value) out.over_short_account = $("map-over-short").value;
  return out;
}

/** The refund dialog for a sale: tick lines (quantities editable), the tender and amount paid back. */
async function refundSale(d) {
  const dialog = $("refund-dialog");
  const f = $("refund-form");
  f.reset();
  showProblems(f, []);
  say("refund-message", "");
  $("refund-title").textContent = `Refund ${d.title || d.client_ref}${d.xero_number ? ` (${d.xero_number})` : ""}`;
  const sale = { ...d.body, client_ref: d.client_ref };
  $("refund-lines").replaceChildren(...(sale.lines || []).map((l, i) => el("tr", { dataset: { index: i } },
    el("td", {}, el("input", { type: "checkbox", name: "pick", checked: true, "aria-label": `Refund ${l.description}` })),
    el("td", {}, l.description),
    el("td", {}, el("input", { name: "quantity", class: "qty num", inputmode: "decimal", value: String(l.quantity), "aria-label": "Quantity", "data-field": `lines[${i}].quantity` })),
    el("td", { class: "num" }, formatMoney(l.unit_amount)))));
  const tenders = Object.keys(app.offer?.mappings?.tenders || {});
  f.tender.replaceChildren(...tenders.map((t) => el("option", { value: t }, t)));
  const picks = () => [...$("refund-lines").children]
    .filter((tr) => tr.querySelector("[name=pick]").checked)
    .map((tr) => ({ index: Number(tr.dataset.index), quantity: tr.querySelector("[name=quantity]").value }));
  const today = localDay(await now());
  // The total of what is given back, as Xero will work it out: offered as the amount paid back.
  const total = async (fill) => {
    const draft = refundDraft("preview", sale, picks(), null, today);
    const p = await call("preview_invoice", { draft: { ...draft, type: "sale", status: "authorised", invoice: undefined, refunds: undefined } });
    const t = p.totals?.total;
    $("refund-total").textContent = t ? `Refund total ${formatMoney(t)}` : "";
    if (fill && t) f.amount.value = t;
  };
  f.oninput = (ev) => { if (ev.target.name !== "amount") total(true); };
  total(true);
  const submit = async (ev) => {
    if (ev.submitter?.value !== "ok") return;
    ev.preventDefault();
    try {
      const ref = await call("new_client_ref", { kindWord: "credit_note" });
      const draft = refundDraft(ref, sale, picks(), { tender: f.tender.value, amount: f.amount.value }, today);
      await call("save_document", { kindWord: "credit_note", draft });
      dialog.close();
      toast("Refund saved. Sending to Xero…");
      await renderDocuments();
    } catch (e) {
      showProblems(f, e.problems || []);
      say("refund-message", e.problems?.length ? "Check the fields marked." : e.message, "bad");
    }
  };
  f.addEventListener("submit", submit);
  dialog.addEventListener("close", () => f.removeEventListener("submit", submit), { once: true });
  dialog.showModal();
}

/** Asks why, then discards: the dialog stays open with the problem when the reason is refused. */
function discardDocument(d) {
  const dialog = $("discard-dialog");
  const f = $("discard-form");
  f.reset();
  showProblems(f, []);
  say("discard-message", "");
  $("discard-title").textContent = `Discard ${d.title || d.client_ref}?`;
  const submit = async (ev) => {
    if (ev.submitter?.value !== "ok") return;
    ev.preventDefault();
    try {
      await call("discard_document", { clientRef: d.client_ref, reason: f.reason.value });
      dialog.close();
      toast(`Discarded ${d.client_ref}: it will not be sent.`);
      await renderDocuments();
    } catch (e) {
      // A problem with the reason shows under it; anything else (the proxy refused) here.
      showProblems(f, e.problems || []);
      say("discard-message", e.problems?.length ? "" : [e.message, e.advice].filter(Boolean).join(" "), "bad");
    }
  };
  f.reason.oninput = () => showProblems(f, []);
  f.addEventListener("submit", submit);
  dialog.addEventListener("close", () => f.removeEventListener("submit", submit), { once: true });
  dialog.showModal();
  f.reason.focus();
}

/**
 * Asks for the manager PIN before `act(pin)` (which calls the app); a wrong PIN keeps the dialog
 * open, saying so. Answers whether it went ahead.
 */
function withPin(title, text, ok, act) {
  return new Promise((resolve) => {
    const dialog = $("pin-dialog");
    const f = $("pin-ask-form");
    f.reset();
    showProblems(f, []);
    say("pin-ask-message", "");
    $("pin-ask-title").textContent = title;
    $("pin-ask-text").textContent = text;
    $("pin-ask-ok").textContent = ok;
    let done = false;
    const submit = async (ev) => {
      if (ev.submitter?.value !== "ok") return;
      ev.preventDefault();
      try {
        await act(f.pin.value);
        done = true;
        dialog.close();
      } catch (e) {
        showProblems(f, e.problems || []);
        say("pin-ask-message", e.problems?.length ? "" : e.message, "bad");
      }
    };
    f.addEventListener("submit", submit);
    dialog.addEventListener("close", () => {
      f.removeEventListener("submit", submit);
      resolve(done);
    }, { once: true });
    dialog.showModal();
    f.pin.focus();
  });
}

function confirmDialog(title, text, ok) {
  return new Promise((resolve) => {
    const d = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = ok;
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
    $("confirm-cancel").focus();
  });
}

/** ": Front till (this one), Back office" — the devices a disconnect stops, as the proxy lists
 * them; nothing when it cannot be asked. */
async function stoppingDevices() {
  try {
    // Asked, not waited on: a proxy that does not answer must not hold the dialog back.
    const late = new Promise((_, reject) => setTimeout(() => reject(new Error("late")), 2000));
    const devices = await Promise.race([call("devices"), late]);
    if (!devices.length) return "";
    return `: ${devices.map((d) => (d.this_device ? `${d.device_name} (this one)` : d.device_name)).join(", ")}`;
  } catch {
    return "";
  }
}

function wireSettings() {
  $("settings-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      await call("save_settings", { settings: { proxy_url: f.proxy_url.value, device_name: f.device_name.value } });
      showProblems(f, []);
      say("settings-message", "Saved.", "good");
    } catch (e) {
      showProblems(f, e.problems || []);
      say("settings-message", e.message, "bad");
    }
  });
  $("map-add-category").addEventListener("click", () => mappingRow("category").querySelector("input").focus());
  $("map-add-tender").addEventListener("click", () => mappingRow("tender").querySelector("input").focus());
  $("map-refresh").addEventListener("click", async () => {
    await loadOffer(true);
    renderMappings();
    say("mappings-message", "Read from Xero.", "good");
  });
  $("mappings-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      app.offer = await call("save_mappings", { mappings: collectMappings() });
      renderMappings();
      showProblems(ev.target, []);
      say("mappings-message", "Mappings saved.", "good");
    } catch (e) {
      showProblems(ev.target, e.problems || []);
      say("mappings-message", e.message, "bad");
    }
  });
  $("home-reconnect").addEventListener("click", () => startPairing());
  $("pin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      await call("set_manager_pin", { current: f.current_pin.value || null, new: f.new_pin.value });
      showProblems(f, []);
      f.reset();
      await renderSettings();
      say("pin-message", "The manager PIN is set.", "good");
    } catch (e) {
      showProblems(f, e.problems || []);
      say("pin-message", e.message, "bad");
    }
  });
  $("unpair").addEventListener("click", async () => {
    const own = app.overview?.connection?.device_name;
    const name = own ? `This device, ${own},` : "This device";
    const text = `${name} stops sending to ${P()} until it is connected again. Documents not yet sent stay on it. Other devices of the organisation carry on.`;
    if (app.pinSet) {
      if (await withPin("Unpair this device?", text, "Unpair", (pin) => call("unpair", { pin }))) {
        app.overview = await call("overview");
        location.hash = "";
        await showConnect();
      }
      return;
    }
    if (!(await confirmDialog("Unpair this device?", text, "Unpair"))) return;
    try {
      await call("unpair", { pin: null });
      app.overview = await call("overview");
      location.hash = "";
      await showConnect();
    } catch (e) {
      toast(e.message);
    }
  });
  $("disconnect").addEventListener("click", async () => {
    const org = app.overview?.connection?.organisation_name || "the organisation";
    const text = `Every device of the organisation stops syncing, not just this one${await stoppingDevices()}. Someone will need to connect ${P()} again to resume.`;
    if (app.pinSet) {
      if (await withPin(`Disconnect ${org} from ${P()}?`, text, "Disconnect", (pin) => call("disconnect", { confirm: true, pin }))) {
        toast(`${org} was disconnected from ${P()}.`);
        location.hash = "#home";
        await route();
      }
      return;
    }
    if (!(await confirmDialog(`Disconnect ${org} from ${P()}?`, text, "Disconnect"))) return;
    try {
      await call("disconnect", { confirm: true, pin: null });
      toast(`${org} was disconnected from ${P()}.`);
      location.hash = "#home";
      await route();
    } catch (e) {
      toast(e.message);
    }
  });
}

boot().catch((e) => {
  $("loading").hidden = false;
  $("loading").textContent = `Ledgerlink could not start: ${e.message || e}`;
});
