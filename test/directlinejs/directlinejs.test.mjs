// Microsoft's own Direct Line client, the npm package botframework-directlinejs
// (what Web Chat's createDirectLine runs), unmodified, against dlsse by
// changing only its domain. Real processes on loopback:
//
//   DirectLineJS (Node; xhr2, ws) → dlsse → directline-fake
//
// Both modes: polling (webSocket: false) and WebSocket (DirectLineJS's
// default), where dlsse's stream URL speaks Direct Line's stream protocol.
// Run by ./scripts/test:
//   (cd test/directlinejs && npm ci) && node --test test/directlinejs/

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';

import { Processes } from '../lib/processes.mjs';
import {
  ConnectionStatus, DirectLine, Inbox, calls, fastRefreshScheduler, nextSocketOpens, post, sockets, version,
  waitForAnswer, waitForStatus,
} from './directlinejs.mjs';

/** The origin of the page embedding Web Chat: in dlsse's allowed_origins. */
const APP_ORIGIN = 'https://webchat.example';
const OTHER_ORIGIN = 'https://other.example';

const p = new Processes('dlsse-directlinejs-');
let base; // dlsse, http://127.0.0.1:PORT
let domain; // what DirectLineJS is given: dlsse's /v3/directline
let failed = false;
let inboxes = []; // the clients of the running test, ended after it

before(async () => {
  failed = true; // until the setup is done: a failing setup dumps the logs too
  p.build();
  await p.startFake(['-keepalive', '2s']);
  base = await p.startDlsse(dlsseArgs('127.0.0.1:0'));
  domain = `${base}/v3/directline`;
  failed = false;
});

after(async () => {
  for (const inbox of inboxes) inbox.close();
  await p.stopAll();
  if (failed) console.log(p.dump());
});

function dlsseArgs(listen) {
  return ['-listen', listen, '-upstream-url', p.fake.url, '-allowed-origins', APP_ORIGIN, '-log-level', 'info'];
}

/** A test whose clients are ended after it, and whose failure dumps the processes' logs. */
function check(name, opts, body) {
  test(name, opts, async (t) => {
    try {
      await body(t);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      for (const inbox of inboxes) inbox.close();
      inboxes = [];
    }
  });
}

/** A token from the site's token service: tokens/generate with the bot's secret, server side. */
async function newToken() {
  const res = await fetch(`${domain}/tokens/generate`, { method: 'POST', headers: { Authorization: `Bearer ${p.fake.secret}` } });
  assert.equal(res.status, 200, 'tokens/generate');
  return (await res.json()).token;
}

/** A DirectLineJS client, as Web Chat creates it but for the domain, with its activity$ subscribed. */
function client(options) {
  const dl = new DirectLine({ domain, ...options });
  const inbox = new Inbox(dl);
  inboxes.push(inbox);
  return { dl, inbox };
}

const message = (text, user = 'user1') => ({ type: 'message', from: { id: user }, text });
const stats = () => p.control('GET', '/stats');
const count = (list, v) => list.filter((x) => x === v).length;

/** Posts 20 messages, each after the last one's answer; all arrive in order, exactly once, echoed. */
async function twentyInOrder(dl, inbox) {
  const texts = Array.from({ length: 20 }, (_, i) => `in order ${i + 1}`);
  const ids = [];
  for (const text of texts) ids.push(await post(dl, message(text)));
  assert.ok(!ids.includes('retry'), `every post answered with an id: ${ids}`);
  await inbox.waitFor('20 echoes', (as) => as.filter((a) => a.text && a.text.startsWith('echo: in order')).length >= 20);
  const mine = inbox.activities.filter((a) => a.from.id === 'user1');
  assert.deepEqual(mine.map((a) => a.text), texts, 'the user\'s messages, in order, once each');
  assert.deepEqual(mine.map((a) => a.id), ids);
  assert.deepEqual(inbox.texts().filter((x) => x.startsWith('echo: ')), texts.map((x) => `echo: ${x}`));
  const all = inbox.activities.map((a) => a.id);
  assert.equal(new Set(all).size, all.length, 'no activity twice');
  const history = await p.control('GET', `/conversations/${dl.conversationId}/history`);
  assert.deepEqual(history.filter((a) => a.from && a.from.id === 'user1').map((a) => a.text), texts, 'the bot got them in order');
}

/**
 * Two clients on one conversation (two tabs with the same token) both get
 * every message once. started is awaited once the first client exists.
 */
async function twoClients(options, started = async () => {}) {
  const token = await newToken();
  const a = client({ token, ...options });
  await started();
  await waitForStatus(a.dl, ConnectionStatus.Online);
  const conv = a.dl.conversationId;
  const b = client({ token, conversationId: conv, ...options });
  await waitForStatus(b.dl, ConnectionStatus.Online);
  await post(a.dl, message('from A', 'userA'));
  await post(b.dl, message('from B', 'userB'));
  await p.control('POST', `/conversations/${conv}/messages`, { texts: ['bot 1', 'bot 2', 'bot 3'] });
  const want = ['from A', 'echo: from A', 'from B', 'echo: from B', 'bot 1', 'bot 2', 'bot 3'];
  for (const [name, c] of [['A', a], ['B', b]]) {
    await c.inbox.waitFor(`client ${name} to get every message`, (as) => want.every((w) => as.some((x) => x.text === w)));
    for (const w of want) assert.equal(count(c.inbox.texts(), w), 1, `client ${name}: ${w} once`);
  }
  // Typing is live only (Direct Line never replays it): a client that
  // joined after one cannot have it.
  const durable = (c) => c.inbox.activities.filter((x) => x.type !== 'typing').map((x) => x.id);
  assert.deepEqual(durable(a), durable(b), 'the same activities, in the same order');
  return { a, b, conv };
}

describe(`DirectLineJS ${version}, polling (webSocket: false)`, () => {
  const polling = { webSocket: false, pollingInterval: 200 };

  check('starts, posts, receives the echo', {}, async () => {
    const { dl, inbox } = client({ token: await newToken(), ...polling });
    await waitForStatus(dl, ConnectionStatus.Online);
    const id = await post(dl, message('hello'));
    assert.notEqual(id, 'retry');
    const echo = await inbox.waitFor('the echo', (as) => as.find((a) => a.text === 'echo: hello'));
    assert.equal(echo.replyToId, id);
    assert.deepEqual(inbox.activities.filter((a) => a.id === id).map((a) => a.text), ['hello']);
  });

  check('20 posts arrive in order, exactly once', {}, async () => {
    const { dl, inbox } = client({ token: await newToken(), ...polling });
    await waitForStatus(dl, ConnectionStatus.Online);
    await twentyInOrder(dl, inbox);
  });

  check('two clients on one conversation both get every message', {}, async () => {
    await twoClients(polling);
  });

  check('the token refresh goes through dlsse and the new token is used', {}, async () => {
    const from = calls.length;
    const before = await stats();
    const { dl, inbox } = client({ token: await newToken(), ...polling, scheduler: fastRefreshScheduler(300) });
    await waitForStatus(dl, ConnectionStatus.Online);
    const refresh = await waitForAnswer('DirectLineJS to refresh its token',
      (c) => calls.indexOf(c) >= from && c.method === 'POST' && c.url === `${domain}/tokens/refresh`);
    assert.equal(refresh.status, 200);
    assert.equal((await stats()).TokensRefreshed - before.TokensRefreshed, 1, 'the fake refreshed once');
    const id = await post(dl, message('after the refresh'));
    const sent = calls.slice(from).findLast((c) => c.url.endsWith('/activities') && c.method === 'POST');
    assert.notEqual(sent.headers.Authorization, refresh.headers.Authorization, 'the post carries the new token');
    assert.equal(sent.headers.Authorization, `Bearer ${dl.token}`);
    await inbox.waitFor('the echo', (as) => as.some((a) => a.text === 'echo: after the refresh' && a.replyToId === id));
  });

  check('an attachment is uploaded as multipart through dlsse and echoed', {}, async () => {
    const files = createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.end('attached bytes'); });
    files.listen(0, '127.0.0.1');
    await once(files, 'listening');
    try {
      const before = await stats();
      const { dl, inbox } = client({ token: await newToken(), ...polling });
      await waitForStatus(dl, ConnectionStatus.Online);
      const id = await post(dl, {
        ...message('see attached'),
        attachments: [{ contentType: 'text/plain', contentUrl: `http://127.0.0.1:${files.address().port}/a.txt`, name: 'a.txt' }],
      });
      assert.notEqual(id, 'retry');
      const mine = await inbox.waitFor('the uploaded message', (as) => as.find((a) => a.id === id));
      assert.deepEqual(mine.attachments.map((x) => [x.name, x.contentType]), [['a.txt', 'text/plain']]);
      await inbox.waitFor('the echo', (as) => as.some((a) => a.text === 'echo: see attached'));
      const after = await stats();
      assert.equal(after.Uploads - before.Uploads, 1);
      assert.equal(after.UploadBytes - before.UploadBytes, 'attached bytes'.length, 'the file, read from its contentUrl, reached the fake whole');
    } finally {
      files.close();
    }
  });

  check('getSessionId (sign-in cards) gets no session id: dlsse has no such route', {}, async () => {
    const { dl } = client({ token: await newToken(), ...polling });
    await waitForStatus(dl, ConnectionStatus.Online);
    const id = await new Promise((resolve, reject) => dl.getSessionId().subscribe(resolve, reject));
    assert.equal(id, '', 'Web Chat then falls back to the magic code');
    const call = calls.findLast((c) => c.url === `${domain}/session/getsessionid`);
    assert.equal(call.status, 404);
  });
});

describe('DirectLineJS, WebSocket mode (webSocket: true, its default)', () => {
  // random: DirectLineJS waits 3 s + random × 12 s before reconnecting a
  // closed socket; 0 makes that 3 s.
  const ws = { webSocket: true, random: () => 0 };

  check('starts, opens the stream as a WebSocket, posts, receives the echo', {}, async () => {
    const opened = nextSocketOpens();
    const from = calls.length;
    const { dl, inbox } = client({ token: await newToken(), ...ws });
    await opened;
    await waitForStatus(dl, ConnectionStatus.Online);
    const id = await post(dl, message('hello'));
    const echo = await inbox.waitFor('the echo', (as) => as.find((a) => a.text === 'echo: hello'));
    assert.equal(echo.replyToId, id);
    assert.equal(calls.slice(from).filter((c) => c.url.includes('/activities?')).length, 0, 'no polling');
  });

  check('20 posts arrive in order, exactly once', {}, async () => {
    const opened = nextSocketOpens();
    const { dl, inbox } = client({ token: await newToken(), ...ws });
    await opened;
    await twentyInOrder(dl, inbox);
  });

  check('two clients on one conversation both get every message over one upstream socket', {}, async () => {
    const before = await stats();
    const opened = nextSocketOpens();
    const { a, b } = await twoClients(ws, () => opened);
    assert.equal(sockets.filter((s) => s.readyState === 1).length >= 2, true, 'both clients have their socket open');
    const after = await stats();
    assert.equal(after.SocketsOpened - before.SocketsOpened, 1, 'dlsse opened one upstream socket for both');
    assert.equal(after.Collisions - before.Collisions, 0);
    for (const c of [a, b]) assert.equal(calls.filter((x) => x.url.includes(`${c.dl.conversationId}/activities?`)).length, 0, 'no polling');
  });

  check('an upstream socket drop is invisible: the client keeps its socket and loses nothing', {}, async () => {
    const opened = nextSocketOpens();
    const { dl, inbox } = client({ token: await newToken(), ...ws });
    const socket = await opened;
    await waitForStatus(dl, ConnectionStatus.Online);
    const conv = dl.conversationId;
    const created = sockets.length;
    await p.control('POST', `/conversations/${conv}/messages`, { texts: ['before the drop'] });
    await inbox.waitFor('the first message', (as) => as.some((a) => a.text === 'before the drop'));
    assert.equal((await p.control('POST', `/sockets/drop?conversation=${conv}`)).sockets, 1);
    const texts = Array.from({ length: 10 }, (_, i) => `after the drop ${i + 1}`);
    await p.control('POST', `/conversations/${conv}/messages`, { texts });
    await inbox.waitFor('every message after the drop', (as) => texts.every((x) => as.some((a) => a.text === x)));
    assert.deepEqual(inbox.texts(), ['before the drop', ...texts], 'each once, in order');
    assert.equal(socket.readyState, 1, 'the client socket stayed open');
    assert.equal(sockets.length, created, 'DirectLineJS opened no other socket');
  });

  check('a dlsse restart: DirectLineJS reconnects from its watermark and loses nothing', {}, async () => {
    // A dlsse of its own, restarted on the same address.
    const own = await p.startDlsse(dlsseArgs('127.0.0.1:0'), 'dlsse-restarted');
    const address = own.slice('http://'.length);
    const opened = nextSocketOpens();
    const from = calls.length;
    const { dl, inbox } = client({ domain: `${own}/v3/directline`, token: await newToken(), ...ws });
    await opened;
    await waitForStatus(dl, ConnectionStatus.Online);
    const conv = dl.conversationId;
    await post(dl, message('before the restart'));
    await inbox.waitFor('the echo', (as) => as.some((a) => a.text === 'echo: before the restart'));

    await p.stop('dlsse-restarted');
    const during = Array.from({ length: 5 }, (_, i) => `while dlsse was down ${i + 1}`);
    await p.control('POST', `/conversations/${conv}/messages`, { texts: during });
    const reopened = nextSocketOpens(30000);
    await p.startDlsse(dlsseArgs(address), 'dlsse-restarted');
    await reopened;
    await inbox.waitFor('the messages sent while dlsse was down', (as) => during.every((x) => as.some((a) => a.text === x)), 30000);
    await post(dl, message('after the restart'));
    await inbox.waitFor('the echo', (as) => as.some((a) => a.text === 'echo: after the restart'));
    assert.deepEqual(inbox.texts(), ['before the restart', 'echo: before the restart', ...during, 'after the restart', 'echo: after the restart']);
    const reconnect = calls.slice(from).find((c) => c.method === 'GET' && c.url.startsWith(`${own}/v3/directline/conversations/${conv}?watermark=`));
    assert.ok(reconnect && reconnect.status === 200, 'DirectLineJS reconnected with GET conversations/{id}?watermark=');
    assert.notEqual(new URL(reconnect.url).searchParams.get('watermark'), '', 'from the watermark it had');
  });
});

// ---------------------------------------------------------------------------
// What DirectLineJS sent, and that a browser page on an allowed origin may
// send it to dlsse (the preflight of each call, as the browser makes it),
// while a page on another origin may not. Runs after the tests above, over
// every call they recorded.

/** The request headers a browser puts in Access-Control-Request-Headers for a call. */
function preflightHeaders(headers) {
  const names = new Set();
  for (const [name, value] of Object.entries(headers)) {
    const n = name.toLowerCase();
    if (['accept', 'accept-language', 'content-language'].includes(n)) continue; // safelisted (plain values)
    if (n === 'content-type' && /^(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)\b/i.test(value)) continue;
    names.add(n);
  }
  return [...names].sort().join(',');
}

/** A call's route: its path with the conversation id as {id}, and its query's names. */
function route(call) {
  const u = new URL(call.url);
  const path = u.pathname.slice('/v3/directline'.length).replace(/^\/conversations\/[^/]+/, '/conversations/{id}');
  const query = [...u.searchParams.keys()].join('&');
  return `${call.method} ${path}${query ? `?${query}` : ''}`;
}

/** Sends the preflight a browser sends before call from origin: {status, headers}. */
function preflight(call, origin, requestHeaders) {
  return new Promise((resolve, reject) => {
    const headers = { Origin: origin, 'Access-Control-Request-Method': call.method };
    if (requestHeaders) headers['Access-Control-Request-Headers'] = requestHeaders;
    const req = request(call.url, { method: 'OPTIONS', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A browser's verdict on a preflight's answer (Fetch standard): null when it goes on. */
function verdict({ status, headers }, origin, method, requestHeaders, credentials) {
  if (status < 200 || status > 299) return `preflight status ${status}`;
  const acao = headers['access-control-allow-origin'];
  if (!(acao === origin || (acao === '*' && !credentials))) return `Access-Control-Allow-Origin ${acao}`;
  if (credentials && headers['access-control-allow-credentials'] !== 'true') return 'no Access-Control-Allow-Credentials: true';
  const methods = (headers['access-control-allow-methods'] || '').split(',').map((s) => s.trim());
  if (!['GET', 'HEAD', 'POST'].includes(method) && !methods.includes(method)) return `method ${method} not allowed`;
  const allowed = (headers['access-control-allow-headers'] || '').split(',').map((s) => s.trim().toLowerCase());
  for (const h of requestHeaders.split(',').filter(Boolean)) {
    if (!allowed.includes(h) && !(allowed.includes('*') && !credentials && h !== 'authorization')) return `request header ${h} not allowed (${allowed})`;
  }
  return null;
}

// What DirectLineJS 0.15.x sends (src/directLine.ts, and rxjs 5's ajax,
// which adds X-Requested-With), per route; gateway/cors_test.go checks the
// same list in Go. A route has two entries when two of its calls differ.
const expected = {
  'POST /tokens/refresh': ['authorization,x-ms-bot-agent,x-requested-with'],
  'POST /conversations': ['authorization,content-type,x-ms-bot-agent,x-requested-with'],
  // startConversation given a conversationId; reconnectToConversation (WebSocket mode)
  'GET /conversations/{id}?watermark': ['authorization,content-type,x-ms-bot-agent,x-requested-with', 'authorization,x-ms-bot-agent,x-requested-with'],
  'POST /conversations/{id}/activities': ['authorization,content-type,x-ms-bot-agent,x-requested-with'],
  'GET /conversations/{id}/activities?watermark': ['authorization,x-ms-bot-agent,x-requested-with'],
  'POST /conversations/{id}/upload?userId': ['authorization,x-ms-bot-agent,x-requested-with'],
  'GET /session/getsessionid': ['authorization,content-type,x-ms-bot-agent,x-requested-with'],
};

check('CORS: every call DirectLineJS made is allowed from the page\'s origin, refused from another', {}, async (t) => {
  const seen = new Map(); // route + headers -> a call
  for (const c of calls) {
    if (!c.url.startsWith(base)) continue; // not dlsse's (an attachment's contentUrl)
    const key = `${route(c)} ${preflightHeaders(c.headers)}`;
    if (!seen.has(key)) seen.set(key, c);
  }
  const routes = new Set([...seen.values()].map(route));
  for (const r of Object.keys(expected)) assert.ok(routes.has(r), `DirectLineJS made no ${r} call: the tests above changed?`);
  for (const c of seen.values()) {
    const r = route(c);
    const requestHeaders = preflightHeaders(c.headers);
    const credentials = Boolean(c.credentials);
    t.diagnostic(`${r}: Access-Control-Request-Headers: ${requestHeaders}${credentials ? ' (withCredentials)' : ''}; x-ms-bot-agent: ${c.headers['x-ms-bot-agent']}`);
    assert.ok(expected[r] && expected[r].includes(requestHeaders), `${r} sent ${requestHeaders}: not what DirectLineJS is known to send (update gateway/cors.go, its test and this list)`);
    assert.equal(verdict(await preflight(c, APP_ORIGIN, requestHeaders), APP_ORIGIN, c.method, requestHeaders, credentials), null, `${r} from ${APP_ORIGIN}`);
    assert.notEqual(verdict(await preflight(c, OTHER_ORIGIN, requestHeaders), OTHER_ORIGIN, c.method, requestHeaders, credentials), null, `${r} from ${OTHER_ORIGIN}`);
  }
});
