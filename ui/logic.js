// Pure UI logic: no DOM, no Tauri. Tested with `node --test ui/` (see logic.test.mjs).
// Money never becomes a JavaScript number here: amounts stay the decimal strings the user typed
// and the client core (Rust, exact decimals) answers.

/** Where a problem belongs in a form: "invoice.lines[0].quantity" -> "lines[0].quantity". */
export function fieldPath(problemPath) {
  return String(problemPath || "").replace(/^(invoice|shift|payment|credit_note|order)s?(\[\d+\])?\.?/, "");
}

/** Problems grouped by form field (fieldPath), in order; a problem of the whole form under "". */
export function problemsByField(problems) {
  const out = new Map();
  for (const p of problems || []) {
    const key = fieldPath(p.path);
    if (!out.has(key)) out.set(key, []);
    out.get(key).push(p.message);
  }
  return out;
}

const trim = (v) => (v == null ? "" : String(v).trim());
const optional = (v) => (trim(v) === "" ? undefined : trim(v));

/**
 * The wire document of the invoice form. A line's "choice" is "cat:NAME" (a mapped sales category,
 * whose tax type the mapping gives) or "acc:CODE" (an account, with the line's own tax type).
 */
export function invoiceDraft(v) {
  const draft = {
    client_ref: v.client_ref,
    type: "sale",
    contact: { name: trim(v.contact) },
    date: trim(v.date),
    tax_mode: v.tax_mode || "exclusive",
    status: v.approve === false ? "draft" : "authorised",
    lines: (v.lines || []).map((l) => {
      const line = {
        description: trim(l.description),
        quantity: trim(l.quantity),
        unit_amount: trim(l.unit_amount),
      };
      const choice = trim(l.choice);
      if (choice.startsWith("cat:")) {
        line.sales_category = choice.slice(4);
      } else if (choice.startsWith("acc:")) {
        line.account_code = choice.slice(4);
        if (optional(l.tax_type)) line.tax_type = trim(l.tax_type);
      }
      return line;
    }),
  };
  if (optional(v.email)) draft.contact.email = trim(v.email);
  if (optional(v.due_date)) draft.due_date = trim(v.due_date);
  if (optional(v.reference)) draft.reference = trim(v.reference);
  return draft;
}

/**
 * The invoice form's values for a saved invoice (to fix it): the inverse of invoiceDraft. The
 * form keeps the document's client_ref, so saving it sends a correction of the same document.
 */
export function invoiceFormValues(doc) {
  const d = doc || {};
  return {
    client_ref: d.client_ref,
    contact: d.contact?.name || "",
    email: d.contact?.email || "",
    date: d.date || "",
    due_date: d.due_date || "",
    reference: d.reference || "",
    tax_mode: d.tax_mode || "exclusive",
    approve: d.status !== "draft",
    lines: (d.lines || []).map((l) => ({
      description: l.description || "",
      quantity: l.quantity == null ? "" : String(l.quantity),
      unit_amount: l.unit_amount == null ? "" : String(l.unit_amount),
      choice: l.sales_category ? `cat:${l.sales_category}` : l.account_code ? `acc:${l.account_code}` : "",
      tax_type: l.tax_type || "",
    })),
  };
}

/** Keys in a stable order, so two documents compare by content, not by how they were written. */
function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => [k, canonical(v[k])]));
  }
  return v;
}

/**
 * Whether the invoice form shows everything of this invoice (a bill, a contact number or a line
 * with an item code is not on the form): only then is Fix offered, or saving would drop them.
 */
export function invoiceFitsForm(doc) {
  const withDefaults = { type: "sale", tax_mode: "exclusive", status: "authorised", ...doc };
  const round = invoiceDraft(invoiceFormValues(doc));
  const norm = (d) => JSON.stringify(canonical({ ...d, lines: (d.lines || []).map((l) => ({ ...l, quantity: String(l.quantity), unit_amount: String(l.unit_amount) })) }));
  return norm(round) === norm(withDefaults);
}

/**
 * A refund (a credit note) of some of a sale's lines, as the wire document. `picks` are
 * `{index, quantity}` of the sale's lines (a blank or zero quantity leaves the line out);
 * `refund` is `{tender, amount}` paid back (no amount: nothing paid back, the credit goes to the
 * sale). Amounts and quantities stay the strings they were typed as.
 */
export function refundDraft(clientRef, sale, picks, refund, today) {
  const lines = (picks || [])
    .filter((p) => !/^0*(\.0*)?$/.test(trim(p.quantity)))
    .map((p) => ({ ...sale.lines[p.index], quantity: trim(p.quantity) }));
  const draft = {
    client_ref: clientRef,
    contact: sale.contact,
    date: today,
    tax_mode: sale.tax_mode || "exclusive",
    invoice: { client_ref: sale.client_ref },
    lines,
    refunds: optional(refund?.amount) ? [{ tender: trim(refund.tender), amount: trim(refund.amount) }] : [],
  };
  if (optional(sale.reference)) draft.reference = `Refund: ${trim(sale.reference)}`.slice(0, 239);
  return draft;
}

/** The device's local day of `date` as YYYY-MM-DD (not the UTC day: a morning in Auckland is still
 * yesterday in UTC). */
export function localDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The device's local date and time of `date` as a datetime-local value (YYYY-MM-DDTHH:MM). */
export function localMinute(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${localDay(date)}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value ("2026-11-20T08:00") as UTC RFC 3339, or "" when empty/invalid. */
export function localToUtc(value) {
  if (!trim(value)) return "";
  const d = new Date(value);
  return isNaN(d.getTime()) ? trim(value) : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The providers a till connects to, by the proxy's names, as people write them. */
const PROVIDERS = { xero: "Xero", hubrise: "HubRise" };

/** A provider's name as people write it ("hubrise" -> "HubRise"); Xero when none is known. */
export function providerName(provider) {
  return PROVIDERS[provider] || PROVIDERS.xero;
}

/**
 * The wire document of the order form: items (name, quantity, price, tax rate), payments by
 * tender, a ticket reference, the service type and a note. Rows left blank are left out; what is
 * half filled goes, so its problem shows at its field. A till's order is `completed`.
 */
export function orderDraft(v) {
  const items = (v.items || [])
    .filter((i) => trim(i.name) !== "" || trim(i.price) !== "")
    .map((i) => {
      const item = { name: trim(i.name), quantity: trim(i.quantity), price: trim(i.price) };
      if (optional(i.tax_rate)) item.tax_rate = trim(i.tax_rate);
      return item;
    });
  const payments = (v.payments || [])
    .filter((p) => trim(p.amount) !== "")
    .map((p) => ({ tender: trim(p.tender), amount: trim(p.amount) }));
  const draft = { client_ref: v.client_ref, status: "completed", items };
  if (optional(v.service_type)) draft.service_type = trim(v.service_type);
  if (optional(v.reference)) draft.reference = trim(v.reference);
  if (payments.length) draft.payments = payments;
  if (optional(v.seller_notes)) draft.seller_notes = trim(v.seller_notes);
  return draft;
}

/** The order form's values for a saved order (to fix it): the inverse of orderDraft. */
export function orderFormValues(doc) {
  return {
    reference: doc.reference || "",
    service_type: doc.service_type || "eat_in",
    seller_notes: doc.seller_notes || "",
    items: (doc.items || []).map((i) => ({
      name: i.name || "", quantity: i.quantity ?? "1", price: i.price ?? "", tax_rate: i.tax_rate ?? "",
    })),
    payments: (doc.payments || []).map((p) => ({ tender: p.tender || "", amount: p.amount ?? "" })),
  };
}

/** Whether the order form shows all of a saved order (options, discounts, charges and a customer
 * it does not: such an order is corrected with `ledgerlink push`). */
export function orderFitsForm(doc) {
  return !(doc.discounts?.length || doc.charges?.length || doc.customer || doc.customer_notes
    || (doc.items || []).some((i) => i.options?.length || i.sku)
    || (doc.status && doc.status !== "completed"));
}

/** The wire document of the end-of-shift form; rows with neither name nor amount are left out. */
export function shiftDraft(v) {
  const rows = (list, key) =>
    (list || [])
      .filter((r) => trim(r[key]) !== "" || trim(r.amount) !== "")
      .map((r) => ({ [key]: trim(r[key]), amount: trim(r.amount) }));
  return {
    client_ref: v.client_ref,
    register: trim(v.register),
    opened_at: localToUtc(v.opened_at),
    closed_at: localToUtc(v.closed_at),
    tax_mode: v.tax_mode || "inclusive",
    sales: rows(v.sales, "category"),
    refunds: rows(v.refunds, "category"),
    tenders: rows(v.tenders, "tender"),
    counted_cash: trim(v.counted_cash),
    // The float stays in the drawer: expected cash is the float plus the cash takings.
    opening_float: trim(v.opening_float) || "0",
    ...(optional(v.notes) ? { notes: trim(v.notes) } : {}),
  };
}

/** "12345.6" -> "12,345.60": grouping and two decimals by string work, never through a float. */
export function formatMoney(text) {
  const s = trim(text);
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[2] === "" && (m[3] || "") === "")) return s;
  const [, sign, whole, frac = ""] = m;
  const grouped = (whole || "0").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = frac.length >= 2 ? frac : (frac + "00").slice(0, 2);
  return `${sign}${grouped}.${cents}`;
}

/** "-1.50" -> { label: "Short", amount: "1.50" }; "0.00" -> { label: "Balanced" }. */
export function overShort(text) {
  const s = trim(text);
  if (/^-?0*(\.0*)?$/.test(s) || s === "") return { label: "Balanced", amount: "0.00", tone: "good" };
  if (s.startsWith("-")) return { label: "Short", amount: formatMoney(s.slice(1)), tone: "bad" };
  return { label: "Over", amount: formatMoney(s), tone: "waiting" };
}

/** The device's locale (BCP 47, from the operating system); the web view's default otherwise. */
let locale;
export function setLocale(tag) {
  try {
    locale = tag ? Intl.getCanonicalLocales(tag)[0] : undefined;
  } catch {
    locale = undefined;
  }
}

export function currentLocale() {
  return locale;
}

/** A document's date ("2026-11-21") as a person reads it where the device is: "21 Nov 2026" in
 * New Zealand, "Nov 21, 2026" in the US; never a month-first number that reads as another day. */
export function showDate(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(trim(text));
  if (!m) return text ? showDateTime(text) : "";
  const day = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", year: "numeric" }).format(day);
}

/** A moment (RFC 3339) in the device's zone and locale: "21 Nov 2026, 8:30 am" in New Zealand. */
export function showDateTime(iso) {
  const t = new Date(iso);
  if (isNaN(t.getTime())) return String(iso ?? "");
  return new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", year: "numeric", hour: "numeric", minute: "2-digit" }).format(t);
}

/** "2 minutes ago" style, from an RFC 3339 time. */
export function ago(iso, now = new Date()) {
  if (!iso) return "never";
  const t = new Date(iso);
  if (isNaN(t.getTime())) return "never";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 10) return "just now";
  if (s < 60) return `${s} seconds ago`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? "a minute ago" : `${m} minutes ago`;
  const h = Math.round(m / 60);
  if (h < 24) return h === 1 ? "an hour ago" : `${h} hours ago`;
  return showDateTime(iso);
}

/** The Home screen's four counts from the outbox's states. */
export function homeCounts(c) {
  c = c || {};
  const n = (k) => Number(c[k] || 0);
  return {
    queued: n("pending") + n("queued") + n("sending"),
    sent: n("sent"),
    // What needs attention: refused by Xero or by the proxy, and neither corrected (queued again)
    // nor discarded.
    failed: n("failed") + n("rejected"),
    paid: n("paid"),
  };
}

/** The connection's status in words and tone. */
export function connectionLabel(status, provider) {
  switch (status) {
    case "connected":
      return { label: "Connected", tone: "good", reconnect: false };
    case "needs_reconnect":
      return { label: "Needs reconnecting", tone: "bad", reconnect: true };
    case "disconnected":
      return { label: `Disconnected from ${providerName(provider)}`, tone: "bad", reconnect: true };
    default:
      return { label: "Unknown", tone: "waiting", reconnect: false };
  }
}

/** The offline banner's sentence, or null when online. */
export function offlineNotice(sync) {
  if (!sync || sync.online || !sync.paired) return null;
  const waiting = homeCounts(sync.counts).queued;
  const docs = waiting === 1 ? "1 document waits on this device and goes" : `${waiting} documents wait on this device and go`;
  const retry = sync.retry_in_secs ? ` Trying again in ${sync.retry_in_secs} s.` : "";
  const why = (sync.message || "The proxy cannot be reached.").replace(/\.?$/, ".");
  return `Offline: ${why} ${docs} out when the proxy is back.${retry}`;
}
