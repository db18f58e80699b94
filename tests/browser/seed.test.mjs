// The seed, clicked through the reference web page in headless Chromium (Debian's package,
// driven by playwright-core) against a fresh mfa-local on the embedded default:
//   the admin makes MFA required, names the application in texts ("Acme Travel") and sets a
//   WebOTP domain (a scheme is refused at the field) → the user, signed in in Spanish, sees the
//   enrollment without Skip → the text in /_local/outbox is Spanish, names Acme Travel and ends
//   with the WebOTP line → the code field asked the browser for the code (a stand-in for WebOTP,
//   which headless Chromium cannot receive) and its answer completes the enrollment → adds a second phone in settings, after a step-up by
//   a texted code → makes it primary → creates recovery codes and removes the first phone (the
//   same step-up, still fresh) → signs in again, has lost the phone, steps up with a recovery
//   code (twice: a refused proof runs the step-up again) and replaces the number.
// Every screen is saved under docs/screens/ (the README shows them).
//
//   MFA_LOCAL_BIN=target/debug/mfa-local node tests/browser/seed.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { chromiumArgs, executablePath, lastCode, shot, startLocal } from "./local.mjs";

test("the seed, clicked through the reference page", async (t) => {
  const { child, base } = await startLocal();
  const browser = await chromium.launch({ executablePath, args: chromiumArgs });
  t.after(async () => { await browser.close(); child.kill(); });
  const app = "acme"; // a fresh mfa-local each run: no other state

  // ---- the administrator: MFA is not available until the operator says so
  const admin = await (await browser.newContext({ viewport: { width: 1024, height: 800 } })).newPage();
  await admin.goto(`${base}/`);
  await admin.getByLabel("Application id").first().fill(app);
  await admin.getByRole("button", { name: "Sign in" }).first().click();
  const unavailable = admin.getByText("Contact your customer success manager");
  await unavailable.waitFor();
  assert.ok(await admin.getByLabel("Enable MFA").isDisabled(), "the toggles are off limits while unavailable");
  await shot(admin, "admin-not-available");

  await admin.getByRole("button", { name: "Make MFA available to this application" }).click();
  await unavailable.waitFor({ state: "hidden" });
  await admin.getByLabel("Enable MFA").check();
  assert.ok(!(await admin.getByLabel("Required").isVisible()), "Optional/Required appear only with the second toggle");
  await admin.getByLabel("Include MFA setup after the create-account flow").check();
  await admin.getByLabel("Required").check();
  await admin.getByRole("button", { name: "Save" }).click();
  // A change to Required asks first; no user yet, so nobody is prompted now.
  const confirmRequired = admin.getByRole("dialog", { name: "Ask users without MFA to set it up?" });
  await confirmRequired.getByText(/There are no users yet/).waitFor();
  await confirmRequired.getByRole("button", { name: "Make MFA required" }).click();
  await admin.getByText(/Version \d+, saved by admin@/).waitFor();
  await shot(admin, "admin-mfa-required");

  // Texts and emails: the application's name and the WebOTP domain. A URL is not a host name:
  // the service refuses it and the page shows its message at the field.
  const displayName = admin.getByLabel("Display name");
  const domainField = admin.getByLabel(/WebOTP domain/);
  assert.equal(await displayName.getAttribute("placeholder"), app, "the default name is the app id");
  assert.equal(await displayName.inputValue(), "");
  await displayName.fill("Acme Travel");
  await domainField.fill("https://login.acme.example/");
  await admin.getByRole("button", { name: "Save" }).click();
  await admin.locator("#webotp-domain-error").getByText(/webotp_domain/).waitFor();
  assert.equal(await domainField.getAttribute("aria-invalid"), "true");
  assert.equal(await admin.locator("#policy-error").textContent(), "");
  await shot(admin, "admin-messages-error");
  await domainField.fill("login.acme.example");
  await admin.getByRole("button", { name: "Save" }).click();
  await admin.locator("#webotp-domain-error:empty").waitFor({ state: "attached" });
  await admin.getByText(/Version \d+, saved by admin@/).waitFor();
  await admin.reload();
  await admin.getByLabel("Application id").first().fill(app);
  await admin.getByRole("button", { name: "Sign in" }).first().click();
  await admin.getByText(/Version \d+, saved by admin@/).waitFor();
  assert.equal(await displayName.inputValue(), "Acme Travel", "the saved name is shown again");
  assert.equal(await domainField.inputValue(), "login.acme.example");
  await shot(admin, "admin-messages");

  // ---- the end user, at phone width
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  // WebOTP stand-in: headless Chromium has no SMS to read, so navigator.credentials.get() is
  // replaced by one that records each request (its options, whether it was aborted) and lets the
  // test answer it, as the browser would with the code of the text's `@domain #code` line.
  await ctx.addInitScript(() => {
    window.OTPCredential = function OTPCredential() {};
    window.otpRequests = [];
    Object.defineProperty(navigator.credentials, "get", {
      value: (options) => new Promise((resolve, reject) => {
        const request = { transport: options.otp && options.otp.transport, aborted: false, resolve };
        window.otpRequests.push(request);
        options.signal.addEventListener("abort", () => {
          request.aborted = true;
          reject(new DOMException("The request was aborted.", "AbortError"));
        });
      }),
    });
  });
  const user = await ctx.newPage();
  const otpRequests = () => user.evaluate(() => window.otpRequests.map((r) => ({ transport: r.transport, aborted: r.aborted })));
  await user.goto(`${base}/`);
  await user.getByRole("button", { name: "End user" }).click();
  await user.locator("#user-app").fill(app);
  await user.locator("#user-id").fill("ada");
  await user.getByLabel("Language of texts and emails").selectOption("es");
  await user.locator("#user-signin").getByRole("button", { name: "Sign in" }).click();

  await user.getByRole("heading", { name: "Add extra protection to your account" }).waitFor();
  assert.ok(!(await user.getByRole("button", { name: "Skip for now" }).isVisible()), "no Skip when MFA is required");
  await shot(user, "user-1-prompt");

  await user.getByRole("button", { name: "Start" }).click();
  await user.locator("#enroll-password").fill("a wrong password");
  await user.getByRole("button", { name: "Continue" }).click();
  await user.locator("#enroll-password-error").waitFor();
  assert.equal(await user.locator("#enroll-password").getAttribute("aria-invalid"), "true");
  await shot(user, "user-2-password-error");
  await user.locator("#enroll-password").fill("correct horse battery");
  await user.getByRole("button", { name: "Continue" }).click();

  const phone = user.locator("#phone-number");
  await phone.waitFor();
  await phone.fill("+1 800 555 0123");
  await user.getByRole("button", { name: "Text me a code" }).click();
  await user.locator("#phone-number-error").getByText(/toll-free/i).waitFor();
  await shot(user, "user-3-phone-error");
  await phone.fill("+1 (415) 555-0123");
  await user.getByRole("button", { name: "Text me a code" }).click();

  const code = user.getByLabel("6-digit code").and(user.locator("#code"));
  await code.waitFor();
  assert.equal(await code.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await code.getAttribute("inputmode"), "numeric");
  assert.ok(await user.getByRole("button", { name: /Send a new code/ }).isDisabled(), "resend waits for resend_available_at");
  assert.match(await user.locator("#code-sent-to").textContent(), /\+1••••••0123/);
  await shot(user, "user-4-code");
  // The text: Spanish, from Acme Travel, its last line the WebOTP one with the code.
  const enrollCode = await lastCode(base, "+14155550123");
  const outbox = await (await fetch(`${base}/_local/outbox`)).json();
  const text = outbox.sms.filter((m) => m.to === "+14155550123").at(-1).body;
  assert.match(text, /codigo|código/i, `a Spanish text: ${text}`);
  assert.match(text, /Acme Travel/, "the text names the display name");
  assert.doesNotMatch(text, /\bcode\b/i, "no English wording");
  assert.equal(text.split("\n").at(-1), `@login.acme.example #${enrollCode}`, "the last line is the WebOTP line");
  // The code field asked the browser for the code; its answer fills the field and submits it.
  let asked = await otpRequests();
  assert.equal(asked.length, 1, "one request, when the code field was shown");
  assert.deepEqual(asked[0], { transport: ["sms"], aborted: false });
  await user.evaluate((c) => window.otpRequests.at(-1).resolve({ type: "otp", id: "", code: c }), enrollCode);
  await user.getByRole("heading", { name: "Your account is protected" }).waitFor();
  await shot(user, "user-5-success");

  // ---- settings: add a second phone, make it primary; the change first runs a step-up
  const changes = []; // every change of factors the page sends, with its proof
  user.on("request", (req) => {
    const path = new URL(req.url()).pathname;
    if ((path.startsWith("/v1/mfa/phones") || path === "/v1/mfa/recovery-codes") && ["POST", "PUT", "DELETE"].includes(req.method())) {
      changes.push({ method: req.method(), path, assertion: req.headers()["mfa-assertion"] });
    }
  });
  const isJws = (a) => typeof a === "string" && /^[\w-]+\.[\w-]+\.[\w-]+$/.test(a);
  const fitsPhone = async () => {
    const [width, labelless] = await user.evaluate(() => [
      document.documentElement.scrollWidth,
      [...document.querySelectorAll("input, select")].filter((e) => e.labels.length === 0).map((e) => e.id),
    ]);
    assert.ok(width <= 390, `the page is ${width} px wide at 390 px`);
    assert.deepEqual(labelless, [], "every input has a label");
  };

  await user.getByRole("button", { name: "Go to settings" }).click();
  const phones = user.locator("#phones li");
  await phones.first().waitFor();
  assert.equal(await phones.count(), 1);
  await user.getByRole("button", { name: "Add another phone" }).click();
  const stepUp = user.locator("#step-up");
  const stepUpCode = user.getByLabel("6-digit code").and(user.locator("#step-up-code"));
  await user.locator("#step-up-sent-to").getByText("We texted a code to +1••••••0123.").waitFor();
  assert.ok(await user.locator("#phone-action").isHidden(), "the change waits for the step-up");
  assert.equal(await stepUpCode.getAttribute("autocomplete"), "one-time-code");
  assert.ok(await user.locator("#step-up-resend").isDisabled(), "resend counts down as in enrollment");
  assert.match(await user.locator("#step-up-resend").textContent(), /Send a new code \(\d+ s\)/);
  await fitsPhone();
  await shot(user, "user-7-step-up");
  const stepUpSms = await lastCode(base, "+14155550123");
  await stepUpCode.fill(stepUpSms.slice(0, 5) + String((Number(stepUpSms[5]) + 1) % 10));
  await user.locator("#step-up-verify").click();
  await user.locator("#step-up-code-error").getByText(/Attempts left: 4/).waitFor();
  assert.equal(await stepUpCode.getAttribute("aria-invalid"), "true");
  await stepUpCode.fill(stepUpSms);
  asked = await otpRequests();
  assert.deepEqual(asked.at(-1), { transport: ["sms"], aborted: false }, "the step-up's code field asks too");
  await user.locator("#step-up-verify").click();
  await user.locator("#action-password").waitFor();
  assert.ok(await stepUp.isHidden());
  assert.ok((await otpRequests()).slice(1).every((r) => r.aborted), "typed: the request is aborted with its screen");

  await user.locator("#action-password").fill("correct horse battery");
  await user.locator("#action-number").fill("+44 7400 123456");
  await user.locator("#action-label").fill("Work");
  await user.locator("#action-submit").click();
  await code.waitFor();
  await code.fill(await lastCode(base, "+447400123456"));
  await user.getByRole("button", { name: "Verify" }).click();
  await user.locator("#phones li").nth(1).waitFor();
  assert.equal(await phones.count(), 2);
  assert.equal(changes.length, 1);
  assert.ok(isJws(changes[0].assertion), "the add carried the step-up assertion");

  const work = phones.filter({ hasText: "+44" });
  const primaryBadge = (li) => li.locator(".badge.primary");
  assert.equal(await primaryBadge(work).count(), 0, "the first phone stays primary");
  assert.equal(await primaryBadge(phones.filter({ hasText: "+1" })).count(), 1);
  await work.getByRole("button", { name: /Make primary/ }).click();
  await primaryBadge(work).waitFor();
  assert.equal(await primaryBadge(phones.filter({ hasText: "+1" })).count(), 0, "one primary at a time");
  await shot(user, "user-6-settings");

  // ---- recovery codes: the assertion is still fresh, so no new text; shown this once
  const texts = async () => (await (await fetch(`${base}/_local/outbox`)).json()).sms.length;
  const textsBefore = await texts();
  await user.getByRole("button", { name: "Create recovery codes" }).click();
  await user.getByRole("heading", { name: "Create recovery codes" }).waitFor();
  assert.ok(await stepUp.isHidden(), "a fresh assertion serves several changes");
  await user.locator("#action-password").fill("correct horse battery");
  await user.locator("#action-submit").click();
  const recoveryList = user.locator("#recovery-list li");
  await recoveryList.first().waitFor();
  const recoveryCodes = await recoveryList.allTextContents();
  assert.equal(recoveryCodes.length, 10);
  for (const c of recoveryCodes) assert.match(c, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
  await user.getByText("Recovery codes: 10 left.").waitFor();
  await fitsPhone();
  await shot(user, "user-8-recovery-codes");
  await user.getByRole("button", { name: "I have saved my codes" }).click();
  assert.equal(await recoveryList.count(), 0, "the codes leave the page once saved");

  // The first phone goes (the same proof); the work phone is the only one left.
  await phones.filter({ hasText: "+1" }).getByRole("button", { name: /Remove/ }).click();
  await user.getByRole("heading", { name: /Remove \+1/ }).waitFor();
  await user.locator("#action-password").fill("correct horse battery");
  await user.locator("#action-submit").click();
  await phones.filter({ hasText: "+1" }).waitFor({ state: "detached" });
  assert.equal(await phones.count(), 1);
  assert.equal(await texts(), textsBefore, "no step-up text while the assertion is fresh");
  assert.deepEqual(changes.map((c) => c.method), ["POST", "POST", "DELETE"]);
  for (const c of changes) assert.equal(c.assertion, changes[0].assertion);

  // ---- later: she lost the work phone. A new sign-in (the assertion is gone), a recovery code
  // in the step-up, and the number replaced.
  await user.reload();
  await user.getByRole("button", { name: "End user" }).click();
  await user.locator("#user-app").fill(app);
  await user.locator("#user-id").fill("ada");
  await user.locator("#user-signin").getByRole("button", { name: "Sign in" }).click();
  await phones.first().waitFor();
  assert.equal(await phones.count(), 1);
  await user.getByText("Recovery codes: 10 left.").waitFor();
  await phones.first().getByRole("button", { name: /Change number/ }).click();
  // A code goes to the lost phone (or, right after the last step-up text, the service asks to
  // wait: either way the recovery code is the way in).
  await user.locator("#step-up-sent-to").getByText(/texted a code to \+44/)
    .or(user.locator("#step-up-form-error").getByText(/.+/)).waitFor();
  await user.getByRole("button", { name: "Lost your phone? Use a recovery code instead" }).click();
  const recoveryField = user.getByLabel("Recovery code", { exact: true });
  await recoveryField.fill("AAAAA-AAAAA");
  await user.locator("#step-up-recovery-verify").click();
  await user.locator("#step-up-recovery-code-error").getByText(/.+/).waitFor();
  assert.equal(await recoveryField.getAttribute("aria-invalid"), "true");
  await fitsPhone();
  await shot(user, "user-9-recovery-step-up");
  await recoveryField.fill(recoveryCodes[0].toLowerCase()); // as a person might type it

  // The service refuses the first proof once (as it does an expired one): the page steps up
  // again, here with another recovery code, and sends the change once more.
  let refused = 0;
  await user.route("**/v1/mfa/phones/*", (route) => {
    if (route.request().method() === "PUT" && refused === 0) {
      refused += 1;
      return route.fulfill({
        status: 403,
        contentType: "application/json",
        body: JSON.stringify({ error: "step_up_required", message: "Verify with a code first." }),
      });
    }
    return route.continue();
  });
  await user.locator("#step-up-recovery-verify").click();
  await user.getByRole("heading", { name: /Change \+44/ }).waitFor();
  await user.locator("#action-password").fill("correct horse battery");
  await user.locator("#action-number").fill("+1 415 555 0199");
  await user.locator("#action-submit").click();
  await user.getByText("Your confirmation has expired. Enter a new code to continue.").waitFor();
  await user.getByRole("button", { name: "Lost your phone? Use a recovery code instead" }).click();
  await recoveryField.fill(recoveryCodes[1]);
  await user.locator("#step-up-recovery-verify").click();
  await code.waitFor();
  assert.equal(refused, 1);
  assert.match(await user.locator("#code-sent-to").textContent(), /\+1••••••0199/);
  await code.fill(await lastCode(base, "+14155550199"));
  await user.getByRole("button", { name: "Verify" }).click();
  await phones.filter({ hasText: "+1••••••0199" }).waitFor();
  assert.equal(await phones.count(), 1);
  assert.equal(await primaryBadge(phones.first()).count(), 1, "the new number keeps the primary flag");
  await user.getByText("Recovery codes: 8 left.").waitFor();
  const puts = changes.filter((c) => c.method === "PUT");
  assert.equal(puts.length, 2);
  assert.ok(isJws(puts[0].assertion) && isJws(puts[1].assertion), "each try carried a proof");
  assert.notEqual(puts[0].assertion, puts[1].assertion, "the retry carried the new proof");
  assert.notEqual(puts[0].assertion, changes[0].assertion, "a new sign-in kept no earlier proof");
  await shot(user, "user-10-number-replaced");
});
