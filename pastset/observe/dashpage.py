"""The dashboard's page: one self-contained HTML document, its style and script inline.

The script polls ``status.json`` (the status document) every second, and
``timeline.json`` when the run is traced, through the URL's own token, and redraws
without reloading: the run (app, launcher, uptime, phase, deadlock detection), counts,
a timeline, and tables of waiting calls, elements, tasks and workers. The tables are
filtered, sorted and paged in the page, so a run with thousands of elements or tasks
shows one page of rows at a time. Values go into the page as text, never as markup.
When the dashboard stops answering — the run has ended — the page says so and keeps
the last status it had.

:data:`CONTENT_SECURITY_POLICY` allows exactly this page's script and style (by their
hashes) and requests to its own origin: nothing is fetched from anywhere else.
"""
from __future__ import annotations

import base64
import hashlib
import json

from ..wire.contract import STOPPED_WITH_RUN

_STYLE = r"""
:root { --fg:#1d2430; --muted:#5f6b7a; --line:#d9dee5; --bg:#f5f7fa; --card:#fff; --accent:#2f6fdd;
        --run:#2f6fdd; --done:#2e9d57; --fail:#d23c3c; --lost:#e08a1e; --wait:#e5b82a; --app:#7b55c7;
        --stop:#9aa4b1; }
* { box-sizing: border-box; }
[hidden] { display:none !important; }
body { margin:0; font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:var(--bg); }
header { position:sticky; top:0; z-index:2; background:#1d2430; color:#fff; padding:8px 16px;
         display:flex; flex-wrap:wrap; align-items:baseline; gap:6px 18px; }
header .brand { font-weight:700; font-size:15px; }
header .fact { color:#c9d2de; white-space:nowrap; }
header .fact b { color:#fff; font-weight:600; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-weight:600; font-size:12px;
         background:#44506a; color:#fff; }
.badge.running { background:var(--done); } .badge.starting { background:var(--accent); }
.badge.stopping { background:var(--lost); } .badge.ended { background:var(--fail); }
.badge.moving { background:#44506a; } .badge.stuck { background:var(--lost); }
.badge.deadlock { background:var(--fail); }
#banner { margin:12px 16px 0; padding:10px 14px; border-radius:6px; font-weight:600; font-size:14px; }
#banner.ended { background:#fde8e8; color:#8c1d1d; border:1px solid #f3b5b5; }
#banner.info { background:#e8f0fd; color:#1d3f8c; border:1px solid #b5c9f3; }
main { padding:12px 16px 32px; display:grid; gap:14px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:10px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
.card .n { font-size:22px; font-weight:700; } .card .l { color:var(--muted); }
.card .d { color:var(--muted); font-size:12px; }
.card.bad .n { color:var(--fail); }
section.panel { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
section.panel h2 { font-size:14px; margin:0 0 8px; display:flex; gap:10px; align-items:baseline; flex-wrap:wrap; }
section.panel h2 .sub { color:var(--muted); font-weight:400; font-size:12px; }
.controls { display:flex; gap:6px; align-items:center; flex-wrap:wrap; margin-left:auto; font-weight:400; }
.controls input { font:inherit; padding:2px 6px; border:1px solid var(--line); border-radius:4px; width:180px; }
button { font:inherit; font-size:12px; padding:2px 8px; border:1px solid var(--line); border-radius:4px;
         background:#fff; cursor:pointer; color:var(--fg); }
button.on { background:var(--accent); border-color:var(--accent); color:#fff; }
button:disabled { opacity:.4; cursor:default; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:3px 8px; border-bottom:1px solid #eef1f4; white-space:nowrap; }
th { color:var(--muted); font-weight:600; font-size:12px; cursor:pointer; user-select:none;
     border-bottom:1px solid var(--line); }
th.sorted::after { content:" \25BE"; } th.sorted.up::after { content:" \25B4"; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; }
td.wrap { white-space:normal; max-width:420px; overflow-wrap:anywhere; }
tr.failed td, tr.lost td { background:#fdecec; }
tr.failed td.state, tr.lost td.state { color:var(--fail); font-weight:700; }
tr.running td.state { color:var(--run); font-weight:600; } tr.done td.state { color:var(--done); }
td.hot { color:var(--fail); font-weight:600; }
.tablewrap { overflow-x:auto; }
.pager { display:flex; gap:8px; align-items:center; justify-content:flex-end; margin-top:6px; color:var(--muted); }
.empty { color:var(--muted); padding:6px 8px; }
#timeline-box { position:relative; }
canvas#timeline { width:100%; display:block; }
#tip { position:absolute; pointer-events:none; background:#1d2430; color:#fff; padding:6px 8px; border-radius:4px;
       font-size:12px; white-space:pre; z-index:3; max-width:520px; overflow:hidden; }
.legend { display:flex; gap:12px; color:var(--muted); font-size:12px; flex-wrap:wrap; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; vertical-align:-1px; }
.k-run { background:var(--run); } .k-done { background:var(--done); } .k-fail { background:var(--fail); }
.k-lost { background:var(--lost); } .k-stop { background:var(--stop); } .k-wait { background:var(--wait); }
.k-app { background:var(--app); }
"""

_SCRIPT = r"""
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token") || "";
const POLL_MS = 1000;
const PAGE_SIZE = 25;
const STOPPED = __STOPPED_WITH_RUN__;  /* a task's error when the run stopped it: not its own failure */
const $ = (id) => document.getElementById(id);
let doc = null, lastOk = null, failures = 0, ended = false, windowS = 60, trace = null;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : v);
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function seconds(s) {
  if (s === null || s === undefined) return "-";
  if (s < 1) return s.toFixed(2) + "s";
  if (s < 10) return s.toFixed(1) + "s";
  if (s < 60) return Math.round(s) + "s";
  let m = Math.floor(s / 60), r = Math.floor(s % 60);
  if (m < 60) return m + "m" + String(r).padStart(2, "0") + "s";
  const h = Math.floor(m / 60); m = m % 60;
  return h + "h" + String(m).padStart(2, "0") + "m";
}
function clock(t) {
  if (!t) return "-";
  const d = new Date(t * 1000);
  return d.toTimeString().slice(0, 8);
}
function rate(v) { return v === null || v === undefined ? "-" : (v >= 100 ? Math.round(v) : v.toFixed(1)); }
function dash(v) { return v === null || v === undefined || v === "" ? "-" : String(v); }
const collator = new Intl.Collator(undefined, {numeric: true});  /* t2 before t10 */
function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return collator.compare(String(a), String(b));
}

/* A table filtered by a text box, sorted by a clicked header, shown one page at a time. */
class Table {
  constructor(id, columns, options) {
    this.table = $(id); this.columns = columns; this.options = options || {};
    this.sortKey = this.options.sortKey || null; this.sortUp = this.options.sortUp !== false;
    this.page = 0; this.filter = ""; this.rows = [];
    const filterBox = $(id + "-filter");
    if (filterBox) {
      filterBox.addEventListener("input", () => {
        this.filter = filterBox.value.toLowerCase(); this.page = 0; this.draw();
      });
    }
    const pager = $(id + "-pager");
    this.pager = pager;
    if (pager) {
      this.prev = el("button", {}, "\u2039 prev"); this.next = el("button", {}, "next \u203a");
      this.info = el("span");
      this.prev.addEventListener("click", () => { this.page--; this.draw(); });
      this.next.addEventListener("click", () => { this.page++; this.draw(); });
      pager.append(this.info, this.prev, this.next);
    }
    const head = el("tr");
    for (const col of columns) {
      const th = el("th", {class: col.num ? "num" : null, "data-key": col.key}, col.title);
      th.addEventListener("click", () => {
        if (this.sortKey === col.key) this.sortUp = !this.sortUp;
        else { this.sortKey = col.key; this.sortUp = !col.num; }
        this.draw();
      });
      head.append(th);
    }
    this.head = head;
    this.table.append(el("thead"), el("tbody"));
    this.table.tHead.append(head);
  }
  value(col, row) { return col.sort ? col.sort(row) : (col.value ? col.value(row) : row[col.key]); }
  text(col, row) { const v = col.value ? col.value(row) : row[col.key]; return col.fmt ? col.fmt(v, row) : dash(v); }
  set(rows) { this.rows = rows; this.draw(); }
  draw() {
    let rows = this.rows;
    if (this.options.keep) rows = rows.filter(this.options.keep);
    if (this.filter) {
      rows = rows.filter((r) => this.columns.some((c) => this.text(c, r).toLowerCase().includes(this.filter)));
    }
    if (this.sortKey) {
      const col = this.columns.find((c) => c.key === this.sortKey);
      const sign = this.sortUp ? 1 : -1;
      if (col) rows = rows.slice().sort((a, b) => sign * compare(this.value(col, a), this.value(col, b)));
    } else if (this.options.order) {
      rows = rows.slice().sort(this.options.order);
    }
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const shown = rows.slice(this.page * PAGE_SIZE, (this.page + 1) * PAGE_SIZE);
    const body = el("tbody");
    for (const row of shown) {
      const tr = el("tr", {class: this.options.rowClass ? this.options.rowClass(row) : null,
                           "data-id": this.options.id ? this.options.id(row) : null});
      for (const col of this.columns) {
        const classes = [col.num ? "num" : "", col.cls || "", col.hot && col.hot(row) ? "hot" : ""].join(" ").trim();
        tr.append(el("td", {class: classes || null, "data-key": col.key}, this.text(col, row)));
      }
      body.append(tr);
    }
    if (!shown.length) {
      const tr = el("tr"); tr.append(el("td", {class: "empty", colspan: String(this.columns.length)},
        this.rows.length ? "no row matches" : (this.options.none || "none"))); body.append(tr);
    }
    this.table.replaceChild(body, this.table.tBodies[0]);
    for (const th of this.head.children) {
      th.classList.toggle("sorted", th.dataset.key === this.sortKey);
      th.classList.toggle("up", th.dataset.key === this.sortKey && this.sortUp);
    }
    if (this.pager) {
      const first = rows.length ? this.page * PAGE_SIZE + 1 : 0;
      this.info.textContent = `${first}\u2013${this.page * PAGE_SIZE + shown.length} of ${rows.length}` +
        (rows.length !== this.rows.length ? ` (of ${this.rows.length})` : "");
      this.prev.disabled = this.page === 0; this.next.disabled = this.page >= pages - 1;
      this.pager.hidden = this.rows.length <= PAGE_SIZE && !this.filter;
    }
  }
}

const STATE_ORDER = {running: 0, failed: 1, lost: 1, assigned: 2, queued: 3, done: 4};
const elements = new Table("elements", [
  {key: "id", title: "ID", num: true},
  {key: "template", title: "Template", cls: "mono wrap"},
  {key: "xfunction", title: "X-function", cls: "mono"},
  {key: "first", title: "First", num: true},
  {key: "last", title: "Last", num: true},
  {key: "unobserved", title: "Unobserved", num: true},
  {key: "delta", title: "Delta", num: true, fmt: (v) => v === null ? "none" : String(v)},
  {key: "moves", title: "Moves", num: true},
  {key: "observes", title: "Observes", num: true},
  {key: "moves_per_s", title: "Moves/s", num: true, fmt: rate},
  {key: "observes_per_s", title: "Observes/s", num: true, fmt: rate},
  {key: "waiting", title: "Waiting", num: true, value: (r) => (r.waiting || []).length,
   hot: (r) => (r.waiting || []).length > 0},
], {id: (r) => r.id, sortKey: "id", none: "no element yet"});
const waits = new Table("waits", [
  {key: "who", title: "Who"},
  {key: "operation", title: "Operation", cls: "mono"},
  {key: "template", title: "Element", cls: "mono wrap"},
  {key: "waited_s", title: "Waiting for", num: true, fmt: seconds},
  {key: "timeout", title: "Timeout", num: true, fmt: (v) => v === null ? "none" : seconds(v)},
], {sortKey: "waited_s", sortUp: false, none: "no call is waiting"});
let taskState = "all";
const tasks = new Table("tasks", [
  {key: "id", title: "ID"},
  {key: "application", title: "Application", cls: "mono"},
  {key: "args", title: "Args", cls: "mono wrap", fmt: (v) => (v && v.length) ? v.join(" ") : "-"},
  {key: "state", title: "State", cls: "state", sort: (r) => STATE_ORDER[r.state] ?? 5},
  {key: "worker", title: "Worker"},
  {key: "host", title: "Host"},
  {key: "pid", title: "PID", num: true},
  {key: "run_time", title: "Run time", num: true, fmt: seconds},
  {key: "returncode", title: "Exit code", num: true},
  {key: "error", title: "Error", cls: "wrap"},
], {id: (r) => r.id, rowClass: (r) => r.state, none: "no task spawned",
    keep: (r) => taskState === "all" || r.state === taskState || (taskState === "failed" && r.state === "lost"),
    order: (a, b) => compare(STATE_ORDER[a.state] ?? 5, STATE_ORDER[b.state] ?? 5) || compare(a.id, b.id)});
const workerColumns = [
  {key: "id", title: "ID"},
  {key: "host", title: "Host"},
  {key: "state", title: "State"},
  {key: "running", title: "Tasks now", value: (r) => (r.running || []).join(" "),
   sort: (r) => (r.running || []).length},
  {key: "done", title: "Done", num: true},
  {key: "failed", title: "Failed", num: true, hot: (r) => r.failed > 0},
  {key: "cores", title: "Cores", num: true},
  {key: "memory_mb", title: "Memory MB", num: true},
  {key: "benchmark", title: "Bench", num: true},
  {key: "task_start", title: "Task start"},
  {key: "system", title: "System", value: (r) => [r.system, r.arch].filter(Boolean).join(" ")},
];
let workers = null;

const chips = {};
function taskChips(list) {
  /* one button per state, made once (a click is never lost to a refresh), counts updated */
  const counts = {all: list.length, running: 0, failed: 0, queued: 0, done: 0};
  for (const t of list) {
    if (t.state === "lost") counts.failed++;
    else if (t.state === "assigned") counts.queued++;
    else if (t.state in counts) counts[t.state]++;
  }
  for (const [state, n] of Object.entries(counts)) {
    if (!chips[state]) {
      const b = chips[state] = el("button", {"data-state": state});
      b.addEventListener("click", () => {
        taskState = state; tasks.page = 0; taskChips(doc.tasks || []); tasks.draw();
      });
      $("task-states").append(b);
    }
    chips[state].textContent = `${state} ${n}`;
    chips[state].classList.toggle("on", state === taskState);
  }
}

function card(label, value, detail, bad) {
  const c = el("div", {class: "card" + (bad ? " bad" : "")});
  c.append(el("div", {class: "n"}, value), el("div", {class: "l"}, label));
  if (detail) c.append(el("div", {class: "d"}, detail));
  return c;
}

function drawSummary(d) {
  const states = {};
  for (const t of d.tasks || []) states[t.state] = (states[t.state] || 0) + 1;
  const failed = (states.failed || 0) + (states.lost || 0);
  const live = (d.workers || []).filter((w) => w.state !== "lost" && w.state !== "exited").length;
  const unobserved = (d.elements || []).reduce((n, e) => n + (e.unobserved || 0), 0);
  const moves = (d.elements || []).reduce((n, e) => n + (e.moves_per_s || 0), 0);
  const observes = (d.elements || []).reduce((n, e) => n + (e.observes_per_s || 0), 0);
  const calls = (d.waits || []).filter((w) => w.element !== null);
  const longest = calls.reduce((m, w) => Math.max(m, w.waited_s || 0), 0);
  $("summary").replaceChildren(
    card("tasks running", states.running || 0,
         `${(states.queued || 0) + (states.assigned || 0)} queued, ${states.done || 0} done` +
         (d.halted ? ", halted" : "")),
    card("tasks failed", failed, states.lost ? `${states.lost} lost with their worker` : null, failed > 0),
    card("workers", live, `${(d.workers || []).length} registered`),
    card("elements", (d.elements || []).length, `${unobserved} unobserved tuples`),
    card("waiting calls", calls.length, calls.length ? `longest ${seconds(longest)}` : null),
    card("moves/s", rate(moves), `observes/s ${rate(observes)}`),
  );
}

function drawRun(d) {
  const r = d.runner || {};
  $("run-id").textContent = d.run || "?";
  $("run-app").textContent = r.app ? [r.app].concat(r.args || []).join(" ") : "-";
  $("run-launcher").textContent = dash(r.launcher);
  $("run-uptime").textContent = r.started ? seconds(Math.max(0, d.time - r.started)) : "-";
  $("run-server").textContent = `${dash(d.version)} (pid ${dash(d.pid)})`;
  $("run-updated").textContent = clock(d.time);
  const phase = ended ? "ended" : (r.phase || "running");
  const badge = $("phase");
  badge.textContent = phase; badge.className = "badge " + phase;
  const dl = r.deadlock, dbadge = $("deadlock");
  if (!dl) { dbadge.textContent = "not watched yet"; dbadge.className = "badge"; }
  else if (dl.state === "moving") { dbadge.textContent = "none"; dbadge.className = "badge moving"; }
  else if (dl.state === "stuck") {
    dbadge.textContent = `everything waits: ${seconds(dl.stuck_s)} of ${seconds(dl.grace)}`;
    dbadge.className = "badge stuck";
  } else { dbadge.textContent = "DEADLOCK"; dbadge.className = "badge deadlock"; }
  $("deadlock-why").textContent = dl && dl.state === "moving" && dl.reason ? `(${dl.reason})` : "";
  document.title = (ended ? "ended \u2014 " : "") + "pastset " + (r.app || d.run || "");
}

function drawWorkers(d) {
  const list = d.workers || [];
  if (!workers) {
    const cols = workerColumns.slice();
    if (list.some((w) => "slots" in w)) {
      cols.splice(4, 0, {key: "slots", title: "Slots", num: true, sort: (r) => r.slots_used || 0,
                         value: (r) => `${r.slots_used ?? "-"}/${r.slots || "\u221e"}`});
    }
    workers = new Table("workers", cols, {id: (r) => r.id, sortKey: "id", none: "no worker registered"});
  }
  workers.set(list);
}

/* ---- timeline ---------------------------------------------------------------------- */
const COLORS = {running: "--run", done: "--done", failed: "--fail", lost: "--lost", wait: "--wait", app: "--app",
                stopped: "--stop"};
const cssCache = {};
const css = (name) => cssCache[name] ||
  (cssCache[name] = getComputedStyle(document.documentElement).getPropertyValue(name).trim());
let hits = [];

function taskColor(state) { return css(COLORS[state] || "--stop"); }

function slicesFromStatus(d) {
  /* No trace: each task's life from the status document, one row per worker (lanes when
     its tasks overlap), and the calls waiting now, from when they began. */
  const rows = new Map(), out = [];
  const now = d.time;
  const workerHost = {};
  for (const w of d.workers || []) workerHost[w.id] = w.host;
  const tasksSorted = (d.tasks || []).filter((t) => t.started).sort((a, b) => a.started - b.started);
  const lanes = {};
  for (const t of tasksSorted) {
    const end = t.ended || now;
    const wk = t.worker || "?";
    const ends = lanes[wk] || (lanes[wk] = []);
    let lane = ends.findIndex((e) => e <= t.started);
    if (lane < 0) { lane = ends.length; ends.push(end); } else ends[lane] = end;
    const track = `worker ${wk}` + (workerHost[wk] ? ` (${workerHost[wk]})` : "");
    const label = rowKey(track, lane ? `tasks ${lane + 1}` : "tasks");
    rows.set(label, [1, wk, lane]);
    const state = t.state === "failed" && t.error === STOPPED ? "stopped" : t.state;
    const info = [`task ${t.id} ${t.application} ${(t.args || []).join(" ")}`, `state ${t.state}`,
                  `worker ${wk} on ${dash(t.host)}`, `exit code ${dash(t.returncode)}`];
    if (t.error) info.push(t.error);
    out.push({row: label, name: `${t.id} ${t.application}`, start: t.started, end: t.ended, color: state, info: info});
  }
  for (const w of d.waits || []) {
    if (w.element === null) continue;
    const label = rowKey(w.who, "waiting now");
    rows.set(label, [2, label, 0]);
    const what = `${w.operation} ${w.template || ""}`;
    out.push({row: label, name: what, start: now - (w.waited_s || 0), end: null, color: "wait",
              info: [`${w.who}`, what, `waiting for ${seconds(w.waited_s)}`]});
  }
  const byPlace = (a, b) => compare(a[1][0], b[1][0]) || compare(a[1][1], b[1][1]) || a[1][2] - b[1][2];
  const order = [...rows.entries()].sort(byPlace).map((e) => e[0]);
  return {rows: order, slices: out};
}

function code(args) { const c = args["exit code"]; return c === undefined ? null : c; }
function slicesFromTrace(t) {
  const rows = t.tracks.map(([track, lane]) => rowKey(track, lane));
  const out = [];
  for (const s of t.slices) {
    const a = s.args || {};
    let color = s.cat === "never ran" ? "failed" : s.cat;
    if (s.cat === "task") {
      if (s.end === null) color = "running";
      else if (a.error === STOPPED || a.unfinished || code(a) < 0) color = "stopped";
      else if (a.error || (code(a) !== null && code(a) !== 0)) color = "failed";
      else color = "done";
    }
    const info = [s.name, `${s.cat} on ${s.track}`];
    for (const [k, v] of Object.entries(a)) if (v !== null && v !== undefined) info.push(`${k} ${v}`);
    out.push({row: rowKey(s.track, s.lane), name: s.name, start: s.start, end: s.end, color: color, info: info});
  }
  return {rows: rows, slices: out};
}

const MAX_ROWS = 40, ROW_H = 20, AXIS_H = 22, LABEL_W = 230;
let boxWidth = 0;  /* the timeline's width, kept by a ResizeObserver: reading it would force a layout */
function rowKey(track, lane) { return JSON.stringify([track, lane || ""]); }
function drawTimeline() {
  if (!doc) return;
  const data = trace ? slicesFromTrace(trace) : slicesFromStatus(doc);
  const canvas = $("timeline"), box = $("timeline-box");
  const rows = data.rows.slice(0, MAX_ROWS);
  const more = data.rows.length - rows.length;
  $("timeline-more").textContent = more > 0 ? `${more} more rows not drawn` : "";
  if (!boxWidth) boxWidth = box.clientWidth;
  const width = boxWidth, height = Math.max(1, rows.length) * ROW_H + AXIS_H;
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== width * ratio || canvas.height !== height * ratio) {  /* resizing clears and costs */
    canvas.width = width * ratio; canvas.height = height * ratio; canvas.style.height = height + "px";
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "12px system-ui, sans-serif"; g.textBaseline = "middle";
  /* the window, or the run's age while it is younger (at least 10 s) */
  const now = doc.time, started = doc.runner && doc.runner.started;
  const span = started ? Math.min(windowS, Math.max(10, now - started)) : windowS;
  const from = now - span, plotW = Math.max(10, width - LABEL_W - 8);
  const x = (t) => LABEL_W + (Math.min(Math.max(t, from), now) - from) / span * plotW;
  const index = new Map(rows.map((r, i) => [r, i]));
  let group = -1, previous = null;
  for (let i = 0; i < rows.length; i++) {
    const [track, lane] = JSON.parse(rows[i]);
    if (track !== previous) {
      group++; previous = track;
      if (i) { g.fillStyle = "#d9dee5"; g.fillRect(0, i * ROW_H, width, 1); }
    }
    if (group % 2) { g.fillStyle = "#f7f9fb"; g.fillRect(0, i * ROW_H + (i ? 1 : 0), width, ROW_H - 1); }
    const laneW = lane ? Math.min(80, g.measureText(lane).width) : 0;
    g.fillStyle = css("--muted"); g.textAlign = "right";
    if (lane) g.fillText(fit(g, lane, 80), LABEL_W - 8, i * ROW_H + ROW_H / 2);
    g.textAlign = "left";
    if (i === 0 || JSON.parse(rows[i - 1])[0] !== track) {
      g.fillStyle = css("--fg");
      g.fillText(fit(g, track, LABEL_W - 20 - laneW), 4, i * ROW_H + ROW_H / 2);
    }
  }
  if (!rows.length) { g.fillStyle = css("--muted"); g.fillText("nothing to draw yet", LABEL_W, ROW_H / 2); }
  const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].find((s) => span / s <= 8) || 3600;
  g.strokeStyle = "#e3e7ec"; g.fillStyle = css("--muted");
  for (let t = Math.ceil(from / step) * step; t <= now; t += step) {
    const px = x(t);
    g.beginPath(); g.moveTo(px, 0); g.lineTo(px, height - AXIS_H); g.stroke();
    g.fillText(clock(t), Math.min(px - 24, width - 56), height - AXIS_H / 2);
  }
  hits = [];
  for (const s of data.slices) {
    const row = index.get(s.row);
    if (row === undefined) continue;
    const end = s.end === null ? now : s.end;
    if (end < from || s.start > now) continue;
    const x0 = x(s.start), x1 = Math.max(x(end), x0 + 2), y = row * ROW_H + 3;
    g.fillStyle = taskColor(s.color);
    g.fillRect(x0, y, x1 - x0, ROW_H - 6);
    if (x1 - x0 > 40) {
      g.fillStyle = s.color === "wait" ? "#1d2430" : "#fff";
      g.fillText(fit(g, s.name, x1 - x0 - 6), x0 + 3, y + (ROW_H - 6) / 2);
    }
    hits.push([x0, y, x1, y + ROW_H - 6, s]);
  }
  g.strokeStyle = css("--fail"); g.beginPath(); g.moveTo(x(now), 0); g.lineTo(x(now), height - AXIS_H); g.stroke();
}
function fit(g, text, w) {
  /* the longest start of text (and an ellipsis) that fits in w pixels, found by halving */
  if (g.measureText(text).width <= w) return text;
  let lo = 0, hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (g.measureText(text.slice(0, mid) + "\u2026").width <= w) lo = mid; else hi = mid - 1;
  }
  return text.slice(0, Math.max(1, lo)) + "\u2026";
}
function showTip(ev) {
  const box = $("timeline-box"), tip = $("tip"), rect = $("timeline").getBoundingClientRect();
  const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
  const hit = hits.find(([x0, y0, x1, y1]) => px >= x0 && px <= x1 && py >= y0 && py <= y1);
  if (!hit) { tip.hidden = true; return; }
  const s = hit[4];
  const end = s.end === null ? "still going" : clock(s.end);
  const took = seconds((s.end === null ? doc.time : s.end) - s.start);
  tip.textContent = s.info.concat([`${clock(s.start)} \u2192 ${end} (${took})`]).join("\n");
  tip.hidden = false;
  tip.style.left = Math.min(px + 12, box.clientWidth - tip.offsetWidth - 4) + "px";
  tip.style.top = (py + 14) + "px";
}

/* ---- polling ----------------------------------------------------------------------- */
function url(path, extra) {
  const q = new URLSearchParams(Object.assign({token: TOKEN}, extra || {}));
  return `${path}?${q}`;
}
async function getJSON(path, extra) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const res = await fetch(url(path, extra), {cache: "no-store", signal: ctl.signal});
    if (!res.ok) { const e = new Error(`HTTP ${res.status}`); e.status = res.status; throw e; }
    return await res.json();
  } finally { clearTimeout(timer); }
}
function banner(kind, text) {
  const b = $("banner");
  if (!kind) { b.hidden = true; return; }
  b.className = kind; b.textContent = text; b.hidden = false;
}
function render() {
  drawRun(doc); drawSummary(doc);
  waits.set((doc.waits || []).filter((w) => w.element !== null));
  elements.set(doc.elements || []);
  taskChips(doc.tasks || []); tasks.set(doc.tasks || []);
  drawWorkers(doc);
  $("timeline-source").textContent = trace ? "calls and tasks from the run's trace" :
    "task lifetimes and the calls waiting now (run with --trace to see every long call)";
  drawTimeline();
}
async function poll() {
  try {
    const next = await getJSON("status.json");
    let slices = null;
    if (next.runner && next.runner.trace) {
      try { slices = await getJSON("timeline.json", {since: String(next.time - windowS)}); }
      catch (e) { slices = null; }
    }
    doc = next; trace = slices; lastOk = Date.now(); failures = 0;
    if (ended) { ended = false; }
    banner(doc.runner && doc.runner.phase === "stopping" ? "info" : null, "The run is stopping.");
    render();
  } catch (err) {
    if (err.status === 503) { banner("info", "Waiting for the run's first status\u2026"); }
    else {
      failures++;
      const stopping = doc && doc.runner && doc.runner.phase === "stopping";
      if (doc && (failures >= 2 || stopping || err.status === 403 || err.status === 404)) {
        ended = true;
        const at = new Date(lastOk).toTimeString().slice(0, 8);
        banner("ended", `Run ended: the dashboard stopped answering at ${at}. Below is the last status it gave.`);
        drawRun(doc);
      } else if (!doc) {
        banner("ended", "The dashboard does not answer: the run has ended, or this address or token is not its own.");
        ended = true;
      }
    }
  }
  setTimeout(poll, ended ? 2 * POLL_MS : POLL_MS);
}
for (const b of document.querySelectorAll("#window button")) {
  b.addEventListener("click", () => {
    windowS = Number(b.dataset.s);
    for (const o of document.querySelectorAll("#window button")) o.classList.toggle("on", o === b);
    drawTimeline();
  });
}
$("timeline").addEventListener("mousemove", showTip);
$("timeline").addEventListener("mouseleave", () => { $("tip").hidden = true; });
new ResizeObserver((entries) => {
  const width = Math.round(entries[0].contentRect.width);
  if (width !== boxWidth) { boxWidth = width; drawTimeline(); }
}).observe($("timeline-box"));
poll();
"""

_SCRIPT = _SCRIPT.replace("__STOPPED_WITH_RUN__", json.dumps(STOPPED_WITH_RUN))

_BODY = r"""
<header>
  <span class="brand">pastset</span>
  <span class="fact">run <b id="run-id">?</b></span>
  <span id="phase" class="badge">connecting</span>
  <span class="fact">app <b id="run-app">-</b></span>
  <span class="fact">launcher <b id="run-launcher">-</b></span>
  <span class="fact">up <b id="run-uptime">-</b></span>
  <span class="fact">deadlock <span id="deadlock" class="badge">-</span> <span id="deadlock-why"></span></span>
  <span class="fact">server <b id="run-server">-</b></span>
  <span class="fact">updated <b id="run-updated">-</b></span>
</header>
<div id="banner" hidden></div>
<main>
  <section id="summary" class="cards"></section>
  <section class="panel">
    <h2>Timeline <span class="sub" id="timeline-source"></span>
      <span class="controls" id="window">
        <button data-s="60" class="on">1 min</button><button data-s="300">5 min</button>
        <button data-s="900">15 min</button><button data-s="3600">1 h</button>
      </span>
    </h2>
    <div id="timeline-box"><canvas id="timeline"></canvas><div id="tip" hidden></div></div>
    <div class="legend">
      <span><i class="k-run"></i>running</span><span><i class="k-done"></i>done</span>
      <span><i class="k-fail"></i>failed</span><span><i class="k-lost"></i>lost</span>
      <span><i class="k-stop"></i>stopped with the run</span>
      <span><i class="k-wait"></i>waiting call</span><span><i class="k-app"></i>app</span>
      <span id="timeline-more"></span>
    </div>
  </section>
  <section class="panel">
    <h2>Waiting calls <span class="controls"><input id="waits-filter" placeholder="filter"></span></h2>
    <div class="tablewrap"><table id="waits"></table></div><div class="pager" id="waits-pager"></div>
  </section>
  <section class="panel">
    <h2>Elements <span class="controls"><input id="elements-filter" placeholder="filter"></span></h2>
    <div class="tablewrap"><table id="elements"></table></div><div class="pager" id="elements-pager"></div>
  </section>
  <section class="panel">
    <h2>Tasks
      <span class="controls"><span id="task-states"></span><input id="tasks-filter" placeholder="filter"></span>
    </h2>
    <div class="tablewrap"><table id="tasks"></table></div><div class="pager" id="tasks-pager"></div>
  </section>
  <section class="panel">
    <h2>Workers <span class="controls"><input id="workers-filter" placeholder="filter"></span></h2>
    <div class="tablewrap"><table id="workers"></table></div><div class="pager" id="workers-pager"></div>
  </section>
</main>
"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


#: the page, as served
PAGE: bytes = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<title>pastset</title>\n<link rel="icon" href="data:,">\n'
    f"<style>{_STYLE}</style>\n</head><body>{_BODY}<script>{_SCRIPT}</script>\n</body></html>\n"
).encode()

#: what the page may load and run: its own script and style, requests to its own origin
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_hash(_SCRIPT)}; style-src {_hash(_STYLE)}; connect-src 'self'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
