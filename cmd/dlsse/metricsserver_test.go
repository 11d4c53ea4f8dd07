package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetricsListen: with metrics_listen, /metrics is served there and
// only there; the public listener answers it 404. Both close at shutdown.
func TestMetricsListen(t *testing.T) {
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	ran := make(chan error, 1)
	go func() {
		ran <- run(ctx, []string{"-listen", addr, "-metrics-listen", metricsAddr, "-upstream-url", "http://127.0.0.1:1"}, nil, &stdout, &stderr)
	}()
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer client.CloseIdleConnections()
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(testTimeout)
	for status, _ := get("http://" + addr + "/readyz"); status != http.StatusOK; status, _ = get("http://" + addr + "/readyz") {
		if time.Now().After(deadline) {
			t.Fatalf("never ready; log:\n%s", stderr.String())
		}
		select {
		case err := <-ran:
			t.Fatalf("run ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if status, body := get("http://" + metricsAddr + "/metrics"); status != http.StatusOK || !strings.Contains(body, "dlsse_sessions_open") {
		t.Errorf("metrics_listen /metrics: %d %.200s", status, body)
	} else if info := `dlsse_build_info{version="` + version() + `"} 1`; !strings.Contains(body, info) {
		t.Errorf("/metrics lacks %s", info)
	}
	if status, body := get("http://" + addr + "/metrics"); status != http.StatusNotFound {
		t.Errorf("the public listener's /metrics: %d %.200s, want 404", status, body)
	}
	if status, _ := get("http://" + metricsAddr + "/v3/directline/conversations"); status != http.StatusNotFound {
		t.Errorf("metrics_listen serves more than /metrics: %d", status)
	}
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("run did not return")
	}
	ln, err := net.Listen("tcp", metricsAddr)
	if err != nil {
		t.Fatalf("the metrics listener was not closed: %v", err)
	}
	ln.Close()
}
