// Authenticator apps (TOTP) beside texts, clicked through the reference web page in headless
// Chromium against a fresh mfa-local:
//   the admin ticks Authenticator app among the methods (the default allows texts only) → Grace,
//   with no factor yet, is offered both methods, chooses the app and needs only her password →
//   the page shows the secret as a QR code (decoded here with jsQR: the otpauth URI) and as a key →
//   a wrong code is refused at the field, the code computed here from the shown key (RFC 6238)
//   completes it → settings show the app → the Sign in card, by the app, gives an assertion whose
//   claims show amr "otp" → she removes the app after a step-up by the app (no text sent).
//   Then Hopper, enrolled by text, sets up an app from settings after a step-up by a texted code,
//   and signs in by text (amr "sms").
// The codes are computed by the test itself (HMAC-SHA1 from node:crypto, base32 decoded here):
// an independent check of the service's RFC 6238. Each 30 s step is accepted once per user, so a
// second code of the same user waits for the next step.
//
//   MFA_LOCAL_BIN=target/debug/mfa-local node --test tests/browser/
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium } from "playwright-core";
import jsQR from "jsqr";
import { chromiumArgs, executablePath, lastCode, shot, startLocal } from "./local.mjs";

// ---- RFC 6238, independently of the service

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
function base32Decode(text) {
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, "")) {
    const i = BASE32.indexOf(c);
    assert.ok(i >= 0, `${JSON.stringify(c)} is not base32`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function hotp(key, counter) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const h = createHmac("sha1", key).update(msg).digest();
  const o = h[h.length - 1] & 0x0f;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, "0");
}

const STEP_MS = 30_000;
const stepNow = () => Math.floor(Date.now() / STEP_MS);

/// The codes of one user's app: each call gives the code of the current step, first waiting for
/// the next step when this user's last code used the current one (a step is accepted once).
function authenticator(secret) {
  const key = base32Decode(secret);
  let last = -1;
  return {
    key,
    secret,
    get last() { return last; },
    /// Continues the steps of another app of the same user.
    after(other) { last = Math.max(last, other.last); },
    async next() {
      if (stepNow() <= last) await sleep((last + 1) * STEP_MS - Date.now() + 500);
      last = stepNow();
      return hotp(key, last);
    },
    /// A code of none of the steps the service accepts now.
    wrong() {
      const near = [-1, 0, 1, 2].map((d) => hotp(key, stepNow() + d));
      for (let d = 10; ; d += 1) { const c = hotp(key, stepNow() - d); if (!near.includes(c)) return c; }
    },
  };
}

const claimsOf = (jws) => JSON.parse(Buffer.from(jws.split(".")[1], "base64url").toString());

test("RFC 6238 as the test computes it (the RFC's SHA-1 vectors, 6 digits)", () => {
  const key = Buffer.from("12345678901234567890");
  assert.equal(hotp(key, Math.floor(59 / 30)), "287082");
  assert.equal(hotp(key, Math.floor(1111111109 / 30)), "081804");
  assert.equal(hotp(key, Math.floor(20000000000 / 30)), "353130");
  assert.deepEqual(base32Decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), key);
});

test("authenticator apps beside texts, clicked through the reference page", async (t) => {
  const { child, base } = await startLocal("browser-mfa-local-totp.log");
  const browser = await chromium.launch({ executablePath, args: chromiumArgs });
  t.after(async () => { await browser.close(); child.kill(); });
  const app = "globex";
  const password = "correct horse battery";
  const texts = async () => (await (await fetch(`${base}/_local/outbox`)).json()).sms.length;

  // ---- the administrator: MFA available, enabled, in the sign-up, optional; both methods
  const admin = await (await browser.newContext({ viewport: { width: 1024, height: 800 } })).newPage();
  await admin.goto(`${base}/`);
  await admin.getByLabel("Application id").first().fill(app);
  await admin.getByRole("button", { name: "Sign in" }).first().click();
  await admin.getByRole("button", { name: "Make MFA available to this application" }).click();
  await admin.getByText("Contact your customer success manager").waitFor({ state: "hidden" });
  const sms = admin.getByRole("checkbox", { name: "Text message" });
  const totp = admin.getByRole("checkbox", { name: "Authenticator app" });
  assert.ok(await sms.isChecked(), "texts are allowed by default");
  assert.ok(!(await totp.isChecked()), "authenticator apps are not, by default");
  await admin.getByLabel("Enable MFA").check();
  await admin.getByLabel("Include MFA setup after the create-account flow").check();
  await admin.getByRole("radio", { name: "Optional" }).check();
  await sms.uncheck();
  await admin.getByRole("button", { name: "Save" }).click();
  await admin.locator("#factors-error").getByText("Choose at least one method").waitFor();
  await sms.check();
  await totp.check();
  await admin.getByRole("button", { name: "Save" }).click();
  // Version 1 was the operator's; the refused Save above sent nothing.
  await admin.getByText(/Version 2, saved by admin@/).waitFor();
  assert.ok(await totp.isChecked() && await sms.isChecked(), "the saved policy shows both methods");
  assert.equal(await admin.locator("#factors-error").textContent(), "");
  await shot(admin, "admin-mfa-methods");
  // The service kept them (read back through the API, not the page).
  const adminToken = await admin.evaluate(async (a) => (await (await fetch("/_local/admin-sign-in", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ app_id: a }),
  })).json()).token, app);
  const policy = await (await fetch(`${base}/v1/admin/applications/${app}/mfa-policy`, { headers: { Authorization: `Bearer ${adminToken}` } })).json();
  assert.deepEqual([...policy.factors].sort(), ["sms", "totp"]);

  // ---- Grace, at phone width: no factor yet, so the app needs only her password
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const user = await ctx.newPage();
  const changes = []; // every change of factors the page sends, with its proof
  user.on("request", (req) => {
    const path = new URL(req.url()).pathname;
    if ((path.startsWith("/v1/mfa/phones") || path === "/v1/mfa/totp") && ["POST", "PUT", "DELETE"].includes(req.method())) {
      changes.push({ method: req.method(), path, assertion: req.headers()["mfa-assertion"] });
    }
  });
  const fitsPhone = async () => {
    const [width, labelless] = await user.evaluate(() => [
      document.documentElement.scrollWidth,
      [...document.querySelectorAll("input, select")].filter((e) => e.labels.length === 0).map((e) => e.id),
    ]);
    assert.ok(width <= 390, `the page is ${width} px wide at 390 px`);
    assert.deepEqual(labelless, [], "every input has a label");
  };
  const signIn = async (who) => {
    await user.goto(`${base}/`);
    await user.getByRole("button", { name: "End user" }).click();
    await user.locator("#user-app").fill(app);
    await user.locator("#user-id").fill(who);
    await user.locator("#user-email").fill(`${who}@example.com`);
    await user.locator("#user-signin").getByRole("button", { name: "Sign in" }).click();
  };
  await signIn("grace");
  await user.getByRole("heading", { name: "Add extra protection to your account" }).waitFor();
  await user.getByRole("group", { name: "How do you want to get your codes?" }).waitFor();
  assert.ok(await user.locator("#method-sms").isChecked(), "texts stay the default choice");
  assert.ok(await user.getByRole("button", { name: "Skip for now" }).isVisible(), "optional: Skip is offered");
  await fitsPhone();
  await shot(user, "user-11-choose-method");
  await user.locator("#method-totp").check();
  await user.getByRole("button", { name: "Start" }).click();
  await user.locator("#enroll-password").fill(password);
  await user.getByRole("button", { name: "Continue" }).click();

  // The setup: the QR code of the otpauth URI, the key as text, the code field.
  const qr = user.getByRole("img", { name: "QR code for your authenticator app" });
  await qr.waitFor();
  const secret = (await user.locator("#totp-secret").textContent()).replace(/\s+/g, "");
  assert.match(secret, /^[A-Z2-7]{32}$/, "the key: 20 bytes in base32, no padding");
  assert.equal(base32Decode(secret).length, 20);
  const pixels = await qr.evaluate(async (img) => {
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    return { width: c.width, height: c.height, data: Array.from(g.getImageData(0, 0, c.width, c.height).data) };
  });
  const decoded = jsQR(Uint8ClampedArray.from(pixels.data), pixels.width, pixels.height);
  assert.ok(decoded, "the QR code reads");
  const uri = new URL(decoded.data);
  assert.equal(uri.protocol, "otpauth:");
  assert.equal(uri.host, "totp");
  assert.equal(uri.searchParams.get("secret"), secret, "the QR code holds the key shown as text");
  assert.equal(uri.searchParams.get("digits"), "6");
  assert.equal(uri.searchParams.get("period"), "30");
  assert.match(decodeURIComponent(uri.pathname), /grace@example\.com$/);
  const code = user.getByLabel("6-digit code from the app");
  assert.equal(await code.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await code.getAttribute("inputmode"), "numeric");
  await fitsPhone();
  await shot(user, "user-12-app-setup");
  const grace = authenticator(secret);
  await code.fill(grace.wrong());
  await user.locator("#totp-verify").click();
  await user.locator("#totp-code-error").getByText(/Attempts left: 4/).waitFor();
  assert.equal(await code.getAttribute("aria-invalid"), "true");
  await code.fill(await grace.next());
  await user.locator("#totp-verify").click();
  await user.getByRole("heading", { name: "Your account is protected" }).waitFor();
  assert.match(await user.locator("#success-text").textContent(), /authenticator app/);
  assert.equal(await user.locator("#totp-secret").textContent(), "", "the key leaves the page");
  assert.deepEqual(changes.map((c) => [c.method, c.path, c.assertion]), [["POST", "/v1/mfa/totp", undefined]],
    "the first factor needs no proof");

  // ---- settings: the app, never used yet; no phone
  await user.getByRole("button", { name: "Go to settings" }).click();
  await user.locator("#totp-present").waitFor();
  assert.match(await user.locator("#totp-meta").textContent(), /^Set up .+; not used to sign in yet\.$/);
  assert.equal(await user.locator("#phones li").count(), 0);

  // ---- the Sign in card: by the app (her only factor), the assertion's claims
  const card = user.locator("#mfa-signin");
  assert.ok(await card.locator("#signin-factor-totp").isChecked());
  assert.ok(await card.locator("#signin-factor-sms").isHidden(), "no phone, no text to choose");
  await card.getByRole("button", { name: "Get a code" }).click();
  await card.getByText("Enter the code your authenticator app shows now.").waitFor();
  await card.getByLabel("6-digit code").fill(await grace.next());
  await card.getByRole("button", { name: "Check the code" }).click();
  await card.getByRole("heading", { name: "Signed in: the assertion's claims" }).waitFor();
  const claim = (k) => card.locator(`#signin-claims dd[data-claim="${k}"]`).textContent();
  assert.equal(await claim("amr"), "otp");
  assert.equal(await claim("sub"), "grace");
  assert.equal(await claim("app_id"), app);
  const exp = Number((await claim("exp")).split(" ")[0]);
  assert.ok(exp * 1000 > Date.now() && exp * 1000 <= Date.now() + 6 * 60_000, "exp: within the 5 minutes");
  await user.locator("#totp-meta").getByText(/last used/).waitFor();
  await fitsPhone();
  await shot(user, "user-13-sign-in-app");

  // ---- removing the app: a step-up by the app itself (no text), then the password
  const textsBefore = await texts();
  await user.getByRole("button", { name: "Remove the authenticator app" }).click();
  await user.locator("#step-up-totp").getByText("Enter the code your authenticator app shows now.").waitFor();
  assert.ok(await user.locator("#step-up-sms").isHidden());
  assert.ok(await user.locator("#step-up-totp-use-sms").isHidden(), "no phone to text");
  assert.ok(await user.locator("#phone-action").isHidden(), "the change waits for the step-up");
  await fitsPhone();
  await shot(user, "user-14-app-step-up");
  await user.getByLabel("6-digit code from your authenticator app").fill(await grace.next());
  await user.locator("#step-up-totp-verify").click();
  await user.getByRole("heading", { name: "Remove the authenticator app" }).waitFor();
  await user.locator("#action-password").fill(password);
  await user.locator("#action-submit").click();
  // Her last factor gone (the policy is optional), the enrollment prompt is back.
  await user.getByRole("heading", { name: "Add extra protection to your account" }).waitFor();
  assert.equal(await texts(), textsBefore, "a step-up by the app sends no text");
  const removal = changes.at(-1);
  assert.deepEqual([removal.method, removal.path], ["DELETE", "/v1/mfa/totp"]);
  assert.ok(removal.assertion, "the removal carried the step-up assertion");
  assert.deepEqual(claimsOf(removal.assertion).amr, ["otp"]);
  assert.equal(claimsOf(removal.assertion).sub, "grace");

  // ---- Hopper: enrolled by text, then an app from settings after a step-up by a texted code
  changes.length = 0;
  await signIn("hopper");
  await user.getByRole("heading", { name: "Add extra protection to your account" }).waitFor();
  await user.getByRole("button", { name: "Start" }).click(); // texts: the default choice
  await user.locator("#enroll-password").fill(password);
  await user.getByRole("button", { name: "Continue" }).click();
  await user.locator("#phone-number").fill("+1 415 555 0177");
  await user.getByRole("button", { name: "Text me a code" }).click();
  await user.locator("#code").fill(await lastCode(base, "+14155550177"));
  await user.getByRole("button", { name: "Verify" }).click();
  await user.getByRole("heading", { name: "Your account is protected" }).waitFor();
  await user.getByRole("button", { name: "Go to settings" }).click();
  await user.getByRole("button", { name: "Set up an authenticator app" }).click();
  await user.locator("#step-up-sent-to").getByText("We texted a code to +1••••••0177.").waitFor();
  assert.ok(await user.locator("#step-up-sms-use-totp").isHidden(), "no app yet to prove");
  await user.locator("#step-up-code").fill(await lastCode(base, "+14155550177"));
  await user.locator("#step-up-verify").click();
  await user.getByRole("heading", { name: "Set up an authenticator app" }).waitFor();
  await user.locator("#action-password").fill(password);
  await user.locator("#action-label").fill("Pixel");
  await user.locator("#action-submit").click();
  await qr.waitFor();
  const hopper = authenticator((await user.locator("#totp-secret").textContent()).replace(/\s+/g, ""));
  await code.fill(await hopper.next());
  await user.locator("#totp-verify").click();
  await user.locator("#settings-note").getByText("Your authenticator app is set up.").waitFor();
  assert.equal(await user.locator("#totp-label").textContent(), "Pixel");
  assert.deepEqual(changes.map((c) => [c.method, c.path]), [["POST", "/v1/mfa/totp"]]);
  assert.deepEqual(claimsOf(changes[0].assertion).amr, ["sms"], "the app was added on a texted code's proof");
  // Both factors to choose from at sign-in; by text this time.
  assert.ok(await card.locator("#signin-factor-sms").isVisible());
  await card.locator("#signin-factor-sms").check();
  await card.getByRole("button", { name: "Get a code" }).click();
  // The step-up text went out moments ago and a user's challenge texts are 30 s apart: the
  // service answers 429 and the button counts down; once it is enabled, it works.
  const sent = card.getByText("We texted a code to +1••••••0177.");
  await sent.or(card.locator("#signin-error").getByText(/.+/)).waitFor();
  if (!(await sent.isVisible())) {
    assert.match(await card.locator("#signin-start").textContent(), /^Get a code \(\d+ s\)$/);
    assert.ok(await card.locator("#signin-start").isDisabled());
    await user.waitForFunction(() => !document.getElementById("signin-start").disabled, null, { timeout: 45_000 });
    await card.getByRole("button", { name: "Get a code" }).click();
    await sent.waitFor();
  }
  await card.getByLabel("6-digit code").fill(await lastCode(base, "+14155550177"));
  await card.getByRole("button", { name: "Check the code" }).click();
  await card.getByRole("heading", { name: "Signed in: the assertion's claims" }).waitFor();
  assert.equal(await claim("amr"), "sms");
  assert.equal(await claim("sub"), "hopper");
  await fitsPhone();
  await shot(user, "user-15-settings-app-and-phone");

  // He moves to another app: the proof is still fresh (no step-up), a new key, its code.
  const textsBeforeMove = await texts();
  await user.getByRole("button", { name: "Move to another authenticator app" }).click();
  await user.getByRole("heading", { name: "Move to another authenticator app" }).waitFor();
  assert.ok(await user.locator("#step-up").isHidden(), "a fresh assertion serves several changes");
  await user.locator("#action-password").fill(password);
  await user.locator("#action-label").fill("Pixel 9");
  await user.locator("#action-submit").click();
  await qr.waitFor();
  const moved = (await user.locator("#totp-secret").textContent()).replace(/\s+/g, "");
  assert.notEqual(moved, hopper.secret, "a new key");
  const hopper2 = authenticator(moved);
  hopper2.after(hopper); // a step is accepted once per user, whichever app
  await code.fill(await hopper2.next());
  await user.locator("#totp-verify").click();
  await user.locator("#totp-label").getByText("Pixel 9", { exact: true }).waitFor();
  await user.locator("#settings-note").getByText("Your authenticator app is set up.").waitFor();
  assert.equal(await texts(), textsBeforeMove, "no new step-up text");
  assert.deepEqual(changes.map((c) => [c.method, c.path]), [["POST", "/v1/mfa/totp"], ["POST", "/v1/mfa/totp"]]);
  assert.equal(changes[1].assertion, changes[0].assertion);
});
