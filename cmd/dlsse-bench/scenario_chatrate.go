package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// chatrateReport is the chatrate scenario: one busy conversation watched
// by many, its bot talking at a steady chat rate. Unlike fanout's burst,
// each message reaches subscribers that have gone idle since the last
// one, so it measures what a live event costs dlsse, wake-ups included,
// and the latency a viewer sees when dlsse is not queueing (issue 14).
type chatrateReport struct {
	Wire        string  `json:"wire"` // the subscribers: sse or websocket
	Subscribers int     `json:"subscribers"`
	Rate        int     `json:"rate_per_s"` // asked of the fake
	Messages    int     `json:"messages"`
	ConnectS    float64 `json:"connect_s"`
	SentOverS   float64 `json:"fake_sent_over_s"` // first to last sentAt
	// How late the fake sent a message at worst: by its own count (a
	// send found already due), and from the stamps (message k's sentAt
	// against the first's + k/R, timer wake-ups included).
	FakeMaxLagMs  float64 `json:"fake_max_lag_ms"`
	StampMaxLagMs float64 `json:"stamp_max_lag_ms"`

	// CPU by process (dlsse, fake, bench, and "others": the rest of the
	// machine), with the S subscribers and nothing sent, then while the
	// fake sends and until every message arrived.
	IdleCPU   map[string]float64 `json:"idle_cpu_s"`
	IdleWallS float64            `json:"idle_wall_s"`
	CPU       map[string]float64 `json:"cpu_s"`
	WallS     float64            `json:"wall_s"`
	// dlsse's CPU per delivered event (one message to one subscriber),
	// all of it, and minus the idle rate over the same wall time.
	CPUPerEventUs     float64 `json:"dlsse_cpu_us_per_event"`
	CPUPerEventMargUs float64 `json:"dlsse_marginal_cpu_us_per_event"`
	// What the write(2) of one delivery costs on this machine by itself
	// (writeFloor), once the clients left: the floor under the two above.
	FloorUs     float64 `json:"write_floor_us"`
	FloorWrites int     `json:"write_floor_writes"`
	// dlsse's Go runtime counters' growth while the fake sent, per
	// message (each reaches every subscriber). It includes one scrape of
	// /metrics (100-150 KiB, 1,000-1,600 objects: at 600 messages, ≤ 0.25
	// KiB and ≤ 3 objects a message).
	PerMessageRuntime goRuntime `json:"runtime_per_message"`

	delivery
	SlowDrops float64      `json:"dlsse_slow_disconnects"`
	Latency   latencyStats `json:"latency"`
}

// chatIdle is how long chatrate measures dlsse's CPU with its subscribers
// connected and nothing sent (or -idle, when shorter). It needs to be no
// longer: at a chat rate the idle rate is a small correction (no stream
// goes quiet long enough for a heartbeat while the fake sends).
const chatIdle = 5 * time.Second

// chatrate: S subscribers of one conversation; dlsse's CPU idle for a few
// seconds; then the fake sends R stamped messages a second, paced by its
// own load (message k due at k/R s, not a burst), for -duration; CPU,
// allocations and latency over that phase.
func (b *bench) chatrate(ctx context.Context) (*chatrateReport, error) {
	s := b.opt.subscribers
	n := max(1, int(math.Round(b.opt.duration.Seconds()*float64(b.opt.rate))))
	r := &chatrateReport{Wire: b.opt.wire, Subscribers: s, Rate: b.opt.rate, Messages: n}
	e, err := b.start(ctx, "chatrate", true, s+10)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	conv, f, took, err := b.connectOne(ctx, e, s, 4096)
	if err != nil {
		return nil, err
	}
	defer f.close()
	r.ConnectS = took.Seconds()
	// Let the connect ramp's work finish before measuring.
	if err := settle(ctx, 2*time.Second); err != nil {
		return nil, err
	}

	names, pids := []string{"dlsse", "fake", "bench"}, []string{e.dlssePID(), e.fake.PID(), "self"}
	cpu := newProcCPU(names, pids)
	if err := settle(ctx, min(b.opt.idle, chatIdle)); err != nil {
		return nil, err
	}
	r.IdleCPU, r.IdleWallS = cpu.stop()

	b.logf("chat rate: %s messages, %d a second, to %s subscribers", count(int64(n)), r.Rate, count(int64(s)))
	rt0, m0, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}
	stopPerf := b.profileCPU("chatrate", e.dlssePID())
	cpu = newProcCPU(names, pids)
	st, err := e.ctl.runLoad(ctx, loadRequest{Conversations: []string{conv},
		Interval: (time.Second / time.Duration(r.Rate)).String(), Rounds: n, Prefix: "chat "})
	var waitErr error
	if err == nil {
		r.FakeMaxLagMs = st.MaxLagMs
		waitErr = f.waitAll(ctx, "chat delivered", 30*time.Second, deliveredAll(int64(n)))
	}
	r.CPU, r.WallS = cpu.stop()
	stopPerf()
	if err != nil {
		return nil, err
	}
	rt1, m1, err := e.runtime(ctx)
	if err != nil {
		return nil, err
	}
	slow := `dlsse_` + r.Wire + `_disconnects_total{reason="slow"}`
	r.SlowDrops = m1[slow] - m0[slow]

	f.close()
	r.delivery = deliveryOf(f.recs, func(int) int64 { return int64(n) })
	r.Latency = latencyOf(f.recs)
	r.SentOverS = sentSpan(f.recs)
	r.StampMaxLagMs = scheduleLag(f.recs, time.Second/time.Duration(r.Rate))
	if r.Events > 0 {
		ev := float64(r.Events)
		r.CPUPerEventUs = r.CPU["dlsse"] * 1e6 / ev
		if r.IdleWallS > 0 {
			idleRate := r.IdleCPU["dlsse"] / r.IdleWallS
			r.CPUPerEventMargUs = (r.CPU["dlsse"] - idleRate*r.WallS) * 1e6 / ev
		}
		r.PerMessageRuntime = rt1.sub(rt0).div(float64(n))
	}
	if waitErr != nil {
		b.logf("warning: %v", waitErr) // reported as lost
	}
	floorRounds := min(n, int(floorRun.Seconds())*r.Rate)
	b.logf("write floor: %d rounds of a raw write to %s loopback sockets", floorRounds, count(int64(s)))
	if r.FloorUs, err = writeFloor(ctx, s, time.Second/time.Duration(r.Rate), floorRounds); err != nil {
		return nil, fmt.Errorf("write floor: %w", err)
	}
	r.FloorWrites = floorRounds * s
	return r, nil
}

// floorRun bounds how long chatrate measures the write floor: a few
// seconds of writes are a few hundred thousand.
const floorRun = 5 * time.Second

// sentSpan is the time from the first to the last stamp the clients of
// recs saw, in seconds: how long the fake took to send what it sent.
// Call it once the clients have ended.
func sentSpan(recs []*recorder) float64 {
	first, last := int64(math.MaxInt64), int64(0)
	for _, rec := range recs {
		for _, sm := range rec.samples {
			first, last = min(first, sm.SentAt), max(last, sm.SentAt)
		}
	}
	if last < first {
		return 0
	}
	return float64(last-first) / 1e9
}

// scheduleLag is how late the fake sent a message at worst, in ms: its
// sentAt against the first message's plus its place × every (the load's
// schedule for one conversation). Every client got the same stamps; the
// first with any is read. Call it once the clients have ended.
func scheduleLag(recs []*recorder, every time.Duration) float64 {
	for _, rec := range recs {
		if len(rec.samples) == 0 {
			continue
		}
		first := rec.samples[0]
		for _, sm := range rec.samples {
			if sm.Seq < first.Seq {
				first = sm
			}
		}
		var lag int64
		for _, sm := range rec.samples {
			lag = max(lag, sm.SentAt-first.SentAt-(sm.Seq-first.Seq)*int64(every))
		}
		return float64(lag) / float64(time.Millisecond)
	}
	return 0
}

func (r *chatrateReport) table() *table {
	t := &table{title: fmt.Sprintf("chatrate — 1 conversation × %s %s subscribers, %d messages a second for %s messages",
		count(int64(r.Subscribers)), wireName(r.Wire), r.Rate, count(int64(r.Messages)))}
	t.add("all streams online after", secs(r.ConnectS))
	rate := 0.0
	if r.SentOverS > 0 {
		rate = float64(r.Messages-1) / r.SentOverS
	}
	t.add("fake sent them over (rate)", fmt.Sprintf("%s (%.1f a second)", secs(r.SentOverS), rate))
	t.add("fake fell behind its schedule by at most (its own count; from the stamps)", fmt.Sprintf("%s; %s", ms(r.FakeMaxLagMs), ms(r.StampMaxLagMs)))
	t.add("CPU with the subscribers idle (nothing sent)", cpuOf(r.IdleCPU, r.IdleWallS))
	t.add("CPU while the fake sent, until all delivered", cpuOf(r.CPU, r.WallS))
	t.goal("dlsse CPU per delivered event (all; minus the idle rate)", fmt.Sprintf("%.2f µs; %.2f µs", r.CPUPerEventUs, r.CPUPerEventMargUs),
		"≤ 5 µs", r.Events > 0 && r.CPUPerEventUs <= 5)
	t.add(fmt.Sprintf("floor: one write(2) of %d B per delivery from a plain loop, its thread's CPU (%s writes)", floorMessage, count(int64(r.FloorWrites))),
		fmt.Sprintf("%.2f µs", r.FloorUs))
	t.add("dlsse CPU per delivered event above that floor", fmt.Sprintf("%.2f µs", r.CPUPerEventUs-r.FloorUs))
	pm := r.PerMessageRuntime
	t.add("dlsse allocation per message (per delivered event; GC cycles)", fmt.Sprintf("%s, %.1f objects (%.0f B, %.3f objects; %.0f)",
		kib(pm.AllocBytes), pm.Mallocs, pm.AllocBytes/float64(r.Subscribers), pm.Mallocs/float64(r.Subscribers), pm.GCCycles*float64(r.Messages)))
	t.add("events delivered / expected", fmt.Sprintf("%s / %s", count(r.Events), count(r.Expected)))
	t.goal("lost / duplicated", fmt.Sprintf("%d / %d", r.Lost, r.Duplicated), "0 / 0", r.Lost == 0 && r.Duplicated == 0)
	t.add("subscribers dropped as slow (dlsse) / client disconnects", fmt.Sprintf("%.0f / %d", r.SlowDrops, r.Disconnects))
	t.add("latency fake → client", latencyRow(r.Latency))
	t.goal("latency p99", ms(r.Latency.P99), "≤ 10 ms", r.Latency.N > 0 && r.Latency.P99 <= 10)
	return t
}
