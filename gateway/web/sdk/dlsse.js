// dlsse.js — Bot Framework Web Chat's `directLine` contract over dlsse's
// Server-Sent Events stream (EventSource) and Direct Line REST (fetch).
//
// No dependencies, no build step: an ES module a page imports as
// `/sdk/dlsse.js`. The design, and why each rule is what it is, is in
// docs/webchat-adapter.md (sections 1–3).
//
//   import { createDirectLine } from '/sdk/dlsse.js';
//   WebChat.renderWebChat({
//     directLine: createDirectLine({ domain: location.origin + '/v3/directline', token }),
//   }, document.getElementById('webchat'));

/**
 * Direct Line's connection states, as Web Chat reads them.
 * @readonly
 * @enum {number}
 */
export const ConnectionStatus = Object.freeze({
  Uninitialized: 0,
  Connecting: 1,
  Online: 2,
  ExpiredToken: 3,
  FailedToConnect: 4,
  Ended: 5,
});

const CLOSED = 2; // EventSource.CLOSED, without needing the global
const DEDUPE_IDS = 2000; // activity ids remembered to drop repeats
const STABLE_MS = 30000; // online this long: the backoff starts over
const POST_TIMEOUT_MS = 20000;
const UPLOAD_TIMEOUT_MS = 120000; // Web Chat waits 120 s for sends with attachments

// ---------------------------------------------------------------------------
// A minimal Observable: just what Web Chat calls (see the design doc §1).

/** @typedef {{ unsubscribe(): void, readonly closed: boolean }} Subscription */
/** @typedef {{ next?(v: any): void, error?(e: any): void, complete?(): void }} Observer */

function toObserver(observerOrNext, error, complete) {
  if (typeof observerOrNext === 'function' || observerOrNext == null) {
    return { next: observerOrNext, error, complete };
  }
  return observerOrNext;
}

/** A cold Observable: `subscribe(observer)` runs the producer each time. */
export class Observable {
  /** @param {(sink: Required<Observer>) => (void | (() => void))} producer */
  constructor(producer) {
    this._producer = producer;
  }

  /**
   * @param {Observer | ((v: any) => void)} [observerOrNext]
   * @param {(e: any) => void} [error]
   * @param {() => void} [complete]
   * @returns {Subscription}
   */
  subscribe(observerOrNext, error, complete) {
    const observer = toObserver(observerOrNext, error, complete);
    let closed = false;
    let teardown;
    const sub = {
      get closed() { return closed; },
      unsubscribe() {
        if (closed) return;
        closed = true;
        if (typeof teardown === 'function') teardown();
      },
    };
    const sink = {
      next: (v) => { if (!closed && observer.next) observer.next(v); },
      error: (e) => { if (closed) return; closed = true; if (observer.error) observer.error(e); },
      complete: () => { if (closed) return; closed = true; if (observer.complete) observer.complete(); },
    };
    teardown = this._producer(sink);
    // The producer may have finished synchronously, before teardown existed.
    if (closed && typeof teardown === 'function') teardown();
    return sub;
  }

  [Symbol.observable || '@@observable']() { return this; }
}

/**
 * A hot Observable with many subscribers. `onFirst`/`onLast` make it
 * ref-counted like rxjs `share()`: the first subscriber starts the source,
 * the last one leaving stops it. Late subscribers get no replay.
 */
export class Subject extends Observable {
  constructor({ onFirst, onLast } = {}) {
    super((sink) => {
      if (this._done) { sink.complete(); return undefined; }
      this._sinks.add(sink);
      if (this._sinks.size === 1 && onFirst) onFirst();
      return () => {
        if (!this._sinks.delete(sink)) return;
        if (this._sinks.size === 0 && onLast) onLast();
      };
    });
    this._sinks = new Set();
    this._done = false;
  }

  get observed() { return this._sinks.size > 0; }

  next(v) { for (const s of [...this._sinks]) s.next(v); }

  complete() {
    if (this._done) return;
    this._done = true;
    const sinks = [...this._sinks];
    this._sinks.clear();
    for (const s of sinks) s.complete();
  }
}

/** A Subject that remembers its value and gives it to each new subscriber. */
export class BehaviorSubject extends Observable {
  constructor(value) {
    super((sink) => {
      if (this._done) { sink.complete(); return undefined; }
      this._sinks.add(sink);
      sink.next(this._value);
      return () => { this._sinks.delete(sink); };
    });
    this._value = value;
    this._sinks = new Set();
    this._done = false;
  }

  get value() { return this._value; }

  getValue() { return this._value; }

  next(v) {
    if (this._done) return;
    this._value = v;
    for (const s of [...this._sinks]) s.next(v);
  }

  complete() {
    if (this._done) return;
    this._done = true;
    const sinks = [...this._sinks];
    this._sinks.clear();
    for (const s of sinks) s.complete();
  }
}

// ---------------------------------------------------------------------------
// Small helpers.

class HTTPError extends Error {
  constructor(status, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
  }
}

async function errorMessage(res) {
  try {
    const body = await res.json();
    if (body && body.error) return `${res.status} ${body.error.code}: ${body.error.message}`;
  } catch { /* not JSON: the status says enough */ }
  return `HTTP ${res.status}`;
}

/** Retry-After in ms (seconds or an HTTP date), or 0. */
function retryAfterMs(res, now) {
  const v = res && res.headers && res.headers.get('Retry-After');
  if (!v) return 0;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : 0;
}

/** Remembers the last `size` keys, for dropping repeated activities. */
class BoundedSet {
  constructor(size) { this._size = size; this._set = new Set(); }

  /** Adds key; false if it was already there. */
  add(key) {
    if (this._set.has(key)) return false;
    this._set.add(key);
    if (this._set.size > this._size) this._set.delete(this._set.values().next().value);
    return true;
  }
}

// ---------------------------------------------------------------------------

/**
 * @typedef {object} DirectLineSSEOptions
 * @property {string} domain Direct Line base through dlsse, e.g. `https://gw.example/v3/directline`.
 * @property {string} token A Direct Line token (from your token server or dlsse's token-server mode).
 * @property {string} [conversationId] Rejoin this conversation instead of starting one.
 * @property {string} [lastEventId] Resume the stream after this cursor (with conversationId).
 * @property {string} [userId] The user's id: sent when starting, forced onto posted activities.
 * @property {string} [locale] Sent when starting the conversation.
 * @property {number} [reconnectGraceMs=5000] How long a broken stream is hidden from Web Chat
 *   (it keeps status 2) before status 1 is shown. Web Chat cancels in-flight sends on 1.
 * @property {{base?: number, max?: number}} [backoff] Reconnect backoff in ms (full jitter).
 * @property {typeof fetch} [fetch] Injectable for tests.
 * @property {any} [EventSource] EventSource constructor; injectable for tests.
 * @property {typeof setTimeout} [setTimeout] Injectable for tests.
 * @property {typeof clearTimeout} [clearTimeout] Injectable for tests.
 * @property {() => number} [now] Clock in ms; injectable for tests.
 * @property {() => number} [random] In [0, 1); injectable for tests.
 */

/**
 * Web Chat's `directLine` object over dlsse's SSE stream.
 *
 * Members Web Chat uses: `activity$`, `connectionStatus$`, `postActivity`,
 * `end`, `referenceGrammarId`, `token`, `setUserId`. Extra: `dlsseStatus$`,
 * dlsse's own view of the link (`{state, reason, retryIn, link}`), which says
 * "reconnecting" honestly while Web Chat is kept at Online.
 */
export class DirectLineSSE {
  /** @param {DirectLineSSEOptions} options */
  constructor(options) {
    if (!options || !options.domain) throw new TypeError('dlsse: options.domain is required');
    if (!options.token) throw new TypeError('dlsse: options.token is required');
    const g = globalThis;
    this._fetch = options.fetch || g.fetch.bind(g);
    this._EventSource = options.EventSource || g.EventSource;
    this._setTimeout = options.setTimeout || g.setTimeout.bind(g);
    this._clearTimeout = options.clearTimeout || g.clearTimeout.bind(g);
    this._now = options.now || Date.now;
    this._random = options.random || Math.random;
    this._domain = options.domain.replace(/\/+$/, '');
    this._graceMs = options.reconnectGraceMs ?? 5000;
    this._backoff = { base: 1000, max: 30000, ...options.backoff };
    this._locale = options.locale;
    this._userId = options.userId;
    this._rejoin = Boolean(options.conversationId); // given: reconnect, not start

    /** The current token (refreshed in place). */
    this.token = options.token;
    /** @type {string | undefined} */
    this.conversationId = options.conversationId;
    /** @type {string | undefined} */
    this.referenceGrammarId = undefined;
    this._cursor = options.lastEventId || '';

    /** Web Chat's status (numbers of {@link ConnectionStatus}). */
    this.connectionStatus$ = new BehaviorSubject(ConnectionStatus.Uninitialized);
    /** dlsse's raw status: `{state, reason, retryIn, link}`, or null before the stream. */
    this.dlsseStatus$ = new BehaviorSubject(null);
    /** Incoming activities: hot; the first subscriber connects, the last one leaving disconnects. */
    this.activity$ = new Subject({
      onFirst: () => { this._start().catch(() => this._terminal(ConnectionStatus.FailedToConnect)); },
      onLast: () => this._stop(),
    });

    this._es = null;
    this._timers = new Set();
    this._seen = new BoundedSet(DEDUPE_IDS);
    this._queue = []; // activities held until Web Chat can take them
    this._flushing = false; // a flush is scheduled: keep queueing, in order
    this._running = false;
    this._final = false; // a terminal status was reached: never start again
    this._ended = false; // end() was called
    this._linkDown = false;
    this._graceTimer = null;
    this._graceOver = false; // link down longer than the grace, 1 withheld for a post
    this._inFlight = 0; // posts made and not answered yet, queued ones included
    this._postTurn = Promise.resolve(); // settles when the last post made was answered
    this._attempt = 0;
    this._retryIn = 0;
    this._stableTimer = null;
    this._retryTimer = null;
    this._refreshTimer = null;
    this._refreshDueAt = 0;
    this._refreshTried = false; // one refresh per auth failure, then 3
    this._probe = null; // AbortController of the probe fetch
  }

  // -- public API ----------------------------------------------------------

  /**
   * Posts an activity. The Observable emits the activity id and completes;
   * it emits `'retry'` when dlsse or Direct Line failed in a way the bot may
   * still have seen the activity (5xx, network, timeout): the echo decides.
   * It errors on a refusal (4xx). The POST is not aborted on unsubscribe.
   * Posts go out one at a time, in the order they were subscribed: each
   * waits for the answer to the one before (whatever it was), so the bot
   * gets a user's messages in the order they were sent.
   * @param {object} activity
   * @returns {Observable}
   */
  postActivity(activity) {
    return new Observable((sink) => {
      this._post(activity).then(
        (id) => { sink.next(id); sink.complete(); },
        (err) => sink.error(err),
      );
    });
  }

  /** Stops everything for good and reports Ended (5). Idempotent. */
  end() {
    if (this._ended) return;
    this._ended = true;
    this._teardown();
    this._clearAllTimers();
    this._queue = [];
    // A terminal status already reported stays (Web Chat calls end() after it).
    if (this.connectionStatus$.getValue() < ConnectionStatus.ExpiredToken) {
      this.connectionStatus$.next(ConnectionStatus.Ended);
    }
    this.activity$.complete();
    this.connectionStatus$.complete();
    this.dlsseStatus$.complete();
  }

  /**
   * Sets the user id before the conversation starts (Web Chat calls it
   * when given `userID`).
   * @param {string} userId
   */
  setUserId(userId) {
    if (this.connectionStatus$.getValue() === ConnectionStatus.Online) {
      throw new Error('dlsse: setUserId cannot be called once online');
    }
    this._userId = userId;
  }

  // -- connection lifecycle ------------------------------------------------

  /** First activity$ subscriber: start (or rejoin) and open the stream. */
  async _start() {
    if (this._running || this._final || this._ended) return;
    this._running = true;
    this._setStatus(ConnectionStatus.Connecting);
    if (this.conversationId && !this._rejoin) {
      // Restarted after the last subscriber left: just resume the stream.
      this._scheduleRefresh(Math.max(0, this._refreshDueAt - this._now()));
      this._openStream();
      return;
    }
    await this._startConversation();
  }

  async _startConversation() {
    const starting = !this._rejoin;
    let res;
    try {
      res = await this._request(this._rejoin ? 'GET' : 'POST',
        this._rejoin ? `/conversations/${encodeURIComponent(this.conversationId)}` : '/conversations',
        this._rejoin ? undefined : this._startBody());
    } catch {
      res = null; // network: try again after a backoff
    }
    if (!this._running) return;
    if (res && (res.status === 200 || res.status === 201)) {
      const body = await res.json();
      if (!this._running) return;
      this._rejoin = false;
      // A start's stream replays the conversation from its beginning,
      // named "~", as the streamUrl dlsse answered with says.
      if (starting && !this._cursor) this._cursor = '~';
      this.conversationId = body.conversationId || this.conversationId;
      if (body.token) this.token = body.token;
      this.referenceGrammarId = body.referenceGrammarId;
      if (body.expires_in) this._scheduleRefresh(body.expires_in * 500);
      this._openStream();
      return;
    }
    if (res && res.status >= 400 && res.status < 500 && res.status !== 429) {
      this._terminal(ConnectionStatus.FailedToConnect); // refused: Web Chat gives up
      return;
    }
    this._retryLater(() => this._startConversation(), retryAfterMs(res, this._now()));
  }

  _startBody() {
    const body = {};
    if (this._userId) body.user = { id: this._userId };
    if (this._locale) body.locale = this._locale;
    return Object.keys(body).length ? body : undefined;
  }

  /** Last activity$ subscriber left: close the stream, keep the state to resume. */
  _stop() {
    if (!this._running) return;
    this._teardown();
    this._clearAllTimers();
  }

  _teardown() {
    this._running = false;
    this._closeStream();
    if (this._probe) { this._probe.abort(); this._probe = null; }
  }

  _streamURL() {
    let url = `${this._domain}/conversations/${encodeURIComponent(this.conversationId)}/stream` +
      `?t=${encodeURIComponent(this.token)}`;
    if (this._cursor) url += `&lastEventId=${encodeURIComponent(this._cursor)}`;
    return url;
  }

  _openStream() {
    this._closeStream();
    const es = new this._EventSource(this._streamURL());
    this._es = es;
    // Events of a stream we already replaced are ignored.
    const mine = (fn) => (e) => { if (this._es === es) fn(e); };
    es.addEventListener('status', mine((e) => this._onStatus(e)));
    es.addEventListener('activity', mine((e) => this._onActivity(e)));
    es.addEventListener('error', mine((e) => this._onError(e, es)));
  }

  _closeStream() {
    if (this._es) { this._es.close(); this._es = null; }
  }

  // -- stream events -------------------------------------------------------

  _track(e) {
    // EventSource keeps the last non-empty id: itself; so do we.
    if (e.lastEventId) this._cursor = e.lastEventId;
  }

  _onStatus(e) {
    this._track(e);
    let st;
    try { st = JSON.parse(e.data); } catch { return; }
    this._retryIn = Number(st.retryIn) || 0;
    this.dlsseStatus$.next({ state: st.state, reason: st.reason, retryIn: st.retryIn, link: 'open' });
    switch (st.state) {
      case 'online': this._onOnline(); break;
      case 'ended': this._terminal(ConnectionStatus.Ended); break;
      default: this._trouble(); // connecting, reconnecting, unavailable
    }
  }

  _onOnline() {
    this._linkDown = false;
    this._graceOver = false;
    this._refreshTried = false;
    this._cancel('_graceTimer');
    this._cancel('_stableTimer');
    this._stableTimer = this._timer(() => { this._stableTimer = null; this._attempt = 0; }, STABLE_MS);
    if (this.connectionStatus$.getValue() !== ConnectionStatus.Online) {
      this._setStatus(ConnectionStatus.Online);
      // Web Chat subscribes its transcript several microtasks after it
      // sees 2: what is emitted in this tick would be lost.
      this._scheduleFlush();
    }
  }

  _onActivity(e) {
    this._track(e);
    let activity;
    try { activity = JSON.parse(e.data); } catch { return; }
    if (activity.id && !this._seen.add(activity.id)) return;
    if (this.connectionStatus$.getValue() === ConnectionStatus.Online && !this._flushing) {
      this.activity$.next(activity);
    } else {
      this._queue.push(activity);
    }
  }

  _onError(e, es) {
    if (typeof e.data === 'string') {
      // A server `event: error` also lands here: a final refusal by Direct
      // Line (expired token, conversation gone); the stream ends.
      this._serverError(e);
      return;
    }
    this.dlsseStatus$.next({ ...(this.dlsseStatus$.getValue() || {}), link: 'down' });
    if (es.readyState === CLOSED) {
      // The browser gave up (a non-200: proxy 502, 204, 401/403/404) and
      // hides the status: find it out with a probe, after a backoff.
      this._closeStream();
      this._trouble();
      this._retryLater(() => this._probeStream());
    } else {
      this._trouble(); // the browser reconnects by itself with Last-Event-ID
    }
  }

  _serverError(e) {
    this._track(e);
    let code = '';
    try { code = JSON.parse(e.data).error.code; } catch { /* unknown: probe tells */ }
    this._closeStream();
    this._trouble();
    if (code === 'TokenExpired') this._authFailed();
    else this._probeStream(); // the next attempt gets the real status
  }

  // -- status 2 vs 1: the grace period -------------------------------------

  /** The link is down (or not up yet). Web Chat hears of it only after the grace. */
  _trouble() {
    if (this.connectionStatus$.getValue() !== ConnectionStatus.Online) return; // still connecting: stays 1
    this._cancel('_stableTimer');
    if (this._linkDown) return;
    this._linkDown = true;
    const grace = Math.max(this._graceMs, this._retryIn ? this._retryIn + 2000 : 0);
    this._graceTimer = this._timer(() => {
      this._graceTimer = null;
      this._graceOver = true;
      this._maybeConnecting();
    }, grace);
  }

  _maybeConnecting() {
    // 1 cancels Web Chat's in-flight sends for good ("Send failed"), so it
    // waits for them: they do not need the stream.
    if (!this._linkDown || !this._graceOver || this._inFlight > 0 || !this._running) return;
    if (this.connectionStatus$.getValue() === ConnectionStatus.Online) {
      this._setStatus(ConnectionStatus.Connecting);
    }
  }

  _scheduleFlush() {
    this._flushing = true;
    this._timer(() => this._flush(), 0);
  }

  _flush() {
    this._flushing = false;
    const queued = this._queue;
    this._queue = [];
    for (const a of queued) this.activity$.next(a);
  }

  _setStatus(s) {
    if (this.connectionStatus$.getValue() !== s) this.connectionStatus$.next(s);
  }

  /** A final state: stop, deliver what was queued, then report it a macrotask later. */
  _terminal(status) {
    this._teardown();
    this._clearAllTimers();
    this._final = true;
    this._timer(() => {
      this._flush();
      this._timer(() => this.connectionStatus$.next(status), 0);
    }, 0);
  }

  // -- reconnecting a closed stream ----------------------------------------

  _backoffDelay() {
    const cap = Math.min(this._backoff.max, this._backoff.base * 2 ** this._attempt);
    this._attempt++;
    return Math.max(this._random() * cap, this._retryIn);
  }

  _retryLater(fn, atLeast = 0) {
    this._cancel('_retryTimer');
    this._retryTimer = this._timer(() => { this._retryTimer = null; fn(); },
      Math.max(this._backoffDelay(), atLeast));
  }

  /**
   * Asks for the stream with fetch to learn the status EventSource hides;
   * on 200 the fetch is aborted after the headers and an EventSource opens.
   */
  async _probeStream() {
    if (!this._running) return;
    const ctl = new AbortController();
    this._probe = ctl;
    let res = null;
    try {
      res = await this._fetch(this._streamURL(), {
        headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: ctl.signal,
      });
    } catch { /* network error (or aborted by end/stop) */ }
    ctl.abort();
    if (this._probe !== ctl || !this._running) return;
    this._probe = null;
    const status = res ? res.status : 0;
    if (status === 200) this._openStream();
    else if (status === 204 || status === 404) this._terminal(ConnectionStatus.Ended);
    else if (status === 401 || status === 403) this._authFailed();
    else if (status === 400) this._terminal(ConnectionStatus.FailedToConnect); // bad cursor: our bug
    else this._retryLater(() => this._probeStream(), retryAfterMs(res, this._now()));
  }

  /** 401/403/TokenExpired: one token refresh, then the stream again; else 3. */
  async _authFailed() {
    if (this._refreshTried) { this._terminal(ConnectionStatus.ExpiredToken); return; }
    this._refreshTried = true;
    const outcome = await this._refreshToken();
    if (!this._running) return;
    if (outcome === 'ok') this._probeStream();
    else if (outcome === 'refused') this._terminal(ConnectionStatus.ExpiredToken);
    else { this._refreshTried = false; this._retryLater(() => this._authFailed()); }
  }

  // -- token refresh -------------------------------------------------------

  _scheduleRefresh(ms) {
    this._cancel('_refreshTimer');
    this._refreshDueAt = this._now() + ms;
    this._refreshTimer = this._timer(() => { this._refreshTimer = null; this._plannedRefresh(); }, ms);
  }

  /** The timer at half the token's life: refresh, then move the stream onto the new token. */
  async _plannedRefresh() {
    const outcome = await this._refreshToken();
    if (!this._running) return;
    if (outcome === 'ok') {
      if (this._es) this._openStream(); // same cursor, new t=; status stays as it is
    } else if (outcome === 'failed') {
      this._scheduleRefresh(Math.min(this._backoff.max, this._backoff.base * 4));
    }
    // refused: the token is dead already; the next stream failure ends in 3.
  }

  /** @returns {Promise<'ok'|'refused'|'failed'>} */
  async _refreshToken() {
    let res;
    try {
      res = await this._request('POST', '/tokens/refresh');
    } catch {
      return 'failed';
    }
    if (res.status === 200) {
      const body = await res.json();
      if (body.token) this.token = body.token;
      if (body.expires_in) this._scheduleRefresh(body.expires_in * 500);
      return 'ok';
    }
    return res.status >= 400 && res.status < 500 && res.status !== 429 ? 'refused' : 'failed';
  }

  // -- posting -------------------------------------------------------------

  async _post(activity) {
    if (!this.conversationId) throw new Error('dlsse: postActivity before the conversation started');
    if (this._userId && activity.from && activity.from.id !== this._userId) {
      activity = { ...activity, from: { ...activity.from, id: this._userId } };
    }
    this._inFlight++;
    // Two POSTs in flight at once can reach the bot in either order (a
    // browser sends them on different connections): wait for our turn.
    const previous = this._postTurn;
    let answered;
    this._postTurn = new Promise((resolve) => { answered = resolve; });
    try {
      await previous;
      if (activity.type === 'message' && activity.attachments && activity.attachments.length) {
        return await this._postWithRetries(await this._uploadRequest(activity));
      }
      return await this._postWithRetries({ path: this._conversationPath('/activities'), body: activity });
    } finally {
      answered();
      this._inFlight--;
      this._maybeConnecting();
    }
  }

  _conversationPath(suffix) {
    return `/conversations/${encodeURIComponent(this.conversationId)}${suffix}`;
  }

  /**
   * Builds the multipart upload of a message with attachments, the way
   * DirectLineJS does: one `activity` part (the message without its
   * attachments) and one `file` part per attachment, read from its
   * contentUrl (Web Chat's blob: URLs). dlsse streams it to Direct Line.
   * @returns {Promise<{path: string, body: FormData}>}
   */
  async _uploadRequest(activity) {
    const { attachments, ...message } = activity;
    const form = new FormData();
    form.append('activity', new Blob([JSON.stringify(message)], { type: 'application/vnd.microsoft.activity' }));
    for (const a of attachments) {
      const res = await this._fetch(a.contentUrl);
      if (!res.ok) throw new Error(`dlsse: attachment ${a.name || a.contentUrl} could not be read (HTTP ${res.status})`);
      const blob = await res.blob();
      form.append('file', a.contentType ? new Blob([blob], { type: a.contentType }) : blob, a.name || 'file');
    }
    const user = message.from && message.from.id ? `?userId=${encodeURIComponent(message.from.id)}` : '';
    return { path: this._conversationPath('/upload') + user, body: form };
  }

  /** POSTs {path, body} (JSON or multipart) with the retry rules of postActivity. */
  async _postWithRetries({ path, body }) {
    const timeout = body instanceof FormData ? UPLOAD_TIMEOUT_MS : POST_TIMEOUT_MS;
    let refreshed = false;
    let waited = false;
    for (;;) {
      let res;
      try {
        res = await this._request('POST', path, body, timeout);
      } catch {
        return 'retry'; // network or timeout: it may have reached the bot; the echo decides
      }
      if (res.status === 200) return (await res.json()).id;
      if (res.status >= 500) return 'retry'; // never re-POST: it would duplicate
      if (res.status === 403 && !refreshed) {
        refreshed = true;
        if (await this._refreshToken() === 'ok') continue;
      } else if (res.status === 429 && !waited) {
        waited = true;
        await new Promise((r) => this._timer(r, retryAfterMs(res, this._now()) || 1000));
        continue;
      }
      throw new HTTPError(res.status, await errorMessage(res));
    }
  }

  // -- plumbing ------------------------------------------------------------

  /** A REST call to dlsse: only Authorization and Content-Type (CORS-safe). */
  async _request(method, path, body, timeoutMs) {
    const headers = { Authorization: `Bearer ${this.token}` };
    const init = { method, headers };
    if (body instanceof FormData) {
      init.body = body; // fetch sets multipart/form-data with its boundary
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let timer = null;
    if (timeoutMs) {
      const ctl = new AbortController();
      init.signal = ctl.signal;
      timer = this._timer(() => ctl.abort(), timeoutMs);
    }
    try {
      return await this._fetch(this._domain + path, init);
    } finally {
      if (timer) this._untime(timer);
    }
  }

  _timer(fn, ms) {
    const handle = this._setTimeout(() => { this._timers.delete(handle); fn(); }, ms);
    this._timers.add(handle);
    return handle;
  }

  _untime(handle) {
    this._clearTimeout(handle);
    this._timers.delete(handle);
  }

  _cancel(field) {
    if (this[field] != null) { this._untime(this[field]); this[field] = null; }
  }

  _clearAllTimers() {
    for (const h of this._timers) this._clearTimeout(h);
    this._timers.clear();
    this._graceTimer = this._stableTimer = this._retryTimer = this._refreshTimer = null;
    this._flushing = false;
  }
}

/**
 * Gets a token from a gateway in token-server mode (`directline_secret`
 * set): `POST {domain}/tokens/generate` without Authorization, allowed for
 * the page's origin by `token_origins`. A page with its own token service
 * does not need this.
 * @param {string} domain e.g. `https://gw.example/v3/directline`
 * @param {{fetch?: typeof fetch}} [options]
 * @returns {Promise<string>} the token
 */
export async function fetchToken(domain, options = {}) {
  const f = options.fetch || globalThis.fetch.bind(globalThis);
  const res = await f(domain.replace(/\/+$/, '') + '/tokens/generate', { method: 'POST', cache: 'no-store' });
  if (!res.ok) throw new HTTPError(res.status, await errorMessage(res));
  const { token } = await res.json();
  if (!token) throw new Error('dlsse: no token in the tokens/generate answer');
  return token;
}

/**
 * Creates Web Chat's `directLine` for a dlsse gateway.
 * @param {DirectLineSSEOptions} options
 * @returns {DirectLineSSE}
 */
export function createDirectLine(options) {
  return new DirectLineSSE(options);
}
