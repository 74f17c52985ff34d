// The API explorer (Swagger UI, vendored under api/assets/swagger-ui) loads eshop's own OpenAPI
// document with no console error and lists its operations. The page that proves the harness on
// a page without the storefront's layout (no main#content here).
import { assert, scenario } from './lib.mjs';

await scenario('api docs', async (t) => {
  const page = await t.visitor('anonymous');
  await t.step('open /api/docs', async () => {
    const response = await page.goto('/api/docs', { waitUntil: 'load' });
    assert.equal(response.status(), 200);
  });
  await t.step('the operations of the document are listed', async () => {
    const orders = page.locator('.opblock-summary-path[data-path="/api/orders"]');
    await orders.first().waitFor();
    const operations = await page.locator('.opblock').count();
    const document = await (await page.request.get('/api/openapi.json')).json();
    const documented = Object.values(document.paths)
      .flatMap((item) => Object.keys(item).filter((key) =>
        ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'].includes(key))).length;
    assert.equal(operations, documented, 'one block per operation of the document');
  });
  await t.step('an operation opens', async () => {
    const block = page.locator('.opblock-get').filter({
      has: page.locator('.opblock-summary-path[data-path="/api/products"]'),
    }).first();
    await block.locator('.opblock-summary').click();
    await block.locator('.opblock-body').waitFor();
  });
});
