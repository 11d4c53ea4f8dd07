package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// fanoutReport is the fanout scenario: one conversation, many
// subscribers, a burst of bot messages as fast as the fake sends them.
type fanoutReport struct {
	Wire        string  `json:"wire"` // the subscribers: sse or websocket
	Subscribers int     `json:"subscribers"`
	Events      int     `json:"events"`
	ConnectS    float64 `json:"connect_s"`

	Delivered  int64 `json:"delivered"`
	Expected   int64 `json:"expected"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`

	SendS          float64 `json:"fake_send_s"` // first to last sentAt: how fast the fake sent
	LastDeliveryS  float64 `json:"first_send_to_last_delivery_s"`
	EventsPerS     float64 `json:"events_per_s"`              // delivered / first send to last delivery
	SlowestClientS float64 `json:"slowest_subscriber_done_s"` // its last delivery, from the first send
	MedianClientS  float64 `json:"median_subscriber_done_s"`

	SlowDrops         float64 `json:"dlsse_slow_disconnects"` // dlsse_{sse,websocket}_disconnects_total{reason="slow"}
	ClientDisconnects int64   `json:"client_disconnects"`

	CPU             cpuUse       `json:"cpu"`
	CPUPer1kEvents  float64      `json:"dlsse_cpu_ms_per_1k_events"`
	Latency         latencyStats `json:"latency"`
	PerEventRuntime goRuntime    `json:"runtime_per_event"`
	RSSBefore       int64        `json:"rss_before_bytes"`
	RSSAfter        int64        `json:"rss_after_bytes"`
}

// fanout: S subscribers of one conversation, then a burst of N stamped
// messages; throughput is deliveries over the time from the first send to
// the last delivery.
func (b *bench) fanout(ctx context.Context) (*fanoutReport, error) {
	s, n := b.opt.subscribers, b.opt.events
	r := &fanoutReport{Wire: b.opt.wire, Subscribers: s, Events: n}
	e, err := b.start(ctx, "fanout", true, s+10)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	// Large reads: a burst arrives in batches of up to max_batch_bytes.
	conv, f, took, err := b.connectOne(ctx, e, s, 32<<10)
	if err != nil {
		return nil, err
	}
	defer f.close()
	r.ConnectS = took.Seconds()
	before, _ := readProc(e.dlssePID())
	r.RSSBefore = before.RSS
	rt0, m0, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}

	b.logf("burst: %s messages to %s subscribers", count(int64(n)), count(int64(s)))
	stopPerf := b.profileCPU("fanout", e.dlssePID())
	cpu := newCPUMeter(e.dlssePID(), e.fake.PID())
	_, err = e.ctl.runLoad(ctx, loadRequest{Conversations: []string{conv}, Rounds: n, Prefix: "burst "})
	var waitErr error
	if err == nil {
		waitErr = f.waitAll(ctx, "burst delivered", 2*time.Minute, deliveredAll(int64(n)))
	}
	r.CPU = cpu.stop()
	stopPerf()
	if err != nil {
		return nil, err
	}
	after, _ := readProc(e.dlssePID())
	r.RSSAfter = after.RSS
	rt1, m1, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}
	slow := `dlsse_` + r.Wire + `_disconnects_total{reason="slow"}`
	r.SlowDrops = m1[slow] - m0[slow]

	f.close()
	r.Delivered = f.sum(func(r *recorder) int64 { return r.distinct.Load() })
	r.Expected = int64(s) * int64(n)
	r.Lost, r.Duplicated = exactlyOnce(f.recs, func(int) int64 { return int64(n) })
	r.ClientDisconnects = f.sum(func(r *recorder) int64 { return r.disconnects.Load() })
	r.Latency = latencyOf(f.recs)

	// The clock starts at the first send of the burst (every client
	// sees the same stamps) and stops at each client's last delivery.
	firstSent, lastSent := int64(math.MaxInt64), int64(0)
	var done []int64
	for _, rec := range f.recs {
		var last int64
		for _, sm := range rec.samples {
			firstSent, lastSent = min(firstSent, sm.SentAt), max(lastSent, sm.SentAt)
			last = max(last, sm.At)
		}
		if last > 0 {
			done = append(done, last)
		}
	}
	if len(done) > 0 {
		slices.Sort(done)
		sec := func(ns int64) float64 { return float64(ns-firstSent) / 1e9 }
		r.SendS = float64(lastSent-firstSent) / 1e9
		r.LastDeliveryS = sec(done[len(done)-1])
		r.SlowestClientS = r.LastDeliveryS
		r.MedianClientS = sec(rank(done, 0.5))
		if r.LastDeliveryS > 0 {
			r.EventsPerS = float64(r.Delivered) / r.LastDeliveryS
		}
	}
	if r.Delivered > 0 {
		r.CPUPer1kEvents = r.CPU.Dlsse * 1000 / (float64(r.Delivered) / 1000)
		r.PerEventRuntime = rt1.sub(rt0).div(float64(r.Delivered))
	}
	if waitErr != nil {
		b.logf("warning: %v", waitErr)
	}
	return r, nil
}

func (r *fanoutReport) table() *table {
	t := &table{title: fmt.Sprintf("fanout — 1 conversation × %s %s subscribers, a burst of %s messages",
		count(int64(r.Subscribers)), wireName(r.Wire), count(int64(r.Events)))}
	t.add("all streams online after", secs(r.ConnectS))
	t.add("fake sent the burst in", secs(r.SendS))
	t.add("first send → last delivery (median subscriber done)", fmt.Sprintf("%s (%s)", secs(r.LastDeliveryS), secs(r.MedianClientS)))
	t.goal("events delivered per second", count(int64(r.EventsPerS)), "≥ 250,000", r.EventsPerS >= 250_000)
	t.add("events delivered / expected", fmt.Sprintf("%s / %s", count(r.Delivered), count(r.Expected)))
	t.goal("lost / duplicated", fmt.Sprintf("%d / %d", r.Lost, r.Duplicated), "0 / 0", r.Lost == 0 && r.Duplicated == 0)
	t.goal("subscribers dropped as slow (dlsse) / client disconnects", fmt.Sprintf("%.0f / %d", r.SlowDrops, r.ClientDisconnects), "0", r.SlowDrops == 0 && r.ClientDisconnects == 0)
	t.add("CPU during the burst", cpuRow(r.CPU))
	t.add("dlsse CPU per 1k events", fmt.Sprintf("%.2f ms", r.CPUPer1kEvents))
	pe := r.PerEventRuntime
	t.add("dlsse allocation per event (GC cycles in the burst)", fmt.Sprintf("%.0f B, %.2f objects (%.0f)", pe.AllocBytes, pe.Mallocs, pe.GCCycles*float64(r.Delivered)))
	t.add("latency fake → client (queueing included)", latencyRow(r.Latency))
	t.add("dlsse RSS before → after", fmt.Sprintf("%s → %s", mib(r.RSSBefore), mib(r.RSSAfter)))
	return t
}

// wireName names a subscriber kind in a table's title.
func wireName(wire string) string {
	if wire == "websocket" {
		return "WebSocket (Direct Line protocol)"
	}
	return "SSE"
}
