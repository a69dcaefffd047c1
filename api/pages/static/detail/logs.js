// The deployment page's live logs (detail/operations.js has the page context): the
// log stream route over SSE, resumed from the last line seen; pause, clear, and one
// service of several at a time.
"use strict";
Shipstack.page("detail", (page) => {
  if (!window.EventSource) return;
  const { $ } = Shipstack;
  const { base } = page;

  const out = $("#log-output");
  const state = $("#logs-state");
  const toggle = $("#logs-toggle");
  const svcSelect = $("#logs-service");
  let es = null;
  let lastId = "";
  let lines = 0;
  const MAX_LINES = 2000;
  const pods = new Set();
  const append = (text, cls) => {
    const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 8;
    const span = document.createElement("span");
    if (cls) span.className = cls;
    span.textContent = text + "\n";
    out.appendChild(span);
    if (++lines > MAX_LINES) { out.firstChild.remove(); lines -= 1; }
    if (atBottom) out.scrollTop = out.scrollHeight;
  };
  const open = () => {
    const params = new URLSearchParams({ tail: "200" });
    if (svcSelect) params.set("service", svcSelect.value);
    if (lastId) params.set("lastEventId", lastId);
    es = new EventSource(`${base}/logs/stream?${params}`);
    state.textContent = "Connecting…";
    es.onopen = () => { state.textContent = "Live"; };
    es.onmessage = (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      const d = JSON.parse(e.data);
      pods.add(d.pod);
      append(pods.size > 1 ? `[${d.pod}] ${d.line}` : d.line);
      state.textContent = "Live";
    };
    es.addEventListener("status", (e) => { state.textContent = JSON.parse(e.data).message; });
    es.addEventListener("pod", (e) => {
      const d = JSON.parse(e.data);
      append(`— ${d.state === "added" ? "following" : "stopped following"} pod ${d.pod} —`, "note");
      if (d.state === "added") state.textContent = "Live";
    });
    es.addEventListener("end", (e) => {
      state.textContent = JSON.parse(e.data).message || "The stream ended.";
      es.close();
    });
    es.onerror = () => {
      state.textContent = es.readyState === EventSource.CLOSED ? "Disconnected." : "Reconnecting…";
    };
  };
  toggle.addEventListener("click", () => {
    const pause = toggle.getAttribute("aria-pressed") !== "true";
    toggle.setAttribute("aria-pressed", pause ? "true" : "false");
    toggle.textContent = pause ? "Resume" : "Pause";
    if (pause) { if (es) es.close(); state.textContent = "Paused"; } else open();
  });
  $("#logs-clear").addEventListener("click", () => { out.replaceChildren(); lines = 0; });
  if (svcSelect) {
    svcSelect.addEventListener("change", () => {
      if (es) es.close();
      lastId = "";
      out.replaceChildren();
      pods.clear();
      lines = 0;
      if (toggle.getAttribute("aria-pressed") !== "true") open();
    });
  }
  open();
});
