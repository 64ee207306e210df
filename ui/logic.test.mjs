// Unit tests of the UI's pure logic: `node --test ui/` (run by ./scripts/test).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  fieldPath, problemsByField, invoiceDraft, shiftDraft, localToUtc, formatMoney, overShort, ago,
  homeCounts, connectionLabel, offlineNotice, invoiceFormValues, invoiceFitsForm, refundDraft,
  localDay, localMinute, setLocale, showDate, showDateTime, providerName, orderDraft,
  orderFormValues, orderFitsForm,
} from "./logic.js";

test("problems land on their form fields", () => {
  assert.equal(fieldPath("invoice.lines[0].quantity"), "lines[0].quantity");
  assert.equal(fieldPath("invoices[2].contact.name"), "contact.name");
  assert.equal(fieldPath("shift.counted_cash"), "counted_cash");
  assert.equal(fieldPath("invoice"), "");
  const m = problemsByField([
    { path: "invoice.contact.name", message: "is required" },
    { path: "invoice.lines[1].unit_amount", message: "'x' is not a decimal number" },
    { path: "invoice.contact.name", message: "second" },
  ]);
  assert.deepEqual(m.get("contact.name"), ["is required", "second"]);
  assert.deepEqual(m.get("lines[1].unit_amount"), ["'x' is not a decimal number"]);
});

test("the invoice form becomes the wire document, amounts kept as typed strings", () => {
  const d = invoiceDraft({
    client_ref: "invoice-1", contact: " Harbour Cafe ", email: "", date: "2026-11-20", due_date: "",
    reference: "Table 7", tax_mode: "inclusive", approve: true,
    lines: [
      { description: "Flat white", quantity: "2", unit_amount: "4.80", choice: "cat:Drinks", tax_type: "IGNORED" },
      { description: "Muffin", quantity: "1", unit_amount: " 3.95 ", choice: "acc:200", tax_type: "OUTPUT2" },
    ],
  });
  assert.deepEqual(d, {
    client_ref: "invoice-1", type: "sale", contact: { name: "Harbour Cafe" }, date: "2026-11-20",
    tax_mode: "inclusive", status: "authorised", reference: "Table 7",
    lines: [
      { description: "Flat white", quantity: "2", unit_amount: "4.80", sales_category: "Drinks" },
      { description: "Muffin", quantity: "1", unit_amount: "3.95", account_code: "200", tax_type: "OUTPUT2" },
    ],
  });
  assert.equal(invoiceDraft({ lines: [], approve: false }).status, "draft");
});

test("the shift form drops empty rows and sends times in UTC", () => {
  const d = shiftDraft({
    client_ref: "shift-1", register: "Register 1", opened_at: "", closed_at: "",
    sales: [{ category: "Food", amount: "100" }, { category: "", amount: "" }],
    refunds: [], tenders: [{ tender: "cash", amount: "60" }], counted_cash: "59.50",
  });
  assert.deepEqual(d.sales, [{ category: "Food", amount: "100" }]);
  assert.deepEqual(d.tenders, [{ tender: "cash", amount: "60" }]);
  assert.equal(d.counted_cash, "59.50");
  assert.equal(d.opening_float, "0", "no float given: none");
  assert.equal(d.notes, undefined);
  const floated = shiftDraft({ register: "R", opened_at: "", closed_at: "", sales: [], refunds: [], tenders: [],
    counted_cash: "150", opening_float: " 100.00 ", notes: " Till roll " });
  assert.equal(floated.opening_float, "100.00");
  assert.equal(floated.notes, "Till roll");
  // 08:00 on the device is whatever UTC time that is where the test runs (Auckland: the 19th).
  assert.equal(localToUtc("2026-11-20T08:00"), new Date(2026, 10, 20, 8, 0).toISOString().replace(/\.\d{3}Z$/, "Z"));
});

test("money is formatted without floats", () => {
  assert.equal(formatMoney("1234567.5"), "1,234,567.50");
  assert.equal(formatMoney("0.1"), "0.10");
  assert.equal(formatMoney("-12.345"), "-12.345");
  assert.equal(formatMoney("9007199254740993.01"), "9,007,199,254,740,993.01");
  assert.equal(formatMoney("abc"), "abc");
  assert.deepEqual(overShort("-1.50"), { label: "Short", amount: "1.50", tone: "bad" });
  assert.deepEqual(overShort("0.00"), { label: "Balanced", amount: "0.00", tone: "good" });
  assert.equal(overShort("2").label, "Over");
});

test("a saved invoice fills the form it came from, and only such an invoice is fixed in the form", () => {
  const doc = {
    client_ref: "till-0007", type: "sale", contact: { name: "Harbour Cafe", email: "a@b.c" }, date: "2026-11-20",
    tax_mode: "inclusive", status: "authorised", reference: "Table 4",
    lines: [
      { description: "Flat white", quantity: "2", unit_amount: "4.80", sales_category: "Drinks" },
      { description: "Muffin", quantity: 1, unit_amount: "3.95", account_code: "200", tax_type: "OUTPUT2" },
    ],
  };
  const v = invoiceFormValues(doc);
  assert.equal(v.client_ref, "till-0007");
  assert.equal(v.lines[0].choice, "cat:Drinks");
  assert.equal(v.lines[1].choice, "acc:200");
  assert.equal(v.lines[1].quantity, "1");
  assert.equal(invoiceDraft(v).client_ref, "till-0007", "saving the form corrects the same document");
  assert.equal(invoiceFitsForm(doc), true);
  assert.equal(invoiceFitsForm({ ...doc, type: "bill" }), false, "a bill is not on the form");
  assert.equal(invoiceFitsForm({ ...doc, contact: { name: "X", contact_number: "C-1" } }), false);
});

test("a refund takes the picked lines of the sale and what was paid back", () => {
  const sale = {
    client_ref: "till-0042", contact: { name: "Harbour Cafe" }, tax_mode: "inclusive", reference: "Table 7",
    lines: [
      { description: "Flat white", quantity: "2", unit_amount: "4.80", sales_category: "Drinks" },
      { description: "Muffin", quantity: "1", unit_amount: "3.95", account_code: "200", tax_type: "OUTPUT2" },
    ],
  };
  const d = refundDraft("refund-1", sale, [{ index: 0, quantity: "1" }, { index: 1, quantity: "0" }], { tender: "card", amount: "4.80" }, "2026-11-21");
  assert.equal(d.lines.length, 1, "a zero quantity leaves the line out");
  assert.deepEqual(d.lines[0], { description: "Flat white", quantity: "1", unit_amount: "4.80", sales_category: "Drinks" });
  assert.deepEqual(d.invoice, { client_ref: "till-0042" });
  assert.deepEqual(d.refunds, [{ tender: "card", amount: "4.80" }]);
  assert.equal(d.tax_mode, "inclusive");
  assert.equal(d.reference, "Refund: Table 7");
  assert.deepEqual(refundDraft("r2", sale, [{ index: 1, quantity: "1" }], { tender: "cash", amount: " " }, "2026-11-21").refunds, [],
    "nothing paid back: the credit goes to the sale");
});

test("the forms fill the device's local day and time, not UTC's", () => {
  const d = new Date(2026, 10, 21, 8, 5); // 21 Nov 2026 08:05 wherever the test runs
  assert.equal(localDay(d), "2026-11-21");
  assert.equal(localMinute(d), "2026-11-21T08:05");
});

test("states and counts read as people say them", () => {
  assert.deepEqual(homeCounts({ pending: 2, queued: 1, sending: 1, sent: 5, failed: 1, rejected: 2, paid: 3 }),
    { queued: 4, sent: 5, failed: 3, paid: 3 });
  assert.equal(connectionLabel("needs_reconnect").reconnect, true);
  assert.equal(connectionLabel("connected").label, "Connected");
  assert.equal(connectionLabel("disconnected").label, "Disconnected from Xero");
  assert.equal(connectionLabel("disconnected", "hubrise").label, "Disconnected from HubRise");
  assert.equal(offlineNotice({ online: true, paired: true }), null);
  const n = offlineNotice({ online: false, paired: true, message: "The proxy at http://x cannot be reached: refused", retry_in_secs: 4, counts: { pending: 3 } });
  assert.equal(n, "Offline: The proxy at http://x cannot be reached: refused. 3 documents wait on this device and go out when the proxy is back. Trying again in 4 s.");
  assert.match(offlineNotice({ online: false, paired: true, counts: { pending: 1 } }), /1 document waits on this device and goes out/);
  assert.match(n, /Trying again in 4 s/);
  const now = new Date("2026-11-22T12:00:00Z");
  assert.equal(ago("2026-11-22T11:58:00Z", now), "2 minutes ago");
  assert.equal(ago(null, now), "never");
});

test("dates read as the device's locale says, never month-first for a New Zealand till", () => {
  setLocale("en-NZ");
  assert.equal(showDate("2026-11-21"), "21 Nov 2026");
  assert.match(showDateTime("2026-11-20T19:30:00Z"), /Nov 2026/);
  setLocale("en-US");
  assert.equal(showDate("2026-11-21"), "Nov 21, 2026");
  setLocale("not a locale!");
  assert.match(showDate("2026-11-21"), /2026/, "an unusable locale falls back to the default");
  setLocale(null);
});

test("a provider is named as people write it", () => {
  assert.equal(providerName("hubrise"), "HubRise");
  assert.equal(providerName("xero"), "Xero");
  assert.equal(providerName(undefined), "Xero");
});

test("the order form becomes the wire document; blank rows are left out, half-filled ones kept", () => {
  const d = orderDraft({
    client_ref: "order-1", reference: " Table 7 ", service_type: "eat_in", seller_notes: "",
    items: [
      { name: "Croque monsieur", quantity: "2", price: "8.90", tax_rate: "10" },
      { name: "", quantity: "1", price: "", tax_rate: "" },
      { name: "Espresso", quantity: "1", price: "", tax_rate: "" },
    ],
    payments: [{ tender: "Card", amount: "17.80" }, { tender: "Cash", amount: "" }],
  });
  assert.deepEqual(d, {
    client_ref: "order-1", status: "completed", service_type: "eat_in", reference: "Table 7",
    items: [
      { name: "Croque monsieur", quantity: "2", price: "8.90", tax_rate: "10" },
      { name: "Espresso", quantity: "1", price: "" },
    ],
    payments: [{ tender: "Card", amount: "17.80" }],
  });
  assert.equal(fieldPath("order.items[1].price"), "items[1].price");
  assert.equal(fieldPath("orders[0].payments[0].amount"), "payments[0].amount");
});

test("a saved order fills the form again, unless it has what the form does not show", () => {
  const doc = { client_ref: "o-1", status: "completed", reference: "T1", service_type: "collection",
    items: [{ name: "Tea", quantity: "1", price: "3.00" }], payments: [{ tender: "Cash", amount: "3.00" }] };
  const v = orderFormValues(doc);
  assert.deepEqual(v.items, [{ name: "Tea", quantity: "1", price: "3.00", tax_rate: "" }]);
  assert.equal(v.service_type, "collection");
  assert.deepEqual(orderDraft({ client_ref: "o-1", ...v }), doc);
  assert.equal(orderFitsForm(doc), true);
  assert.equal(orderFitsForm({ ...doc, discounts: [{ name: "Loyalty", amount: "1.00" }] }), false);
  assert.equal(orderFitsForm({ ...doc, items: [{ name: "Tea", options: [{ name: "Milk", price: "0.20" }] }] }), false);
});
