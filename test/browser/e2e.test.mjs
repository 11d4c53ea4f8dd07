// Real-browser end-to-end test: Chromium, configured to use a squid proxy
// that breaks WebSockets, loads dlsse's pages through nginx (the shipped
// configs/nginx.conf) in front of dlsse in front of the Direct Line fake,
// all separate processes on loopback:
//
//   chromium → squid → nginx → dlsse → directline-fake
//
// Tests 8-10 then check what unmodified Direct Line clients get: Web Chat's
// own WebChat.createDirectLine (DirectLineJS) on a page of another origin,
// from a Chromium without squid, WebSocket stream through nginx:
//
//   chromium → nginx → dlsse → directline-fake     (page from the harness's own server)
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
import { until } from '../lib/processes.mjs';

const CHROMIUM = '/usr/bin/chromium';
const shots = join(repo, 'test-output/browser');

// Chromium flags for a closed, headless machine (no sign-in, no updates,
// no background calls to Google that would be refused and retried).
const quietChromium = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const h = new Harness();
let proxied; // Chromium whose every request goes through squid
let direct; // Chromium without a proxy (WebSockets pass): tests 8-10
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
  await h.startPages(); // before dlsse, which lists its origin in allowed_origins
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
  if (direct) await direct.close();
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

// Tests 8-10 (see the top): Web Chat's own createDirectLine, dlsse's adapter
// nowhere, on a page of another origin (test/browser/pages/, served by the
// harness), from the Chromium without squid, to dlsse through nginx.

/** A new page of the direct Chromium, watched: console errors, failed requests, WebSockets. */
async function directPage() {
  direct ||= await launch([]);
  const page = await direct.newPage();
  const seen = { errors: [], failed: [], sockets: [] };
  page.on('console', (m) => { if (m.type() === 'error') seen.errors.push(m.text()); });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('requestfailed', (r) => seen.failed.push(`${r.method()} ${new URL(r.url()).pathname}: ${r.failure()?.errorText}`));
  page.on('websocket', (ws) => {
    const s = { path: new URL(ws.url()).pathname, url: ws.url().replace(/([?&]t=)[^&]*/, '$1…'), frames: 0, closed: false };
    seen.sockets.push(s);
    ws.on('framereceived', () => { s.frames++; });
    ws.on('close', () => { s.closed = true; });
  });
  return { page, seen };
}

/**
 * Loads the other origin's Web Chat page (query: token, conversationId,
 * webSocket) pointed at dlsse through nginx, and waits for DirectLineJS to
 * say online; returns its conversation id and token.
 */
async function openDirectLine(page, query = {}) {
  const q = new URLSearchParams({ domain: h.origin + '/v3/directline', ...query });
  await page.goto(`${h.pagesOrigin}/directline.html?${q}`);
  // ConnectionStatus.Online, or a failure: 3 token expired, 4 failed to connect, 5 ended.
  await page.waitForFunction(() => window.__webchat.error || window.__webchat.statuses.some((s) => s >= 2));
  const { error, statuses } = await page.evaluate(() => window.__webchat);
  assert.ok(statuses.includes(2), `DirectLineJS online: statuses ${statuses}${error ? `, ${error}` : ''}`);
  await page.locator('[data-id="webchat-sendbox-input"]').waitFor();
  return page.evaluate(() => ({ conv: window.__directLine.conversationId, token: window.__directLine.token }));
}

/** Types text into Web Chat's send box and sends it. */
async function sendBox(page, text) {
  const input = page.locator('[data-id="webchat-sendbox-input"]');
  await input.fill(text);
  await input.press('Enter');
}

/** Texts of the activities Web Chat received (DIRECT_LINE/INCOMING_ACTIVITY), in order. */
const incoming = (page) => page.evaluate(() => window.__webchat.actions
  .filter((a) => a.type === 'DIRECT_LINE/INCOMING_ACTIVITY' && typeof a.text === 'string').map((a) => a.text));

/** Texts of the messages Web Chat renders: its store's transcript, and the transcript's DOM. */
const rendered = (page) => page.evaluate(() => ({
  store: window.__store.getState().activities.filter((a) => a.type === 'message').map((a) => a.text),
  dom: [...document.querySelectorAll('.webchat__basic-transcript__activity .webchat__text-content')].map((e) => e.textContent.trim()),
}));

/** Waits until Web Chat received every one of texts. */
function waitForIncoming(page, texts, timeout = 15000) {
  return page.waitForFunction((want) => {
    const got = new Set(window.__webchat.actions.filter((a) => a.type === 'DIRECT_LINE/INCOMING_ACTIVITY').map((a) => a.text));
    return want.every((t) => got.has(t));
  }, texts, { timeout });
}

/** Waits until Web Chat's sends completed n times (the post answered and its echo back). */
function waitForFulfilled(page, n) {
  return page.waitForFunction((count) =>
    window.__webchat.actions.filter((a) => a.type === 'DIRECT_LINE/POST_ACTIVITY_FULFILLED').length >= count, n);
}

/** Asserts each of texts appears exactly once among what the page received and rendered. */
async function assertOnce(page, texts, what) {
  const got = await incoming(page);
  const { store, dom } = await rendered(page);
  for (const t of texts) {
    assert.equal(got.filter((x) => x === t).length, 1, `${what}: ${JSON.stringify(t)} received once: ${JSON.stringify(got)}`);
    assert.equal(store.filter((x) => x === t).length, 1, `${what}: ${JSON.stringify(t)} once in the transcript: ${JSON.stringify(store)}`);
    assert.equal(dom.filter((x) => x === t).length, 1, `${what}: ${JSON.stringify(t)} rendered once: ${JSON.stringify(dom)}`);
  }
}

/** A gauge or counter from dlsse's /metrics, read on dlsse's own port (nginx refuses /metrics). */
async function metric(name) {
  const text = await (await fetch(`http://127.0.0.1:${h.dlssePort}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  assert.ok(m, `dlsse exports ${name}`);
  return Number(m[1]);
}

/** nginx's log lines from index from on, for one conversation's routes. */
const convLog = (from, conv) => h.logLines(h.nginxLog).slice(from).filter((l) => l.includes(`/conversations/${conv}/`));

/** Every preflight (OPTIONS) nginx logged from index from on was allowed; returns how many. */
function assertPreflights(from) {
  const preflights = h.logLines(h.nginxLog).slice(from).filter((l) => l.startsWith('OPTIONS '));
  assert.deepEqual(preflights.filter((l) => !/^OPTIONS \S+ 20[04] /.test(l)), [], 'every preflight allowed');
  return preflights.length;
}

test('8. Web Chat\'s own createDirectLine (DirectLineJS, WebSocket) from another origin, through nginx, by changing only the domain', async () => {
  const { page, seen } = await directPage();
  const logFrom = h.logLines(h.nginxLog).length;
  let conv;
  await step('directline-websocket', page, async () => {
    const t0 = Date.now();
    ({ conv } = await openDirectLine(page));
    const online = Date.now() - t0;
    await sendBox(page, 'hello');
    const t1 = Date.now();
    await waitForIncoming(page, ['echo: hello']);
    const echoed = Date.now() - t1;
    await waitForFulfilled(page, 1);
    console.log(`# createDirectLine (WebSocket): page load to online ${online} ms; send to "echo: hello" received ${echoed} ms`);
    const types = await page.evaluate(() => window.__webchat.actions.map((a) => a.type));
    assert.ok(types.includes('DIRECT_LINE/CONNECT_FULFILLED'), 'Web Chat connected');
    assert.ok(!types.includes('DIRECT_LINE/POST_ACTIVITY_REJECTED'), 'no rejected send');
    await assertOnce(page, ['hello', 'echo: hello'], 'WebSocket mode');
    assert.equal(await page.getByText(/send failed/i).count(), 0, 'no "Send failed" marker');

    // The stream is a WebSocket, to nginx's origin, and dlsse holds it as one.
    assert.equal(seen.sockets.length, 1, `one WebSocket: ${JSON.stringify(seen.sockets)}`);
    const [ws] = seen.sockets;
    assert.equal(ws.path, `/v3/directline/conversations/${conv}/stream`);
    assert.ok(ws.url.startsWith(`ws://127.0.0.1:${h.nginxPort}/`), `the stream URL points at nginx: ${ws.url}`);
    assert.ok(ws.frames >= 1 && !ws.closed, `activities came as frames on an open socket: ${JSON.stringify(ws)}`);
    assert.equal(await metric('dlsse_websocket_subscribers_open'), 1, 'dlsse serves it as a WebSocket subscriber');

    assert.deepEqual(seen.errors, [], 'no error in the browser console');
    assert.deepEqual(seen.failed, [], 'no failed request');
    await page.getByText('echo: hello', { exact: true }).first().waitFor();
    await page.screenshot({ path: join(shots, 'directline-websocket.png') });
  });
  await page.close();
  await step('directline-websocket-log', null, async () => {
    // nginx logs an upgraded connection when it ends: the page is gone now.
    const lines = await until('nginx to log the closed WebSocket', () => {
      const l = convLog(logFrom, conv);
      return l.some((x) => x.startsWith(`GET /v3/directline/conversations/${conv}/stream 101 `)) && l;
    });
    assert.equal(lines.filter((l) => l.includes('/stream ')).length, 1, `one stream, upgraded through nginx:\n${lines.join('\n')}`);
    assert.deepEqual(lines.filter((l) => l.startsWith('GET ') && l.includes('/activities ')), [], 'no polling GET /activities');
    const preflights = assertPreflights(logFrom);
    assert.ok(preflights >= 1, 'the page is of another origin: its calls were preflighted');
    await until('dlsse to count the WebSocket closed', async () => (await metric('dlsse_websocket_subscribers_open')) === 0);
    console.log(`# createDirectLine (WebSocket): nginx logged "GET …/stream 101", ${preflights} preflight(s) allowed, no GET /activities`);
  });
});

test('9. two tabs of one conversation (createDirectLine with its conversationId) both render every message once; one upstream socket', async () => {
  const a = await directPage();
  const b = await directPage();
  await step('two-tabs', a.page, async () => {
    const before = await h.control('GET', '/stats');
    const { conv, token } = await openDirectLine(a.page);
    await openDirectLine(b.page, { token, conversationId: conv });
    // Tab B's stream starts from when it joined: both open before the bot talks.
    await until('both tabs\' WebSockets in dlsse', async () => (await metric('dlsse_websocket_subscribers_open')) === 2);

    const bot = ['to both tabs 1', 'to both tabs 2', 'to both tabs 3'];
    await h.control('POST', `/conversations/${conv}/messages`, { texts: bot });
    await sendBox(a.page, 'from tab A');
    await waitForIncoming(a.page, ['echo: from tab A']);
    await sendBox(b.page, 'from tab B');
    const all = [...bot, 'from tab A', 'echo: from tab A', 'from tab B', 'echo: from tab B'];
    for (const [name, tab] of [['A', a], ['B', b]]) {
      await waitForIncoming(tab.page, all);
      await waitForFulfilled(tab.page, 1);
      const got = (await incoming(tab.page)).filter((t) => all.includes(t));
      assert.deepEqual(got, all, `tab ${name} received every message once, in order`);
      await assertOnce(tab.page, all, `tab ${name}`);
      const types = await tab.page.evaluate(() => window.__webchat.actions.map((x) => x.type));
      assert.ok(!types.includes('DIRECT_LINE/POST_ACTIVITY_REJECTED'), `tab ${name}: no rejected send`);
      assert.equal(tab.seen.sockets.length, 1, `tab ${name}: one WebSocket`);
      assert.deepEqual(tab.seen.errors, [], `tab ${name}: no error in the browser console`);
      assert.deepEqual(tab.seen.failed, [], `tab ${name}: no failed request`);
    }

    // One upstream socket fed both tabs: Direct Line would close all but one.
    const after = await h.control('GET', '/stats');
    assert.equal(after.StartCalls - before.StartCalls, 1, 'one conversation started upstream');
    assert.equal(after.SocketsOpened - before.SocketsOpened, 1, 'one upstream socket for the two tabs');
    assert.equal(after.Collisions - before.Collisions, 0, 'no collision');
    assert.equal(await metric('dlsse_websocket_subscribers_open'), 2);
    console.log(`# two tabs: ${all.length}/${all.length} messages in each, once each; upstream sockets opened ${after.SocketsOpened - before.SocketsOpened}, collisions 0`);
    await Promise.all([a.page.screenshot({ path: join(shots, 'two-tabs-a.png') }), b.page.screenshot({ path: join(shots, 'two-tabs-b.png') })]);
  });
  await a.page.close();
  await b.page.close();
});

test('10. DirectLineJS polling mode (webSocket: false) from another origin: preflights pass, the echo arrives', async () => {
  const { page, seen } = await directPage();
  const logFrom = h.logLines(h.nginxLog).length;
  await step('directline-polling', page, async () => {
    const { conv } = await openDirectLine(page, { webSocket: 'false' });
    await sendBox(page, 'hello');
    const t0 = Date.now();
    await waitForIncoming(page, ['echo: hello']);
    const echoed = Date.now() - t0;
    await waitForFulfilled(page, 1);
    const types = await page.evaluate(() => window.__webchat.actions.map((a) => a.type));
    assert.ok(!types.includes('DIRECT_LINE/POST_ACTIVITY_REJECTED'), 'no rejected send');
    await assertOnce(page, ['hello', 'echo: hello'], 'polling mode');
    assert.deepEqual(seen.sockets, [], 'no WebSocket');
    const lines = convLog(logFrom, conv);
    const polls = lines.filter((l) => l.startsWith(`GET /v3/directline/conversations/${conv}/activities 200 `));
    assert.ok(polls.length >= 1, `it polled through nginx:\n${lines.join('\n')}`);
    assert.deepEqual(lines.filter((l) => l.includes('/stream ')), [], 'no stream');
    const preflights = assertPreflights(logFrom);
    assert.ok(preflights >= 1, 'its calls were preflighted');
    assert.deepEqual(seen.errors, [], 'no error in the browser console');
    assert.deepEqual(seen.failed, [], 'no failed request');
    console.log(`# createDirectLine (polling): send to "echo: hello" received ${echoed} ms; ${polls.length} poll(s), ${preflights} preflight(s) allowed`);
    await page.getByText('echo: hello', { exact: true }).first().waitFor();
    await page.screenshot({ path: join(shots, 'directline-polling.png') });
  });
  await page.close();
});
