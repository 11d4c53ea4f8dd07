package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// stormReport is the storm scenario: every upstream socket dropped at
// once, and how dlsse's sessions come back.
type stormReport struct {
	Sessions int    `json:"sessions"`
	Capped   string `json:"capped,omitempty"`
	Dropped  int    `json:"dropped"`

	// "Online again" is observable: a session is back when its client
	// got the probe, a message the fake stored right after the drop,
	// which only a re-attached upstream socket can deliver.
	BackAllS float64 `json:"all_back_s"` // drop → the last client's probe
	BackP50S float64 `json:"back_p50_s"`
	BackP99S float64 `json:"back_p99_s"`
	Back     int     `json:"back"` // clients that got the probe
	// The fake's view: every conversation has a socket again.
	SocketsBackS float64 `json:"sockets_back_s"`
	SocketsOpen  int64   `json:"sockets_open_at_end"`

	// dlsse's side, from its metrics: its reconnect calls and socket
	// dials as it timed them, and whether its circuit breaker opened.
	Reconnects    upstreamCalls `json:"dlsse_reconnect_calls"`
	Dials         upstreamCalls `json:"dlsse_dials"`
	BreakerOpened float64       `json:"dlsse_breaker_opened"`
	MaxFiles      int           `json:"dlsse_max_open_files"`

	ReconnectCalls  int64   `json:"reconnect_calls"`
	PerSession      float64 `json:"reconnect_calls_per_session"`
	SocketsOpened   int64   `json:"sockets_opened"`
	ActivityGets    int64   `json:"activity_gets"`
	PeakPerS        float64 `json:"peak_reconnect_calls_per_s"`       // busiest 1 s window
	PeakPer100msX10 float64 `json:"peak_reconnect_calls_per_s_100ms"` // busiest 100 ms bucket, × 10
	SpreadS         float64 `json:"reconnect_spread_s"`               // first to last bucket with calls
	Buckets         []int64 `json:"reconnect_calls_per_100ms"`

	Expected          int64   `json:"expected"`
	Delivered         int64   `json:"delivered"`
	Lost              int64   `json:"lost"`
	Duplicated        int64   `json:"duplicated"`
	SawReconnecting   int     `json:"clients_told_reconnecting"`
	ClientDisconnects int64   `json:"client_disconnects"`
	CPU               cpuUse  `json:"cpu"`
	FakeMaxLagMs      float64 `json:"fake_max_lag_ms"`
}

// storm: C sessions online with one message each; drop every upstream
// socket; store one probe per conversation at once, then two more rounds
// over the next second while sessions reconnect; wait until every client
// has all four. Reconnect calls come from the fake's counters, sampled
// every 100 ms.
func (b *bench) storm(ctx context.Context) (*stormReport, error) {
	c, capped := b.sizeFor(b.opt.conversations, stormReserve)
	r := &stormReport{Sessions: c, Capped: capped}
	e, err := b.start(ctx, "storm", true, 10)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	convs, err := e.ctl.conversations(ctx, c)
	if err != nil {
		return nil, err
	}
	f, _, err := b.connectSSE(ctx, e, convs, 4096)
	if err != nil {
		return nil, err
	}
	defer f.close()
	// A first message each, so every session has a watermark to resume
	// from, as a live conversation would.
	if _, err := e.ctl.runLoad(ctx, loadRequest{Rounds: 1, Prefix: "before "}); err != nil {
		return nil, err
	}
	if err := f.waitAll(ctx, "first message", time.Minute, deliveredAll(1)); err != nil {
		return nil, err
	}
	if err := settle(ctx, time.Second); err != nil {
		return nil, err
	}

	st0, err := e.ctl.stats(ctx)
	if err != nil {
		return nil, err
	}
	m0, err := e.ctl.metrics(ctx, e.dlsse.URL+"/metrics")
	if err != nil {
		return nil, err
	}
	sampler := startStatsSampler(ctx, e.ctl, 100*time.Millisecond)
	peak := startPeakSampler(e.dlssePID(), 100*time.Millisecond)
	stopPerf := b.profileCPU("storm", e.dlssePID())
	defer stopPerf()
	cpu := newCPUMeter(e.dlssePID(), e.fake.PID())
	dropAt := time.Now()
	r.Dropped, err = e.ctl.dropAll(ctx)
	if err != nil {
		sampler.stop()
		peak.stop()
		return nil, err
	}
	dropped := time.Now()
	b.logf("dropped %s upstream sockets", count(int64(r.Dropped)))
	// The probe (seq 1) at once; then two rounds (seq 2, 3) over the
	// next second, while sessions are reconnecting.
	_, err = e.ctl.runLoad(ctx, loadRequest{Rounds: 1, Prefix: "probe "})
	if err == nil {
		var during directlinetest.LoadStatus
		during, err = e.ctl.runLoad(ctx, loadRequest{Rounds: 2, Interval: "1s", Prefix: "during "})
		r.FakeMaxLagMs = during.MaxLagMs
	}
	if err != nil {
		sampler.stop()
		peak.stop()
		return nil, err
	}
	waitErr := f.waitAll(ctx, "sessions back with every message", time.Minute, deliveredAll(4))
	samples := sampler.stop()
	_, r.MaxFiles = peak.stop()
	r.CPU = cpu.stop()
	stopPerf()
	asked := time.Now()
	st1, err := e.ctl.stats(ctx)
	if err != nil {
		return nil, err
	}
	m1, err := e.ctl.metrics(ctx, e.dlsse.URL+"/metrics")
	if err != nil {
		return nil, err
	}
	r.Reconnects, r.Dials = upstreamOp(m0, m1, "reconnect"), upstreamOp(m0, m1, "dial")
	r.BreakerOpened = m1[`dlsse_breaker_transitions_total{to="open"}`] - m0[`dlsse_breaker_transitions_total{to="open"}`]
	// The last socket attaches just before the last delivery, which
	// stops the sampler: this read is the sample that sees it.
	samples = append(samples, statsSample{Asked: asked, At: time.Now(), Stats: st1})
	r.ReconnectCalls = st1.ReconnectCalls - st0.ReconnectCalls
	r.SocketsOpened = st1.SocketsOpened - st0.SocketsOpened
	r.ActivityGets = st1.ActivityGets - st0.ActivityGets
	r.SocketsOpen = st1.SocketsOpen
	r.PerSession = float64(r.ReconnectCalls) / float64(c)
	r.reconnectRate(samples, statsSample{At: dropAt, Stats: st0})
	for _, s := range samples {
		// Only counters read after the drop had taken effect.
		if s.Asked.After(dropped) && s.Stats.SocketsOpen >= int64(c) {
			r.SocketsBackS = s.At.Sub(dropAt).Seconds()
			break
		}
	}

	f.close()
	r.Expected = int64(c) * 4
	r.Delivered = f.sum(func(r *recorder) int64 { return r.distinct.Load() })
	r.Lost, r.Duplicated = exactlyOnce(f.recs, func(int) int64 { return 4 })
	r.ClientDisconnects = f.sum(func(r *recorder) int64 { return r.disconnects.Load() })
	r.SawReconnecting = f.count(func(r *recorder) bool { return r.reconnState.Load() > 0 })
	var back []int64
	for _, rec := range f.recs {
		for _, s := range rec.samples {
			if s.Seq == 1 { // the probe
				back = append(back, s.At-dropAt.UnixNano())
			}
		}
	}
	r.Back = len(back)
	if len(back) > 0 {
		slices.Sort(back)
		r.BackAllS = float64(back[len(back)-1]) / 1e9
		r.BackP50S = float64(rank(back, 0.5)) / 1e9
		r.BackP99S = float64(rank(back, 0.99)) / 1e9
	}
	if waitErr != nil {
		b.logf("warning: %v", waitErr)
	}
	return r, nil
}

// reconnectRate turns the sampled counters (after start, the counters
// at the drop) into calls per 100 ms bucket, the most calls in any 1 s
// window, and the spread.
func (r *stormReport) reconnectRate(samples []statsSample, start statsSample) {
	all := append([]statsSample{start}, samples...)
	first, last := -1, -1
	for i := 1; i < len(all); i++ {
		d := all[i].Stats.ReconnectCalls - all[i-1].Stats.ReconnectCalls
		r.Buckets = append(r.Buckets, d)
		if d > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
		r.PeakPer100msX10 = max(r.PeakPer100msX10, float64(d)*10)
	}
	if first >= 0 {
		r.SpreadS = all[last].At.Sub(all[first-1].At).Seconds()
	}
	for i := range all {
		j := i
		for j+1 < len(all) && all[j+1].At.Sub(all[i].At) <= time.Second {
			j++
		}
		r.PeakPerS = max(r.PeakPerS, float64(all[j].Stats.ReconnectCalls-all[i].Stats.ReconnectCalls))
	}
}

// statsSampler reads the fake's counters periodically.
type statsSampler struct {
	cancel  context.CancelFunc
	done    chan struct{}
	samples []statsSample
}

func startStatsSampler(ctx context.Context, c *ctl, every time.Duration) *statsSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &statsSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			asked := time.Now()
			if st, err := c.stats(ctx); err == nil {
				s.samples = append(s.samples, statsSample{Asked: asked, At: time.Now(), Stats: st})
			}
		}
	}()
	return s
}

// stop ends the sampler and returns its samples.
func (s *statsSampler) stop() []statsSample {
	s.cancel()
	<-s.done
	return s.samples
}

func (r *stormReport) table() *table {
	t := &table{title: fmt.Sprintf("storm — %s sessions, the fake drops every upstream socket at once", count(int64(r.Sessions)))}
	if r.Capped != "" {
		t.add("size", r.Capped)
	}
	t.add("upstream sockets dropped", count(int64(r.Dropped)))
	t.goal("every session delivering again after (p50, p99)", fmt.Sprintf("%s (%s, %s)", secs(r.BackAllS), secs(r.BackP50S), secs(r.BackP99S)),
		"≤ 15 s", r.Back == r.Sessions && r.BackAllS <= 15)
	t.add("sessions back / all", fmt.Sprintf("%s / %s", count(int64(r.Back)), count(int64(r.Sessions))))
	t.add("every conversation has a socket again after (fake, 100 ms samples)", fmt.Sprintf("%s (%s open at the end)", secs(r.SocketsBackS), count(r.SocketsOpen)))
	t.add("dlsse open files at most (100 ms samples)", count(int64(r.MaxFiles)))
	t.goal("reconnect calls per session", fmt.Sprintf("%.3f (%s calls, %s sockets opened, %s activity polls)", r.PerSession, count(r.ReconnectCalls), count(r.SocketsOpened), count(r.ActivityGets)),
		"≤ 1.1", r.PerSession <= 1.1)
	t.add("dlsse's reconnect calls (its own timing)", r.Reconnects.String())
	t.add("dlsse's socket dials (its own timing)", r.Dials.String())
	t.goal("dlsse circuit breaker opened", fmt.Sprintf("%.0f times", r.BreakerOpened), "0", r.BreakerOpened == 0)
	share := r.PeakPerS / float64(max(r.Sessions, 1))
	t.goal("peak reconnect calls per second (1 s window; 100 ms bucket × 10)",
		fmt.Sprintf("%s (%.0f%% of the sessions); %s", count(int64(r.PeakPerS)), 100*share, count(int64(r.PeakPer100msX10))),
		"no synchronized spike: busiest second ≤ 25% of the sessions", share <= 0.25)
	t.add("reconnect calls spread over", secs(r.SpreadS))
	t.add("reconnect calls per 100 ms", sparkline(r.Buckets))
	t.add("messages delivered / expected", fmt.Sprintf("%s / %s", count(r.Delivered), count(r.Expected)))
	t.goal("lost / duplicated", fmt.Sprintf("%d / %d", r.Lost, r.Duplicated), "0 / 0", r.Lost == 0 && r.Duplicated == 0)
	t.add("clients told reconnecting / client disconnects", fmt.Sprintf("%s / %s", count(int64(r.SawReconnecting)), count(r.ClientDisconnects)))
	t.add("CPU from the drop until all delivered", cpuRow(r.CPU))
	return t
}

// sparkline draws the reconnect calls per bucket, trailing zeros left out,
// so synchronised spikes show at a glance.
func sparkline(v []int64) string {
	end := len(v)
	for end > 0 && v[end-1] == 0 {
		end--
	}
	v = v[:end]
	var top int64
	for _, x := range v {
		top = max(top, x)
	}
	if top == 0 {
		return "(none)"
	}
	bars := []rune("▁▂▃▄▅▆▇█")
	var b strings.Builder
	b.WriteString("`")
	for _, x := range v {
		if x == 0 {
			b.WriteRune(' ')
			continue
		}
		b.WriteRune(bars[int(x*int64(len(bars)-1)/top)])
	}
	fmt.Fprintf(&b, "` (max %s)", count(top))
	return b.String()
}
