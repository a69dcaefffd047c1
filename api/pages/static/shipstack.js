// shipstack pages: the live and writing parts. Every call goes to the JSON API with
// the session cookie and the X-CSRF-Token header; nothing here decides anything the
// API does not. Errors show the API's message next to the field it names.
//
// This file is what every page shares, as one frozen namespace, `window.Shipstack`:
// the fetch wrapper, errors next to fields, the env var editors, status badges,
// ingress links, times; and `Shipstack.page(name, init)`, which the page scripts
// (static/pages/*.js, static/detail/*.js) call to say what runs on the page whose
// <body data-page> is `name`. Plain classic scripts, loaded with `defer` in order
// (base.html, then each template's `scripts` block): the pages' Content-Security-Policy
// is `script-src 'self'` (no inline script), and there is no front-end build.
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
    // Named like a server-rendered row's ("Remove variable KEY"), for rows the editor reloads.
    if (key) $("[data-env-remove] .visually-hidden", li).textContent = ` variable ${key}`;
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

  // --- pages -----------------------------------------------------------------------

  // Initialisers by page name, in the order their scripts registered them.
  const initialisers = new Map();
  const contexts = new Map();

  // `init(context)` runs on the page named `name` once every deferred script has run.
  function page(name, init) {
    if (!initialisers.has(name)) initialisers.set(name, []);
    initialisers.get(name).push(init);
  }

  // What the initialisers of one page share: `make()` runs once, before the first of
  // them (without it they share an empty object).
  function pageContext(name, make) {
    contexts.set(name, make);
  }

  // Deferred scripts have all run when DOMContentLoaded fires.
  document.addEventListener("DOMContentLoaded", () => {
    const name = document.body.dataset.page;
    const inits = initialisers.get(name);
    if (!inits) return;
    const context = contexts.has(name) ? contexts.get(name)() : {};
    for (const init of inits) init(context);
  });

  window.Shipstack = Object.freeze({
    $, $$, enc, sleep, plural,
    ApiError, api,
    clearErrors, showErrors, localError, busy,
    addEnvRow, syncEmpty, readEnv,
    badge, ingressLinks, fmtTime,
    page, pageContext,
  });
})();
