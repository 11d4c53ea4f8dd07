package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Breaker defaults, for the zero fields of Config.Breaker.
const (
	// DefaultBreakerFailures consecutive failures open the breaker.
	DefaultBreakerFailures = 5
	// DefaultBreakerOpen is how long it stays open before one probe.
	DefaultBreakerOpen = 15 * time.Second
	// DefaultBreakerInterval clears the failure counts while closed.
	DefaultBreakerInterval = 60 * time.Second
)

// Hooks observe a Client. Every field is optional and must be fast and
// safe for concurrent use.
type Hooks struct {
	// Request is called once per REST call or dial: op names it
	// (start, reconnect, post_activity, get_activities, upload,
	// token_generate, token_refresh, dial, other), status is the HTTP
	// status, StatusTransport when no answer came, StatusRefused when the
	// breaker refused the call (d is then 0).
	Request func(op string, status int, d time.Duration)
	// BreakerChange is called on every breaker state change.
	BreakerChange func(from, to gobreaker.State)
	// LocalResourceError is called when a REST call or dial failed
	// because this host ran out of file descriptors, socket buffers or
	// memory (err is the syscall.Errno: EMFILE, ENFILE, ENOBUFS or
	// ENOMEM). The breaker does not count such failures, so this is
	// where an operator hears of them; under load it fires in bursts,
	// so whoever logs it should rate-limit.
	LocalResourceError func(op string, err error)
	// Failure is called when a REST call or dial failed for Direct
	// Line's reasons: no answer (connection refused, DNS, TLS, timeout)
	// or one the breaker counts as a failure (5xx, 408). addr is the
	// host:port called; err is a *Failure, whose text names the cause
	// the same way each time and never holds a URL or token. It fires
	// on every such call, so whoever logs it should say each cause once.
	Failure func(op, addr string, err error)
}

// Pseudo statuses reported to Hooks.Request.
const (
	StatusTransport = 0
	StatusRefused   = -1
)

const (
	statusTransport = StatusTransport
	statusRefused   = StatusRefused
)

// UnavailableError is what a call refused by the open breaker returns. It
// matches ErrUnavailable with errors.Is.
type UnavailableError struct {
	// RetryIn is how long until the breaker lets a probe through.
	RetryIn time.Duration
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("upstream: unavailable (circuit open, next try in %v)", e.RetryIn.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// breakerState remembers when the breaker opened, which gobreaker does not
// expose, to tell callers when the next try is.
type breakerState struct {
	mu       sync.Mutex
	openedAt time.Time
	open     time.Duration
}

// breakerSettings completes the user's settings with the client's policy.
func (c *Client) breakerSettings(st gobreaker.Settings) gobreaker.Settings {
	if st.Name == "" {
		st.Name = "directline"
	}
	if st.Timeout <= 0 {
		st.Timeout = DefaultBreakerOpen
	}
	if st.Interval <= 0 {
		st.Interval = DefaultBreakerInterval
	}
	if st.ReadyToTrip == nil {
		st.ReadyToTrip = func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= DefaultBreakerFailures }
	}
	st.IsSuccessful = isSuccessful
	st.IsExcluded = isExcluded
	c.state.open = st.Timeout
	hook := c.cfg.Hooks.BreakerChange
	st.OnStateChange = func(_ string, from, to gobreaker.State) {
		c.state.mu.Lock()
		if to == gobreaker.StateOpen {
			c.state.openedAt = time.Now()
		}
		c.state.mu.Unlock()
		if hook != nil {
			hook(from, to)
		}
	}
	return st
}

// BreakerState reports the circuit breaker's state.
func (c *Client) BreakerState() gobreaker.State { return c.breaker.State() }

// RetryIn is how long until the breaker lets a call through: zero unless
// it is open.
func (c *Client) RetryIn() time.Duration {
	if c.breaker.State() != gobreaker.StateOpen {
		return 0
	}
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	return max(time.Until(c.state.openedAt.Add(c.state.open)), 0)
}

// allow asks the breaker for a call. done must be called with the call's
// outcome as the breaker should see it.
func (c *Client) allow() (done func(error), err error) {
	done, err = c.breaker.Allow()
	if err != nil {
		// Half-open and already probing: the probe's outcome is
		// moments away.
		return nil, &UnavailableError{RetryIn: max(c.RetryIn(), 100*time.Millisecond)}
	}
	return done, nil
}

// errServerFailure marks an answer that counts against the service.
var errServerFailure = errors.New("upstream: server failure")

// statusVerdict is the breaker's reading of an answer to op: 5xx and 408
// (the service did not answer in time) are failures; every other 4xx,
// including 429, says the service is up — throttling is honoured per call
// through Retry-After, not by cutting every conversation off. A 502 or 504
// to a post or an upload is the bot's verdict (it failed or timed out on
// that activity), relayed by a Direct Line that works: a client could
// otherwise open the breaker for everyone by posting what its bot chokes on.
func statusVerdict(op string, status int) error {
	if (op == "post_activity" || op == "upload") && (status == http.StatusBadGateway || status == http.StatusGatewayTimeout) {
		return nil
	}
	if status >= 500 || status == http.StatusRequestTimeout {
		return errServerFailure
	}
	return nil
}

// isSuccessful: anything but a verdict of failure or a transport error.
func isSuccessful(err error) bool { return err == nil }

// isExcluded keeps out of the counts what says nothing about the service:
// what notTheService names, and a proxy on the way failing (the REST calls
// may not go through it, or may be fine through it).
func isExcluded(err error) bool {
	var pe *proxyError
	return notTheService(err) || errors.As(err, &pe)
}

// notTheService is what is nobody's failure but this side's: the client's
// own cancellation, a client's request body failing or its request being
// unsendable, and this host running out of descriptors or memory. Were
// those counted, a burst of EMFILE under load would open the breaker and
// stall every session for the breaker's open time while Direct Line is
// fine.
func notTheService(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, ErrRequestBody) ||
		errors.Is(err, ErrInvalidRequest) || IsLocalResourceError(err)
}

func (c *Client) observe(op string, status int, d time.Duration) {
	if h := c.cfg.Hooks.Request; h != nil {
		h(op, status, d)
	}
}

// operation names a call for metrics, from its method and path (relative
// to /v3/directline, escaped).
func operation(method, path string) string {
	switch {
	case path == "/tokens/generate":
		return "token_generate"
	case path == "/tokens/refresh":
		return "token_refresh"
	case path == "/conversations" && method == http.MethodPost:
		return "start"
	}
	const conv = "/conversations/"
	if len(path) <= len(conv) || path[:len(conv)] != conv {
		return "other"
	}
	rest := path[len(conv):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			switch suffix := rest[i:]; {
			case suffix == "/activities" && method == http.MethodPost:
				return "post_activity"
			case suffix == "/activities":
				return "get_activities"
			case suffix == "/upload":
				return "upload"
			}
			return "other"
		}
	}
	if method == http.MethodGet {
		return "reconnect"
	}
	return "other"
}
