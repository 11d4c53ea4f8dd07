// Process harness of the browser end-to-end test: builds dlsse and the
// Direct Line fake, runs them with nginx (the shipped configs/nginx.conf)
// and squid (a WebSocket-blocking corporate proxy, configured here) on
// loopback, and tears everything down. Nothing here knows about browsers;
// e2e.test.mjs drives Chromium through it.

import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const repo = resolve(import.meta.dirname, '../..');

/** Lifetime of the fake's tokens, in seconds. */
export const TOKEN_TTL_S = 16;

/** Fails with a message naming what is missing, instead of a cryptic ENOENT. */
export function requireTools(...tools) {
  const missing = tools.filter((t) => !existsSync(t));
  if (missing.length) {
    throw new Error(`missing ${missing.join(', ')}: ./scripts/test installs them (apt-get install chromium squid nginx)`);
  }
}

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
 * For conditions with no event to wait on (a port accepting connections).
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

/** The harness: every process it starts is stopped by stopAll. */
export class Harness {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'dlsse-e2e-'));
    chmodSync(this.dir, 0o777); // squid's workers run as user proxy
    this.procs = new Map(); // name -> {child, exited}
    this.logs = new Map(); // name -> collected output lines
  }

  /** Builds cmd/dlsse and cmd/directline-fake into the temp dir. */
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
      createInterface({ input: stream }).on('line', (l) => { lines.push(l); if (lines.length > 2000) lines.shift(); });
    }
    const exited = once(child, 'exit');
    this.procs.set(name, { child, exited });
    return child;
  }

  /** Stops one process (SIGTERM, then SIGKILL after 10 s) and waits for it. */
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

  /** Starts the Direct Line fake and returns its hello ({url, control, secret}). */
  async startFake() {
    // Tokens live TOKEN_TTL_S: short, so the pages refresh theirs (at half
    // life) and outlive the first one while the test runs.
    this.start('fake', this.fakeBin, ['-keepalive', '2s', '-token-ttl', `${TOKEN_TTL_S}s`]);
    const hello = await until('directline-fake hello line', () => this.logs.get('fake').find((l) => l.startsWith('{')));
    this.fake = JSON.parse(hello);
    return this.fake;
  }

  /**
   * Starts dlsse on its fixed port (so a restart keeps nginx's upstream),
   * in token-server mode with the demo pages, behind nginx.
   */
  async startDlsse() {
    this.dlssePort ||= await freePort();
    this.start('dlsse', this.dlsseBin, [
      '-listen', `127.0.0.1:${this.dlssePort}`,
      '-upstream-url', this.fake.url,
      '-directline-secret', this.fake.secret,
      '-token-origins', '*',
      '-demo-pages',
      '-webchat-bundle', join(repo, 'third_party/botframework-webchat/webchat.js'),
      '-trusted-proxies', '127.0.0.1',
      '-heartbeat', '2s',
      '-retry', '1500ms',
      '-shutdown-jitter', '500ms',
      '-log-level', 'info',
    ], { cwd: repo });
    await until('dlsse /readyz', async () => (await fetch(`http://127.0.0.1:${this.dlssePort}/readyz`)).ok);
  }

  /** nginx with the shipped configs/nginx.conf, pointed at this dlsse. */
  async startNginx() {
    this.nginxPort = await freePort();
    const prefix = join(this.dir, 'nginx');
    mkdirSync(prefix, { recursive: true });
    let conf = readFileSync(join(repo, 'configs/nginx.conf'), 'utf8');
    const edits = [
      ['worker_processes auto;', 'worker_processes 1;'],
      ['worker_connections 4096;', 'worker_connections 512;'],
      ['server 127.0.0.1:8080;', `server 127.0.0.1:${this.dlssePort};`],
      ['listen 8081;', `listen 127.0.0.1:${this.nginxPort};`],
      // An access log without the query (the stream URL carries the
      // token), but with what resume uses: the Last-Event-ID header.
      ['access_log off;', 'log_format e2e \'$request_method $uri $status lei="$http_last_event_id" q_lei="$arg_lastEventId"\';\n    access_log access.log e2e;'],
    ];
    for (const [from, to] of edits) {
      if (!conf.includes(from)) throw new Error(`configs/nginx.conf no longer contains ${JSON.stringify(from)}: update the browser test`);
      conf = conf.replace(from, to);
    }
    writeFileSync(join(prefix, 'nginx.conf'), conf);
    this.start('nginx', '/usr/sbin/nginx', ['-e', 'stderr', '-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;']);
    this.nginxLog = join(prefix, 'access.log');
    this.origin = `http://127.0.0.1:${this.nginxPort}`;
    await until('nginx', async () => (await fetch(this.origin + '/healthz')).ok);
  }

  /** HAProxy with the shipped configs/haproxy.cfg, pointed at this dlsse. */
  async startHaproxy() {
    const port = await freePort();
    const d = join(this.dir, 'haproxy');
    mkdirSync(d, { recursive: true });
    let conf = readFileSync(join(repo, 'configs/haproxy.cfg'), 'utf8');
    const edits = [
      ['maxconn 20000', 'maxconn 500'],
      ['bind :8081', `bind 127.0.0.1:${port}`],
    ];
    for (const [from, to] of edits) {
      if (!conf.includes(from)) throw new Error(`configs/haproxy.cfg no longer contains ${JSON.stringify(from)}: update the browser test`);
      conf = conf.replace(from, to);
    }
    if (!conf.includes('127.0.0.1:8080')) throw new Error('configs/haproxy.cfg no longer points at 127.0.0.1:8080: update the browser test');
    conf = conf.replaceAll('127.0.0.1:8080', `127.0.0.1:${this.dlssePort}`);
    writeFileSync(join(d, 'haproxy.cfg'), conf);
    this.start('haproxy', '/usr/sbin/haproxy', ['-db', '-f', join(d, 'haproxy.cfg')]);
    const origin = `http://127.0.0.1:${port}`;
    await until('haproxy', async () => (await fetch(origin + '/healthz')).ok);
    return origin;
  }

  /**
   * squid as the corporate proxy that breaks WebSockets: plain HTTP to
   * loopback passes, CONNECT tunnels and Upgrade: websocket are denied,
   * anything off the machine (a CDN) is denied and logged.
   */
  async startSquid() {
    this.squidPort = await freePort();
    const d = join(this.dir, 'squid');
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o777);
    writeFileSync(join(d, 'squid.conf'), [
      `http_port 127.0.0.1:${this.squidPort}`,
      `pid_filename ${d}/squid.pid`,
      `access_log stdio:${d}/access.log squid`,
      `cache_log ${d}/cache.log`,
      `coredump_dir ${d}`,
      'cache deny all',
      'shutdown_lifetime 0 seconds',
      'acl lo_src src 127.0.0.1/32',
      'acl lo_dst dst 127.0.0.1/32',
      'acl CONNECT method CONNECT',
      'acl ws_upgrade req_header Upgrade -i websocket',
      '# Refuse protocol upgrades outright (Squid 5 would only strip the header).',
      'http_upgrade_request_protocols WebSocket deny all',
      'http_upgrade_request_protocols OTHER deny all',
      '# No tunnels: Chromium sends ws:// through an HTTP proxy as CONNECT.',
      'http_access deny CONNECT',
      'http_access deny ws_upgrade',
      'http_access allow lo_src lo_dst',
      'http_access deny all',
      '',
    ].join('\n'));
    this.squidLog = join(d, 'access.log');
    this.start('squid', '/usr/sbin/squid', ['-N', '-f', join(d, 'squid.conf')]);
    // Ready when it proxies: a plain GET of dlsse's health check through it.
    await until('squid', async () => {
      const out = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${this.squidPort}`, this.origin + '/healthz']);
      return out.toString() === '200';
    });
  }

  /** A call to the fake's control API. */
  async control(method, path, body) {
    const res = await fetch(this.fake.control + path, {
      method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`control ${method} ${path}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? null : res.json();
  }

  /** Lines of a log file (nginx's or squid's access log). */
  logLines(path) {
    return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  }
}
