// Process harness of the browser end-to-end test: builds dlsse and the
// Direct Line fake, runs them with nginx (the shipped configs/nginx.conf)
// and squid (a WebSocket-blocking corporate proxy, configured here) on
// loopback, serves a page of another origin (test/browser/pages/), and
// tears everything down. Nothing here knows about browsers; e2e.test.mjs
// drives Chromium through it.

import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

import { Processes, freePort, repo, until } from '../lib/processes.mjs';

export { repo };

/** Lifetime of the fake's tokens, in seconds. */
export const TOKEN_TTL_S = 16;

/** Fails with a message naming what is missing, instead of a cryptic ENOENT. */
export function requireTools(...tools) {
  const missing = tools.filter((t) => !existsSync(t));
  if (missing.length) {
    throw new Error(`missing ${missing.join(', ')}: ./scripts/test installs them (apt-get install chromium squid nginx)`);
  }
}

/**
 * The harness: every process it starts is stopped by stopAll (the process
 * handling, the build and the fake are test/lib/processes.mjs's).
 */
export class Harness extends Processes {
  constructor() {
    super('dlsse-e2e-');
    chmodSync(this.dir, 0o777); // squid's workers run as user proxy
  }

  /** Starts the Direct Line fake and returns its hello ({url, control, secret}). */
  async startFake() {
    // Tokens live TOKEN_TTL_S: short, so the pages refresh theirs (at half
    // life) and outlive the first one while the test runs.
    return super.startFake(['-keepalive', '2s', '-token-ttl', `${TOKEN_TTL_S}s`]);
  }

  /**
   * Starts dlsse on its fixed port (so a restart keeps nginx's upstream),
   * in token-server mode with the demo pages, behind nginx.
   */
  async startDlsse() {
    this.dlssePort ||= await freePort();
    await super.startDlsse([
      '-listen', `127.0.0.1:${this.dlssePort}`,
      '-upstream-url', this.fake.url,
      '-directline-secret', this.fake.secret,
      '-token-origins', '*',
      // The page of another origin (startPages) uses dlsse cross-origin.
      ...(this.pagesOrigin ? ['-allowed-origins', this.pagesOrigin] : []),
      '-demo-pages',
      '-webchat-bundle', join(repo, 'third_party/botframework-webchat/webchat.js'),
      '-trusted-proxies', '127.0.0.1',
      '-heartbeat', '2s',
      '-retry', '1500ms',
      '-shutdown-jitter', '500ms',
      '-log-level', 'info',
    ]);
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

  /**
   * A static web server of another origin than dlsse's (its own loopback
   * port, in this process): what a site that embeds Web Chat serves. It
   * serves test/browser/pages/ and the Web Chat bundle as /webchat.js,
   * nothing from dlsse. Call it before startDlsse, which then lists its
   * origin in allowed_origins. Each request is logged as 'pages'.
   */
  async startPages() {
    // Read once and kept: the bundle is 3.9 MB, and this process is busy
    // driving the browser. The bundle may be cached, as a site would let it.
    const files = new Map([
      ['/directline.html', ['text/html; charset=utf-8', 'no-store', join(import.meta.dirname, 'pages/directline.html')]],
      ['/directline-app.js', ['text/javascript; charset=utf-8', 'no-store', join(import.meta.dirname, 'pages/directline-app.js')]],
      ['/webchat.js', ['text/javascript; charset=utf-8', 'max-age=600', join(repo, 'third_party/botframework-webchat/webchat.js')]],
    ].map(([path, [type, cache, file]]) => [path, { type, cache, body: readFileSync(file) }]));
    const log = [];
    this.logs.set('pages', log);
    this.pages = createServer((req, res) => {
      const path = new URL(req.url, 'http://x').pathname;
      const f = req.method === 'GET' && files.get(path);
      log.push(`${req.method} ${path} ${f ? 200 : 404}`);
      if (!f) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': f.type, 'Content-Length': f.body.length, 'Cache-Control': f.cache });
      res.end(f.body);
    });
    this.pages.listen(0, '127.0.0.1');
    await once(this.pages, 'listening');
    this.pagesOrigin = `http://127.0.0.1:${this.pages.address().port}`;
  }

  async stopAll() {
    if (this.pages) {
      this.pages.closeAllConnections();
      this.pages.close();
    }
    await super.stopAll();
  }

  /** Lines of a log file (nginx's or squid's access log). */
  logLines(path) {
    return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  }
}
