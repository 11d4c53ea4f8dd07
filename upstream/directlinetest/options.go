package directlinetest

import (
	"net"
	"time"
)

// DefaultSecret is the Direct Line secret a Server accepts unless WithSecret
// says otherwise. It is not a credential of any real service.
const DefaultSecret = "directlinetest-secret"

// Defaults for the options; they mirror the real service where it documents
// a value (60 s stream URLs, 30 min tokens).
const (
	defaultStreamURLWindow = 60 * time.Second
	defaultTokenTTL        = 30 * time.Minute
	defaultKeepalive       = 10 * time.Second
)

// config is the immutable configuration of a Server, filled by Options.
type config struct {
	secret          string
	streamURLWindow time.Duration
	tokenTTL        time.Duration
	keepalive       time.Duration
	bot             Bot
	replayExtra     int
	logf            func(format string, args ...any)
	listener        net.Listener
}

func defaultConfig() config {
	return config{
		secret:          DefaultSecret,
		streamURLWindow: defaultStreamURLWindow,
		tokenTTL:        defaultTokenTTL,
		keepalive:       defaultKeepalive,
		bot:             EchoBot{},
		logf:            func(string, ...any) {},
	}
}

// Option configures a Server created by NewServer.
type Option func(*config)

// WithSecret sets the Direct Line secret the Server accepts. The secret
// grants access to every conversation and never expires.
func WithSecret(secret string) Option {
	return func(c *config) { c.secret = secret }
}

// WithStreamURLWindow sets how long a streamUrl handed out by the Server can
// be dialled (default 60 s). Dialling an older one answers HTTP 403, which is
// what forces clients to call the reconnect endpoint for a fresh URL. A tiny
// window (time.Nanosecond) makes every stream URL stale on arrival.
func WithStreamURLWindow(d time.Duration) Option {
	return func(c *config) { c.streamURLWindow = d }
}

// WithTokenTTL sets the lifetime of tokens issued by the Server (default
// 30 min). It is also the expires_in the Server reports, in whole seconds.
func WithTokenTTL(d time.Duration) Option {
	return func(c *config) { c.tokenTTL = d }
}

// WithKeepalive sets how often every socket receives an empty text message
// (default 10 s), as the real service does to keep proxies from timing the
// connection out. Zero or a negative value disables keepalives, which makes
// tests that read exact message sequences simpler.
func WithKeepalive(d time.Duration) Option {
	return func(c *config) { c.keepalive = d }
}

// WithBot replaces the default EchoBot. A nil Bot keeps the EchoBot.
func WithBot(b Bot) Option {
	return func(c *config) {
		if b != nil {
			c.bot = b
		}
	}
}

// WithLogf enables debug logging through logf (for example t.Logf). The
// Server never logs tokens, tickets or the secret. A nil logf disables
// logging.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(c *config) {
		if logf != nil {
			c.logf = logf
		}
	}
}

// WithListener makes the Server serve on l instead of a new listener on
// 127.0.0.1:0, for a fake that must keep a known address (cmd/directline-fake
// -listen). The Server owns l and closes it with Close. URL is derived from
// l's address, so l should be bound to a concrete IP, not a wildcard.
func WithListener(l net.Listener) Option {
	return func(c *config) { c.listener = l }
}

// WithReplayExtra makes a stream URL from a reconnect with a watermark
// replay n activities from before the watermark too: a known quirk of the
// real service (it has replayed more than asked), which clients must
// absorb by deduplicating on activity ids.
func WithReplayExtra(n int) Option {
	return func(c *config) { c.replayExtra = n }
}
