// The deployment page's overview (detail/operations.js has the page context): the
// live status, its message and the ingress links, from a long-poll of the status route
// (it answers at once when the status changes); and the Restart button.
"use strict";
Shipstack.page("detail", (page) => {
  const { $, enc, sleep, api, clearErrors, showErrors, busy, badge, ingressLinks } = Shipstack;
  const { name, start } = page;

  // Status: long-poll the status route (it answers at once when the status changes).
  (async () => {
    let wait = 0;
    for (;;) {
      try {
        const s = await api("GET", `/api/deployments/status?name=${enc(name)}&wait=${wait}`);
        wait = 25;
        for (const holder of [$("#head-status"), $("#status-text")]) {
          const old = $("[data-status-badge]", holder);
          if (old.textContent !== s.status) old.replaceWith(badge(s.status));
        }
        $("[data-status-message]").textContent = s.statusMessage || "";
        const cell = $("#ingresses");
        const hosts = (s.ingresses || []).map((i) => i.host).join(", ");
        if (!hosts || cell.textContent.trim() !== hosts) {
          ingressLinks(cell, s.ingresses, "Links appear when the deployment is Ready.");
        }
      } catch (e) {
        if (e.status === 404) {
          $("[data-status-message]").textContent = "This deployment no longer exists.";
          return;
        }
        await sleep(5000);
      }
    }
  })();

  // --- restart ---
  const restartForm = $("#restart-form");
  if (restartForm) {
    restartForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearErrors(restartForm);
      busy($("button", restartForm), async () => {
        try {
          await start(api("POST", "/api/deployments/restart", { deployment_name: name }));
        } catch (e) { showErrors(restartForm, e); }
      });
    });
  }
});
