package metrics_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/metrics"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// Metrics is what cmd/dlsse hands to the session manager and the gateway.
var (
	_ session.Observer = (*metrics.Metrics)(nil)
	_ gateway.Observer = (*metrics.Metrics)(nil)
)

// gathered is one Gather of a registry, looked up by name and labels.
type gathered map[string]*dto.MetricFamily

func gather(t *testing.T, m *metrics.Metrics) gathered {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	g := make(gathered, len(fams))
	for _, f := range fams {
		g[f.GetName()] = f
	}
	return g
}

// sample returns the series of name carrying exactly labels (pairs), or
// nil.
func (g gathered) sample(name string, labels ...string) *dto.Metric {
	f := g[name]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		match := true
		for i, l := range m.GetLabel() { // sorted by name, as are the pairs given
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				match = false
			}
		}
		if match {
			return m
		}
	}
	return nil
}

func (g gathered) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m := g.sample(name, labels...)
	switch {
	case m == nil:
		t.Errorf("series %s%v missing", name, labels)
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Errorf("series %s%v is neither counter nor gauge", name, labels)
	return -1
}

func (g gathered) expect(t *testing.T, name string, want float64, labels ...string) {
	t.Helper()
	if got := g.value(t, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestNewExportsKnownSeriesAtZero(t *testing.T) {
	t.Parallel()
	g := gather(t, metrics.New())
	for _, name := range []string{"dlsse_sessions_open", "dlsse_upstream_sockets_open", "dlsse_sse_subscribers_open",
		"dlsse_activities_received_total", "dlsse_activities_delivered_total", "dlsse_breaker_state",
		"dlsse_upstream_reconnects_delayed_total", "dlsse_upstream_reconnect_delay_seconds_total"} {
		g.expect(t, name, 0)
	}
	for _, r := range []string{"closed", "collision", "stalled", "lost"} {
		g.expect(t, "dlsse_upstream_reconnects_total", 0, "reason", r)
	}
	for _, r := range []string{"slow", "client_gone", "shutdown", "ended", "upstream_error", "token_expired"} {
		g.expect(t, "dlsse_sse_disconnects_total", 0, "reason", r)
	}
	for _, s := range []string{"closed", "half-open", "open"} {
		g.expect(t, "dlsse_breaker_transitions_total", 0, "to", s)
	}
	g.expect(t, "dlsse_replay_total", 0, "result", "hit")
	g.expect(t, "dlsse_replay_total", 0, "result", "miss")
	g.expect(t, "dlsse_token_refreshes_total", 0, "result", "ok")
	g.expect(t, "dlsse_token_refreshes_total", 0, "result", "error")
	if g["go_goroutines"] == nil || g["process_cpu_seconds_total"] == nil && g["process_start_time_seconds"] == nil {
		t.Errorf("Go runtime or process metrics missing")
	}
	// The session reason constant is one of the pre-declared labels.
	if session.ReasonUpstream != "upstream_error" {
		t.Errorf("session.ReasonUpstream = %q; the pre-declared disconnect label is upstream_error", session.ReasonUpstream)
	}
}

func TestObserverEventsMoveTheirSeries(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.SessionOpened()
	m.SessionOpened()
	m.SessionClosed()
	m.UpstreamConnected()
	m.UpstreamConnected()
	m.UpstreamDisconnected()
	m.Reconnect("lost")
	m.Reconnect("lost")
	m.Reconnect("collision")
	m.ReconnectDelayed(1500 * time.Millisecond)
	m.ReconnectDelayed(250 * time.Millisecond)
	m.ActivitiesReceived(3)
	m.ActivitiesReceived(0)
	m.ActivitiesDelivered(5)
	m.ActivitiesDelivered(2)
	m.Replay(true)
	m.Replay(false)
	m.Replay(false)
	m.TokenRefreshed(nil)
	m.TokenRefreshed(errors.New("refused"))
	m.TokenRefreshed(errors.New("refused"))
	m.StreamOpened(session.WireSSE)
	m.StreamOpened(session.WireSSE)
	m.StreamOpened(session.WireSSE)
	m.StreamClosed(session.WireSSE, sse.ReasonClientGone)
	m.StreamClosed(session.WireSSE, session.ReasonUpstream)
	m.StreamOpened(session.WireWebSocket)
	m.StreamOpened(session.WireWebSocket)
	m.StreamClosed(session.WireWebSocket, session.ReasonProtocolError)
	m.UpgradeRefused("origin")

	g := gather(t, m)
	g.expect(t, "dlsse_sessions_open", 1)
	g.expect(t, "dlsse_upstream_sockets_open", 1)
	g.expect(t, "dlsse_upstream_reconnects_total", 2, "reason", "lost")
	g.expect(t, "dlsse_upstream_reconnects_total", 1, "reason", "collision")
	g.expect(t, "dlsse_upstream_reconnects_total", 0, "reason", "closed")
	g.expect(t, "dlsse_upstream_reconnects_delayed_total", 2)
	g.expect(t, "dlsse_upstream_reconnect_delay_seconds_total", 1.75)
	g.expect(t, "dlsse_activities_received_total", 3)
	g.expect(t, "dlsse_activities_delivered_total", 7)
	g.expect(t, "dlsse_replay_total", 1, "result", "hit")
	g.expect(t, "dlsse_replay_total", 2, "result", "miss")
	g.expect(t, "dlsse_token_refreshes_total", 1, "result", "ok")
	g.expect(t, "dlsse_token_refreshes_total", 2, "result", "error")
	g.expect(t, "dlsse_sse_subscribers_open", 1)
	g.expect(t, "dlsse_sse_disconnects_total", 1, "reason", "client_gone")
	g.expect(t, "dlsse_sse_disconnects_total", 1, "reason", "upstream_error")
	g.expect(t, "dlsse_sse_disconnects_total", 0, "reason", "slow")
	g.expect(t, "dlsse_websocket_subscribers_open", 1)
	g.expect(t, "dlsse_websocket_disconnects_total", 1, "reason", "protocol_error")
	g.expect(t, "dlsse_websocket_upgrades_refused_total", 1, "reason", "origin")
	g.expect(t, "dlsse_websocket_upgrades_refused_total", 0, "reason", "disabled")
}

func TestUpstreamHooksRecordRequestsAndBreaker(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	hooks := m.UpstreamHooks()
	hooks.Request("start", http.StatusCreated, 20*time.Millisecond)
	hooks.Request("start", http.StatusCreated, 3*time.Second)
	hooks.Request("dial", upstream.StatusRefused, 0)
	hooks.Request("reconnect", upstream.StatusTransport, 10*time.Millisecond)

	g := gather(t, m)
	h := g.sample("dlsse_upstream_request_duration_seconds", "operation", "start", "status", "201")
	if h == nil || h.Histogram == nil {
		t.Fatal(`histogram {operation="start",status="201"} missing`)
	}
	if got := h.Histogram.GetSampleCount(); got != 2 {
		t.Errorf("start/201 count = %d, want 2", got)
	}
	if got := h.Histogram.GetSampleSum(); got < 3.019 || got > 3.021 {
		t.Errorf("start/201 sum = %v s, want 3.02", got)
	}
	for _, b := range h.Histogram.GetBucket() {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 3:
			want = 2
		case b.GetUpperBound() >= 0.02:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	for _, c := range []struct{ op, status string }{{"dial", "-1"}, {"reconnect", "0"}} {
		s := g.sample("dlsse_upstream_request_duration_seconds", "operation", c.op, "status", c.status)
		if s == nil || s.Histogram.GetSampleCount() != 1 {
			t.Errorf("%s/%s: %v, want one observation", c.op, c.status, s)
		}
	}

	hooks.BreakerChange(gobreaker.StateClosed, gobreaker.StateOpen)
	g = gather(t, m)
	g.expect(t, "dlsse_breaker_state", 2)
	g.expect(t, "dlsse_breaker_transitions_total", 1, "to", "open")
	hooks.BreakerChange(gobreaker.StateOpen, gobreaker.StateHalfOpen)
	hooks.BreakerChange(gobreaker.StateHalfOpen, gobreaker.StateClosed)
	g = gather(t, m)
	g.expect(t, "dlsse_breaker_state", 0)
	g.expect(t, "dlsse_breaker_transitions_total", 1, "to", "half-open")
	g.expect(t, "dlsse_breaker_transitions_total", 1, "to", "closed")
}

// Each Metrics has a registry of its own: several gateways in one process
// (tests) neither panic on registration nor see each other's counts.
func TestInstancesAreIndependent(t *testing.T) {
	t.Parallel()
	a, b := metrics.New(), metrics.New()
	a.SessionOpened()
	gather(t, a).expect(t, "dlsse_sessions_open", 1)
	gather(t, b).expect(t, "dlsse_sessions_open", 0)
}

func TestHandlerServesTextFormat(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.Reconnect("stalled")
	m.UpstreamHooks().Request("post_activity", http.StatusOK, 40*time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`# TYPE dlsse_upstream_reconnects_total counter`,
		`dlsse_upstream_reconnects_total{reason="stalled"} 1`,
		`# TYPE dlsse_upstream_request_duration_seconds histogram`,
		`dlsse_upstream_request_duration_seconds_count{operation="post_activity",status="200"} 1`,
		`dlsse_breaker_state 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// TestBuildInfoNamesOneVersion: dlsse_build_info is 1 for the version set
// last, and carries no other.
func TestBuildInfoNamesOneVersion(t *testing.T) {
	m := metrics.New()
	m.SetBuildInfo("v1")
	m.SetBuildInfo("v2 (0123456789ab) go1.26.8")
	g := gather(t, m)
	g.expect(t, "dlsse_build_info", 1, "version", "v2 (0123456789ab) go1.26.8")
	if n := len(g["dlsse_build_info"].GetMetric()); n != 1 {
		t.Errorf("dlsse_build_info has %d series, want 1", n)
	}
}
