// The seed, clicked through the reference web page in headless Chromium (Debian's package,
// driven by playwright-core) against a fresh mfa-local on the embedded default:
//   the admin makes MFA required → the user sees the enrollment without Skip → completes it
//   with the code read from /_local/outbox → adds a second phone in settings → makes it primary.
// Every screen is saved under docs/screens/ (the README shows them).
//
//   MFA_LOCAL_BIN=target/debug/mfa-local node tests/browser/seed.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync, openSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const screens = join(root, "docs/screens");
const bin = resolve(root, process.env.MFA_LOCAL_BIN || "target/debug/mfa-local");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
// Without the networking flags Chromium keeps trying Google's hosts on this closed network.
const chromiumArgs = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

async function startLocal() {
  const port = await freePort();
  // Its log (stderr) goes to target/browser-mfa-local.log, read on a failure.
  mkdirSync(join(root, "target"), { recursive: true });
  const log = openSync(join(root, "target/browser-mfa-local.log"), "w");
  const child = spawn(bin, ["--port", String(port)], { stdio: ["ignore", "pipe", log] });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${bin} did not start within 60 s`)), 60_000);
    child.once("exit", (code) => fail(new Error(`${bin} exited with ${code}`)));
    child.stdout.on("data", (d) => { if (String(d).includes("listening on")) { clearTimeout(timer); ok(); } });
  });
  child.stdout.resume();
  return { child, base: `http://127.0.0.1:${port}` };
}

/// The code of the last text to `number` (E.164), from the local outbox.
async function lastCode(base, number) {
  const outbox = await (await fetch(`${base}/_local/outbox`)).json();
  const texts = outbox.sms.filter((m) => m.to === number);
  assert.ok(texts.length > 0, `no text to ${number}`);
  const code = texts[texts.length - 1].body.match(/\b(\d{6})\b/);
  assert.ok(code, `no 6-digit code in ${texts[texts.length - 1].body}`);
  return code[1];
}

const shot = (page, name) => page.screenshot({ path: join(screens, `${name}.png`), fullPage: true });

test("the seed, clicked through the reference page", async (t) => {
  mkdirSync(screens, { recursive: true });
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
  await admin.getByText(/Version \d+, saved by admin@/).waitFor();
  await shot(admin, "admin-mfa-required");

  // ---- the end user, at phone width
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const user = await ctx.newPage();
  await user.goto(`${base}/`);
  await user.getByRole("button", { name: "End user" }).click();
  await user.locator("#user-app").fill(app);
  await user.locator("#user-id").fill("ada");
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

  const code = user.getByLabel("6-digit code");
  await code.waitFor();
  assert.equal(await code.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await code.getAttribute("inputmode"), "numeric");
  assert.ok(await user.getByRole("button", { name: /Send a new code/ }).isDisabled(), "resend waits for resend_available_at");
  assert.match(await user.locator("#code-sent-to").textContent(), /\+1••••••0123/);
  await shot(user, "user-4-code");
  await code.fill(await lastCode(base, "+14155550123"));
  await user.getByRole("button", { name: "Verify" }).click();
  await user.getByRole("heading", { name: "Your account is protected" }).waitFor();
  await shot(user, "user-5-success");

  // ---- settings: add a second phone, make it primary
  await user.getByRole("button", { name: "Go to settings" }).click();
  const phones = user.locator("#phones li");
  await phones.first().waitFor();
  assert.equal(await phones.count(), 1);
  await user.getByRole("button", { name: "Add another phone" }).click();
  await user.locator("#action-password").fill("correct horse battery");
  await user.locator("#action-number").fill("+44 7400 123456");
  await user.locator("#action-label").fill("Work");
  await user.locator("#action-submit").click();
  await code.waitFor();
  await code.fill(await lastCode(base, "+447400123456"));
  await user.getByRole("button", { name: "Verify" }).click();
  await user.locator("#phones li").nth(1).waitFor();
  assert.equal(await phones.count(), 2);

  const work = phones.filter({ hasText: "+44" });
  const primaryBadge = (li) => li.locator(".badge.primary");
  assert.equal(await primaryBadge(work).count(), 0, "the first phone stays primary");
  assert.equal(await primaryBadge(phones.filter({ hasText: "+1" })).count(), 1);
  await work.getByRole("button", { name: /Make primary/ }).click();
  await primaryBadge(work).waitFor();
  assert.equal(await primaryBadge(phones.filter({ hasText: "+1" })).count(), 0, "one primary at a time");
  await shot(user, "user-6-settings");
});
