// The deployment page's configuration editor (detail/operations.js has the page
// context): a change is previewed first (the engine says what it does), and Apply
// sends exactly the previewed variables; an operation that ends reloads the editor
// unless it holds edits not applied yet.
"use strict";
Shipstack.page("detail", (page) => {
  const { $, enc, plural, api, clearErrors, showErrors, busy, addEnvRow, syncEmpty, readEnv } = Shipstack;
  const { name, base, start, afterOperation } = page;

  const cfg = $("#config-form");
  const applyBtn = $("#apply-config");
  const preview = $("#preview-result");
  let previewed = null;
  let dirty = false;  // edits not applied yet: a finished operation does not overwrite them
  async function reloadConfig() {
    if (dirty || !cfg) return;
    try {
      const r = await api("GET", `/api/deployments/config?name=${enc(name)}`);
      const list = $("[data-env-list]", cfg);
      list.replaceChildren();
      for (const key of Object.keys(r.configData || {}).sort()) addEnvRow(list, key, r.configData[key]);
      syncEmpty(list);
      const all = $("[data-reveal-all]", cfg);
      all.setAttribute("aria-pressed", "false");
      all.textContent = "Show all values";
    } catch (e) { /* the editor keeps what it shows */ }
  }
  afterOperation.push(reloadConfig);
  if (cfg && applyBtn) {
    const applyHelp = $("#apply-help");
    cfg.addEventListener("input", () => {
      dirty = true;
      if (previewed !== null) {
        previewed = null;
        applyBtn.disabled = true;
        applyHelp.textContent = "The change was edited: preview it again to enable Apply.";
      }
    });
    cfg.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(cfg);
      const { env, firstError } = readEnv(cfg);
      if (firstError) { firstError.focus(); return; }
      await busy($("#preview-config"), async () => {
        preview.hidden = false;
        preview.setAttribute("aria-busy", "true");
        preview.textContent = "Asking the engine what this change does…";
        try {
          const r = await api("POST", `${base}/preview`, { configData: env });
          renderPreview(r);
          const changed = (r.steps || []).some((s) => s.op !== "same");
          previewed = changed ? JSON.stringify(env) : null;
          applyBtn.disabled = !changed;
          applyHelp.textContent = changed ? "Applies exactly the change previewed above." : "Nothing to apply.";
          if (changed) applyBtn.focus();
        } catch (e) {
          preview.hidden = true;
          showErrors(cfg, e);
        } finally {
          preview.removeAttribute("aria-busy");
        }
      });
    });
    applyBtn.addEventListener("click", async () => {
      clearErrors(cfg);
      const { env, firstError } = readEnv(cfg);
      if (firstError) { firstError.focus(); return; }
      if (previewed === null || JSON.stringify(env) !== previewed) {
        applyBtn.disabled = true;
        return;
      }
      await busy(applyBtn, async () => {
        try {
          const accepted = await api("PUT", "/api/deployments/config", { deployment_name: name, configData: env });
          previewed = null;
          dirty = false;
          preview.hidden = true;
          applyHelp.textContent = "Applying…";
          const status = await start(accepted);
          applyHelp.textContent = status === "succeeded" ? "Applied as a new revision." : "The change failed: see the operation above.";
        } catch (e) {
          showErrors(cfg, e);
        }
      });
      applyBtn.disabled = true;
    });
  }

  function renderPreview(r) {
    preview.replaceChildren();
    const h = document.createElement("h3");
    h.textContent = "Preview";
    const p = document.createElement("p");
    const counts = Object.entries(r.changes || {}).filter(([k]) => k !== "same").map(([k, v]) => `${k} ${plural(v, "resource")}`);
    p.textContent = counts.length ? `This change will ${counts.join(", ")}.` : "No change: this is the configuration that runs now.";
    preview.append(h, p);
    const changed = (r.steps || []).filter((s) => s.op !== "same");
    if (changed.length) {
      const ul = document.createElement("ul");
      for (const s of changed) {
        const li = document.createElement("li");
        li.textContent = `${s.op} ${s.type} ${s.name}${s.diffs && s.diffs.length ? ` (${s.diffs.join(", ")})` : ""}`;
        ul.appendChild(li);
      }
      preview.appendChild(ul);
    }
    if (r.podsWillRoll) {
      const roll = document.createElement("p");
      roll.className = "warn";
      roll.textContent = "The pods will be replaced (rolling restart).";
      preview.appendChild(roll);
    }
  }
});
