// Drives the page's memory panel in headless Chromium against a real
// `workly serve`: a message that tells Kira something shows up in "What Kira
// remembers" once she has replied; a memory edited in place is saved; one
// forgotten leaves the panel and the server. Run by tests/page.rs.
//
//   node tests/browser/memory.mjs BASE_URL
//
// Environment: WORKLY_WEB_DIR (the web/ directory), CHROMIUM (the browser).

import assert from 'node:assert/strict';
import { launch, stepper } from './chromium.mjs';

const [base] = process.argv.slice(2);
const step = stepper('memory');

const browser = await launch();
try {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  await page.goto(base);
  await page.waitForFunction(() => window.workly?.status === 'ready', null, { timeout: 60_000 });
  assert.ok(await page.locator('#memory-empty').isVisible(), 'nothing remembered yet');

  step('what the person tells her appears once she has replied');
  await page.fill('#chat-input', 'My name is Zephyrine. My cat is called Pistachio!');
  await page.press('#chat-input', 'Enter');
  await page.waitForFunction(() => window.workly.tokens > 0 && !window.workly.replying, null, { timeout: 300_000 });
  await page.waitForFunction(() => window.workly.memories.length === 2, null, { timeout: 10_000 });
  assert.ok(await page.locator('#memory-empty').isHidden());
  const texts = await page.locator('.memory-text').allTextContents();
  assert.deepEqual(texts.sort(), ['My cat is called Pistachio!', 'My name is Zephyrine.']);

  step('a memory edited in place is saved');
  const cat = page.locator('.memory', { hasText: 'Pistachio' });
  await cat.locator('.memory-edit').click();
  await page.fill('.memory-field', 'My cat is called Noisette');
  await page.press('.memory-field', 'Enter');
  await page.waitForFunction(() => window.workly.memories.some((memory) => memory.content === 'My cat is called Noisette'), null, { timeout: 10_000 });

  step('a memory forgotten leaves the panel and the server');
  await page.locator('.memory', { hasText: 'Noisette' }).locator('.memory-forget').click();
  await page.waitForFunction(() => window.workly.memories.length === 1, null, { timeout: 10_000 });
  const left = await (await fetch(new URL('/v1/workly/memories', base))).json();
  assert.deepEqual(left.map((memory) => memory.content), ['My name is Zephyrine.']);

  step('an empty edit is refused, in the panel');
  await page.locator('.memory-edit').click();
  await page.fill('.memory-field', '   ');
  await page.press('.memory-field', 'Enter');
  await page.locator('#memory-error').waitFor({ state: 'visible', timeout: 10_000 });
  assert.match(await page.locator('#memory-error').textContent(), /empty/);
  assert.equal((await page.evaluate(() => window.workly.memories)).length, 1);

  assert.deepEqual(problems, [], 'no page errors');
  step('all good');
} finally {
  await browser.close();
}
