// Drives Workly's page in headless Chromium against a `workly serve` started
// with `--api-key`: the page asks for the key, refuses a wrong one, and with
// the right one reads the conversation and opens its event stream (the
// WebSocket carries the key as a subprotocol). Run by tests/page.rs.
//
//   node tests/browser/key.mjs BASE_URL KEY
//
// Environment: WORKLY_WEB_DIR (the web/ directory), CHROMIUM (the browser).

import assert from 'node:assert/strict';
import { launch, stepper } from './chromium.mjs';

const [base, key] = process.argv.slice(2);
const step = stepper('key');

const browser = await launch();
try {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

  await page.goto(base);
  step('the page asks for the key');
  await page.locator('#key-form').waitFor({ state: 'visible', timeout: 30_000 });
  assert.ok(await page.locator('#chat-form').isHidden(), 'no chat without the key');
  assert.equal(await page.evaluate(() => window.workly.status), 'locked');

  step('a wrong key is refused');
  await page.fill('#api-key', `${key}-wrong`);
  await page.press('#api-key', 'Enter');
  await page.waitForFunction(() => document.querySelector('#api-key').placeholder.includes('not accepted'), null, { timeout: 10_000 });
  assert.ok(await page.locator('#chat-form').isHidden());

  step('the right key opens the conversation and the events');
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
  await page.waitForFunction(() => window.workly.conversation !== null, null, { timeout: 10_000 });
  await page.waitForFunction(() => ['loading', 'ready'].includes(window.workly.status), null, { timeout: 30_000 });
  assert.ok(await page.locator('#key-form').isHidden());
  assert.ok(await page.locator('#chat-form').isVisible());
  await page.waitForFunction(() => document.querySelector('#engine-facts').textContent.includes('CPU'), null, { timeout: 30_000 });

  step('a reload remembers the key');
  await page.reload();
  await page.waitForFunction(() => ['loading', 'ready'].includes(window.workly?.status), null, { timeout: 30_000 });

  assert.deepEqual(problems, [], 'no page errors');
  step('all good');
} finally {
  await browser.close();
}
