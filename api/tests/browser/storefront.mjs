// Issue #20, the storefront in a real browser: a visitor registers, signs in, funds the wallet
// on /account, searches for the seeded product, adds it to the cart, checks out with the
// wallet and sees the order turn confirmed without reloading; then a declined card shows its
// message. Only the selectors of the page contract (WEB.md) are used.
//
// Environment (api/tests/api/browser.rs): BASE_URL, PRODUCT_ID, PRODUCT_TITLE, PRODUCT_PRICE
// (as the pages print it, e.g. 19.99).
import {
  assert, fill, markDocument, newIdentity, open, required, scenario, signIn, submit,
} from './lib.mjs';

const productId = required('PRODUCT_ID');
const title = required('PRODUCT_TITLE');
const price = required('PRODUCT_PRICE');
/** How long an order may take to reach its final status on the page. */
const LIVE_TIMEOUT_MS = 20_000;
/** The simulated gateway declines this card (infra/src/simulated_gateway.rs). */
const DECLINED_CARD = '4000 0000 0000 0002';

async function noErrorFlash(page, doing) {
  const errors = await page.locator('.flash.error').allTextContents();
  assert.deepEqual(errors, [], `${doing} failed`);
}

/** From the product page: one copy into the cart, then the cart, then the checkout form. */
async function toCheckout(t, page, { screenshot }) {
  await t.step('add the product to the cart', async () => {
    const form = page.locator('form#add-to-cart');
    await fill(form, 'quantity', 1);
    await submit(page, form);
    await noErrorFlash(page, 'adding to the cart');
    assert.match(await page.locator('a#nav-cart').innerText(), /\b1\b/, 'the cart counts one item');
  });
  await t.step('the cart shows the line and its total', async () => {
    await Promise.all([page.waitForURL(/\/cart$/), page.locator('a#nav-cart').click()]);
    const lines = page.locator('table#cart-lines tr.cart-line');
    assert.equal(await lines.count(), 1);
    assert.match(await lines.first().innerText(), new RegExp(escape(title)));
    assert.match(await page.locator('.cart-total').innerText(), new RegExp(escape(price)));
    if (screenshot) await t.shot(page, 'storefront-cart');
    await Promise.all([page.waitForURL(/\/checkout$/), page.locator('a#checkout').click()]);
    await page.locator('form#checkout').waitFor();
  });
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The order page the checkout led to, its id and its status when it was first shown. */
async function landedOnOrder(page) {
  const match = new URL(page.url()).pathname.match(/^\/orders\/([0-9a-f-]{36})$/);
  assert.ok(match, `the checkout did not lead to an order page but to ${page.url()}`);
  const status = page.locator('#order-status');
  await status.waitFor({ state: 'attached' });
  return { id: match[1], initial: await status.getAttribute('data-status') };
}

await scenario('storefront', async (t) => {
  const page = await t.visitor('shopper');
  const me = newIdentity('shopper');

  await t.step('the home page shows the new product', async () => {
    await open(page, '/');
    await page.locator('section#popular-products').waitFor({ state: 'attached' });
    const card = page.locator('section#new-products .product-card', { hasText: title });
    await card.locator('a.product-link').first().waitFor();
    await t.shot(page, 'storefront-home');
  });

  await t.step('register', async () => {
    await Promise.all([page.waitForURL(/\/register$/), page.locator('a#nav-register').click()]);
    const form = page.locator('form#register');
    await fill(form, 'email', me.email);
    await fill(form, 'username', me.username);
    await fill(form, 'password', me.password);
    await submit(page, form);
    await noErrorFlash(page, 'registering');
    // Registering may sign the visitor in: sign out, to sign in as the scenario says.
    const signout = page.locator('form#signout button');
    if (await signout.count() > 0) {
      await Promise.all([page.waitForNavigation(), signout.click()]);
      await page.locator('a#nav-signin').waitFor();
    }
  });

  await t.step('sign in', async () => {
    await signIn(page, me.email, me.password);
    await page.locator('a#nav-account').waitFor();
    assert.equal(await page.locator('a#nav-admin').count(), 0, 'a shopper has no console link');
  });

  await t.step('deposit 50 into the wallet on /account', async () => {
    await Promise.all([page.waitForURL(/\/account$/), page.locator('a#nav-account').click()]);
    await page.locator('#balance').waitFor();
    const form = page.locator('form#deposit');
    await fill(form, 'amount', '50');
    await submit(page, form);
    await noErrorFlash(page, 'depositing');
    if (!new URL(page.url()).pathname.startsWith('/account')) await open(page, '/account');
    await page.waitForFunction(
      () => /50[.,]00/.test(document.querySelector('#balance')?.textContent ?? ''),
      null,
      { timeout: LIVE_TIMEOUT_MS },
    ).catch(async () => {
      assert.fail(`the balance does not show 50.00: "${await page.locator('#balance').innerText()}"`);
    });
  });

  await t.step('search for the product and open it', async () => {
    const search = page.locator('form#search');
    await fill(search, 'q', title.split(/\s+/)[0]);
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/products' && url.searchParams.has('q')),
      search.locator('input[name=q]').press('Enter'),
    ]);
    await page.locator('form#filters').waitFor({ state: 'attached' });
    const card = page.locator('.product-card', { hasText: title });
    await Promise.all([
      page.waitForURL(new RegExp(`/products/${productId}$`)),
      card.locator('a.product-link').first().click(),
    ]);
    assert.equal((await page.locator('h1.product-name').innerText()).trim(), title);
    assert.match(await page.locator('.price').first().innerText(), new RegExp(escape(price)));
    await page.locator('section#reviews').waitFor({ state: 'attached' });
    await page.locator('form#add-to-wishlist').waitFor({ state: 'attached' });
    await t.shot(page, 'storefront-product');
  });

  await toCheckout(t, page, { screenshot: true });

  await t.step('check out with the wallet; the order turns confirmed without reloading', async () => {
    const form = page.locator('form#checkout');
    await fill(form, 'payment', 'wallet');
    // The event stream must be watched from the first moment the order page is shown.
    const events = page.waitForRequest((request) => /\/orders\/[^/]+\/events$/.test(request.url()),
      { timeout: LIVE_TIMEOUT_MS }).catch(() => null);
    await submit(page, form);
    await noErrorFlash(page, 'checking out with the wallet');
    const order = await landedOnOrder(page);
    const sameDocument = await markDocument(page);
    console.log(`  order ${order.id} first shown as ${order.initial}`);
    await page.locator('#order-status[data-status=confirmed]')
      .waitFor({ state: 'attached', timeout: LIVE_TIMEOUT_MS });
    await sameDocument();
    if (order.initial !== 'confirmed') {
      // It changed while shown: that was the live update (app.js, SSE).
      assert.ok(await events, 'the order page did not open its event stream');
    }
    assert.match(await page.locator('a#nav-cart').innerText(), /\b0\b|^[^0-9]*$/,
      'the cart is empty after the checkout');
    await t.shot(page, 'storefront-order-confirmed');
  });

  await t.step('the order is in the history', async () => {
    await Promise.all([page.waitForURL(/\/orders$/), page.locator('a#nav-orders').click()]);
    assert.ok(await page.locator('table#orders tr.order-row a').count() >= 1);
  });

  await t.step('a declined card shows its message', async () => {
    await open(page, `/products/${productId}`);
    await toCheckout(t, page, { screenshot: false });
    const form = page.locator('form#checkout');
    await fill(form, 'payment', 'card');
    await fill(form, 'card_number', DECLINED_CARD);
    await fill(form, 'expiry', '12/34');
    await fill(form, 'cvc', '123');
    await submit(page, form);
    await landedOnOrder(page);
    const sameDocument = await markDocument(page);
    await page.locator('#order-status[data-status=failed]')
      .waitFor({ state: 'attached', timeout: LIVE_TIMEOUT_MS });
    const flash = page.locator('.flash.error');
    await flash.first().waitFor({ timeout: LIVE_TIMEOUT_MS });
    assert.match(await flash.first().innerText(), /declin/i);
    await sameDocument();
  });

  await t.step('sign out', async () => {
    await Promise.all([page.waitForNavigation(), page.locator('form#signout button').click()]);
    await page.locator('a#nav-signin').waitFor();
    // Asked without the browser, whose console logs a 4xx document as an error.
    const account = await page.request.get('/account', { maxRedirects: 0 });
    assert.ok(account.status() >= 300, `/account after signing out answered ${account.status()}`);
  });
});
