// What the browser tests share: headless Chromium through playwright-core
// (installed in web/node_modules by `scripts/setup.sh --tests`), and their
// step lines.
//
// Environment: WORKLY_WEB_DIR (the web/ directory), CHROMIUM (the browser).

import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.WORKLY_WEB_DIR, 'package.json'));
const { chromium } = require('playwright-core');

// Headless Chromium, with software WebGL (test machines have no GPU for the
// browser) and any `extra` switches.
export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ['--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist', '--no-sandbox', ...extra],
  });
}

// A function that logs one step of the test called `name`.
export const stepper = (name) => (text) => console.log(`${name} test: ${text}`);

// A new page of `browser`, and the problems it reports as the test goes:
// uncaught errors and errors on its console.
export async function watchedPage(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  return { page, problems };
}
