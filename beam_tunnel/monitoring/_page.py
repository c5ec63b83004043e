"""The monitor's web page: static HTML whose script polls ``api/state`` and
draws every tunnel (summary, channel table, SVG lag chart). Text from the
service goes in through ``textContent`` only, never as markup.
``__INTERVAL_MS__`` is replaced by the refresh interval."""

PAGE_HTML = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>beam-tunnel monitor</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
  h1 { font-size: 1.3em; margin: 0 0 .2em 0; }
  h2 { font-size: 1.1em; margin: 0 0 .4em 0; }
  #status { color: #555; margin-bottom: 1em; }
  #error { background: #fde2e1; color: #8a1c1c; padding: .4em .6em; margin-bottom: 1em; display: none; }
  section.tunnel { border: 1px solid #ccc; border-radius: 6px; padding: .8em 1em; margin-bottom: 1.2em; }
  table { border-collapse: collapse; font-size: .9em; margin: .6em 0; }
  th, td { border-bottom: 1px solid #e3e3e3; padding: .25em .7em; text-align: left; white-space: nowrap; }
  th { background: #f3f3f3; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .level { font-weight: bold; padding: .1em .5em; border-radius: 4px; color: #fff; }
  .level-OK { background: #2ca02c; } .level-WARN { background: #ff7f0e; }
  .level-FAIL { background: #d62728; } .level-UNKNOWN { background: #7f7f7f; }
  .summary span { margin-right: 1.4em; }
  .reasons { color: #8a1c1c; margin: .3em 0; }
  svg.lag-chart { background: #fcfcfc; border: 1px solid #ddd; }
  svg text { font-size: 11px; fill: #444; }
</style>
</head>
<body data-renders="0">
<h1>beam-tunnel monitor <span id="scope"></span></h1>
<div id="status">waiting for the first refresh&hellip;</div>
<div id="error"></div>
<div id="tunnels"></div>
<script>
"use strict";
const INTERVAL_MS = __INTERVAL_MS__;
const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e"];
const TUNNEL_COLOR = "#d62728";
const SVG_NS = "http://www.w3.org/2000/svg";
let renders = 0;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function duration(s) {
  if (s === null || s === undefined) return "-";
  if (s < 0) return "-" + duration(-s);
  if (s < 10) return s.toFixed(2) + "s";
  if (s < 60) return s.toFixed(1) + "s";
  const w = Math.floor(s);
  const pad = (n) => String(n).padStart(2, "0");
  if (w < 3600) return Math.floor(w / 60) + "m" + pad(w % 60) + "s";
  if (w < 86400) return Math.floor(w / 3600) + "h" + pad(Math.floor(w % 3600 / 60)) + "m";
  return Math.floor(w / 86400) + "d" + pad(Math.floor(w % 86400 / 3600)) + "h";
}
function clock(ns) {
  return ns ? new Date(ns / 1e6).toISOString().substring(11, 19) : "-";
}

function unitFor(maxSeconds) {
  for (const [div, name] of [[86400, "days"], [3600, "hours"], [60, "minutes"]]) {
    if (maxSeconds >= 2 * div) return [div, name];
  }
  return [1, "seconds"];
}

function chart(tunnel) {
  const W = 760, H = 260, L = 62, R = 16, T = 14, B = 44;
  const h = tunnel.history;
  const series = [{name: "tunnel lag", color: TUNNEL_COLOR, width: 2.5, values: h.tunnel_lag_s, cls: "tunnel-lag"}];
  Object.keys(h.channel_lag_s).forEach((id, i) => series.push(
    {name: id, color: PALETTE[i % PALETTE.length], width: 1.2, values: h.channel_lag_s[id], cls: "channel-lag"}));
  const root = svg("svg", {class: "lag-chart", id: "chart-" + tunnel.tunnel_id, width: W, height: H + 20 * Math.ceil(series.length / 3),
                           role: "img", "aria-label": "lag over time of tunnel " + tunnel.tunnel});
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const maxLag = Math.max(1, ...all) * 1.1;
  const [div, unit] = unitFor(maxLag);
  const t0 = h.t_ns[0], t1 = h.t_ns[h.t_ns.length - 1];
  const span = Math.max(1, t1 - t0);
  const x = (t) => L + (W - L - R) * (h.t_ns.length > 1 ? (t - t0) / span : 0.5);
  const y = (v) => T + (H - T - B) * (1 - v / maxLag);
  root.appendChild(svg("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#666"}));
  root.appendChild(svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#666"}));
  for (let i = 0; i <= 4; i++) {
    const v = maxLag * i / 4, yy = y(v);
    root.appendChild(svg("line", {x1: L, y1: yy, x2: W - R, y2: yy, stroke: "#e5e5e5"}));
    root.appendChild(svg("text", {x: L - 6, y: yy + 4, "text-anchor": "end"}, (v / div).toFixed(v / div < 10 ? 1 : 0)));
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + span * i / 3;
    const anchor = i === 0 ? "start" : i === 3 ? "end" : "middle";  // keep the end labels inside
    root.appendChild(svg("text", {x: x(t), y: H - B + 16, "text-anchor": anchor}, clock(t)));
  }
  root.appendChild(svg("text", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle"}, "service time (UTC)"));
  root.appendChild(svg("text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
                                transform: "rotate(-90 14 " + (T + H - B) / 2 + ")"}, "lag (" + unit + ")"));
  for (const s of series.slice(1).concat(series.slice(0, 1))) {
    let run = [];
    const flush = () => {
      if (run.length === 1) root.appendChild(svg("circle", {cx: run[0][0], cy: run[0][1], r: 3, fill: s.color, class: s.cls}));
      if (run.length > 1) root.appendChild(svg("polyline", {points: run.map((p) => p.join(",")).join(" "), fill: "none",
                                                            stroke: s.color, "stroke-width": s.width, class: s.cls}));
      run = [];
    };
    s.values.forEach((v, i) => { if (v === null) flush(); else run.push([x(h.t_ns[i]).toFixed(1), y(v).toFixed(1)]); });
    flush();
  }
  series.forEach((s, i) => {
    const lx = L + (i % 3) * 240, ly = H + 6 + 20 * Math.floor(i / 3);
    root.appendChild(svg("rect", {x: lx, y: ly, width: 14, height: 4, fill: s.color}));
    root.appendChild(svg("text", {x: lx + 20, y: ly + 6}, s.name));
  });
  return root;
}

function tunnelSection(t) {
  const section = el("section", {class: "tunnel", id: "tunnel-" + t.tunnel_id});
  const title = el("h2", {}, t.table + " / " + t.tunnel + " ");
  title.appendChild(el("span", {class: "level level-" + t.level}, t.level));
  section.appendChild(title);
  const summary = el("div", {class: "summary"});
  const left = t.expiry.applies ? duration(t.expiry.time_left_s) : "n/a";
  for (const text of ["type " + t.tunnel_type, "stage " + t.stage + (t.expired ? " (EXPIRED)" : ""),
                      "tunnel lag " + duration(t.lag_s), "consumed through " + t.consumed_through,
                      "retention " + (t.retention_s ? duration(t.retention_s) : "?") + " (" + t.retention_source + ")",
                      "time left before expiry " + left]) {
    summary.appendChild(el("span", {}, text));
  }
  section.appendChild(summary);
  if (t.reasons.length) section.appendChild(el("div", {class: "reasons"}, t.reasons.join("; ")));
  section.appendChild(el("div", {class: "note"}, t.expiry.note));
  const table = el("table", {class: "channels"});
  const head = el("tr");
  for (const name of ["channel", "type", "status", "owner", "consumed through (UTC)", "lag", "records read"]) head.appendChild(el("th", {}, name));
  table.appendChild(head);
  for (const c of t.channels) {
    const row = el("tr", {class: "channel"});
    row.appendChild(el("td", {class: "channel-id"}, c.channel_id));
    row.appendChild(el("td", {}, c.type || "-"));
    row.appendChild(el("td", {class: "status"}, c.status || "-"));
    row.appendChild(el("td", {class: "owner"}, c.owner || "-"));
    row.appendChild(el("td", {}, c.consumed_through));
    row.appendChild(el("td", {class: "num"}, duration(c.lag_s)));
    row.appendChild(el("td", {class: "num"}, c.records_read === null ? "-" : c.records_read));
    table.appendChild(row);
  }
  section.appendChild(table);
  section.appendChild(el("div", {class: "note"}, "records behind: unknown (the service reports records read per channel, not a backlog)"));
  section.appendChild(chart(t));
  return section;
}

function render(state) {
  document.getElementById("scope").textContent =
    "\u2014 " + (state.table ? "table " + state.table + ", " : "") + "instance " + state.instance + " at " + state.endpoint;
  document.getElementById("status").textContent =
    "refreshed " + clock(state.refreshed_ns) + " UTC (refresh " + state.refreshes + ", every " + INTERVAL_MS / 1000 +
    " s); " + state.tunnels.length + " tunnel(s); overall " + state.level;
  const error = document.getElementById("error");
  error.textContent = state.error || "";
  error.style.display = state.error ? "block" : "none";
  const box = document.getElementById("tunnels");
  box.replaceChildren(...state.tunnels.map(tunnelSection));
  if (!state.tunnels.length) box.appendChild(el("p", {}, state.refreshes ? "no tunnels" : "loading\u2026"));
  renders += 1;
  document.body.setAttribute("data-renders", String(renders));
}

async function poll() {
  try {
    const answer = await fetch("api/state", {cache: "no-store"});
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    render(await answer.json());
  } catch (err) {
    const error = document.getElementById("error");
    error.textContent = "cannot reach the monitor: " + err;
    error.style.display = "block";
  }
  setTimeout(poll, INTERVAL_MS);
}
poll();
</script>
</body>
</html>
"""
