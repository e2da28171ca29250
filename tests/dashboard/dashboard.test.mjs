// The dashboard driven in Debian's chromium: sign in with a platform token, see a deployed
// service's figures, watch a real crash loop and a real OOM kill appear without reloading (with
// the instance's last log lines), roll back from the page and see the release change, and be
// refused another tenant's service. Asserts on the page's content, never on pixels; the
// screenshots it takes go to FAAS_SCREENSHOTS (docs/dashboard) when set.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { chromium } from 'playwright-core';

const api = process.env.FAAS_API;
const admin = process.env.FAAS_ADMIN_TOKEN;
const routerPort = process.env.FAAS_ROUTER_PORT;
const shots = process.env.FAAS_SCREENSHOTS || mkdtempSync(join(tmpdir(), 'faas-shots-'));
const TEAM = 'team@example.com';
const OTHER = 'other@example.com';

async function call(method, path, body, token = admin) {
  const res = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

// A request through the router (fetch cannot set Host).
function routed(host, path = '/') {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: routerPort, path, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const serve = (version) => `["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/_info && echo ${version} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]`;
const manifest = (name, owner, command, extra = '') => `name = "${name}"
owner = "${owner}"
[run]
port = 8080
command = ${command}
[health]
path = "/_info"
interval = "500ms"
grace = "20s"
[size]
cpu = 0.1
${extra}`;
const OOM = `["sh", "-c", "echo booting; mkdir -p /tmp/www && echo ok > /tmp/www/_info && httpd -p 8080 -h /tmp/www; sleep 5; echo 'loading the whole cache into memory'; exec dd if=/dev/zero of=/dev/null bs=200M count=1"]`;
const CRASH = `["sh", "-c", "if [ -e /tmp/booted ]; then echo 'fatal: the config file is gone'; exit 3; fi; touch /tmp/booted; mkdir -p /tmp/www && echo ok > /tmp/www/_info && httpd -p 8080 -h /tmp/www; sleep 5; exit 1"]`;

async function deploy(service, text, token = admin) {
  const d = await call('POST', `/v1/services/${service}/deployments`, { env: 'prod', image: 'busybox:stable', manifest: text }, token);
  assert.equal(d.status, 202, d.text);
  return waitFor(`deployment of ${service}`, async () => {
    const r = await call('GET', `/v1/services/${service}/deployments/${d.json.id}`);
    return ['succeeded', 'failed', 'rolled_back'].includes(r.json.state) ? r.json : null;
  });
}

let browser;
let page;
const tokens = {};

before(async () => {
  for (const tenant of [TEAM, OTHER]) {
    const t = await call('POST', '/v1/tokens', { tenant, role: 'member' });
    assert.equal(t.status, 201, t.text);
    tokens[tenant] = t.json.token;
  }
  for (const [name, owner] of [['web', TEAM], ['oomer', TEAM], ['crasher', TEAM], ['hidden', OTHER]]) {
    const s = await call('POST', '/v1/services', { name, owner });
    assert.equal(s.status, 201, s.text);
  }
  for (const v of ['v1', 'v2']) {
    assert.equal((await deploy('web', manifest('web', TEAM, serve(v)), tokens[TEAM])).state, 'succeeded');
  }
  assert.equal((await deploy('hidden', manifest('hidden', OTHER, serve('secret')))).state, 'succeeded');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
});

after(async () => {
  await browser?.close();
});

async function shot(name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  assert.ok(statSync(path).size > 10_000, `${name}.png is not blank`);
}

test('sign-in refuses a wrong token and lets a member in to its own services only', async () => {
  await page.goto(`${api}/dashboard`);
  assert.match(page.url(), /\/dashboard\/login\?next=/);
  await page.fill('#token', 'faas_not_a_real_token');
  await page.click('#login button[type=submit]');
  assert.match(await page.textContent('#error'), /not known to this platform/);
  await page.fill('#token', tokens[TEAM]);
  await page.click('#login button[type=submit]');
  await page.waitForURL(`${api}/dashboard`);
  assert.equal(await page.textContent('#tenant'), TEAM);
  const services = await page.$$eval('tr.service', (rows) => [...new Set(rows.map((r) => r.dataset.service))]);
  assert.deepEqual(services.sort(), ['crasher', 'oomer', 'web']);
  assert.equal((await page.textContent('tr.service[data-service="web"] .release')).trim(), 'v2');
  assert.equal((await page.textContent('tr.service[data-service="web"] .health')).trim(), '1/1');
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'faas_session');
  assert.ok(session.httpOnly, 'the session cookie is HttpOnly');
  assert.equal(session.sameSite, 'Strict');
});

test("a deployed service's figures: requests, latency, memory, charts", async () => {
  for (let i = 0; i < 80; i++) {
    const r = await routed('web.localhost');
    assert.equal(r.status, 200);
  }
  await page.goto(`${api}/dashboard/services/web`);
  // The recorder keeps the figures every 5 s; the page takes them in live.
  await page.waitForSelector('tr.release-row[data-version="2"]', { timeout: 30_000 });
  const row = await waitFor('v2 counted', async () => {
    const n = Number(await page.getAttribute('tr.release-row[data-version="2"]', 'data-requests'));
    return n >= 80 ? n : null;
  });
  assert.ok(row >= 80);
  const cells = await page.$$eval('tr.release-row[data-version="2"] td', (tds) => tds.map((t) => t.textContent.trim()));
  assert.match(cells[6], /^[0-9.]+$/, `p99 shown: ${cells}`);
  assert.match(cells[8], /MiB \(\d+ % of 256 MiB\)/, `memory shown against the limit: ${cells}`);
  assert.notEqual(await page.getAttribute('figure[data-chart="rps"]', 'data-points'), '');
  assert.ok(await page.$('figure[data-chart="rps"] svg .marker.good'), 'the deploys are marked');
  assert.equal(await page.$$eval('#timeline details.deployment', (d) => d.length), 2);
  await page.waitForSelector('#logs .line', { timeout: 20_000 });
  await shot('service');
});

test('a crash loop and an OOM kill show up live, with the last log lines', async () => {
  await page.goto(`${api}/dashboard/problems`);
  const shown = { };
  const watch = page.waitForSelector('article.problem[data-kind="crash-loop"][data-service="crasher"]', { timeout: 90_000 })
    .then(() => { shown.at = Date.now(); });
  assert.equal((await deploy('crasher', manifest('crasher', TEAM, CRASH), tokens[TEAM])).state, 'succeeded');
  assert.equal((await deploy('oomer', manifest('oomer', TEAM, OOM, 'memory = "32Mi"'), tokens[TEAM])).state, 'succeeded');
  await watch;
  const started = Date.parse(await page.getAttribute('article.problem[data-kind="crash-loop"]', 'data-started'));
  console.log(`live update: the crash loop was on the page ${shown.at - started} ms after the death that made it`);

  await page.goto(`${api}/dashboard/services/crasher`);
  const loop = await page.textContent('article.problem[data-kind="crash-loop"]');
  assert.match(loop, /keeps dying/);
  assert.match(loop, /fatal: the config file is gone/);

  await page.goto(`${api}/dashboard/services/oomer`);
  await page.waitForSelector('article.problem[data-kind="oom-killed"]', { timeout: 60_000 });
  const oom = await page.textContent('article.problem[data-kind="oom-killed"]');
  assert.match(oom, /OOM killer at its memory limit of 32 MiB/);
  assert.match(oom, /loading the whole cache into memory/);
  await shot('problems');
  await page.goto(`${api}/dashboard`);
  assert.ok(Number(await page.textContent('tr.service[data-service="oomer"] .problems')) >= 1);
  await shot('overview');
});

test('roll back from the page and see the release change', async () => {
  await page.goto(`${api}/dashboard/services/web`);
  assert.equal(await page.getAttribute('#current-release', 'data-version'), '2');
  const asked = [];
  page.once('dialog', (d) => { asked.push(d.message()); d.accept(); });
  await page.selectOption('#rollback-release', '1');
  await page.click('#rollback');
  await page.waitForURL(/done=rollback/);
  assert.match(asked[0], /Roll web \(prod\) back/);
  assert.match(await page.textContent('#done'), /rollback started/);
  // No reload: the page follows the deployment live.
  await page.waitForSelector('#current-release[data-version="1"]', { timeout: 60_000 });
  const r = await routed('web.localhost');
  assert.equal(r.body.trim(), 'v1');
  await page.goto(`${api}/dashboard/releases`);
  const first = await page.$eval('#feed tbody tr', (tr) => ({ service: tr.dataset.service, version: tr.dataset.version, text: tr.textContent }));
  assert.equal(first.service, 'web');
  assert.equal(first.version, '1');
  assert.match(first.text, /v2 → v1/);
  assert.match(first.text, new RegExp(TEAM));
  await shot('releases');
});

test("a member can neither see nor act on another tenant's service; forged actions are refused", async () => {
  const res = await page.goto(`${api}/dashboard/services/hidden`);
  assert.equal(res.status(), 404);
  assert.match(await page.textContent('#error-page'), /no service `hidden`/);
  await page.goto(`${api}/dashboard/services/web`);
  const csrf = await page.getAttribute('#rollback-form input[name=csrf]', 'value');
  // Posted with the browser's own session cookie, as a forged form from elsewhere would be.
  const post = async (path, form) => (await page.request.post(`${api}${path}`, { form, maxRedirects: 0 })).status();
  const statuses = {
    forged: await post('/dashboard/services/web/rollback', { env: 'prod' }),
    wrong: await post('/dashboard/services/web/rollback', { env: 'prod', csrf: 'faas_guess' }),
    other: await post('/dashboard/services/hidden/rollback', { env: 'prod', csrf }),
    missing: await post('/dashboard/services/nope/scale', { env: 'prod', csrf, replicas: '2' }),
  };
  assert.deepEqual(statuses, { forged: 403, wrong: 403, other: 404, missing: 404 });
  const hidden = await call('GET', '/v1/services/hidden/deployments?env=prod');
  assert.equal(hidden.json.length, 1, 'nothing was started on the hidden service');
});

test('signing out ends the session', async () => {
  await page.goto(`${api}/dashboard`);
  await page.click('header .who button');
  await page.waitForURL(/\/dashboard\/login/);
  await page.goto(`${api}/dashboard/releases`);
  assert.match(page.url(), /\/dashboard\/login\?next=%2Fdashboard%2Freleases|\/dashboard\/login\?next=\/dashboard\/releases/);
});
