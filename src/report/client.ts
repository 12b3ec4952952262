/**
 * The report's in-page script (plain ES2020, no template literals), inlined
 * into the HTML by `Html.ts`. It reads `window.GPUSVM_REPORT` (the events, the
 * result, the series) and draws: the address-space map (canvas; time slider,
 * zoom from the whole touched space to a 2 MiB window, wheel zoom, drag pan),
 * the per-actor swim lanes (one DOM lane per actor with a canvas; the
 * violation marker and the leading events highlighted), and the metric plots
 * (uPlot, bundled alongside).
 *
 * @since 0.3.0
 */

/**
 * The script's source text.
 *
 * @category assets
 * @since 0.3.0
 */
export const CLIENT_JS = String.raw`
(function () {
  "use strict";
  var D = window.GPUSVM_REPORT;
  var events = D.events;
  var MiB = 1024 * 1024;
  var leading = {};
  D.leading.forEach(function (s) { leading[s] = true; });
  function $(id) { return document.getElementById(id); }
  function hex(n) { return "0x" + n.toString(16); }
  function size(n) {
    if (n >= 1024 * MiB) return (n / 1024 / MiB).toFixed(1) + " GiB";
    if (n >= MiB) return (n / MiB).toFixed(1) + " MiB";
    if (n >= 1024) return (n / 1024).toFixed(0) + " KiB";
    return n + " B";
  }
  function describe(e) {
    var skip = { seq: 1, actor: 1, atMs: 1, realMs: 1, kind: 1 };
    var parts = [];
    for (var k in e) {
      if (skip[k]) continue;
      var v = e[k];
      if ((k === "start" || k === "end" || k === "addr") && typeof v === "number") v = hex(v);
      else if (k === "range" && v) v = hex(v.start) + "-" + hex(v.end);
      parts.push(k + "=" + (typeof v === "object" ? JSON.stringify(v) : v));
    }
    return "#" + e.seq + " " + e.actor + " " + e.kind + " " + parts.join(" ") + " @" + e.atMs + "ms";
  }

  // ---- summary ----------------------------------------------------------
  (function summary() {
    var r = D.result;
    var s = $("summary");
    var status = document.createElement("p");
    status.className = r.ok ? "ok" : "bad";
    status.textContent = r.scenario + ": " + (r.ok ? "ok" : "FAILED") + " (" + r.violations.length + " violations, " +
      r.failures.length + " failures, " + events.length + " events, " + r.durationMs + " ms)";
    s.appendChild(status);
    var ul = document.createElement("ul");
    r.violations.forEach(function (v) { var li = document.createElement("li"); li.className = "bad"; li.textContent = "violation " + v.invariant + ": " + v.detail; ul.appendChild(li); });
    r.failures.forEach(function (f) { var li = document.createElement("li"); li.className = "bad"; li.textContent = "failure " + f.step + ": " + f.detail; ul.appendChild(li); });
    s.appendChild(ul);
    var t = document.createElement("div");
    t.className = "metrics";
    var m = r.metrics;
    for (var k in m) {
      var v = m[k];
      if (typeof v === "object") { var sub = []; for (var j in v) if (v[j]) sub.push(j + " " + v[j]); v = sub.join(", ") || "0"; }
      var chip = document.createElement("span");
      chip.textContent = k + " " + v;
      t.appendChild(chip);
    }
    s.appendChild(t);
    $("scenario-text").textContent = D.scenarioText;
    $("command").textContent = D.command;
  })();

  // ---- address-space map --------------------------------------------------
  var COLORS = { system: "#3b82f6", vram: "#16a34a", unmapped: "#9ca3af", vma: "#f59e0b", notifier: "#a855f7" };
  function subtract(list, s, e) {
    var out = [];
    list.forEach(function (iv) {
      if (iv.end <= s || iv.start >= e) { out.push(iv); return; }
      if (iv.start < s) out.push({ start: iv.start, end: s, prot: iv.prot });
      if (iv.end > e) out.push({ start: e, end: iv.end, prot: iv.prot });
    });
    return out;
  }
  // the address-space state, advanced one event at a time
  function emptyState() { return { vmas: [], notifiers: {}, ranges: {} }; }
  function apply(st, e) {
    switch (e.kind) {
      case "vma-created": st.vmas = subtract(st.vmas, e.start, e.end); st.vmas.push({ start: e.start, end: e.end, prot: e.prot }); break;
      case "vma-removed": st.vmas = subtract(st.vmas, e.start, e.end); break;
      case "notifier-created": st.notifiers[e.start + "-" + e.end] = { start: e.start, end: e.end }; break;
      case "notifier-removed": delete st.notifiers[e.start + "-" + e.end]; break;
      case "range-created": st.ranges[e.id] = { start: e.start, end: e.end, state: "unmapped" }; break;
      case "range-state": if (st.ranges[e.id]) st.ranges[e.id].state = e.state; break;
      case "range-removed": delete st.ranges[e.id]; break;
    }
  }
  function values(o) { return Object.keys(o).map(function (k) { return o[k]; }); }
  // the state after event index i (inclusive)
  function stateAt(i) {
    var st = emptyState();
    for (var k = 0; k <= i && k < events.length; k++) apply(st, events[k]);
    return { vmas: st.vmas, notifiers: values(st.notifiers), ranges: values(st.ranges) };
  }
  // "whole space": everything the run touched (notifier windows included); the first view: the VMAs and ranges
  function extent(kinds) {
    var a = Infinity, b = 0;
    events.forEach(function (e) {
      if (kinds.indexOf(e.kind) < 0 || e.end - e.start > Math.pow(2, 46)) return;
      a = Math.min(a, e.start); b = Math.max(b, e.end);
    });
    return a < b ? { lo: a, hi: b } : null;
  }
  var whole = extent(["vma-created", "range-created", "notifier-created"]) || { lo: 0, hi: 2 * MiB };
  var first = extent(["vma-created", "range-created"]) || whole;
  var pad = (first.hi - first.lo) * 0.05;
  var view = { lo: Math.max(0, first.lo - pad), hi: first.hi + pad };
  var lo = whole.lo;
  var focus = (function () {
    var v = D.verdict;
    var m = v ? /0x[0-9a-f]+/i.exec(v.detail) : null;
    if (m) return Number(m[0]);
    for (var k = 0; k < events.length; k++) if (events[k].kind === "fault") return events[k].addr;
    return lo;
  })();
  var mapCanvas = $("map-canvas"), slider = $("map-time");
  slider.max = String(Math.max(0, events.length - 1));
  // start at the moment that matters: the last event that led to the verdict, else the last before the teardown
  slider.value = (function () {
    var idx = -1, k;
    var lead = {}; D.leading.forEach(function (q) { lead[q] = true; });
    for (k = 0; k < events.length; k++) if (lead[events[k].seq] && events[k].actor !== "main") idx = k;
    if (idx < 0) for (k = 0; k < events.length; k++) { if (events[k].actor === "main") break; idx = k; }
    return String(idx < 0 ? events.length - 1 : idx);
  })();
  var histCanvas = $("map-history");
  // the history: time (event index) down, address across; one pixel row per slice of events
  function drawHistory() {
    var ctx = histCanvas.getContext("2d");
    var W = histCanvas.width = histCanvas.clientWidth || 900, H = histCanvas.height = 220;
    ctx.clearRect(0, 0, W, H);
    var span = view.hi - view.lo;
    function x(a) { return (a - view.lo) / span * W; }
    var st = emptyState();
    var n = events.length, row = -1;
    function paint(y, h) {
      // layered: notifier windows faint, VMAs half-tone, ranges solid in their residency's colour
      function band(iv, color, alpha, inset) {
        var x0 = Math.max(0, x(iv.start)), x1 = Math.min(W, x(iv.end));
        if (x1 < 0 || x0 > W) return;
        ctx.globalAlpha = alpha; ctx.fillStyle = color;
        ctx.fillRect(x0 + inset, y, Math.max(1, x1 - x0 - 2 * inset), Math.ceil(h));
        ctx.globalAlpha = 1;
      }
      for (var key in st.notifiers) band(st.notifiers[key], COLORS.notifier, 0.15, 0);
      st.vmas.forEach(function (iv) { band(iv, COLORS.vma, 0.45, 0); });
      for (var id in st.ranges) band(st.ranges[id], COLORS[st.ranges[id].state], 1, 1);
    }
    var rowH = Math.max(1, H / Math.max(1, n));
    for (var k = 0; k < n; k++) {
      apply(st, events[k]);
      var y = Math.floor(k / n * H);
      if (y !== row) { row = y; paint(y, rowH); }
    }
    var ys = Number(slider.value) / Math.max(1, n) * H;
    ctx.strokeStyle = "#111"; ctx.setLineDash([4, 3]); ctx.beginPath(); ctx.moveTo(0, ys); ctx.lineTo(W, ys); ctx.stroke(); ctx.setLineDash([]);
    if (D.verdict) {
      var vi = 0; for (var j = 0; j < n; j++) if (events[j].seq <= D.verdict.seq) vi = j;
      var yv = vi / Math.max(1, n) * H; ctx.strokeStyle = "#dc2626"; ctx.beginPath(); ctx.moveTo(0, yv); ctx.lineTo(W, yv); ctx.stroke();
    }
  }
  histCanvas.addEventListener("click", function (ev) { slider.value = String(Math.floor(ev.offsetY / histCanvas.height * events.length)); drawMap(); });
  function drawMap() {
    var i = Number(slider.value);
    var st = stateAt(i);
    var ctx = mapCanvas.getContext("2d");
    var W = mapCanvas.width = mapCanvas.clientWidth || 900, H = mapCanvas.height = 150;
    ctx.clearRect(0, 0, W, H);
    var span = view.hi - view.lo;
    function x(a) { return (a - view.lo) / span * W; }
    var rows = [["VMAs", st.vmas, function () { return COLORS.vma; }], ["notifiers", st.notifiers, function () { return COLORS.notifier; }],
      ["ranges", st.ranges, function (r) { return COLORS[r.state]; }]];
    ctx.font = "11px sans-serif";
    rows.forEach(function (row, ri) {
      var y = 8 + ri * 42;
      ctx.fillStyle = "#f3f4f6"; ctx.fillRect(0, y, W, 30);
      row[1].forEach(function (iv) {
        var x0 = Math.max(0, x(iv.start)), x1 = Math.min(W, x(iv.end));
        if (x1 < 0 || x0 > W) return;
        ctx.fillStyle = row[2](iv); ctx.fillRect(x0, y + 2, Math.max(1, x1 - x0), 26);
        ctx.strokeStyle = "#111"; ctx.strokeRect(x0, y + 2, Math.max(1, x1 - x0), 26);
      });
      ctx.fillStyle = "#111"; ctx.fillText(row[0], 4, y + 12);
    });
    var fx = x(focus);
    if (fx >= 0 && fx <= W) { ctx.strokeStyle = "#dc2626"; ctx.beginPath(); ctx.moveTo(fx, 0); ctx.lineTo(fx, H); ctx.stroke(); }
    drawHistory();
    var e = events[i];
    $("map-info").textContent = "window " + hex(Math.floor(view.lo)) + " - " + hex(Math.ceil(view.hi)) + " (" + size(span) + ")  |  after " +
      (e ? describe(e) : "no events") + "  |  " + st.vmas.length + " VMAs, " + st.notifiers.length + " notifiers, " + st.ranges.length + " ranges";
  }
  function zoom(factor, center) {
    var c = center === undefined ? (view.lo + view.hi) / 2 : center;
    var span = Math.max(4096, (view.hi - view.lo) * factor);
    view.lo = Math.max(0, c - span / 2); view.hi = view.lo + span; drawMap();
  }
  $("zoom-whole").onclick = function () { view.lo = whole.lo; view.hi = whole.hi; drawMap(); };
  $("zoom-2m").onclick = function () { var b = Math.floor(focus / (2 * MiB)) * 2 * MiB; view.lo = b; view.hi = b + 2 * MiB; drawMap(); };
  $("zoom-in").onclick = function () { zoom(0.5); };
  $("zoom-out").onclick = function () { zoom(2); };
  mapCanvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var a = view.lo + ev.offsetX / mapCanvas.width * (view.hi - view.lo);
    zoom(ev.deltaY < 0 ? 0.8 : 1.25, a);
  }, { passive: false });
  var drag = null;
  mapCanvas.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, lo: view.lo, hi: view.hi }; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    var d = (ev.clientX - drag.x) / mapCanvas.width * (drag.hi - drag.lo);
    view.lo = Math.max(0, drag.lo - d); view.hi = view.lo + (drag.hi - drag.lo); drawMap();
  });
  slider.oninput = drawMap;
  drawMap();

  // ---- swim lanes ------------------------------------------------------------
  var KIND_COLOR = { fault: "#dc2626", invalidation: "#a855f7", migration: "#16a34a", gc: "#0891b2", op: "#6b7280", eviction: "#ea580c",
    "page-move": "#65a30d", "range-created": "#2563eb", "range-removed": "#1e3a8a", "range-state": "#60a5fa", "vma-created": "#f59e0b",
    "vma-removed": "#b45309", "notifier-created": "#c084fc", "notifier-removed": "#7e22ce", violation: "#000", failure: "#000", "get-pages": "#0d9488", bind: "#0f766e" };
  var actors = [];
  events.forEach(function (e) { if (e.kind !== "sample" && actors.indexOf(e.actor) < 0) actors.push(e.actor); });
  actors.sort(function (a, b) { var o = function (s) { return s === "main" ? 2 : s === "gc-worker" ? 1 : 0; }; return o(a) - o(b) || (a < b ? -1 : a > b ? 1 : 0); });
  var lanes = $("lanes");
  var n = events.length, maxSeq = n ? events[n - 1].seq + 1 : 1;
  var laneCanvases = [];
  actors.forEach(function (a) {
    var lane = document.createElement("div");
    lane.className = "lane"; lane.setAttribute("data-actor", a);
    var label = document.createElement("div"); label.className = "lane-label"; label.textContent = a;
    var c = document.createElement("canvas"); c.className = "lane-canvas"; c.height = 34;
    lane.appendChild(label); lane.appendChild(c); lanes.appendChild(lane);
    laneCanvases.push({ actor: a, canvas: c });
  });
  var byActor = {};
  events.forEach(function (e) { if (e.kind !== "sample") (byActor[e.actor] = byActor[e.actor] || []).push(e); });
  function laneX(seq, W) { return 2 + seq / maxSeq * (W - 4); }
  function drawLanes() {
    laneCanvases.forEach(function (l) {
      var c = l.canvas, W = c.width = c.clientWidth || 800, ctx = c.getContext("2d");
      ctx.clearRect(0, 0, W, c.height);
      (byActor[l.actor] || []).forEach(function (e) {
        var x0 = laneX(e.seq, W);
        ctx.fillStyle = KIND_COLOR[e.kind] || "#333";
        var h = e.kind === "op" ? 10 : 20, y = e.kind === "op" ? 2 : 12;
        ctx.fillRect(x0, y, Math.max(2, W / maxSeq), h);
        if (leading[e.seq]) { ctx.strokeStyle = "#facc15"; ctx.lineWidth = 3; ctx.strokeRect(x0 - 2, 0, Math.max(2, W / maxSeq) + 4, 34); ctx.lineWidth = 1; }
      });
    });
    var v = D.verdict, mk = $("violation-marker");
    if (v && mk) {
      var W0 = laneCanvases.length ? laneCanvases[0].canvas.width : 800;
      mk.style.left = (90 + laneX(v.seq, W0)) + "px";
    }
  }
  laneCanvases.forEach(function (l) {
    l.canvas.addEventListener("click", function (ev) {
      var W = l.canvas.width, best = null, bd = Infinity;
      (byActor[l.actor] || []).forEach(function (e) { var d = Math.abs(laneX(e.seq, W) - ev.offsetX); if (d < bd) { bd = d; best = e; } });
      if (best) {
        $("event-detail").textContent = describe(best);
        var idx = events.indexOf(best); if (idx >= 0) { slider.value = String(idx); drawMap(); }
      }
    });
  });
  if (D.verdict) {
    var mk = document.createElement("div");
    mk.id = "violation-marker"; mk.className = "violation-marker"; mk.title = D.verdict.kind + ": " + D.verdict.what + ": " + D.verdict.detail;
    mk.textContent = "\u2716 " + D.verdict.what;
    lanes.appendChild(mk);
    var list = $("leading");
    var head = document.createElement("p");
    head.textContent = D.verdict.kind + " " + D.verdict.what + ": " + D.verdict.detail + " - " + D.leading.length + " events led to it (outlined in the lanes):";
    list.appendChild(head);
    var ol = document.createElement("ol");
    var bySeq = {};
    events.forEach(function (e) { bySeq[e.seq] = e; });
    D.leading.forEach(function (s) { var li = document.createElement("li"); li.className = "leading-event"; li.textContent = describe(bySeq[s]); ol.appendChild(li); });
    list.appendChild(ol);
  }
  var legend = $("legend");
  Object.keys(KIND_COLOR).forEach(function (k) { var s = document.createElement("span"); s.innerHTML = "<i style=\"background:" + KIND_COLOR[k] + "\"></i>" + k; legend.appendChild(s); });
  drawLanes();

  // ---- plots (uPlot) ---------------------------------------------------------
  var S = D.series;
  function plot(id, title, names, cols, colors) {
    var el = $(id);
    var opts = { title: title, width: Math.max(300, el.clientWidth || 800), height: 200, scales: { x: { time: false } },
      series: [{ label: "event #" }].concat(names.map(function (nm, i) { return { label: nm, stroke: colors[i], width: 1.5 }; })) };
    return new uPlot(opts, [S.x].concat(cols), el);
  }
  plot("plot-counts", "faults, retries, invalidations, GC passes (cumulative)", ["faults", "retries", "invalidations", "gc passes"],
    [S.faults, S.retries, S.invalidations, S.gc], ["#dc2626", "#f97316", "#a855f7", "#0891b2"]);
  var reasons = Object.keys(S.retriesBy);
  plot("plot-retries", "fault retries by reason (cumulative)", reasons, reasons.map(function (r) { return S.retriesBy[r]; }),
    ["#f59e0b", "#ef4444", "#8b5cf6", "#0ea5e9", "#10b981"]);
  plot("plot-bytes", "bytes migrated each way (cumulative) and VRAM in use", ["to VRAM", "to RAM", "VRAM used"],
    [S.bytesToVram, S.bytesToRam, S.vramUsed], ["#16a34a", "#2563eb", "#111827"]);
  plot("plot-dma", "live DMA mappings", ["DMA mappings"], [S.dmaLive], ["#db2777"]);
  window.addEventListener("resize", function () { drawMap(); drawLanes(); });
  document.body.setAttribute("data-ready", "1");
})();
`
