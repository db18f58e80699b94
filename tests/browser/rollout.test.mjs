// Rolling MFA out (issue 18), clicked through the reference web page in headless Chromium
// against a fresh mfa-local (its daily text budget set to 50 for this run):
//   the platform provisions 5 users through the admin API → the admin makes MFA available,
//   enabled, in the sign-up, optional → Ada enrolls by text, Bob skips → the Adoption tab shows
//   1 of 5 users with MFA (20%), 1 by text, 0 by app, 1 skip, the texts of the outbox against
//   the limit, each figure also read from GET .../mfa-stats → the admin chooses Required: the
//   page asks first, naming the 4 users it will prompt "immediately, without Skip" (grace 0),
//   then "with a grace period of 14 days"; Cancel saves nothing (read back through the admin
//   API); confirmed, it saves → Cy, not enrolled, sees "Set up by <14 days from now>" and Skip,
//   the date from her status's enroll_by; her skip counts on the Adoption tab, read again when
//   the tab is opened → the admin shortens the grace to 0 days: Cy's prompt is back without
//   Skip or date.
// The screens are saved under docs/screens/ (the README shows them).
//
//   MFA_LOCAL_BIN=target/debug/mfa-local node --test tests/browser/rollout.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { chromiumArgs, executablePath, hashPassword, lastCode, localToken, shot, startLocal } from "./local.mjs";

const APP = "initech";
const PASSWORD = "correct horse battery";
const USERS = ["ada", "bob", "cy", "dee", "eve"];
const LIMIT = 50; // MFA_TEXTS_PER_APP_PER_DAY for this run, so that the meter's share shows
const GRACE_DAYS = 14;
const DAY_MS = 86_400_000;
// The browser's language and zone, so that the test knows how the page writes a date.
const LOCALE = "en-GB";
const ZONE = "Europe/Paris";

test("rolling MFA out: the adoption figures, Required confirmed with a grace period, the user's deadline", async (t) => {
  const { child, base } = await startLocal("browser-mfa-local-rollout.log", { MFA_TEXTS_PER_APP_PER_DAY: String(LIMIT) });
  const browser = await chromium.launch({ executablePath, args: chromiumArgs });
  t.after(async () => { await browser.close(); child.kill(); });

  // ---- the platform's side, through the admin API with a local admin JWT
  const adminJwt = localToken(`admin@${APP}`, { app: APP, scope: "mfa:admin" });
  const adminApi = async (method, path, body) => {
    const init = { method, headers: { Authorization: `Bearer ${adminJwt}` } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(`${base}/v1/admin/applications/${APP}${path}`, init);
    const json = await r.json();
    assert.ok(r.ok, `${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
  const hash = hashPassword(PASSWORD);
  for (const u of USERS) {
    await adminApi("PUT", `/users/${u}`, { email: `${u}@example.com`, email_verified: true, password_hash: hash });
  }
  const stats = () => adminApi("GET", "/mfa-stats");
  const policy = () => adminApi("GET", "/mfa-policy");
  const outboxTexts = async () => (await (await fetch(`${base}/_local/outbox`)).json()).sms.length;
  assert.equal((await stats()).users, USERS.length, "each provisioned user counts once");

  const browserContext = { locale: LOCALE, timezoneId: ZONE };
  const labelless = (page) => page.evaluate(() =>
    [...document.querySelectorAll("input, select, meter")].filter((e) => !e.closest("[hidden]") && e.labels.length === 0).map((e) => e.id));

  // ---- the administrator: available, enabled, in the sign-up, optional
  const admin = await (await browser.newContext({ viewport: { width: 1024, height: 800 }, ...browserContext })).newPage();
  await admin.goto(`${base}/`);
  await admin.getByLabel("Application id").first().fill(APP);
  await admin.getByRole("button", { name: "Sign in" }).first().click();
  await admin.getByRole("button", { name: "Make MFA available to this application" }).click();
  await admin.getByText("Contact your customer success manager").waitFor({ state: "hidden" });
  await admin.getByLabel("Enable MFA").check();
  await admin.getByLabel("Include MFA setup after the create-account flow").check();
  await admin.getByRole("radio", { name: /^Optional/ }).check();
  const grace = admin.getByLabel("Grace period (days)");
  assert.equal(await grace.inputValue(), "0", "no grace period by default");
  await admin.getByRole("button", { name: "Save" }).click();
  await admin.getByText(/Version 2, saved by admin@/).waitFor();
  assert.equal(await admin.getByRole("dialog").count(), 0, "saving Optional asks nothing");
  assert.equal((await policy()).enforcement, "optional");

  // ---- the users, at phone width
  const user = await (await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, ...browserContext,
  })).newPage();
  const prompt = user.getByRole("heading", { name: "Add extra protection to your account" });
  const skip = user.getByRole("button", { name: "Skip for now" });
  // Signs `who` in on the page (the local box replaces the user: same id, not a new one) and
  // gives the status the page received.
  const signIn = async (who) => {
    await user.goto(`${base}/`);
    await user.getByRole("button", { name: "End user" }).click();
    await user.locator("#user-app").fill(APP);
    await user.locator("#user-id").fill(who);
    await user.locator("#user-email").fill(`${who}@example.com`);
    const status = user.waitForResponse((r) => new URL(r.url()).pathname === "/v1/mfa/status");
    await user.locator("#user-signin").getByRole("button", { name: "Sign in" }).click();
    return (await status).json();
  };

  // Ada enrolls by text.
  let status = await signIn("ada");
  assert.equal(status.enroll_by, null, "no deadline while optional");
  await prompt.waitFor();
  assert.ok(await user.locator("#prompt-deadline").isHidden());
  await user.getByRole("button", { name: "Start" }).click();
  await user.locator("#enroll-password").fill(PASSWORD);
  await user.getByRole("button", { name: "Continue" }).click();
  await user.locator("#phone-number").fill("+1 415 555 0142");
  await user.getByRole("button", { name: "Text me a code" }).click();
  await user.locator("#code").fill(await lastCode(base, "+14155550142"));
  await user.getByRole("button", { name: "Verify" }).click();
  await user.getByRole("heading", { name: "Your account is protected" }).waitFor();

  // Bob skips.
  await signIn("bob");
  await prompt.waitFor();
  const skipped = user.waitForResponse((r) => new URL(r.url()).pathname === "/v1/mfa/skip");
  await skip.click();
  assert.equal((await skipped).status(), 200);
  await user.locator("#settings").waitFor();
  assert.ok(await prompt.isHidden());

  // ---- the Adoption tab: the figures the test knows, on the page and from the API
  const texts = await outboxTexts(); // a fresh mfa-local: every text is this application's
  assert.ok(texts >= 1);
  const expected = {
    users: USERS.length, enrolled: 1, enrolled_by_factor: { sms: 1, totp: 0 },
    skips_last_7_days: 1, texts_last_24h: texts, texts_per_day_limit: LIMIT,
  };
  const api = await stats();
  const { as_of: asOf, ...counts } = api;
  assert.deepEqual(counts, expected, "GET mfa-stats");
  assert.ok(Math.abs(Date.parse(asOf) - Date.now()) < 60_000, `as_of ${asOf} is now`);

  const adoptionTab = admin.getByRole("tab", { name: "Adoption" });
  const policyTab = admin.getByRole("tab", { name: "Policy" });
  assert.equal(await policyTab.getAttribute("aria-selected"), "true", "the console opens on Policy");
  assert.ok(await admin.getByRole("tabpanel", { name: "Adoption" }).isHidden());
  // The keyboard moves between tabs (the WAI-ARIA tabs pattern); opening Adoption reads the figures.
  await policyTab.focus();
  await admin.keyboard.press("ArrowRight");
  const panel = admin.getByRole("tabpanel", { name: "Adoption" });
  await panel.waitFor();
  assert.equal(await adoptionTab.getAttribute("aria-selected"), "true");
  assert.ok(await admin.locator("#policy-form").isHidden());
  const pct = (part, whole) => `${Math.round((100 * part) / whole)}%`;
  const headline = `1 of 5 users have MFA (${pct(1, 5)})`;
  assert.equal(headline, "1 of 5 users have MFA (20%)");
  await panel.getByText(headline, { exact: true }).waitFor();
  const figure = (id) => admin.locator(`#${id}`).textContent();
  assert.equal(await figure("adoption-enrolled"), "1");
  assert.equal(await figure("adoption-not-enrolled"), String(USERS.length - 1));
  assert.equal(await figure("adoption-sms"), "1");
  assert.equal(await figure("adoption-totp"), "0");
  assert.equal(await figure("adoption-skips"), "1");
  assert.equal(await figure("texts-summary"), `${texts} of ${LIMIT} allowed a day (${pct(texts, LIMIT)})`);
  // Each figure by its words, as a person (or a screen reader) reads it.
  await panel.getByText("Have MFA: 1").waitFor();
  await panel.getByText(`Not yet: ${USERS.length - 1}`).waitFor();
  await panel.getByText("Skips in the last 7 days: 1").waitFor();
  const dl = await panel.locator("dl.figures").evaluate((d) =>
    Object.fromEntries([...d.querySelectorAll("dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  assert.deepEqual(dl, { "Text message": "1", "Authenticator app": "0" });
  // The bar: its text equivalent, and the enrolled share of its width.
  const bar = admin.getByRole("img", { name: /users have MFA/ });
  assert.equal(await bar.getAttribute("aria-label"), `${headline}; 4 not yet`);
  const share = await admin.evaluate(() =>
    document.getElementById("adoption-bar-on").getBoundingClientRect().width / document.getElementById("adoption-bar").clientWidth);
  assert.ok(Math.abs(share - 0.2) < 0.01, `the enrolled part of the bar is ${share} of it`);
  // The texts: a meter, labelled, against the limit.
  const meter = admin.getByRole("meter", { name: "Texts sent in the last 24 hours" });
  assert.equal(await meter.evaluate((m) => [m.value, m.max].join("/")), `${texts}/${LIMIT}`);
  assert.match(await figure("adoption-as-of"), /^As of .+\.$/);
  assert.deepEqual(await labelless(admin), [], "every field of the console has a label");
  await shot(admin, "admin-adoption");

  // ---- Required: the page asks first, naming the users it will prompt
  await policyTab.click();
  const dialog = admin.getByRole("dialog", { name: "Ask users without MFA to set it up?" });
  const unenrolled = api.users - api.enrolled; // from the API's figures
  assert.equal(unenrolled, 4);
  await admin.getByRole("radio", { name: /^Required/ }).check();
  await admin.getByRole("button", { name: "Save" }).click();
  await dialog.waitFor();
  assert.equal(await dialog.locator("#required-confirm-text").textContent(),
    `Up to ${unenrolled} users without MFA (of ${api.users}) will be prompted to set it up immediately, without Skip.`);
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await dialog.waitFor({ state: "hidden" });

  await grace.fill(String(GRACE_DAYS));
  await admin.getByRole("button", { name: "Save" }).click();
  await dialog.waitFor();
  await admin.evaluate(() => document.getElementById("enforcement").scrollIntoView());
  const asked = await dialog.locator("#required-confirm-text").textContent();
  assert.equal(asked, `Up to ${unenrolled} users without MFA (of ${api.users}) will be prompted to set it up with a grace period of ${GRACE_DAYS} days: they may Skip until it ends, then not.`);
  assert.match(asked, /\b4 users\b.*\bgrace period of 14 days\b/);
  await shot(admin, "admin-required-confirm", { fullPage: false });

  // Cancel saves nothing.
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await dialog.waitFor({ state: "hidden" });
  await admin.getByText("Not saved: the policy is unchanged.").waitFor();
  let saved = await policy();
  assert.equal(saved.enforcement, "optional", "Cancel left the policy optional");
  assert.equal(saved.grace_period_days, 0);
  assert.equal(saved.version, 2);
  await admin.getByText(/Version 2, saved by admin@/).waitFor();

  // Confirmed, it saves.
  await admin.getByRole("button", { name: "Save" }).click();
  await dialog.getByRole("button", { name: "Make MFA required" }).click();
  await admin.getByText(/Version 3, saved by admin@/).waitFor();
  await dialog.waitFor({ state: "hidden" });
  saved = await policy();
  assert.equal(saved.enforcement, "required");
  assert.equal(saved.grace_period_days, GRACE_DAYS);
  assert.ok(saved.enabled && saved.include_in_signup);
  assert.equal(await grace.inputValue(), String(GRACE_DAYS), "the saved grace is shown");
  // Saving again (Required already) asks nothing.
  await admin.getByRole("button", { name: "Save" }).click();
  await admin.getByText(/Version 4, saved by admin@/).waitFor();
  assert.equal(await dialog.isVisible(), false);

  // ---- Cy, not enrolled: the deadline, and Skip while the grace runs
  const before = Date.now();
  status = await signIn("cy");
  const after = Date.now();
  await prompt.waitFor();
  assert.equal(status.prompt, "enroll");
  assert.equal(status.can_skip, true, "Skip is offered during the grace period");
  assert.ok(status.enroll_by, "status shows enroll_by under Required with a grace period");
  const by = Date.parse(status.enroll_by);
  assert.ok(by >= before - 5_000 + GRACE_DAYS * DAY_MS && by <= after + 5_000 + GRACE_DAYS * DAY_MS,
    `enroll_by ${status.enroll_by} is ${GRACE_DAYS} days from the first prompt`);
  // The same answer straight from the API, for her.
  const cyStatus = await (await fetch(`${base}/v1/mfa/status`, {
    headers: { Authorization: `Bearer ${localToken("cy", { app: APP })}` },
  })).json();
  assert.equal(cyStatus.enroll_by, status.enroll_by, "a second look does not move the deadline");
  // The day and the month in words, in the browser's language and zone (and the year when it
  // is not this one).
  const year = (ms) => new Date(ms).toLocaleDateString("en", { year: "numeric", timeZone: ZONE });
  const dayMonth = (ms) => new Date(ms).toLocaleDateString(LOCALE, {
    day: "numeric", month: "long", timeZone: ZONE, ...(year(ms) !== year(Date.now()) ? { year: "numeric" } : {}),
  });
  const deadline = `Set up by ${dayMonth(by)}.`;
  assert.ok([dayMonth(before + GRACE_DAYS * DAY_MS), dayMonth(after + GRACE_DAYS * DAY_MS)].includes(dayMonth(by)));
  assert.match(deadline, /^Set up by \d{1,2} [A-Z][a-z]+( \d{4})?\.$/, "day, then the month in words (en-GB)");
  await user.getByText(deadline, { exact: true }).waitFor();
  assert.ok(await skip.isVisible(), "Skip stays offered until the deadline");
  await user.getByText(/Until then you can skip it for now/).waitFor();
  const fits = await user.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(fits <= 390, `the page is ${fits} px wide at 390 px`);
  await shot(user, "user-grace-prompt");

  const cySkip = user.waitForResponse((r) => new URL(r.url()).pathname === "/v1/mfa/skip");
  await skip.click();
  assert.equal((await cySkip).status(), 200, "Skip works during the grace period");
  // Skipped, she reaches settings, which recall the deadline.
  await user.locator("#settings").getByText(`Your account needs MFA: set it up by ${dayMonth(by)}.`, { exact: true }).waitFor();
  assert.ok(await prompt.isHidden());

  // ---- the Adoption tab, opened again, reads the figures again: Cy's skip counts
  await adoptionTab.click();
  await panel.getByText("Skips in the last 7 days: 2").waitFor();
  await panel.getByText(headline, { exact: true }).waitFor();
  assert.equal((await stats()).skips_last_7_days, 2);

  // ---- the grace over: a policy change shortens a running grace (never lengthens it), so a
  // grace of 0 days ends Cy's now. The prompt is back, without Skip and without a date.
  await policyTab.click();
  await grace.fill("0");
  await admin.getByRole("button", { name: "Save" }).click();
  await admin.getByText(/Version 5, saved by admin@/).waitFor();
  assert.equal(await dialog.isVisible(), false, "Required already: nothing to confirm");
  assert.equal((await policy()).grace_period_days, 0);
  status = await signIn("cy");
  assert.deepEqual([status.prompt, status.can_skip, status.enroll_by], ["enroll", false, null]);
  await prompt.waitFor();
  assert.ok(await skip.isHidden(), "no Skip once the grace is over");
  assert.ok(await user.locator("#prompt-deadline").isHidden(), "no date once the grace is over");
  assert.equal(await user.getByText(/Set up by/).count(), 0);
});
