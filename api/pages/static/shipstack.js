// shipstack pages: the live and writing parts. Every call goes to the JSON API with
// the session cookie and the X-CSRF-Token header; nothing here decides anything the
// API does not. Errors show the API's message next to the field it names.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const csrf = () => ($('meta[name="csrf-token"]') || {}).content || "";
  const enc = encodeURIComponent;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    let res;
    try {
      res = await fetch(url, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, "The service cannot be reached; check the connection and try again.", "network");
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (res.status === 401 && document.body.dataset.page !== "login") {
      location.assign("/login?next=" + enc(location.pathname + location.search));
    }
    if (!res.ok) throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`, data && data.code);
    return data;
  }

  // --- errors next to fields -------------------------------------------------------

  function clearErrors(form) {
    $$("[data-form-error], .field-error", form).forEach((e) => { e.hidden = true; e.textContent = ""; });
    $$("[aria-invalid]", form).forEach((e) => e.removeAttribute("aria-invalid"));
  }

  function errorSlot(input) {
    for (const id of (input.getAttribute("aria-describedby") || "").split(/\s+/)) {
      const el = id && document.getElementById(id);
      if (el && el.classList.contains("field-error")) return el;
    }
    const box = input.closest("[data-env-row], .field");
    return box ? $(".field-error", box) : null;
  }

  function setFieldError(input, message) {
    const slot = errorSlot(input);
    if (!slot) return false;
    slot.textContent = slot.hidden ? message : `${slot.textContent} ${message}`;
    slot.hidden = false;
    input.setAttribute("aria-invalid", "true");
    return true;
  }

  const usable = (el) => !el.disabled && !el.closest("fieldset[disabled]");

  function envInputFor(form, key) {
    const fixed = $$("[data-env-fixed]", form).find((i) => usable(i) && i.dataset.envFixed === key);
    if (fixed) return fixed;
    const row = $$("[data-env-row]", form).find((r) => $("[data-env-key]", r).value.trim() === key);
    return row ? $("[data-env-key]", row) : null;
  }

  // Places each part of the API's message ("a; b; c") at the field it names, the rest on top.
  function showErrors(form, err) {
    clearErrors(form);
    const unplaced = [];
    let first = null;
    for (const part of String(err.message).split(/;\s+/)) {
      const targets = [];
      const missing = part.match(/missing required env vars?: (.*)$/i);
      if (missing) {
        for (const key of missing[1].split(/,\s*/)) {
          const input = envInputFor(form, key.trim());
          if (input) targets.push([input, `${key.trim()} is required`]);
        }
      }
      if (!targets.length) {
        const row = $$("[data-env-row]", form).find((r) => {
          const key = $("[data-env-key]", r).value.trim();
          return key && new RegExp(`(^|[^A-Za-z0-9_])${escapeRe(key)}([^A-Za-z0-9_]|$)`).test(part);
        });
        const field = row ? $("[data-env-key]", row)
          : $$("[data-err]", form).find((i) => usable(i) && new RegExp(i.dataset.err, "i").test(part));
        if (field) targets.push([field, part]);
      }
      const placed = targets.filter(([input, message]) => setFieldError(input, message));
      if (placed.length) first = first || placed[0][0];
      else unplaced.push(part);
    }
    const box = $("[data-form-error]", form);
    if (unplaced.length && box) {
      box.textContent = unplaced.join("; ");
      box.hidden = false;
      if (!first) { box.tabIndex = -1; first = box; }
    }
    if (first) first.focus();
  }

  function localError(form, input, message) {
    setFieldError(input, message);
    return input;
  }

  async function busy(button, work) {
    const was = button ? button.disabled : false;
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    try { return await work(); } finally {
      if (button) { button.disabled = was; button.removeAttribute("aria-busy"); }
    }
  }

  // --- env var editors -------------------------------------------------------------

  let rowSeq = 0;

  function addEnvRow(list, key = "", value = "") {
    const li = $("#env-row-template").content.firstElementChild.cloneNode(true);
    const n = ++rowSeq;
    const prefix = list.dataset.prefix || "env";
    const [k, v] = $$("input", li);
    const [lk, lv] = $$("label", li);
    const err = $(".field-error", li);
    k.id = `${prefix}-new-key-${n}`;
    v.id = `${prefix}-new-value-${n}`;
    err.id = `${prefix}-new-err-${n}`;
    lk.htmlFor = k.id;
    lv.htmlFor = v.id;
    k.setAttribute("aria-describedby", err.id);
    v.setAttribute("aria-describedby", err.id);
    $("[data-reveal]", li).setAttribute("aria-controls", v.id);
    k.value = key;
    v.value = value;
    list.appendChild(li);
    syncEmpty(list);
    return li;
  }

  function syncEmpty(list) {
    const note = list.parentElement && $("[data-env-empty]", list.parentElement);
    if (note) note.hidden = list.children.length > 0;
  }

  // {env, firstError}: the variables of a form (template fields + rows), checked locally first.
  function readEnv(form) {
    const env = {};
    let firstError = null;
    for (const input of $$("[data-env-fixed]", form)) {
      if (!usable(input)) continue;
      if (input.value !== "") env[input.dataset.envFixed] = input.value;
      else if (input.required) firstError = firstError || localError(form, input, `${input.dataset.envFixed} is required`);
    }
    for (const row of $$("[data-env-row]", form)) {
      const k = $("[data-env-key]", row);
      const v = $("[data-env-value]", row);
      const key = k.value.trim();
      if (!key && !v.value) continue;
      if (!key) { firstError = firstError || localError(form, k, "Give the variable a name"); continue; }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
        firstError = firstError || localError(form, k, `${key}: a name starts with a letter or '_' and has only letters, digits and '_'`);
        continue;
      }
      if (Object.prototype.hasOwnProperty.call(env, key)) {
        firstError = firstError || localError(form, k, `${key} is set twice`);
        continue;
      }
      env[key] = v.value;
    }
    return { env, firstError };
  }

  function reveal(button, show) {
    const input = document.getElementById(button.getAttribute("aria-controls"))
      || $("input", button.parentElement);
    if (!input) return;
    const on = show === undefined ? input.type === "password" : show;
    input.type = on ? "text" : "password";
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "Hide" : "Show";
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("button");
    if (!t) return;
    if (t.matches("[data-reveal]")) {
      reveal(t);
    } else if (t.matches("[data-reveal-all]")) {
      const on = t.getAttribute("aria-pressed") !== "true";
      $$("[data-reveal]", t.form).forEach((b) => reveal(b, on));
      t.setAttribute("aria-pressed", on ? "true" : "false");
      t.textContent = on ? "Hide all values" : "Show all values";
    } else if (t.matches("[data-env-add]")) {
      const list = $("[data-env-list]", t.closest("fieldset") || t.form);
      const li = addEnvRow(list);
      $("[data-env-key]", li).focus();
      t.form.dispatchEvent(new Event("input", { bubbles: true }));
    } else if (t.matches("[data-env-remove]")) {
      const row = t.closest("[data-env-row]");
      const list = row.parentElement;
      const form = t.form;
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      syncEmpty(list);
      const focus = next ? $("[data-env-remove]", next) : $("[data-env-add]", form);
      if (focus) focus.focus();
      form.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });

  // --- status rendering ------------------------------------------------------------

  function badge(status) {
    const span = document.createElement("span");
    span.className = `badge status-${String(status).toLowerCase()}`;
    span.dataset.statusBadge = "";
    span.textContent = status;
    return span;
  }

  function ingressLinks(cell, ingresses, emptyText) {
    cell.replaceChildren();
    if (!ingresses || !ingresses.length) {
      if (emptyText) {
        const s = document.createElement("span");
        s.className = "muted";
        s.textContent = emptyText;
        cell.appendChild(s);
      }
      return;
    }
    ingresses.forEach((ing, i) => {
      if (i) cell.appendChild(document.createTextNode(", "));
      const a = document.createElement("a");
      a.href = ing.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = ing.host;
      cell.appendChild(a);
    });
  }

  function fmtTime(value) {
    if (!value) return "";
    const d = new Date(value);
    return isNaN(d) ? String(value) : d.toLocaleString();
  }

  // --- sign in ---------------------------------------------------------------------

  function loginPage() {
    const form = $("#login-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const name = form.elements.name;
      const password = form.elements.password;
      if (!name.value.trim()) return localError(form, name, "Enter your user name").focus();
      if (!password.value) return localError(form, password, "Enter your password").focus();
      await busy($("button[type=submit]", form), async () => {
        try {
          await api("POST", "/api/auth/login", { name: name.value.trim(), password: password.value });
          location.assign(form.elements.next.value || "/deployments");
        } catch (e) {
          showErrors(form, e);
        }
      });
    });
  }

  // --- the list --------------------------------------------------------------------

  function listPage() {
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
  }

  // --- create ----------------------------------------------------------------------

  function createPage() {
    const tplForm = $("#template-form");
    const select = $("#tpl-template");
    const showTemplate = () => {
      for (const fs of $$("[data-template-fields]", tplForm)) {
        const on = fs.dataset.templateFields === select.value;
        fs.hidden = !on;
        fs.disabled = !on;
      }
    };
    select.addEventListener("change", showTemplate);
    showTemplate();

    for (const form of $$("form[data-create]")) {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        clearErrors(form);
        const kind = form.dataset.create;
        const { env, firstError } = readEnv(form);
        const el = form.elements;
        let bad = firstError;
        const body = { envVars: env, visibility: el.visibility.value };
        if (kind === "template") {
          body.template = el.template.value;
        } else {
          body.image = el.image.value.trim();
          if (!body.image) bad = bad || localError(form, el.image, "Enter an image, such as nginx:1.27");
          const port = el.containerPort.value.trim();
          if (port) {
            if (!/^\d+$/.test(port)) bad = bad || localError(form, el.containerPort, "The port is a number from 1 to 65535");
            else body.containerPort = Number(port);
          }
        }
        const name = el.name.value.trim();
        if (name) body.name = name;
        if (el.team_id && el.team_id.value) body.team_id = Number(el.team_id.value);
        if (bad) { bad.focus(); return; }
        const url = kind === "template" ? "/api/deployments" : "/api/deployments/deploy-image";
        await busy($("button[type=submit]", form), async () => {
          try {
            const made = await api("POST", url, body);
            location.assign(`/deployments/${enc(made.name)}?op=${enc(made.operationId)}`);
          } catch (e) {
            showErrors(form, e);
          }
        });
      });
    }
  }

  // --- a deployment ----------------------------------------------------------------

  function detailPage() {
    const root = $("#deployment");
    const name = root.dataset.name;
    const base = `/api/deployments/${enc(name)}`;
    const flags = (k) => root.dataset[k] === "true";
    const afterOperation = [];
    let following = Promise.resolve();

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

    // --- operation progress (its SSE stream, or polling the operation) ---
    const panel = $("#operation");
    const summary = $("#op-summary");
    const bar = $("#op-progress");
    const steps = $("#op-steps");

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

    // Follow what was just accepted (?op=), else whatever is still running; the
    // history is read when no operation is in flight (reading the history of a stack
    // that its create has not made yet must not race with that create).
    const activeOps = root.dataset.op ? Promise.resolve([root.dataset.op])
      : api("GET", `${base}/operations`).then((r) => {
        const active = (r.operations || []).filter((o) => o.status === "queued" || o.status === "running");
        active.sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
        return active.map((o) => o.id);
      }).catch(() => []);

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

    // --- config: preview, then apply ---
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

    // --- auto-update ---
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

    // --- logs (SSE) ---
    if (window.EventSource) {
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
    }

    // --- metrics: the values now, and CPU and memory over a window (static/charts.js) ---
    {
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
    }

    // --- events ---
    {
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
    }

    // --- history, with a rollback button per revision ---
    const histTable = $("#history-table");
    const histNote = $("#history-note");
    const histError = $("#history-error");
    const canWrite = flags("canWrite");
    async function loadHistory(afterOp = false) {
      if (running > (afterOp ? 1 : 0)) {
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
    // After an operation: `running` still counts the one that just finished.
    afterOperation.push(() => loadHistory(true));
    afterOperation.push(() => autoForm && autoStatus());
    activeOps.then((ids) => {
      ids.forEach((id) => follow(id));
      loadHistory();
    });
  }

  const pages = { login: loginPage, list: listPage, create: createPage, detail: detailPage };
  const init = pages[document.body.dataset.page];
  if (init) init();
})();
