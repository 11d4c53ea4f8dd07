// Microsoft's DirectLineJS (npm botframework-directlinejs, pinned in
// package.json), unmodified, in Node: what a browser gives it, it gets
// here from packages. Node 20 has no XMLHttpRequest: xhr2 stands in for it
// (DirectLineJS's HTTP goes through rxjs 5's ajax, i.e. XMLHttpRequest);
// the `ws` package is its WebSocket. Both are wrapped only to record what
// DirectLineJS does with them; the library itself is not touched.

import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';

import XHR2 from 'xhr2';
import WS from 'ws';

/**
 * Every HTTP call DirectLineJS made: {method, url, headers, credentials,
 * status}, where
 * headers are exactly the ones it set (what a browser would put in a
 * preflight's Access-Control-Request-Headers) and status is filled in when
 * the answer arrived (0: none). `calls` emits 'answer' (call) then.
 */
export const calls = [];
calls.events = new EventEmitter();
calls.events.setMaxListeners(0);

class RecordingXMLHttpRequest extends XHR2 {
  open(method, url, ...rest) {
    this._call = { method, url: String(url), headers: {}, status: 0 };
    return super.open(method, url, ...rest);
  }

  setRequestHeader(name, value) {
    this._call.headers[name] = String(value);
    return super.setRequestHeader(name, value);
  }

  send(body) {
    const call = this._call;
    call.credentials = Boolean(this.withCredentials); // set by rxjs once the call is open
    calls.push(call);
    this.addEventListener('loadend', () => {
      call.status = this.status;
      calls.events.emit('answer', call);
    });
    if (typeof FormData !== 'undefined' && body instanceof FormData) {
      // An upload. xhr2 cannot send FormData; a browser encodes it as
      // multipart/form-data with a Content-Type of its own (not one of
      // the script's headers, so it is not recorded): do the same.
      const encoded = new Response(body);
      encoded.arrayBuffer().then((bytes) => {
        super.setRequestHeader('Content-Type', encoded.headers.get('content-type'));
        super.send(Buffer.from(bytes));
      });
      return undefined;
    }
    return super.send(body);
  }
}

/** Every WebSocket DirectLineJS opened; `sockets` emits 'created' (ws). */
export const sockets = [];
sockets.events = new EventEmitter();
sockets.events.setMaxListeners(0);

class RecordingWebSocket extends WS {
  constructor(url, ...rest) {
    super(url, ...rest);
    sockets.push(this);
    sockets.events.emit('created', this);
  }
}

globalThis.XMLHttpRequest = RecordingXMLHttpRequest;
globalThis.WebSocket = RecordingWebSocket;

const require = createRequire(import.meta.url);
const directLineJS = require('botframework-directlinejs');

export const { DirectLine, ConnectionStatus } = directLineJS;

/** The version of DirectLineJS under test. */
export const version = require('botframework-directlinejs/package.json').version;

// rxjs 5, DirectLineJS's own copy: its scheduler is one of DirectLine's
// options (services.scheduler).
const { async: asyncScheduler } = createRequire(require.resolve('botframework-directlinejs'))('rxjs/scheduler/async');

/**
 * DirectLineJS refreshes its token every 15 minutes: a fixed interval on
 * its scheduler. This scheduler is rxjs's own, except that a wait of
 * exactly 15 minutes takes refreshAfterMs, so the unmodified refresh loop
 * runs within a test (once: the interval's later ticks are rxjs's).
 */
export function fastRefreshScheduler(refreshAfterMs) {
  const FIFTEEN_MINUTES = 15 * 60 * 1000;
  return {
    now: () => asyncScheduler.now(),
    schedule: (work, delay, state) => asyncScheduler.schedule(work, delay === FIFTEEN_MINUTES ? refreshAfterMs : delay, state),
  };
}

/** Resolves when a promise-like condition holds or rejects at the deadline. */
function deadline(what, timeoutMs, describe) {
  let timer;
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describe ? `: ${describe()}` : ''}`)), timeoutMs);
  });
  return { p, clear: () => clearTimeout(timer) };
}

/**
 * What one DirectLine client received: its activity$ subscribed (which is
 * what starts DirectLineJS), every activity kept in order.
 */
export class Inbox {
  constructor(dl) {
    this.dl = dl;
    this.activities = [];
    this.events = new EventEmitter();
    this.events.setMaxListeners(0);
    this.sub = dl.activity$.subscribe(
      (a) => { this.activities.push(a); this.events.emit('change'); },
      (err) => { this.error = err; this.events.emit('change'); },
      () => { this.completed = true; this.events.emit('change'); },
    );
  }

  /** Resolves with pred's truthy result over the activities so far, once it has one. */
  waitFor(what, pred, timeoutMs = 15000) {
    const check = () => pred(this.activities);
    const first = check();
    if (first) return Promise.resolve(first);
    const d = deadline(what, timeoutMs, () => `${this.activities.length} activities: ${this.texts().slice(-8).join(' | ')}`);
    const met = new Promise((resolve, reject) => {
      const onChange = () => {
        const v = check();
        if (v) { this.events.off('change', onChange); resolve(v); }
        else if (this.error || this.completed) {
          this.events.off('change', onChange);
          reject(new Error(`activity$ ${this.error ? `failed: ${this.error.message || this.error}` : 'completed'} while waiting for ${what}`));
        }
      };
      this.events.on('change', onChange);
      d.p.catch(() => this.events.off('change', onChange));
    });
    return Promise.race([met, d.p]).finally(d.clear);
  }

  /** Message texts, in the order received. */
  texts() {
    return this.activities.filter((a) => a.type === 'message').map((a) => a.text);
  }

  close() {
    this.sub.unsubscribe();
    this.dl.end();
  }
}

/** Resolves when dl's connectionStatus$ reaches status. */
export function waitForStatus(dl, status, timeoutMs = 15000) {
  const d = deadline(`connection status ${status}`, timeoutMs, () => `it is ${dl.connectionStatus$.getValue()}`);
  let sub;
  const reached = new Promise((resolve) => {
    sub = dl.connectionStatus$.subscribe((s) => { if (s === status) resolve(); });
  });
  return Promise.race([reached, d.p]).finally(() => { d.clear(); sub.unsubscribe(); });
}

/** dl.postActivity as a promise of what it emits first (an id, or 'retry'). */
export function post(dl, activity) {
  return new Promise((resolve, reject) => {
    const sub = dl.postActivity(activity).subscribe(
      (v) => { resolve(v); Promise.resolve().then(() => sub && sub.unsubscribe()); },
      reject,
    );
  });
}

/** Resolves with the first recorded call answered that matches pred. */
export function waitForAnswer(what, pred, timeoutMs = 15000) {
  const done = calls.find((c) => c.status && pred(c));
  if (done) return Promise.resolve(done);
  const d = deadline(what, timeoutMs);
  const answered = new Promise((resolve) => {
    const on = (c) => { if (pred(c)) { calls.events.off('answer', on); resolve(c); } };
    calls.events.on('answer', on);
    d.p.catch(() => calls.events.off('answer', on));
  });
  return Promise.race([answered, d.p]).finally(d.clear);
}

/**
 * Resolves when the next WebSocket DirectLineJS creates has opened;
 * rejects with why when it fails instead (the stream URL answers the
 * upgrade with something else than 101, say). Call it before what makes
 * DirectLineJS open one.
 */
export function nextSocketOpens(timeoutMs = 15000) {
  const d = deadline('DirectLineJS to open a WebSocket', timeoutMs);
  const opened = new Promise((resolve, reject) => {
    sockets.events.once('created', (ws) => {
      ws.once('open', () => resolve(ws));
      // "Unexpected server response: 200" while dlsse answers an upgrade with SSE.
      ws.once('error', (err) => reject(new Error(`DirectLineJS's WebSocket to ${ws.url} failed: ${err.message}`)));
    });
  });
  const result = Promise.race([opened, d.p]).finally(d.clear);
  result.catch(() => {}); // awaited later, maybe after other steps: never "unhandled" meanwhile
  return result;
}
