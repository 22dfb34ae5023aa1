// A tiny browser driver for the console's e2e tests: JSON commands on stdin, one JSON reply per line on
// stdout. playwright-core drives Debian's chromium (executablePath), no browser is downloaded.
// Commands: {op:"context", name}, {op:"goto", ctx, url}, {op:"fill", ctx, selector, value},
// {op:"click", ctx, selector}, {op:"wait", ctx, selector, state?, timeout?}, {op:"eval", ctx, expr},
// {op:"screenshot", ctx, path, selector?}, {op:"press", ctx, key}, {op:"close"}.
"use strict";
const path = require("path");
const readline = require("readline");
const modules = process.env.LFR_NODE_MODULES;
const { chromium } = require(path.join(modules, "playwright-core"));

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function main() {
  // launch() gives chromium a fresh temporary --user-data-dir of its own (deleted at close); each
  // browser context (one per signed-in user) has its own cookies on top of that.
  const browser = await chromium.launch({
    executablePath: process.env.LFR_CHROMIUM || "/usr/bin/chromium", headless: true, args: FLAGS,
  });
  const pages = new Map();
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  out({ ok: true, value: browser.version() });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    let cmd;
    try {
      cmd = JSON.parse(line);
      const page = pages.get(cmd.ctx);
      let value = null;
      switch (cmd.op) {
        case "context": {
          const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
          const p = await ctx.newPage();
          p.setDefaultTimeout(15000);
          pages.set(cmd.name, p);
          break;
        }
        case "goto": { const r = await page.goto(cmd.url); value = r ? r.status() : null; break; }
        case "fill": await page.fill(cmd.selector, cmd.value); break;
        case "click": await page.click(cmd.selector, { timeout: cmd.timeout || 15000 }); break;
        case "press": await page.keyboard.press(cmd.key); break;
        case "wait": await page.waitForSelector(cmd.selector, { state: cmd.state || "visible", timeout: cmd.timeout || 15000 }); break;
        case "eval": value = await page.evaluate(cmd.expr); break;
        case "screenshot":
          if (cmd.selector) await page.locator(cmd.selector).screenshot({ path: cmd.path });
          else await page.screenshot({ path: cmd.path, fullPage: true });
          break;
        case "close": await browser.close(); out({ ok: true }); return;
        default: throw new Error("unknown op " + cmd.op);
      }
      out({ ok: true, value: value });
    } catch (err) {
      out({ ok: false, error: String(err && err.message || err).slice(0, 2000) });
    }
  }
  await browser.close();
}
main().catch((err) => { process.stdout.write(JSON.stringify({ ok: false, error: String(err) }) + "\n"); process.exit(1); });
