package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// churnReport is the churn scenario: chat widgets coming and going. Each
// visit costs dlsse a session and a Direct Line socket that outlive the
// visitor by idle_grace, once dlsse has noticed the visitor left; before
// it noticed at once, 16 live viewers kept ~340 sockets open (issue 14).
// The bound is live viewers + conversations left within idle_grace.
type churnReport struct {
	Wire       string  `json:"wire"` // the clients: sse or websocket
	Clients    int     `json:"clients"`
	StreamS    float64 `json:"stream_s"`     // each visit streams this long after its stream opened
	IdleGraceS float64 `json:"idle_grace_s"` // dlsse's
	ChurnS     float64 `json:"churn_s"`      // the churn's wall time

	Churned     int64   `json:"conversations_churned"` // started through dlsse, streamed, left
	LeavesPerS  float64 `json:"leaves_per_s"`
	Failed      int64   `json:"failed_visits"` // a start call or a stream that failed, or a stream dlsse ended
	FirstError  string  `json:"first_error,omitempty"`
	NeverOnline int64   `json:"left_before_online"` // visits whose stream never said online
	ClientGone  float64 `json:"dlsse_client_gone"`  // dlsse's {sse,websocket}_disconnects_total{reason="client_gone"} over the churn

	Samples []churnSample `json:"samples"` // one a second

	MaxUpstream    int64 `json:"max_upstream_sockets"`
	BoundAtMax     int64 `json:"bound_at_max"` // the bound in that sample
	MaxSessions    int64 `json:"max_sessions"`
	MaxFakeSockets int64 `json:"max_fake_sockets"`
	// The most upstream sockets any sample had over its bound (0: the
	// bound always held), and the most streams dlsse had open beyond the
	// clients streaming (its departures not yet noticed).
	MaxExcess        int64 `json:"max_excess_over_bound"`
	MaxStreamsBeyond int64 `json:"max_streams_beyond_viewers"`
	// The second half of the churn, when as many conversations are inside
	// idle_grace as will ever be.
	Steady churnSteady `json:"steady"`
	// Clients + leaves per second × idle_grace.
	Expected float64 `json:"expected_upstream_sockets"`

	// Departure: a client leaves with nothing else going on, and dlsse's
	// client_gone count is polled until it rises.
	Probes      int     `json:"probes"`
	ProbeMissed int     `json:"probes_not_noticed"` // within probeWait
	ProbeP50Ms  float64 `json:"departure_noticed_p50_ms"`
	ProbeMaxMs  float64 `json:"departure_noticed_max_ms"`
	ScrapeMs    float64 `json:"metrics_scrape_ms"` // the poll's resolution

	// After the last client left: every session and socket closed after
	// DrainS, or what was left when the bench stopped waiting.
	Drained         bool    `json:"drained"`
	DrainS          float64 `json:"drained_after_s"`
	SessionsLeft    int64   `json:"sessions_left"`
	UpstreamLeft    int64   `json:"upstream_sockets_left"`
	FakeSocketsLeft int64   `json:"fake_sockets_left"`

	CPU          map[string]float64 `json:"cpu_s"` // over the churn
	WallS        float64            `json:"wall_s"`
	CPUPerConvMs float64            `json:"dlsse_cpu_ms_per_conversation"`
	RSSMax       int64              `json:"dlsse_rss_max_bytes"`
	MaxFiles     int                `json:"dlsse_max_open_files"`
}

// churnSample is dlsse, the fake and the clients at one moment.
type churnSample struct {
	AtS        float64 `json:"at_s"`         // since the churn began
	Viewers    int64   `json:"viewers"`      // clients holding a conversation: from its start call until they left
	Streaming  int64   `json:"streaming"`    // of which with their stream open
	Left       int64   `json:"left"`         // visits ended so far
	InGrace    int64   `json:"inside_grace"` // conversations left within idle_grace (+ 1 s)
	Sessions   int64   `json:"sessions"`
	Upstream   int64   `json:"upstream_sockets"`
	Streams    int64   `json:"streams"` // dlsse's subscribers open, of the wire
	FakeSocket int64   `json:"fake_sockets"`
	at         time.Time
}

// bound is what the sample's upstream sockets should not exceed.
func (s churnSample) bound() int64 { return s.Viewers + s.InGrace }

// churnSteady is the second half of the churn's samples.
type churnSteady struct {
	Samples      int     `json:"samples"`
	MeanUpstream float64 `json:"mean_upstream_sockets"`
	MaxUpstream  int64   `json:"max_upstream_sockets"`
	MeanSessions float64 `json:"mean_sessions"`
	MeanFake     float64 `json:"mean_fake_sockets"`
	MeanViewers  float64 `json:"mean_viewers"`
	MeanInGrace  float64 `json:"mean_inside_grace"`
}

// How the departure is timed after the churn: probes visits of probeHold
// each, one at a time; a departure not noticed within probeWait is missed.
const (
	churnProbes = 20
	probeHold   = 200 * time.Millisecond
	probeWait   = 5 * time.Second
)

// graceSlack widens idle_grace in the bound: a departure noticed within 1
// s (issue 14's goal) still counts as inside it.
const graceSlack = time.Second

// churn: K clients each open a conversation through dlsse's REST (the
// fake's secret as their credential: dlsse keeps the start answer's
// stream URL for the session, as for Web Chat with a token), stream it for
// -churn-stream and leave, again and again for -churn-duration, while
// dlsse's sessions and sockets are sampled every second; then departure
// probes, and the wait until every session has closed.
func (b *bench) churn(ctx context.Context) (*churnReport, error) {
	r := &churnReport{Wire: b.opt.wire, Clients: b.opt.churnClients, StreamS: b.opt.churnStream.Seconds(), IdleGraceS: b.opt.idleGrace.Seconds()}
	e, err := b.start(ctx, "churn", true, 10, "-idle-grace", b.opt.idleGrace.String())
	if err != nil {
		return nil, err
	}
	defer e.stop()
	c := &churner{b: b, e: e}

	b.logf("churn: %d clients, each streaming %v per conversation, for %v (idle_grace %v)", r.Clients, b.opt.churnStream, b.opt.churnDuration, b.opt.idleGrace)
	m0, err := e.ctl.metrics(ctx, e.dlsse.URL+"/metrics")
	if err != nil {
		return nil, err
	}
	peak := startPeakSampler(e.dlssePID(), time.Second)
	stopPerf := b.profileCPU("churn", e.dlssePID())
	cpu := newProcCPU([]string{"dlsse", "fake", "bench"}, []string{e.dlssePID(), e.fake.PID(), "self"})
	samples := c.run(ctx, b.opt.churnDuration)
	r.CPU, r.WallS = cpu.stop()
	stopPerf()
	r.RSSMax, r.MaxFiles = peak.stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Once dlsse has closed every stream of the churn, its client_gone
	// count is the churn's whole.
	streams := c.metric("subscribers_open", "")
	m1, err := c.waitMetrics(ctx, time.Minute, func(m map[string]float64) bool { return m[streams] == 0 })
	if err != nil {
		return nil, fmt.Errorf("the churn's streams still open: %w", err)
	}
	r.ChurnS = r.WallS
	r.Churned, r.Failed, r.NeverOnline = c.left.Load(), c.failed.Load(), c.neverOnline.Load()
	if first := c.firstErr.Load(); first != nil {
		r.FirstError = (*first).Error()
		b.logf("warning: %d visits failed, the first: %v", r.Failed, *first)
	}
	r.ClientGone = m1[c.metric("disconnects_total", `{reason="client_gone"}`)] - m0[c.metric("disconnects_total", `{reason="client_gone"}`)]
	r.analyse(samples, c.leaveTimes(), b.opt.idleGrace)
	if r.Churned > 0 {
		r.CPUPerConvMs = r.CPU["dlsse"] * 1000 / float64(r.Churned)
	}

	if err := c.departures(ctx, r); err != nil {
		return nil, err
	}
	if err := c.drain(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// churner is the churn's clients and what they did.
type churner struct {
	b *bench
	e *env

	viewers, streaming        atomic.Int64 // now
	left, failed, neverOnline atomic.Int64 // so far
	firstErr                  atomic.Pointer[error]
	mu                        sync.Mutex
	leaves                    []time.Time // when each visit ended
}

// metric is the name of one of dlsse's stream metrics for the churn's
// wire: dlsse_sse_… or dlsse_websocket_….
func (c *churner) metric(name, labels string) string {
	return "dlsse_" + c.b.opt.wire + "_" + name + labels
}

// run churns for d and returns the samples taken every second.
func (c *churner) run(ctx context.Context, d time.Duration) []churnSample {
	began := time.Now()
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	srcs := sourceAddrs(c.b.opt.sources)
	for i := range c.b.opt.churnClients {
		wg.Go(func() { c.client(cctx, srcs[i%len(srcs)]) })
	}
	var samples []churnSample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for cctx.Err() == nil {
		select {
		case <-tick.C:
		case <-cctx.Done():
			continue
		}
		if s, err := c.sample(cctx, began); err == nil {
			samples = append(samples, s)
		}
	}
	wg.Wait()
	return samples
}

// client visits conversation after conversation until ctx ends. A failed
// visit is counted and the client pauses a little, so a broken dlsse is
// not hammered.
func (c *churner) client(ctx context.Context, src net.IP) {
	for ctx.Err() == nil {
		c.viewers.Add(1)
		err := c.visit(ctx, src)
		c.viewers.Add(-1)
		if err != nil && ctx.Err() == nil {
			c.failed.Add(1)
			c.firstErr.CompareAndSwap(nil, &err)
			_ = settle(ctx, 100*time.Millisecond)
		}
	}
}

// visit starts a conversation through dlsse, opens its stream and leaves
// -churn-stream after the stream opened, by closing the connection.
func (c *churner) visit(ctx context.Context, src net.IP) error {
	target, err := c.e.ctl.startConversation(ctx, c.e.dlsse.URL, c.e.fake.Secret)
	if err != nil {
		return err
	}
	_, err = c.streamFor(ctx, src, target, c.b.opt.churnStream)
	return err
}

// streamFor opens one stream to target and closes its connection hold
// after the stream opened; it returns when the connection was closed.
func (c *churner) streamFor(ctx context.Context, src net.IP, target string, hold time.Duration) (time.Time, error) {
	rec := &recorder{}
	sub, err := newSubscriber(rec, src, []string{c.e.dlsse.Addr}, target, 4096, c.b.opt.wire)
	if err != nil {
		return time.Time{}, err
	}
	vctx, leave := context.WithCancel(ctx)
	defer leave()
	var timer *time.Timer
	opened := false
	err = sub.stream(vctx, func(err error) {
		if err == nil {
			opened = true
			c.streaming.Add(1)
			timer = time.AfterFunc(hold, leave)
		}
	})
	if !opened {
		return time.Time{}, err
	}
	timer.Stop()
	leftAt := time.Now()
	c.streaming.Add(-1)
	c.mu.Lock()
	c.leaves = append(c.leaves, leftAt)
	c.mu.Unlock()
	c.left.Add(1)
	if !rec.online.Load() {
		c.neverOnline.Add(1)
	}
	if vctx.Err() == nil {
		return leftAt, fmt.Errorf("stream ended before the client left: %w", err)
	}
	return leftAt, nil
}

// sample reads dlsse's metrics first and the clients' counts after, so
// that a conversation whose socket dlsse counted is counted by the
// clients too (as a viewer, or as left); the fake's count is read last.
func (c *churner) sample(ctx context.Context, began time.Time) (churnSample, error) {
	m, err := c.e.ctl.metrics(ctx, c.e.dlsse.URL+"/metrics")
	if err != nil {
		return churnSample{}, err
	}
	at := time.Now()
	s := churnSample{at: at, AtS: at.Sub(began).Seconds(), Viewers: c.viewers.Load(), Streaming: c.streaming.Load(), Left: c.left.Load(),
		Sessions: int64(m["dlsse_sessions_open"]), Upstream: int64(m["dlsse_upstream_sockets_open"]), Streams: int64(m[c.metric("subscribers_open", "")])}
	st, err := c.e.ctl.stats(ctx)
	if err != nil {
		return churnSample{}, err
	}
	s.FakeSocket = st.SocketsOpen
	return s, nil
}

// leaveTimes are when the visits ended, in order.
func (c *churner) leaveTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.leaves)
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// analyse fills the counts of the churn from its samples and the times
// the visits ended.
func (r *churnReport) analyse(samples []churnSample, leaves []time.Time, grace time.Duration) {
	window := grace + graceSlack
	var steady []churnSample
	for i := range samples {
		s := &samples[i]
		s.InGrace = int64(upTo(leaves, s.at) - upTo(leaves, s.at.Add(-window)))
		if s.Upstream > r.MaxUpstream {
			r.MaxUpstream, r.BoundAtMax = s.Upstream, s.bound()
		}
		r.MaxSessions = max(r.MaxSessions, s.Sessions)
		r.MaxFakeSockets = max(r.MaxFakeSockets, s.FakeSocket)
		r.MaxExcess = max(r.MaxExcess, s.Upstream-s.bound())
		r.MaxStreamsBeyond = max(r.MaxStreamsBeyond, s.Streams-s.Streaming)
		if s.AtS >= r.ChurnS/2 {
			steady = append(steady, *s)
		}
	}
	r.Samples = samples
	if r.ChurnS > 0 {
		r.LeavesPerS = float64(r.Churned) / r.ChurnS
	}
	r.Expected = float64(r.Clients) + r.LeavesPerS*grace.Seconds()
	st := churnSteady{Samples: len(steady)}
	for _, s := range steady {
		st.MeanUpstream += float64(s.Upstream)
		st.MaxUpstream = max(st.MaxUpstream, s.Upstream)
		st.MeanSessions += float64(s.Sessions)
		st.MeanFake += float64(s.FakeSocket)
		st.MeanViewers += float64(s.Viewers)
		st.MeanInGrace += float64(s.InGrace)
	}
	if n := float64(len(steady)); n > 0 {
		st.MeanUpstream /= n
		st.MeanSessions /= n
		st.MeanFake /= n
		st.MeanViewers /= n
		st.MeanInGrace /= n
	}
	r.Steady = st
}

// upTo is how many of the sorted times are at or before t.
func upTo(times []time.Time, t time.Time) int {
	return sort.Search(len(times), func(i int) bool { return times[i].After(t) })
}

// departures times how soon dlsse notices a client that left, once every
// churn stream has closed: churnProbes visits of one conversation one
// after the other, each leaving after probeHold; after each, dlsse's
// client_gone count is polled until it rises. The time is from the close
// to the answer that showed it: an upper bound, as fine as a scrape.
func (c *churner) departures(ctx context.Context, r *churnReport) error {
	target, err := c.e.ctl.startConversation(ctx, c.e.dlsse.URL, c.e.fake.Secret)
	if err != nil {
		return err
	}
	gone := c.metric("disconnects_total", `{reason="client_gone"}`)
	src := sourceAddrs(1)[0]
	var noticed []int64
	var scrapes int
	var scraping time.Duration
	for range churnProbes {
		m0, err := c.e.ctl.metrics(ctx, c.e.dlsse.URL+"/metrics")
		if err != nil {
			return err
		}
		leftAt, err := c.streamFor(ctx, src, target, probeHold)
		if err != nil {
			return fmt.Errorf("departure probe: %w", err)
		}
		for {
			t := time.Now()
			m, err := c.e.ctl.metrics(ctx, c.e.dlsse.URL+"/metrics")
			if err != nil {
				return err
			}
			scrapes++
			scraping += time.Since(t)
			if m[gone] > m0[gone] {
				noticed = append(noticed, int64(time.Since(leftAt)))
				break
			}
			if time.Since(leftAt) > probeWait {
				r.ProbeMissed++
				break
			}
		}
	}
	r.Probes = churnProbes
	if len(noticed) > 0 {
		l := summarise(noticed)
		r.ProbeP50Ms, r.ProbeMaxMs = l.P50, l.Max
	}
	if scrapes > 0 {
		r.ScrapeMs = scraping.Seconds() * 1000 / float64(scrapes)
	}
	return nil
}

// drain waits until dlsse has closed every session and upstream socket
// and the fake has no socket open, at most idle_grace + 30 s after the
// last client left, and records how long that took or what was left.
func (c *churner) drain(ctx context.Context, r *churnReport) error {
	leaves := c.leaveTimes()
	if len(leaves) == 0 {
		return errors.New("no client left")
	}
	last := leaves[len(leaves)-1]
	deadline := last.Add(c.b.opt.idleGrace + 30*time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := c.e.ctl.metrics(ctx, c.e.dlsse.URL+"/metrics")
		if err != nil {
			return err
		}
		st, err := c.e.ctl.stats(ctx)
		if err != nil {
			return err
		}
		r.SessionsLeft, r.UpstreamLeft, r.FakeSocketsLeft = int64(m["dlsse_sessions_open"]), int64(m["dlsse_upstream_sockets_open"]), st.SocketsOpen
		if r.SessionsLeft == 0 && r.UpstreamLeft == 0 && r.FakeSocketsLeft == 0 {
			r.Drained, r.DrainS = true, time.Since(last).Seconds()
			return nil
		}
		if time.Now().After(deadline) {
			c.b.logf("warning: %d sessions, %d upstream sockets still open %v after the last client left", r.SessionsLeft, r.UpstreamLeft, time.Since(last))
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitMetrics polls dlsse's metrics every 100 ms until ok holds, and
// returns the metrics that satisfied it.
func (c *churner) waitMetrics(ctx context.Context, timeout time.Duration, ok func(map[string]float64) bool) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := c.e.ctl.metrics(ctx, c.e.dlsse.URL+"/metrics")
		if err != nil {
			return nil, err
		}
		if ok(m) {
			return m, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// startConversation starts a conversation through dlsse's REST API with
// credential, as Web Chat does, and returns the stream URL dlsse
// answered with as a request target (path and query: the client dials
// dlsse's address itself). dlsse keeps Direct Line's stream URL from the
// answer for the session the stream will open.
func (c *ctl) startConversation(ctx context.Context, base, credential string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v3/directline/conversations", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+credential)
	res, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var body struct {
		StreamURL string `json:"streamUrl"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode/100 != 2 || body.StreamURL == "" {
		return "", fmt.Errorf("start through dlsse: status %d: %v", res.StatusCode, err)
	}
	u, err := url.Parse(body.StreamURL)
	if err != nil {
		return "", err
	}
	return u.RequestURI(), nil
}

func (r *churnReport) table() *table {
	t := &table{title: fmt.Sprintf("churn — %d %s clients, each opening a conversation, streaming %s and leaving, for %s; idle_grace %s",
		r.Clients, wireName(r.Wire), secs(r.StreamS), secs(r.ChurnS), secs(r.IdleGraceS))}
	t.add("conversations churned (started through dlsse, streamed, left)", fmt.Sprintf("%s, %.1f a second", count(r.Churned), r.LeavesPerS))
	t.goal("failed visits / left before online", fmt.Sprintf("%d / %d", r.Failed, r.NeverOnline), "0", r.Failed == 0 && r.NeverOnline == 0)
	t.add("dlsse upstream sockets open at most (the bound then: live viewers + left within idle_grace + 1 s)", fmt.Sprintf("%s (%s)", count(r.MaxUpstream), count(r.BoundAtMax)))
	s := r.Steady
	t.add("second half: upstream sockets open, mean (max)", fmt.Sprintf("%.1f (%s)", s.MeanUpstream, count(s.MaxUpstream)))
	t.add("second half: dlsse sessions / fake sockets open, mean", fmt.Sprintf("%.1f / %.1f", s.MeanSessions, s.MeanFake))
	t.add("second half: live viewers + left within idle_grace + 1 s, mean", fmt.Sprintf("%.1f + %.1f = %.1f", s.MeanViewers, s.MeanInGrace, s.MeanViewers+s.MeanInGrace))
	t.add("expected: clients + leaves a second × idle_grace", fmt.Sprintf("%.1f", r.Expected))
	t.goal("upstream sockets over the bound, at most (1 s samples)", count(r.MaxExcess), "0 (≤ live viewers + inside idle_grace)", r.MaxExcess == 0)
	t.add("upstream sockets open, 1 s samples", sparkline(peaks(upstreamOf(r.Samples), 60)))
	t.add("dlsse streams open beyond the clients streaming, at most (1 s samples)", count(r.MaxStreamsBeyond))
	t.add("streams dlsse closed as client_gone / visits that left", fmt.Sprintf("%s / %s", count(int64(r.ClientGone)), count(r.Churned)))
	t.goal(fmt.Sprintf("a client's departure noticed (client_gone counted) after, p50 / max (%d alone; metrics polled every %.1f ms)", r.Probes, r.ScrapeMs),
		fmt.Sprintf("%s / %s (%d not within %v)", ms(r.ProbeP50Ms), ms(r.ProbeMaxMs), r.ProbeMissed, probeWait),
		"≤ 1 s", r.ProbeMissed == 0 && r.Probes > 0 && r.ProbeMaxMs <= 1000)
	if r.Drained {
		t.add("after the last client left, every session and socket closed after", secs(r.DrainS))
	} else {
		t.add("after the last client left, still open when the bench stopped waiting", fmt.Sprintf("%d sessions, %d upstream sockets, %d fake sockets", r.SessionsLeft, r.UpstreamLeft, r.FakeSocketsLeft))
	}
	t.add("CPU over the churn", cpuOf(r.CPU, r.WallS))
	t.add("dlsse CPU per conversation churned", fmt.Sprintf("%.2f ms", r.CPUPerConvMs))
	t.add("dlsse RSS / open files at most (1 s samples)", fmt.Sprintf("%s / %s", mib(r.RSSMax), count(int64(r.MaxFiles))))
	return t
}

// upstreamOf is the samples' upstream socket counts.
func upstreamOf(samples []churnSample) []int64 {
	out := make([]int64, len(samples))
	for i, s := range samples {
		out[i] = s.Upstream
	}
	return out
}

// peaks shortens v to at most n values, each the largest of its stretch,
// so a long series fits a table's cell.
func peaks(v []int64, n int) []int64 {
	per := (len(v) + n - 1) / n
	if per <= 1 {
		return v
	}
	var out []int64
	for chunk := range slices.Chunk(v, per) {
		out = append(out, slices.Max(chunk))
	}
	return out
}
