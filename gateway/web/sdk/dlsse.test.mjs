// Unit tests for dlsse.js: node's built-in runner, no dependencies.
//   node --test gateway/web/sdk/
// EventSource, fetch and the timers are fakes injected through the options,
// so every test runs on a virtual clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createDirectLine, fetchToken, DirectLineSSE, ConnectionStatus as S } from './dlsse.js';

const DOMAIN = 'https://gw.test/v3/directline';

// Lets pending promise chains run (fetch answers, async functions).
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** A virtual clock: setTimeout/clearTimeout/now and advance(ms). */
function fakeClock() {
  let now = 0;
  let seq = 0;
  const timers = new Map();
  return {
    setTimeout: (fn, ms = 0) => {
      const id = ++seq;
      timers.set(id, { id, fn, at: now + Math.max(0, ms) });
      return id;
    },
    clearTimeout: (id) => { timers.delete(id); },
    now: () => now,
    get pending() { return timers.size; },
    /** Runs every timer due within ms, in order, settling promises between them. */
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        await settle();
        let next = null;
        for (const t of timers.values()) {
          if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
        }
        if (!next) break;
        timers.delete(next.id);
        now = next.at;
        next.fn();
      }
      now = end;
      await settle();
    },
  };
}

/** A fresh fake EventSource class, with its own list of instances. */
function fakeEventSourceClass() {
  return class FakeEventSource {
    static instances = [];

    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.closed = false;
      this.listeners = {};
      FakeEventSource.instances.push(this);
    }

    static get last() { return this.instances[this.instances.length - 1]; }

    addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }

    close() { this.readyState = 2; this.closed = true; }

    dispatch(type, ev) { for (const fn of this.listeners[type] || []) fn({ type, ...ev }); }

    // Server events: data is a string, as with a MessageEvent.
    status(state, { retryIn, id = '' } = {}) {
      this.readyState = 1;
      this.dispatch('status', { data: JSON.stringify({ state, retryIn }), lastEventId: id });
    }

    activity(a, id = '') { this.dispatch('activity', { data: JSON.stringify(a), lastEventId: id }); }

    serverError(code) { this.dispatch('error', { data: JSON.stringify({ error: { code, message: code } }), lastEventId: '' }); }

    // A transport error: no data; readyState says whether the browser retries.
    transportError(readyState) { this.readyState = readyState; this.dispatch('error', {}); }
  };
}

function response(status, body, headers = {}) {
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: new Headers(headers),
    json: async () => body,
  };
}

/**
 * A fake fetch: routes is a list of [method, pathRegExp, handler]; later
 * additions win. Each handler returns a response (or a promise of one).
 */
function fakeFetch() {
  const calls = [];
  const routes = [];
  const fetch = async (url, init = {}) => {
    const method = init.method || 'GET';
    const path = url.startsWith(DOMAIN) ? url.slice(DOMAIN.length) : url;
    calls.push({ url, path, method, init });
    for (let i = routes.length - 1; i >= 0; i--) {
      const [m, re, handler] = routes[i];
      if (m === method && re.test(path)) return handler({ url, path, init });
    }
    throw new TypeError('network error (no route)');
  };
  const on = (method, re, handler) => { routes.push([method, re, handler]); };
  return { fetch, calls, on };
}

/** A directLine on fakes, with a started conversation route. */
function setup(extra = {}) {
  const clock = fakeClock();
  const ES = fakeEventSourceClass();
  const net = fakeFetch();
  net.on('POST', /^\/conversations$/, () => response(201, {
    conversationId: 'c1', token: 'tok1', expires_in: 1800, referenceGrammarId: 'rg1',
  }));
  const dl = createDirectLine({
    domain: DOMAIN,
    token: 'gen-token',
    fetch: net.fetch,
    EventSource: ES,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5,
    ...extra,
  });
  const statuses = [];
  dl.connectionStatus$.subscribe({ next: (s) => statuses.push(s) });
  const activities = [];
  const sub = () => dl.activity$.subscribe({ next: (a) => activities.push(a) });
  return { dl, clock, ES, net, statuses, activities, sub };
}

/** Started and online, with the first flush done. */
async function online(extra) {
  const env = setup(extra);
  env.subscription = env.sub();
  await env.clock.advance(0);
  env.ES.last.status('online', { id: '5~aaaa' });
  await env.clock.advance(0);
  return env;
}

test('start: 1, then 2 on status online; activities only after the 2, not in its tick', async () => {
  const { dl, clock, ES, net, statuses, activities, sub } = setup({ userId: 'u1', locale: 'fr-FR' });
  assert.ok(dl instanceof DirectLineSSE);
  assert.deepEqual(statuses, [S.Uninitialized]);
  sub();
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting]);
  await clock.advance(0);

  const start = net.calls[0];
  assert.equal(start.method, 'POST');
  assert.equal(start.url, DOMAIN + '/conversations');
  assert.deepEqual(start.init.headers, { Authorization: 'Bearer gen-token', 'Content-Type': 'application/json' });
  assert.deepEqual(JSON.parse(start.init.body), { user: { id: 'u1' }, locale: 'fr-FR' });
  assert.equal(dl.token, 'tok1');
  assert.equal(dl.referenceGrammarId, 'rg1');
  assert.equal(ES.instances.length, 1);
  // A start's stream begins at the conversation's beginning, "~".
  assert.equal(ES.last.url, DOMAIN + '/conversations/c1/stream?t=tok1&lastEventId=~');

  const es = ES.last;
  es.status('connecting', { id: '~' });
  es.activity({ id: 'a1', type: 'message' }, '1~x');
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting]);
  es.status('online', { id: '1~x' });
  es.activity({ id: 'a2', type: 'message' }, '2~y'); // same tick as the 2
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting, S.Online]);
  assert.deepEqual(activities, [], 'nothing in the tick of the transition');
  await clock.advance(0);
  assert.deepEqual(activities.map((a) => a.id), ['a1', 'a2']);
  es.activity({ id: 'a3' }, '3~z');
  assert.deepEqual(activities.map((a) => a.id), ['a1', 'a2', 'a3']);
  assert.equal(dl.dlsseStatus$.getValue().state, 'online');
});

test('dedupe by activity id; activities without an id pass', async () => {
  const { ES, activities } = await online();
  const es = ES.last;
  es.activity({ id: 'a1', text: 'one' }, '6~a');
  es.activity({ id: 'a1', text: 'one again' }, '6~a');
  es.activity({ type: 'typing' });
  es.activity({ type: 'typing' });
  es.activity({ id: 'a2' }, '7~b');
  assert.deepEqual(activities.map((a) => a.id ?? a.type), ['a1', 'typing', 'typing', 'a2']);
});

test('postActivity sends the right request and emits the id, then completes', async () => {
  const { dl, net } = await online({ userId: 'u1' });
  net.on('POST', /^\/conversations\/c1\/activities$/, () => response(200, { id: 'c1|0001' }));
  const got = await new Promise((resolve, reject) => {
    const values = [];
    dl.postActivity({ type: 'message', text: 'hi', from: { id: 'other' } }).subscribe({
      next: (v) => values.push(v), error: reject, complete: () => resolve(values),
    });
  });
  assert.deepEqual(got, ['c1|0001']);
  const call = net.calls.at(-1);
  assert.equal(call.url, DOMAIN + '/conversations/c1/activities');
  assert.equal(call.method, 'POST');
  assert.deepEqual(call.init.headers, { Authorization: 'Bearer tok1', 'Content-Type': 'application/json' });
  assert.deepEqual(JSON.parse(call.init.body), { type: 'message', text: 'hi', from: { id: 'u1' } });

  // 5xx: 'retry' (the echo decides); 400: an error; function-style subscribe.
  net.on('POST', /activities$/, () => response(502, {}));
  const retry = await new Promise((resolve, reject) => dl.postActivity({ type: 'message' }).subscribe(resolve, reject));
  assert.equal(retry, 'retry');
  net.on('POST', /activities$/, () => response(400, { error: { code: 'BadArgument', message: 'no' } }));
  await assert.rejects(new Promise((resolve, reject) => dl.postActivity({ type: 'message' }).subscribe(resolve, reject)),
    (err) => err.status === 400 && /BadArgument/.test(err.message));
});

/** Subscribes to a post; the returned record fills in as it settles. */
function track(observable) {
  const r = { values: [], done: false, error: null };
  observable.subscribe({
    next: (v) => r.values.push(v),
    error: (e) => { r.error = e; r.done = true; },
    complete: () => { r.done = true; },
  });
  return r;
}

/** Routes activity posts to answers the test gives by hand, in call order. */
function heldPosts(net, re = /\/conversations\/c1\/(activities|upload)/) {
  const held = [];
  net.on('POST', re, ({ init }) => new Promise((resolve, reject) => {
    held.push({ resolve, init });
    if (init.signal) init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
  }));
  return held;
}

const postedTexts = (net) => net.calls
  .filter((c) => c.method === 'POST' && /\/conversations\/c1\/activities$/.test(c.path))
  .map((c) => JSON.parse(c.init.body).text);

test('posts go out one at a time, in order: each waits for the answer to the one before', async () => {
  const { dl, net } = await online();
  const held = heldPosts(net);
  const a = track(dl.postActivity({ type: 'message', text: 'a' }));
  const b = track(dl.postActivity({ type: 'message', text: 'b' }));
  const c = track(dl.postActivity({ type: 'message', text: 'c' }));
  await settle();
  assert.deepEqual(postedTexts(net), ['a'], 'b and c wait for the answer to a');

  held[0].resolve(response(200, { id: 'c1|a' }));
  await settle();
  assert.deepEqual(a.values, ['c1|a']);
  assert.ok(a.done);
  assert.deepEqual(postedTexts(net), ['a', 'b']);
  assert.ok(!b.done && !c.done);

  // A 5xx is 'retry' (never re-POSTed), and the next one goes.
  held[1].resolve(response(502, {}));
  await settle();
  assert.deepEqual(b.values, ['retry']);
  assert.deepEqual(postedTexts(net), ['a', 'b', 'c']);
  held[2].resolve(response(200, { id: 'c1|c' }));
  await settle();
  assert.deepEqual(c.values, ['c1|c']);
  assert.equal(net.calls.filter((x) => x.method === 'POST' && /activities$/.test(x.path)).length, 3, 'each posted once');
});

test('a post that fails, is refused or times out does not hold up the next', async () => {
  const { dl, clock, net } = await online();
  const held = heldPosts(net);
  const refused = track(dl.postActivity({ type: 'message', text: 'refused' }));
  const timesOut = track(dl.postActivity({ type: 'message', text: 'times out' }));
  const last = track(dl.postActivity({ type: 'message', text: 'last' }));
  await settle();
  held[0].resolve(response(400, { error: { code: 'BadArgument', message: 'no' } }));
  await settle();
  assert.equal(refused.error && refused.error.status, 400);
  assert.deepEqual(postedTexts(net), ['refused', 'times out']);

  // Nobody answers: the 20 s timeout aborts it ('retry'), then the next goes.
  await clock.advance(19999);
  assert.deepEqual(postedTexts(net), ['refused', 'times out']);
  await clock.advance(1);
  assert.deepEqual(timesOut.values, ['retry']);
  assert.deepEqual(postedTexts(net), ['refused', 'times out', 'last']);
  held[2].resolve(response(200, { id: 'c1|last' }));
  await settle();
  assert.deepEqual(last.values, ['c1|last']);
});

test('an upload takes its turn like any post', async () => {
  const { dl, net } = await online();
  net.on('GET', /^blob:/, () => ({ ok: true, status: 200, blob: async () => new Blob(['x']) }));
  const held = heldPosts(net);
  const before = track(dl.postActivity({ type: 'message', text: 'before' }));
  const upload = track(dl.postActivity({
    type: 'message', text: 'file', attachments: [{ contentUrl: 'blob:https://gw.test/f', name: 'f.txt' }],
  }));
  const after = track(dl.postActivity({ type: 'message', text: 'after' }));
  await settle();
  assert.equal(held.length, 1);
  held[0].resolve(response(200, { id: 'c1|before' }));
  await settle();
  assert.equal(held.length, 2);
  assert.ok(held[1].init.body instanceof FormData, 'the upload is second');
  held[1].resolve(response(200, { id: 'c1|file' }));
  await settle();
  assert.equal(held.length, 3);
  held[2].resolve(response(200, { id: 'c1|after' }));
  await settle();
  assert.deepEqual([before, upload, after].map((r) => r.values[0]), ['c1|before', 'c1|file', 'c1|after']);
  assert.deepEqual(postedTexts(net), ['before', 'after']);
});

test('posts waiting their turn also keep the 2', async () => {
  const { dl, clock, ES, net, statuses } = await online();
  const held = heldPosts(net);
  const first = track(dl.postActivity({ type: 'message', text: 'first' }));
  const second = track(dl.postActivity({ type: 'message', text: 'second' }));
  await settle();
  ES.last.transportError(0);
  await clock.advance(10000);
  held[0].resolve(response(200, { id: 'c1|1' }));
  await settle();
  assert.ok(first.done);
  assert.equal(statuses.at(-1), S.Online, 'the second post is still in flight');
  held[1].resolve(response(200, { id: 'c1|2' }));
  await settle();
  assert.ok(second.done);
  assert.equal(statuses.at(-1), S.Connecting);
});

test('grace: trouble shorter than the grace shows no 1; longer shows 1, then 2 on online', async () => {
  const { clock, ES, statuses, activities } = await online();
  const es = ES.last;
  es.transportError(0); // the browser reconnects by itself
  await clock.advance(4000);
  es.status('online', { id: '5~aaaa' });
  await clock.advance(20000);
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting, S.Online]);
  assert.equal(ES.instances.length, 1, 'no new EventSource for a CONNECTING error');

  es.status('reconnecting', { retryIn: 1000 });
  await clock.advance(4999);
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting, S.Online]);
  await clock.advance(1);
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting, S.Online, S.Connecting]);
  es.activity({ id: 'late' }, '9~c'); // held while Web Chat is reconnecting
  assert.deepEqual(activities, []);
  es.status('online', { id: '9~c' });
  assert.deepEqual(statuses.at(-1), S.Online);
  assert.deepEqual(activities, []);
  await clock.advance(0);
  assert.deepEqual(activities.map((a) => a.id), ['late']);
});

test('no 1 while a post is in flight; 1 once it is done', async () => {
  const { dl, clock, ES, net, statuses } = await online();
  let answer;
  net.on('POST', /activities$/, () => new Promise((r) => { answer = r; }));
  let done = false;
  dl.postActivity({ type: 'message' }).subscribe({ complete: () => { done = true; } });
  await settle();
  ES.last.transportError(0);
  await clock.advance(10000);
  assert.equal(statuses.at(-1), S.Online, 'a post in flight keeps the 2');
  answer(response(200, { id: 'x' }));
  await settle();
  assert.ok(done);
  assert.equal(statuses.at(-1), S.Connecting);
});

test('CLOSED: back off, probe, then a new EventSource with lastEventId and the current token', async () => {
  const { clock, ES, net, statuses } = await online();
  const es = ES.last;
  es.activity({ id: 'a1' }, '12~abcd');
  let probe;
  net.on('GET', /\/stream\?/, ({ init }) => { probe = init; return response(200); });
  es.transportError(2); // e.g. a proxy's 502
  assert.ok(es.closed);
  await clock.advance(499); // random 0.5 × base 1000
  assert.equal(probe, undefined);
  await clock.advance(1);
  assert.deepEqual(probe.headers, { Accept: 'text/event-stream' });
  assert.equal(probe.cache, 'no-store');
  assert.ok(probe.signal.aborted, 'the probe is aborted after the headers');
  assert.equal(ES.instances.length, 2);
  assert.equal(ES.last.url, DOMAIN + '/conversations/c1/stream?t=tok1&lastEventId=12~abcd');
  ES.last.status('online', { id: '12~abcd' });
  await clock.advance(0);
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting, S.Online], 'shorter than the grace: no 1');
});

test('CLOSED and the probe keeps failing: backoff grows, then the stream comes back', async () => {
  const { clock, ES, net } = await online();
  let probes = 0;
  net.on('GET', /\/stream\?/, () => { probes++; return response(probes < 3 ? 502 : 200); });
  ES.last.transportError(2);
  await clock.advance(500); // 0.5 × 1000
  assert.equal(probes, 1);
  await clock.advance(999); // 0.5 × 2000
  assert.equal(probes, 1);
  await clock.advance(1);
  assert.equal(probes, 2);
  await clock.advance(2000); // 0.5 × 4000
  assert.equal(probes, 3);
  assert.equal(ES.instances.length, 2);
});

test('204 on the probe ends (5); so does status ended', async () => {
  const a = await online();
  a.net.on('GET', /\/stream\?/, () => response(204));
  a.ES.last.transportError(2);
  await a.clock.advance(1000);
  assert.equal(a.statuses.at(-1), S.Ended);
  assert.equal(a.clock.pending, 0);

  const b = await online();
  b.ES.last.activity({ type: 'endOfConversation', id: 'eoc' }, '20~e');
  b.ES.last.status('ended', { id: '20~e' });
  assert.ok(b.ES.last.closed);
  await b.clock.advance(0);
  assert.deepEqual(b.activities.map((x) => x.id), ['eoc']);
  assert.equal(b.statuses.at(-1), S.Ended);
  assert.equal(b.ES.instances.length, 1);
});

test('403 on the probe: one refresh, then the stream with the new token', async () => {
  const { dl, clock, ES, net, statuses } = await online();
  net.on('GET', /\/stream\?t=tok1/, () => response(403));
  net.on('GET', /\/stream\?t=tok2/, () => response(200));
  net.on('POST', /^\/tokens\/refresh$/, ({ init }) => {
    assert.equal(init.headers.Authorization, 'Bearer tok1');
    return response(200, { token: 'tok2', expires_in: 1800 });
  });
  ES.last.transportError(2);
  await clock.advance(500);
  assert.equal(dl.token, 'tok2');
  assert.equal(ES.instances.length, 2);
  assert.match(ES.last.url, /\?t=tok2&lastEventId=5~aaaa$/);
  ES.last.status('online');
  await clock.advance(0);
  assert.equal(statuses.at(-1), S.Online);
});

test('403 on the probe and the refresh refused: 3', async () => {
  const { clock, ES, net, statuses } = await online();
  net.on('GET', /\/stream\?/, () => response(403));
  net.on('POST', /^\/tokens\/refresh$/, () => response(403, { error: { code: 'TokenExpired' } }));
  ES.last.transportError(2);
  await clock.advance(500);
  assert.equal(statuses.at(-1), S.ExpiredToken);
  assert.equal(ES.instances.length, 1);
  assert.equal(clock.pending, 0);
});

test('403 again after a refresh that succeeded: 3, no loop', async () => {
  const { clock, ES, net, statuses } = await online();
  net.on('GET', /\/stream\?/, () => response(403));
  net.on('POST', /^\/tokens\/refresh$/, () => response(200, { token: 'tok2', expires_in: 1800 }));
  ES.last.transportError(2);
  await clock.advance(500);
  assert.equal(statuses.at(-1), S.ExpiredToken);
  assert.equal(net.calls.filter((c) => c.path === '/tokens/refresh').length, 1);
});

test('server event: error TokenExpired is not a transport error: refresh, then resume', async () => {
  const { dl, clock, ES, net, statuses } = await online();
  net.on('POST', /^\/tokens\/refresh$/, () => response(200, { token: 'tok2', expires_in: 1800 }));
  net.on('GET', /\/stream\?/, () => response(200));
  const es = ES.last;
  es.serverError('TokenExpired');
  assert.ok(es.closed);
  await clock.advance(0);
  assert.equal(dl.token, 'tok2');
  assert.equal(ES.instances.length, 2);
  assert.match(ES.last.url, /\?t=tok2&lastEventId=5~aaaa$/);
  assert.equal(statuses.at(-1), S.Online);
});

test('server event: error TokenExpired with the refresh refused: 3', async () => {
  const { clock, ES, net, statuses } = await online();
  net.on('POST', /^\/tokens\/refresh$/, () => response(403));
  ES.last.serverError('TokenExpired');
  await clock.advance(0);
  assert.equal(statuses.at(-1), S.ExpiredToken);
});

test('start refused: 4', async () => {
  const { clock, net, statuses, sub } = setup();
  net.on('POST', /^\/conversations$/, () => response(403, { error: { code: 'BadArgument' } }));
  sub();
  await clock.advance(0);
  assert.deepEqual(statuses, [S.Uninitialized, S.Connecting, S.FailedToConnect]);
});

test('the token refresh timer swaps the stream onto the new token at the cursor', async () => {
  const { dl, clock, ES, net, statuses } = await online();
  const es = ES.last;
  es.activity({ id: 'a1' }, '30~f');
  const auths = [];
  net.on('POST', /^\/tokens\/refresh$/, ({ init }) => {
    auths.push(init.headers.Authorization);
    return response(200, { token: `tok${auths.length + 1}`, expires_in: 1800 });
  });
  await clock.advance(899_999);
  assert.equal(ES.instances.length, 1);
  await clock.advance(1);
  assert.equal(dl.token, 'tok2');
  assert.ok(es.closed);
  assert.equal(ES.instances.length, 2);
  assert.equal(ES.last.url, DOMAIN + '/conversations/c1/stream?t=tok2&lastEventId=30~f');
  assert.equal(statuses.at(-1), S.Online, 'a planned swap keeps the 2');
  // Events of the old stream no longer count.
  es.activity({ id: 'ghost' }, '31~g');
  ES.last.status('online');
  await clock.advance(900_000);
  assert.deepEqual(auths, ['Bearer tok1', 'Bearer tok2']);
  assert.equal(ES.instances.length, 3);
  assert.equal(ES.last.url, DOMAIN + '/conversations/c1/stream?t=tok3&lastEventId=30~f');
});

test('end() closes everything, clears timers, reports 5 and completes', async () => {
  const { dl, clock, ES, statuses } = await online();
  let completed = 0;
  dl.activity$.subscribe({ complete: () => completed++ });
  dl.connectionStatus$.subscribe({ complete: () => completed++ });
  ES.last.transportError(0); // grace timer running
  assert.ok(clock.pending > 0);
  dl.end();
  dl.end(); // idempotent
  assert.ok(ES.last.closed);
  assert.equal(clock.pending, 0);
  assert.equal(statuses.at(-1), S.Ended);
  assert.equal(statuses.filter((s) => s === S.Ended).length, 1);
  assert.equal(completed, 2);
});

test('the last activity$ subscriber leaving stops; a new one resumes at the cursor', async () => {
  const env = await online();
  const { dl, clock, ES, net } = env;
  ES.last.activity({ id: 'a1' }, '40~h');
  const second = dl.activity$.subscribe(() => {});
  env.subscription.unsubscribe();
  assert.equal(env.subscription.closed, true);
  assert.ok(!ES.last.closed, 'one subscriber left');
  second.unsubscribe();
  assert.ok(ES.last.closed);
  assert.equal(clock.pending, 0, 'refresh and other timers stopped');

  dl.activity$.subscribe(() => {});
  await clock.advance(0);
  assert.equal(net.calls.filter((c) => c.path === '/conversations').length, 1, 'no second start');
  assert.equal(ES.instances.length, 2);
  assert.equal(ES.last.url, DOMAIN + '/conversations/c1/stream?t=tok1&lastEventId=40~h');
});

test('rejoining a given conversation reconnects with GET and resumes from lastEventId', async () => {
  const { clock, ES, net, sub } = setup({ conversationId: 'c9', lastEventId: '7~q' });
  net.on('GET', /^\/conversations\/c9$/, () => response(200, { conversationId: 'c9', token: 'tok9', expires_in: 1800 }));
  sub();
  await clock.advance(0);
  assert.equal(net.calls[0].method, 'GET');
  assert.equal(net.calls[0].init.body, undefined);
  assert.deepEqual(net.calls[0].init.headers, { Authorization: 'Bearer gen-token' });
  assert.equal(ES.last.url, DOMAIN + '/conversations/c9/stream?t=tok9&lastEventId=7~q');
});

test('a message with attachments is uploaded as multipart: the activity part, then one file part each', async () => {
  const { dl, net } = await online({ userId: 'u1' });
  net.on('GET', /^blob:/, ({ url }) => ({ ok: true, status: 200, blob: async () => new Blob([`bytes of ${url}`]) }));
  net.on('POST', /^\/conversations\/c1\/upload/, () => response(200, { id: 'c1|0002' }));
  const id = await new Promise((resolve, reject) => dl.postActivity({
    type: 'message', text: 'see attached', from: { id: 'u1' },
    attachments: [
      { contentType: 'image/png', contentUrl: 'blob:https://gw.test/one', name: 'one.png' },
      { contentUrl: 'blob:https://gw.test/two', name: 'two.txt' },
    ],
  }).subscribe(resolve, reject));
  assert.equal(id, 'c1|0002');

  const call = net.calls.at(-1);
  assert.equal(call.url, DOMAIN + '/conversations/c1/upload?userId=u1');
  assert.deepEqual(call.init.headers, { Authorization: 'Bearer tok1' }, 'fetch sets the multipart Content-Type');
  const form = call.init.body;
  assert.ok(form instanceof FormData);
  const activity = form.get('activity');
  assert.equal(activity.type, 'application/vnd.microsoft.activity');
  assert.deepEqual(JSON.parse(await activity.text()), { type: 'message', text: 'see attached', from: { id: 'u1' } });
  const files = form.getAll('file');
  assert.deepEqual(files.map((f) => f.name), ['one.png', 'two.txt']);
  assert.equal(files[0].type, 'image/png');
  assert.equal(await files[1].text(), 'bytes of blob:https://gw.test/two');

  // An attachment that cannot be read fails the send, with nothing posted.
  const before = net.calls.length;
  net.on('GET', /^blob:/, () => ({ ok: false, status: 404 }));
  await assert.rejects(new Promise((resolve, reject) => dl.postActivity({
    type: 'message', attachments: [{ contentUrl: 'blob:https://gw.test/gone', name: 'gone' }],
  }).subscribe(resolve, reject)), /gone could not be read/);
  assert.equal(net.calls.slice(before).filter((c) => c.method === 'POST').length, 0);
});

test('fetchToken: POST tokens/generate without Authorization; errors carry the status', async () => {
  const net = fakeFetch();
  net.on('POST', /^\/tokens\/generate$/, () => response(200, { token: 'gen', conversationId: 'c9' }));
  assert.equal(await fetchToken(DOMAIN + '/', { fetch: net.fetch }), 'gen');
  assert.equal(net.calls[0].url, DOMAIN + '/tokens/generate');
  assert.equal(net.calls[0].init.headers, undefined);
  net.on('POST', /^\/tokens\/generate$/, () => response(403, { error: { code: 'Forbidden', message: 'origin not allowed' } }));
  await assert.rejects(fetchToken(DOMAIN, { fetch: net.fetch }), (err) => err.status === 403 && /origin not allowed/.test(err.message));
});
