// The deployment page's history (detail/operations.js has the page context): the
// revisions, newest first, with a Roll back button on each earlier successful update.
// It is read when no operation is in flight (reading the history of a stack that its
// create has not made yet must not race with that create).
"use strict";
Shipstack.page("detail", (page) => {
  const { $, plural, api, busy, fmtTime } = Shipstack;
  const { base, canWrite, start, afterOperation, running, resumed } = page;

  const histTable = $("#history-table");
  const histNote = $("#history-note");
  const histError = $("#history-error");
  async function loadHistory(afterOp = false) {
    if (running() > (afterOp ? 1 : 0)) {
      histNote.textContent = "The history is shown when the current operation has finished.";
      return;
    }
    try {
      const r = await api("GET", `${base}/history`);
      const body = $("tbody", histTable);
      body.replaceChildren();
      let current = null;
      for (const rev of r.revisions || []) {
        if (current === null && rev.kind === "update" && rev.result === "succeeded") current = rev.version;
      }
      for (const rev of r.revisions || []) {
        const tr = document.createElement("tr");
        tr.dataset.version = rev.version;
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = `#${rev.version}`;
        if (rev.version === current) {
          const tag = document.createElement("span");
          tag.className = "badge current";
          tag.textContent = "current";
          th.append(" ", tag);
        }
        const changes = Object.entries(rev.resourceChanges || {}).filter(([k]) => k !== "same").map(([k, v]) => `${k} ${v}`);
        const cells = [["When", fmtTime(rev.startTime)], ["Change", rev.message || rev.kind], ["Result", rev.result],
          ["Resources", changes.join(", ") || "no changes"]];
        tr.appendChild(th);
        for (const [label, c] of cells) {
          const td = document.createElement("td");
          td.textContent = c;
          td.dataset.label = label;
          tr.appendChild(td);
        }
        const act = document.createElement("td");
        if (canWrite && rev.kind === "update" && rev.result === "succeeded" && rev.version !== current) {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "secondary small";
          b.dataset.rollback = rev.version;
          b.textContent = `Roll back to #${rev.version}`;
          act.appendChild(b);
        }
        tr.appendChild(act);
        body.appendChild(tr);
      }
      histTable.hidden = !(r.revisions || []).length;
      histNote.textContent = (r.revisions || []).length
        ? `${plural(r.revisions.length, "revision")}, newest first. Rolling back applies the configuration a revision ran with, as a new revision.`
        : "No revisions yet: the first one appears when the deployment has been created.";
    } catch (e) {
      histNote.textContent = `History unavailable: ${e.message}`;
    }
  }
  histTable.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-rollback]");
    if (!b) return;
    histError.hidden = true;
    const version = Number(b.dataset.rollback);
    await busy(b, async () => {
      try {
        await start(api("POST", `${base}/rollback`, { version }));
      } catch (e) {
        histError.textContent = `Rollback to #${version}: ${e.message}`;
        histError.hidden = false;
        histError.tabIndex = -1;
        histError.focus();
      }
    });
  });
  $("#history-refresh").addEventListener("click", (ev) => busy(ev.currentTarget, () => loadHistory()));
  // After an operation: `running()` still counts the one that just finished.
  afterOperation.push(() => loadHistory(true));
  resumed.then(() => loadHistory());
});
