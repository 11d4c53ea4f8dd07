// Process helpers shared by the end-to-end tests that run dlsse and the
// Direct Line fake as real processes (test/browser, test/directlinejs):
// build the binaries, start processes and keep their output, wait for a
// line they print, stop them, and talk to the fake's control API. Node
// built-ins only: each test directory has its own package.json.

import { spawn, execFileSync } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const repo = resolve(import.meta.dirname, '../..');

/** A free TCP port on 127.0.0.1 (the kernel's pick, released at once). */
export async function freePort() {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * Polls check() until it returns a truthy value or the deadline passes.
 * Only for conditions with no event to wait on (another program's port
 * accepting connections); a line a process prints is waitForLine's.
 */
export async function until(what, check, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Processes started for a test: every one is stopped by stopAll, and the
 * last lines of each one's output are kept for dump(). Binaries and files
 * go to a fresh temporary directory, `dir`.
 */
export class Processes {
  constructor(prefix = 'dlsse-e2e-') {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.procs = new Map(); // name -> {child, exited}
    this.logs = new Map(); // name -> collected output lines
    this.lines = new EventEmitter(); // 'line' (name, line), 'exit' (name)
    this.lines.setMaxListeners(0);
  }

  /** Builds cmd/dlsse and cmd/directline-fake into the temporary directory. */
  build() {
    const bin = join(this.dir, 'bin');
    execFileSync('go', ['build', '-o', bin + '/', './cmd/dlsse', './cmd/directline-fake'], { cwd: repo, stdio: 'inherit' });
    this.dlsseBin = join(bin, 'dlsse');
    this.fakeBin = join(bin, 'directline-fake');
  }

  /** Starts a process; its output is kept (printed on failure by dump()). */
  start(name, cmd, args, opts = {}) {
    const child = spawn(cmd, args, { cwd: opts.cwd || this.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    // A restarted process keeps adding to the same log.
    const lines = this.logs.get(name) || [];
    this.logs.set(name, lines);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (l) => {
        lines.push(l);
        if (lines.length > 2000) lines.shift();
        this.lines.emit('line', name, l);
      });
    }
    // A program that cannot start emits 'error' instead: an exit all the same.
    const exited = once(child, 'exit').catch(() => {});
    exited.then(() => this.lines.emit('exit', name, child));
    this.procs.set(name, { child, exited });
    return child;
  }

  /**
   * Resolves with the first line of name's output, from now on, for which
   * match returns a truthy value (that value); rejects when the process
   * exits first or after timeoutMs.
   */
  waitForLine(name, match, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const done = (fn, v) => {
        clearTimeout(timer);
        this.lines.off('line', onLine);
        this.lines.off('exit', onExit);
        fn(v);
      };
      const onLine = (n, l) => {
        if (n !== name) return;
        let v;
        try { v = match(l); } catch { v = undefined; }
        if (v) done(resolve, v);
      };
      const onExit = (n, child) => {
        if (n === name) done(reject, new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before printing the line awaited`));
      };
      const timer = setTimeout(() => done(reject, new Error(`timed out waiting for a line from ${name}`)), timeoutMs);
      this.lines.on('line', onLine);
      this.lines.on('exit', onExit);
    });
  }

  /** Stops one process (signal, then SIGKILL after 10 s) and waits for it. */
  async stop(name, signal = 'SIGTERM') {
    const p = this.procs.get(name);
    if (!p) return;
    this.procs.delete(name);
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill(signal);
      const t = setTimeout(() => p.child.kill('SIGKILL'), 10000);
      await p.exited;
      clearTimeout(t);
    }
  }

  async stopAll() {
    await Promise.all([...this.procs.keys()].map((n) => this.stop(n)));
  }

  /** The last lines of every process's output, for a failing test. */
  dump() {
    return [...this.logs].map(([n, lines]) => `--- ${n}\n${lines.slice(-40).join('\n')}`).join('\n');
  }

  /**
   * Starts the Direct Line fake (as 'fake') on free loopback ports with
   * args, and returns its hello line ({url, control, secret}).
   */
  async startFake(args = []) {
    const hello = this.waitForLine('fake', (l) => (l.startsWith('{') ? JSON.parse(l) : null));
    this.start('fake', this.fakeBin, args);
    this.fake = await hello;
    return this.fake;
  }

  /**
   * Starts dlsse (as name) with args, which must include -listen, and
   * resolves with its base URL once it accepts connections (its "dlsse
   * serving" log line, printed after it bound the port; -listen
   * 127.0.0.1:0 lets the kernel pick one).
   */
  async startDlsse(args, name = 'dlsse', opts = {}) {
    const serving = this.waitForLine(name, (l) => {
      const e = JSON.parse(l);
      return e.message === 'dlsse serving' ? e.listen : null;
    });
    this.start(name, this.dlsseBin, args, { cwd: repo, ...opts });
    return `http://${await serving}`;
  }

  /** A call to the fake's control API (cmd/directline-fake -h). */
  async control(method, path, body) {
    const res = await fetch(this.fake.control + path, {
      method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`control ${method} ${path}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? null : res.json();
  }
}
