// The deployment page's metrics (detail/operations.js has the page context): the
// values now, and CPU and memory over a window drawn by static/charts.js
// (window.ShipstackCharts); for the service chosen under Logs when there are several.
"use strict";
Shipstack.page("detail", (page) => {
  const { $, $$, api, busy, fmtTime } = Shipstack;
  const { base, afterOperation } = page;

  const note = $("#metrics-note");
  const section = $("#metrics");
  const buttons = $$("[data-window]", section);
  let windowName = "1h";
  const load = async () => {
    try {
      const params = new URLSearchParams({ window: windowName });
      const svc = $("#logs-service");
      if (svc) params.set("service", svc.value);
      const m = await api("GET", `${base}/metrics?${params}`);
      const shown = $("[data-metric-service]");
      if (svc && shown) shown.firstChild.textContent = `${svc.value} `;
      for (const dd of $$("[data-metric]")) {
        const v = m[dd.dataset.metric];
        dd.textContent = dd.dataset.metric === "timestamp" ? fmtTime(v) : String(v);
      }
      note.textContent = m.statusMessage || "";
      if (m.window === windowName) window.ShipstackCharts.render(section, m);
    } catch (e) {
      note.textContent = e.message;
    }
  };
  for (const b of buttons) {
    b.addEventListener("click", () => {
      windowName = b.dataset.window;
      buttons.forEach((o) => o.setAttribute("aria-pressed", o === b ? "true" : "false"));
      busy(b, load);
    });
  }
  $("#metrics-refresh").addEventListener("click", (ev) => busy(ev.currentTarget, load));
  const svcSelect = $("#logs-service");
  if (svcSelect) svcSelect.addEventListener("change", load);
  load();
  setInterval(() => { if (!document.hidden) load(); }, 30000);
  afterOperation.push(load);
});
