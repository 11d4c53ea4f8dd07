package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dlsse/dlsse/upstream"
)

// failures records what Hooks.Failure is told.
type failures struct {
	mu   sync.Mutex
	seen []string // "op addr cause"
	errs []error
}

func (f *failures) hook(op, addr string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, op+" "+addr+" "+err.Error())
	f.errs = append(f.errs, err)
}

func (f *failures) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// closedPort is a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestFailureHookNamesOperationAddressAndCause: a Direct Line on a closed
// port is reported per call with the operation, host:port and "connection
// refused" — for a dial too, whose URL carries a token that never appears.
func TestFailureHookNamesOperationAddressAndCause(t *testing.T) {
	addr := closedPort(t)
	var f failures
	c, _ := newClient(t, "http://"+addr, upstream.Config{Hooks: upstream.Hooks{Failure: f.hook}})
	ctx := testCtx(t)

	if _, err := c.Reconnect(ctx, "secret-credential", "conv", "7"); err == nil {
		t.Fatal("reconnect to a closed port succeeded")
	}
	const streamToken = "stream-token-in-the-url"
	if _, err := c.Dial(ctx, "ws://"+addr+"/v3/directline/conversations/conv/stream?watermark=7&t="+streamToken); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	want := []string{
		"reconnect " + addr + " connection refused",
		"dial " + addr + " connection refused",
	}
	got := f.list()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures reported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range got {
		if strings.Contains(s, streamToken) || strings.Contains(s, "secret-credential") || strings.Contains(s, "?") {
			t.Errorf("a failure report quotes a URL or credential: %q", s)
		}
	}
	if len(f.errs) > 0 && !errors.Is(f.errs[0], syscall.ECONNREFUSED) {
		t.Errorf("the reported error %v does not unwrap to ECONNREFUSED", f.errs[0])
	}
}

// TestFailureHookReportsServerFailuresOnly: a 5xx answer is a failure; a
// 4xx, a 502 to a post (the bot's verdict) and the caller's own
// cancellation are not.
func TestFailureHookReportsServerFailuresOnly(t *testing.T) {
	status := http.StatusServiceUnavailable
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	setStatus := func(s int) { mu.Lock(); status = s; mu.Unlock() }
	var f failures
	c, _ := newClient(t, srv.URL, upstream.Config{Hooks: upstream.Hooks{Failure: f.hook}})
	ctx := testCtx(t)
	host := strings.TrimPrefix(srv.URL, "http://")

	_, _ = c.Activities(ctx, "tok", "conv", "")
	setStatus(http.StatusForbidden)
	_, _ = c.Activities(ctx, "tok", "conv", "")
	setStatus(http.StatusBadGateway)
	resp, err := c.Forward(ctx, http.MethodPost, "/conversations/conv/activities", "", nil, strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = c.Activities(cancelled, "tok", "conv", "")

	want := []string{"get_activities " + host + " status 503 Service Unavailable"}
	if got := f.list(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures reported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFailureHookNamesTLSFailures: an https Direct Line whose certificate
// the client does not trust is a TLS handshake failure, said so.
func TestFailureHookNamesTLSFailures(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake it refuses is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var f failures
	// The default transport: it does not trust the test server's
	// certificate.
	c, err := upstream.New(upstream.Config{BaseURL: srv.URL, Hooks: upstream.Hooks{Failure: f.hook}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Activities(testCtx(t), "tok", "conv", "")
	got := f.list()
	if len(got) != 1 || !strings.HasPrefix(got[0], "get_activities "+strings.TrimPrefix(srv.URL, "https://")+" TLS handshake: tls: ") {
		t.Errorf("failures reported: %q, want one TLS handshake failure", got)
	}
}

// TestFailureCauses: each kind of transport failure is named the same way
// every time, without the URL the transport quoted.
func TestFailureCauses(t *testing.T) {
	const secretURL = "https://directline.example:443/v3/directline/conversations/c/stream?t=SECRET"
	wrap := func(err error) error { return &url.Error{Op: "Get", URL: secretURL, Err: err} }
	for _, tt := range []struct {
		err  error
		want string
	}{
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "x"}}), "dial tcp: x"}, // any other: its own text
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), "connection refused"},
		{wrap(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), "connection reset by peer"},
		{wrap(&net.DNSError{Err: "no such host", Name: "directline.invalid", IsNotFound: true}), "lookup directline.invalid: no such host"},
		{wrap(context.DeadlineExceeded), "timeout"},
		{wrap(fmt.Errorf("tls: %w", tlsAlert{})), "TLS handshake: tls: bad certificate"},
		{wrap(errors.New("unexpected EOF from " + secretURL)), "transport error"},
	} {
		var got string
		var f failures
		c, err := upstream.New(upstream.Config{BaseURL: "https://directline.example", Hooks: upstream.Hooks{Failure: f.hook},
			Transport: failingTransport{tt.err}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Activities(testCtx(t), "tok", "conv", "")
		if l := f.list(); len(l) == 1 {
			got = strings.TrimPrefix(l[0], "get_activities directline.example:443 ")
		}
		if got != tt.want {
			t.Errorf("%v: cause %q, want %q", tt.err, got, tt.want)
		}
		if strings.Contains(got, "SECRET") {
			t.Errorf("%v: the cause quotes the URL", tt.err)
		}
	}
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// tlsAlert stands for a TLS alert from the server.
type tlsAlert struct{}

func (tlsAlert) Error() string { return "bad certificate" }
