// The deployments list (list.html): the server renders the rows; this keeps their
// status, errors and links live by reading the list route every few seconds.
"use strict";
Shipstack.page("list", () => {
  const { $, $$, enc, sleep, api, badge, ingressLinks } = Shipstack;
  const table = $("#deployments");
  const body = $("tbody", table);
  const empty = $("#empty-list");
  const live = $("#list-live");
  const url = table.dataset.listUrl;

  function rowFor(d) {
    const tr = document.createElement("tr");
    tr.dataset.name = d.name;
    const th = document.createElement("th");
    th.scope = "row";
    const a = document.createElement("a");
    a.href = `/deployments/${enc(d.name)}`;
    a.textContent = d.name;
    th.appendChild(a);
    const status = document.createElement("td");
    status.dataset.label = "Status";
    const err = document.createElement("span");
    err.className = "row-error";
    err.dataset.rowError = "";
    status.append(badge(d.status), err);
    const source = document.createElement("td");
    source.textContent = d.template === "image" ? (d.image || "image") : d.template;
    source.dataset.label = "Source";
    const vis = document.createElement("td");
    vis.textContent = d.visibility;
    vis.dataset.label = "Visibility";
    const ing = document.createElement("td");
    ing.dataset.ingresses = "";
    ing.dataset.label = "Open";
    tr.append(th, status, source, vis, ing);
    return tr;
  }

  async function refresh() {
    const items = await api("GET", url);
    const seen = new Set();
    for (const d of items) {
      seen.add(d.name);
      let tr = $$("tr[data-name]", body).find((r) => r.dataset.name === d.name);
      if (!tr) { tr = rowFor(d); body.appendChild(tr); }
      const old = $("[data-status-badge]", tr);
      if (old.textContent !== d.status) old.replaceWith(badge(d.status));
      $("[data-row-error]", tr).textContent = d.lastError || "";
      const cell = $("[data-ingresses]", tr);
      const hosts = (d.ingresses || []).map((i) => i.host).join(", ");
      if (cell.textContent.trim() !== hosts) ingressLinks(cell, d.ingresses);
    }
    $$("tr[data-name]", body).forEach((r) => { if (!seen.has(r.dataset.name)) r.remove(); });
    table.hidden = items.length === 0;
    empty.hidden = items.length > 0;
  }

  (async () => {
    for (;;) {
      await sleep(document.hidden ? 10000 : 3000);
      try {
        await refresh();
        live.textContent = `Status updates live (checked ${new Date().toLocaleTimeString()}).`;
      } catch (e) {
        live.textContent = `Could not refresh: ${e.message}`;
      }
    }
  })();
});
