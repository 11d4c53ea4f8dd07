// Package metrics exports dlsse's Prometheus metrics. It implements the
// small observer interfaces of session and gateway and the hooks of
// upstream, so none of them imports Prometheus.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/cluster"
	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// Metrics holds every collector on a registry of its own (so tests can run
// many gateways in one process).
type Metrics struct {
	reg *prometheus.Registry

	sessions            prometheus.Gauge
	upstreamSockets     prometheus.Gauge
	subscribers         prometheus.Gauge
	wsSubscribers       prometheus.Gauge
	wsDisconnects       *prometheus.CounterVec
	upgradesRefused     *prometheus.CounterVec
	activitiesReceived  prometheus.Counter
	activitiesDelivered prometheus.Counter
	reconnects          *prometheus.CounterVec
	reconnectsDelayed   prometheus.Counter
	reconnectDelay      prometheus.Counter
	disconnects         *prometheus.CounterVec
	breakerState        prometheus.Gauge
	breakerTransitions  *prometheus.CounterVec
	upstreamRequests    *prometheus.HistogramVec
	replay              *prometheus.CounterVec
	tokenRefreshes      *prometheus.CounterVec
	owned               prometheus.Gauge
	ownership           *prometheus.CounterVec
	redisCalls          *prometheus.HistogramVec
	redisErrors         *prometheus.CounterVec
	buildInfo           *prometheus.GaugeVec
}

// New registers dlsse's metrics, plus the Go runtime and process ones.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{reg: reg}

	m.sessions = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dlsse_sessions_open",
		Help: "Conversations with a session in this process."})
	m.upstreamSockets = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dlsse_upstream_sockets_open",
		Help: "Direct Line WebSockets open."})
	m.subscribers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dlsse_sse_subscribers_open",
		Help: "SSE streams open."})
	m.wsSubscribers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dlsse_websocket_subscribers_open",
		Help: "WebSocket streams open (Direct Line's stream protocol)."})
	m.wsDisconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_websocket_disconnects_total",
		Help: "WebSocket streams ended, by reason (the SSE reasons, and protocol_error)."}, []string{"reason"})
	m.upgradesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_websocket_upgrades_refused_total",
		Help: "WebSocket upgrades of stream URLs refused, by reason (disabled, origin, handshake)."}, []string{"reason"})
	m.activitiesReceived = prometheus.NewCounter(prometheus.CounterOpts{Name: "dlsse_activities_received_total",
		Help: "Activities received from Direct Line and added to a replay log (duplicates not counted)."})
	m.activitiesDelivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "dlsse_activities_delivered_total",
		Help: "Activity events written to SSE subscribers."})
	m.reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_upstream_reconnects_total",
		Help: "Upstream stream losses that started a reconnect, by reason."}, []string{"reason"})
	m.reconnectsDelayed = prometheus.NewCounter(prometheus.CounterOpts{Name: "dlsse_upstream_reconnects_delayed_total",
		Help: "Upstream reconnect attempts held back by the process-wide reconnect limit (reconnect_rate, reconnect_burst)."})
	m.reconnectDelay = prometheus.NewCounter(prometheus.CounterOpts{Name: "dlsse_upstream_reconnect_delay_seconds_total",
		Help: "Time reconnect attempts waited for the reconnect limit, on top of their backoff, summed."})
	m.disconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_sse_disconnects_total",
		Help: "SSE streams ended, by reason (slow, client_gone, shutdown, ended, upstream_error, token_expired, protocol_error)."}, []string{"reason"})
	m.breakerState = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dlsse_breaker_state",
		Help: "Direct Line circuit breaker: 0 closed, 1 half-open, 2 open."})
	m.breakerTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_breaker_transitions_total",
		Help: "Circuit breaker state changes, by new state."}, []string{"to"})
	m.upstreamRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dlsse_upstream_request_duration_seconds",
		Help:    "Direct Line calls by operation and status (0: no answer, -1: refused by the open breaker).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"operation", "status"})
	m.replay = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_replay_total",
		Help: "Resumes and fall-behinds: served from the replay log (hit) or fetched from Direct Line (miss)."}, []string{"result"})
	m.tokenRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_token_refreshes_total",
		Help: "Upstream token refreshes by result."}, []string{"result"})
	m.owned = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dlsse_conversations_owned",
		Help: "Conversations whose Direct Line socket this replica holds the lease of."})
	m.ownership = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_ownership_events_total",
		Help: "Lease events of conversations (acquired, busy, renewed, renew_failed, lost, fenced, released, ended, store_error)."}, []string{"event"})
	m.redisCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dlsse_redis_call_duration_seconds",
		Help:    "Calls to Redis (cluster mode) by operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5}}, []string{"operation"})
	m.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlsse_redis_errors_total",
		Help: "Calls to Redis that failed (unreachable, timeout), by operation."}, []string{"operation"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dlsse_build_info",
		Help: "1, labelled with the version dlsse -version prints."}, []string{"version"})

	for _, c := range []prometheus.Collector{m.sessions, m.upstreamSockets, m.subscribers, m.wsSubscribers, m.wsDisconnects, m.upgradesRefused, m.activitiesReceived,
		m.activitiesDelivered, m.reconnects, m.reconnectsDelayed, m.reconnectDelay, m.disconnects, m.breakerState, m.breakerTransitions,
		m.upstreamRequests, m.replay, m.tokenRefreshes, m.buildInfo, m.owned, m.ownership, m.redisCalls, m.redisErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	// Known label values start at zero, so dashboards and alerts see
	// the series before the first event.
	for _, r := range session.ReconnectReasons() {
		m.reconnects.WithLabelValues(string(r))
	}
	for _, r := range []sse.Reason{sse.ReasonSlow, sse.ReasonClientGone, sse.ReasonShutdown, sse.ReasonEnded,
		session.ReasonUpstream, session.ReasonTokenExpired, session.ReasonProtocolError} {
		m.disconnects.WithLabelValues(string(r))
		m.wsDisconnects.WithLabelValues(string(r))
	}
	for _, r := range gateway.UpgradeRefusals() {
		m.upgradesRefused.WithLabelValues(r)
	}
	for _, st := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
		m.breakerTransitions.WithLabelValues(st.String())
	}
	m.replay.WithLabelValues("hit")
	m.replay.WithLabelValues("miss")
	m.tokenRefreshes.WithLabelValues("ok")
	m.tokenRefreshes.WithLabelValues("error")
	for _, e := range session.OwnershipEvents() {
		m.ownership.WithLabelValues(string(e))
	}
	for _, op := range cluster.Operations() {
		m.redisErrors.WithLabelValues(op)
		m.redisCalls.WithLabelValues(op)
	}
	return m
}

// RedisCall observes a call to Redis (cluster.Config.Observe).
func (m *Metrics) RedisCall(op string, d time.Duration, err error) {
	m.redisCalls.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.redisErrors.WithLabelValues(op).Inc()
	}
}

// SetBuildInfo sets dlsse_build_info to 1 for version (and only it), so a
// dashboard can tell which build each instance runs.
func (m *Metrics) SetBuildInfo(version string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version).Set(1)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry the metrics live on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// UpstreamHooks returns the hooks that feed the upstream metrics.
func (m *Metrics) UpstreamHooks() upstream.Hooks {
	return upstream.Hooks{
		Request: func(op string, status int, d time.Duration) {
			m.upstreamRequests.WithLabelValues(op, strconv.Itoa(status)).Observe(d.Seconds())
		},
		BreakerChange: func(_, to gobreaker.State) {
			m.breakerState.Set(float64(to))
			m.breakerTransitions.WithLabelValues(to.String()).Inc()
		},
	}
}

// The session.Observer methods.

func (m *Metrics) SessionOpened()        { m.sessions.Inc() }
func (m *Metrics) SessionClosed()        { m.sessions.Dec() }
func (m *Metrics) UpstreamConnected()    { m.upstreamSockets.Inc() }
func (m *Metrics) UpstreamDisconnected() { m.upstreamSockets.Dec() }
func (m *Metrics) Reconnect(reason session.ReconnectReason) {
	m.reconnects.WithLabelValues(string(reason)).Inc()
}
func (m *Metrics) ActivitiesReceived(n int)  { m.activitiesReceived.Add(float64(n)) }
func (m *Metrics) ActivitiesDelivered(n int) { m.activitiesDelivered.Add(float64(n)) }
func (m *Metrics) Replay(hit bool)           { m.replay.WithLabelValues(hitLabel(hit)).Inc() }
func (m *Metrics) TokenRefreshed(err error)  { m.tokenRefreshes.WithLabelValues(okLabel(err)).Inc() }
func (m *Metrics) Ownership(e session.OwnershipEvent) {
	m.ownership.WithLabelValues(string(e)).Inc()
	switch e {
	case session.OwnershipAcquired:
		m.owned.Inc()
	case session.OwnershipEnded:
		m.owned.Dec()
	}
}

// The gateway.Observer methods.

func (m *Metrics) StreamOpened(wire session.Wire) {
	if wire == session.WireWebSocket {
		m.wsSubscribers.Inc()
		return
	}
	m.subscribers.Inc()
}
func (m *Metrics) StreamClosed(wire session.Wire, reason sse.Reason) {
	if wire == session.WireWebSocket {
		m.wsSubscribers.Dec()
		m.wsDisconnects.WithLabelValues(string(reason)).Inc()
		return
	}
	m.subscribers.Dec()
	m.disconnects.WithLabelValues(string(reason)).Inc()
}
func (m *Metrics) UpgradeRefused(reason string) { m.upgradesRefused.WithLabelValues(reason).Inc() }

// ReconnectDelayed counts a reconnect held back by the reconnect limit,
// and how long.
func (m *Metrics) ReconnectDelayed(d time.Duration) {
	m.reconnectsDelayed.Inc()
	m.reconnectDelay.Add(d.Seconds())
}

func hitLabel(hit bool) string {
	if hit {
		return "hit"
	}
	return "miss"
}

func okLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return "error"
}
