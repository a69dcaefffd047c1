// The sign-in page (login.html): checks the two fields, then posts them to the API;
// a refusal shows the API's message at the field it names.
"use strict";
Shipstack.page("login", () => {
  const { $, api, busy, clearErrors, localError, showErrors } = Shipstack;
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
});
