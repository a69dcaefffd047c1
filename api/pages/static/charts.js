// shipstack charts: CPU and memory over time as SVG, drawn with DOM calls only (the
// pages' Content-Security-Policy allows no inline style or script; colours and line
// styles come from classes in shipstack.css). `ShipstackCharts.render(section, m)`,
// called by detail/metrics.js with each metrics answer, fills the section's two charts,
// legend and list of markers, and redraws the charts itself when the window is resized;
// `ShipstackCharts.draw(box, chart)` replaces what one chart's `box` shows.
"use strict";
window.ShipstackCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const MINUTE = 60000;
  const HOUR = 60 * MINUTE;
  const TIME_STEPS = [5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720].map((m) => m * MINUTE);
  const MIB = 2 ** 20;
  const GIB = 2 ** 30;
  const COLOURS = 6; // classes s0..s5

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, value, cls, anchor = "middle") {
    const t = el("text", { x, y, class: cls, "text-anchor": anchor }, parent);
    t.textContent = value;
    return t;
  }

  // A round step (1, 2, 2.5 or 5 times a power of ten) giving about `count` ticks up to `max`.
  function niceStep(max, count) {
    const raw = max / Math.max(1, count);
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  // How a quantity is shown: the unit that suits the largest value in view.
  function unitFor(kind, max) {
    if (kind === "cpu") {
      return max >= 1000
        ? { name: "cores", scale: 1000, format: (v) => `${trim(v / 1000)}` }
        : { name: "millicores", scale: 1, format: (v) => `${trim(v)}` };
    }
    return max >= GIB
      ? { name: "GiB", scale: GIB, format: (v) => `${trim(v / GIB)}` }
      : { name: "MiB", scale: MIB, format: (v) => `${trim(v / MIB)}` };
  }

  function trim(v) {
    return String(Math.round(v * 100) / 100);
  }

  function clock(ms) {
    const d = new Date(ms);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }

  function fullTime(ms) {
    return new Date(ms).toLocaleString();
  }

  // Time ticks on whole local minutes/hours, at most one per `minGap` pixels.
  function timeTicks(start, end, width, minGap) {
    const span = end - start;
    const step = TIME_STEPS.find((s) => (span / s) * minGap <= width) || 24 * HOUR;
    const offset = new Date(start).getTimezoneOffset() * MINUTE;
    const first = Math.ceil((start - offset) / step) * step + offset;
    const ticks = [];
    for (let t = first; t <= end; t += step) ticks.push(t);
    return ticks;
  }

  // Runs of points to join with a line: a new run after a gap.
  function runs(points) {
    const out = [];
    for (const p of points) {
      if (!out.length || p.gapBefore) out.push([]);
      out[out.length - 1].push(p);
    }
    return out;
  }

  // chart: {kind: "cpu"|"memory", title, start, end (ms), series: [{service, colour, points:
  // [{t, v, gapBefore}]}], markers: [{t, kind, label}], empty: text when nothing is measured}
  function draw(box, chart) {
    box.replaceChildren();
    const width = Math.max(260, Math.floor(box.clientWidth || 600));
    const narrow = width < 480;
    const height = narrow ? 170 : 200;
    const values = chart.series.flatMap((s) => s.points.map((p) => p.v));
    const peak = values.length ? Math.max(...values) : 0;
    const unit = unitFor(chart.kind, peak);
    // Round steps in the unit shown (50 MiB, not 50 000 000 bytes).
    const top = Math.max(peak * 1.15, chart.kind === "cpu" ? 10 : 16 * MIB) / unit.scale;
    const step = niceStep(top, narrow ? 3 : 4) * unit.scale;
    const yMax = Math.ceil((top * unit.scale) / step) * step;
    const yTicks = [];
    for (let v = 0; v <= yMax + step / 2; v += step) yTicks.push(v);
    const labelWidth = Math.max(...yTicks.map((v) => unit.format(v).length)) * 7 + 10;
    const m = { left: labelWidth, right: 10, top: 12, bottom: 24 };
    const w = width - m.left - m.right;
    const h = height - m.top - m.bottom;
    const x = (t) => m.left + ((t - chart.start) / (chart.end - chart.start)) * w;
    const y = (v) => m.top + h - (v / yMax) * h;

    const latest = chart.series.map((s) => s.points.length ? `${s.service} ${unit.format(s.points[s.points.length - 1].v)}` : "")
      .filter(Boolean).join(", ");
    const svg = el("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: `chart-svg ${chart.kind}`,
      "aria-label": `${chart.title} in ${unit.name}, ${clock(chart.start)} to ${clock(chart.end)}` +
        (values.length ? `: latest ${latest}; peak ${unit.format(peak)}` : `: ${chart.empty}`),
    });

    const grid = el("g", { class: "grid" }, svg);
    for (const v of yTicks) {
      el("line", { x1: m.left, x2: m.left + w, y1: y(v), y2: y(v) }, grid);
      text(grid, m.left - 6, y(v) + 4, unit.format(v), "tick", "end");
    }
    const axis = el("g", { class: "axis" }, svg);
    el("line", { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h }, axis);
    for (const t of timeTicks(chart.start, chart.end, w, narrow ? 64 : 80)) {
      el("line", { x1: x(t), x2: x(t), y1: m.top + h, y2: m.top + h + 4 }, axis);
      text(axis, x(t), height - 6, clock(t), "tick");
    }

    const marks = el("g", { class: "markers" }, svg);
    for (const mk of chart.markers) {
      if (mk.t < chart.start || mk.t > chart.end) continue;
      const g = el("g", { class: `marker ${mk.kind}` }, marks);
      el("title", {}, g).textContent = `${mk.kind === "restart" ? "Pod restart" : "Revision"}, ${fullTime(mk.t)}: ${mk.label}`;
      el("line", { x1: x(mk.t), x2: x(mk.t), y1: m.top, y2: m.top + h }, g);
      if (mk.kind === "restart") el("circle", { cx: x(mk.t), cy: m.top, r: 4 }, g);
      else el("path", { d: `M${x(mk.t) - 4},${m.top - 5}h8l-4,7z` }, g);
    }

    for (const s of chart.series) {
      const g = el("g", { class: `series s${s.colour % COLOURS}` }, svg);
      el("title", {}, g).textContent = s.service;
      for (const run of runs(s.points)) {
        if (run.length === 1) {
          el("circle", { cx: x(run[0].t), cy: y(run[0].v), r: 2.5, class: "dot" }, g);
          continue;
        }
        const d = run.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
        el("path", { d, class: "line" }, g);
      }
    }

    if (!values.length) text(svg, m.left + w / 2, m.top + h / 2, chart.empty, "empty");
    const caption = document.createElement("p");
    caption.className = "chart-caption";
    caption.textContent = `${chart.title} (${unit.name})`;
    box.append(caption, svg);
  }

  function li(list, swatchClass, label) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${swatchClass}`;
    swatch.setAttribute("aria-hidden", "true");
    item.append(swatch, label);
    list.appendChild(item);
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // The "over time" part of the metrics section from one `GET .../metrics?window=` answer.
  function render(section, m) {
    const start = Date.parse(m.windowStart);
    const end = Date.parse(m.windowEnd);
    const series = m.series || [];
    const markers = (m.markers || []).map((k) => ({ t: Date.parse(k.time), kind: k.kind, label: k.label }));
    const empty = "No samples in this window yet";
    const pick = (key) => series.map((s, i) => ({
      service: s.service, colour: i,
      points: s.points.map((p) => ({ t: Date.parse(p.time), v: p[key], gapBefore: !!p.gapBefore })),
    }));
    const boxes = {
      cpu: section.querySelector("#chart-cpu [data-chart]"),
      memory: section.querySelector("#chart-memory [data-chart]"),
    };
    const charts = {
      cpu: { kind: "cpu", title: "CPU", start, end, series: pick("cpuMillicores"), markers, empty },
      memory: { kind: "memory", title: "Memory", start, end, series: pick("memoryBytes"), markers, empty },
    };
    const redraw = () => { for (const k of Object.keys(boxes)) draw(boxes[k], charts[k]); };
    redraw();
    section.shipstackRedraw = redraw;

    const legend = section.querySelector("#chart-legend");
    legend.replaceChildren();
    series.forEach((s, i) => li(legend, `s${i % COLOURS}`, s.service));
    li(legend, "revision", "revision (a change applied)");
    li(legend, "restart", "pod restart");

    const points = series.reduce((n, s) => n + s.points.length, 0);
    section.querySelector("#chart-note").textContent = points ? ""
      : m.intervalSeconds
        ? `${empty}: shipstack samples CPU and memory every ${m.intervalSeconds} s while the deployment is Ready.`
        : `${empty}: sampling is off on this service (SHIPSTACK_METRICS_INTERVAL=0).`;

    const box = section.querySelector("#chart-events");
    const list = box.querySelector("ul");
    list.replaceChildren();
    for (const mk of [...markers].reverse()) {
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = new Date(mk.t).toISOString();
      time.textContent = fullTime(mk.t);
      item.className = mk.kind;
      item.append(time, ` ${mk.kind === "restart" ? "Pod restart" : "Revision"}: ${mk.label}`);
      list.appendChild(item);
    }
    const revisions = markers.filter((k) => k.kind === "revision").length;
    const restarts = markers.length - revisions;
    box.querySelector("summary").textContent =
      `${plural(revisions, "revision")} and ${plural(restarts, "pod restart")} in this window`;
    box.hidden = markers.length === 0;
  }

  // Charts follow the width of the page (a phone turned, a window resized).
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const section of document.querySelectorAll("#metrics")) if (section.shipstackRedraw) section.shipstackRedraw();
    }, 150);
  });

  return { draw, render };
})();
