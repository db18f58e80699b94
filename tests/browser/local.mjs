// What the browser tests share: a fresh mfa-local on a free port, Debian's Chromium, the local
// outbox, and the screenshots under docs/screens/.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync, openSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const screens = join(root, "docs/screens");
const bin = resolve(root, process.env.MFA_LOCAL_BIN || "target/debug/mfa-local");
export const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
// Without the networking flags Chromium keeps trying Google's hosts on this closed network.
export const chromiumArgs = [
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

/// A fresh mfa-local on the embedded default; its log (stderr) goes to target/<logName>, read on a
/// failure. `env` adds to (or overrides) this process's environment, e.g. a limit.
export async function startLocal(logName = "browser-mfa-local.log", env = {}) {
  mkdirSync(screens, { recursive: true });
  const port = await freePort();
  mkdirSync(join(root, "target"), { recursive: true });
  const log = openSync(join(root, "target", logName), "w");
  const child = spawn(bin, ["--port", String(port)], { stdio: ["ignore", "pipe", log], env: { ...process.env, ...env } });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${bin} did not start within 60 s`)), 60_000);
    child.once("exit", (code) => fail(new Error(`${bin} exited with ${code}`)));
    child.stdout.on("data", (d) => { if (String(d).includes("listening on")) { clearTimeout(timer); ok(); } });
  });
  child.stdout.resume();
  return { child, base: `http://127.0.0.1:${port}` };
}

/// The code of the last text to `number` (E.164), from the local outbox.
export async function lastCode(base, number) {
  const outbox = await (await fetch(`${base}/_local/outbox`)).json();
  const texts = outbox.sms.filter((m) => m.to === number);
  assert.ok(texts.length > 0, `no text to ${number}`);
  const code = texts[texts.length - 1].body.match(/\b(\d{6})\b/);
  assert.ok(code, `no 6-digit code in ${texts[texts.length - 1].body}`);
  return code[1];
}

/// The whole page; `{ fullPage: false }` for what the viewport shows (a modal dialog over it).
export const shot = (page, name, { fullPage = true } = {}) => page.screenshot({ path: join(screens, `${name}.png`), fullPage });

/// The argon2id PHC string of `password` (`mfa-local hash-password`), to provision users through
/// the admin API as a platform would.
export const hashPassword = (password) =>
  execFileSync(bin, ["hash-password"], { input: password, encoding: "utf8" }).trim();

/// A local JWT (`mfa-local token`): a user's (`app` set) or an admin's (`scope` "mfa:admin").
export const localToken = (user, { app, scope } = {}) =>
  execFileSync(bin, ["token", "--user", user, ...(app ? ["--app", app] : []), ...(scope ? ["--scope", scope] : [])],
    { encoding: "utf8" }).trim();
