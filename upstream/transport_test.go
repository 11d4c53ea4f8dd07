package upstream_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/dlsse/dlsse/upstream"
)

// connCounter follows a server's connections through its ConnState hook.
type connCounter struct {
	mu         sync.Mutex
	open, peak int
}

func (c *connCounter) track(_ net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateNew:
		c.open++
		c.peak = max(c.peak, c.open)
	case http.StateClosed, http.StateHijacked:
		c.open--
	}
}

func (c *connCounter) max() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// TestRESTConnectionCap: many concurrent calls to a plain-HTTP (HTTP/1.1)
// upstream, the first ones held by the server until as many as can be are
// in flight, never open more connections than MaxConnsPerHost; the calls
// beyond the cap wait for a connection and all succeed. The control, with
// no cap, shows the same load opening a connection per call.
func TestRESTConnectionCap(t *testing.T) {
	const calls = 24
	tests := []struct {
		name     string
		maxConns int
		inFlight int // calls the server sees at once before it answers
	}{
		{"capped at 4", 4, 4},
		{"no cap", -1, calls},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{}, calls)
			release := make(chan struct{})
			var conns connCounter
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"conversationId":"c","token":"t","streamUrl":"ws://example.invalid/stream"}`)
			}))
			srv.Config.ConnState = conns.track
			srv.Start()
			t.Cleanup(srv.Close)
			var once sync.Once
			open := func() { once.Do(func() { close(release) }) }
			t.Cleanup(open) // runs before srv.Close: held handlers return

			c, err := upstream.New(upstream.Config{BaseURL: srv.URL, MaxConnsPerHost: tt.maxConns})
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			errs := make(chan error, calls)
			for i := range calls {
				go func() {
					_, err := c.Reconnect(ctx, "tok", fmt.Sprintf("conv%d", i), "")
					errs <- err
				}()
			}
			for range tt.inFlight {
				select {
				case <-arrived:
				case <-ctx.Done():
					t.Fatalf("fewer than %d calls reached the server at once (peak connections %d)", tt.inFlight, conns.max())
				}
			}
			open()
			for range calls {
				if err := <-errs; err != nil {
					t.Errorf("call: %v", err)
				}
			}
			peak := conns.max()
			t.Logf("%d concurrent calls, peak %d connections", calls, peak)
			if tt.maxConns > 0 && peak > tt.maxConns {
				t.Errorf("peak %d connections open at once, want at most %d", peak, tt.maxConns)
			}
			if peak < tt.inFlight {
				t.Errorf("peak %d connections with %d calls held in flight", peak, tt.inFlight)
			}
		})
	}
}
