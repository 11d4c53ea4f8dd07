package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/fasthttp/websocket"
)

// Failure is what Hooks.Failure is told a call failed with: a short text
// naming the cause ("connection refused", "lookup x: no such host", "TLS
// handshake: …", "timeout", "status 503"), the same for every call that
// failed the same way, so a logger can say it once per cause. It never
// quotes a URL: a stream URL carries a token.
type Failure struct {
	Cause string
	err   error // what Cause was read from, URL wrappers removed
}

func (f *Failure) Error() string { return f.Cause }

// Unwrap gives errors.Is and errors.As the underlying error (a
// syscall.Errno, a *net.DNSError, a TLS error).
func (f *Failure) Unwrap() error { return f.err }

// noteFailure tells Hooks.Failure about a call to addr that failed: no
// answer, or one the breaker counts as a failure, or a proxy on the way
// refusing. What is this side's own doing (the caller cancelled, its body
// failed, this host ran out of descriptors) is not reported here.
func (c *Client) noteFailure(op, addr string, err error) {
	h := c.cfg.Hooks.Failure
	if h == nil || notTheService(err) {
		return
	}
	h(op, addr, failureOf(err))
}

// noteStatus reports an answer the breaker counts as a failure (5xx, 408).
func (c *Client) noteStatus(op, addr string, status int) {
	if h := c.cfg.Hooks.Failure; h != nil && statusVerdict(op, status) != nil {
		h(op, addr, &Failure{Cause: "status " + strconv.Itoa(status) + " " + http.StatusText(status)})
	}
}

// failureOf names the cause of a transport failure.
func failureOf(err error) *Failure {
	for {
		var ue *url.Error
		if !errors.As(err, &ue) {
			break
		}
		err = ue.Err // the rest is the URL
	}
	var (
		dns   *net.DNSError
		errno syscall.Errno
		ne    net.Error
	)
	msg := err.Error()
	switch {
	case errors.As(err, &dns):
		return &Failure{Cause: "lookup " + dns.Name + ": " + dns.Err, err: dns}
	case isTLS(err):
		if errors.As(err, &ne) && ne.Timeout() {
			return &Failure{Cause: "TLS handshake: timeout", err: err}
		}
		if i := strings.Index(msg, "tls: "); i >= 0 {
			msg = msg[i:]
		}
		return &Failure{Cause: "TLS handshake: " + msg, err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Failure{Cause: "timeout", err: err}
	case errors.As(err, &errno):
		return &Failure{Cause: errno.Error(), err: errno}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &Failure{Cause: "connection closed before an answer", err: err}
	case errors.Is(err, websocket.ErrBadHandshake):
		return &Failure{Cause: "WebSocket handshake refused", err: websocket.ErrBadHandshake}
	case strings.Contains(msg, "://"):
		return &Failure{Cause: "transport error", err: errors.New("transport error")}
	}
	return &Failure{Cause: msg, err: err}
}

// isTLS reports a failure of the TLS handshake: a certificate the client
// does not trust, a server that does not speak TLS, an alert, a timeout.
func isTLS(err error) bool {
	var (
		verify *tls.CertificateVerificationError
		header tls.RecordHeaderError
		alert  tls.AlertError
		hosts  x509.HostnameError
		auth   x509.UnknownAuthorityError
		cert   x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert) ||
		errors.As(err, &hosts) || errors.As(err, &auth) || errors.As(err, &cert) ||
		strings.Contains(err.Error(), "TLS handshake") || strings.HasPrefix(err.Error(), "tls: ")
}

// hostPort is u's host with its port, the scheme's default when it has
// none: where a call went, without path, query or credentials.
func hostPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return net.JoinHostPort(u.Hostname(), p)
	}
	port := "80"
	if u.Scheme == "https" || u.Scheme == "wss" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
