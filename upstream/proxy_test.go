package upstream_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dlsse/dlsse/internal/squidtest"
	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// proxied is a conversation on a fake Direct Line, reached through squid.
type proxied struct {
	fake      *directlinetest.Server
	c         *upstream.Client
	conv, tok string
	streamURL string // from a reconnect, itself through squid
}

func newProxied(t *testing.T, squid *squidtest.Proxy) proxied {
	t.Helper()
	p := proxied{fake: newFake(t)}
	var err error
	p.c, err = upstream.New(upstream.Config{
		BaseURL:   p.fake.URL,
		Transport: &http.Transport{Proxy: http.ProxyURL(squid.URL)},
		Breaker:   trip3(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.conv, p.tok = p.fake.NewConversation()
	info, err := p.c.Reconnect(testCtx(t), p.tok, p.conv, "")
	if err != nil {
		t.Fatal(err)
	}
	p.streamURL = info.StreamURL
	return p
}

// TestStreamThroughProxy: a gateway that reaches Direct Line through an
// egress proxy (squid) streams through it too, in a CONNECT tunnel, and the
// stream works as a direct one does.
func TestStreamThroughProxy(t *testing.T) {
	squid := squidtest.Start(t, squidtest.Options{})
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		p := newProxied(t, squid)
		s := dialRead(t, p.c, p.streamURL, read)
		if err := p.fake.Push(p.conv, "through the proxy"); err != nil {
			t.Fatal(err)
		}
		if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != "through the proxy" {
			t.Fatalf("got %v", got)
		}
		// squid logs a tunnel once it closes.
		_ = s.Close()
		tunnel := "CONNECT " + strings.TrimPrefix(p.fake.URL, "http://")
		eventually(t, "squid to log the tunnel", func() bool { return strings.Contains(squid.AccessLog(), tunnel) })
	})
}

// TestStreamProxyRefusesTunnel: a proxy that refuses the tunnel fails the
// dial at once, saying so, without quoting the stream URL (it holds a
// token); and however often, it does not open the breaker, which would
// refuse the REST calls too (they go through the proxy without a tunnel).
func TestStreamProxyRefusesTunnel(t *testing.T) {
	p := newProxied(t, squidtest.Start(t, squidtest.Options{DenyConnect: true}))
	for range 5 { // trip3 opens at 3
		_, err := p.c.Dial(testCtx(t), p.streamURL)
		if err == nil || !strings.Contains(err.Error(), "proxy refused the tunnel (403") {
			t.Fatalf("got %v, want the proxy's refusal", err)
		}
		if strings.Contains(err.Error(), p.tok) || strings.Contains(err.Error(), "t=") {
			t.Errorf("the error quotes the stream URL: %v", err)
		}
	}
	if _, err := p.c.Reconnect(testCtx(t), p.tok, p.conv, ""); err != nil {
		t.Fatalf("a REST call after the refusals: %v", err)
	}
}

// TestStreamThroughProxyOverTLS: Direct Line's streams are wss: TLS
// inside the tunnel, read on readiness as without a proxy.
func TestStreamThroughProxyOverTLS(t *testing.T) {
	squid := squidtest.Start(t, squidtest.Options{})
	srv := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate and a client trusting it
	defer srv.Close()
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		url := handshakeServer(t, srv.TLS, func(out *segments, br *bufio.Reader, answer []byte) {
			if out.Send(answer, textFrame(activitySet("tunnelled"))) != nil {
				return
			}
			_, _ = io.Copy(io.Discard, br)
		})
		tr := &http.Transport{Proxy: http.ProxyURL(squid.URL), TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
		c, err := upstream.New(upstream.Config{BaseURL: srv.URL, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		s := dialRead(t, c, url, read)
		if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != "tunnelled" {
			t.Fatalf("got %v", got)
		}
		_ = s.Close()
		tunnel := "CONNECT " + strings.TrimPrefix(strings.TrimSuffix(url, "/stream?t=tok"), "wss://")
		eventually(t, "squid to log the tunnel", func() bool { return strings.Contains(squid.AccessLog(), tunnel) })
	})
}
