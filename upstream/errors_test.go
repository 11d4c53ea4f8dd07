package upstream_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dlsse/dlsse/upstream"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)
	tests := []struct {
		name string
		v    string
		want time.Duration
	}{
		{"absent", "", 0},
		{"zero seconds", "0", 0},
		{"seconds", "7", 7 * time.Second},
		{"plus sign", "+5", 5 * time.Second},
		{"ten minutes exactly", "600", 10 * time.Minute},
		// Above ten minutes a number is read as milliseconds.
		{"just above: milliseconds", "601", 601 * time.Millisecond},
		{"milliseconds", "1500", 1500 * time.Millisecond},
		{"two minutes in ms", "120000", 2 * time.Minute},
		{"an hour in ms: capped", "3600000", 10 * time.Minute},
		{"absurd: capped", "99999999999", 10 * time.Minute},
		{"absurd beyond Duration in ms: capped", "10000000000000000", 10 * time.Minute},
		{"wraps to negative as ms: capped", "18446744073709551", 10 * time.Minute},
		{"max int64: capped", "9223372036854775807", 10 * time.Minute},
		{"beyond int64: garbage", "99999999999999999999", 0},
		{"negative", "-1", 0},
		{"negative huge", "-9223372036854775808", 0},
		{"fraction", "1.5", 0},
		{"spaces", " 5", 0},
		{"word", "soon", 0},
		{"hex", "0x10", 0},
		{"HTTP date ahead", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"RFC 850 date ahead", now.Add(30 * time.Second).Format(time.RFC850), 30 * time.Second},
		{"ANSI C date ahead", now.Add(45 * time.Second).Format(time.ANSIC), 45 * time.Second},
		{"HTTP date now", now.Format(http.TimeFormat), 0},
		{"HTTP date past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"HTTP date far ahead: capped", now.Add(48 * time.Hour).Format(http.TimeFormat), 10 * time.Minute},
		{"malformed date", "Fri, 32 Foo 2025 99:00:00 GMT", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := upstream.ParseRetryAfter(tt.v, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}

func TestAPIErrorTextAndTerminal(t *testing.T) {
	tests := []struct {
		err      upstream.APIError
		text     string
		terminal bool
	}{
		{upstream.APIError{Status: 400, Code: "BadArgument"}, "upstream: status 400 BadArgument", true},
		{upstream.APIError{Status: 401}, "upstream: status 401", true},
		{upstream.APIError{Status: 403, Code: "TokenExpired", Message: "token expired"}, "upstream: status 403 TokenExpired", true},
		{upstream.APIError{Status: 404}, "upstream: status 404", true},
		{upstream.APIError{Status: 408}, "upstream: status 408", false},
		{upstream.APIError{Status: 409, Code: "Conflict"}, "upstream: status 409 Conflict", false},
		{upstream.APIError{Status: 429, RetryAfter: time.Second}, "upstream: status 429", false},
		{upstream.APIError{Status: 500, Code: "ServiceError"}, "upstream: status 500 ServiceError", false},
		{upstream.APIError{Status: 502}, "upstream: status 502", false},
		{upstream.APIError{Status: 503}, "upstream: status 503", false},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.text {
			t.Errorf("%+v: Error() = %q, want %q", tt.err, got, tt.text)
		}
		// Summary is the text without the package's prefix: what a
		// status event quotes after "Direct Line answered".
		if got, want := tt.err.Summary(), strings.TrimPrefix(tt.text, "upstream: "); got != want {
			t.Errorf("%+v: Summary() = %q, want %q", tt.err, got, want)
		}
		if got := tt.err.Terminal(); got != tt.terminal {
			t.Errorf("%+v: Terminal() = %v, want %v", tt.err, got, tt.terminal)
		}
	}
}

// TestInjectedFailuresBecomeAPIErrors checks that every REST call the client
// makes for itself turns an error answer into an *APIError carrying the
// status, the Direct Line code and message, and the Retry-After.
func TestInjectedFailuresBecomeAPIErrors(t *testing.T) {
	farDate := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		status     int
		code       string
		retryAfter string
		wantCode   string
		wantRetry  time.Duration
	}{
		{http.StatusTooManyRequests, "TooManyRequests", "7", "TooManyRequests", 7 * time.Second},
		{http.StatusServiceUnavailable, "", "", "ServiceError", 0}, // the fake's default code
		{http.StatusBadGateway, "BadGateway", "120000", "BadGateway", 2 * time.Minute},
		{http.StatusInternalServerError, "X", farDate, "X", 10 * time.Minute},
		{http.StatusBadRequest, "BadArgument", "garbage", "BadArgument", 0},
		{http.StatusForbidden, "TokenExpired", "", "TokenExpired", 0},
	}
	calls := []struct {
		name string
		call func(c *upstream.Client, conv, tok string) error
	}{
		{"Reconnect", func(c *upstream.Client, conv, tok string) error { return reconnectCall(c, conv, tok, "") }},
		{"Activities", func(c *upstream.Client, conv, tok string) error { return activitiesCall(c, conv, tok, "") }},
	}
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{}) // default breaker: never trips on 6 failures
	conv, tok := fake.NewConversation()
	for _, call := range calls {
		for _, tt := range tests {
			fake.FailNext(1, tt.status, tt.code, tt.retryAfter)
			err := call.call(c, conv, tok)
			var apiErr *upstream.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("%s answered %d: %v (%T), want *APIError", call.name, tt.status, err, err)
			}
			if apiErr.Status != tt.status || apiErr.Code != tt.wantCode || apiErr.Message != "injected failure" {
				t.Errorf("%s answered %d %q: got %+v", call.name, tt.status, tt.code, apiErr)
			}
			// A date an hour ahead is capped at ten minutes; allow for the
			// second it may take to get here.
			if d := apiErr.RetryAfter - tt.wantRetry; d > 0 || d < -time.Second || (tt.wantRetry == 0 && apiErr.RetryAfter != 0) {
				t.Errorf("%s answered %d Retry-After %q: RetryAfter %v, want %v", call.name, tt.status, tt.retryAfter, apiErr.RetryAfter, tt.wantRetry)
			}
			if errors.Is(err, upstream.ErrUnavailable) {
				t.Errorf("%s: an answer reported as ErrUnavailable", call.name)
			}
		}
	}
	if st := fake.Stats(); st.ReconnectCalls != 0 || st.ActivityGets != 0 {
		t.Errorf("injected failures reached the handlers: %+v", st)
	}
}

// TestRealRefusalsBecomeAPIErrors uses refusals the fake really makes.
func TestRealRefusalsBecomeAPIErrors(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, _ := fake.NewConversation()
	other, _ := fake.NewConversation()
	expired, expiredTok := fake.NewConversation()
	fake.ExpireTokens()
	// Tokens issued after ExpireTokens stay valid: reissue the good ones.
	fresh, err := c.Reconnect(testCtx(t), fake.Secret(), conv, "")
	if err != nil {
		t.Fatal(err)
	}
	tok := fresh.Token

	tests := []struct {
		name       string
		credential string
		conv       string
		status     int
		code       string
	}{
		{"expired token", expiredTok, expired, http.StatusForbidden, "TokenExpired"},
		{"token of another conversation", tok, other, http.StatusForbidden, "Forbidden"},
		{"unknown token", "not-a-token", conv, http.StatusForbidden, "Forbidden"},
		{"unknown conversation", fake.Secret(), "NOPE", http.StatusNotFound, "BadArgument"},
		{"no credential", "", conv, http.StatusUnauthorized, "BadArgument"},
	}
	for _, tt := range tests {
		_, err := c.Reconnect(testCtx(t), tt.credential, tt.conv, "")
		var apiErr *upstream.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != tt.status || apiErr.Code != tt.code {
			t.Errorf("%s: %v, want *APIError %d %s", tt.name, err, tt.status, tt.code)
			continue
		}
		if !apiErr.Terminal() {
			t.Errorf("%s: %v is not terminal", tt.name, apiErr)
		}
	}
}

// TestNonDirectLineAnswers: a proxy's HTML error page is still an
// *APIError (without a code), a 2xx that is not JSON is a decoding error,
// and a service that cannot be reached is neither.
func TestNonDirectLineAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("watermark") {
		case "1":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Retry-After", "4")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		default:
			_, _ = w.Write([]byte("<html>hello</html>"))
		}
	}))
	t.Cleanup(srv.Close)
	c, _ := newClient(t, srv.URL, upstream.Config{})

	_, err := c.Activities(testCtx(t), "tok", "conv", "1")
	var apiErr *upstream.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway || apiErr.Code != "" || apiErr.RetryAfter != 4*time.Second {
		t.Errorf("HTML 502: %v (%+v)", err, apiErr)
	} else if apiErr.Error() != "upstream: status 502" {
		t.Errorf("HTML 502: Error() = %q", apiErr.Error())
	}

	_, err = c.Activities(testCtx(t), "tok", "conv", "")
	if err == nil || errors.As(err, &apiErr) {
		t.Errorf("HTML 200: %v, want a decoding error", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	c, _ = newClient(t, closed, upstream.Config{})
	_, err = c.Reconnect(testCtx(t), "tok", "conv", "")
	if err == nil || errors.As(err, &apiErr) || errors.Is(err, upstream.ErrUnavailable) {
		t.Errorf("closed port: %v, want a transport error", err)
	}
}
