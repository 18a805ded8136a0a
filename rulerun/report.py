"""`rulerun --report FILE.html`: the last run as one page a person would rather look at than
read logs: how it ended, the rules' graph, a timeline of its jobs (a row per slot, coloured by
rule, failures marked), per-rule counts and durations, and each failure with its command and
its log's last lines.

The page is self-contained (no network: its style, script and data are inline), so it can be
mailed or opened from a cluster's shared disk. Its data is what the run recorded in the state
database (store/history.py); the log tails are read now, from the logs the run left.
"""

from __future__ import annotations

import html
import json
import os
import time

from rulerun.errors import UsageError
from rulerun.joblog import tail
from rulerun.store import history

LOG_LINES = 30


def write_report(path: str) -> str:
    """Write the report of the last run to `path`; return a line saying what it shows."""
    from rulerun.store.state import State

    state = State(readonly=True)
    try:
        facts, rows = history.last_run(state.db)
    finally:
        state.close()
    if not facts:
        raise UsageError("no run recorded here yet: nothing to report",
                         hint="run rulerun first (in the directory of its Pipefile, or with -C DIR)")
    data = report_data(facts, rows)
    page = render(data)
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(page)
    except OSError as exc:
        raise UsageError(f"can't write the report to '{path}': {exc.strerror}") from None
    return f"rulerun: report of the last run ({len(rows)} job(s)) written to {path}"


def report_data(facts: dict, rows: list[history.JobRow]) -> dict:
    """Everything the page shows, as plain JSON-able data."""
    began = facts.get("began")
    ended = facts.get("ended")
    span = max([r.ended or r.started for r in rows] + [0.0])
    jobs = [{"id": r.id, "rule": r.rule, "label": r.label, "slot": r.slot, "start": r.started,
             "end": r.ended if r.ended is not None else span, "status": r.status, "queued": r.queued,
             "cluster": r.cluster_id} for r in rows]
    failures = [{"rule": r.rule, "label": r.label, "reason": r.reason, "kind": r.kind, "command": r.command,
                 "log": r.log, "tail": tail(r.log, LOG_LINES).lines, "cluster": r.cluster_id}
                for r in rows if r.status in ("failed", "interrupted")]
    return {
        "title": os.path.basename(os.getcwd()) or "/",
        "directory": os.getcwd(),
        "began": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(began)) if began else "",
        "seconds": (ended - began) if began and ended else span,
        "outcome": facts.get("outcome", "unfinished"),
        "targets": facts.get("targets") or ["(the default target)"],
        "slots": facts.get("jobs"),
        "graph": facts.get("graph", {}),
        "jobs": jobs,
        "failures": failures,
    }


def render(data: dict) -> str:
    # "</" must not end the script element early: JSON allows "<\/" for it
    payload = json.dumps(data).replace("</", "<\\/")
    return (_PAGE.replace("%TITLE%", html.escape(f"rulerun: {data['title']}"))
                 .replace("%DATA%", payload).replace("%STYLE%", _STYLE).replace("%SCRIPT%", _SCRIPT))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>%STYLE%</style></head>
<body>
<header id="head"></header>
<main>
<section><h2>Timeline</h2><p class="sub">one row per slot; hover a bar for the job</p><div id="timeline" class="card"></div></section>
<section class="two">
 <div><h2>Rules</h2><div id="graph" class="card"></div></div>
 <div><h2>Per rule</h2><div id="rules" class="card"></div></div>
</section>
<section><h2 id="failures-title">Failures</h2><div id="failures"></div></section>
</main>
<footer>made by <code>rulerun --report</code> from <code>.rulerun/state.db</code>; self-contained, no network</footer>
<div id="errors" hidden></div>
<script type="application/json" id="data">%DATA%</script>
<script>%SCRIPT%</script>
</body></html>
"""

_STYLE = """
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --dim:#6b7280; --line:#e3e6eb; --bad:#d4351c; --ok:#1a7f37; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       background:var(--bg); color:var(--ink); }
header { padding:22px 32px 18px; background:#1d2330; color:#fff; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .meta { color:#b8c0cc; font-size:13px; }
.badge { display:inline-block; padding:2px 10px; border-radius:12px; font-weight:600; font-size:13px;
         margin-left:10px; vertical-align:3px; }
.badge.ok { background:#2da44e; } .badge.failed { background:var(--bad); }
.badge.interrupted, .badge.unfinished { background:#9a6700; }
.stats { display:flex; gap:28px; margin-top:14px; }
.stat b { display:block; font-size:22px; font-weight:600; } .stat span { color:#b8c0cc; font-size:12px; }
main { padding:8px 32px 24px; max-width:1400px; }
h2 { font-size:16px; margin:22px 0 4px; } .sub { margin:0 0 8px; color:var(--dim); font-size:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px; overflow-x:auto; }
.two { display:grid; grid-template-columns: minmax(0,1fr) minmax(0,1fr); gap:20px; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
table { border-collapse:collapse; width:100%; font-size:13px; }
th { text-align:left; color:var(--dim); font-weight:500; border-bottom:1px solid var(--line); padding:4px 8px; }
td { padding:5px 8px; border-bottom:1px solid #f0f2f5; } td.n { text-align:right; font-variant-numeric:tabular-nums; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; }
.bar { height:8px; border-radius:4px; background:#c9d1dc; }
.fail { background:var(--card); border:1px solid var(--line); border-left:4px solid var(--bad);
        border-radius:8px; padding:12px 16px; margin-bottom:12px; }
.fail h3 { margin:0 0 4px; font-size:14px; } .fail .why { color:var(--bad); margin-bottom:8px; }
pre { background:#0f1420; color:#e6edf3; padding:10px 12px; border-radius:6px; overflow-x:auto;
      font:12px/1.5 ui-monospace,"DejaVu Sans Mono",monospace; margin:4px 0 8px; }
.label { color:var(--dim); font-size:12px; }
.none { color:var(--ok); }
footer { color:var(--dim); font-size:12px; padding:12px 32px 28px; }
svg text { font-family:inherit; }
"""

_SCRIPT = r"""
"use strict";
window.onerror = function (message, source, line) {
  var box = document.getElementById("errors");
  box.hidden = false;
  box.setAttribute("data-error", message + " (line " + line + ")");
  box.textContent = "script error: " + message + " (line " + line + ")";
};
var D = JSON.parse(document.getElementById("data").textContent);
var SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  var node = document.createElement(tag);
  for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
  if (text !== undefined) node.textContent = text;
  return node;
}
function sv(tag, attrs, text) {
  var node = document.createElementNS(SVG, tag);
  for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
  if (text !== undefined) node.textContent = text;
  return node;
}
function secs(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  var m = Math.floor(s / 60); return m + " min " + Math.round(s - 60 * m) + " s";
}

// one colour per rule, spread around the wheel in the order rules first ran
var rules = [];
D.jobs.forEach(function (j) { if (rules.indexOf(j.rule) < 0) rules.push(j.rule); });
Object.keys(D.graph).forEach(function (r) { if (rules.indexOf(r) < 0) rules.push(r); });
function colour(rule) {  // never red: red says "failed"
  var i = rules.indexOf(rule), hue = (210 + i * 137.5) % 360;
  if (hue > 330 || hue < 25) hue = (hue + 60) % 360;
  return "hsl(" + Math.round(hue) + ", 58%, " + (i % 2 ? 55 : 45) + "%)";
}
function short(j) {  // a pattern rule's name says nothing its output does not
  return /[%{*?\[]/.test(j.rule) && j.label.indexOf(j.rule + " ") === 0 ? j.label.slice(j.rule.length + 1) : j.label;
}

function header() {
  var h = document.getElementById("head");
  var title = el("h1", {}, "rulerun: " + D.title);
  title.appendChild(el("span", {"class": "badge " + D.outcome}, D.outcome));
  h.appendChild(title);
  h.appendChild(el("div", {"class": "meta"}, "targets " + D.targets.join(" ") + " \u00b7 started " + D.began +
                   " \u00b7 " + D.directory));
  var count = function (s) { return D.jobs.filter(function (j) { return j.status === s; }).length; };
  var stats = el("div", {"class": "stats"});
  [[D.jobs.length, "jobs"], [count("ok"), "succeeded"], [count("failed"), "failed"],
   [secs(D.seconds), "wall time"], [D.slots || "", "slots (-j)"]].forEach(function (s) {
    var box = el("div", {"class": "stat"}); box.appendChild(el("b", {}, String(s[0])));
    box.appendChild(el("span", {}, s[1])); stats.appendChild(box);
  });
  h.appendChild(stats);
}

function timeline() {
  var box = document.getElementById("timeline");
  if (!D.jobs.length) { box.appendChild(el("p", {"class": "none"}, "no job ran")); return; }
  var slots = 1 + Math.max.apply(null, D.jobs.map(function (j) { return j.slot; }));
  var end = Math.max(D.seconds || 0, Math.max.apply(null, D.jobs.map(function (j) { return j.end; }))) || 1;
  var left = 64, width = Math.max(640, box.clientWidth - 30), plot = width - left - 10, row = 26, top = 8;
  var height = top + slots * row + 34;
  var svg = sv("svg", {width: width, height: height, role: "img"});
  var x = function (t) { return left + plot * t / end; };
  var ticks = 8;
  for (var i = 0; i <= ticks; i++) {
    var t = end * i / ticks;
    svg.appendChild(sv("line", {x1: x(t), x2: x(t), y1: top, y2: top + slots * row, stroke: "#eef0f3"}));
    svg.appendChild(sv("text", {x: x(t), y: top + slots * row + 18, "font-size": 11, fill: "#6b7280",
                                "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle"}, secs(t)));
  }
  for (var s = 0; s < slots; s++) {
    svg.appendChild(sv("text", {x: 0, y: top + s * row + 17, "font-size": 11, fill: "#6b7280"}, "slot " + (s + 1)));
  }
  D.jobs.forEach(function (j) {
    var y = top + j.slot * row + 3, w = Math.max(2, x(j.end) - x(j.start));
    var g = sv("g", {"class": "job", "data-status": j.status});
    if (j.queued) {
      g.appendChild(sv("rect", {x: x(Math.max(0, j.start - j.queued)), y: y + 7, width: Math.max(1, x(j.start) - x(Math.max(0, j.start - j.queued))),
                                height: 6, fill: colour(j.rule), opacity: 0.3}));
    }
    var failed = j.status !== "ok";
    g.appendChild(sv("rect", {x: x(j.start), y: y, width: w, height: row - 6, rx: 3, fill: colour(j.rule),
                              stroke: failed ? "#d4351c" : "none", "stroke-width": failed ? 2.5 : 0}));
    if (failed) {
      g.appendChild(sv("text", {x: x(j.start) + w / 2, y: y + 15, "font-size": 13, "font-weight": 700,
                                fill: "#fff", "text-anchor": "middle"}, "\u2715"));
    } else if (w > 60) {
      g.appendChild(sv("text", {x: x(j.start) + 5, y: y + 14, "font-size": 11, fill: "#fff"},
                       short(j).length > w / 6.5 ? short(j).slice(0, Math.floor(w / 6.5) - 1) + "\u2026" : short(j)));
    }
    g.appendChild(sv("title", {}, j.label + "\n" + j.status + ", " + secs(j.end - j.start) +
                     (j.queued ? "\nqueued " + secs(j.queued) : "") + (j.cluster ? "\ncluster job " + j.cluster : "")));
    svg.appendChild(g);
  });
  box.appendChild(svg);
  var legend = el("div", {"class": "sub"});
  rules.filter(function (r) { return D.jobs.some(function (j) { return j.rule === r; }); }).forEach(function (r) {
    var item = el("span", {style: "margin-right:14px;white-space:nowrap"});
    item.appendChild(el("span", {"class": "swatch", style: "background:" + colour(r)}));
    item.appendChild(document.createTextNode(r)); legend.appendChild(item);
  });
  legend.appendChild(el("span", {}, " \u2715 failed"));
  box.appendChild(legend);
}

function graph() {
  var box = document.getElementById("graph");
  var names = Object.keys(D.graph);
  if (!names.length) { box.appendChild(el("p", {}, "no rules recorded")); return; }
  var level = {};
  function depth(n, seen) {
    if (level[n] !== undefined) return level[n];
    if (seen.indexOf(n) >= 0) return 0;
    var needs = (D.graph[n].needs || []).filter(function (m) { return D.graph[m]; });
    level[n] = needs.length ? 1 + Math.max.apply(null, needs.map(function (m) { return depth(m, seen.concat([n])); })) : 0;
    return level[n];
  }
  names.forEach(function (n) { depth(n, []); });
  var columns = [];
  names.forEach(function (n) { (columns[level[n]] = columns[level[n]] || []).push(n); });
  var bw = 140, bh = 44, gx = 44, gy = 16, pos = {};
  var tall = Math.max.apply(null, columns.map(function (c) { return c.length; }));
  var width = columns.length * (bw + gx) - gx + 20, height = tall * (bh + gy) + 10;
  var svg = sv("svg", {viewBox: "0 0 " + width + " " + height, width: "100%",
                       style: "max-width:" + width + "px;max-height:" + Math.max(height, 120) + "px"});
  columns.forEach(function (c, ci) {
    c.forEach(function (n, ri) {
      pos[n] = {x: 10 + ci * (bw + gx), y: 5 + ri * (bh + gy) + (tall - c.length) * (bh + gy) / 2};
    });
  });
  names.forEach(function (n) {
    (D.graph[n].needs || []).forEach(function (m) {
      if (!pos[m]) return;
      var a = pos[m], b = pos[n], x1 = a.x + bw, y1 = a.y + bh / 2, x2 = b.x, y2 = b.y + bh / 2;
      svg.appendChild(sv("path", {d: "M" + x1 + "," + y1 + " C" + (x1 + gx / 2) + "," + y1 + " " + (x2 - gx / 2) + "," + y2 +
                                  " " + (x2 - 4) + "," + y2, fill: "none", stroke: "#9aa4b2", "stroke-width": 1.5}));
      svg.appendChild(sv("path", {d: "M" + (x2 - 6) + "," + (y2 - 4) + " L" + x2 + "," + y2 + " L" + (x2 - 6) + "," + (y2 + 4) + " z",
                                  fill: "#9aa4b2"}));
    });
  });
  names.forEach(function (n) {
    var p = pos[n], node = D.graph[n], failed = D.jobs.some(function (j) { return j.rule === n && j.status !== "ok"; });
    var g = sv("g", {});
    g.appendChild(sv("rect", {x: p.x, y: p.y, width: bw, height: bh, rx: 6, fill: "#fff",
                              stroke: failed ? "#d4351c" : "#c9d1dc", "stroke-width": failed ? 2 : 1}));
    g.appendChild(sv("rect", {x: p.x, y: p.y, width: 6, height: bh, rx: 3, fill: colour(n)}));
    g.appendChild(sv("text", {x: p.x + 14, y: p.y + 18, "font-size": 13, "font-weight": 600, fill: "#1d2330"},
                     n.length > 18 ? n.slice(0, 17) + "\u2026" : n));
    var ran = D.jobs.filter(function (j) { return j.rule === n; }).length;
    g.appendChild(sv("text", {x: p.x + 14, y: p.y + 35, "font-size": 11, fill: "#6b7280"},
                     node.jobs + (node.jobs === 1 ? " job" : " jobs") + " \u00b7 " + (ran ? ran + " ran" : "none ran")));
    g.appendChild(sv("title", {}, n + " (" + node.line + ")"));
    svg.appendChild(g);
  });
  box.appendChild(svg);
}

function perRule() {
  var box = document.getElementById("rules");
  var by = {};
  D.jobs.forEach(function (j) {
    var r = by[j.rule] = by[j.rule] || {n: 0, ok: 0, bad: 0, total: 0, max: 0};
    var took = j.end - j.start; r.n++; r[j.status === "ok" ? "ok" : "bad"]++; r.total += took; r.max = Math.max(r.max, took);
  });
  var most = Math.max.apply(null, [0.001].concat(Object.keys(by).map(function (r) { return by[r].total; })));
  var table = el("table");
  var head = el("tr");
  ["rule", "ran", "ok", "failed", "total", "mean", "longest", ""].forEach(function (h) { head.appendChild(el("th", {}, h)); });
  table.appendChild(head);
  Object.keys(by).sort(function (a, b) { return by[b].total - by[a].total; }).forEach(function (name) {
    var r = by[name], tr = el("tr"), td = el("td");
    td.appendChild(el("span", {"class": "swatch", style: "background:" + colour(name)}));
    td.appendChild(document.createTextNode(name)); tr.appendChild(td);
    [r.n, r.ok, r.bad, secs(r.total), secs(r.total / r.n), secs(r.max)].forEach(function (v, i) {
      var cell = el("td", {"class": "n"}, String(v));
      if (i === 2 && r.bad) cell.style.color = "#d4351c";
      tr.appendChild(cell);
    });
    var bar = el("td", {style: "width:30%"});
    bar.appendChild(el("div", {"class": "bar", style: "width:" + (100 * r.total / most).toFixed(1) + "%;background:" + colour(name)}));
    tr.appendChild(bar); table.appendChild(tr);
  });
  box.appendChild(table);
}

function failures() {
  var box = document.getElementById("failures");
  document.getElementById("failures-title").textContent = "Failures (" + D.failures.length + ")";
  if (!D.failures.length) { box.appendChild(el("p", {"class": "none"}, "\u2714 no job failed")); return; }
  D.failures.forEach(function (f) {
    var card = el("div", {"class": "fail"});
    card.appendChild(el("h3", {}, f.label));
    card.appendChild(el("div", {"class": "why"}, f.reason + (f.cluster ? " (cluster job " + f.cluster + ")" : "")));
    card.appendChild(el("div", {"class": "label"}, f.kind === "python" ? "python action" : "command"));
    card.appendChild(el("pre", {}, f.command));
    card.appendChild(el("div", {"class": "label"}, "log: " + f.log + (f.tail.length ? " (last lines)" : " (empty)")));
    if (f.tail.length) card.appendChild(el("pre", {}, f.tail.join("\n")));
    box.appendChild(card);
  });
}

header(); timeline(); graph(); perRule(); failures();
document.body.setAttribute("data-rendered", "yes");
"""
