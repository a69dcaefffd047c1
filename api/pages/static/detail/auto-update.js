// The deployment page's auto-update settings and the scheduler's last decision
// (detail/operations.js has the page context); saving starts an operation.
"use strict";
Shipstack.page("detail", (page) => {
  const { $, api, clearErrors, showErrors, localError, busy, fmtTime } = Shipstack;
  const { name, base, start, afterOperation } = page;

  const autoForm = $("#auto-form");
  async function autoStatus() {
    const box = $("#auto-status");
    if (!box) return;
    try {
      const s = await api("GET", `${base}/auto-update/status`);
      if (!s.checkedAt) {
        box.textContent = s.enabled ? "Not checked yet." : "";
      } else {
        box.textContent = `Last check ${fmtTime(s.checkedAt)}: ${s.action || "—"}${s.reason ? ` (${s.reason})` : ""}` +
          (s.nextCheckAt ? `. Next check ${fmtTime(s.nextCheckAt)}.` : ".");
      }
    } catch (e) {
      box.textContent = `Auto-update status unavailable: ${e.message}`;
    }
  }
  if (autoForm) {
    autoStatus();
    autoForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearErrors(autoForm);
      const el = autoForm.elements;
      const interval = el.intervalSeconds.value.trim();
      if (interval && !/^\d+$/.test(interval)) {
        localError(autoForm, el.intervalSeconds, "Seconds, as a whole number").focus();
        return;
      }
      const body = {
        deployment_name: name,
        enabled: el.enabled.checked,
        strategy: el.strategy.value,
        policy: el.policy.value,
        include: el.include.value.trim() || null,
        exclude: el.exclude.value.trim() || null,
        intervalSeconds: interval ? Number(interval) : null,
        prerelease: el.prerelease.checked,
      };
      busy($("button[type=submit]", autoForm), async () => {
        try {
          await start(api("PUT", "/api/deployments/auto-update", body));
          autoStatus();
        } catch (e) { showErrors(autoForm, e); }
      });
    });
  }
  afterOperation.push(() => autoForm && autoStatus());
});
