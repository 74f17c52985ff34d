// The harness of the browser scenarios (issue #20): Debian's headless Chromium driven by
// playwright-core (no browser download), one scenario per file, run by api/tests/api/browser.rs
// with the started app's address in BASE_URL.
//
// A scenario fails on a thrown error and on any console error or uncaught page error of any of
// its pages. On a failure every open page is saved as a full-page screenshot under
// ESHOP_BROWSER_ARTIFACTS (default target/browser-artifacts) and the paths are printed. With
// ESHOP_SCREENSHOTS=1, `shot(page, name)` also saves docs/screenshots/<name>.png for the README.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export { assert };

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** How long one wait on the page may take unless a step says otherwise. */
const STEP_TIMEOUT_MS = 15_000;
/** The size of every page (and so of the README's screenshots). */
const VIEWPORT = { width: 1280, height: 800 };

export const BASE_URL = required('BASE_URL').replace(/\/$/, '');

/** An environment variable the Rust test must pass. */
export function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (the Rust test in api/tests/api/browser.rs passes it)`);
  }
  return value;
}

function artifactsDir() {
  return resolve(process.env.ESHOP_BROWSER_ARTIFACTS || join(REPO, 'target/browser-artifacts'));
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/**
 * Runs `body(t)` in a fresh browser and exits: 0 when it passed, 1 otherwise.
 * `t.visitor(label)` opens a page in a context of its own (its own cookies), `t.step` names
 * what is being done (the failure says which step), `t.shot` saves a README screenshot.
 */
export async function scenario(name, body) {
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath: process.env.ESHOP_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Chromium refuses to sandbox itself as root (containers, CI).
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const pages = [];
  const problems = [];
  let current = 'starting';
  const t = {
    async visitor(label) {
      const context = await browser.newContext({ viewport: VIEWPORT, baseURL: BASE_URL });
      const page = await context.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      page.on('console', (message) => {
        if (message.type() === 'error') {
          const at = message.location();
          problems.push(`[${label}] console error on ${page.url()}: ${message.text()}` +
            (at?.url ? ` (${at.url}:${at.lineNumber})` : ''));
        }
      });
      page.on('pageerror', (error) => {
        problems.push(`[${label}] uncaught error on ${page.url()}: ${error.stack || error}`);
      });
      pages.push({ label, page });
      return page;
    },
    async step(description, action) {
      current = description;
      console.log(`- ${description}`);
      return action();
    },
    shot,
  };
  let failure = null;
  try {
    await body(t);
  } catch (error) {
    failure = error;
  }
  if (!failure && problems.length > 0) {
    failure = new Error(`the pages logged errors:\n  ${problems.join('\n  ')}`);
  }
  if (failure) {
    console.error(`FAILED: ${name}, at step "${current}":\n${failure.stack || failure}`);
    if (problems.length > 0) {
      console.error(`errors the pages logged:\n  ${problems.join('\n  ')}`);
    }
    const dir = artifactsDir();
    mkdirSync(dir, { recursive: true });
    for (const { label, page } of pages) {
      if (page.isClosed()) continue;
      const path = join(dir, `${slug(name)}-${slug(label)}-${Date.now()}.png`);
      try {
        await page.screenshot({ path, fullPage: true, timeout: 10_000 });
        console.error(`screenshot of ${label}'s page (${page.url()}): ${path}`);
      } catch (error) {
        console.error(`no screenshot of ${label}'s page: ${error.message}`);
      }
    }
  } else {
    console.log(`PASSED: ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  await browser.close();
  process.exit(failure ? 1 : 0);
}

/** Saves docs/screenshots/<name>.png when ESHOP_SCREENSHOTS=1 (the README embeds them). */
export async function shot(page, name) {
  if (process.env.ESHOP_SCREENSHOTS !== '1') return;
  const dir = join(REPO, 'docs/screenshots');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  console.log(`saved ${path}`);
}

/**
 * Opens `path`, asserts it answered 2xx (after redirects) and has the layout every page of
 * WEB.md has: `main#content` and `nav#site-nav`. Returns the response.
 */
export async function open(page, path) {
  const response = await page.goto(path, { waitUntil: 'load' });
  assert.ok(response, `no answer for ${path}`);
  assert.ok(response.ok(), `${path} answered ${response.status()} (now at ${page.url()})`);
  await page.locator('main#content').waitFor({ state: 'attached' });
  return response;
}

/** Asserts the page (after its load) also shows the whole-site navigation. */
export async function hasSiteNav(page) {
  await page.locator('nav#site-nav').waitFor({ state: 'attached' });
}

/**
 * Submits `form` (a locator) by clicking its submit button and waits for the page it leads to
 * (post/redirect/get). Returns the landing URL.
 */
export async function submit(page, form) {
  const button = form.locator('button[type=submit], button:not([type]), input[type=submit]').first();
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
  await page.locator('main#content').waitFor({ state: 'attached' });
  return page.url();
}

/**
 * Sets a form field by name whatever it is: a text input, a select, a radio group (the
 * radio with that value is checked) or a checkbox (checked when value is true).
 */
export async function fill(form, name, value) {
  const field = form.locator(`[name="${name}"]`);
  const count = await field.count();
  assert.ok(count > 0, `the form has no field named ${name}`);
  const first = field.first();
  const tag = await first.evaluate((element) => element.tagName.toLowerCase());
  const type = await first.evaluate((element) => (element.getAttribute('type') || '').toLowerCase());
  if (tag === 'select') {
    await first.selectOption(String(value));
  } else if (type === 'radio') {
    await form.locator(`input[type=radio][name="${name}"][value="${value}"]`).check();
  } else if (type === 'checkbox') {
    if (value) await first.check(); else await first.uncheck();
  } else {
    await first.fill(String(value));
  }
}

/**
 * Marks the document so that a later `assertSameDocument` proves no navigation or reload
 * happened in between (a live update, not a refresh).
 */
export async function markDocument(page) {
  const marker = `m${Math.random().toString(36).slice(2)}`;
  await page.evaluate((value) => { window.__eshopMarker = value; }, marker);
  return async function assertSameDocument() {
    const now = await page.evaluate(() => window.__eshopMarker ?? null);
    assert.equal(now, marker, `the page was reloaded or left (now at ${page.url()})`);
  };
}

/** A fresh e-mail address and username for a visitor who registers in the browser. */
export function newIdentity(prefix) {
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  return {
    email: `${prefix}-${suffix}@example.com`,
    username: `${prefix}${suffix}`.slice(0, 30),
    password: 'correct-horse-9-browser',
  };
}

/** Signs in through `form#signin` on /signin and checks the navigation shows the visitor in. */
export async function signIn(page, email, password) {
  await open(page, '/signin');
  const form = page.locator('form#signin');
  await fill(form, 'email', email);
  await fill(form, 'password', password);
  await submit(page, form);
  assert.equal(await page.locator('.flash.error').count(), 0,
    `signing in failed: ${await page.locator('.flash.error').allTextContents()}`);
  await page.locator('form#signout button').waitFor({ state: 'attached' });
}
