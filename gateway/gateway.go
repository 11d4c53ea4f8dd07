// Package gateway is dlsse's HTTP face: the Direct Line 3.0 REST surface,
// proxied to the real service, and the Server-Sent Events stream that
// replaces Direct Line's WebSocket.
//
// It maps everything to Direct Line-shaped answers in one place (errors.go)
// and adapts a raw client connection to the sse loop (stream.go). It holds
// no conversation state: that lives in package session.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/dlsse/dlsse/internal/defaults"
	"github.com/dlsse/dlsse/internal/netwatch"
	"github.com/dlsse/dlsse/internal/wsframe"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// Defaults for Config's zero values.
const (
	DefaultHeartbeat       = 15 * time.Second
	DefaultRetry           = 3 * time.Second
	DefaultShutdownJitter  = 5 * time.Second
	DefaultSSEWriteTimeout = 15 * time.Second
	DefaultSubscribeWait   = 20 * time.Second
	DefaultReadTimeout     = 30 * time.Second
	DefaultIdleTimeout     = 120 * time.Second
	DefaultBodyLimit       = 64 << 20
)

// Config tunes a Gateway. Zero values take the defaults above.
type Config struct {
	// PublicURL is the base (scheme://host[:port][/prefix]) written into
	// rewritten streamUrl values. Empty: derived from each request.
	PublicURL string
	// Heartbeat is the idle time after which a stream gets a comment line.
	Heartbeat time.Duration
	// Retry is the reconnection hint sent at the start of every stream.
	Retry time.Duration
	// ShutdownJitter is added at random to the retry hint sent when the
	// gateway shuts down, so browsers do not all come back at once.
	ShutdownJitter time.Duration
	// SSEWriteTimeout bounds one write to a stream; a client that takes
	// longer is dropped as slow. It never cuts a healthy stream.
	SSEWriteTimeout time.Duration
	// SubscribeWait bounds how long opening a stream may wait for Direct
	// Line to accept the credential.
	SubscribeWait time.Duration
	// ReadTimeout bounds reading a REST request (slow clients).
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long.
	IdleTimeout time.Duration
	// BodyLimit is the largest request body accepted.
	BodyLimit int
	// Logger receives request and stream logs.
	Logger zerolog.Logger
	// Observer receives stream events for metrics; nil means none.
	Observer Observer
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// ReadyIgnoresUpstream keeps /readyz at 200 while the circuit
	// breaker is open. By default an open breaker makes the instance
	// not ready.
	ReadyIgnoresUpstream bool
	// ReadyIgnoresShared keeps /readyz at 200 while what the replicas
	// share (Redis) cannot be reached. By default such a replica is not
	// ready: it can serve no conversation another replica owns.
	ReadyIgnoresShared bool
	// Limits; see limits.go for the defaults.
	MaxActivityChars          int   // a posted activity's size, in characters
	MaxUploadBytes            int64 // an upload's size, streamed
	MaxHeaderBytes            int   // request line and headers
	MaxStreamsPerConversation int
	MaxStreamsPerIP           int
	MaxStreams                int
	RequestsPerIP             int // per second, on /v3/directline
	// MaxConnsPerIP caps TCP connections per client address (0: no cap).
	// Leave it off behind a proxy: every connection then comes from the
	// proxy's address.
	MaxConnsPerIP  int
	ForwardTimeout time.Duration // a proxied REST call
	UploadTimeout  time.Duration // a proxied upload
	// TrustedProxies are the addresses (IPs or CIDRs) of proxies whose
	// X-Forwarded-For names the client (and -Host, -Proto the URL it
	// reached); anybody else's X-Forwarded-* headers are ignored.
	TrustedProxies []string

	// AllowedOrigins may use the gateway from a browser (CORS). Empty:
	// no cross-origin use. "*": any origin, without credentials.
	AllowedOrigins []string
	// DirectLineSecret turns on token-server mode: POST tokens/generate
	// without Authorization gets a token made with this secret, for
	// TokenOrigins only, TokensPerIPPerMinute per client address.
	DirectLineSecret     string
	TokenOrigins         []string
	TokensPerIPPerMinute int

	// DrainDelay is how long Shutdown keeps serving, with /readyz
	// already answering 503, before it closes the listener and ends the
	// streams: long enough for a load balancer's readiness probe to take
	// the instance out. Zero: stop at once.
	DrainDelay time.Duration

	// SSEOnly refuses WebSocket upgrades of stream URLs (400) and gives
	// every client an http(s) stream URL. By default a stream URL may be
	// opened as a WebSocket speaking Direct Line's stream protocol (what
	// DirectLineJS does), and clients that identify as DirectLineJS get
	// ws(s):// stream URLs.
	SSEOnly bool

	// DemoPages serves the plain demo page at / (and its script at
	// /app.js) and the Web Chat page at /webchat. Off: those paths are
	// Direct Line-shaped 404s.
	DemoPages bool
	// WebChatBundle is the path of botframework-webchat's dist/webchat.js
	// that /webchat serves (scripts/fetch-webchat puts it at the
	// default). Read once by New; missing, the page says how to get it.
	WebChatBundle string
}

// Observer is told about streams, for metrics.
type Observer interface {
	StreamOpened(wire session.Wire)
	StreamClosed(wire session.Wire, reason sse.Reason)
	// UpgradeRefused counts a WebSocket upgrade refused, by reason
	// (UpgradeRefusals).
	UpgradeRefused(reason string)
}

type nopObserver struct{}

func (nopObserver) StreamOpened(session.Wire)             {}
func (nopObserver) StreamClosed(session.Wire, sse.Reason) {}
func (nopObserver) UpgradeRefused(string)                 {}

func (c *Config) setDefaults() {
	defaults.Set(&c.Heartbeat, DefaultHeartbeat)
	defaults.Set(&c.Retry, DefaultRetry)
	defaults.Set(&c.ShutdownJitter, DefaultShutdownJitter)
	defaults.Set(&c.SSEWriteTimeout, DefaultSSEWriteTimeout)
	defaults.Set(&c.SubscribeWait, DefaultSubscribeWait)
	defaults.Set(&c.ReadTimeout, DefaultReadTimeout)
	defaults.Set(&c.IdleTimeout, DefaultIdleTimeout)
	defaults.Set(&c.ForwardTimeout, DefaultForwardTimeout)
	defaults.Set(&c.UploadTimeout, DefaultUploadTimeout)
	defaults.Set(&c.BodyLimit, DefaultBodyLimit)
	defaults.Set(&c.MaxActivityChars, DefaultMaxActivityChars)
	defaults.Set(&c.MaxUploadBytes, DefaultMaxUploadBytes)
	defaults.Set(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defaults.Set(&c.MaxStreamsPerConversation, DefaultStreamsPerConv)
	defaults.Set(&c.MaxStreamsPerIP, DefaultStreamsPerIP)
	defaults.Set(&c.MaxStreams, DefaultMaxStreams)
	defaults.Set(&c.RequestsPerIP, DefaultRequestsPerIP)
	defaults.Set(&c.TokensPerIPPerMinute, DefaultTokensPerIPPerMin)
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.TokenOrigins == nil {
		c.TokenOrigins = c.AllowedOrigins
	}
}

// Gateway serves the Direct Line surface and the SSE streams.
type Gateway struct {
	cfg      Config
	app      *fiber.App
	up       *upstream.Client
	sessions *session.Manager
	lg       zerolog.Logger

	streams  streamSet
	admit    *admission
	stopping atomic.Bool
	// stop ends every stream loop; fasthttp's own shutdown cannot reach
	// hijacked connections.
	stopCtx context.Context
	stop    context.CancelFunc

	webchat *staticFile // nil: no Web Chat bundle to serve
	trust   proxyTrust  // trusted_proxies

	sseOptions sse.Options   // the same for every SSE stream, but Inbound
	wsOptions  sse.Options   // the same for every WebSocket stream, but Inbound
	watchers   netwatch.Lazy // hear from the clients of every stream

	listener atomic.Pointer[quietListener] // set by Serve
}

// New builds a Gateway over an upstream client and a session manager. It
// fails when trusted_proxies holds something that is not an address, or a
// configured file exists but cannot be read.
func New(cfg Config, up *upstream.Client, sessions *session.Manager) (*Gateway, error) {
	cfg.setDefaults()
	trust, err := parseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, up: up, sessions: sessions, lg: cfg.Logger, trust: trust}
	if cfg.DemoPages {
		wc, err := loadStaticFile(cfg.WebChatBundle)
		if err != nil {
			return nil, fmt.Errorf("web chat bundle: %w", err)
		}
		if wc == nil && cfg.WebChatBundle != "" {
			g.lg.Warn().Str("path", cfg.WebChatBundle).Msg("Web Chat bundle not found: /webchat will say so; run ./scripts/fetch-webchat")
		}
		g.webchat = wc
	}
	g.admit = newAdmission(&g.cfg)
	g.stopCtx, g.stop = context.WithCancel(context.Background())
	// Both kinds of stream share one heartbeat wheel: one timer for all,
	// and one watch of stopCtx.
	heartbeats := sse.NewHeartbeats(g.stopCtx, g.cfg.Heartbeat)
	g.sseOptions = sse.Options{
		Retry:        g.cfg.Retry,
		Heartbeat:    g.cfg.Heartbeat,
		Heartbeats:   heartbeats,
		WriteTimeout: g.cfg.SSEWriteTimeout,
		OnShutdown:   g.shutdownRetry,
	}
	g.wsOptions = sse.Options{
		Heartbeat:    g.cfg.Heartbeat,
		Heartbeats:   heartbeats,
		WriteTimeout: g.cfg.SSEWriteTimeout,
		OnShutdown:   shutdownClose,
		Ping:         wsframe.Ping,
	}
	g.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		// Fiber's values (params, headers, query) are views into pooled
		// buffers by default. Streams and sessions keep credentials and
		// ids far beyond the handler: a reused buffer would hand one
		// client's token to another conversation. Copies cost little here.
		Immutable:         true,
		StreamRequestBody: true,
		BodyLimit:         cfg.BodyLimit,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ReadBufferSize:    cfg.MaxHeaderBytes,
		ErrorHandler:      g.handleError,
		// Routing is exact: /METRICS or /metrics/ must not reach what a
		// proxy's rule for /metrics keeps private.
		CaseSensitive: true,
		StrictRouting: true,
		// Client addresses, hosts and schemes come from clientaddr.go,
		// never from Fiber's proxy handling.
	})
	srv := g.app.Server()
	// fasthttp reads a request, body included when it is streamed, under
	// one ReadTimeout: uploads get theirs from UploadTimeout instead.
	srv.HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if isUpload(h.RequestURI()) {
			return fasthttp.RequestConfig{ReadTimeout: g.cfg.UploadTimeout}
		}
		return fasthttp.RequestConfig{}
	}
	srv.MaxConnsPerIP = cfg.MaxConnsPerIP
	// Streams outlive their hijack handler (stream.go), so fasthttp must
	// not close a hijacked connection when the handler returns.
	srv.KeepHijackedConns = true
	g.routes()
	return g, nil
}

// isUpload reports whether a request URI is an upload route.
func isUpload(uri []byte) bool {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return bytes.HasPrefix(uri, []byte("/v3/directline/conversations/")) && bytes.HasSuffix(uri, []byte("/upload"))
}

func (g *Gateway) routes() {
	g.app.Use(g.logRequests)
	if len(g.cfg.AllowedOrigins) > 0 {
		g.app.Use(g.corsHandler())
	}
	g.app.Get("/healthz", g.healthz)
	g.app.Get("/readyz", g.readyz)
	g.app.Get("/sdk/dlsse.js", g.sdk)
	if g.cfg.DemoPages {
		g.app.Get("/", g.indexPage)
		g.app.Get("/app.js", g.appScript)
		g.app.Get("/favicon.svg", g.favicon)
		g.app.Get("/favicon.ico", g.favicon)
		g.app.Get("/webchat", g.webchatPage)
		g.app.Get("/webchat/app.js", g.webchatScript)
		g.app.Get("/webchat/webchat.js", g.webchatBundle)
	}
	if g.cfg.Metrics != nil {
		g.app.Get("/metrics", exactPath, adaptor.HTTPHandler(g.cfg.Metrics))
	}

	dl := g.app.Group("/v3/directline", g.requestLimiter())
	dl.Post("/tokens/generate", g.generateToken, g.newTokenLimiter(), g.forwardWithSecret)
	dl.Post("/tokens/refresh", g.needCredential, g.refreshToken)
	dl.Post("/conversations", g.needCredential, g.startConversation)
	dl.Get("/conversations/:id", g.needCredential, g.reconnect)
	dl.Post("/conversations/:id/activities", g.needCredential, g.postActivity)
	dl.Get("/conversations/:id/activities", g.needCredential, g.forward)
	dl.Post("/conversations/:id/upload", g.needCredential, g.upload)
	dl.Get("/conversations/:id/stream", g.stream)
	g.app.Use(g.notFound)
}

// App exposes the Fiber app (tests, extra middleware).
func (g *Gateway) App() *fiber.App { return g.app }

// Serve serves on ln until Shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	ql := newQuietListener(ln)
	g.listener.Store(ql)
	if g.stopping.Load() {
		ql.shutdown() // Shutdown came first: serve nothing
	}
	err := g.app.Listener(ql)
	if g.stopping.Load() {
		return nil
	}
	return err
}

// Shutdown turns /readyz to 503, keeps serving for DrainDelay, then stops
// accepting work, ends every stream with a jittered retry hint, finishes
// in-flight REST calls and returns when all is done or ctx ends. It is
// idempotent.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopping.Store(true)
	if g.cfg.DrainDelay > 0 {
		t := time.NewTimer(g.cfg.DrainDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	g.streams.Close()
	g.stop()
	if ql := g.listener.Load(); ql != nil {
		ql.shutdown()
	}
	errREST := g.app.ShutdownWithContext(ctx)
	errStreams := g.streams.Wait(ctx)
	g.watchers.Close()
	return errors.Join(errREST, errStreams)
}

// Streams is the number of open SSE streams.
func (g *Gateway) Streams() int { return g.streams.Len() }
