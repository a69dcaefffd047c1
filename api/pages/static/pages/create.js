// The create page (create.html): a deployment from a template (its variables as fields)
// or from an image. Checks locally what it can, then posts to the API and opens the new
// deployment's page following its create operation (?op=).
"use strict";
Shipstack.page("create", () => {
  const { $, $$, enc, api, busy, clearErrors, localError, showErrors, readEnv } = Shipstack;
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
});
