// The reference frontend: the admin portal's MFA tab, the end user's enrollment and settings,
// on the public routes of the v1 contract. Plain JavaScript, no build step. The two sign-in
// boxes call mfa-local's local-only helpers (/_local/...), standing in for the platform's
// identity provider.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { adminToken: null, adminApp: null, policy: null, token: null, flow: null, timer: null };

// ---------------------------------------------------------------- API

async function api(method, path, body, token, headers = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    return { status: 0, json: { error: "network", message: "The service cannot be reached. Check that mfa-local is running." } };
  }
  const text = await resp.text();
  let json = {};
  if (text) {
    try { json = JSON.parse(text); } catch { json = { error: "invalid_response", message: text }; }
  }
  return { status: resp.status, json, headers: resp.headers };
}

const ok = (r) => r.status >= 200 && r.status < 300;

// Which field an error of the contract concerns; anything else is shown for the whole form.
const FIELD_OF = {
  invalid_password: "password", too_many_attempts: "code_or_password",
  invalid_phone_number: "number", country_not_allowed: "number", unsupported_number_type: "number",
  phone_already_enrolled: "number", too_many_phones: "number",
  invalid_code: "code", code_expired: "code",
};

function message(r) {
  const m = r.json.message || `Something went wrong (${r.status}).`;
  if (r.json.error === "invalid_code" && r.json.attempts_remaining !== undefined) {
    return `${m} Attempts left: ${r.json.attempts_remaining}.`;
  }
  return m;
}

function show(el, text) {
  el.textContent = text || "";
  const input = el.id.endsWith("-error") ? $(el.id.slice(0, -"-error".length)) : null;
  if (input) input.setAttribute("aria-invalid", text ? "true" : "false");
}

function clearErrors(root) {
  root.querySelectorAll(".error").forEach((e) => show(e, ""));
}

// ---------------------------------------------------------------- navigation

document.querySelectorAll("header nav button").forEach((b) => {
  b.addEventListener("click", () => {
    document.querySelectorAll("header nav button").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
    $("admin").hidden = b.dataset.view !== "admin";
    $("user").hidden = b.dataset.view !== "user";
  });
});

// ---------------------------------------------------------------- admin portal

$("admin-signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("admin-signin-error"), "");
  const app = $("admin-app").value.trim();
  const r = await api("POST", "/_local/admin-sign-in", { app_id: app });
  if (!ok(r)) return show($("admin-signin-error"), message(r));
  state.adminToken = r.json.token;
  state.adminApp = app;
  $("admin-console").hidden = false;
  await loadPolicy();
});

const policyPath = () => `/v1/admin/applications/${encodeURIComponent(state.adminApp)}/mfa-policy`;

async function loadPolicy() {
  const r = await api("GET", policyPath(), undefined, state.adminToken);
  if (!ok(r)) return show($("policy-error"), message(r));
  renderPolicy(r.json);
}

function renderPolicy(p) {
  state.policy = p;
  $("policy-unavailable").hidden = p.available;
  $("policy-fields").disabled = !p.available;
  $("enabled").checked = p.enabled;
  $("include").checked = p.include_in_signup;
  $("optional").checked = p.enforcement === "optional";
  $("required").checked = p.enforcement === "required";
  syncPolicyFields();
  const who = p.updated_by ? ` by ${p.updated_by}` : "";
  const when = p.updated_at ? ` on ${new Date(p.updated_at).toLocaleString()}` : "";
  $("policy-meta").textContent = p.version ? `Version ${p.version}, saved${who}${when}.` : "Never saved.";
}

// Include only with Enable; Optional / Required only once Include is on.
function syncPolicyFields() {
  if (!$("enabled").checked) $("include").checked = false;
  $("include").disabled = !$("enabled").checked;
  $("enforcement").hidden = !$("include").checked;
  if ($("include").checked && !$("optional").checked && !$("required").checked) $("optional").checked = true;
}
$("enabled").addEventListener("change", syncPolicyFields);
$("include").addEventListener("change", syncPolicyFields);

$("policy-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("policy-error"), "");
  const body = {
    enabled: $("enabled").checked,
    include_in_signup: $("include").checked,
    enforcement: $("required").checked ? "required" : "optional",
  };
  if (state.policy && state.policy.allowed_countries) body.allowed_countries = state.policy.allowed_countries;
  const r = await api("PUT", policyPath(), body, state.adminToken, { "If-Match": String(state.policy ? state.policy.version : 0) });
  if (r.status === 412) {
    show($("policy-error"), `${message(r)} The current settings are shown again.`);
    return loadPolicy();
  }
  if (!ok(r)) return show($("policy-error"), message(r));
  renderPolicy(r.json);
});

async function setAvailable(available) {
  show($("operator-error"), "");
  const r = await api("PUT", `/v1/admin/applications/${encodeURIComponent(state.adminApp)}/mfa-availability`, { available }, state.adminToken);
  if (!ok(r)) return show($("operator-error"), message(r));
  renderPolicy(r.json);
}
$("make-available").addEventListener("click", () => setAvailable(true));
$("withdraw").addEventListener("click", () => setAvailable(false));

// ---------------------------------------------------------------- end user: sign-in and status

$("user-signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("user-signin-error"), "");
  const r = await api("POST", "/_local/sign-in", {
    app_id: $("user-app").value.trim(),
    user_id: $("user-id").value.trim(),
    email: $("user-email").value.trim(),
    password: $("user-password").value,
  });
  if (!ok(r)) return show($("user-signin-error"), message(r));
  state.token = r.json.token;
  $("user-signin").hidden = true;
  await refreshStatus();
});

async function refreshStatus() {
  const r = await api("GET", "/v1/mfa/status", undefined, state.token);
  if (!ok(r)) return show($("settings-error"), message(r));
  const s = r.json;
  if (s.prompt === "enroll") {
    $("settings").hidden = true;
    $("skip").hidden = !s.can_skip;
    step("prompt");
  } else {
    $("flow").hidden = true;
    renderPhones(s.phones);
  }
}

// ---------------------------------------------------------------- the enrollment flow

function step(name) {
  $("flow").hidden = false;
  $("flow").querySelectorAll("[data-step]").forEach((el) => { el.hidden = el.dataset.step !== name; });
  clearErrors($("flow"));
  const first = $("flow").querySelector(`[data-step="${name}"] input, [data-step="${name}"] button`);
  if (first) first.focus();
}

$("start").addEventListener("click", () => {
  state.flow = { purpose: "enroll" };
  $("enroll-password").value = "";
  step("password");
});

$("skip").addEventListener("click", async () => {
  const r = await api("POST", "/v1/mfa/skip", {}, state.token);
  if (!ok(r)) return show($("prompt-error"), message(r));
  await refreshStatus();
});

document.querySelector('[data-step="password"]').addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("enroll-password-error"), "");
  const r = await api("POST", "/v1/mfa/enrollments", { password: $("enroll-password").value }, state.token);
  if (!ok(r)) return show($("enroll-password-error"), message(r));
  state.flow.id = r.json.enrollment_id;
  $("phone-number").value = "";
  $("phone-label").value = "";
  step("phone");
});

document.querySelector('[data-step="phone"]').addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("phone-number-error"), "");
  const body = { phone_number: $("phone-number").value };
  if ($("phone-label").value.trim()) body.label = $("phone-label").value.trim();
  const r = await api("POST", `/v1/mfa/enrollments/${state.flow.id}/phone`, body, state.token);
  if (!ok(r)) return show($("phone-number-error"), message(r));
  codeSent(r.json);
});

// A code is on its way: the code step, with "send a new code" counting down.
function codeSent(answer) {
  if (answer.phone && answer.phone.masked) $("code-sent-to").textContent = `We texted a code to ${answer.phone.masked}.`;
  $("code").value = "";
  step("code");
  countdown(answer.resend_available_at);
}

function countdown(until) {
  clearInterval(state.timer);
  const button = $("resend");
  const tick = () => {
    const left = Math.ceil((new Date(until).getTime() - Date.now()) / 1000);
    if (!until || left <= 0) {
      clearInterval(state.timer);
      button.disabled = false;
      button.textContent = "Send a new code";
    } else {
      button.disabled = true;
      button.textContent = `Send a new code (${left} s)`;
    }
  };
  tick();
  state.timer = setInterval(tick, 1000);
}

$("resend").addEventListener("click", async () => {
  show($("code-error"), "");
  const r = await api("POST", `/v1/mfa/enrollments/${state.flow.id}/resend`, {}, state.token);
  if (!ok(r)) return show($("code-error"), message(r));
  countdown(r.json.resend_available_at);
  $("code").focus();
});

document.querySelector('[data-step="code"]').addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("code-error"), "");
  const code = $("code").value.trim();
  if (!/^[0-9]{6}$/.test(code)) return show($("code-error"), "Enter the 6 digits of the code we texted you.");
  const r = await api("POST", `/v1/mfa/enrollments/${state.flow.id}/code`, { code }, state.token);
  if (!ok(r)) return show($("code-error"), message(r));
  clearInterval(state.timer);
  if (state.flow.purpose === "enroll") {
    const email = r.json.confirmation_email === "sent" ? " We emailed you a confirmation." : "";
    $("success-text").textContent = `${r.json.phone.masked} will receive your sign-in codes.${email}`;
    step("success");
  } else {
    $("flow").hidden = true;
    await refreshStatus();
  }
});

$("to-settings").addEventListener("click", refreshStatus);

// ---------------------------------------------------------------- settings

function renderPhones(phones) {
  $("settings").hidden = false;
  const list = $("phones");
  list.replaceChildren();
  $("no-phones").hidden = phones.length > 0;
  for (const p of phones) {
    const li = document.createElement("li");
    li.className = "phone";
    const name = document.createElement("span");
    name.className = "number";
    name.textContent = p.masked;
    li.append(name);
    if (p.label) {
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = p.label;
      li.append(label);
    }
    if (p.primary) {
      const badge = document.createElement("span");
      badge.className = "badge primary";
      badge.textContent = "Primary";
      li.append(badge);
    }
    const actions = document.createElement("span");
    actions.className = "actions";
    const button = (text, onClick) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.textContent = text;
      b.setAttribute("aria-label", `${text}: ${p.masked}`);
      b.addEventListener("click", onClick);
      actions.append(b);
    };
    button("Change number", () => openAction("replace", p));
    if (!p.primary) button("Make primary", () => makePrimary(p));
    button("Remove", () => openAction("remove", p));
    li.append(actions);
    list.append(li);
  }
}

async function makePrimary(p) {
  show($("settings-error"), "");
  const r = await api("PATCH", `/v1/mfa/phones/${p.phone_id}`, { primary: true }, state.token);
  if (!ok(r)) return show($("settings-error"), message(r));
  await refreshStatus();
}

function openAction(kind, phone) {
  state.action = { kind, phone };
  const form = $("phone-action");
  clearErrors(form);
  form.hidden = false;
  $("action-password").value = "";
  $("action-number").value = "";
  $("action-label").value = "";
  $("action-number-fields").hidden = kind === "remove";
  $("action-label-fields").hidden = kind !== "add";
  $("phone-action-title").textContent =
    kind === "add" ? "Add another phone" : kind === "replace" ? `Change ${phone.masked}` : `Remove ${phone.masked}`;
  $("action-submit").textContent = kind === "remove" ? "Remove" : "Text me a code";
  $("action-password").focus();
}

$("add-phone").addEventListener("click", () => openAction("add", null));
$("action-cancel").addEventListener("click", () => { $("phone-action").hidden = true; });

$("phone-action").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors($("phone-action"));
  const { kind, phone } = state.action;
  const password = $("action-password").value;
  let r;
  if (kind === "remove") {
    r = await api("DELETE", `/v1/mfa/phones/${phone.phone_id}`, { password }, state.token);
  } else {
    const body = { password, phone_number: $("action-number").value };
    if (kind === "add" && $("action-label").value.trim()) body.label = $("action-label").value.trim();
    r = kind === "add"
      ? await api("POST", "/v1/mfa/phones", body, state.token)
      : await api("PUT", `/v1/mfa/phones/${phone.phone_id}`, body, state.token);
  }
  if (!ok(r)) {
    const field = FIELD_OF[r.json.error];
    const target = field === "password" || (field === "code_or_password") ? "action-password-error"
      : field === "number" && kind !== "remove" ? "action-number-error" : "action-error";
    return show($(target), message(r));
  }
  $("phone-action").hidden = true;
  if (kind === "remove") return refreshStatus();
  state.flow = { purpose: kind, id: r.json.enrollment_id };
  codeSent(r.json);
});
