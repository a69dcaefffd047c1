// The deployment page (detail.html, <body data-page="detail">) is one script per
// section, static/detail/*.js, loaded in page order. This file makes the context they
// all receive, and shows the progress of the operations they start:
//   page.root, page.name, page.base     the #deployment element, the deployment's name,
//                                       its API url (/api/deployments/{name})
//   page.canWrite                       the credential may change it (data-can-write)
//   page.afterOperation                 hooks, each called with the status when an
//                                       operation followed here ends
//   page.follow(opId, label)            show an operation's progress in #operation
//                                       (one after another); resolves to its status
//   page.start(promise)                 follow what the API accepted (`operationId`)
//   page.running()                      how many operations are being followed
//   page.resumed                        resolves once the operations that were running
//                                       when the page opened are being followed
// An operation's progress comes from its SSE stream, or from polling the operation
// when the browser has no EventSource or the stream is refused.
"use strict";
Shipstack.pageContext("detail", () => {
  const { $, enc, sleep, api } = Shipstack;
  const root = $("#deployment");
  const name = root.dataset.name;
  const base = `/api/deployments/${enc(name)}`;
  const afterOperation = [];

  const panel = $("#operation");
  const summary = $("#op-summary");
  const bar = $("#op-progress");
  const steps = $("#op-steps");

  let following = Promise.resolve();
  let running = 0;  // operations being followed
  function follow(opId, label) {
    running += 1;
    following = following.then(() => followOne(opId, label)).finally(() => { running -= 1; });
    return following;
  }

  function followOne(opId, knownLabel) {
    panel.hidden = false;
    panel.classList.remove("failed", "succeeded");
    steps.replaceChildren();
    bar.removeAttribute("value");
    const byUrn = new Map();
    let label = knownLabel || "Operation";
    let total = 0;
    let done = 0;
    const say = (text) => { summary.textContent = `${label}: ${text}`; };
    say("waiting to start…");

    function add(item) {
      const li = document.createElement("li");
      if (item.type === "step") {
        const short = String(item.urn || "").split("::").pop();
        li.textContent = `${item.op} ${item.resource} ${short}`;
        li.className = "step running";
        byUrn.set(item.urn, li);
        total += 1;
      } else if (item.type === "done") {
        const prior = byUrn.get(item.urn);
        if (prior) { prior.className = "step done"; prior.textContent += " ✓"; }
        done += 1;
        say(`${done} of ${total} resources done`);
        return;
      } else if (item.type === "diagnostic") {
        li.textContent = `${item.severity}: ${item.message}`;
        li.className = `diag ${item.severity}`;
      } else if (item.type === "summary") {
        const parts = Object.entries(item.changes || {}).map(([k, v]) => `${k} ${v}`);
        li.textContent = `Summary: ${parts.join(", ") || "no changes"}${item.duration_s ? ` in ${item.duration_s} s` : ""}`;
        li.className = "summary";
      } else {
        return;
      }
      steps.appendChild(li);
      if (item.type === "step") say(`${done} of ${total} resources done`);
    }

    return new Promise((resolve) => {
      let finished = false;
      let lastSeq = -1;
      const finish = (status, message, error) => {
        if (finished) return;
        finished = true;
        bar.max = 1;
        bar.value = 1;
        panel.classList.add(status === "succeeded" ? "succeeded" : "failed");
        const more = message && message !== label ? ` — ${message}` : "";
        say(status === "succeeded" ? `succeeded${more}` : `${status}${error ? `: ${error}` : ""}`);
        if (new URLSearchParams(location.search).get("op") === opId) history.replaceState(null, "", location.pathname);
        afterOperation.forEach((fn) => fn(status));
        resolve(status);
      };
      const take = (item, index) => {
        const seq = typeof item.sequence === "number" ? item.sequence : index;
        if (seq <= lastSeq) return;
        lastSeq = seq;
        add(item);
      };
      const poll = async () => {
        while (!finished) {
          try {
            const op = await api("GET", `/api/operations/${enc(opId)}`);
            if (!knownLabel) label = op.message || op.kind;
            (op.progress || []).forEach(take);
            if (op.status === "succeeded" || op.status === "failed") return finish(op.status, op.message, op.error);
            if (!total) say(op.status === "queued" ? "waiting to start…" : "running…");
          } catch (e) {
            if (e.status === 404) return finish("gone", "", "the operation is no longer visible");
            say(`cannot read its progress (${e.message}); retrying`);
          }
          await sleep(1000);
        }
      };
      api("GET", `/api/operations/${enc(opId)}`).then((op) => {
        if (!knownLabel) label = op.message || op.kind;
        if (!total && !finished) say(op.status === "queued" ? "waiting to start…" : "running…");
      }).catch(() => {});
      if (!window.EventSource) { poll(); return; }
      const es = new EventSource(`/api/operations/${enc(opId)}/events`);
      for (const type of ["step", "done", "diagnostic", "summary"]) {
        es.addEventListener(type, (e) => take(JSON.parse(e.data), Number(e.lastEventId)));
      }
      es.addEventListener("end", (e) => {
        es.close();
        const d = JSON.parse(e.data);
        finish(d.status, d.message, d.error);
      });
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED && !finished) poll();  // refused: read it instead
      };
    });
  }

  async function start(promise) {
    const accepted = await promise;
    if (accepted && accepted.operationId) {
      panel.scrollIntoView({ block: "nearest" });
      return follow(accepted.operationId, accepted.message);
    }
    return null;
  }

  // Follow what was just accepted (?op=), else whatever is still running (in the
  // order they were made); detail/history.js waits for this before its first read.
  const activeOps = root.dataset.op ? Promise.resolve([root.dataset.op])
    : api("GET", `${base}/operations`).then((r) => {
      const active = (r.operations || []).filter((o) => o.status === "queued" || o.status === "running");
      active.sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
      return active.map((o) => o.id);
    }).catch(() => []);
  const resumed = activeOps.then((ids) => {
    ids.forEach((id) => follow(id));
  });

  return {
    root, name, base,
    canWrite: root.dataset.canWrite === "true",
    afterOperation, follow, start, resumed,
    running: () => running,
  };
});
