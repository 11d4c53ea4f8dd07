package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestBenchTiny runs every scenario of "all" at tiny sizes through real processes
// (dlsse and the fake, built for the occasion) and checks that the
// reports add up: every message delivered exactly once, the counts
// consistent, the storm recovered. It never asserts a duration or a rate:
// those depend on the machine.
func TestBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs dlsse and the fake")
	}
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const c, s, n = 20, 20, 50
	const m = 20 // chatrate's messages: -rate 50 for -duration 400ms
	args := []string{"-scenario", "all", "-json", "-conversations", "20", "-subscribers", "20", "-events", "50",
		"-interval", "200ms", "-duration", "400ms", "-idle", "200ms", "-sources", "3", "-rate", "50"}
	res := runBench(ctx, t, args)

	w := res.Widgets
	if w == nil || w.Conversations != c || w.Rounds != 2 || w.Expected != c*2 || w.Events != w.Expected ||
		w.Lost != 0 || w.Duplicated != 0 || w.Latency.N != int(w.Events) || w.RSSIdle <= 0 || w.RSSLoaded <= 0 ||
		w.PerSessionRuntime.Goroutines <= 0 || w.CPU.Wall <= 0 {
		t.Errorf("widgets: %+v", w)
	}
	bl := res.Baseline
	if bl == nil || bl.Conversations != c || bl.Events != c*2 || bl.Lost != 0 || bl.Duplicated != 0 ||
		bl.Dlsse == nil || bl.Added == nil || bl.Latency.N != c*2 {
		t.Errorf("baseline: %+v", bl)
	}
	f := res.Fanout
	if f == nil || f.Subscribers != s || f.Expected != s*n || f.Delivered != f.Expected || f.Lost != 0 || f.Duplicated != 0 ||
		f.SlowDrops != 0 || f.ClientDisconnects != 0 || f.EventsPerS <= 0 || f.Latency.N != s*n {
		t.Errorf("fanout: %+v", f)
	}
	if cr := res.Chatrate; cr == nil || !chatrateAddsUp(cr, s, m) {
		t.Errorf("chatrate: %+v", cr)
	}
	st := res.Storm
	if st == nil || st.Sessions != c || st.Dropped != c || st.Back != c || st.SocketsOpen != c ||
		st.Expected != c*4 || st.Delivered != st.Expected || st.Lost != 0 || st.Duplicated != 0 ||
		st.ReconnectCalls < c || st.SocketsOpened < c || st.SawReconnecting != c || st.BreakerOpened != 0 {
		t.Errorf("storm: %+v", st)
	}

	// The tables render from the same results.
	var tables bytes.Buffer
	b := &bench{opt: options{scenarios: allScenarios}, res: res}
	b.printTables(&tables)
	for _, want := range []string{"#### widgets", "#### baseline", "#### fanout", "#### chatrate", "#### storm", "| lost / duplicated | 0 / 0 |"} {
		if !bytes.Contains(tables.Bytes(), []byte(want)) {
			t.Errorf("tables lack %q:\n%s", want, tables.String())
		}
	}
}

// TestBenchTinyWebSocket runs widgets, fanout, chatrate and churn with
// WebSocket subscribers (Direct Line's protocol, as DirectLineJS opens the
// stream): every message once, none dropped, every departure seen.
func TestBenchTinyWebSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs dlsse and the fake")
	}
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const c, s, n, m = 20, 20, 50, 20
	args := append([]string{"-scenario", "widgets,fanout,chatrate,churn", "-wire", "websocket", "-json", "-conversations", "20", "-subscribers", "20",
		"-events", "50", "-interval", "200ms", "-duration", "400ms", "-idle", "200ms", "-sources", "3", "-rate", "50"}, tinyChurn...)
	res := runBench(ctx, t, args)
	if w := res.Widgets; w == nil || w.Wire != "websocket" || w.Expected != c*2 || w.Events != w.Expected || w.Lost != 0 || w.Duplicated != 0 {
		t.Errorf("widgets: %+v", w)
	}
	if f := res.Fanout; f == nil || f.Wire != "websocket" || f.Expected != s*n || f.Delivered != f.Expected || f.Lost != 0 ||
		f.Duplicated != 0 || f.SlowDrops != 0 || f.ClientDisconnects != 0 {
		t.Errorf("fanout: %+v", f)
	}
	if cr := res.Chatrate; cr == nil || cr.Wire != "websocket" || !chatrateAddsUp(cr, s, m) {
		t.Errorf("chatrate: %+v", cr)
	}
	if ch := res.Churn; ch == nil || ch.Wire != "websocket" || !churnAddsUp(ch) {
		t.Errorf("churn: %+v", ch)
	}
}

// chatrateAddsUp says whether a chatrate report of s subscribers and m
// messages has every message once at every subscriber, none dropped.
func chatrateAddsUp(r *chatrateReport, s, m int) bool {
	_, measured := r.CPU["dlsse"]
	return r.Subscribers == s && r.Messages == m && r.Expected == int64(s*m) && r.Events == r.Expected &&
		r.Lost == 0 && r.Duplicated == 0 && r.SlowDrops == 0 && r.Disconnects == 0 && r.Latency.N == s*m && measured &&
		r.FloorWrites == s*m && r.FloorUs > 0 // the floor: m rounds (under 5 s) to s sockets
}

// tinyChurn are the churn's flags in the tests: 4 clients for 3 s, each
// streaming 300 ms, idle_grace 1 s.
var tinyChurn = []string{"-churn-clients", "4", "-churn-stream", "300ms", "-churn-duration", "3s", "-idle-grace", "1s"}

// churnAddsUp says whether a churn report of tinyChurn adds up: every
// client visited, no visit failed, dlsse counted every departure as
// client_gone and noticed every probe's, sampled the churn, and closed
// every session and socket after.
func churnAddsUp(r *churnReport) bool {
	return r.Clients == 4 && r.Churned >= 4 && r.Failed == 0 && r.NeverOnline == 0 && r.ClientGone == float64(r.Churned) &&
		len(r.Samples) > 0 && r.MaxUpstream > 0 && r.MaxSessions >= r.MaxUpstream &&
		r.Probes == churnProbes && r.ProbeMissed == 0 && r.Drained && r.SessionsLeft == 0 && r.UpstreamLeft == 0 && r.FakeSocketsLeft == 0
}

// TestBenchTinyChurn runs churn (not part of "all") at a tiny size with
// SSE clients.
func TestBenchTinyChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs dlsse and the fake")
	}
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append([]string{"-scenario", "churn", "-json", "-sources", "3"}, tinyChurn...)
	res := runBench(ctx, t, args)
	if ch := res.Churn; ch == nil || ch.Wire != "sse" || !churnAddsUp(ch) {
		t.Errorf("churn: %+v", ch)
	}
	var tables bytes.Buffer
	b := &bench{opt: options{scenarios: []string{"churn"}}, res: res}
	b.printTables(&tables)
	if !bytes.Contains(tables.Bytes(), []byte("#### churn")) {
		t.Errorf("tables lack the churn:\n%s", tables.String())
	}
}

// TestBenchClusterTiny runs the cluster scenario at a tiny size: three
// replicas, redis-server and the fake as processes, the trickle on them
// and on one dlsse, a SIGKILL and a SIGTERM of a replica that owns
// conversations; and checks that the report adds up: everything
// delivered once, every replica owning a third, the Redis numbers there,
// the failovers seen by subscribers on the other replicas, no collision
// beyond one per conversation that changed owner. Like internal/redistest
// it skips without redis-server, unless REQUIRE_TEST_SERVERS is set.
func TestBenchClusterTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs dlsse, the fake and redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("REQUIRE_TEST_SERVERS") != "" {
			t.Fatalf("redis-server is required (REQUIRE_TEST_SERVERS is set): %v", err)
		}
		t.Skip("redis-server not installed (apt-get install redis-server; ./scripts/test installs it)")
	}
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const c, rounds = 18, 2
	args := []string{"-scenario", "cluster", "-json", "-cluster-conversations", "18", "-interval", "200ms", "-duration", "400ms",
		"-idle", "200ms", "-sources", "3", "-lease-ttl", "3s",
		// Subscribers whose replica went away come back sooner.
		"-dlsse-args", "-retry 200ms -shutdown-jitter 100ms"}
	res := runBench(ctx, t, args)
	r := res.Cluster
	if r == nil {
		t.Fatal("no cluster report")
	}
	if r.Conversations != c || r.Rounds != rounds || r.OnOwner != c/3 || r.OnFollower != c-c/3 {
		t.Errorf("sizes: %+v", r)
	}
	for name, run := range map[string]trickleRun{"single": r.Single, "cluster": r.Cluster} {
		if run.Expected != c*rounds || run.Events != run.Expected || run.Lost != 0 || run.Duplicated != 0 ||
			run.Latency.N != c*rounds || run.RSSEnd <= 0 || run.CPU["fake"] < 0 {
			t.Errorf("%s: %+v", name, run)
		}
	}
	if lf := r.Cluster.LatencyFollower; lf == nil || lf.N != r.OnFollower*rounds {
		t.Errorf("latency on another replica: %+v", lf)
	}
	if len(r.PerReplica) != 3 {
		t.Fatalf("replicas: %+v", r.PerReplica)
	}
	for i, p := range r.PerReplica {
		// Each owns a third; each holds the sessions of its third and of
		// the conversations whose subscriber it has.
		if p.Owned != c/3 || p.Subscribers != c/3 || p.Sessions != c/3+c/3*2/3 || p.RSSEnd <= 0 {
			t.Errorf("replica %d: %+v", i, p)
		}
	}
	k := r.Calls
	if k.Activities != c*rounds || k.FollowerApplied != int64(r.OnFollower*rounds) || k.ByOp["append"] < float64(c*rounds)/2 ||
		k.OwnerPerActivity <= 0 || k.ScriptsSeen <= 0 {
		t.Errorf("calls: %+v", k)
	}
	u := r.Redis
	if u.Version == "" || u.PerConversation <= 0 || u.UsedEnd <= u.UsedEmpty || u.Samples == 0 || u.LogEntries < rounds ||
		u.EntryBytes <= 0 || u.LeaseBytes <= 0 || u.Following < 1 || u.Commands["evalsha"]+u.Commands["eval"] <= 0 {
		t.Errorf("redis: %+v", u)
	}
	for _, fo := range []*failover{r.Kill, r.Term} {
		if fo == nil || fo.Owned == 0 || fo.ChangedOwner != fo.Owned || fo.Steady == 0 || fo.ProbeMaxS <= 0 ||
			fo.Collisions > int64(fo.ChangedOwner) || fo.WallS <= 0 || fo.CPU["redis"] < 0 {
			t.Errorf("failover: %+v", fo)
		}
	}
	// The leases had at most lease_ttl left, and the probe came after
	// they expired.
	if r.Kill != nil && (r.Kill.Owned != c/3 || r.Kill.Moved == 0 || r.Kill.LeaseLeftMaxS > 3 || r.Kill.LeaseLeftMinS <= 0 ||
		r.Kill.AfterExpiryMaxS <= 0) {
		t.Errorf("SIGKILL: %+v", r.Kill)
	}
	if r.Term != nil && r.Term.Waves == 0 {
		t.Errorf("SIGTERM: %+v", r.Term)
	}
	if r.Total.Expected <= c*rounds || r.Total.Events != r.Total.Expected || r.Total.Lost != 0 || r.Total.Duplicated != 0 {
		t.Errorf("the whole run: %+v", r.Total)
	}

	var tables bytes.Buffer
	b := &bench{opt: options{scenarios: []string{"cluster"}}, res: res}
	b.printTables(&tables)
	for _, want := range []string{"#### cluster — 3 replicas", "#### cluster — memory", "#### cluster — Redis round trips", "#### cluster — failover",
		"SIGKILL replica 0", "SIGTERM replica 1"} {
		if !bytes.Contains(tables.Bytes(), []byte(want)) {
			t.Errorf("tables lack %q:\n%s", want, tables.String())
		}
	}
}

func TestParseOptions(t *testing.T) {
	for _, bad := range [][]string{
		{"-scenario", "nope"},
		{"-conversations", "0"},
		{"-interval", "10s", "-duration", "1s"},
		{"-lease-ttl", "1s"},
		{"-cluster-conversations", "0"},
		{"-rate", "0"},
		{"-churn-clients", "0"},
		{"-idle-grace", "0s"},
	} {
		if _, err := parseOptions(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	o, err := parseOptions([]string{"-scenario", "storm,fanout"}, io.Discard)
	if err != nil || len(o.scenarios) != 2 || o.rounds() != 3 {
		t.Errorf("%+v %v", o, err)
	}
	// "all" is the single-node scenarios; cluster is asked for by name.
	o, err = parseOptions([]string{"-scenario", "all"}, io.Discard)
	if err != nil || len(o.scenarios) != 5 || slices.Contains(o.scenarios, "churn") || o.leaseTTL != 15*time.Second {
		t.Errorf("%+v %v", o, err)
	}
	for _, s := range []string{"cluster", "churn"} {
		if o, err := parseOptions([]string{"-scenario", s}, io.Discard); err != nil || o.scenarios[0] != s {
			t.Errorf("%+v %v", o, err)
		}
	}
	// Only a trickle needs -duration to hold one -interval.
	if o, err := parseOptions([]string{"-scenario", "chatrate", "-duration", "3s"}, io.Discard); err != nil || o.rate != 20 {
		t.Errorf("%+v %v", o, err)
	}
}

func TestStampParsing(t *testing.T) {
	var r recorder
	set := []byte(`{"activities":[{"channelData":{"sentAt":100,"seq":0},"id":"c|0000000","text":"a \"sentAt\":7"},` +
		`{"channelData":{"sentAt":200,"seq":1},"id":"c|0000001"},{"type":"typing"}],"watermark":"2"}`)
	r.record(set, 1000)
	r.record([]byte(`{"channelData":{"seq":1,"sentAt":200},"id":"c|0000001"}`), 2000) // again, keys in another order
	r.record([]byte(`{"id":"c|0000002"}`), 3000)                                      // unstamped: ignored
	if r.distinct.Load() != 2 || r.dups.Load() != 1 || r.missing(2) != 0 || r.missing(3) != 1 {
		t.Fatalf("distinct %d dups %d missing %d", r.distinct.Load(), r.dups.Load(), r.missing(3))
	}
	if r.samples[0].latency() != 900 || r.samples[1].latency() != 800 {
		t.Fatalf("samples %+v", r.samples)
	}
}

func TestSummariseAndCount(t *testing.T) {
	ns := make([]int64, 1000)
	for i := range ns {
		ns[i] = int64(1000-i) * int64(time.Millisecond)
	}
	l := summarise(ns)
	if l.N != 1000 || l.P50 != 500 || l.P99 != 990 || l.P999 != 999 || l.Max != 1000 {
		t.Fatalf("%+v", l)
	}
	if count(1234567) != "1,234,567" || count(-1000) != "-1,000" || count(12) != "12" {
		t.Fatal(count(1234567), count(-1000))
	}
}

// runBench runs the bench with args (and -race under the race detector),
// -json among them, and returns its results; its progress goes to the
// test's log.
func runBench(ctx context.Context, t *testing.T, args []string) results {
	t.Helper()
	if raceEnabled {
		args = append(args, "-race")
	}
	var out, errs bytes.Buffer
	if err := run(ctx, args, &out, &errs); err != nil {
		t.Fatalf("run: %v\n%s", err, errs.String())
	}
	t.Logf("progress:\n%s", errs.String())
	var res results
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, out.String())
	}
	return res
}
