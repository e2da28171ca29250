// The browser half of bench/dashboard_bench.py: page-ready times of the overview in Debian's
// chromium (playwright-core from tests/dashboard), against the sign-in page in the same run; and
// the delay from a container's death to its crash loop on an open page (live update).
// Prints one JSON object. Run by dashboard_bench.py, which passes what it needs in the env.

import { chromium } from '../tests/dashboard/node_modules/playwright-core/index.mjs';

const api = process.env.FAAS_API;
const token = process.env.FAAS_TOKEN;
const rounds = Number(process.env.ROUNDS || 10);
const crashers = (process.env.CRASHERS || '').split(',').filter(Boolean);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();

async function ready(url) {
  const start = performance.now();
  await page.goto(url, { waitUntil: 'load' });
  return performance.now() - start;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {};

const login = [];
for (let i = 0; i < rounds; i++) login.push(await ready(`${api}/dashboard/login`));
await page.fill('#token', token);
await page.click('#login button[type=submit]');
await page.waitForURL(`${api}/dashboard`);
const rows = await page.$$eval('tr.service', (r) => r.length);
const overview = [];
for (let i = 0; i < rounds; i++) overview.push(await ready(`${api}/dashboard`));
out.overview_rows = rows;
out.login_ready_ms = median(login);
out.overview_ready_ms = median(overview);
out.overview_ready_max_ms = Math.max(...overview);

// Live updates: the page is open before the service is deployed; the crash loop appears on it.
const delays = [];
for (const name of crashers) {
  await page.goto(`${api}/dashboard/problems`);
  await page.waitForSelector('#live-state[data-state="on"]');
  process.stdout.write(JSON.stringify({ deploy: name }) + '\n');
  const sel = `article.problem[data-kind="crash-loop"][data-service="${name}"]`;
  await page.waitForSelector(sel, { timeout: 120_000 });
  const seen = Date.now();
  const started = Date.parse(await page.getAttribute(sel, 'data-started'));
  delays.push(seen - started);
}
out.live_delays_ms = delays;
await browser.close();
process.stdout.write(JSON.stringify(out) + '\n');
