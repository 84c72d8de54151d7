// Drives Workly's page in headless Chromium (playwright-core, installed in
// web/node_modules by `scripts/setup.sh --tests`) against a running
// `workly serve`. Run by tests/page.rs; exits non-zero on the first failure.
//
//   node tests/browser/page.mjs BASE_URL VRM_DIR SCREENSHOT...
//
// Environment: WORKLY_WEB_DIR (the web/ directory), CHROMIUM (the browser).

import { join } from 'node:path';
import assert from 'node:assert/strict';
import { launch, stepper, watchedPage } from './chromium.mjs';

const [base, vrmDir, ...screenshots] = process.argv.slice(2);
const step = stepper('page');

const browser = await launch();
try {
  const { page, problems } = await watchedPage(browser);
  // The page must talk to its own origin only.
  const origin = new URL(base).origin;
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== origin) problems.push(`external request: ${url}`);
  });

  await page.goto(base);
  step('waiting for the default avatar');
  await page.waitForFunction(() => window.workly?.avatarLoaded, null, { timeout: 60_000 });
  assert.equal(await page.evaluate(() => window.workly.avatarName), 'Kira');
  assert.equal(await page.evaluate(() => window.workly.avatarVersion), '1.0');
  const names = await page.evaluate(() => window.workly.expressionNames());
  for (const name of ['happy', 'angry', 'sad', 'relaxed', 'surprised', 'blink', 'aa']) {
    assert.ok(names.includes(name), `the default avatar has ${name} (has ${names})`);
  }
  assert.ok(await page.locator('#expression-happy').count(), 'a slider per emotion');

  step('waiting for the model');
  await page.waitForFunction(() => window.workly.status === 'ready', null, { timeout: 120_000 });
  await page.waitForFunction(() => document.querySelector('#engine-facts').textContent.includes('Context'), null, { timeout: 10_000 });

  // Hand-made events first, while no reply is under way: a reply's own
  // emotion events would race them.
  step('an emotion event moves the face, smoothly');
  const before = await page.evaluate(() => window.workly.expressionWeights().happy);
  assert.ok(before < 0.05, `happy starts near 0 (${before})`);
  await page.evaluate(() => window.workly.receive({ type: 'emotion', reply: 'test', emotion: 'joy', intensity: 0.8 }));
  await page.waitForFunction(() => window.workly.expressionWeights().happy > 0.02, null, { timeout: 5_000 });
  const early = await page.evaluate(() => window.workly.expressionWeights().happy);
  assert.ok(early < 0.79, `the weight eases in rather than jumping (${early})`);
  await page.waitForFunction(() => window.workly.expressionWeights().happy > 0.75, null, { timeout: 10_000 });
  assert.equal(await page.locator('#mood').textContent(), 'joy');
  await page.waitForTimeout(500);
  for (const path of screenshots) await page.screenshot({ path });
  step(`screenshot saved to ${screenshots.join(', ')}`);

  step('a slider sets an expression');
  await page.locator('#expression-surprised').fill('0.9');
  await page.waitForFunction(() => window.workly.expressionWeights().surprised > 0.5, null, { timeout: 10_000 });

  step('a sorrow event replaces joy');
  await page.evaluate(() => window.workly.receive({ type: 'emotion', reply: 'test', emotion: 'sorrow', intensity: 1 }));
  await page.waitForFunction(() => {
    const weights = window.workly.expressionWeights();
    return weights.sad > 0.8 && weights.happy < 0.1 && weights.surprised < 0.1;
  }, null, { timeout: 10_000 });

  for (const [file, hasHappy] of [['VRMC_vrm_expressions_isBinary_Overrides.vrm', true], ['VRMC_materials_mtoon_UV_Animation_Test.vrm', false]]) {
    step(`loading ${file}`);
    const loads = await page.evaluate(() => window.workly.avatarLoads);
    await page.setInputFiles('#vrm-file', join(vrmDir, file));
    await page.waitForFunction((count) => window.workly.avatarLoads > count && window.workly.avatarLoaded, loads, { timeout: 30_000 });
    assert.equal(await page.evaluate(() => window.workly.avatarVersion), '1.0');
    assert.ok(await page.locator('#avatar-error').isHidden(), 'no load error');
    await page.evaluate(() => window.workly.receive({ type: 'emotion', reply: 'test', emotion: 'joy', intensity: 1 }));
    if (hasHappy) {
      await page.waitForFunction(() => window.workly.expressionWeights().happy > 0.5, null, { timeout: 10_000 });
    } else {
      // No expressions: emotions change nothing and break nothing.
      await page.waitForTimeout(300);
      assert.deepEqual(await page.evaluate(() => window.workly.expressionWeights()), {});
    }
  }

  step('chatting');
  // Software rendering competes with the model for the CPU: render slowly while Kira replies.
  await page.locator('#max-fps').fill('5');
  // Record the reply bubble's text at every change, to see it grow while streaming.
  await page.evaluate(() => {
    window.snapshots = [];
    new MutationObserver(() => {
      const bubble = document.querySelector('.message.kira:last-of-type');
      if (bubble) window.snapshots.push({ text: bubble.textContent, streaming: bubble.classList.contains('streaming') });
    }).observe(document.querySelector('#messages'), { subtree: true, childList: true, characterData: true });
  });
  await page.fill('#chat-input', 'Hi Kira! Tell me about your day in two sentences.');
  await page.press('#chat-input', 'Enter');
  // Two different partial texts prove streaming; the whole reply is checked at
  // the end (a loaded 2-core machine may take minutes for 256 tokens).
  await page.waitForFunction(
    () => new Set(window.snapshots.filter((s) => s.streaming && s.text).map((s) => s.text)).size >= 2,
    null, { timeout: 120_000 },
  );
  step('waiting for the end of the reply');
  await page.waitForFunction(() => !window.workly.replying, null, { timeout: 300_000 });
  const snapshots = await page.evaluate(() => window.snapshots);
  const partial = snapshots.filter((snapshot) => snapshot.streaming && snapshot.text.length > 0).map((s) => s.text);
  const reply = await page.locator('.message.kira').last().textContent();
  assert.ok(reply.trim().length > 0, 'Kira replied');
  assert.ok(partial.every((text) => reply.startsWith(text)), 'every partial text was the start of the reply');
  assert.ok(partial.some((text) => text.length < reply.length), 'some text showed before the reply ended');
  step(`Kira said: ${JSON.stringify(reply.slice(0, 80))}`);
  await page.locator('#max-fps').fill('60');
  // The last loaded sample, for a look at a model with a full body.
  for (const path of screenshots) await page.screenshot({ path: path.replace(/\.png$/, '-custom.png') });

  step('the conversation is still there after a reload');
  await page.reload();
  await page.waitForFunction(() => window.workly?.conversation && document.querySelectorAll('.message.kira').length > 0, null, { timeout: 30_000 });
  assert.equal((await page.locator('.message.you').last().textContent()), 'Hi Kira! Tell me about your day in two sentences.');
  assert.equal((await page.locator('.message.kira').last().textContent()).trim(), reply.trim());

  assert.deepEqual(problems, [], 'no errors and no external requests');
  step('all good');
} finally {
  await browser.close();
}
