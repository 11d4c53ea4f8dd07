// Package upstream is a Direct Line 3.0 client: REST calls and the
// activity stream WebSocket, all behind one circuit breaker.
//
// Of this project it imports only small internal packages (WebSocket
// frames, the descriptor watcher, defaults). Errors are typed: *APIError for an answer Direct Line gave,
// ErrUnavailable when the breaker refused the call, anything else for
// transport failures.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/dlsse/dlsse/internal/defaults"
)

// DefaultBaseURL is the public Direct Line service.
const DefaultBaseURL = "https://directline.botframework.com"

// apiPrefix is where every Direct Line 3.0 route lives.
const apiPrefix = "/v3/directline"

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	// BaseURL of the Direct Line service, without the /v3/directline part.
	// Default DefaultBaseURL.
	BaseURL string
	// RequestTimeout bounds each REST call that the client makes for
	// itself (reconnect, polling). Forwarded client requests are bounded
	// by their own context. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// DialTimeout bounds the TCP connect plus TLS and WebSocket handshake.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration
	// Keepalive is how often an open stream sends an empty message (and a
	// ping, when Direct Line said nothing since the last). Default
	// DefaultKeepalive.
	Keepalive time.Duration
	// ReadTimeout is how long a stream may stay silent (no frame, no pong)
	// before it is considered dead: a watched stream finds out at its
	// next keepalive. Default 3 × Keepalive.
	ReadTimeout time.Duration
	// ReadLimit is the largest stream message accepted. Default
	// DefaultReadLimit.
	ReadLimit int64
	// Breaker configures the circuit breaker. Zero fields take the
	// defaults in breaker.go; IsSuccessful, IsExcluded and OnStateChange
	// are the client's own (see Hooks).
	Breaker gobreaker.Settings
	// Hooks observe the client, for metrics and logs.
	Hooks Hooks
	// MaxConnsPerHost caps the connections the REST transport holds to
	// Direct Line, dialling, active and idle together; calls beyond it
	// wait for a connection (within their context). Without a cap a
	// reconnect storm against an HTTP/1.1 upstream opens a connection,
	// and a descriptor, per concurrent call. Over HTTP/2 (https) calls
	// share connections and the cap is rarely reached. Default
	// DefaultMaxConnsPerHost; negative: no cap. Ignored with Transport.
	MaxConnsPerHost int
	// Transport overrides the HTTP transport (tests). An *http.Transport's
	// Proxy and TLSClientConfig apply to streams too; another
	// RoundTripper's cannot be seen, and streams then go straight.
	Transport http.RoundTripper
}

// Defaults for Config's zero values.
const (
	DefaultRequestTimeout = 20 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	// DefaultKeepalive is what the official client sends at.
	DefaultKeepalive = 20 * time.Second
	DefaultReadLimit = 4 << 20
)

// Defaults of the REST transport's connection pool.
const (
	// DefaultMaxConnsPerHost is Config.MaxConnsPerHost's default: ample
	// for the calls of 10,000 sessions reconnecting at a limited rate.
	DefaultMaxConnsPerHost = 512
	// maxIdleConnsPerHost connections are kept open between calls, so a
	// steady load reuses them instead of opening new ones (net/http keeps
	// 2 by default). Not more: an idle HTTP/1.1 connection costs two
	// goroutines and 8 KiB of buffers, and REST calls are short (a
	// thousand reconnects a second at 20 ms each keep 20 busy).
	maxIdleConnsPerHost = 64
)

// Client talks to one Direct Line service. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	addr    string // base's host:port, for Hooks.Failure
	cfg     Config
	http    *http.Client
	dialer  *websocket.Dialer
	proxy   func(*http.Request) (*url.URL, error) // the REST transport's, for streams too (proxy.go)
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	state   breakerState

	keepalives *keepalives // every stream's, from one timer
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("upstream: base URL must be http(s)://host[:port], got %q", cfg.BaseURL)
	}
	defaults.Set(&cfg.RequestTimeout, DefaultRequestTimeout)
	defaults.Set(&cfg.DialTimeout, DefaultDialTimeout)
	defaults.Set(&cfg.Keepalive, DefaultKeepalive)
	defaults.Set(&cfg.ReadTimeout, 3*cfg.Keepalive)
	defaults.Set(&cfg.ReadLimit, DefaultReadLimit)
	switch {
	case cfg.MaxConnsPerHost == 0:
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost
	case cfg.MaxConnsPerHost < 0:
		cfg.MaxConnsPerHost = 0 // net/http's "no cap"
	}
	transport := cfg.Transport
	if transport == nil {
		// A clone of the default transport keeps HTTP/2 for https
		// (ForceAttemptHTTP2), proxies from the environment and its
		// dial and TLS timeouts.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxConnsPerHost = cfg.MaxConnsPerHost
		t.MaxIdleConnsPerHost = maxIdleConnsPerHost
		if cfg.MaxConnsPerHost > 0 {
			t.MaxIdleConnsPerHost = min(maxIdleConnsPerHost, cfg.MaxConnsPerHost)
		}
		// One host: the total idle cap (100 by default) must not undercut
		// the per-host one.
		t.MaxIdleConns = t.MaxIdleConnsPerHost
		t.ResponseHeaderTimeout = 0 // bounded per call by contexts
		transport = t
	}
	c := &Client{
		base:       base,
		addr:       hostPort(base),
		cfg:        cfg,
		keepalives: newKeepalives(cfg.Keepalive),
		http: &http.Client{
			Transport: transport,
			// Direct Line never redirects; following one could send the
			// Authorization header somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		dialer: &websocket.Dialer{
			HandshakeTimeout: cfg.DialTimeout,
			NetDialContext:   (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
			// Used for the handshake only (the stream reads and
			// writes its frames itself), then dropped.
			ReadBufferSize:  1024,
			WriteBufferSize: 512,
			WriteBufferPool: handshakeWriteBuffers,
		},
	}
	if t, ok := transport.(*http.Transport); ok {
		// Streams trust what the REST calls trust, and take the same
		// proxy (HTTPS_PROXY and its kin, with the default transport).
		c.dialer.TLSClientConfig = t.TLSClientConfig
		c.proxy = t.Proxy
	}
	c.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](c.breakerSettings(cfg.Breaker))
	return c, nil
}

// Forward sends a client's request to Direct Line as is and returns the
// answer, whatever its status; the caller closes its Body. path is relative
// to /v3/directline and must already be escaped; header should carry only
// what Direct Line needs (Authorization, Content-Type).
func (c *Client) Forward(ctx context.Context, method, path, rawQuery string, header http.Header, body io.Reader) (*http.Response, error) {
	u := *c.base
	// path is already escaped: keep it as the wire form so an escaped
	// byte is not escaped twice.
	u.RawPath = c.base.EscapedPath() + apiPrefix + path
	unescaped, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("upstream: bad path: %w", err)
	}
	u.Path = unescaped
	u.RawQuery = rawQuery
	// The body is watched so that a failure to read it (the client's
	// doing) is not held against Direct Line. A known-empty body is none.
	length := int64(-1)
	if rc, ok := body.(interface{ Len() int }); ok {
		length = int64(rc.Len())
	}
	var watched *watchedBody
	var reqBody io.Reader
	if body != nil && length != 0 {
		watched = &watchedBody{r: body}
		reqBody = watched
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reqBody)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if err := checkHeader(req.Header); err != nil {
		return nil, err // the caller's input, never counted against Direct Line
	}
	if length > 0 {
		req.ContentLength = length
	}
	op := operation(method, path)
	done, err := c.allow()
	if err != nil {
		c.observe(op, statusRefused, 0)
		return nil, err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		switch {
		case ctx.Err() == context.Canceled:
			err = fmt.Errorf("%w (%v)", context.Canceled, err)
		case watched != nil && watched.err != nil:
			// The client's body failed (too large, too slow, gone):
			// nothing to hold against Direct Line.
			err = fmt.Errorf("%w: %w", ErrRequestBody, watched.err)
		}
		done(err)
		c.observe(op, statusTransport, time.Since(start))
		c.noteLocalError(op, err)
		c.noteFailure(op, c.addr, err)
		return nil, fmt.Errorf("upstream: %s %s: %w", method, path, err)
	}
	done(statusVerdict(op, resp.StatusCode))
	c.observe(op, resp.StatusCode, time.Since(start))
	c.noteStatus(op, c.addr, resp.StatusCode)
	return resp, nil
}

// checkHeader refuses what net/http would refuse only after the breaker
// admitted the call (a control character in a value, say), so that such a
// failure is the caller's, not a Direct Line failure.
func checkHeader(h http.Header) error {
	for name, values := range h {
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("%w: header name", ErrInvalidRequest)
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("%w: %s header value", ErrInvalidRequest, name)
			}
		}
	}
	return nil
}

// call performs a REST call the client makes for itself and decodes a 2xx
// JSON answer into out.
func (c *Client) call(ctx context.Context, credential, method, path, rawQuery string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	h := http.Header{"Authorization": {"Bearer " + credential}}
	resp, err := c.Forward(ctx, method, path, rawQuery, h, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return newAPIError(resp)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("upstream: decode %s answer: %w", path, err)
	}
	return nil
}

// ConversationPath is the escaped path of a conversation, relative to
// /v3/directline.
func ConversationPath(conversationID string) string {
	return "/conversations/" + url.PathEscape(conversationID)
}

func watermarkQuery(watermark string) string {
	if watermark == "" {
		return ""
	}
	return "watermark=" + url.QueryEscape(watermark)
}

// Reconnect asks for a new stream URL for a conversation. With a watermark
// the stream replays what came after it; without one it starts from now.
func (c *Client) Reconnect(ctx context.Context, credential, conversationID, watermark string) (Conversation, error) {
	var conv Conversation
	err := c.call(ctx, credential, http.MethodGet, ConversationPath(conversationID), watermarkQuery(watermark), &conv)
	return conv, err
}

// RefreshToken exchanges a token that has not expired yet for a fresh one
// for the same conversation.
func (c *Client) RefreshToken(ctx context.Context, token string) (Conversation, error) {
	var conv Conversation
	err := c.call(ctx, token, http.MethodPost, "/tokens/refresh", "", &conv)
	return conv, err
}

// Activities polls the activities after watermark (all of them when it is
// empty). Polling never returns typing activities.
func (c *Client) Activities(ctx context.Context, credential, conversationID, watermark string) (ActivitySet, error) {
	var set ActivitySet
	err := c.call(ctx, credential, http.MethodGet, ConversationPath(conversationID)+"/activities", watermarkQuery(watermark), &set)
	return set, err
}

// ErrRequestBody reports that a forwarded call failed because reading the
// client's request body failed. The breaker does not count it.
var ErrRequestBody = errors.New("upstream: reading the request body failed")

// watchedBody remembers why reading a request body failed, to tell the
// client's failures from the service's.
type watchedBody struct {
	r   io.Reader
	err error
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}
