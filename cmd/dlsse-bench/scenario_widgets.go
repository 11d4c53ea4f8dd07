package main

import (
	"context"
	"fmt"
	"time"
)

// widgetsReport is the widgets scenario: many chat widgets, each one
// conversation with one subscriber, with a slow trickle of bot messages.
type widgetsReport struct {
	Wire          string  `json:"wire"` // the subscribers: sse or websocket
	Conversations int     `json:"conversations"`
	Capped        string  `json:"capped,omitempty"`
	Interval      string  `json:"interval"`
	Rounds        int     `json:"rounds"`
	ConnectS      float64 `json:"connect_s"`

	RSSIdle        int64   `json:"rss_idle_bytes"`      // dlsse started, no session
	RSSConnected   int64   `json:"rss_connected_bytes"` // C sessions online, before the trickle
	RSSLoaded      int64   `json:"rss_loaded_bytes"`    // C sessions at the end of the trickle
	RSSMax         int64   `json:"rss_max_bytes"`       // highest sample during the trickle
	RSSPeak        int64   `json:"rss_peak_bytes"`      // VmHWM: the high-water mark, connect ramp included
	PerSession     float64 `json:"rss_per_session_bytes"`
	PerSessionIdle float64 `json:"rss_per_session_connected_bytes"`
	MaxFiles       int     `json:"dlsse_max_open_files"` // highest sample during the trickle

	// dlsse's runtime: per session (connected − idle, divided by C), and
	// per event delivered during the trickle (counters' growth divided by
	// the events).
	PerSessionRuntime goRuntime `json:"runtime_per_session"`
	PerEventRuntime   goRuntime `json:"runtime_per_event"`

	IdleCPU        cpuUse  `json:"cpu_idle"` // C sessions, no message: keepalives and heartbeats only
	CPU            cpuUse  `json:"cpu"`
	CPUPer1kEvents float64 `json:"dlsse_cpu_ms_per_1k_events"`
	CPUPer1kMarg   float64 `json:"dlsse_marginal_cpu_ms_per_1k_events"` // minus the idle rate
	delivery
	Latency      latencyStats `json:"latency"`
	FakeMaxLagMs float64      `json:"fake_max_lag_ms"`
}

// widgets: connect C subscribers (one per conversation), measure dlsse's
// RSS before and after and its CPU with nothing to deliver, then trickle
// one stamped message per conversation per interval and measure latency
// and CPU.
func (b *bench) widgets(ctx context.Context) (*widgetsReport, error) {
	c, capped := b.sizeFor(b.opt.conversations, fdReserve)
	r := &widgetsReport{Wire: b.opt.wire, Conversations: c, Capped: capped, Interval: b.opt.interval.String(), Rounds: b.opt.rounds()}
	e, err := b.start(ctx, "widgets", true, 10)
	if err != nil {
		return nil, err
	}
	defer e.stop()

	idle, err := readProc(e.dlssePID())
	if err != nil {
		return nil, err
	}
	r.RSSIdle = idle.RSS
	rtIdle, _, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}

	convs, err := e.ctl.conversations(ctx, c)
	if err != nil {
		return nil, err
	}
	f, took, err := b.connect(ctx, e, convs, 4096, b.opt.wire)
	if err != nil {
		return nil, err
	}
	defer f.close()
	r.ConnectS = took.Seconds()
	// Let the connect ramp's work finish before measuring.
	if err := settle(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	conn, _ := readProc(e.dlssePID())
	r.RSSConnected = conn.RSS
	rtConn, _, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}
	r.PerSessionRuntime = rtConn.sub(rtIdle).div(float64(c))

	stopIdlePerf := b.profileCPU("widgets-idle", e.dlssePID())
	cpu := newCPUMeter(e.dlssePID(), e.fake.PID())
	err = settle(ctx, b.opt.idle)
	r.IdleCPU = cpu.stop()
	stopIdlePerf()
	if err != nil {
		return nil, err
	}

	b.logf("trickle: %d rounds, one message per conversation every %v", r.Rounds, b.opt.interval)
	peak := startPeakSampler(e.dlssePID(), time.Second)
	stopPerf := b.profileCPU("widgets", e.dlssePID())
	cpu = newCPUMeter(e.dlssePID(), e.fake.PID())
	rt0, _, err := e.runtime(ctx)
	if err != nil {
		peak.stop()
		stopPerf()
		return nil, err
	}
	st, err := e.ctl.runLoad(ctx, loadRequest{Interval: b.opt.interval.String(), Rounds: r.Rounds, Prefix: "widget "})
	var waitErr error
	if err == nil {
		r.FakeMaxLagMs = st.MaxLagMs
		waitErr = f.waitAll(ctx, "trickle delivered", 30*time.Second, deliveredAll(int64(r.Rounds)))
	}
	r.CPU = cpu.stop()
	stopPerf()
	r.RSSMax, r.MaxFiles = peak.stop()
	if err != nil {
		return nil, err
	}
	rt1, _, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}
	end, _ := readProc(e.dlssePID())
	r.RSSLoaded, r.RSSPeak = end.RSS, end.HWM
	r.PerSession = float64(r.RSSLoaded-r.RSSIdle) / float64(c)
	r.PerSessionIdle = float64(r.RSSConnected-r.RSSIdle) / float64(c)

	f.close()
	r.Events = f.sum(func(r *recorder) int64 { return r.distinct.Load() })
	r.Expected = int64(c) * int64(r.Rounds)
	r.Lost, r.Duplicated = exactlyOnce(f.recs, func(int) int64 { return int64(r.Rounds) })
	r.Disconnects = f.sum(func(r *recorder) int64 { return r.disconnects.Load() })
	r.Latency = latencyOf(f.recs)
	if r.Events > 0 {
		k := float64(r.Events) / 1000
		r.CPUPer1kEvents = r.CPU.Dlsse * 1000 / k
		idleRate := r.IdleCPU.Dlsse / r.IdleCPU.Wall
		r.CPUPer1kMarg = (r.CPU.Dlsse - idleRate*r.CPU.Wall) * 1000 / k
		r.PerEventRuntime = rt1.sub(rt0).div(float64(r.Events))
	}
	if waitErr != nil {
		b.logf("warning: %v", waitErr) // reported as lost
	}
	return r, nil
}

func (r *widgetsReport) table() *table {
	t := &table{title: fmt.Sprintf("widgets — %s conversations × 1 %s subscriber, 1 message per conversation every %s, %d rounds",
		count(int64(r.Conversations)), wireName(r.Wire), r.Interval, r.Rounds)}
	if r.Capped != "" {
		t.add("size", r.Capped)
	}
	t.add("all streams online after", secs(r.ConnectS))
	t.add("dlsse RSS idle → connected → end of trickle (peak)", fmt.Sprintf("%s → %s → %s (%s)", mib(r.RSSIdle), mib(r.RSSConnected), mib(r.RSSLoaded), mib(r.RSSPeak)))
	t.goal("dlsse RSS per session ((end − idle) / C)", kib(r.PerSession), "≤ 20 KiB", r.PerSession <= 20*1024)
	t.add("… per session before the trickle", kib(r.PerSessionIdle))
	ps := r.PerSessionRuntime
	t.add("… of which Go heap in use / goroutine stacks", fmt.Sprintf("%s (%.0f objects) / %s", kib(ps.HeapInuse), ps.HeapObjects, kib(ps.StackInuse)))
	t.add("dlsse goroutines per session", fmt.Sprintf("%.2f", ps.Goroutines))
	t.add("dlsse open files at most", count(int64(r.MaxFiles)))
	t.add("CPU with C idle sessions (no messages)", cpuRow(r.IdleCPU))
	t.add("CPU during the trickle", cpuRow(r.CPU))
	t.add("dlsse CPU per 1k events (all; minus the idle rate)", fmt.Sprintf("%.1f ms; %.1f ms", r.CPUPer1kEvents, r.CPUPer1kMarg))
	pe := r.PerEventRuntime
	t.add("dlsse allocation during the trickle, per event (GC cycles)", fmt.Sprintf("%s, %.0f objects (%.0f)", kib(pe.AllocBytes), pe.Mallocs, pe.GCCycles*float64(r.Events)))
	t.add("events delivered / expected", fmt.Sprintf("%s / %s", count(r.Events), count(r.Expected)))
	t.goal("lost / duplicated", fmt.Sprintf("%d / %d", r.Lost, r.Duplicated), "0 / 0", r.Lost == 0 && r.Duplicated == 0)
	t.add("client disconnects", count(r.Disconnects))
	t.add("latency fake → client", latencyRow(r.Latency))
	t.add("fake fell behind its schedule by at most", ms(r.FakeMaxLagMs))
	return t
}
