// A small browser driver for tests/browser.rs: headless Chromium (the system's, through
// playwright-core; no browser download), told what to do one JSON line at a time.
//
// Each line on stdin is a command `{"do": NAME, ...}`; each answer is one line on stdout,
// `{"ok": true, "value": ...}` or `{"ok": false, "error": "..."}`. The test owns the story and
// its assertions; this script only acts on the page and reports what a person would see.
// Every wait has a deadline, so a missing event fails the test instead of hanging it.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const DEFAULT_TIMEOUT_MS = 10_000;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
  ],
});

let page = null;
const problems = { cspViolations: [], pageErrors: [], consoleErrors: [] };

const commands = {
  /** Open loads `url` in a fresh page of `width` x `height` CSS pixels. */
  async open({ url, width = 1280, height = 800 }) {
    if (page) await page.context().close();
    const context = await browser.newContext({ viewport: { width, height } });
    page = await context.newPage();
    page.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
    await page.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        window.__cspViolations = window.__cspViolations || [];
        window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    page.on("pageerror", (err) => problems.pageErrors.push(String(err)));
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.consoleErrors.push(msg.text());
    });
    const response = await page.goto(url);
    return {
      status: response.status(),
      headers: response.headers(),
      title: await page.title(),
    };
  },

  /** Resize changes the viewport of the open page. */
  async resize({ width, height }) {
    await page.setViewportSize({ width, height });
    return null;
  },

  /**
   * WaitFor waits until the element's text (or `attribute`) equals `equals` or contains
   * `contains`, and returns it.
   */
  async waitFor({ selector, attribute, equals, contains, timeoutMs = DEFAULT_TIMEOUT_MS }) {
    const read = ({ selector, attribute }) => {
      const node = document.querySelector(selector);
      if (!node) return null;
      return attribute ? node.getAttribute(attribute) : node.textContent;
    };
    try {
      await page.waitForFunction(
        ({ selector, attribute, equals, contains }) => {
          const node = document.querySelector(selector);
          if (!node) return false;
          const value = attribute ? node.getAttribute(attribute) : node.textContent;
          if (value === null) return false;
          if (equals !== undefined) return value === equals;
          if (contains !== undefined) return value.includes(contains);
          return true;
        },
        { selector, attribute, equals, contains },
        { timeout: timeoutMs, polling: 50 },
      );
    } catch (err) {
      const now = await page.evaluate(read, { selector, attribute });
      throw new Error(
        `${selector}${attribute ? `[${attribute}]` : ""} is ${JSON.stringify(now)}, not ` +
          `${equals !== undefined ? `= ${JSON.stringify(equals)}` : `containing ${JSON.stringify(contains)}`}` +
          ` after ${timeoutMs} ms (${err.message.split("\n")[0]})`,
      );
    }
    return page.evaluate(read, { selector, attribute });
  },

  /** WaitEvent waits until the event with this id is on the page and returns what it shows. */
  async waitEvent({ id, timeoutMs = DEFAULT_TIMEOUT_MS }) {
    const selector = `#events li[data-id="${id.replace(/["\\]/g, "\\$&")}"]`;
    try {
      await page.waitForSelector(selector, { timeout: timeoutMs });
    } catch {
      const shown = (await commands.events()).map((e) => e.id || e.type);
      throw new Error(`event ${id} not shown after ${timeoutMs} ms; shown: ${shown}`);
    }
    return (await commands.events()).find((e) => e.id === id);
  },

  /** Events lists the events on the page, oldest first, as they read. */
  async events() {
    return page.$$eval("#events li", (items) =>
      items.reverse().map((li) => ({
        id: li.dataset.id,
        type: li.querySelector(".type").textContent,
        channel: li.querySelector(".channel").textContent,
        shownId: li.querySelector(".id").textContent,
        time: li.querySelector("time").textContent,
        data: li.querySelector(".data").textContent,
      })),
    );
  },

  /** Fill types `value` into each field named by a selector, replacing what was there. */
  async fill({ fields }) {
    for (const [selector, value] of Object.entries(fields)) await page.fill(selector, value);
    return null;
  },

  async click({ selector }) {
    await page.click(selector);
    return null;
  },

  /** Screenshot saves a PNG of the page from its top (finite animations finished). */
  async screenshot({ path, fullPage = false }) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path, fullPage, animations: "disabled" });
    return path;
  },

  /** Problems reports policy violations, uncaught errors and console errors seen so far. */
  async problems() {
    const violations = page ? await page.evaluate(() => window.__cspViolations || []) : [];
    return { ...problems, cspViolations: violations };
  },
};

const reply = (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`);
reply({ ok: true, value: { ready: true, version: browser.version() } });

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let command;
  try {
    command = JSON.parse(line);
    const run = commands[command.do];
    if (!run) throw new Error(`unknown command ${JSON.stringify(command.do)}`);
    reply({ ok: true, value: await run(command) });
  } catch (err) {
    reply({ ok: false, error: String(err && err.message ? err.message : err) });
  }
}
await browser.close();
