// The auditor's page: it trusts the public key the auditor pins and the
// last checkpoint it verified in this browser, nothing the server says.
// Every check runs here: the checkpoint's Ed25519 signature, the
// consistency of the new tree with the one seen before, and an event's
// inclusion. A check starts by clearing what the last one showed, so a
// failure can never sit beside a stale success.

import { leafHash, verifyConsistency, verifyInclusion, equal } from "./merkle.js";
import { b64decode, chain, hex, openCheckpoint, parseKey } from "./note.js";

const $ = (id) => document.getElementById(id);
const store = {
  key: "heed.audit.key",
  checkpoint: "heed.audit.checkpoint",
};

let verified = null; // the checkpoint verified in this session

class ApiError extends Error {}

async function api(path, as = "json") {
  const token = $("apikey").value.trim();
  if (!token) throw new ApiError("enter your auditor API key first (section 1)");
  let r;
  try {
    r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  } catch (e) {
    throw new ApiError("the server could not be reached: " + e.message);
  }
  if (!r.ok) {
    let detail = r.statusText;
    try {
      detail = (await r.json()).detail || detail;
    } catch {
      // not a problem document
    }
    throw new ApiError("the server answered " + r.status + ": " + detail);
  }
  return as === "blob" ? r.blob() : r.json();
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

// A result box: one of pending, ok or fail, said in words as well as in
// colour.
function result(box, kind, text, word = { pending: "Checking", ok: "Verified", fail: "Failed" }[kind]) {
  box.replaceChildren();
  box.className = "result " + kind;
  box.append(el("strong", { text: word.endsWith(":") ? word : word + (kind === "pending" ? "…" : ":") }), " " + (text || ""));
}

function clearResult(box) {
  box.replaceChildren();
  box.className = "result";
}

function step(list, ok, text) {
  list.append(el("li", { class: ok ? "ok" : "fail" }, el("span", { class: "mark", "aria-hidden": "true", text: ok ? "✓" : "✗" }),
    el("span", { class: "visually-hidden", text: ok ? "passed: " : "failed: " }), text));
}

const short = (b) => hex(b).slice(0, 16) + "…";

// --- 1. trust ---------------------------------------------------------

function showTrust() {
  const key = localStorage.getItem(store.key);
  const note = localStorage.getItem(store.checkpoint);
  $("pinned-key").textContent = key || "none yet";
  if (note) {
    const [, size, root] = note.split("\n");
    $("pinned-checkpoint").textContent = "tree of " + size + " events, root " + root;
  } else {
    $("pinned-checkpoint").textContent = "none yet: the first checkpoint you verify becomes it";
  }
  $("forget").disabled = !note;
}

async function pinKey(ev) {
  ev.preventDefault();
  const box = $("key-result");
  clearResult(box);
  try {
    const k = await parseKey($("pubkey").value);
    if (localStorage.getItem(store.key) !== k.text) {
      // What was verified under another key proves nothing under this one.
      verified = null;
      clearResult($("verify-result"));
      $("verify-steps").replaceChildren();
      $("checkpoint-note").textContent = "";
      clearResult($("event-result"));
      $("event-leaf").textContent = "";
    }
    localStorage.setItem(store.key, k.text);
    result(box, "ok", k.id + ". Checkpoints must now be signed by it, or by a key it rotated to.", "Pinned:");
  } catch (e) {
    result(box, "fail", e.message, "Not pinned:");
  }
  showTrust();
}

async function loadKeyFile() {
  const f = $("pubkey-file").files[0];
  if (!f) return;
  const text = await f.text();
  const line = text.split("\n").map((l) => l.trim()).find((l) => /^[^\s+]+\+[0-9a-f]{8}\+\S+$/.test(l));
  $("pubkey").value = line || text.trim();
}

function forget() {
  localStorage.removeItem(store.checkpoint);
  verified = null;
  showTrust();
  clearResult($("verify-result"));
  $("verify-steps").replaceChildren();
  result($("key-result"), "ok", "the next checkpoint you verify becomes your last-seen checkpoint.", "Forgotten:");
}

// --- 2. verify ----------------------------------------------------------

async function verifyLatest() {
  const box = $("verify-result");
  const steps = $("verify-steps");
  verified = null;
  steps.replaceChildren();
  $("checkpoint-note").textContent = "";
  result(box, "pending", "");
  try {
    const keyText = localStorage.getItem(store.key);
    if (!keyText) throw new Error("pin the ledger's public key first (section 1)");
    const trusted = await parseKey(keyText);
    const cp = await api("/v1/audit/checkpoint");
    const keys = await chain(trusted, cp.rotations || []);
    let latest;
    try {
      latest = await openCheckpoint(cp.note || "", keys);
    } catch (e) {
      step(steps, false, "Signature: " + e.message);
      throw e;
    }
    $("checkpoint-note").textContent = latest.note;
    const rotated = latest.key.text !== trusted.text ? ", to which your pinned key " + trusted.id + " rotated (each rotation signed by the old key and the new)" : ", the key you pinned";
    step(steps, true, "Signature: the checkpoint of " + latest.size + " events is signed by " + latest.key.id + rotated + ".");

    const pinnedNote = localStorage.getItem(store.checkpoint);
    if (!pinnedNote) {
      step(steps, true, "Consistency: no checkpoint was seen before in this browser; this one becomes the reference the next check starts from.");
    } else {
      let old;
      try {
        old = await openCheckpoint(pinnedNote, keys);
      } catch (e) {
        step(steps, false, "Your last-seen checkpoint: " + e.message + ". If you pinned another key on purpose, forget the last-seen checkpoint.");
        throw new Error("your last-seen checkpoint does not verify with the pinned key");
      }
      if (latest.size < old.size) {
        step(steps, false, "Consistency: the server's newest tree (" + latest.size + " events) is smaller than the one you saw before (" + old.size + "): events were removed.");
        throw new Error("the log shrank since you last checked it");
      }
      if (latest.size === old.size) {
        if (!equal(latest.root, old.root)) {
          step(steps, false, "Consistency: the tree of " + old.size + " events now has another root than the one you saw: the log was rewritten.");
          throw new Error("the log was rewritten since you last checked it");
        }
        step(steps, true, "Consistency: the same tree of " + old.size + " events you saw before.");
      } else {
        const p = await api("/v1/audit/proofs/consistency?old=" + old.size + "&new=" + latest.size);
        const proof = (p.proof || []).map(b64decode);
        const ok = p.old === old.size && p.new === latest.size && (await verifyConsistency(old.size, latest.size, proof, old.root, latest.root));
        if (!ok) {
          step(steps, false, "Consistency: the proof does not show that the tree of " + latest.size + " events extends the tree of " + old.size + " you saw before. The log may have been rewritten.");
          throw new Error("the new checkpoint is not consistent with the one you saw before");
        }
        step(steps, true, "Consistency: the tree of " + latest.size + " events extends the tree of " + old.size + " events you saw before (proof of " + proof.length + " hashes checked here).");
      }
    }
    localStorage.setItem(store.checkpoint, latest.note);
    verified = latest;
    showTrust();
    result(box, "ok", "the ledger's checkpoint of " + latest.size + " events (root " + short(latest.root) + ") is signed by " + latest.key.id + " and extends everything you saw before. It is now your last-seen checkpoint.");
    return latest;
  } catch (e) {
    verified = null;
    result(box, "fail", e.message);
    return null;
  }
}

// --- 3. browse ----------------------------------------------------------

let pages = []; // the after= of each earlier page, for going back
let current = 0; // the after= of the page shown
let next = null; // the after= of the page after it, if any

function localTime(iso) {
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function searchQuery(after) {
  const q = new URLSearchParams();
  const from = Number($("q-position").value);
  q.set("after", String(after ?? Math.max(0, from - 1)));
  for (const [id, name] of [["q-type", "type"], ["q-tenant", "tenant"], ["q-line", "line"]]) {
    const v = $(id).value.trim();
    if (v) q.set(name, v);
  }
  for (const [id, name] of [["q-since", "since"], ["q-until", "until"]]) {
    const v = $(id).value;
    if (v) q.set(name, new Date(v).toISOString());
  }
  q.set("limit", "25");
  return q;
}

async function search(after) {
  const status = $("search-status");
  const body = $("results-body");
  body.replaceChildren();
  $("more").hidden = true;
  $("back").hidden = true;
  status.textContent = "Searching…";
  try {
    const q = searchQuery(after);
    const page = await api("/v1/audit/log?" + q.toString());
    current = Number(q.get("after"));
    for (const e of page.events) {
      const open = el("button", { type: "button", class: "link", text: "Open", "aria-label": "Open event " + e.position + " and verify it" });
      open.addEventListener("click", () => openEvent(e.position));
      const time = el("time", { datetime: e.recorded_at, title: e.recorded_at, text: localTime(e.recorded_at) });
      const cell = (...kids) => el("td", { role: "cell" }, ...kids);
      body.append(el("tr", { role: "row" }, cell(String(e.position)), cell(time), cell(e.type), cell(e.tenant || ""), cell(e.line || ""), cell(open)));
    }
    next = page.done ? null : page.next;
    $("more").hidden = next === null;
    $("back").hidden = pages.length === 0;
    const where = page.events.length ? "positions " + page.events[0].position + " to " + page.events[page.events.length - 1].position : "no event";
    status.textContent = page.events.length + " events shown (" + where + ")" + (page.done ? "; the end of the log" : "; read up to position " + page.next + " of " + page.head) + ".";
  } catch (e) {
    status.textContent = "Search failed: " + e.message;
  }
}

async function firstPage(ev) {
  ev.preventDefault();
  pages = [];
  await search();
}

async function nextPage() {
  pages.push(current);
  await search(next);
}

async function prevPage() {
  await search(pages.pop());
}

async function openEvent(position) {
  const panel = $("event");
  const box = $("event-result");
  panel.hidden = false;
  $("event-h").textContent = "Event " + position;
  $("event-leaf").textContent = "";
  result(box, "pending", "");
  box.focus();
  try {
    let cp = verified;
    if (!cp || position > cp.size) {
      cp = await verifyLatest();
      if (!cp) throw new Error("the checkpoint did not verify (see section 2), so no inclusion can be checked against it");
    }
    if (position > cp.size) throw new Error("event " + position + " is not yet covered by a signed checkpoint");
    const p = await api("/v1/audit/proofs/inclusion?position=" + position + "&size=" + cp.size);
    if (p.position !== position || p.size !== cp.size) throw new Error("the server answered for another position or tree size");
    let leaf;
    try {
      leaf = JSON.parse(p.leaf);
    } catch {
      throw new Error("the server's leaf is not an event");
    }
    if (leaf.position !== position) throw new Error("the server sent the event at position " + leaf.position + ", not " + position);
    const ok = await verifyInclusion(await leafHash(p.leaf), position - 1, cp.size, (p.proof || []).map(b64decode), cp.root);
    if (!ok) throw new Error("the proof does not lead from this event to the root of the checkpoint you verified: the event is not in the signed log as shown");
    $("event-leaf").textContent = JSON.stringify(leaf, null, 2);
    result(box, "ok", "event " + position + " (" + leaf.type + ") is in the tree of " + cp.size + " events signed by " + cp.key.id + ". Below is the event exactly as the tree holds it.");
  } catch (e) {
    $("event-leaf").textContent = "";
    result(box, "fail", e.message);
  }
}

// --- 4. report ----------------------------------------------------------

const charts = [
  { id: "contacts", title: "Contacts per line and channel", cols: ["Business", "Line", "Channel", "Contacts"],
    rows: (r) => r.contacts.map((c) => [c.tenant, c.line, c.channel, c.contacts]) },
  { id: "denials", title: "Denials by rule", cols: ["Rule", "Reminders refused", "Calls refused"],
    rows: (r) => r.denials.map((d) => [d.rule, d.reminders, d.calls]) },
  { id: "complaints", title: "Complaint rate per line", cols: ["Business", "Line", "Contacts", "Complaints", "Per 10,000", "Against the threshold", "Suspensions"],
    rows: (r) => r.complaints.map((l) => [l.tenant, l.line || "(none named)", l.contacts, l.complaints, per10k(l.rate),
      l.over ? "over: the rule suspends it" : l.at_threshold ? "at or over the rate, with fewer than " + r.rules.min_contacts + " contacts" : "under", l.suspensions]) },
  { id: "opt-outs", title: "Opt-outs and contacts after them", cols: ["Opt-out at", "Business", "Via", "Covers", "Contacts after it", "Time to the last contact after it"],
    rows: (r) => r.opt_outs.map((o) => [localTime(o.occurred_at), o.tenant || "every business", o.via, covers(o), o.contacts_after,
      o.contacts_after ? gap(o.gap_seconds || 0) : "none"]) },
  { id: "reminders", title: "Reminders by outcome", cols: ["Outcome", "Reminders"],
    rows: (r) => r.reminders.map((o) => [o.outcome, o.reminders]) },
];

function per10k(rate) {
  return (Math.round(rate * 10000 * 100) / 100).toString();
}

function covers(o) {
  const ch = o.channels.length ? o.channels.join(", ") : "every channel";
  const pu = o.purposes.length ? o.purposes.join(", ") : "every purpose";
  return ch + "; " + pu;
}

function gap(s) {
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  if (s < 86400) return (Math.round(s / 360) / 10) + " h";
  return (Math.round(s / 8640) / 10) + " days";
}

let objectURLs = [];

function dayStart(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d);
}

async function makeReport(ev) {
  ev.preventDefault();
  const status = $("report-status");
  const out = $("report-body");
  out.replaceChildren();
  objectURLs.forEach((u) => URL.revokeObjectURL(u));
  objectURLs = [];
  $("print").disabled = true;
  status.textContent = "Computing the report…";
  try {
    const from = dayStart($("r-from").value);
    const to = dayStart($("r-to").value);
    to.setDate(to.getDate() + 1);
    if (!(to > from)) throw new Error("the period ends before it starts");
    const q = "from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
    const r = await api("/v1/audit/reports?" + q);
    out.append(el("h3", { text: "heed audit report" }));
    const facts = el("dl", { class: "facts" });
    const fact = (k, v) => facts.append(el("dt", { text: k }), el("dd", { text: v }));
    fact("Period", localTime(r.from) + " to " + localTime(r.to) + ", by the time the ledger recorded each event (UTC " + r.from + " to " + r.to + ")");
    fact("Events", r.events ? r.events + " events, positions " + r.first + " to " + r.last : "none recorded in the period");
    fact("Log head when computed", String(r.head));
    fact("Suspension threshold", per10k(r.rules.threshold) + " per 10,000 contacts: a line with at least " + r.rules.min_contacts.toLocaleString() +
      " contacts in " + r.rules.window_days + " days whose complaints reach that rate is suspended");
    fact("Checkpoint verified in this browser", verified ? "tree of " + verified.size + " events, root " + hex(verified.root) + ", signed by " + verified.key.id +
      (verified.size >= r.last ? " (covers every event of the report)" : " (does not yet cover the report's last events)") : "none: verify one in section 2 before filing this report");
    fact("Made", localTime(new Date().toISOString()) + " (" + Intl.DateTimeFormat().resolvedOptions().timeZone + ")");
    out.append(facts);
    for (const c of charts) {
      const sec = el("section", { class: "chart", "aria-labelledby": "h-" + c.id });
      sec.append(el("h4", { id: "h-" + c.id, text: c.title }));
      const [svg, csv] = await Promise.all([api("/v1/audit/reports/" + c.id + "/chart.svg?" + q, "blob"), api("/v1/audit/reports/" + c.id + "/data.csv?" + q, "blob")]);
      const svgURL = URL.createObjectURL(svg);
      const csvURL = URL.createObjectURL(csv);
      objectURLs.push(svgURL, csvURL);
      sec.append(el("img", { src: svgURL, alt: c.title + ": bar chart; the numbers are in the table below.", class: "chart-img" }));
      const rows = c.rows(r);
      // Explicit roles keep the table a table for screen readers when a
      // phone's style lays its rows out as cards.
      const table = el("table", { class: "cards", role: "table" }, el("caption", { text: c.title + " (" + rows.length + (rows.length === 1 ? " row)" : " rows)") }));
      table.append(el("thead", { role: "rowgroup" }, el("tr", { role: "row" }, ...c.cols.map((h) => el("th", { scope: "col", role: "columnheader", text: h })))));
      const tb = el("tbody", { role: "rowgroup" });
      for (const row of rows) tb.append(el("tr", { role: "row" }, ...row.map((v, i) => el("td", { role: "cell", "data-label": c.cols[i], text: String(v) }))));
      table.append(tb);
      sec.append(el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": c.title + ", table" }, table));
      const stamp = r.from.slice(0, 10) + "_" + r.to.slice(0, 10);
      sec.append(el("p", { class: "download" }, el("a", { href: csvURL, download: "heed-" + c.id + "-" + stamp + ".csv", text: "Download the numbers of “" + c.title + "” (CSV)" })));
      if (c.id === "opt-outs") {
        const list = await api("/v1/audit/reports/opt-out-list/data.csv?" + q, "blob");
        const u = URL.createObjectURL(list);
        objectURLs.push(u);
        sec.querySelector(".download").append(" · ", el("a", { href: u, download: "heed-opt-out-list-" + stamp + ".csv", text: "Download every opt-out with the contacts after it (CSV)" }));
        const after = r.opt_outs.filter((o) => o.contacts_after > 0).length;
        const said = after === 1 ? "1 opt-out was followed by a contact it covers." : after + " opt-outs were followed by a contact they cover.";
        sec.insertBefore(el("p", { class: after ? "result fail" : "result ok", text: after ? said : "No opt-out was followed by a contact it covers." }), sec.children[1]);
      }
      out.append(sec);
    }
    status.textContent = "Report ready: " + r.events + " events.";
    $("print").disabled = false;
  } catch (e) {
    out.replaceChildren();
    status.textContent = "The report failed: " + e.message;
  }
}

// --- wiring -------------------------------------------------------------

function isoDay(d) {
  return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
}

function init() {
  const saved = localStorage.getItem(store.key);
  if (saved) $("pubkey").value = saved;
  showTrust();
  const today = new Date();
  const monthAgo = new Date(today);
  monthAgo.setDate(today.getDate() - 30);
  $("r-from").value = isoDay(monthAgo);
  $("r-to").value = isoDay(today);
  $("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;
  $("trust-form").addEventListener("submit", pinKey);
  $("pubkey-file").addEventListener("change", loadKeyFile);
  $("forget").addEventListener("click", forget);
  $("verify").addEventListener("click", verifyLatest);
  $("search").addEventListener("submit", firstPage);
  $("more").addEventListener("click", nextPage);
  $("back").addEventListener("click", prevPage);
  $("report-form").addEventListener("submit", makeReport);
  $("print").addEventListener("click", () => window.print());
  document.body.dataset.ready = "true";
}

init();
