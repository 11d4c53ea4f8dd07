package gateway

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
)

// Defaults for the limits in Config.
const (
	// DefaultMaxActivityChars is Direct Line's own limit on a serialized
	// activity.
	DefaultMaxActivityChars = 256 * 1024
	DefaultMaxUploadBytes   = 64 << 20
	DefaultMaxHeaderBytes   = 8 << 10
	DefaultStreamsPerConv   = 50
	// Corporate proxies, dlsse's first users, put thousands of people
	// behind one address: per-address defaults are generous.
	DefaultStreamsPerIP      = 1000
	DefaultMaxStreams        = 50_000
	DefaultRequestsPerIP     = 200 // per second
	DefaultForwardTimeout    = 60 * time.Second
	DefaultUploadTimeout     = 10 * time.Minute
	DefaultTokensPerIPPerMin = 10
)

const (
	codeThrottled             = "Throttled"
	streamLimitRetryAfter     = 5 * time.Second
	requestLimitRetryAfter    = time.Second
	tokenServerRetryAfter     = time.Minute
	maxActivityBytesPerRune   = 4 // UTF-8: a character takes at most 4 bytes
	streamAdmissionRefusalMsg = "too many open streams"
	// rateStorePruneEvery: expired keys are dropped every this many sets,
	// so the store stays as large as one window's distinct addresses.
	rateStorePruneEvery = 1024
)

// admission counts open streams per conversation, per client IP and in
// total, and refuses a stream beyond any cap. A stream that is admitted
// must be released exactly once.
type admission struct {
	mu      sync.Mutex
	perConv map[string]int
	perIP   map[string]int
	total   int
	cfg     *Config
}

func newAdmission(cfg *Config) *admission {
	return &admission{perConv: map[string]int{}, perIP: map[string]int{}, cfg: cfg}
}

// admit takes a place for a stream, or says which cap refused it.
func (a *admission) admit(conv, ip string) (release func(), err *apiError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.total >= a.cfg.MaxStreams:
		return nil, &apiError{status: http.StatusServiceUnavailable, code: codeServiceUnavailable,
			message: streamAdmissionRefusalMsg + " on this instance", retryAfter: streamLimitRetryAfter}
	case a.perIP[ip] >= a.cfg.MaxStreamsPerIP:
		return nil, &apiError{status: http.StatusTooManyRequests, code: codeThrottled,
			message: streamAdmissionRefusalMsg + " from this address", retryAfter: streamLimitRetryAfter}
	case a.perConv[conv] >= a.cfg.MaxStreamsPerConversation:
		return nil, &apiError{status: http.StatusTooManyRequests, code: codeThrottled,
			message: streamAdmissionRefusalMsg + " on this conversation", retryAfter: streamLimitRetryAfter}
	}
	a.total++
	a.perIP[ip]++
	a.perConv[conv]++
	var once sync.Once
	return func() { once.Do(func() { a.release(conv, ip) }) }, nil
}

func (a *admission) release(conv, ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.perIP[ip]--; a.perIP[ip] <= 0 {
		delete(a.perIP, ip)
	}
	if a.perConv[conv]--; a.perConv[conv] <= 0 {
		delete(a.perConv, conv)
	}
}

// requestLimiter is Fiber's limiter keyed by client IP: at most
// RequestsPerIP requests a second from one address, on the Direct Line
// routes (streams included: an EventSource reconnect loop is a request
// loop too).
func (g *Gateway) requestLimiter() fiber.Handler {
	return limiter.New(limiter.Config{
		Max:          g.cfg.RequestsPerIP,
		Expiration:   time.Second,
		Storage:      newRateStore(),
		KeyGenerator: g.clientKey,
		LimitReached: func(c *fiber.Ctx) error {
			if strings.HasSuffix(c.Path(), "/stream") && !websocket.FastHTTPIsWebSocketUpgrade(c.Context()) {
				// A fleet of browsers behind one corporate proxy
				// reconnecting after a restart is not abuse: tell
				// them to come back (a 429 would make EventSource
				// give up for good). A WebSocket client retries
				// anyway: it gets the 429.
				return g.comeBackLater(c, "too many requests from this address")
			}
			return &apiError{status: http.StatusTooManyRequests, code: codeThrottled,
				message: "too many requests from this address", retryAfter: requestLimitRetryAfter}
		},
	})
}

// rateStore is a fiber.Storage in memory without a background goroutine
// (Fiber's own starts one per limiter that nothing can stop): expired keys
// are pruned as new ones are set.
type rateStore struct {
	mu   sync.Mutex
	data map[string]rateEntry
	sets int
}

type rateEntry struct {
	val []byte
	exp time.Time
}

var _ fiber.Storage = (*rateStore)(nil)

func newRateStore() *rateStore { return &rateStore{data: map[string]rateEntry{}} }

func (s *rateStore) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.data[key]
	if !ok {
		return nil, nil
	}
	if !e.exp.IsZero() && time.Now().After(e.exp) {
		delete(s.data, key)
		return nil, nil
	}
	return e.val, nil
}

func (s *rateStore) Set(key string, val []byte, exp time.Duration) error {
	if key == "" || len(val) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := rateEntry{val: append([]byte(nil), val...)}
	if exp > 0 {
		e.exp = time.Now().Add(exp)
	}
	s.data[key] = e
	if s.sets++; s.sets%rateStorePruneEvery == 0 {
		now := time.Now()
		for k, v := range s.data {
			if !v.exp.IsZero() && now.After(v.exp) {
				delete(s.data, k)
			}
		}
	}
	return nil
}

func (s *rateStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, key)
	return nil
}

func (s *rateStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = map[string]rateEntry{}
	return nil
}

func (s *rateStore) Close() error { return nil }

// errUploadTooLarge ends an upload that went past MaxUploadBytes.
var errUploadTooLarge = errors.New("gateway: upload too large")

// limitedBody passes at most max bytes through, then fails: an upload is
// streamed, so its size is only known as it goes.
type limitedBody struct {
	r    io.Reader
	left int64
	hit  bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells "exactly max" from "more than max".
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			b.hit = true
			return 0, errUploadTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
