// Command dlsse-bench is dlsse's load benchmark. It runs the in-repo Direct
// Line fake (cmd/directline-fake) and dlsse (cmd/dlsse) as separate
// processes on loopback, plus thousands of its own SSE clients spread over
// several 127.x source addresses, and measures dlsse from outside: RSS
// and CPU seconds from /proc/PID, latency from the send time the fake
// stamps into each activity (channelData.sentAt) to the moment a client
// has parsed the SSE event, and exactly-once delivery from the position
// stamped next to it (channelData.seq).
//
// Scenarios, each printing one Markdown summary table (or, with -json, one
// JSON document for all):
//
//   - widgets: C conversations × 1 subscriber, a slow trickle of bot
//     messages: RSS per session, CPU per 1k events, latency.
//   - baseline: the same clients reading the fake's WebSockets directly, no
//     dlsse: the latency dlsse adds, and the ratio.
//   - fanout: 1 conversation × S subscribers, a burst as fast as the fake
//     sends: events delivered per second, any subscriber dropped as slow.
//   - storm: C sessions, the fake drops every upstream socket at once: time
//     until every session delivers again, reconnect calls per session and
//     their peak rate, activities lost or duplicated.
//   - chatrate: 1 conversation × S subscribers, the fake sending at a
//     steady chat rate (R messages a second, paced): dlsse's CPU per
//     delivered event, allocations per message, latency, exactly once.
//   - churn: K clients each opening a conversation, streaming a moment
//     and leaving, again and again: upstream sockets and sessions open
//     against live viewers and idle_grace, and how soon dlsse notices a
//     departed client. Not part of "all": it runs for minutes.
//   - cluster: three dlsse replicas sharing conversations through a
//     redis-server, next to one dlsse alone under the same widgets load:
//     the latency added, Redis round trips and bytes per conversation and
//     per activity, RSS per session per replica, failover after SIGKILL
//     and SIGTERM of a replica that owns conversations. Not part of "all":
//     it needs redis-server.
//
// Usage (from the repository; it builds both binaries with go build):
//
//	go run ./cmd/dlsse-bench -scenario all
//
// docs/benchmarks.md has the results of the last run and what each number
// means.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dlsse/dlsse/internal/proc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dlsse-bench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	scenarios     []string
	conversations int
	subscribers   int
	events        int
	interval      time.Duration
	duration      time.Duration
	sources       int
	concurrency   int
	dlsse, fake   string
	dlsseArgs     []string
	idle          time.Duration
	timeout       time.Duration
	race          bool
	json          bool
	keep          bool
	perf          string

	clusterConversations int
	leaseTTL             time.Duration
	redisServer          string
	wire                 string // the subscribers of widgets, fanout, chatrate and churn: sse or websocket

	rate          int           // chatrate: messages a second
	churnClients  int           // churn: clients opening conversations at once
	churnStream   time.Duration // churn: how long each streams before leaving
	churnDuration time.Duration // churn: how long the churn lasts
	idleGrace     time.Duration // churn: dlsse's idle_grace
}

// allScenarios are what "all" runs: one dlsse, nothing else.
var allScenarios = []string{"widgets", "baseline", "fanout", "chatrate", "storm"}

// scenarios are every scenario: "all", churn (minutes long) and cluster
// (which needs redis-server).
var scenarios = append(slices.Clone(allScenarios), "churn", "cluster")

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("dlsse-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "all", "widgets, baseline, fanout, chatrate, storm, churn, cluster, all (all but churn and cluster), or a comma-separated list")
	fs.IntVar(&o.conversations, "conversations", 10_000, "conversations (one subscriber each) in widgets, baseline and storm")
	fs.IntVar(&o.subscribers, "subscribers", 1_000, "subscribers of the one conversation in fanout and chatrate")
	fs.IntVar(&o.events, "events", 1_000, "messages in the fanout burst")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "widgets and baseline: each conversation gets one message per interval")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "widgets and baseline: how long the trickle lasts (rounds = duration / interval); chatrate: how long the fake sends")
	fs.IntVar(&o.rate, "rate", 20, "chatrate: messages a second the fake sends to the conversation, paced")
	fs.IntVar(&o.churnClients, "churn-clients", 16, "churn: clients, each opening a conversation, streaming and leaving, again and again")
	fs.DurationVar(&o.churnStream, "churn-stream", 1500*time.Millisecond, "churn: how long a client streams before it leaves (closes the connection)")
	fs.DurationVar(&o.churnDuration, "churn-duration", 5*time.Minute, "churn: how long the churn lasts")
	fs.DurationVar(&o.idleGrace, "idle-grace", 30*time.Second, "churn: dlsse's idle_grace (its default), which bounds the sessions left open")
	fs.DurationVar(&o.idle, "idle", 20*time.Second, "widgets: how long dlsse's CPU is measured with C idle sessions (≥ 20s covers every keepalive and heartbeat once)")
	fs.IntVar(&o.sources, "sources", 16, "loopback source addresses the clients connect from (127.0.0.1 …)")
	fs.IntVar(&o.concurrency, "connect-concurrency", 256, "client connections being set up at once")
	fs.StringVar(&o.dlsse, "dlsse", "", "dlsse binary (default: go build ./cmd/dlsse)")
	fs.StringVar(&o.fake, "fake", "", "directline-fake binary (default: go build ./cmd/directline-fake)")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up after this long")
	fs.BoolVar(&o.race, "race", false, "build dlsse and the fake with the race detector")
	extra := fs.String("dlsse-args", "", "extra dlsse flags, space-separated, after the bench's own (e.g. \"-log-level info -backoff-base 2s\")")
	fs.BoolVar(&o.json, "json", false, "print one JSON document instead of the tables")
	fs.StringVar(&o.perf, "perf", "", "record dlsse's CPU with linux perf during each measured phase into this directory")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, process logs)")
	fs.IntVar(&o.clusterConversations, "cluster-conversations", 3_000, "cluster: conversations (one subscriber each), on the three replicas and on the single node it is compared with")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 15*time.Second, "cluster: the replicas' lease_ttl (dlsse's default; at least 3s)")
	fs.StringVar(&o.redisServer, "redis-server", "", "cluster: the redis-server binary (default: redis-server on PATH)")
	fs.StringVar(&o.wire, "wire", "sse", "widgets, fanout, chatrate and churn: what the subscribers are, sse (EventSource's way) or websocket (DirectLineJS's: Direct Line's stream protocol on the same URL)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.dlsseArgs = strings.Fields(*extra)
	if *scenario == "all" {
		o.scenarios = allScenarios
	} else {
		for s := range strings.SplitSeq(*scenario, ",") {
			if !slices.Contains(scenarios, s) {
				return o, fmt.Errorf("unknown scenario %q (want %s or all)", s, strings.Join(scenarios, ", "))
			}
			o.scenarios = append(o.scenarios, s)
		}
	}
	if o.wire != "sse" && o.wire != "websocket" {
		return o, fmt.Errorf("unknown -wire %q (want sse or websocket)", o.wire)
	}
	if o.leaseTTL < 3*time.Second {
		return o, errors.New("-lease-ttl must be at least 3s (dlsse's minimum)")
	}
	if o.conversations < 1 || o.clusterConversations < 1 || o.subscribers < 1 || o.events < 1 || o.sources < 1 || o.sources > 250*250 || o.concurrency < 1 ||
		o.rate < 1 || o.churnClients < 1 {
		return o, errors.New("sizes must be positive (and -sources at most 62500)")
	}
	if o.interval <= 0 || o.duration <= 0 || o.idle < 0 {
		return o, errors.New("-interval and -duration must be positive")
	}
	if o.duration < o.interval && slices.ContainsFunc(o.scenarios, trickles) {
		return o, errors.New("-duration must be at least one -interval")
	}
	if o.churnStream <= 0 || o.churnDuration <= 0 || o.idleGrace <= 0 {
		return o, errors.New("-churn-stream, -churn-duration and -idle-grace must be positive")
	}
	return o, nil
}

// trickles says whether scenario s sends -interval apart for -duration
// (widgets' trickle), so that it needs one round at least.
func trickles(s string) bool {
	return s == "widgets" || s == "baseline" || s == "cluster"
}

// rounds is how many messages each widget conversation gets.
func (o options) rounds() int { return int(o.duration / o.interval) }

// results is everything a run measured; the JSON output.
type results struct {
	Machine  machine         `json:"machine"`
	Widgets  *widgetsReport  `json:"widgets,omitempty"`
	Baseline *baselineReport `json:"baseline,omitempty"`
	Fanout   *fanoutReport   `json:"fanout,omitempty"`
	Chatrate *chatrateReport `json:"chatrate,omitempty"`
	Storm    *stormReport    `json:"storm,omitempty"`
	Churn    *churnReport    `json:"churn,omitempty"`
	Cluster  *clusterReport  `json:"cluster,omitempty"`
}

// run is main without the process globals, for the test.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opt.timeout)
	defer cancel()
	if opt.perf != "" {
		if err := os.MkdirAll(opt.perf, 0o755); err != nil {
			return err
		}
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	began := time.Now()
	b := &bench{opt: opt, logf: logf}
	b.fdLimit = raiseFileLimit()
	b.res.Machine = describeMachine(b.fdLimit)
	logf("file descriptor limit for the bench and its children: %d", b.fdLimit)

	b.dir, err = os.MkdirTemp("", "dlsse-bench-")
	if err != nil {
		return err
	}
	if opt.keep {
		logf("binaries and process logs in %s", b.dir)
	} else {
		defer os.RemoveAll(b.dir)
	}
	b.dlsseBin, b.fakeBin = opt.dlsse, opt.fake
	if b.dlsseBin == "" || b.fakeBin == "" {
		logf("building dlsse and directline-fake")
		dl, fk, err := proc.Build(ctx, b.dir, opt.race)
		if err != nil {
			return err
		}
		if b.dlsseBin == "" {
			b.dlsseBin = dl
		}
		if b.fakeBin == "" {
			b.fakeBin = fk
		}
	}

	for _, s := range opt.scenarios {
		logf("== scenario %s", s)
		var err error
		switch s {
		case "widgets":
			b.res.Widgets, err = b.widgets(ctx)
		case "baseline":
			b.res.Baseline, err = b.baseline(ctx)
		case "fanout":
			b.res.Fanout, err = b.fanout(ctx)
		case "chatrate":
			b.res.Chatrate, err = b.chatrate(ctx)
		case "storm":
			b.res.Storm, err = b.storm(ctx)
		case "churn":
			b.res.Churn, err = b.churn(ctx)
		case "cluster":
			b.res.Cluster, err = b.cluster(ctx)
		}
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s, err)
		}
	}
	b.res.Machine.WallSeconds = time.Since(began).Seconds()
	logf("done in %.0f s", b.res.Machine.WallSeconds)
	if opt.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b.res)
	}
	b.printTables(stdout)
	return nil
}

// bench is one run: its options, binaries and results so far.
type bench struct {
	opt               options
	logf              func(format string, a ...any)
	dir               string
	dlsseBin, fakeBin string
	fdLimit           uint64
	res               results
}

// env is the processes of one scenario.
type env struct {
	fake  *fakeProc
	dlsse *dlsseProc // nil for the baseline
	ctl   *ctl
}

// start runs a fresh fake, and dlsse in front of it unless withDlsse is
// false, with the scenario's own dlsse flags (dlsseArgs) after
// -dlsse-args, so that a setting a scenario reports against is the one it
// set. Each scenario gets fresh processes, so none measures what an
// earlier one left behind.
func (b *bench) start(ctx context.Context, name string, withDlsse bool, streamsPerConversation int, dlsseArgs ...string) (*env, error) {
	logDir := b.dir + "/" + name
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	fake, err := proc.StartFake(ctx, b.fakeBin, logDir)
	if err != nil {
		return nil, err
	}
	e := &env{fake: fake, ctl: newCtl(fake)}
	if withDlsse {
		e.dlsse, err = startDlsse(ctx, b.dlsseBin, logDir, fake.URL, streamsPerConversation, slices.Concat(b.opt.dlsseArgs, dlsseArgs))
		if err != nil {
			e.stop()
			return nil, err
		}
	}
	return e, nil
}

// stop ends dlsse, then the fake, and reports what went wrong.
func (e *env) stop() error {
	var err error
	if e.dlsse != nil {
		err = e.dlsse.Stop(20 * time.Second)
	}
	e.ctl.close()
	return errors.Join(err, e.fake.Stop(10*time.Second))
}

// dlssePID is "" when dlsse does not run (the baseline).
func (e *env) dlssePID() string {
	if e.dlsse == nil {
		return ""
	}
	return e.dlsse.PID()
}

// sizeFor caps a number of single-subscriber sessions to what the file
// descriptor limit lets dlsse hold with reserve to spare, and says so.
func (b *bench) sizeFor(requested, reserve int) (int, string) {
	if limit := maxSessions(b.fdLimit, reserve); requested > limit {
		note := fmt.Sprintf("capped from %s: RLIMIT_NOFILE is %d (no CAP_SYS_RESOURCE to raise it); dlsse holds 2 sockets per session plus %s spare",
			count(int64(requested)), b.fdLimit, count(int64(reserve)))
		b.logf("%s", note)
		return limit, note
	}
	return requested, ""
}

// settle waits d (or until ctx ends): time for the processes to finish
// what a phase started, before a measurement.
func settle(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *bench) printTables(w io.Writer) {
	fmt.Fprintf(w, "\n### dlsse-bench %s\n\n%s\n", strings.Join(b.opt.scenarios, ", "), b.res.Machine)
	if r := b.res.Widgets; r != nil {
		r.table().write(w)
	}
	if r := b.res.Baseline; r != nil {
		r.table().write(w)
	}
	if r := b.res.Fanout; r != nil {
		r.table().write(w)
	}
	if r := b.res.Chatrate; r != nil {
		r.table().write(w)
	}
	if r := b.res.Storm; r != nil {
		r.table().write(w)
	}
	if r := b.res.Churn; r != nil {
		r.table().write(w)
	}
	if r := b.res.Cluster; r != nil {
		for _, t := range r.tables() {
			t.write(w)
		}
	}
}
