// The reference frontend: the admin portal's MFA tab, the end user's enrollment and settings,
// on the public routes of the contract. Plain JavaScript, no build step. The two sign-in
// boxes call mfa-local's local-only helpers (/_local/...), standing in for the platform's
// identity provider. A change of factors in settings first runs a step-up (v2): a texted code,
// a code from the authenticator app, or a recovery code gives an assertion that the change
// carries in the MFA-Assertion header. An authenticator app's QR code is drawn by lean-qr
// (web/vendor/, pinned, loaded on first use); the "Sign in" card runs the second step of a
// sign-in and shows the assertion's claims. Where the browser supports WebOTP, a texted code's
// field asks it for the code (the text's last line `@domain #code`, with the policy's
// webotp_domain); typing it by hand always works. The admin console has two tabs: Policy, and
// Adoption (the figures of GET .../mfa-stats); a Save that makes MFA required first says, in a
// <dialog>, how many users it will prompt and whether they may Skip during a grace period.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  adminToken: null, adminApp: null, policy: null, token: null, flow: null,
  phones: [], recoveryRemaining: null,
  factors: ["sms"], // what the policy allows (status `factors`)
  totp: null, // the user's authenticator app: {label, verified_at, last_used_at}, or null
  assertion: null, // {token, exp (ms)}: the step-up proof, in memory only, until it expires
  stepUp: null, // the step-up in progress: {resolve, mode, challengeId}
};

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
  selectTab($("tab-policy"), false);
  await loadPolicy();
});

// ---------------------------------------------------------------- admin: the tabs

// The WAI-ARIA tabs pattern: one tab in the tab order, arrows (and Home, End) move between them
// and open the one they reach. Opening Adoption reads the figures again.
const tabs = () => [...document.querySelectorAll('#admin-console [role="tab"]')];

function selectTab(tab, focus = true) {
  for (const t of tabs()) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  if (tab.id === "tab-adoption") loadStats();
}

tabs().forEach((t, i, all) => {
  t.addEventListener("click", () => selectTab(t));
  t.addEventListener("keydown", (ev) => {
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    selectTab(all[(to + all.length) % all.length]);
  });
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
  // A service older than authenticator apps has no `factors`: the methods are then not shown.
  $("factors").hidden = !Array.isArray(p.factors);
  const factors = p.factors || ["sms"];
  $("factor-sms").checked = factors.includes("sms");
  $("factor-totp").checked = factors.includes("totp");
  // Texts and emails (issue 17): the name they give the application and the WebOTP domain.
  // A service older than them has no `display_name`: the fields are then not shown. The name
  // shown by default is the app id, the placeholder; an empty field saves the default.
  $("messages").hidden = !("display_name" in p);
  $("display-name").placeholder = p.app_id || state.adminApp || "";
  $("display-name").value = p.display_name && p.display_name !== p.app_id ? p.display_name : "";
  $("webotp-domain").value = p.webotp_domain || "";
  // The grace period (issue 18): a service older than it has no `grace_period_days`, and the
  // field is then not shown (nor sent).
  state.hasGrace = typeof p.grace_period_days === "number";
  $("grace-period").value = state.hasGrace ? String(p.grace_period_days) : "0";
  show($("grace-period-error"), "");
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
  $("grace-fields").hidden = !state.hasGrace;
  $("required-hint").textContent = state.hasGrace ? "no Skip, or Skip only during the grace period" : "no Skip";
}
$("enabled").addEventListener("change", syncPolicyFields);
$("include").addEventListener("change", syncPolicyFields);

// One Save at a time: a second click while the first asks or sends does nothing.
$("policy-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (state.saving) return;
  state.saving = true;
  try {
    await savePolicy();
  } finally {
    state.saving = false;
  }
});

async function savePolicy() {
  show($("policy-error"), "");
  show($("factors-error"), "");
  show($("display-name-error"), "");
  show($("webotp-domain-error"), "");
  const factors = ["sms", "totp"].filter((f) => $(`factor-${f}`).checked);
  show($("grace-period-error"), "");
  $("policy-status").textContent = "";
  if (!$("factors").hidden && factors.length === 0) {
    show($("factors-error"), "Choose at least one method: users need a way to get their codes.");
    return $("factor-sms").focus();
  }
  let grace = null;
  if (state.hasGrace) {
    const raw = $("grace-period").value.trim();
    grace = /^[0-9]{1,2}$/.test(raw) ? Number(raw) : NaN;
    if (!(grace >= 0 && grace <= 90)) {
      show($("grace-period-error"), "Enter a whole number of days from 0 to 90.");
      return $("grace-period").focus();
    }
  }
  const body = {
    enabled: $("enabled").checked,
    include_in_signup: $("include").checked,
    enforcement: $("required").checked ? "required" : "optional",
  };
  if (!$("factors").hidden) body.factors = factors;
  if (!$("messages").hidden) {
    // null resets the name to the app id and clears the domain.
    body.display_name = $("display-name").value.trim() || null;
    body.webotp_domain = $("webotp-domain").value.trim() || null;
  }
  if (state.hasGrace) body.grace_period_days = grace;
  if (state.policy && state.policy.allowed_countries) body.allowed_countries = state.policy.allowed_countries;
  // A change to Required (from optional, or from not prompting at all) first says whom it will
  // prompt; Cancel saves nothing.
  if (prompting(body, "required") && !prompting(state.policy, "required")) {
    if (!(await confirmRequired(grace || 0))) {
      $("policy-status").textContent = "Not saved: the policy is unchanged.";
      return;
    }
  }
  const r = await api("PUT", policyPath(), body, state.adminToken, { "If-Match": String(state.policy ? state.policy.version : 0) });
  if (r.status === 412) {
    show($("policy-error"), `${message(r)} The current settings are shown again.`);
    return loadPolicy();
  }
  if (!ok(r)) {
    const field = policyField(r);
    if (field) $(field).focus();
    return show($(field ? `${field}-error` : "policy-error"), message(r));
  }
  renderPolicy(r.json);
  loadStats();
}

// Whether a policy (saved, or about to be) shows the enrollment screens with that enforcement.
const prompting = (p, enforcement) => !!p && p.enabled && p.include_in_signup && p.enforcement === enforcement;

const count = (n) => Number(n).toLocaleString();
const users = (n) => `${count(n)} ${n === 1 ? "user" : "users"}`;

// The confirmation before Required: up to N = users − enrolled (the figures do not count
// unverified emails, which are never prompted), read now from mfa-stats, prompted
// with a grace period of `days` or at once without Skip. Resolves true on "Make MFA required".
async function confirmRequired(days) {
  const stats = await loadStats();
  const dialog = $("required-confirm");
  let text;
  if (stats) {
    const n = notEnrolled(stats);
    const who = n > 0
      ? `Up to ${users(n)} without MFA (of ${count(stats.users)}) will be prompted to set it up`
      : stats.users === 0
        ? "There are no users yet: every user who signs up will be prompted to set it up"
        : "Every user has MFA already: users who sign up from now on will be prompted to set it up";
    text = days > 0
      ? `${who} with a grace period of ${days} ${days === 1 ? "day" : "days"}: they may Skip until it ends, then not.`
      : `${who} immediately, without Skip.`;
  } else {
    text = days > 0
      ? `Every user without MFA will be prompted to set it up with a grace period of ${days} ${days === 1 ? "day" : "days"}: they may Skip until it ends, then not.`
      : "Every user without MFA will be prompted to set it up immediately, without Skip.";
  }
  $("required-confirm-text").textContent = text;
  $("required-confirm-hint").textContent = days > 0
    ? "Only users with a verified email are asked. Each user's grace period starts the first time they are asked under Required."
    : "Only users with a verified email are asked. Users who cannot set it up right away will not be able to continue until they do.";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

// ---------------------------------------------------------------- admin: adoption figures

const statsPath = () => `/v1/admin/applications/${encodeURIComponent(state.adminApp)}/mfa-stats`;
// Users without a factor, never negative (users provisioned before the figures were kept are
// not in `users` but may be enrolled).
const notEnrolled = (s) => Math.max(0, s.users - s.enrolled);

// Reads the figures and draws them; the figures, or null when the service did not give them.
async function loadStats() {
  if (!state.adminToken) return null;
  const app = state.adminApp;
  $("adoption").setAttribute("aria-busy", "true");
  const r = await api("GET", statsPath(), undefined, state.adminToken);
  if (app !== state.adminApp) return null;
  $("adoption").setAttribute("aria-busy", "false");
  if (!ok(r)) {
    show($("adoption-error"), message(r));
    return null;
  }
  show($("adoption-error"), "");
  renderStats(r.json);
  return r.json;
}

// A whole percentage that never rounds to all (100%) or none (0%) when that is not so.
function percent(part, whole) {
  if (whole <= 0) return "0%";
  if (part >= whole) return "100%";
  const p = Math.round((100 * part) / whole);
  if (p >= 100) return ">99%";
  if (p <= 0 && part > 0) return "<1%";
  return `${p}%`;
}

function renderStats(s) {
  const off = notEnrolled(s);
  const total = s.enrolled + off;
  const pct = percent(s.enrolled, total);
  const headline = s.users === 0 && s.enrolled === 0
    ? "No users yet."
    : `${count(s.enrolled)} of ${users(s.users)} ${s.enrolled === 1 && s.users === 1 ? "has" : "have"} MFA (${pct})`;
  $("adoption-summary").textContent = headline;
  const bar = $("adoption-bar");
  bar.setAttribute("aria-label", `${headline}${s.users ? `; ${count(off)} not yet` : ""}`);
  // The width is set through the CSSOM, which the page's style-src 'self' allows.
  $("adoption-bar-on").style.width = `${total ? (100 * s.enrolled) / total : 0}%`;
  $("adoption-enrolled").textContent = count(s.enrolled);
  $("adoption-not-enrolled").textContent = count(off);
  $("adoption-sms").textContent = count(s.enrolled_by_factor.sms);
  $("adoption-totp").textContent = count(s.enrolled_by_factor.totp);
  $("adoption-skips").textContent = count(s.skips_last_7_days);
  const meter = $("texts-meter");
  const limit = Math.max(1, s.texts_per_day_limit);
  meter.max = limit;
  meter.value = Math.min(s.texts_last_24h, limit);
  meter.low = limit * 0.5;
  meter.high = limit * 0.8;
  meter.optimum = 0;
  const textsLine = `${count(s.texts_last_24h)} of ${count(s.texts_per_day_limit)} allowed a day (${percent(s.texts_last_24h, s.texts_per_day_limit)})`;
  meter.setAttribute("aria-valuetext", textsLine);
  meter.textContent = textsLine;
  $("texts-summary").textContent = s.texts_last_24h >= s.texts_per_day_limit
    ? `${textsLine}: the limit is reached, texts are refused until the count falls.`
    : textsLine;
  $("adoption-as-of").textContent = `As of ${new Date(s.as_of).toLocaleString()}.`;
}

$("adoption-refresh").addEventListener("click", loadStats);

// The policy field a 400 names (its message names the field), if it is one of the form's.
function policyField(r) {
  if (r.status !== 400) return null;
  const named = `${r.json.field || ""} ${r.json.message || ""}`;
  if (/display_name/.test(named)) return "display-name";
  if (/webotp_domain/.test(named)) return "webotp-domain";
  if (/grace_period_days/.test(named)) return "grace-period";
  return null;
}

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
  const body = {
    app_id: $("user-app").value.trim(),
    user_id: $("user-id").value.trim(),
    email: $("user-email").value.trim(),
    password: $("user-password").value,
  };
  // The user's language for texts and emails (the admin user PUT's `locale`); unset, English.
  if ($("user-locale").value) body.locale = $("user-locale").value;
  const r = await api("POST", "/_local/sign-in", body);
  if (!ok(r)) return show($("user-signin-error"), message(r));
  state.token = r.json.token;
  $("user-signin").hidden = true;
  await refreshStatus();
});

async function refreshStatus() {
  const r = await api("GET", "/v1/mfa/status", undefined, state.token);
  if (!ok(r)) return show($("settings-error"), message(r));
  const s = r.json;
  state.factors = Array.isArray(s.factors) && s.factors.length ? s.factors : ["sms"];
  state.totp = s.totp || null;
  if (s.prompt === "enroll") {
    $("settings").hidden = true;
    $("mfa-signin").hidden = true;
    $("skip").hidden = !s.can_skip;
    renderDeadline(s);
    renderPrompt();
    step("prompt");
  } else {
    $("flow").hidden = true;
    state.recoveryRemaining = typeof s.recovery_codes_remaining === "number" ? s.recovery_codes_remaining : null;
    renderPhones(s.phones);
    // Skipped during a grace period: settings recall the deadline.
    const by = deadline(s);
    $("settings-deadline").hidden = !by || s.enrolled;
    $("settings-deadline").textContent = by ? `Your account needs MFA: set it up by ${by}.` : "";
    renderTotp();
    renderSignIn();
  }
}

// The prompt names the methods the policy allows, and lets the user choose when there are two.
function renderPrompt() {
  const sms = state.factors.includes("sms");
  const totp = state.factors.includes("totp");
  $("prompt-text").textContent = sms && totp
    ? "Each time you sign in on a new device, we will ask for a 6-digit code: texted to your phone, or shown by an authenticator app."
    : totp ? "Each time you sign in on a new device, we will ask for a 6-digit code from an authenticator app on your phone."
      : "Each time you sign in on a new device, we will text a 6-digit code to your phone.";
  $("prompt-methods").hidden = !(sms && totp);
  if (!(sms && totp)) $("method-sms").checked = true;
}

// The status's `enroll_by` as the user reads a date: the day and the month in words in their
// language ("12 December", "December 12"), the year only when it is not this one; or null.
function deadline(s) {
  const by = s.enroll_by ? new Date(s.enroll_by) : null;
  if (!by || Number.isNaN(by.getTime())) return null;
  const opts = { day: "numeric", month: "long" };
  if (by.getFullYear() !== new Date().getFullYear()) opts.year = "numeric";
  return by.toLocaleDateString(undefined, opts);
}

// Under Required with a grace period, the date by which the user must set MFA up (the
// status's `enroll_by`), in the user's language: "Set up by 12 December". Skip stays while
// the service offers it (`can_skip`); when the grace is over it offers neither.
function renderDeadline(s) {
  const by = deadline(s);
  $("prompt-deadline").hidden = !by;
  if (!by) return;
  $("prompt-deadline-date").textContent = `Set up by ${by}.`;
  $("prompt-deadline-more").textContent = s.can_skip
    ? "Until then you can skip it for now; after that, you will need it to continue."
    : "";
}

function chosenMethod() {
  if (!state.factors.includes("sms")) return "totp";
  if (!state.factors.includes("totp")) return "sms";
  return $("method-totp").checked ? "totp" : "sms";
}

// ---------------------------------------------------------------- the enrollment flow

function step(name) {
  stopAskingForCode();
  $("flow").hidden = false;
  $("flow").querySelectorAll("[data-step]").forEach((el) => { el.hidden = el.dataset.step !== name; });
  clearErrors($("flow"));
  const first = $("flow").querySelector(`[data-step="${name}"] input, [data-step="${name}"] button`);
  if (first) first.focus();
}

$("start").addEventListener("click", () => {
  // The first factor, either way, needs only the password (no step-up).
  state.flow = { purpose: chosenMethod() === "totp" ? "enroll-totp" : "enroll" };
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
  const password = $("enroll-password").value;
  if (state.flow.purpose === "enroll-totp") {
    const t = await api("POST", "/v1/mfa/totp", { password }, state.token);
    if (!ok(t)) return show($("enroll-password-error"), message(t));
    state.flow.id = t.json.enrollment_id;
    return showTotpSetup(t.json);
  }
  const r = await api("POST", "/v1/mfa/enrollments", { password }, state.token);
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
  countdown($("resend"), answer.resend_available_at);
  askBrowserForCode($("code"));
}

// ---------------------------------------------------------------- WebOTP: the browser reads the code

// Where the browser implements WebOTP (Chrome on Android, Safari), a texted code's field asks it
// for the code: the text's last line `@domain #code` names this page's domain when the policy
// sets webotp_domain. The answer fills the field and submits it as Verify would; nothing waits
// for it, so the code can always be typed. One request at a time: a new screen aborts it.
let otpRequest = null;

function askBrowserForCode(input) {
  stopAskingForCode();
  if (!("OTPCredential" in window)) return;
  const request = new AbortController();
  otpRequest = request;
  navigator.credentials.get({ otp: { transport: ["sms"] }, signal: request.signal })
    .then((otp) => {
      if (otpRequest !== request || !otp || !otp.code) return;
      otpRequest = null;
      if (input.closest("[hidden]")) return; // the screen changed meanwhile
      input.value = otp.code;
      input.form.requestSubmit();
    })
    .catch(() => {}); // aborted, refused or timed out: the code is typed by hand
}

function stopAskingForCode() {
  if (otpRequest) otpRequest.abort();
  otpRequest = null;
}

// "Send a new code" (or `label`) stays disabled, counting the seconds, until `until` (then, or
// without it, enabled).
const timers = {};
function countdown(button, until, label = "Send a new code") {
  clearInterval(timers[button.id]);
  const tick = () => {
    const left = until ? Math.ceil((new Date(until).getTime() - Date.now()) / 1000) : 0;
    if (left <= 0) {
      clearInterval(timers[button.id]);
      button.disabled = false;
      button.textContent = label;
    } else {
      button.disabled = true;
      button.textContent = `${label} (${left} s)`;
    }
  };
  tick();
  timers[button.id] = setInterval(tick, 1000);
}
const stopCountdown = (button) => clearInterval(timers[button.id]);

$("resend").addEventListener("click", async () => {
  show($("code-error"), "");
  const r = await api("POST", `/v1/mfa/enrollments/${state.flow.id}/resend`, {}, state.token);
  if (!ok(r)) return show($("code-error"), message(r));
  countdown($("resend"), r.json.resend_available_at);
  $("code").focus();
});

document.querySelector('[data-step="code"]').addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("code-error"), "");
  const code = $("code").value.trim();
  if (!/^[0-9]{6}$/.test(code)) return show($("code-error"), "Enter the 6 digits of the code we texted you.");
  const r = await api("POST", `/v1/mfa/enrollments/${state.flow.id}/code`, { code }, state.token);
  if (!ok(r)) return show($("code-error"), message(r));
  stopCountdown($("resend"));
  if (state.flow.purpose === "enroll") {
    const email = r.json.confirmation_email === "sent" ? " We emailed you a confirmation." : "";
    $("success-text").textContent = `${r.json.phone.masked} will receive your sign-in codes.${email}`;
    step("success");
  } else {
    stopAskingForCode();
    $("flow").hidden = true;
    await refreshStatus();
  }
});

$("to-settings").addEventListener("click", refreshStatus);

// ---------------------------------------------------------------- authenticator app: setup

// The QR library (lean-qr 2.7.4, vendored verbatim in web/vendor/ with its MIT licence and served
// by mfa-local, so the page needs no network): a maintained ISO 18004 encoder, not one written
// here. Imported the first time a code is drawn; this classic script may import a module.
const LEAN_QR = "/web/vendor/lean-qr-2.7.4.mjs";
let leanQr = null;

async function drawQr(img, text) {
  leanQr = leanQr || await import(LEAN_QR);
  // Level M at least; 4 modules of quiet zone as ISO 18004 asks; scaled up without blur by CSS.
  const code = leanQr.generate(text, { minCorrectionLevel: leanQr.correction.M });
  // Opaque black on white (lean-qr's default "off" is transparent, which some scanners and dark
  // backgrounds read badly).
  img.src = code.toDataURL({ on: [0, 0, 0, 255], off: [255, 255, 255, 255], pad: 4, scale: 4 });
}

// The secret of a new app, shown this once: its otpauth URI as a QR code, the key as text in
// groups of four, and the code field. Nothing of it is kept once the step is left.
async function showTotpSetup(answer) {
  const secret = String(answer.secret || "");
  $("totp-secret").textContent = secret.replace(/(.{4})(?=.)/g, "$1 ");
  $("totp-expires").textContent = answer.expires_at
    ? `Finish by ${new Date(answer.expires_at).toLocaleTimeString()}, or start again.` : "";
  $("totp-code").value = "";
  const img = $("totp-qr");
  img.hidden = true;
  img.removeAttribute("src");
  step("totp");
  try {
    await drawQr(img, answer.otpauth_uri);
    img.hidden = false;
  } catch (e) {
    show($("totp-qr-error"), "The QR code could not be drawn: type in the key instead.");
  }
}

function forgetTotpSetup() {
  $("totp-secret").textContent = "";
  $("totp-qr").removeAttribute("src");
  $("totp-qr").hidden = true;
  $("totp-code").value = "";
}

document.querySelector('[data-step="totp"]').addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show($("totp-code-error"), "");
  const code = $("totp-code").value.trim();
  if (!/^[0-9]{6}$/.test(code)) return show($("totp-code-error"), "Enter the 6 digits your authenticator app shows.");
  const r = await api("POST", `/v1/mfa/enrollments/${state.flow.id}/code`, { code }, state.token);
  if (!ok(r)) return show($("totp-code-error"), message(r));
  forgetTotpSetup();
  const email = r.json.confirmation_email === "sent" ? " We emailed you a confirmation." : "";
  if (state.flow.purpose === "enroll-totp") {
    $("success-text").textContent = `Your authenticator app will give you your sign-in codes.${email}`;
    step("success");
  } else {
    $("flow").hidden = true;
    await refreshStatus();
    $("settings-note").textContent = `Your authenticator app is set up.${email}`;
  }
});

$("totp-cancel").addEventListener("click", async () => {
  forgetTotpSetup();
  if (state.flow && state.flow.purpose === "enroll-totp") return refreshStatus();
  $("flow").hidden = true;
});

// ---------------------------------------------------------------- settings

function renderPhones(phones) {
  state.phones = phones;
  $("settings").hidden = false;
  $("settings-note").textContent = "";
  // Texts: shown while the policy allows them or the user has a phone.
  const sms = state.factors.includes("sms");
  $("add-phone").hidden = !sms;
  $("add-phone").textContent = phones.length ? "Add another phone" : "Add a phone";
  $("phones-title").hidden = !sms && phones.length === 0;
  renderRecoveryStatus();
  const list = $("phones");
  list.replaceChildren();
  $("no-phones").hidden = phones.length > 0 || !sms;
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

// The authenticator app: what it is and when it was last used, or a button to set one up.
function renderTotp() {
  const t = state.totp;
  const allowed = state.factors.includes("totp");
  $("totp-section").hidden = !t && !allowed;
  $("totp-present").hidden = !t;
  $("totp-absent").hidden = !!t || !allowed;
  if (!t) return;
  const when = (ts) => new Date(ts).toLocaleString();
  $("totp-label").textContent = t.label || "";
  $("totp-label").hidden = !t.label;
  $("totp-meta").textContent = `Set up ${t.verified_at ? when(t.verified_at) : ""}; `
    + (t.last_used_at ? `last used ${when(t.last_used_at)}.` : "not used to sign in yet.");
}

$("totp-setup").addEventListener("click", () => openAction("totp-add", null));
$("totp-remove").addEventListener("click", () => openAction("totp-remove", null));
// One app per user: a new one replaces it once its code is verified (the old one works until then).
$("totp-replace").addEventListener("click", () => openAction("totp-add", null));

async function makePrimary(p) {
  show($("settings-error"), "");
  const r = await api("PATCH", `/v1/mfa/phones/${p.phone_id}`, { primary: true }, state.token);
  if (!ok(r)) return show($("settings-error"), message(r));
  await refreshStatus();
}

// ---------------------------------------------------------------- step-up

// How long before its expiry an assertion is no longer used: a change never sets off with a
// proof that could expire on the way.
const ASSERTION_MARGIN_MS = 15_000;

function currentAssertion() {
  const a = state.assertion;
  if (a && a.exp - Date.now() > ASSERTION_MARGIN_MS) return a.token;
  state.assertion = null;
  return null;
}

// When the assertion expires: `expires_at` of the answer, else the `exp` of its payload.
function assertionExpiry(answer) {
  if (answer.expires_at) return new Date(answer.expires_at).getTime();
  try {
    const payload = JSON.parse(atob(answer.assertion.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.exp * 1000;
  } catch {
    return Date.now() + 60_000;
  }
}

// A user with a factor proves it before changing factors; the first factor needs no proof.
const hasFactor = () => state.phones.length > 0 || !!state.totp;
const needsStepUp = hasFactor;

// Resolves true once a fresh assertion is in hand (at once if the one kept is still fresh, or if
// no proof is needed), false if the user cancels. Asks for a code from the authenticator app when
// the user has one (no text sent), else texts a code to the primary phone (another can be
// chosen); a recovery code always works instead, and the user may switch between them.
function stepUp(why) {
  if (!needsStepUp() || currentAssertion()) return Promise.resolve(true);
  return new Promise((resolve) => {
    if (state.stepUp) state.stepUp.resolve(false);
    state.stepUp = { resolve, mode: "sms", challengeId: null, totpChallengeId: null };
    $("phone-action").hidden = true;
    $("recovery-codes").hidden = true;
    $("settings-actions").hidden = true;
    const form = $("step-up");
    clearErrors(form);
    form.hidden = false;
    $("step-up-why").textContent = why;
    $("step-up-recovery-code").value = "";
    const select = $("step-up-phone");
    select.replaceChildren(...state.phones.map((p) => {
      const o = document.createElement("option");
      o.value = p.phone_id;
      o.textContent = p.label ? `${p.masked} (${p.label})` : p.masked;
      return o;
    }));
    const primary = state.phones.find((p) => p.primary) || state.phones[0];
    if (primary) select.value = primary.phone_id;
    $("step-up-phone-fields").hidden = state.phones.length < 2;
    $("step-up-totp-code").value = "";
    // Switching is offered only to what the user has.
    const hasPhone = state.phones.length > 0;
    $("step-up-use-sms").hidden = !hasPhone;
    $("step-up-totp-use-sms").hidden = !hasPhone;
    $("step-up-sms-use-totp").hidden = !state.totp;
    $("step-up-recovery-use-totp").hidden = !state.totp;
    if (state.totp) {
      stepUpMode("totp");
      startTotpChallenge();
    } else {
      stepUpMode("sms");
      sendChallenge();
    }
  });
}

const STEP_UP_FIELD = { sms: "step-up-code", totp: "step-up-totp-code", recovery: "step-up-recovery-code" };

function stepUpMode(mode) {
  state.stepUp.mode = mode;
  clearErrors($("step-up"));
  $("step-up-sms").hidden = mode !== "sms";
  $("step-up-totp").hidden = mode !== "totp";
  $("step-up-recovery").hidden = mode !== "recovery";
  $(STEP_UP_FIELD[mode]).focus();
  // Back to the texted code with one on its way: ask again; otherwise stop asking.
  if (mode === "sms" && state.stepUp.challengeId) askBrowserForCode($("step-up-code"));
  else stopAskingForCode();
}

// Starts a challenge for the authenticator app (nothing is sent; the app shows the code).
async function startTotpChallenge() {
  const s = state.stepUp;
  $("step-up-totp-status").textContent = "";
  const r = await api("POST", "/v1/mfa/challenges", { factor: "totp" }, state.token);
  if (state.stepUp !== s) return null; // cancelled meanwhile
  if (!ok(r)) {
    s.totpChallengeId = null;
    show($("step-up-form-error"), message(r));
    return null;
  }
  s.totpChallengeId = r.json.challenge_id;
  $("step-up-totp-status").textContent = "Enter the code your authenticator app shows now.";
  return s.totpChallengeId;
}

function finishStepUp(done) {
  const s = state.stepUp;
  state.stepUp = null;
  stopCountdown($("step-up-resend"));
  stopAskingForCode();
  $("step-up").hidden = true;
  $("settings-actions").hidden = false;
  if (s) s.resolve(done);
}

// Starts a challenge: a code texted to the chosen phone.
async function sendChallenge() {
  const s = state.stepUp;
  clearErrors($("step-up"));
  $("step-up-code").value = "";
  $("step-up-sent-to").textContent = "Sending a code…";
  const r = await api("POST", "/v1/mfa/challenges", { phone_id: $("step-up-phone").value }, state.token);
  if (state.stepUp !== s) return; // cancelled meanwhile
  if (!ok(r)) {
    s.challengeId = null;
    $("step-up-sent-to").textContent = "";
    const wait = r.json.retry_after ? new Date(Date.now() + r.json.retry_after * 1000) : null;
    countdown($("step-up-resend"), wait);
    return show($("step-up-form-error"), message(r));
  }
  s.challengeId = r.json.challenge_id;
  $("step-up-sent-to").textContent = `We texted a code to ${r.json.phone.masked}.`;
  countdown($("step-up-resend"), r.json.resend_available_at);
  if (s.mode === "sms") {
    $("step-up-code").focus();
    askBrowserForCode($("step-up-code"));
  }
}

$("step-up-phone").addEventListener("change", sendChallenge);
$("step-up-use-recovery").addEventListener("click", () => stepUpMode("recovery"));
$("step-up-totp-use-recovery").addEventListener("click", () => stepUpMode("recovery"));
const useSms = () => {
  stepUpMode("sms");
  if (!state.stepUp.challengeId) sendChallenge();
};
$("step-up-use-sms").addEventListener("click", useSms);
$("step-up-totp-use-sms").addEventListener("click", useSms);
const useTotp = () => {
  stepUpMode("totp");
  if (!state.stepUp.totpChallengeId) startTotpChallenge();
};
$("step-up-sms-use-totp").addEventListener("click", useTotp);
$("step-up-recovery-use-totp").addEventListener("click", useTotp);
$("step-up-cancel").addEventListener("click", () => finishStepUp(false));

$("step-up-resend").addEventListener("click", async () => {
  const s = state.stepUp;
  if (!s) return;
  if (!s.challengeId) return sendChallenge();
  clearErrors($("step-up"));
  const r = await api("POST", `/v1/mfa/challenges/${s.challengeId}/resend`, {}, state.token);
  if (state.stepUp !== s) return;
  if (r.status === 404) return sendChallenge(); // the challenge expired: start another
  if (!ok(r)) return show($("step-up-code-error"), message(r));
  countdown($("step-up-resend"), r.json.resend_available_at);
  $("step-up-code").focus();
});

// Errors a code check ties to the code field; the rest are shown for the whole step-up.
const CODE_ERRORS = ["invalid_code", "code_expired", "too_many_attempts", "invalid_request"];

$("step-up").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const s = state.stepUp;
  if (!s) return;
  clearErrors($("step-up"));
  let r;
  let field;
  if (s.mode === "recovery") {
    field = $("step-up-recovery-code-error");
    const code = $("step-up-recovery-code").value.trim();
    if (!code) return show(field, "Enter one of your recovery codes, such as 7K3QD-M9XWP.");
    r = await api("POST", "/v1/mfa/challenges/recovery", { code }, state.token);
  } else if (s.mode === "totp") {
    field = $("step-up-totp-code-error");
    const code = $("step-up-totp-code").value.trim();
    if (!/^[0-9]{6}$/.test(code)) return show(field, "Enter the 6 digits your authenticator app shows.");
    const id = s.totpChallengeId || await startTotpChallenge();
    if (!id || state.stepUp !== s) return;
    r = await api("POST", `/v1/mfa/challenges/${id}/code`, { code }, state.token);
    // An expired or finished challenge: start another and check the code against it.
    if (r.status === 404 && state.stepUp === s) {
      const again = await startTotpChallenge();
      if (!again || state.stepUp !== s) return;
      r = await api("POST", `/v1/mfa/challenges/${again}/code`, { code }, state.token);
    }
  } else {
    field = $("step-up-code-error");
    const code = $("step-up-code").value.trim();
    if (!/^[0-9]{6}$/.test(code)) return show(field, "Enter the 6 digits of the code we texted you.");
    if (!s.challengeId) return show($("step-up-form-error"), "No code is on its way. Send a new code, or use a recovery code.");
    r = await api("POST", `/v1/mfa/challenges/${s.challengeId}/code`, { code }, state.token);
  }
  if (state.stepUp !== s) return;
  if (!ok(r)) return show(CODE_ERRORS.includes(r.json.error) ? field : $("step-up-form-error"), message(r));
  state.assertion = { token: r.json.assertion, exp: assertionExpiry(r.json) };
  if (typeof r.json.remaining === "number") {
    state.recoveryRemaining = r.json.remaining;
    renderRecoveryStatus();
  }
  finishStepUp(true);
});

// Sends a change of factors with the proof. A `403 step_up_required` (the proof expired, or the
// service refused it) runs the step-up again and sends the change once more; null if the user
// cancels that step-up.
async function sendChange(method, path, body) {
  const headers = () => { const a = currentAssertion(); return a ? { "MFA-Assertion": a } : {}; };
  let r = await api(method, path, body, state.token, headers());
  if (r.status === 403 && r.json.error === "step_up_required") {
    state.assertion = null;
    const done = await stepUp("Your confirmation has expired. Enter a new code to continue.");
    if (!done) return null;
    $("phone-action").hidden = false;
    r = await api(method, path, body, state.token, headers());
  }
  return r;
}

// ---------------------------------------------------------------- settings: changes of factors

function renderRecoveryStatus() {
  const n = state.recoveryRemaining;
  const enrolled = hasFactor();
  $("recovery-status").textContent = !enrolled || n === null ? ""
    : n === 0 ? "No recovery codes yet. Create some in case you lose your phone."
    : `Recovery codes: ${n} left.`;
  $("make-recovery").hidden = !enrolled;
  $("make-recovery").textContent = n ? "Create new recovery codes" : "Create recovery codes";
}

async function openAction(kind, phone) {
  show($("settings-error"), "");
  $("settings-note").textContent = "";
  $("phone-action").hidden = true;
  const how = state.totp ? "enter a code from your authenticator app" : "enter the code we text you";
  const why = {
    add: `Before you add a phone, ${how}.`,
    replace: `Before you change ${phone && phone.masked}, ${how}.`,
    remove: `Before you remove ${phone && phone.masked}, ${how}.`,
    recovery: `Before you create recovery codes, ${how}.`,
    "totp-add": state.totp ? `Before you move to another authenticator app, ${how}.` : `Before you set up an authenticator app, ${how}.`,
    "totp-remove": `Before you remove your authenticator app, ${how}.`,
  }[kind];
  if (!(await stepUp(why))) return;
  state.action = { kind, phone };
  const form = $("phone-action");
  clearErrors(form);
  form.hidden = false;
  $("action-password").value = "";
  $("action-number").value = "";
  $("action-label").value = "";
  $("action-number-fields").hidden = !(kind === "add" || kind === "replace");
  $("action-label-fields").hidden = !(kind === "add" || kind === "totp-add");
  $("action-label").placeholder = kind === "totp-add" ? "My phone's app" : "Work phone";
  $("phone-action-title").textContent = {
    add: "Add another phone",
    replace: `Change ${phone && phone.masked}`,
    remove: `Remove ${phone && phone.masked}`,
    recovery: "Create recovery codes",
    "totp-add": state.totp ? "Move to another authenticator app" : "Set up an authenticator app",
    "totp-remove": "Remove the authenticator app",
  }[kind];
  $("action-submit").textContent = {
    remove: "Remove", "totp-remove": "Remove", recovery: "Create recovery codes", "totp-add": "Continue",
  }[kind] || "Text me a code";
  $("action-password").focus();
}

$("add-phone").addEventListener("click", () => openAction("add", null));
$("make-recovery").addEventListener("click", () => openAction("recovery", null));
$("action-cancel").addEventListener("click", () => { $("phone-action").hidden = true; });

$("phone-action").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors($("phone-action"));
  const { kind, phone } = state.action;
  const password = $("action-password").value;
  let r;
  if (kind === "remove") {
    r = await sendChange("DELETE", `/v1/mfa/phones/${phone.phone_id}`, { password });
  } else if (kind === "totp-remove") {
    r = await sendChange("DELETE", "/v1/mfa/totp", { password });
  } else if (kind === "totp-add") {
    const body = { password };
    if ($("action-label").value.trim()) body.label = $("action-label").value.trim();
    r = await sendChange("POST", "/v1/mfa/totp", body);
  } else if (kind === "recovery") {
    r = await sendChange("POST", "/v1/mfa/recovery-codes", { password });
  } else {
    const body = { password, phone_number: $("action-number").value };
    if (kind === "add" && $("action-label").value.trim()) body.label = $("action-label").value.trim();
    r = kind === "add"
      ? await sendChange("POST", "/v1/mfa/phones", body)
      : await sendChange("PUT", `/v1/mfa/phones/${phone.phone_id}`, body);
  }
  if (r === null) { $("phone-action").hidden = true; return; }
  if (!ok(r)) {
    const field = FIELD_OF[r.json.error];
    const target = field === "password" || (field === "code_or_password") ? "action-password-error"
      : field === "number" && (kind === "add" || kind === "replace") ? "action-number-error" : "action-error";
    return show($(target), message(r));
  }
  $("phone-action").hidden = true;
  if (kind === "remove") return refreshStatus();
  if (kind === "totp-remove") {
    await refreshStatus();
    $("settings-note").textContent = "Your authenticator app was removed.";
    return;
  }
  if (kind === "recovery") return showRecoveryCodes(r.json.codes);
  if (kind === "totp-add") {
    state.flow = { purpose: "totp-settings", id: r.json.enrollment_id };
    return showTotpSetup(r.json);
  }
  state.flow = { purpose: kind, id: r.json.enrollment_id };
  codeSent(r.json);
});

// A new set of recovery codes, shown this once.
async function showRecoveryCodes(codes) {
  await refreshStatus();
  const list = $("recovery-list");
  list.replaceChildren(...codes.map((c) => {
    const li = document.createElement("li");
    li.textContent = c;
    return li;
  }));
  $("recovery-codes").hidden = false;
  $("settings-actions").hidden = true;
  $("recovery-codes-title").focus();
}

$("recovery-done").addEventListener("click", () => {
  $("recovery-list").replaceChildren();
  $("recovery-codes").hidden = true;
  $("settings-actions").hidden = false;
});

// ---------------------------------------------------------------- sign in: the second step

// The factors the user has, to choose from; the card keeps the choice while it still applies.
function renderSignIn() {
  const has = { sms: state.phones.length > 0, totp: !!state.totp };
  $("mfa-signin").hidden = !has.sms && !has.totp;
  $("signin-factor-sms-row").hidden = !has.sms;
  $("signin-factor-totp-row").hidden = !has.totp;
  const primary = state.phones.find((p) => p.primary) || state.phones[0];
  $("signin-sms-to").textContent = primary ? `to ${primary.masked}` : "";
  const chosen = ["sms", "totp"].find((f) => has[f] && $(`signin-factor-${f}`).checked);
  if (!chosen) {
    $("signin-factor-sms").checked = has.sms && !has.totp;
    $("signin-factor-totp").checked = has.totp;
  }
  resetSignIn();
}

function resetSignIn() {
  stopAskingForCode();
  state.signIn = null;
  clearErrors($("mfa-signin"));
  $("signin-code-fields").hidden = true;
  $("signin-result").hidden = true;
  $("signin-claims").replaceChildren();
  $("signin-code").value = "";
}

$("signin-factor-sms").addEventListener("change", resetSignIn);
$("signin-factor-totp").addEventListener("change", resetSignIn);

$("signin-start").addEventListener("click", async () => {
  resetSignIn();
  const factor = $("signin-factor-totp").checked ? "totp" : "sms";
  const r = await api("POST", "/v1/mfa/challenges", { factor }, state.token);
  if (!ok(r)) {
    // A 429 (the user's texts are a cooldown apart): the button counts down the wait.
    if (r.json.retry_after) countdown($("signin-start"), new Date(Date.now() + r.json.retry_after * 1000), "Get a code");
    return show($("signin-error"), message(r));
  }
  state.signIn = { factor, challengeId: r.json.challenge_id };
  $("signin-status").textContent = factor === "totp"
    ? "Enter the code your authenticator app shows now."
    : `We texted a code to ${r.json.phone ? r.json.phone.masked : "your phone"}.`;
  $("signin-code-fields").hidden = false;
  $("signin-code").focus();
  if (factor === "sms") askBrowserForCode($("signin-code"));
});

// The claims of a compact JWS, decoded (base64url JSON). The page shows them; trusting them is
// the platform's business, after it checks the signature against the JWKS.
function jwsClaims(jws) {
  const part = jws.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

$("mfa-signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const s = state.signIn;
  if (!s) return;
  clearErrors($("mfa-signin"));
  const code = $("signin-code").value.trim();
  if (!/^[0-9]{6}$/.test(code)) return show($("signin-code-error"), "Enter the 6 digits of the code.");
  const r = await api("POST", `/v1/mfa/challenges/${s.challengeId}/code`, { code }, state.token);
  if (state.signIn !== s) return;
  if (!ok(r)) {
    return show(CODE_ERRORS.includes(r.json.error) ? $("signin-code-error") : $("signin-error"), message(r));
  }
  let claims;
  try {
    claims = jwsClaims(r.json.assertion);
  } catch {
    return show($("signin-error"), "The service's answer holds no readable assertion.");
  }
  const rows = [
    ["amr", Array.isArray(claims.amr) ? claims.amr.join(", ") : String(claims.amr)],
    ["sub", claims.sub],
    ["app_id", claims.app_id],
    ["exp", typeof claims.exp === "number" ? `${claims.exp} (${new Date(claims.exp * 1000).toISOString()})` : String(claims.exp)],
    ["iss", claims.iss],
  ];
  $("signin-claims").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v === undefined ? "" : v;
    dd.dataset.claim = k;
    return [dt, dd];
  }));
  state.signIn = null;
  stopAskingForCode();
  $("signin-code-fields").hidden = true;
  $("signin-result").hidden = false;
  $("signin-result-title").focus();
  // The app's "last used" moved on: show it.
  if (s.factor === "totp") {
    const st = await api("GET", "/v1/mfa/status", undefined, state.token);
    if (ok(st)) { state.totp = st.json.totp || null; renderTotp(); }
  }
});
