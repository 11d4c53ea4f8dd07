package gateway_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestShutdownClosesSilentConnections: a connection that never sent a byte
// (a browser's preconnect, an HTTP client's spare dial) does not hold
// Shutdown up until the read timeout; one in the middle of a request still
// gets its answer.
func TestShutdownClosesSilentConnections(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	addr := strings.TrimPrefix(h.URL, "http://")
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A live connection too: its request is served before the end.
	live, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(live, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("live request: %q %v", buf, err)
	}
	// The server has seen the silent one (it is accepted as soon as the
	// dial returns, in the kernel's backlog at worst): give Shutdown a
	// deadline far below the 30 s read timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a silent connection held it)", err)
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection is still open")
	}
}
