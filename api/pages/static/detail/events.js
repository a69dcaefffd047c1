// The deployment page's Kubernetes events (detail/operations.js has the page context),
// read again on Refresh and when an operation ends.
"use strict";
Shipstack.page("detail", (page) => {
  const { $, plural, api, busy, fmtTime } = Shipstack;
  const { base, afterOperation } = page;

  const table = $("#events-table");
  const note = $("#events-note");
  const load = async () => {
    try {
      const r = await api("GET", `${base}/events?limit=50`);
      const body = $("tbody", table);
      body.replaceChildren();
      for (const e of r.events || []) {
        const tr = document.createElement("tr");
        if (e.type !== "Normal") tr.className = "warn";
        const cells = [["Time", fmtTime(e.time)], ["Type", e.type], ["Reason", e.reason],
          ["Object", `${e.object.kind}/${e.object.name}`],
          ["Message", e.count > 1 ? `${e.message} (×${e.count})` : e.message]];
        for (const [label, c] of cells) {
          const td = document.createElement("td");
          td.textContent = c || "";
          td.dataset.label = label;
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
      table.hidden = !(r.events || []).length;
      const n = (r.events || []).length;
      note.textContent = r.statusMessage || (n ? `${plural(n, "event")}, newest first.` : "No events.");
    } catch (e) {
      note.textContent = e.message;
    }
  };
  $("#events-refresh").addEventListener("click", (ev) => busy(ev.currentTarget, load));
  load();
  afterOperation.push(load);
});
