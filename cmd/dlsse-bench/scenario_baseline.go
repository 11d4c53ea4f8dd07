package main

import (
	"context"
	"fmt"
	"time"
)

// baselineReport is the widgets trickle read straight from the fake's
// WebSockets: the latency floor of this machine, fake and client, which
// dlsse's latency is compared with.
type baselineReport struct {
	Conversations int     `json:"conversations"`
	Interval      string  `json:"interval"`
	Rounds        int     `json:"rounds"`
	ConnectS      float64 `json:"connect_s"`
	CPU           cpuUse  `json:"cpu"`
	delivery
	Latency      latencyStats `json:"latency"`
	FakeMaxLagMs float64      `json:"fake_max_lag_ms"`

	// With dlsse (the widgets scenario of the same run), when it ran.
	Dlsse *latencyStats `json:"dlsse_latency,omitempty"`
	Added *latencyStats `json:"dlsse_added_latency,omitempty"` // dlsse − baseline, per percentile
}

// baseline runs the widgets trickle with the same C, interval and rounds,
// the clients reading the fake directly.
func (b *bench) baseline(ctx context.Context) (*baselineReport, error) {
	c := b.opt.conversations
	if b.res.Widgets != nil {
		c = b.res.Widgets.Conversations // compare like with like
	}
	r := &baselineReport{Conversations: c, Interval: b.opt.interval.String(), Rounds: b.opt.rounds()}
	e, err := b.start(ctx, "baseline", false, 0)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	convs, err := e.ctl.conversations(ctx, c)
	if err != nil {
		return nil, err
	}
	f, took, err := b.connectWS(ctx, e, convs)
	if err != nil {
		return nil, err
	}
	defer f.close()
	r.ConnectS = took.Seconds()

	b.logf("trickle: %d rounds, one message per conversation every %v", r.Rounds, b.opt.interval)
	cpu := newCPUMeter("", e.fake.PID())
	st, err := e.ctl.runLoad(ctx, loadRequest{Interval: b.opt.interval.String(), Rounds: r.Rounds, Prefix: "widget "})
	if err != nil {
		return nil, err
	}
	r.FakeMaxLagMs = st.MaxLagMs
	waitErr := f.waitAll(ctx, "trickle delivered", 30*time.Second, deliveredAll(int64(r.Rounds)))
	r.CPU = cpu.stop()
	f.close()
	r.Events = f.sum(func(r *recorder) int64 { return r.distinct.Load() })
	r.Expected = int64(c) * int64(r.Rounds)
	r.Lost, r.Duplicated = exactlyOnce(f.recs, func(int) int64 { return int64(r.Rounds) })
	r.Disconnects = f.sum(func(r *recorder) int64 { return r.disconnects.Load() })
	r.Latency = latencyOf(f.recs)
	if waitErr != nil {
		b.logf("warning: %v", waitErr)
	}
	if w := b.res.Widgets; w != nil {
		d := w.Latency
		r.Dlsse = &d
		r.Added = &latencyStats{N: d.N, Mean: d.Mean - r.Latency.Mean, P50: d.P50 - r.Latency.P50,
			P99: d.P99 - r.Latency.P99, P999: d.P999 - r.Latency.P999, Max: d.Max - r.Latency.Max}
	}
	return r, nil
}

func (r *baselineReport) table() *table {
	t := &table{title: fmt.Sprintf("baseline — the same trickle read from the fake's WebSockets directly, no dlsse: %s conversations, every %s, %d rounds",
		count(int64(r.Conversations)), r.Interval, r.Rounds)}
	t.add("all sockets open after", secs(r.ConnectS))
	t.add("CPU during the trickle", cpuRowFake(r.CPU))
	t.add("events delivered / expected", fmt.Sprintf("%s / %s", count(r.Events), count(r.Expected)))
	t.goal("lost / duplicated", fmt.Sprintf("%d / %d", r.Lost, r.Duplicated), "0 / 0", r.Lost == 0 && r.Duplicated == 0)
	t.add("latency fake → WebSocket client", latencyRow(r.Latency))
	t.add("fake fell behind its schedule by at most", ms(r.FakeMaxLagMs))
	if r.Dlsse != nil {
		a, d, base := r.Added, r.Dlsse, r.Latency
		t.add("latency with dlsse (widgets)", latencyRow(*d))
		t.add("dlsse adds p50 / p99.9", fmt.Sprintf("%s / %s", ms(a.P50), ms(a.P999)))
		t.goal("dlsse adds p99", ms(a.P99), "≤ 2 ms", a.P99 <= 2)
		t.add("ratio dlsse / baseline p50, p99, p99.9", fmt.Sprintf("%.1f×, %.1f×, %.1f×", ratio(d.P50, base.P50), ratio(d.P99, base.P99), ratio(d.P999, base.P999)))
	}
	return t
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
