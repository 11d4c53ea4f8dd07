package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestBenchTiny runs every scenario at tiny sizes through real processes
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
	args := []string{"-scenario", "all", "-json", "-conversations", "20", "-subscribers", "20", "-events", "50",
		"-interval", "200ms", "-duration", "400ms", "-idle", "200ms", "-sources", "3"}
	if raceEnabled {
		args = append(args, "-race")
	}
	var out, errs bytes.Buffer
	if err := run(ctx, args, &out, &errs); err != nil {
		t.Fatalf("run: %v\n%s", err, errs.String())
	}
	var res results
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, out.String())
	}
	t.Logf("progress:\n%s", errs.String())

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
	for _, want := range []string{"#### widgets", "#### baseline", "#### fanout", "#### storm", "| lost / duplicated | 0 / 0 |"} {
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
	} {
		if _, err := parseOptions(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	o, err := parseOptions([]string{"-scenario", "storm,fanout"}, io.Discard)
	if err != nil || len(o.scenarios) != 2 || o.rounds() != 3 {
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
