// Issue #20, the operations console in a real browser: an admin signs in, looks at the live
// overview, creates an every-10-seconds schedule and watches its runs appear without
// reloading; then a sales report task is started and its progress bar moves to done while the
// page is shown. Only the selectors of the page contract (WEB.md) are used.
//
// Environment (api/tests/api/browser.rs): BASE_URL, ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN
// (to start the task through the JSON API: the console has no button for it in WEB.md).
import {
  assert, BASE_URL, fill, markDocument, open, required, scenario, signIn, submit,
} from './lib.mjs';

const email = required('ADMIN_EMAIL');
const password = required('ADMIN_PASSWORD');
const token = required('ADMIN_TOKEN');
/** An every-10-seconds schedule's next run (the first may come a whole interval late). */
const RUN_TIMEOUT_MS = 25_000;
/** The report runs day by day with a delay per day that the Rust test sets. */
const TASK_TIMEOUT_MS = 30_000;
/** The task statuses after which nothing changes (the API's, in any case). */
const TERMINAL = ['done', 'failed', 'revoked', 'cancelled'];

await scenario('console', async (t) => {
  const page = await t.visitor('admin');

  await t.step('the admin signs in and opens the console', async () => {
    await signIn(page, email, password);
    await Promise.all([page.waitForURL(/\/admin$/), page.locator('a#nav-admin').click()]);
    for (const chart of ['#chart-requests', '#chart-purchases', '#chart-lag']) {
      await page.locator(chart).waitFor({ state: 'attached' });
    }
  });

  const name = `browser tidy-up ${Date.now().toString(36)}`;
  await t.step('create an every-10-seconds housekeeping schedule', async () => {
    await open(page, '/admin/schedules');
    assert.ok(await page.locator('table#schedules tr.schedule').count() >= 1,
      'the built-in schedules are listed');
    const form = page.locator('form#new-schedule');
    await fill(form, 'name', name);
    await fill(form, 'job_kind', 'housekeeping');
    await fill(form, 'kind', 'interval');
    await fill(form, 'every_seconds', 10);
    await submit(page, form);
    const errors = await page.locator('.flash.error').allTextContents();
    assert.deepEqual(errors, [], 'creating the schedule failed');
    if (!/^\/admin\/schedules\/[^/]+$/.test(new URL(page.url()).pathname)) {
      // Back on the list: open the new schedule from its row.
      const row = page.locator('table#schedules tr.schedule', { hasText: name });
      await Promise.all([
        page.waitForURL(/\/admin\/schedules\/[^/]+$/),
        row.locator('a').first().click(),
      ]);
    }
    assert.match(await page.locator('main#content').innerText(), new RegExp(name));
  });

  await t.step('its runs appear without reloading', async () => {
    await page.locator('table#runs').waitFor({ state: 'attached' });
    const sameDocument = await markDocument(page);
    const before = await page.locator('table#runs tr.run').count();
    console.log(`  ${before} run(s) shown when the page opened`);
    await page.waitForFunction(
      (count) => document.querySelectorAll('table#runs tr.run').length > count,
      before,
      { timeout: RUN_TIMEOUT_MS, polling: 250 },
    );
    await sameDocument();
    await t.shot(page, 'admin-schedules');
  });

  await t.step('a sales report task moves to done while its page is shown', async () => {
    const to = new Date();
    const from = new Date(to.getTime() - 19 * 86_400_000);
    const day = (date) => date.toISOString().slice(0, 10);
    const response = await fetch(`${BASE_URL}/api/admin/reports/sales`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: day(from), to: day(to) }),
    });
    const answer = await response.text();
    assert.equal(response.status, 202, `starting the sales report: ${answer}`);
    const { task_id: taskId } = JSON.parse(answer);
    await open(page, `/admin/tasks/${taskId}`);
    const sameDocument = await markDocument(page);
    const progress = page.locator('progress#task-progress');
    const status = page.locator('#task-status[data-status]');
    await status.waitFor({ state: 'attached' });
    const initial = await status.getAttribute('data-status');
    console.log(`  task ${taskId} first shown as ${initial}, progress ${await progress.getAttribute('value')}`);
    await page.waitForFunction(
      (terminal) => terminal.includes(
        (document.querySelector('#task-status')?.dataset.status ?? '').toLowerCase()),
      TERMINAL,
      { timeout: TASK_TIMEOUT_MS, polling: 100 },
    );
    await sameDocument();
    assert.equal((await status.getAttribute('data-status')).toLowerCase(), 'done');
    const [value, max] = await progress.evaluate((bar) => [bar.value, bar.max]);
    assert.equal(value, max, 'the progress bar is full');
    await t.shot(page, 'admin-tasks');
  });
  if (process.env.ESHOP_SCREENSHOTS === '1') {
    await t.step('the overview, its charts drawn under some reads (README picture)', async () => {
      await open(page, '/admin');
      // Ten catalog reads a second for eight seconds, so the requests chart has a shape.
      const reads = [];
      for (let i = 0; i < 80; i += 1) {
        reads.push(new Promise((done) => setTimeout(done, i * 100))
          .then(() => fetch(`${BASE_URL}/api/products?limit=5`)).then((r) => r.text()));
      }
      await Promise.all(reads);
      await page.waitForTimeout(1_500);
      await t.shot(page, 'admin-overview');
    });
  }
});
