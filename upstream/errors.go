package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrUnavailable reports that the upstream could not be asked at all: the
// circuit breaker is open, or it is half-open and already probing.
var ErrUnavailable = errors.New("upstream: unavailable")

// APIError is a Direct Line error answer: a non-2xx status with, usually, a
// body {"error":{"code":…,"message":…}}.
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string { return "upstream: " + e.Summary() }

// Summary is the answer in a few words, "status 403 TokenExpired", for
// texts that say themselves who answered. It never holds Message, which
// is Direct Line's free text.
func (e *APIError) Summary() string {
	if e.Code == "" {
		return fmt.Sprintf("status %d", e.Status)
	}
	return fmt.Sprintf("status %d %s", e.Status, e.Code)
}

// Terminal reports whether retrying the same call with the same credential
// cannot succeed: the credential is missing, rejected or expired, or the
// conversation does not exist.
func (e *APIError) Terminal() bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	return false
}

// errorBody is Direct Line's error envelope.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ErrorJSON encodes a Direct Line error body,
// {"error":{"code":…,"message":…}}.
func ErrorJSON(code, message string) []byte {
	var body errorBody
	body.Error.Code, body.Error.Message = code, message
	b, _ := json.Marshal(body)
	return b
}

// MaxConversationIDLen and MaxWatermarkLen bound what is accepted from
// clients; Direct Line's own are far shorter.
const (
	MaxConversationIDLen = 128
	MaxWatermarkLen      = 128
)

// ValidConversationID and ValidWatermark accept what Direct Line issues:
// short strings of letters, digits and "-_.:|". Anything else could change
// the meaning of an upstream URL or an SSE line, so it is refused before
// use; so are the dot segments "." and "..", which a URL path resolves.
func ValidConversationID(id string) bool {
	return id != "" && id != "." && id != ".." && len(id) <= MaxConversationIDLen && plainToken(id)
}

// ValidWatermark: see ValidConversationID. The empty watermark is valid (no
// watermark).
func ValidWatermark(w string) bool { return len(w) <= MaxWatermarkLen && plainToken(w) }

func plainToken(s string) bool {
	if strings.Contains(s, "..") {
		return false // no dot segments, whatever a path or log makes of them
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c == '-', c == '_', c == '.', c == ':', c == '|':
		default:
			return false
		}
	}
	return true
}

// MaxCredentialLen bounds a secret or token accepted from a client; Direct
// Line's own are far shorter.
const MaxCredentialLen = 4096

// ValidCredential accepts what can follow "Bearer " in an Authorization
// header (RFC 6750's b64token: letters, digits, "-._~+/", then any "="s),
// which is every shape Direct Line issues. Anything else could not be sent
// upstream as a header, so it is refused before it costs a call.
func ValidCredential(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" || len(s) > MaxCredentialLen {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// ErrInvalidRequest reports a call that could not be sent as asked (a
// header value or path no HTTP client would send). It is refused before the
// breaker sees it: it says nothing about Direct Line.
var ErrInvalidRequest = errors.New("upstream: invalid request")

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// newAPIError reads an error answer. The body is closed.
func newAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	e := &APIError{Status: resp.StatusCode, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body errorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&body); err == nil {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	}
	return e
}

// maxRetryAfter caps what a server may ask for: a bigger value is almost
// surely milliseconds (the official client reads it that way) or a bug.
const maxRetryAfter = 10 * time.Minute

// ParseRetryAfter reads a Retry-After value: delta-seconds or an HTTP date,
// as HTTP defines it. A number of seconds above ten minutes is taken as
// milliseconds, since the official Direct Line client reads the header as
// milliseconds and services written against it may send that. The result is
// capped at ten minutes; garbage yields zero.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		d := time.Duration(n) * time.Second
		if n > int64(maxRetryAfter/time.Second) {
			d = time.Duration(min(n, int64(maxRetryAfter/time.Millisecond))) * time.Millisecond
		}
		return min(d, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}
