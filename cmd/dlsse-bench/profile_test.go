package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/internal/proc"
	"github.com/dlsse/dlsse/metrics"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
)

// TestProfileSessions is a profiling harness, not a test: dlsse has no
// pprof endpoint, so this runs dlsse's own packages in-process, wired the
// way cmd/dlsse wires them (defaults, Prometheus observer, no logging),
// against the fake as its own process, opens N single-subscriber streams
// with the benchmark's client, and writes heap and goroutine profiles:
//
//	DLSSE_BENCH_PROFILE=/tmp/prof DLSSE_BENCH_PROFILE_N=5000 go test -run TestProfileSessions -v ./cmd/dlsse-bench
//	go tool pprof -top -sample_index=inuse_space -focus='dlsse/(gateway|session|upstream|sse)|fasthttp|fiber|net/http' /tmp/prof/heap.pprof
//
// The clients live in the same process; -focus keeps the allocations made
// under dlsse's (and its libraries') frames.
func TestProfileSessions(t *testing.T) {
	dir := os.Getenv("DLSSE_BENCH_PROFILE")
	if dir == "" {
		t.Skip("set DLSSE_BENCH_PROFILE=DIR to profile dlsse's memory per session")
	}
	// Every allocation recorded, not one per 512 KiB: per-session
	// objects are small, and the profile should count them exactly.
	runtime.MemProfileRate = 1
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("DLSSE_BENCH_PROFILE_N")); err == nil && v > 0 {
		n = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	raiseFileLimit()
	_, fakeBin, err := proc.Build(ctx, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	fake, err := proc.StartFake(ctx, fakeBin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Stop(5 * time.Second)

	m := metrics.New()
	up, err := upstream.New(upstream.Config{BaseURL: fake.URL, Hooks: m.UpstreamHooks()})
	if err != nil {
		t.Fatal(err)
	}
	sessions := session.NewManager(up, session.Config{Logger: zerolog.Nop(), Observer: m})
	gw, err := gateway.New(gateway.Config{
		Logger: zerolog.Nop(), Observer: m, Metrics: m.Handler(),
		MaxStreams: 1 << 30, MaxStreamsPerIP: 1 << 30, RequestsPerIP: 1 << 30, MaxStreamsPerConversation: 10,
	}, up, sessions)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		if err := gw.Shutdown(sctx); err != nil {
			t.Error(err)
		}
		if err := sessions.Close(sctx); err != nil {
			t.Error(err)
		}
		<-served
	}()

	b := &bench{opt: options{sources: 16, concurrency: 256}, logf: t.Logf}
	e := &env{fake: fake, ctl: newCtl(fake), dlsse: &dlsseProc{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String()}}
	defer e.ctl.close()
	convs, err := e.ctl.conversations(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, _, err := b.connectSSE(ctx, e, convs, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	// One message each, as in the widgets trickle, so the profile holds
	// a session that has delivered something.
	if _, err := e.ctl.runLoad(ctx, loadRequest{Rounds: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.waitAll(ctx, "delivered", time.Minute, deliveredAll(1)); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(n) / 1024 }
	t.Logf("per session (dlsse and the bench's client together): heap in use %.1f KiB, stacks %.1f KiB, goroutines %.2f",
		per(after.HeapInuse, before.HeapInuse), per(after.StackInuse, before.StackInuse), float64(runtime.NumGoroutine())/float64(n))

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// DLSSE_BENCH_PROFILE_ROUNDS=k: k more messages each, between
	// trickle-before.pprof and the heap profile, for what an event
	// allocates (pprof -sample_index=alloc_space -base).
	if k, err := strconv.Atoi(os.Getenv("DLSSE_BENCH_PROFILE_ROUNDS")); err == nil && k > 0 {
		writeProfile(t, filepath.Join(dir, "trickle-before.pprof"), "heap")
		if _, err := e.ctl.runLoad(ctx, loadRequest{Rounds: k, Interval: "1s"}); err != nil {
			t.Fatal(err)
		}
		if err := f.waitAll(ctx, "delivered", time.Minute, deliveredAll(int64(1+k))); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d events between trickle-before.pprof and heap.pprof", k*n)
	}
	for _, p := range []string{"heap", "goroutine"} {
		writeProfile(t, filepath.Join(dir, p+".pprof"), p)
	}
	t.Logf("profiles of %d sessions in %s", n, dir)
}

// writeProfile writes the named runtime profile to path (a heap profile
// after a GC: its counts are as of the last one).
func writeProfile(t *testing.T, path, name string) {
	if name == "heap" {
		runtime.GC()
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := pprof.Lookup(name).WriteTo(out, 0); err != nil {
		t.Fatal(err)
	}
}
