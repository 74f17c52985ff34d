// Issue #20: every page of the page contract (WEB.md) opens with no console error, the common
// layout (main#content, nav#site-nav) and its own elements, as the visitor it is meant for:
// anonymous, a shopper with an order, a wishlist and a cart line, and the admin.
//
// Environment (api/tests/api/browser.rs): BASE_URL, PRODUCT_ID, MOVIE_ID, SHOPPER_EMAIL,
// SHOPPER_PASSWORD, ORDER_ID, ADMIN_EMAIL, ADMIN_PASSWORD, TASK_ID, SCHEDULE_ID.
import { assert, hasSiteNav, open, required, scenario, signIn } from './lib.mjs';

const product = required('PRODUCT_ID');
const movie = required('MOVIE_ID');
const order = required('ORDER_ID');
const task = required('TASK_ID');
const schedule = required('SCHEDULE_ID');

/** [path, selectors that must be on it] per visitor. */
const ANONYMOUS = [
  ['/', ['section#new-products', 'section#popular-products', '.product-card a.product-link',
    'form#search input[name=q]', 'a#nav-signin', 'a#nav-register']],
  ['/products', ['form#filters', '.product-card', 'form#search input[name=q]']],
  ['/products?q=Dune&in_stock=true', ['.product-card']],
  [`/products/${product}`, ['h1.product-name', '.price', 'section#reviews']],
  ['/signin', ['form#signin input[name=email]', 'form#signin input[name=password]',
    'form#signin input[name=csrf]']],
  ['/register', ['form#register input[name=email]', 'form#register input[name=username]',
    'form#register input[name=password]', 'form#register input[name=csrf]']],
  ['/movies', ['.movie-card']],
  [`/movies/${movie}`, []],
  ['/calendar', ['table#calendar']],
];
const SHOPPER = [
  ['/', ['a#nav-cart', 'a#nav-orders', 'a#nav-account', 'form#signout button']],
  [`/products/${product}`, ['form#add-to-cart input[name=quantity]', 'form#add-to-cart input[name=csrf]',
    'form#add-to-wishlist', 'form#review']],
  ['/cart', ['table#cart-lines tr.cart-line', '.cart-total', 'a#checkout']],
  ['/checkout', ['form#checkout input[name=payment][value=wallet]',
    'form#checkout input[name=payment][value=card]', 'form#checkout input[name=card_number]',
    'form#checkout input[name=expiry]', 'form#checkout input[name=cvc]',
    'form#checkout input[name=csrf]', 'form#checkout button[type=submit]']],
  ['/orders', ['table#orders tr.order-row a']],
  [`/orders/${order}`, ['#order-status[data-status=confirmed]']],
  ['/wishlist', ['.wish']],
  ['/account', ['#balance', 'form#deposit input[name=amount]', 'form#deposit input[name=csrf]']],
];
const ADMIN = [
  ['/admin', ['#chart-requests', '#chart-purchases', '#chart-lag', 'a#nav-admin']],
  ['/admin/events', ['table#events tr.event']],
  ['/admin/events?aggregate_type=product', ['table#events tr.event']],
  [`/admin/streams/product/${product}`, ['table#history', 'pre#state']],
  [`/admin/streams/product/${product}?as_of=${encodeURIComponent(new Date().toISOString())}`,
    ['table#history', 'pre#state']],
  ['/admin/projections', ['table#projections tr.projection', 'form.rebuild']],
  ['/admin/tasks', []],
  [`/admin/tasks/${task}`, ['progress#task-progress', '#task-status[data-status]']],
  ['/admin/schedules', ['form#new-schedule', 'table#schedules tr.schedule']],
  [`/admin/schedules/${schedule}`, ['table#runs', 'form#retime']],
  ['/admin/mail', ['table#mail tr.mail']],
  ['/admin/users', ['table#users tr.user', 'form.grant-role, form#grant-role',
    'form.deactivate, form#deactivate', 'form.erase, form#erase']],
];

/**
 * The visitor (their cookies) does not get `path`: a redirect elsewhere (to /signin) or a 4xx.
 * Asked without the browser, whose console logs every 4xx document as an error.
 */
async function refused(page, path) {
  const response = await page.request.get(path, { maxRedirects: 0 });
  const status = response.status();
  const location = response.headers().location ?? '';
  const elsewhere = !new URL(location, page.url()).pathname.startsWith(path);
  assert.ok(
    (status >= 300 && status < 400 && elsewhere) || (status >= 400 && status < 500),
    `${path} answered ${status} ${location}`,
  );
}

/**
 * The contract's rules for every page: each POST form carries a non-empty `csrf` field, and the
 * only script is /assets/app.js (no inline script: the CSP forbids them).
 */
async function followsTheRules(page, path) {
  const forms = await page.locator('form').evaluateAll((all) => all
    .filter((form) => (form.getAttribute('method') || 'get').toLowerCase() === 'post')
    .map((form) => ({
      form: form.id || form.className || form.getAttribute('action'),
      csrf: form.querySelector('input[type=hidden][name=csrf]')?.value ?? '',
    })));
  for (const { form, csrf } of forms) {
    assert.ok(csrf.length > 0, `${path}: the form ${form} has no csrf token`);
  }
  const scripts = await page.locator('script').evaluateAll((all) =>
    all.map((script) => script.getAttribute('src') ?? 'inline'));
  for (const script of scripts) {
    assert.equal(new URL(script, page.url()).pathname, '/assets/app.js', `${path}: a script ${script}`);
  }
}

async function visitAll(t, page, who, visits) {
  for (const [path, selectors] of visits) {
    await t.step(`${who}: ${path}`, async () => {
      await open(page, path);
      await hasSiteNav(page);
      for (const selector of selectors) {
        assert.ok(await page.locator(selector).count() > 0, `${path} has no ${selector}`);
      }
      await followsTheRules(page, path);
    });
  }
}

await scenario('every page', async (t) => {
  const anonymous = await t.visitor('anonymous');
  await visitAll(t, anonymous, 'anonymous', ANONYMOUS);
  await t.step('anonymous: the console is not for visitors', () => refused(anonymous, '/admin'));

  const shopper = await t.visitor('shopper');
  await t.step('shopper: sign in', () =>
    signIn(shopper, required('SHOPPER_EMAIL'), required('SHOPPER_PASSWORD')));
  await t.step('shopper: the session cookie is HttpOnly and SameSite=Lax', async () => {
    const session = (await shopper.context().cookies()).find((c) => c.name === 'eshop_session');
    assert.ok(session, 'no eshop_session cookie after signing in');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    assert.equal(session.path, '/');
  });
  await visitAll(t, shopper, 'shopper', SHOPPER);
  await t.step('shopper: a form posted without its csrf token is refused', async () => {
    // Asked without the browser, whose console logs the 403 document as an error.
    const response = await shopper.request.post('/account/deposit',
      { form: { amount: '1' }, maxRedirects: 0 });
    assert.equal(response.status(), 403);
  });
  await t.step('shopper: no console', async () => {
    assert.equal(await shopper.locator('a#nav-admin').count(), 0, 'a shopper sees a#nav-admin');
    await refused(shopper, '/admin');
  });

  const admin = await t.visitor('admin');
  await t.step('admin: sign in', () =>
    signIn(admin, required('ADMIN_EMAIL'), required('ADMIN_PASSWORD')));
  await visitAll(t, admin, 'admin', ADMIN);
});
