// pfnode console: read-only views over the node's API, with the caller's bearer token.
//
// Every request sends `Authorization: Bearer <token>` (kept in sessionStorage). The flag
// stream is read with fetch() and parsed here, since EventSource cannot send that header.
// What a panel shows is what the API answers to this token: a bank sees its own loans and
// flags; panels for the regulator's paths are not shown (nor requested) for other roles.
// Everything from the node is put in the page as text, never as HTML.

import { barChart, formatAmount } from "./charts.js";
import { checkEntryProof, parseCheckpoint } from "./verify.js";

const TOKEN_KEY = "pfnode.token";
const MAX_CARDS = 200; // newest flags shown (and checked); the audit report has them all
const MAX_ROWS = 500; // newest loans shown
const MAX_BARS = 12; // largest groups per chart and currency
const REFRESH_MS = 3000;
const CHECKPOINT_MAX_AGE_MS = 1000;

const state = {
  token: null,
  me: null,
  flags: new Map(), // flag id -> flag
  cards: new Map(), // flag id -> <li>
  entries: new Map(), // entry hash -> Promise<entry answer>
  blocks: new Map(), // height -> Promise<block>
  checks: new Map(), // entry hash -> Promise<proof check>
  checkpoint: null,
  checkpointAt: 0,
  dialogHash: null,
};

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (/^data[A-Z]/.test(key)) node.setAttribute(key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function short(hash, n = 12) {
  return hash ? `${hash.slice(0, n)}…` : "";
}

function formatTs(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : `${ts.slice(0, 10)} ${ts.slice(11, 23)} UTC`;
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  const response = await fetch(path, { cache: "no-store", ...options, headers });
  if (response.status === 401) {
    signOut("The node no longer accepts this token (401).");
    throw new ApiError(401, "unauthenticated");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      /* not problem+json */
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();

function getEntry(hash, fresh = false) {
  if (fresh || !state.entries.has(hash)) {
    state.entries.set(hash, getJson(`/v1/ledger/entries/${hash}`));
  }
  return state.entries.get(hash);
}

function getBlock(height) {
  if (!state.blocks.has(height)) state.blocks.set(height, getJson(`/v1/ledger/blocks/${height}`));
  return state.blocks.get(height);
}

async function getCheckpoint(maxAgeMs = 0) {
  if (state.checkpoint && Date.now() - state.checkpointAt <= maxAgeMs) return state.checkpoint;
  const note = await (await api("/v1/ledger/checkpoint")).text();
  state.checkpoint = parseCheckpoint(note);
  state.checkpointAt = Date.now();
  return state.checkpoint;
}

async function checkEntry(answer) {
  let checkpoint = null;
  try {
    checkpoint = await getCheckpoint(CHECKPOINT_MAX_AGE_MS);
  } catch {
    /* no checkpoint yet: the step says so */
  }
  const consistency = (from, to) => getJson(`/v1/ledger/consistency?from=${from}&to=${to}`);
  return checkEntryProof(answer, checkpoint, consistency);
}

function getCheck(hash) {
  if (!state.checks.has(hash)) state.checks.set(hash, getEntry(hash).then(checkEntry));
  return state.checks.get(hash);
}

// ---------------------------------------------------------------- signing in and out

async function whoIs(token) {
  const response = await fetch("/v1/me", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  if (response.status === 401) return null;
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  return response.json();
}

async function onLogin(event) {
  event.preventDefault();
  const token = $("#token").value.trim();
  $("#login-error").textContent = "";
  try {
    const me = await whoIs(token);
    if (me === null) {
      $("#login-error").textContent = "This node does not know that token.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    start(token, me);
  } catch (err) {
    $("#login-error").textContent = `The node did not answer: ${err.message}`;
  }
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  if (message) sessionStorage.setItem("pfnode.message", message);
  location.replace("/");
}

function showLogin() {
  $("#login").hidden = false;
  $("#login-error").textContent = sessionStorage.getItem("pfnode.message") || "";
  sessionStorage.removeItem("pfnode.message");
  $("#token").focus();
}

function start(token, me) {
  state.token = token;
  state.me = me;
  document.body.dataset.role = me.role;
  $("#login").hidden = true;
  $("#console").hidden = false;
  $("#who").hidden = false;
  $("#who-org").textContent = me.org;
  $("#who-role").textContent = me.role;
  $("#title").textContent = me.role === "regulator" ? "regulator's console" : `${me.org}'s view`;
  for (const panel of document.querySelectorAll("[data-roles]")) {
    panel.hidden = !panel.dataset.roles.split(" ").includes(me.role);
  }
  const isRegulator = me.role === "regulator";
  streamFlags();
  repeat(refreshHealth, REFRESH_MS);
  repeat(refreshLoans, REFRESH_MS);
  if (isRegulator) {
    repeat(refreshExposures, REFRESH_MS);
    setAuditDefaults();
  }
  window.addEventListener("hashchange", onHash);
  onHash();
}

function repeat(task, ms) {
  const run = async () => {
    try {
      await task();
    } catch (err) {
      console.warn(task.name, err);
    }
    setTimeout(run, ms);
  };
  run();
}

// ---------------------------------------------------------------- the flag stream

function setStreamState(name) {
  const pill = $("#stream-state");
  pill.dataset.state = name;
  pill.textContent = name;
}

/** Read /v1/flags/stream with fetch (so it carries the bearer token) and parse SSE. */
async function streamFlags(delay = 500) {
  setStreamState("connecting");
  try {
    const response = await api("/v1/flags/stream", { headers: { Accept: "text/event-stream" } });
    setStreamState("live");
    await loadFlags(); // what committed before the stream opened, or while it was down
    delay = 500;
    await readEvents(response.body, (event) => {
      if (event.type === "flag") addFlag(JSON.parse(event.data), true);
    });
  } catch (err) {
    if (err.status === 401) return;
    console.warn("flag stream", err);
  }
  setStreamState("reconnecting");
  setTimeout(() => streamFlags(Math.min(delay * 2, 10000)), delay);
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let held = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += held + value;
    held = buffer.endsWith("\r") ? "\r" : ""; // maybe half of a CRLF
    if (held) buffer = buffer.slice(0, -1);
    buffer = buffer.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) onEvent(event);
    }
  }
}

function parseEvent(block) {
  const event = { type: "message", data: [], id: null };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a comment: the keep-alive ping
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "data") event.data.push(value);
    else if (field === "id") event.id = value;
  }
  if (!event.data.length) return null;
  return { ...event, data: event.data.join("\n") };
}

async function loadFlags() {
  for (const flag of await getJson("/v1/flags")) addFlag(flag, false);
}

// ---------------------------------------------------------------- flags

function normalise(flag, live) {
  const id = flag.flag_id || flag.id;
  const known = state.flags.get(id);
  const position = flag.position ?? [...state.flags.values()].filter((f) => f.entry_hash === flag.entry_hash).length;
  return {
    ...known,
    ...flag,
    id,
    entry_type: flag.entry_type || flag.type,
    status: flag.status || known?.status || "open",
    position: known?.position ?? position,
    related: flag.related || [],
    live: known?.live || live,
    receivedAt: known?.receivedAt ?? (live ? Date.now() : null),
  };
}

function addFlag(raw, live) {
  const flag = normalise(raw, live);
  const isNew = !state.flags.has(flag.id);
  state.flags.set(flag.id, flag);
  if (isNew) {
    state.cards.set(flag.id, flagCard(flag));
  } else {
    state.cards.get(flag.id).querySelector(".flag-status").textContent = flag.status;
  }
  renderFlags();
}

function renderFlags() {
  const ordered = [...state.flags.values()].sort((a, b) => b.index - a.index || a.position - b.position);
  const list = $("#flag-list");
  const shown = ordered.slice(0, MAX_CARDS);
  list.replaceChildren(...shown.map((f) => state.cards.get(f.id)));
  for (const flag of shown) {
    const card = state.cards.get(flag.id);
    if (card.dataset.enriched) continue;
    card.dataset.enriched = "yes";
    enrich(flag, card); // only what is on screen costs requests
  }
  $("#no-flags").hidden = ordered.length > 0;
  const critical = ordered.filter((f) => f.severity === "critical").length;
  $("#flag-count").textContent = ordered.length ? `${ordered.length} (${critical} critical)` : "";
}

function flagCard(flag) {
  const latency = el("span", { class: "latency", dataField: "latency", title: "block time − entry ts, both on the ledger" }, "flagged in …");
  return el(
    "li",
    { class: `flag sev-${flag.severity}${flag.live ? " live" : ""}`, dataFlagId: flag.id, dataCode: flag.code, dataEntry: flag.entry_hash },
    el(
      "div",
      { class: "flag-head" },
      el("span", { class: "sev" }, flag.severity),
      el("strong", { class: "code" }, flag.code),
      el("span", { class: "flag-status pill" }, flag.status),
      latency,
      el("time", { datetime: flag.ts }, formatTs(flag.ts)),
    ),
    el("p", { class: "detail" }, flag.detail),
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Receivable"),
      el("dd", { dataField: "receivable" }, "…"),
      el("dt", {}, "Entry"),
      el("dd", { dataField: "entry" }, flag.entry_type || ""),
      el("dt", {}, "Institutions"),
      el("dd", { dataField: "institutions" }, institutionsText(flag, [])),
      el("dt", {}, "Proofs"),
      el("dd", { dataField: "proofs", class: "proofs" }, proofLink(flag.entry_hash, "this entry")),
    ),
  );
}

function institutionsText(flag, relatedOrgs) {
  const parts = [];
  if (flag.bank) parts.push(`${flag.bank} (drew)`);
  if (flag.insurer) parts.push(`${flag.insurer} (insurer)`);
  for (const org of relatedOrgs) parts.push(`${org} (related entry)`);
  if (!flag.related.length && /another institution/.test(flag.detail)) {
    parts.push("another institution (not named to you)");
  }
  return parts.join(" · ") || "—";
}

function proofLink(hash, label) {
  return el(
    "a",
    { href: `#entry/${hash}`, class: "proof-link", dataHash: hash, title: `entry ${hash}` },
    el("span", { class: "mark", dataVerdict: "pending" }, "…"),
    ` ${label} ${short(hash, 10)}`,
  );
}

function receivableText(body) {
  const rec = body.receivable || {};
  const parts = [];
  if (rec.invoice_no) parts.push(`invoice ${rec.invoice_no}`);
  if (rec.transport_doc_no) parts.push(`B/L ${rec.transport_doc_no}`);
  if (body.notice_no) parts.push(`notice ${body.notice_no}`);
  if (rec.amount) parts.push(formatAmount(rec.amount, rec.currency));
  return parts.join(" · ") || "—";
}

function entryText(answer) {
  const { entry } = answer.entry;
  const body = entry.body;
  const parts = [`${entry.type} by ${entry.org}`];
  if (body.loan_id) parts.push(`loan ${body.loan_id}`);
  if (body.amount) parts.push(formatAmount(body.amount, body.currency));
  parts.push(answer.receipt?.status || "");
  return parts.filter(Boolean).join(" · ");
}

async function enrich(flag, card) {
  const field = (name) => card.querySelector(`[data-field="${name}"]`);
  try {
    const answer = await getEntry(flag.entry_hash);
    field("receivable").textContent = receivableText(answer.entry.entry.body);
    field("entry").textContent = entryText(answer);
    showLatency(flag, field("latency"), answer);
    markProof(card, flag.entry_hash);
    const related = await Promise.all(flag.related.map((h) => getEntry(h).catch(() => null)));
    const orgs = related.filter(Boolean).map((r) => r.entry.entry.org);
    field("institutions").textContent = institutionsText(flag, orgs);
    related.forEach((r, i) => {
      const label = r ? `${r.entry.entry.org}'s ${r.entry.entry.type}` : "related entry";
      field("proofs").append(" ", proofLink(flag.related[i], label));
      markProof(card, flag.related[i]);
    });
  } catch (err) {
    field("receivable").textContent = `not readable: ${err.message}`;
  }
}

async function showLatency(flag, node, answer) {
  const block = await getBlock(answer.height);
  const signed = Date.parse(answer.entry.entry.ts);
  const ms = Date.parse(block.header.time) - signed;
  node.dataset.ms = String(ms);
  node.textContent = `flagged in ${ms} ms`;
  if (flag.receivedAt) {
    node.append(el("span", { class: "muted", title: "arrival on this page − entry ts (this computer's clock against the node's)" }, ` · here after ${flag.receivedAt - signed} ms`));
  }
}

async function markProof(card, hash) {
  const mark = card.querySelector(`.proof-link[data-hash="${hash}"] .mark`);
  try {
    const check = await getCheck(hash);
    setMark(mark, check.ok);
  } catch (err) {
    setMark(mark, false, err.message);
  }
}

function setMark(mark, ok, why = "") {
  mark.dataset.verdict = ok ? "ok" : "failed";
  mark.textContent = ok ? "✓" : "✗";
  mark.title = ok ? "inclusion proof verified in this browser" : `proof check failed ${why}`;
}

// ---------------------------------------------------------------- the proof dialog

function onHash() {
  const match = /^#entry\/([0-9a-f]{64})$/.exec(location.hash);
  if (match) openProof(match[1]);
}

async function openProof(hash) {
  const dialog = $("#proof-dialog");
  state.dialogHash = hash;
  $("#proof-title").textContent = `Entry ${short(hash, 16)}`;
  setVerdict("pending", "Checking…");
  $("#proof-facts").replaceChildren();
  $("#proof-steps").replaceChildren();
  $("#proof-raw").textContent = "";
  if (!dialog.open) dialog.showModal();
  try {
    const answer = await getEntry(hash, true); // a fresh proof against the current root
    if (state.dialogHash !== hash) return;
    const check = await checkEntry(answer);
    showProof(answer, check);
    state.checks.set(hash, Promise.resolve(check));
    for (const mark of document.querySelectorAll(`.proof-link[data-hash="${hash}"] .mark`)) setMark(mark, check.ok);
  } catch (err) {
    setVerdict("failed", `✗ Could not check this entry: ${err.message}`);
  }
}

function setVerdict(name, text) {
  const verdict = $("#proof-verdict");
  verdict.dataset.verdict = name;
  verdict.textContent = text;
}

function showProof(answer, check) {
  const { entry } = answer.entry;
  const proof = answer.proof;
  $("#proof-title").textContent = `${entry.type} by ${entry.org}, index ${answer.index}`;
  const facts = [
    ["Entry hash", answer.entry_hash],
    ["Signed at", formatTs(entry.ts)],
    ["Block height", String(answer.height)],
    ["Receipt", answer.receipt?.status || "—"],
    ["Tree size", String(proof.tree_size)],
    ["Log root", proof.log_root],
  ];
  if (state.checkpoint) facts.push(["Checkpoint", `size ${state.checkpoint.size}, root ${state.checkpoint.root}`]);
  $("#proof-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const names = { leaf: "Leaf hash", inclusion: "Inclusion proof", checkpoint: "Cosigned checkpoint" };
  $("#proof-steps").replaceChildren(
    ...check.steps.map((s) => {
      const mark = s.ok === true ? "✓" : s.ok === false ? "✗" : "…";
      const verdict = s.ok === true ? "ok" : s.ok === false ? "failed" : "pending";
      return el("li", { dataStep: s.name, dataVerdict: verdict }, el("span", { class: "mark" }, mark), el("strong", {}, ` ${names[s.name]}: `), s.text);
    }),
  );
  $("#proof-raw").textContent = JSON.stringify({ entry: answer.entry, proof }, null, 2);
  if (check.ok) setVerdict("ok", "✓ Verified in this browser: the entry's bytes are in the log (Web Crypto SHA-256, RFC 9162).");
  else setVerdict("failed", "✗ NOT verified: " + check.steps.filter((s) => s.ok === false).map((s) => s.text).join("; "));
}

function closeProof() {
  state.dialogHash = null;
  if (location.hash.startsWith("#entry/")) history.replaceState(null, "", location.pathname);
}

// ---------------------------------------------------------------- health

async function refreshHealth() {
  const health = await (await fetch("/healthz", { cache: "no-store" })).json();
  kv("#health-node", [
    ["Node", `${health.status} · ${health.role}`, health.status],
    ["Height", health.height ?? "—"],
    ["Log size", health.log_size],
    ["Queue", health.queue],
    ...(health.alarms?.length ? [["Alarms", health.alarms.join("; "), "degraded"]] : []),
  ]);
  await refreshCheckpoint();
  await refreshAnchor();
}

async function refreshCheckpoint() {
  let checkpoint;
  try {
    checkpoint = await getCheckpoint();
  } catch (err) {
    kv("#health-checkpoint", [["Checkpoint", err.status === 404 ? "none yet" : err.message]]);
    return;
  }
  const cosigners = checkpoint.signatures.map((s) => {
    const kind = s.name === checkpoint.origin ? "log" : /\/bls\//.test(s.name) ? "BLS" : "witness";
    const when = s.time ? ` at ${new Date(s.time * 1000).toISOString().slice(11, 19)}` : "";
    return `${s.name} (${kind}${when})`;
  });
  const witnesses = checkpoint.signatures.filter((s) => s.name !== checkpoint.origin && !/\/bls\//.test(s.name));
  kv("#health-checkpoint", [
    ["Origin", checkpoint.origin],
    ["Size", checkpoint.size],
    ["Root", checkpoint.root],
    ["Signed by", cosigners.join(" · ")],
    ["Cosigners", witnesses.length ? `${witnesses.length} witness(es)` : "none (no witness configured)"],
  ]);
}

async function refreshAnchor() {
  try {
    const anchor = await getJson("/v1/ledger/anchor");
    kv("#health-anchor", [
      ["Size", anchor.size],
      ["Root", anchor.root],
      ["Signers (BLS)", anchor.signers.join(", ")],
      ["Transaction", anchor.tx_hash || "not yet mined"],
      ["EVM block", anchor.block_number ?? "—"],
    ]);
  } catch (err) {
    const text = err.status === 404 ? "none (anchoring is off on this node)" : `unavailable (${err.message})`;
    kv("#health-anchor", [["Anchor", text]]);
  }
}

function kv(selector, rows) {
  $(selector).replaceChildren(
    ...rows.flatMap(([k, v, status]) => [el("dt", {}, k), el("dd", { dataStatus: status }, String(v))]),
  );
}

// ---------------------------------------------------------------- loans and exposures

async function refreshLoans() {
  const all = await getJson("/v1/loans");
  all.sort((a, b) => b.index - a.index);
  const loans = all.slice(0, MAX_ROWS);
  const cells = (loan) => [
    loan.loan_id,
    loan.bank,
    loan.notice_no,
    loan.buyer_code,
    loan.buyer_country || "—",
    formatAmount(loan.amount, loan.currency),
    formatAmount(loan.outstanding, loan.currency),
    loan.status,
    loan.drawdown_date,
    loan.maturity_date,
  ];
  $("#loan-table tbody").replaceChildren(
    ...loans.map((loan) =>
      el("tr", { dataLoan: loan.loan_id }, ...cells(loan).map((c, i) => el("td", { class: i === 5 || i === 6 ? "num" : null }, String(c ?? "")))),
    ),
  );
  $("#no-loans").hidden = all.length > 0;
  $("#loan-table").hidden = all.length === 0;
  const more = all.length > loans.length ? ` (newest ${loans.length} shown)` : "";
  $("#loan-count").textContent = all.length ? `${all.length}${more}` : "";
}

async function refreshExposures() {
  const groups = [
    ["bank", "#exposure-bank"],
    ["country", "#exposure-country"],
    ["buyer", "#exposure-buyer"],
  ];
  await Promise.all(
    groups.map(async ([by, selector]) => {
      const rows = await getJson(`/v1/exposures?by=${by}`);
      drawExposure(document.querySelector(`${selector} .chart`), rows, by);
    }),
  );
}

function drawExposure(target, rows, by) {
  if (!rows.length) {
    target.replaceChildren(el("p", { class: "empty" }, "No open financing."));
    return;
  }
  const currencies = [...new Set(rows.map((r) => r.currency))].sort();
  target.replaceChildren(
    ...currencies.flatMap((currency) => {
      const bars = rows
        .filter((r) => r.currency === currency)
        .map((r) => ({
          label: String(r[by] ?? "—"),
          value: Number(r.outstanding),
          amount: r.outstanding,
          currency,
          loans: r.loans,
          cap: r.cap != null ? Number(r.cap) : null,
        }))
        .sort((a, b) => b.value - a.value);
      const more = bars.length > MAX_BARS ? ` · the ${MAX_BARS} largest of ${bars.length}` : "";
      const chart = barChart(bars.slice(0, MAX_BARS), `open financing by ${by}, ${currency}`);
      return [el("p", { class: "currency" }, `${currency}${more}`), chart];
    }),
  );
}

// ---------------------------------------------------------------- audit report

function setAuditDefaults() {
  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 30 * 86400e3).toISOString().slice(0, 10);
  $("#audit-from").value ||= monthAgo;
  $("#audit-to").value ||= today;
}

async function onAudit(event) {
  event.preventDefault();
  const format = event.submitter?.dataset.format || "csv";
  const from = $("#audit-from").value;
  const to = $("#audit-to").value;
  const status = $("#audit-status");
  status.textContent = `Preparing the ${format.toUpperCase()} report…`;
  try {
    const params = new URLSearchParams({ from, to, format });
    const response = await api(`/v1/audit/report?${params}`);
    const blob = await response.blob();
    const name = `pfnode-audit-${from}-${to}.${format}`;
    save(blob, name);
    status.textContent = `Downloaded ${name} (${blob.size} bytes).`;
  } catch (err) {
    status.textContent = `The report failed: ${err.message}`;
  }
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------- wiring

async function main() {
  $("#login-form").addEventListener("submit", onLogin);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#audit-form").addEventListener("submit", onAudit);
  $("#proof-dialog").addEventListener("close", closeProof);
  $("#proof-close").addEventListener("click", () => $("#proof-dialog").close());
  $("#proof-recheck").addEventListener("click", () => state.dialogHash && openProof(state.dialogHash));
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return showLogin();
  try {
    const me = await whoIs(token);
    if (me === null) return signOut("The node no longer accepts this token (401).");
    start(token, me);
  } catch (err) {
    showLogin();
    $("#login-error").textContent = `The node did not answer: ${err.message}`;
  }
}

main();
