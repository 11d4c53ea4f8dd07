package upstream_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dlsse/dlsse/internal/squidtest"
	"github.com/dlsse/dlsse/upstream"
)

// TestStreamThroughProxy: a gateway that reaches Direct Line through an
// egress proxy (squid) streams through it too, in a CONNECT tunnel, and the
// stream works as a direct one does.
func TestStreamThroughProxy(t *testing.T) {
	squid := squidtest.Start(t, squidtest.Options{})
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		fake := newFake(t)
		c, err := upstream.New(upstream.Config{BaseURL: fake.URL, Transport: &http.Transport{Proxy: http.ProxyURL(squid.URL)}})
		if err != nil {
			t.Fatal(err)
		}
		conv, tok := fake.NewConversation()
		info, err := c.Reconnect(testCtx(t), tok, conv, "")
		if err != nil {
			t.Fatal(err)
		}
		s := dialRead(t, c, info.StreamURL, read)
		if err := fake.Push(conv, "through the proxy"); err != nil {
			t.Fatal(err)
		}
		if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != "through the proxy" {
			t.Fatalf("got %v", got)
		}
		// squid logs a tunnel once it closes.
		_ = s.Close()
		tunnel := "CONNECT " + strings.TrimPrefix(fake.URL, "http://")
		eventually(t, "squid to log the tunnel", func() bool { return strings.Contains(squid.AccessLog(), tunnel) })
	})
}

// TestStreamProxyRefusesTunnel: a proxy that refuses the tunnel fails the
// dial at once, saying so, without quoting the stream URL (it holds a
// token).
func TestStreamProxyRefusesTunnel(t *testing.T) {
	squid := squidtest.Start(t, squidtest.Options{DenyConnect: true})
	fake := newFake(t)
	c, err := upstream.New(upstream.Config{BaseURL: fake.URL, Transport: &http.Transport{Proxy: http.ProxyURL(squid.URL)}})
	if err != nil {
		t.Fatal(err)
	}
	conv, tok := fake.NewConversation()
	info, err := c.Reconnect(testCtx(t), tok, conv, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Dial(testCtx(t), info.StreamURL)
	if err == nil || !strings.Contains(err.Error(), "proxy refused the tunnel (403") {
		t.Fatalf("got %v, want the proxy's refusal", err)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "t=") {
		t.Errorf("the error quotes the stream URL: %v", err)
	}
}
