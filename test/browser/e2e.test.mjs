// Real-browser end-to-end test: Chromium, configured to use a squid proxy
// that breaks WebSockets, loads dlsse's pages through nginx (the shipped
// configs/nginx.conf) in front of dlsse in front of the Direct Line fake,
// all separate processes on loopback:
//
//   chromium → squid → nginx → dlsse → directline-fake
//
// Run by ./scripts/test (which installs chromium, squid, nginx and
// playwright-core when missing):
//   node --test test/browser/
// Screenshots go to test-output/browser/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { Harness, TOKEN_TTL_S, repo, requireTools } from './harness.mjs';

const CHROMIUM = '/usr/bin/chromium';
const shots = join(repo, 'test-output/browser');

// Chromium flags for a closed, headless machine (no sign-in, no updates,
// no background calls to Google that would be refused and retried).
const quietChromium = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const h = new Harness();
let proxied; // Chromium whose every request goes through squid
let failed = false;

async function launch(extraArgs) {
  return chromium.launchPersistentContext(mkdtempSync(join(h.dir, 'profile-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: [...quietChromium, ...extraArgs],
    viewport: { width: 900, height: 700 },
  });
}

/** Runs body; on failure keeps a screenshot and marks the run for the log dump. */
async function step(name, page, body) {
  try {
    await body();
  } catch (err) {
    failed = true;
    if (page) await page.screenshot({ path: join(shots, `FAILED-${name}.png`) }).catch(() => {});
    throw err;
  }
}

before(async () => {
  failed = true; // until the setup is done: a failing setup dumps the logs too
  assert.ok(!process.env.PLAYWRIGHT_DISABLE_FORCED_CHROMIUM_PROXIED_LOOPBACK, 'that variable would let loopback bypass squid');
  requireTools(CHROMIUM, '/usr/sbin/squid', '/usr/sbin/nginx', '/usr/sbin/haproxy', join(repo, 'third_party/botframework-webchat/webchat.js'));
  rmSync(shots, { recursive: true, force: true }); // no stale FAILED-*.png
  mkdirSync(shots, { recursive: true });
  h.build();
  await h.startFake();
  await h.startDlsse();
  await h.startNginx();
  await h.startSquid();
  // Chromium sends loopback direct unless told otherwise: <-loopback>
  // takes loopback out of the implicit bypass list, so the pages, the
  // stream and every fetch go through squid like an office's traffic.
  proxied = await launch([`--proxy-server=http://127.0.0.1:${h.squidPort}`, '--proxy-bypass-list=<-loopback>']);
  failed = false;
});

after(async () => {
  if (proxied) await proxied.close();
  await h.stopAll();
  if (failed) console.log(h.dump());
});

/** Opens a WebSocket from a page and reports how it ended: open, or not. */
function tryWebSocket(page, url) {
  return page.evaluate((u) => new Promise((resolve) => {
    const ws = new WebSocket(u);
    ws.onopen = () => { resolve('open'); ws.close(); };
    ws.onclose = (e) => resolve(`closed ${e.code}`);
  }), url);
}

test('1. the proxy blocks WebSockets, while plain HTTP passes', async () => {
  const page = await proxied.newPage();
  await step('websocket', page, async () => {
    const res = await page.goto(h.origin + '/healthz');
    assert.equal(res.status(), 200, 'plain HTTP through squid');
    assert.ok(h.logLines(h.squidLog).some((l) => l.includes('/healthz')), 'the request went through squid');

    // A real Direct Line stream URL, fresh from the fake.
    const { conversationId, token } = await h.control('POST', '/conversations');
    const rc = await fetch(`${h.fake.url}/v3/directline/conversations/${conversationId}`, { headers: { Authorization: `Bearer ${token}` } });
    const { streamUrl } = await rc.json();
    assert.match(streamUrl, /^ws:\/\//);

    const viaProxy = await tryWebSocket(page, streamUrl);
    assert.notEqual(viaProxy, 'open', 'the WebSocket must not get through squid');
    assert.ok(h.logLines(h.squidLog).some((l) => l.includes('TCP_DENIED') && l.includes(new URL(streamUrl).port)),
      `squid logged the refused WebSocket:\n${h.logLines(h.squidLog).join('\n')}`);

    // Control: the same kind of URL opens from a Chromium without the
    // proxy, so the failure above is squid's doing.
    const direct = await launch([]);
    try {
      const p = await direct.newPage();
      const rc2 = await fetch(`${h.fake.url}/v3/directline/conversations/${conversationId}`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(await tryWebSocket(p, (await rc2.json()).streamUrl), 'open', 'without the proxy the WebSocket opens');
    } finally {
      await direct.close();
    }
    console.log(`# WebSocket through squid: ${viaProxy}; without squid: open`);
  });
  await page.close();
});

let plain; // the plain page, kept open for the drop and restart checks

/** Texts of the plain page's message list. */
const listTexts = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => li.textContent));

/** Waits until the plain page shows n messages starting with prefix. */
function waitForMessages(page, prefix, n, timeout = 30000) {
  return page.waitForFunction(([p, count]) =>
    [...document.querySelectorAll('#messages li')].filter((li) => li.textContent.startsWith(p)).length >= count,
  [prefix, n], { timeout });
}

/** Records every data-state the status badge takes, from now on. */
function recordStates(page) {
  return page.evaluate(() => {
    const el = document.getElementById('status');
    window.__states = [el.dataset.state];
    new MutationObserver(() => window.__states.push(el.dataset.state)).observe(el, { attributes: true, attributeFilter: ['data-state'] });
  });
}

let plainToken; // the plain page's first token, and when it was minted
let plainTokenAt;

test('2. the plain page chats through squid and nginx', async () => {
  plain = await proxied.newPage();
  await step('plain', plain, async () => {
    plainTokenAt = Date.now();
    await plain.goto(h.origin + '/');
    await plain.waitForSelector('#status[data-state="online"]');
    plainToken = await plain.evaluate(() => window.__dlsse.token);
    await plain.fill('#input', 'hello');
    const t0 = Date.now();
    await plain.click('#send');
    await plain.waitForFunction(() => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === 'echo: hello'));
    console.log(`# plain page: send to "echo: hello" rendered in ${Date.now() - t0} ms`);
    const texts = await listTexts(plain);
    assert.equal(texts.filter((t) => t === 'echo: hello').length, 1);
    assert.equal(texts.filter((t) => t === 'hello').length, 1, 'the user message is shown once (from the echo)');
    await plain.screenshot({ path: join(shots, 'plain.png') });
  });
});

test('3. Web Chat chats through squid and nginx, with no send failure', async () => {
  const page = await proxied.newPage();
  const offBox = [];
  // blob: and data: URLs are made inside the page (Web Chat probes for
  // workers with one): not network requests.
  page.on('request', (r) => { if (!r.url().startsWith(h.origin) && !/^(blob|data):/.test(r.url())) offBox.push(r.url()); });
  const consoleErrors = []; // a Content-Security-Policy refusal shows up here
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  await step('webchat', page, async () => {
    await page.goto(h.origin + '/webchat');
    const input = page.locator('[data-id="webchat-sendbox-input"]');
    await input.waitFor();
    await page.waitForSelector('#link[data-state="online"]');
    await input.fill('hello');
    const t0 = Date.now();
    await input.press('Enter');
    // Web Chat renders a message twice in the DOM (the bubble, and its
    // screen-reader text): wait for the first; count activities below.
    await page.getByText('echo: hello', { exact: true }).first().waitFor();
    console.log(`# Web Chat: send to "echo: hello" rendered in ${Date.now() - t0} ms`);
    // The send completes (Web Chat saw the echo with its clientActivityID).
    await page.waitForFunction(() => window.__webchat.actions.some((a) => a.type === 'DIRECT_LINE/POST_ACTIVITY_FULFILLED'));
    const types = await page.evaluate(() => window.__webchat.actions.map((a) => a.type));
    assert.ok(!types.includes('DIRECT_LINE/POST_ACTIVITY_REJECTED'), 'no rejected send');
    const echoes = await page.evaluate(() => window.__webchat.actions
      .filter((a) => a.type === 'DIRECT_LINE/INCOMING_ACTIVITY' && a.text === 'echo: hello').length);
    assert.equal(echoes, 1, 'the echo reached Web Chat once');
    assert.equal(await page.getByText(/send failed/i).count(), 0, 'no "Send failed" marker');
    assert.deepEqual(offBox, [], 'every request stays on the gateway (no CDN)');
    assert.deepEqual(consoleErrors, [], 'no error in the browser console');
    // A file through Web Chat's upload button: the adapter posts it as
    // multipart to dlsse's upload route, dlsse streams it to Direct Line,
    // and the send completes when the upload comes back on the stream.
    const before = await h.control('GET', '/stats');
    await page.locator('input[type="file"]').setInputFiles({ name: 'note.txt', mimeType: 'text/plain', buffer: Buffer.from('x'.repeat(5000)) });
    // Web Chat sends at once or keeps the file in the send box until Enter.
    const fulfilled = () => page.evaluate(() => window.__webchat.actions.filter((a) => a.type === 'DIRECT_LINE/POST_ACTIVITY_FULFILLED').length);
    if (!(await page.evaluate(() => window.__webchat.actions.filter((a) => a.type === 'DIRECT_LINE/POST_ACTIVITY').length >= 2))) {
      await input.press('Enter');
    }
    await page.waitForFunction(() => window.__webchat.actions.filter((a) => a.type === 'DIRECT_LINE/POST_ACTIVITY_FULFILLED').length >= 2);
    assert.equal(await fulfilled(), 2);
    const after = await h.control('GET', '/stats');
    assert.equal(after.Uploads - before.Uploads, 1, 'one upload reached Direct Line');
    assert.equal(after.UploadBytes - before.UploadBytes, 5000, 'with every byte of the file');
    await page.getByText('note.txt').first().waitFor();

    // A short upstream drop is hidden from Web Chat (the adapter's grace):
    // no reconnect cycle, which would cancel sends in flight, and the bot's
    // messages around the drop arrive once each.
    const conv = await page.evaluate(() => window.__dlsse.conversationId);
    const around = Array.from({ length: 20 }, (_, i) => `around the drop ${i + 1}`);
    await h.control('POST', `/conversations/${conv}/messages`, { texts: around.slice(0, 10) });
    assert.equal((await h.control('POST', `/sockets/drop?conversation=${conv}`)).sockets, 1);
    await h.control('POST', `/conversations/${conv}/messages`, { texts: around.slice(10) });
    await page.waitForFunction((n) => window.__webchat.actions.filter((a) => a.type === 'DIRECT_LINE/INCOMING_ACTIVITY' &&
      typeof a.text === 'string' && a.text.startsWith('around the drop ')).length >= n, around.length);
    const seen = await page.evaluate(() => window.__webchat.actions
      .filter((a) => a.type === 'DIRECT_LINE/INCOMING_ACTIVITY' && typeof a.text === 'string' && a.text.startsWith('around the drop '))
      .map((a) => a.text));
    assert.deepEqual(seen, around, 'each message once, in order');
    const reconnects = await page.evaluate(() => window.__webchat.actions.filter((a) => a.type === 'DIRECT_LINE/RECONNECT_PENDING').length);
    assert.equal(reconnects, 0, 'Web Chat never saw the short outage');

    // Web Chat's own connectivity notice settles a moment after the echo.
    await page.getByText('Connecting…', { exact: true }).waitFor({ state: 'detached' });
    await page.screenshot({ path: join(shots, 'webchat.png') });
  });
  await page.close();
});

test('4. an upstream drop during a 200-message burst: reconnecting, then online; each message once, in order', async () => {
  await step('drop', plain, async () => {
    const conv = await plain.evaluate(() => window.__dlsse.conversationId);
    await recordStates(plain);
    const burst = Array.from({ length: 200 }, (_, i) => `burst ${String(i + 1).padStart(3, '0')}`);
    await h.control('POST', `/conversations/${conv}/messages`, { texts: burst.slice(0, 100) });
    // The next dials fail for a moment, so the outage is long enough to be
    // seen; then the socket goes, mid-burst.
    await h.control('POST', '/dial-failures', { n: 2, status: 503 });
    const { sockets } = await h.control('POST', `/sockets/drop?conversation=${conv}`);
    assert.equal(sockets, 1);
    await h.control('POST', `/conversations/${conv}/messages`, { texts: burst.slice(100) });

    await waitForMessages(plain, 'burst ', 200);
    await plain.waitForSelector('#status[data-state="online"]');
    const got = (await listTexts(plain)).filter((t) => t.startsWith('burst '));
    assert.deepEqual(got, burst, 'all 200, once each, in order');
    const states = await plain.evaluate(() => window.__states);
    assert.ok(states.includes('reconnecting'), `the page showed reconnecting: ${states}`);
    assert.equal(states.at(-1), 'online');
    console.log(`# drop: status went ${states.join(' → ')}; 200/200 messages, 0 repeated`);
    await plain.screenshot({ path: join(shots, 'after-drop.png') });
  });
});

test('5. dlsse restarts: the browser resumes with Last-Event-ID, nothing lost or repeated', async () => {
  await step('restart', plain, async () => {
    const conv = await plain.evaluate(() => window.__dlsse.conversationId);
    const before = h.logLines(h.nginxLog).length;
    const during = Array.from({ length: 50 }, (_, i) => `during restart ${String(i + 1).padStart(2, '0')}`);

    await h.stop('dlsse'); // SIGTERM: streams get a retry hint and end
    await h.control('POST', `/conversations/${conv}/messages`, { texts: during }); // the bot talks meanwhile
    const t0 = Date.now();
    await h.startDlsse();
    await waitForMessages(plain, 'during restart ', 50);
    console.log(`# restart: 50 messages sent while dlsse was down rendered ${Date.now() - t0} ms after it started`);

    const texts = await listTexts(plain);
    assert.deepEqual(texts.filter((t) => t.startsWith('during restart ')), during, 'all 50, once each, in order');
    const counts = new Map();
    for (const t of texts.filter((x) => !x.startsWith('reconnect'))) counts.set(t, (counts.get(t) || 0) + 1);
    const repeated = [...counts].filter(([t, n]) => n > 1 && t !== '');
    assert.deepEqual(repeated, [], 'nothing shown twice');

    const streams = h.logLines(h.nginxLog).slice(before).filter((l) => /\/stream /.test(l) && / 200 /.test(l));
    assert.ok(streams.length >= 1, 'a stream was opened again');
    assert.ok(streams.some((l) => !/lei=""/.test(l)), `a stream came back with a Last-Event-ID header:\n${streams.join('\n')}`);
    await plain.waitForSelector('#status[data-state="online"]');
    await plain.screenshot({ path: join(shots, 'after-restart.png') });
  });
});

test('6. the shipped HAProxy config serves the same chat (squid → haproxy → dlsse)', async () => {
  const origin = await h.startHaproxy();
  const page = await proxied.newPage();
  await step('haproxy', page, async () => {
    await page.goto(origin + '/');
    await page.waitForSelector('#status[data-state="online"]');
    await page.fill('#input', 'through haproxy');
    await page.click('#send');
    await page.waitForFunction(() => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === 'echo: through haproxy'));
    const conv = await page.evaluate(() => window.__dlsse.conversationId);
    const texts = ['hap 1', 'hap 2', 'hap 3'];
    await h.control('POST', `/conversations/${conv}/messages`, { texts });
    await waitForMessages(page, 'hap ', 3);
    assert.deepEqual((await listTexts(page)).filter((t) => t.startsWith('hap ')), texts);
    await page.screenshot({ path: join(shots, 'haproxy.png') });
  });
  await page.close();
  await h.stop('haproxy');
});

test('7. the page refreshes its token and keeps chatting after the first one expired', async () => {
  await step('token', plain, async () => {
    // The library refreshes at half the token's life and moves the stream
    // onto the new token; by the time the first token is dead, both the
    // REST calls and the stream must be using a fresh one.
    await plain.waitForFunction((first) => window.__dlsse.token !== first, plainToken, { timeout: TOKEN_TTL_S * 1000 });
    const expired = plainTokenAt + TOKEN_TTL_S * 1000 + 1000;
    await plain.waitForFunction((t) => Date.now() > t, expired, { timeout: TOKEN_TTL_S * 2000, polling: 250 });
    const refreshes = h.logLines(h.nginxLog).filter((l) => l.startsWith('POST /v3/directline/tokens/refresh 200'));
    assert.ok(refreshes.length >= 1, 'the page refreshed its token through nginx');

    const conv = await plain.evaluate(() => window.__dlsse.conversationId);
    await h.control('POST', `/conversations/${conv}/messages`, { texts: ['after the first token expired'] });
    await waitForMessages(plain, 'after the first token expired', 1);
    await plain.fill('#input', 'still here');
    await plain.click('#send');
    await plain.waitForFunction(() => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === 'echo: still here'));
    assert.equal(await plain.evaluate(() => document.getElementById('status').dataset.state), 'online');
    console.log(`# token: ${refreshes.length} refresh(es) through nginx; chatting ${Math.round((Date.now() - plainTokenAt) / 1000)} s after the first token (${TOKEN_TTL_S} s) was minted`);
  });
});
