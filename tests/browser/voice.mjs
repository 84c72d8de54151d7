// Talks with Kira on Workly's page in headless Chromium (playwright-core),
// with a fake microphone that plays a recorded question: hands-free, the
// question is heard, answered aloud, and the avatar's mouth moves while her
// voice plays; then a spoken reply to a typed message is stopped with Esc,
// and the page shows only what she said, marked as interrupted. Run by
// tests/page.rs; exits non-zero on the first failure.
//
//   node tests/browser/voice.mjs BASE_URL QUESTION_WAV
//
// Environment: WORKLY_WEB_DIR (the web/ directory), CHROMIUM (the browser).

import assert from 'node:assert/strict';
import { launch, stepper, watchedPage } from './chromium.mjs';

const [base, question] = process.argv.slice(2);
const step = stepper('voice');

const browser = await launch([
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${question}%noloop`,
  '--autoplay-policy=no-user-gesture-required',
]);
try {
  const { page, problems } = await watchedPage(browser);
  await page.goto(base);
  step('waiting for the avatar and the model');
  await page.waitForFunction(() => window.workly?.avatarLoaded && window.workly.status === 'ready', null, { timeout: 120_000 });

  assert.equal(await page.inputValue('#voice-speed'), '1.1', 'the config file set her speed');
  assert.equal(await page.inputValue('#voice-volume'), '0.8', 'and her volume');

  step('hands-free: the microphone plays the question');
  await page.click('#hands-free');
  await page.waitForFunction(() => window.workly.voice.heard.some((text) => text), null, { timeout: 180_000 });
  const heard = await page.evaluate(() => window.workly.voice.heard.find((text) => text));
  step(`heard: ${JSON.stringify(heard)}`);
  assert.match(heard, /colou?r/i, 'the question was heard');
  assert.equal(await page.locator('.message.you').last().textContent(), heard, 'what was heard is the message');

  step('waiting for her voice');
  await page.waitForFunction(() => window.workly.voice.playing, null, { timeout: 180_000 });
  // The mouth follows the voice while it plays. On two busy cores the
  // sentences after the first can be slow to come: wait for the mouth to open
  // or for her to finish, then check that it opened.
  await page.waitForFunction(
    () => window.workly.voice.maxMouth > 0.2 || !window.workly.voice.speaking,
    null,
    { timeout: 300_000 },
  );
  assert.ok(await page.evaluate(() => window.workly.voice.maxMouth) > 0.2, 'the mouth opened while she spoke');
  await page.waitForFunction(() => window.workly.voice.stages !== null, null, { timeout: 300_000 });
  const stages = await page.evaluate(() => window.workly.voice.stages);
  step(`stages: ${JSON.stringify(stages)}`);
  assert.ok(stages.transcript_ms > 0 && stages.total_ms > stages.transcript_ms, 'the turn measured its stages');
  await page.waitForFunction(() => !window.workly.voice.speaking, null, { timeout: 300_000 });
  assert.ok(await page.evaluate(() => window.workly.voice.sentencesPlayed) >= 1);
  await page.waitForFunction(() => window.workly.voice.mouthOpen() < 0.01, null, { timeout: 5_000 });
  step('the mouth closed when she stopped speaking');
  await page.click('#hands-free');
  assert.equal(await page.evaluate(() => window.workly.voice.listening), false);

  step('a spoken reply to a typed message, stopped with Esc');
  await page.check('#voice-replies');
  await page.fill('#chat-input', 'Tell me a long story about the sea, with many sentences.');
  await page.press('#chat-input', 'Enter');
  // Into a sentence, not between two: the first piece may be a short clause.
  await page.waitForFunction(() => window.workly.voice.playingSeconds > 0.5, null, { timeout: 180_000 });
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => window.workly.voice.playing), false, 'Esc stopped her voice at once');
  const stop = await page.evaluate(() => window.workly.voice.lastStop);
  assert.ok(stop && stop.seconds > 0.3, `stopped into a sentence: ${JSON.stringify(stop)}`);
  await page.waitForFunction(() => window.workly.voice.interrupted !== null, null, { timeout: 300_000 });
  const kept = await page.evaluate(() => window.workly.voice.interrupted);
  step(`kept: ${JSON.stringify(kept)}`);
  assert.ok(kept.endsWith('(interrupted)'), kept);
  await page.waitForFunction((text) => document.querySelector('.message.kira:last-of-type')?.textContent === text, kept, { timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.workly.voice.mouthOpen()), 0, 'the mouth closed at once');

  assert.deepEqual(problems, [], 'no errors');
  console.log(JSON.stringify({ heard, kept }));
  step('all good');
} finally {
  await browser.close();
}
