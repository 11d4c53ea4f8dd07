package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dlsse/dlsse/internal/proc"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// The cluster scenario (issue 11): three dlsse replicas sharing their
// conversations through one redis-server, next to one dlsse alone, under
// the same widgets load; then a replica that owns conversations is killed
// (SIGKILL), and another stopped (SIGTERM).
//
// Placement. A conversation's owner is the replica whose session got its
// lease first. Each conversation i is given an owner, replica i mod 3, by
// opening its first stream there; for two conversations in three the
// measured subscriber then opens on one of the other two replicas, and the
// first stream closes (the owner keeps the conversation for idle_grace,
// which the scenario sets longer than itself: what a widget's reconnect
// through a round-robin balancer produces). So C conversations × 1
// subscriber, every replica holding C/3 subscribers and owning C/3
// conversations, and two subscribers in three reading what another
// replica's socket received, through Redis.

// clusterReplicas is how many dlsse processes the scenario runs.
const clusterReplicas = 3

// defaultReplayBuffer is dlsse's replay_buffer (session.DefaultReplayBuffer),
// the cap of a conversation's journal.
const defaultReplayBuffer = 1024

// clusterReport is the cluster scenario.
type clusterReport struct {
	Conversations int    `json:"conversations"`
	Capped        string `json:"capped,omitempty"`
	Replicas      int    `json:"replicas"`
	LeaseTTL      string `json:"lease_ttl"`
	Interval      string `json:"interval"`
	Rounds        int    `json:"rounds"`
	OnOwner       int    `json:"subscribers_on_owner"`
	OnFollower    int    `json:"subscribers_on_follower"`

	Single        trickleRun   `json:"single"`                 // one dlsse, no Redis
	Cluster       trickleRun   `json:"cluster"`                // three replicas and Redis
	Added         latencyStats `json:"added_latency"`          // cluster − single, per percentile
	AddedFollower latencyStats `json:"added_latency_follower"` // subscribers not on the owner − single

	PerReplica []replicaUse `json:"per_replica"`
	Redis      redisUse     `json:"redis"`
	Calls      redisCalls   `json:"redis_calls"`

	Kill *failover `json:"sigkill,omitempty"`
	Term *failover `json:"sigterm,omitempty"`

	// Everything the cluster's subscribers got, trickle and failovers.
	Total delivery `json:"total"`
}

// trickleRun is the widgets trickle on one dlsse or on the cluster.
type trickleRun struct {
	ConnectS float64 `json:"connect_s"`
	// From a client's start to its stream's first "online": the streams
	// opened on a conversation's first replica (single: all), and on a
	// replica that follows its owner.
	OpenFirst  latencyStats  `json:"open_first"`
	OpenFollow *latencyStats `json:"open_follower,omitempty"`
	// Client disconnects during the trickle (delivery's count is the
	// whole run's, connect included).
	TrickleDisconnects int64 `json:"trickle_disconnects"`
	delivery
	Latency         latencyStats  `json:"latency"`
	LatencyOwner    *latencyStats `json:"latency_on_owner,omitempty"`
	LatencyFollower *latencyStats `json:"latency_on_follower,omitempty"`
	FakeMaxLagMs    float64       `json:"fake_max_lag_ms"`

	// dlsse processes together (the replicas, or the one).
	RSSIdle      int64   `json:"rss_idle_bytes"`
	RSSConnected int64   `json:"rss_connected_bytes"`
	RSSEnd       int64   `json:"rss_end_bytes"`
	PerConv      float64 `json:"rss_per_conversation_bytes"` // (end − idle) / C, Redis excluded

	// CPU with the C sessions and no message (keepalives, heartbeats,
	// and in the cluster the leases), then during the trickle, by process.
	IdleCPU        map[string]float64 `json:"idle_cpu_s"`
	IdleWallS      float64            `json:"idle_wall_s"`
	CPU            map[string]float64 `json:"cpu_s"`
	WallS          float64            `json:"wall_s"`
	CPUPer1kEvents float64            `json:"cpu_ms_per_1k_events"`          // dlsse processes and Redis
	CPUPer1kMarg   float64            `json:"marginal_cpu_ms_per_1k_events"` // minus the idle rate
}

// dlsseCPU is what the dlsse processes and Redis spent, of cpu.
func dlsseCPU(cpu map[string]float64) float64 {
	var sum float64
	for k, v := range cpu {
		if strings.HasPrefix(k, "dlsse") || k == "redis" {
			sum += v
		}
	}
	return sum
}

// perEvent sets the CPU per 1k events, all and above the idle rate.
func (r *trickleRun) perEvent() {
	if r.Events == 0 {
		return
	}
	k := float64(r.Events) / 1000
	r.CPUPer1kEvents = dlsseCPU(r.CPU) * 1000 / k
	if r.IdleWallS > 0 {
		r.CPUPer1kMarg = (dlsseCPU(r.CPU) - dlsseCPU(r.IdleCPU)/r.IdleWallS*r.WallS) * 1000 / k
	}
}

// replicaUse is one replica at the end of the trickle.
type replicaUse struct {
	Sessions     float64            `json:"sessions"`
	Owned        float64            `json:"owned"`
	Subscribers  float64            `json:"subscribers"`
	RSSIdle      int64              `json:"rss_idle_bytes"`
	RSSConnected int64              `json:"rss_connected_bytes"`
	RSSEnd       int64              `json:"rss_end_bytes"`
	PerSession   float64            `json:"rss_per_session_bytes"` // (end − idle) / sessions
	Received     float64            `json:"activities_received"`   // added to its log in the trickle: read upstream as owner, or applied from the bus
	Calls        map[string]float64 `json:"redis_calls"`           // in the trickle, by operation
}

// redisUse is what Redis holds and does.
type redisUse struct {
	Version         string  `json:"version"`
	UsedEmpty       int64   `json:"used_memory_empty"` // replicas connected, no conversation
	UsedConnected   int64   `json:"used_memory_connected"`
	UsedRound1      int64   `json:"used_memory_after_round_1"`
	UsedEnd         int64   `json:"used_memory_end"`
	PerConversation float64 `json:"bytes_per_conversation"`  // (connected − empty) / C: lease, fence, status
	FirstActivity   float64 `json:"bytes_first_activity"`    // (round 1 − connected) / C: the journal's stream made
	PerActivity     float64 `json:"bytes_per_activity"`      // (end − round 1) / activities after round 1
	RSSEnd          int64   `json:"rss_end_bytes"`           // redis-server's own RSS
	CPUPer1kEvents  float64 `json:"cpu_ms_per_1k_events"`    // during the trickle
	Samples         int     `json:"sampled_conversations"`   // MEMORY USAGE of these conversations' keys
	LogBytes        float64 `json:"log_key_bytes"`           // the journal (a stream), mean
	LogEntries      float64 `json:"log_entries"`             // XLEN, mean
	EntryBytes      float64 `json:"entry_value_bytes"`       // an encoded record, mean
	MetaBytes       float64 `json:"meta_key_bytes"`          // epoch, offset, watermark, status
	LeaseBytes      float64 `json:"lease_key_bytes"`         // holder and fence, with a TTL
	FenceBytes      float64 `json:"fence_key_bytes"`         // the fencing counter
	Following       float64 `json:"subscribers_per_channel"` // PUBSUB NUMSUB: replicas told of each append
	// A journal's size against its length (MEMORY USAGE against XLEN,
	// least squares over conversations of different lengths, at the end
	// of the run): what a stream costs, and each entry.
	FitSamples     int              `json:"fit_conversations"`
	FitEntries     [2]int64         `json:"fit_entries_range"`
	StreamFixed    float64          `json:"journal_fixed_bytes"`
	StreamPerEntry float64          `json:"journal_bytes_per_entry"`
	NetInPerEvent  float64          `json:"net_in_bytes_per_activity"`  // total_net_input_bytes growth / activities, the trickle
	NetOutPerEvent float64          `json:"net_out_bytes_per_activity"` // total_net_output_bytes, pub/sub pushes included
	CommandsPerEvt float64          `json:"commands_per_activity"`      // total_commands_processed growth / activities (scripts' own commands included)
	Commands       map[string]int64 `json:"commands_in_trickle"`        // INFO commandstats growth
}

// redisCalls are the replicas' calls to Redis during the trickle, from
// their own metrics (dlsse_redis_call_duration_seconds_count), summed.
type redisCalls struct {
	Activities      int64              `json:"activities"`       // read from Direct Line by the owners: C × rounds
	FollowerApplied int64              `json:"follower_applied"` // applied by other replicas from the bus
	ByOp            map[string]float64 `json:"by_operation"`
	// Per activity read upstream by its owner: append (and
	// publish_owned, for statuses).
	OwnerPerActivity float64 `json:"owner_calls_per_activity"`
	// Per activity applied by a replica that follows: read, tail, publish.
	FollowerPerActivity float64 `json:"follower_calls_per_activity"`
	AllPerActivity      float64 `json:"all_calls_per_activity"`
	// Leases cost by the minute, not by activity: measured while idle.
	IdleByOp          map[string]float64 `json:"idle_by_operation"`
	RenewPerConvMin   float64            `json:"renew_per_conversation_per_min"`
	AcquirePerConvMin float64            `json:"acquire_per_conversation_per_min"`
	// Redis's count of scripts run (evalsha, eval) against dlsse's count.
	ScriptsSeen float64       `json:"redis_scripts_run"`
	Append      upstreamCalls `json:"append_timing"`
	Renew       upstreamCalls `json:"renew_timing"`
}

// failover is one replica that owned conversations going away.
type failover struct {
	Signal       string  `json:"signal"`
	Replica      int     `json:"replica"`
	Owned        int     `json:"owned"`         // conversations whose lease it held
	ChangedOwner int     `json:"changed_owner"` // of those, held by another replica after
	Acquired     float64 `json:"acquired"`      // leases the others acquired meanwhile (their metrics)
	ExitS        float64 `json:"exit_s"`        // signal → process gone
	GoalS        float64 `json:"goal_s"`

	// Subscribers of its conversations on the other replicas, whose
	// streams stayed up: signal → the probe, a message the fake sent
	// right after the signal, received.
	Steady    int     `json:"steady_subscribers"`
	ProbeP50S float64 `json:"probe_p50_s"`
	ProbeMaxS float64 `json:"probe_max_s"`
	// SIGKILL: what the leases had left at the signal (PTTL just
	// before), and the probe's arrival counted from its conversation's
	// lease expiry: how long the other replicas took to take over.
	LeaseLeftMinS   float64 `json:"lease_left_min_s"`
	LeaseLeftMaxS   float64 `json:"lease_left_max_s"`
	AfterExpiryP50S float64 `json:"after_expiry_p50_s"`
	AfterExpiryMaxS float64 `json:"after_expiry_max_s"`
	// The highest latency (sentAt → received) of any message sent to its
	// conversations after the signal, at those subscribers: the probe,
	// and (SIGTERM) waves every 100 ms to a sample while it hands over.
	WorstMs float64 `json:"worst_latency_ms"`
	Waves   int     `json:"wave_messages"`
	// Subscribers that were on it, and came back on another replica (the
	// retry hint, then Last-Event-ID): signal → the probe.
	Moved         int     `json:"moved_subscribers"`
	MovedMaxS     float64 `json:"moved_probe_max_s"`
	Collisions    int64   `json:"collisions"`
	ReconnectCall int64   `json:"reconnect_calls"`
	SocketsOpened int64   `json:"sockets_opened"`
	// From the signal until every subscriber had every message.
	CPU   map[string]float64 `json:"cpu_s"`
	WallS float64            `json:"wall_s"`
}

// cluster runs the scenario: single node first, then the cluster.
func (b *bench) cluster(ctx context.Context) (*clusterReport, error) {
	redisBin, err := findRedis(b.opt.redisServer)
	if err != nil {
		return nil, err
	}
	c, capped := b.sizeFor(b.opt.clusterConversations, fdReserve)
	c = max(c, 3*clusterReplicas)
	r := &clusterReport{Conversations: c, Capped: capped, Replicas: clusterReplicas, LeaseTTL: b.opt.leaseTTL.String(),
		Interval: b.opt.interval.String(), Rounds: b.opt.rounds()}

	b.logf("single node: %s conversations × 1 subscriber", count(int64(c)))
	if r.Single, err = b.clusterSingle(ctx, c); err != nil {
		return nil, fmt.Errorf("single node: %w", err)
	}
	b.logf("cluster: %d replicas, redis-server, %s conversations × 1 subscriber", clusterReplicas, count(int64(c)))
	if err := b.clusterRun(ctx, r, redisBin); err != nil {
		return nil, err
	}
	r.Added = r.Cluster.Latency.minus(r.Single.Latency)
	if r.Cluster.LatencyFollower != nil {
		r.AddedFollower = r.Cluster.LatencyFollower.minus(r.Single.Latency)
	}
	return r, nil
}

// minus is a − b, percentile by percentile.
func (a latencyStats) minus(b latencyStats) latencyStats {
	return latencyStats{N: a.N, Mean: a.Mean - b.Mean, P50: a.P50 - b.P50, P99: a.P99 - b.P99, P999: a.P999 - b.P999, Max: a.Max - b.Max}
}

// clusterSingle is the comparison: the same trickle on one dlsse, no Redis.
func (b *bench) clusterSingle(ctx context.Context, c int) (trickleRun, error) {
	var r trickleRun
	e, err := b.start(ctx, "cluster-single", true, 10)
	if err != nil {
		return r, err
	}
	defer e.stop()
	idle, err := readProc(e.dlssePID())
	if err != nil {
		return r, err
	}
	convs, err := e.ctl.conversations(ctx, c)
	if err != nil {
		return r, err
	}
	f, took, err := b.connectSSE(ctx, e, convs, 4096)
	if err != nil {
		return r, err
	}
	defer f.close()
	r.ConnectS = took.Seconds()
	if err := settle(ctx, 2*time.Second); err != nil {
		return r, err
	}
	conn, _ := readProc(e.dlssePID())
	rounds := b.opt.rounds()
	r.OpenFirst = openTimes(f.recs)
	disc := f.sum(func(r *recorder) int64 { return r.disconnects.Load() })
	names, pids := []string{"dlsse", "fake", "bench"}, []string{e.dlssePID(), e.fake.PID(), "self"}
	cpu := newProcCPU(names, pids)
	if err := settle(ctx, b.opt.idle); err != nil {
		return r, err
	}
	r.IdleCPU, r.IdleWallS = cpu.stop()
	cpu = newProcCPU(names, pids)
	lag, waitErr, err := b.trickle(ctx, e.ctl, f, rounds, nil)
	r.CPU, r.WallS = cpu.stop()
	r.TrickleDisconnects = f.sum(func(r *recorder) int64 { return r.disconnects.Load() }) - disc
	if err != nil {
		return r, err
	}
	end, _ := readProc(e.dlssePID())
	r.FakeMaxLagMs = lag
	r.RSSIdle, r.RSSConnected, r.RSSEnd = idle.RSS, conn.RSS, end.RSS
	r.PerConv = float64(end.RSS-idle.RSS) / float64(c)
	f.close()
	r.delivery = deliveryOf(f.recs, func(int) int64 { return int64(rounds) })
	r.Latency = latencyWhere(f.recs, func(_ int, s sample) bool { return s.Seq < int64(rounds) })
	r.perEvent()
	if waitErr != nil {
		b.logf("warning: %v", waitErr)
	}
	return r, nil
}

// trickle runs the widgets load: one message per conversation every
// interval, one round, then mid (when not nil: a measurement between the
// first round and the others), then the other rounds; and waits until
// every client of f has them all. waitErr is the wait's timeout (reported
// as lost), err a failure of the load itself.
func (b *bench) trickle(ctx context.Context, c *ctl, f *fleet, rounds int, mid func() error) (maxLagMs float64, waitErr, err error) {
	b.logf("trickle: %d rounds, one message per conversation every %v", rounds, b.opt.interval)
	for i, n := range []int{1, rounds - 1} {
		if n == 0 {
			continue
		}
		st, err := c.runLoad(ctx, loadRequest{Interval: b.opt.interval.String(), Rounds: n, Prefix: "widget "})
		if err != nil {
			return 0, nil, err
		}
		maxLagMs = max(maxLagMs, st.MaxLagMs)
		if i == 0 && mid != nil {
			if err := mid(); err != nil {
				return 0, nil, err
			}
		}
	}
	return maxLagMs, f.waitAll(ctx, "trickle delivered", 60*time.Second, deliveredAll(int64(rounds))), nil
}

// clusterEnv is the cluster's processes.
type clusterEnv struct {
	fake     *fakeProc
	ctl      *ctl
	redis    *redisProc
	replicas []*dlsseProc
	names    []string // each replica's name, as its leases hold it
}

// stop ends the replicas still running, then Redis and the fake.
func (ce *clusterEnv) stop() error {
	var errs []error
	for _, d := range ce.replicas {
		if d != nil {
			errs = append(errs, d.Stop(20*time.Second))
		}
	}
	if ce.redis != nil {
		errs = append(errs, ce.redis.stop())
	}
	if ce.ctl != nil {
		ce.ctl.close()
	}
	if ce.fake != nil {
		errs = append(errs, ce.fake.Stop(10*time.Second))
	}
	return errors.Join(errs...)
}

// alive reports whether replica i still runs.
func (ce *clusterEnv) alive(i int) bool {
	select {
	case <-ce.replicas[i].Exited:
		return false
	default:
		return true
	}
}

// scrape reads every running replica's metrics (nil for the others).
func (ce *clusterEnv) scrape(ctx context.Context) ([]map[string]float64, error) {
	out := make([]map[string]float64, len(ce.replicas))
	for i, d := range ce.replicas {
		if !ce.alive(i) {
			continue
		}
		m, err := ce.ctl.metrics(ctx, d.URL+"/metrics")
		if err != nil {
			return nil, fmt.Errorf("replica %d metrics: %w", i, err)
		}
		out[i] = m
	}
	return out, nil
}

// leaseKey is a conversation's lease in Redis (dlsse's default
// redis_prefix).
func leaseKey(conv string) string { return "dlsse:{" + conv + "}:lease" }

// holders returns the replica holding each conversation's lease (-1: none
// or another).
func (ce *clusterEnv) holders(ctx context.Context, convs []directlinetest.ConversationCredentials) ([]int, error) {
	keys := make([]string, len(convs))
	for i, c := range convs {
		keys[i] = leaseKey(c.ConversationID)
	}
	vals, err := ce.redis.getAll(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(vals))
	for i, v := range vals {
		holder, _, _ := strings.Cut(v, "|")
		out[i] = slices.Index(ce.names, holder)
		if holder == "" {
			out[i] = -1
		}
	}
	return out, nil
}

// clusterRun is the cluster half of the scenario.
func (b *bench) clusterRun(ctx context.Context, r *clusterReport, redisBin string) (err error) {
	c, rounds := r.Conversations, r.Rounds
	logDir := filepath.Join(b.dir, "cluster")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	ce := &clusterEnv{}
	defer func() {
		if serr := ce.stop(); serr != nil && err == nil {
			b.logf("warning: stopping the cluster: %v", serr)
		}
	}()
	if ce.fake, err = proc.StartFake(ctx, b.fakeBin, logDir); err != nil {
		return err
	}
	ce.ctl = newCtl(ce.fake)
	if ce.redis, err = startRedis(ctx, redisBin, logDir); err != nil {
		return err
	}
	srv, err := ce.redis.info(ctx, "server")
	if err != nil {
		return err
	}
	r.Redis.Version = srv["redis_version"]
	args := append([]string{
		"-redis-url", ce.redis.URL,
		"-lease-ttl", b.opt.leaseTTL.String(),
		// Longer than the scenario: an owner keeps its conversations
		// after its placement streams closed (see the top of this file).
		"-idle-grace", "2h",
	}, b.opt.dlsseArgs...)
	for i := range clusterReplicas {
		d, err := startDlsseLog(ctx, b.dlsseBin, filepath.Join(logDir, fmt.Sprintf("dlsse%d.log", i)), ce.fake.URL, 10, args)
		if err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
		ce.replicas = append(ce.replicas, d)
	}
	addrs := make([]string, clusterReplicas)
	for i, d := range ce.replicas {
		addrs[i] = d.Addr
	}
	// Each subscriber reconnects to the next replica in turn, as through
	// a round-robin balancer.
	from := func(first int) []string {
		out := make([]string, clusterReplicas)
		for k := range out {
			out[k] = addrs[(first+k)%clusterReplicas]
		}
		return out
	}
	pids := func() (names, pids []string) {
		for i, d := range ce.replicas {
			names, pids = append(names, fmt.Sprintf("dlsse%d", i)), append(pids, d.PID())
		}
		return append(names, "redis", "fake", "bench"), append(pids, ce.redis.PID(), ce.fake.PID(), "self")
	}
	rssIdle := make([]int64, clusterReplicas)
	for i, d := range ce.replicas {
		p, err := readProc(d.PID())
		if err != nil {
			return err
		}
		rssIdle[i] = p.RSS
	}
	redisEmpty, err := ce.redis.snapshot(ctx)
	if err != nil {
		return err
	}

	convs, err := ce.ctl.conversations(ctx, c)
	if err != nil {
		return err
	}
	owner := func(i int) int { return i % clusterReplicas }
	reader := func(i int) int { return (i%clusterReplicas + i/clusterReplicas%clusterReplicas) % clusterReplicas }
	wantOwned := make([]float64, clusterReplicas)
	// The measured fleet, in two batches: subscribers on their
	// conversation's owner, then the others. recConv maps its clients to
	// conversations.
	var first, placed, rest []directlinetest.ConversationCredentials
	var firstIdx, restIdx []int
	for i, cv := range convs {
		wantOwned[owner(i)]++
		if reader(i) == owner(i) {
			first, firstIdx = append(first, cv), append(firstIdx, i)
		} else {
			placed, rest, restIdx = append(placed, cv), append(rest, cv), append(restIdx, i)
		}
	}
	r.OnOwner, r.OnFollower = len(first), len(rest)
	f := newFleet(ctx, b.opt.concurrency)
	defer f.close()
	began := time.Now()
	if _, err := b.addSSE(ctx, f, first, func(k int) []string { return from(owner(firstIdx[k])) }, 4096); err != nil {
		return err
	}
	pf := newFleet(ctx, b.opt.concurrency)
	defer pf.close()
	if _, err := b.addSSE(ctx, pf, placed, func(k int) []string { return from(owner(restIdx[k])) }, 4096); err != nil {
		return err
	}
	if err := ce.waitOwned(ctx, wantOwned); err != nil {
		return err
	}
	for k := range clusterReplicas {
		v, err := ce.redis.getAll(ctx, []string{leaseKey(convs[k].ConversationID)})
		if err != nil {
			return err
		}
		name, _, _ := strings.Cut(v[0], "|")
		if name == "" || slices.Contains(ce.names, name) {
			return fmt.Errorf("replica %d: lease holder %q", k, v[0])
		}
		ce.names = append(ce.names, name)
	}
	if _, err := b.addSSE(ctx, f, rest, func(k int) []string { return from(reader(restIdx[k])) }, 4096); err != nil {
		return err
	}
	r.Cluster.ConnectS = time.Since(began).Seconds()
	r.Cluster.OpenFirst = openTimes(append(slices.Clone(f.recs[:len(first)]), pf.recs...))
	openFollow := openTimes(f.recs[len(first):])
	r.Cluster.OpenFollow = &openFollow
	recConv := append(slices.Clone(firstIdx), restIdx...)
	onOwner := make([]bool, len(recConv))
	for j := range firstIdx {
		onOwner[j] = true
	}
	pf.close()
	if err := settle(ctx, 2*time.Second); err != nil {
		return err
	}
	if err := ce.waitOwned(ctx, wantOwned); err != nil { // nobody moved
		return fmt.Errorf("after the placement streams closed: %w", err)
	}
	hs, err := ce.holders(ctx, convs)
	if err != nil {
		return err
	}
	for i, h := range hs {
		if h != owner(i) {
			return fmt.Errorf("conversation %d is owned by replica %d, not %d", i, h, owner(i))
		}
	}
	b.logf("every replica owns %s conversations; %s subscribers on their conversation's owner, %s on another replica",
		count(int64(c/clusterReplicas)), count(int64(r.OnOwner)), count(int64(r.OnFollower)))

	rssConn := make([]int64, clusterReplicas)
	for i, d := range ce.replicas {
		p, _ := readProc(d.PID())
		rssConn[i] = p.RSS
	}
	redisConn, err := ce.redis.snapshot(ctx)
	if err != nil {
		return err
	}

	// Idle: the sessions, no message.
	names, ps := pids()
	mi, err := ce.scrape(ctx)
	if err != nil {
		return err
	}
	cpu := newProcCPU(names, ps)
	if err := settle(ctx, b.opt.idle); err != nil {
		return err
	}
	r.Cluster.IdleCPU, r.Cluster.IdleWallS = cpu.stop()

	// The trickle.
	m0, err := ce.scrape(ctx)
	if err != nil {
		return err
	}
	st0, err := ce.ctl.stats(ctx)
	if err != nil {
		return err
	}
	disc := f.sum(func(r *recorder) int64 { return r.disconnects.Load() })
	cpu = newProcCPU(names, ps)
	var redisRound1 redisSnapshot
	lag, waitErr, err := b.trickle(ctx, ce.ctl, f, rounds, func() error {
		var err error
		redisRound1, err = ce.redis.snapshot(ctx)
		return err
	})
	r.Cluster.CPU, r.Cluster.WallS = cpu.stop()
	r.Cluster.TrickleDisconnects = f.sum(func(r *recorder) int64 { return r.disconnects.Load() }) - disc
	if err != nil {
		return err
	}
	if waitErr != nil {
		b.logf("warning: %v", waitErr)
	}
	r.Cluster.FakeMaxLagMs = lag
	redisEnd, err := ce.redis.snapshot(ctx)
	if err != nil {
		return err
	}
	m1, err := ce.scrape(ctx)
	if err != nil {
		return err
	}
	st1, err := ce.ctl.stats(ctx)
	if err != nil {
		return err
	}
	if n := st1.Collisions - st0.Collisions; n > 0 {
		b.logf("warning: %d collisions during the trickle", n)
	}
	rssEnd := make([]int64, clusterReplicas)
	for i, d := range ce.replicas {
		p, _ := readProc(d.PID())
		rssEnd[i] = p.RSS
	}
	if p, err := readProc(ce.redis.PID()); err == nil {
		r.Redis.RSSEnd = p.RSS
	}

	// What the trickle measured.
	activities := int64(c) * int64(rounds)
	for i := range clusterReplicas {
		u := replicaUse{Sessions: m1[i]["dlsse_sessions_open"], Owned: m1[i]["dlsse_conversations_owned"],
			Subscribers: m1[i]["dlsse_sse_subscribers_open"], RSSIdle: rssIdle[i], RSSConnected: rssConn[i], RSSEnd: rssEnd[i],
			Received: m1[i]["dlsse_activities_received_total"] - m0[i]["dlsse_activities_received_total"],
			Calls:    redisOps(m0[i], m1[i])}
		if u.Sessions > 0 {
			u.PerSession = float64(rssEnd[i]-rssIdle[i]) / u.Sessions
		}
		r.PerReplica = append(r.PerReplica, u)
		r.Cluster.RSSIdle += rssIdle[i]
		r.Cluster.RSSConnected += rssConn[i]
		r.Cluster.RSSEnd += rssEnd[i]
	}
	r.Cluster.PerConv = float64(r.Cluster.RSSEnd-r.Cluster.RSSIdle) / float64(c)
	r.Cluster.delivery = deliveryOf(f.recs, func(int) int64 { return int64(rounds) })
	trickleOnly := func(_ int, s sample) bool { return s.Seq < int64(rounds) }
	r.Cluster.Latency = latencyWhere(f.recs, trickleOnly)
	lo := latencyWhere(f.recs, func(j int, s sample) bool { return onOwner[j] && trickleOnly(j, s) })
	lf := latencyWhere(f.recs, func(j int, s sample) bool { return !onOwner[j] && trickleOnly(j, s) })
	r.Cluster.LatencyOwner, r.Cluster.LatencyFollower = &lo, &lf
	r.Cluster.perEvent()
	if r.Cluster.Events > 0 {
		r.Redis.CPUPer1kEvents = r.Cluster.CPU["redis"] * 1e6 / float64(r.Cluster.Events)
	}
	r.Calls = callsOf(m0, m1, activities)
	if r.Cluster.IdleWallS > 0 {
		idle := redisOps(sumMetrics(mi), sumMetrics(m0))
		minutes := r.Cluster.IdleWallS / 60
		r.Calls.IdleByOp = idle
		r.Calls.RenewPerConvMin = idle["renew"] / float64(c) / minutes
		r.Calls.AcquirePerConvMin = idle["acquire"] / float64(c) / minutes
	}
	r.Calls.ScriptsSeen = float64(redisEnd.Commands["evalsha"] - redisConn.Commands["evalsha"] + redisEnd.Commands["eval"] - redisConn.Commands["eval"])
	if err := b.redisSizes(ctx, ce, r, convs, redisEmpty, redisConn, redisRound1, redisEnd); err != nil {
		return err
	}

	// Failovers. sent counts the messages each conversation got so far:
	// the next one's seq.
	sent := make([]int64, c)
	for i := range sent {
		sent[i] = int64(rounds)
	}
	var clientsKill, clientsTerm func()
	if r.Kill, clientsKill, err = b.failover(ctx, ce, f, convs, recConv, sent, 0, syscall.SIGKILL); err != nil {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	if r.Term, clientsTerm, err = b.failover(ctx, ce, f, convs, recConv, sent, 1, syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	if err := journalFit(ctx, ce, &r.Redis, convs, sent); err != nil {
		return err
	}
	f.close()
	clientsKill()
	clientsTerm()
	r.Total = deliveryOf(f.recs, func(j int) int64 { return sent[recConv[j]] })
	return nil
}

// waitOwned waits until replica i owns want[i] conversations (its
// dlsse_conversations_owned), polling: processes give no event to wait
// on.
func (ce *clusterEnv) waitOwned(ctx context.Context, want []float64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var got []float64
	for {
		ms, err := ce.scrape(ctx)
		if err == nil {
			got = got[:0]
			for _, m := range ms {
				got = append(got, m["dlsse_conversations_owned"])
			}
			if slices.Equal(got, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("conversations owned: %v, want %v (%v)", got, want, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// redisOps is a replica's Redis calls between two scrapes, by operation.
func redisOps(before, after map[string]float64) map[string]float64 {
	const prefix = `dlsse_redis_call_duration_seconds_count{operation="`
	out := map[string]float64{}
	for k, v := range after {
		if op, ok := strings.CutPrefix(k, prefix); ok {
			out[strings.TrimSuffix(op, `"}`)] = v - before[k]
		}
	}
	return out
}

// sumMetrics adds up the scrapes of several replicas (nil ones skipped).
func sumMetrics(ms []map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

// callsOf: the replicas' Redis calls during the trickle, per activity.
func callsOf(m0, m1 []map[string]float64, activities int64) redisCalls {
	s0, s1 := sumMetrics(m0), sumMetrics(m1)
	rc := redisCalls{Activities: activities, ByOp: redisOps(s0, s1)}
	received := s1["dlsse_activities_received_total"] - s0["dlsse_activities_received_total"]
	rc.FollowerApplied = int64(received) - activities
	var all float64
	for _, v := range rc.ByOp {
		all += v
	}
	if activities > 0 {
		rc.OwnerPerActivity = (rc.ByOp["append"] + rc.ByOp["publish_owned"]) / float64(activities)
		rc.AllPerActivity = all / float64(activities)
	}
	if rc.FollowerApplied > 0 {
		rc.FollowerPerActivity = (rc.ByOp["read"] + rc.ByOp["tail"] + rc.ByOp["publish"]) / float64(rc.FollowerApplied)
	}
	rc.Append = histogramOp(s0, s1, "dlsse_redis_call_duration_seconds", "append")
	rc.Renew = histogramOp(s0, s1, "dlsse_redis_call_duration_seconds", "renew")
	return rc
}

// redisSizes fills r.Redis: used_memory over the phases, the size of a
// sample of conversations' keys, what Redis did per activity.
func (b *bench) redisSizes(ctx context.Context, ce *clusterEnv, r *clusterReport, convs []directlinetest.ConversationCredentials,
	empty, conn, round1, end redisSnapshot) error {
	c, rounds := r.Conversations, r.Rounds
	u := &r.Redis
	u.UsedEmpty, u.UsedConnected, u.UsedRound1, u.UsedEnd = empty.UsedMemory, conn.UsedMemory, round1.UsedMemory, end.UsedMemory
	u.PerConversation = float64(conn.UsedMemory-empty.UsedMemory) / float64(c)
	u.FirstActivity = float64(round1.UsedMemory-conn.UsedMemory) / float64(c)
	if rounds > 1 {
		u.PerActivity = float64(end.UsedMemory-round1.UsedMemory) / float64(c*(rounds-1))
	}
	activities := float64(c * rounds)
	u.NetInPerEvent = float64(end.NetIn-conn.NetIn) / activities
	u.NetOutPerEvent = float64(end.NetOut-conn.NetOut) / activities
	u.CommandsPerEvt = float64(end.Processed-conn.Processed) / activities
	u.Commands = map[string]int64{}
	for k, v := range end.Commands {
		if d := v - conn.Commands[k]; d > 0 && k != "info" {
			u.Commands[k] = d
		}
	}
	// A sample spread over the conversations: every replica's.
	step := max(1, len(convs)/30)
	for i := 0; i < len(convs); i += step {
		id := convs[i].ConversationID
		base := "dlsse:{" + id + "}:"
		var sizes [4]int64
		for k, what := range []string{"log", "meta", "lease", "fence"} {
			n, err := ce.redis.memoryUsage(ctx, base+what)
			if err != nil {
				return err
			}
			sizes[k] = n
		}
		n, mean, err := ce.redis.streamEntries(ctx, base+"log")
		if err != nil {
			return err
		}
		subs, err := ce.redis.numSub(ctx, "dlsse:{"+id+"}")
		if err != nil {
			return err
		}
		u.Samples++
		u.LogBytes += float64(sizes[0])
		u.MetaBytes += float64(sizes[1])
		u.LeaseBytes += float64(sizes[2])
		u.FenceBytes += float64(sizes[3])
		u.LogEntries += float64(n)
		u.EntryBytes += mean
		u.Following += float64(subs)
	}
	if n := float64(u.Samples); n > 0 {
		u.LogBytes, u.MetaBytes, u.LeaseBytes, u.FenceBytes = u.LogBytes/n, u.MetaBytes/n, u.LeaseBytes/n, u.FenceBytes/n
		u.LogEntries, u.EntryBytes, u.Following = u.LogEntries/n, u.EntryBytes/n, u.Following/n
	}
	return nil
}

// journalFit fits the size of conversations' journals to their lengths:
// the SIGTERM's waves made some longer than others.
func journalFit(ctx context.Context, ce *clusterEnv, u *redisUse, convs []directlinetest.ConversationCredentials, sent []int64) error {
	idx := make([]int, len(convs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(sent[a] - sent[b]) })
	if len(idx) > 80 { // the 40 shortest and the 40 longest
		idx = append(idx[:40], idx[len(idx)-40:]...)
	}
	var xs, ys []float64
	for _, i := range idx {
		key := "dlsse:{" + convs[i].ConversationID + "}:log"
		n, _, err := ce.redis.streamEntries(ctx, key)
		if err != nil {
			return err
		}
		size, err := ce.redis.memoryUsage(ctx, key)
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		xs, ys = append(xs, float64(n)), append(ys, float64(size))
	}
	u.FitSamples = len(xs)
	if len(xs) < 2 {
		return nil
	}
	u.FitEntries = [2]int64{int64(slices.Min(xs)), int64(slices.Max(xs))}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(xs))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx > 0 {
		u.StreamPerEntry = sxy / sxx
		u.StreamFixed = my - u.StreamPerEntry*mx
	}
	return nil
}

// Waves: during a SIGTERM hand-over, a sample of the replica's
// conversations gets a message every waveEvery for waveRounds, so the
// worst latency of a message sent while the socket changes hands is seen,
// whenever the old owner stops reading.
const (
	waveConversations = 100
	waveEvery         = 100 * time.Millisecond
	waveRounds        = 20
)

// failover ends replica victim with sig, at once makes the fake send one
// message (the probe) to every conversation it owned, and measures when
// the subscribers of those conversations get it. sent is updated with
// what the fake sent. The clients' side of the report is filled by the
// function returned, to call once the clients have ended (their samples
// are theirs until then).
func (b *bench) failover(ctx context.Context, ce *clusterEnv, f *fleet, convs []directlinetest.ConversationCredentials,
	recConv []int, sent []int64, victim int, sig syscall.Signal) (*failover, func(), error) {
	fo := &failover{Signal: "SIGKILL", Replica: victim}
	if sig == syscall.SIGTERM {
		fo.Signal = "SIGTERM"
	}
	ttl := b.opt.leaseTTL
	fo.GoalS = (ttl + 2*time.Second).Seconds()
	if sig == syscall.SIGTERM {
		fo.GoalS = 1
	}
	hs, err := ce.holders(ctx, convs)
	if err != nil {
		return nil, nil, err
	}
	var ids []string
	mine := make([]bool, len(convs))
	probe := make([]int64, len(convs)) // the probe's seq
	for i, h := range hs {
		if h == victim {
			ids = append(ids, convs[i].ConversationID)
			mine[i] = true
			probe[i] = sent[i]
		}
	}
	fo.Owned = len(ids)
	if fo.Owned == 0 {
		return nil, nil, fmt.Errorf("replica %d owns no conversation", victim)
	}
	disconnects := func() []int64 {
		out := make([]int64, len(f.recs))
		for j, rec := range f.recs {
			out[j] = rec.disconnects.Load()
		}
		return out
	}
	disc0 := disconnects()
	st0, err := ce.ctl.stats(ctx)
	if err != nil {
		return nil, nil, err
	}
	m0, err := ce.scrape(ctx)
	if err != nil {
		return nil, nil, err
	}
	var keys []string
	for _, id := range ids {
		keys = append(keys, leaseKey(id))
	}
	before := time.Now()
	left, err := ce.redis.pttls(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	expiry := make([]time.Time, len(convs)) // SIGKILL: when each lease runs out
	for k, i := 0, 0; i < len(convs); i++ {
		if mine[i] {
			expiry[i] = before.Add(left[k])
			k++
		}
	}
	fo.LeaseLeftMinS, fo.LeaseLeftMaxS = slices.Min(left).Seconds(), slices.Max(left).Seconds()
	d := ce.replicas[victim]
	exited := make(chan time.Time, 1)
	go func() { <-d.Exited; exited <- time.Now() }() // ends with the process, which the scenario ends
	b.logf("%s to replica %d, which owns %s conversations", fo.Signal, victim, count(int64(fo.Owned)))
	var names, pids []string
	for i, r := range ce.replicas {
		if i != victim && ce.alive(i) {
			names, pids = append(names, fmt.Sprintf("dlsse%d", i)), append(pids, r.PID())
		}
	}
	cpu := newProcCPU(append(names, "redis", "fake", "bench"), append(pids, ce.redis.PID(), ce.fake.PID(), "self"))
	at := time.Now()
	if err := d.Signal(sig); err != nil {
		return nil, nil, err
	}
	if sig == syscall.SIGKILL {
		<-d.Exited
	}
	if _, err := ce.ctl.runLoad(ctx, loadRequest{Conversations: ids, Rounds: 1, Prefix: "probe "}); err != nil {
		return nil, nil, err
	}
	for i := range mine {
		if mine[i] {
			sent[i]++
		}
	}
	if sig == syscall.SIGTERM {
		var sample []string
		step := max(1, len(ids)/waveConversations)
		for k := 0; k < len(ids) && len(sample) < waveConversations; k += step {
			sample = append(sample, ids[k])
		}
		if _, err := ce.ctl.runLoad(ctx, loadRequest{Conversations: sample, Interval: waveEvery.String(), Rounds: waveRounds, Prefix: "wave "}); err != nil {
			return nil, nil, err
		}
		for i, cv := range convs {
			if slices.Contains(sample, cv.ConversationID) {
				sent[i] += waveRounds
			}
		}
		fo.Waves = len(sample) * waveRounds
	}
	select {
	case t := <-exited:
		fo.ExitS = t.Sub(at).Seconds()
	case <-time.After(30 * time.Second):
		return nil, nil, fmt.Errorf("replica %d still runs 30 s after %s", victim, fo.Signal)
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	want := make(map[*recorder]int64, len(f.recs))
	for j, rec := range f.recs {
		want[rec] = sent[recConv[j]]
	}
	waitErr := f.waitAll(ctx, "every message after the "+fo.Signal, ttl+2*time.Minute, func(rec *recorder) bool {
		return rec.distinct.Load() >= want[rec]
	})
	disc1 := disconnects()
	fo.CPU, fo.WallS = cpu.stop()
	if waitErr != nil {
		b.logf("warning: %v", waitErr) // reported as lost at the end
	}
	st1, err := ce.ctl.stats(ctx)
	if err != nil {
		return nil, nil, err
	}
	m1, err := ce.scrape(ctx)
	if err != nil {
		return nil, nil, err
	}
	for i := range m1 {
		if m1[i] != nil && m0[i] != nil {
			const acq = `dlsse_ownership_events_total{event="acquired"}`
			fo.Acquired += m1[i][acq] - m0[i][acq]
		}
	}
	fo.Collisions = st1.Collisions - st0.Collisions
	fo.ReconnectCall = st1.ReconnectCalls - st0.ReconnectCalls
	fo.SocketsOpened = st1.SocketsOpened - st0.SocketsOpened
	after, err := ce.holders(ctx, convs)
	if err != nil {
		return nil, nil, err
	}
	for i := range mine {
		if mine[i] && after[i] >= 0 && after[i] != victim {
			fo.ChangedOwner++
		}
	}

	b.logf("%s: %s of %s conversations have another owner; %d collisions", fo.Signal,
		count(int64(fo.ChangedOwner)), count(int64(fo.Owned)), fo.Collisions)
	sentNow := slices.Clone(sent) // this phase's messages, not the next one's
	if sig != syscall.SIGKILL {
		expiry = nil // released at once
	}
	return fo, func() { fo.clients(f.recs, recConv, mine, probe, sentNow, disc0, disc1, at, expiry) }, nil
}

// clients fills in what the subscribers of the replica's conversations
// saw: those whose stream stayed up through the phase (on the other
// replicas) and those that had to come back on another replica. Call it
// once the clients have ended.
func (fo *failover) clients(recs []*recorder, recConv []int, mine []bool, probe, sent, disc0, disc1 []int64, at time.Time, expiry []time.Time) {
	var steady, moved, afterExpiry []int64
	for j, rec := range recs {
		i := recConv[j]
		if !mine[i] {
			continue
		}
		stayed := disc1[j] == disc0[j]
		for _, s := range rec.samples {
			if s.Seq < probe[i] || s.Seq >= sent[i] {
				continue
			}
			if stayed {
				fo.WorstMs = max(fo.WorstMs, float64(s.latency())/1e6)
			}
			if s.Seq != probe[i] {
				continue
			}
			if stayed {
				steady = append(steady, s.At-at.UnixNano())
				if expiry != nil {
					afterExpiry = append(afterExpiry, s.At-expiry[i].UnixNano())
				}
			} else {
				moved = append(moved, s.At-at.UnixNano())
			}
		}
	}
	fo.Steady, fo.Moved = len(steady), len(moved)
	if len(steady) > 0 {
		slices.Sort(steady)
		fo.ProbeP50S = float64(rank(steady, 0.5)) / 1e9
		fo.ProbeMaxS = float64(steady[len(steady)-1]) / 1e9
	}
	if len(moved) > 0 {
		fo.MovedMaxS = float64(slices.Max(moved)) / 1e9
	}
	if len(afterExpiry) > 0 {
		slices.Sort(afterExpiry)
		fo.AfterExpiryP50S = float64(rank(afterExpiry, 0.5)) / 1e9
		fo.AfterExpiryMaxS = float64(afterExpiry[len(afterExpiry)-1]) / 1e9
	}
}

// procCPU measures the CPU several processes spend over one phase, and
// what the rest of the machine spent meanwhile ("others": whether it was
// otherwise idle).
type procCPU struct {
	names, pids []string
	start       []time.Duration
	busy        time.Duration
	at          time.Time
}

func newProcCPU(names, pids []string) *procCPU {
	m := &procCPU{names: names, pids: pids, start: make([]time.Duration, len(pids)), at: time.Now()}
	for i, p := range pids {
		s, _ := readProc(p)
		m.start[i] = s.CPU
	}
	m.busy, _ = machineBusy()
	return m
}

// stop returns the CPU seconds of each process since the start (what a
// process that ended had spent is lost), the machine's busy time minus
// theirs as "others", and the wall time.
func (m *procCPU) stop() (map[string]float64, float64) {
	out := make(map[string]float64, len(m.pids)+1)
	var ours float64
	for i, p := range m.pids {
		if s, err := readProc(p); err == nil {
			out[m.names[i]] = (s.CPU - m.start[i]).Seconds()
			ours += out[m.names[i]]
		}
	}
	if busy, err := machineBusy(); err == nil {
		out["others"] = max(0, (busy-m.busy).Seconds()-ours)
	}
	return out, time.Since(m.at).Seconds()
}

// openTimes summarises how long the clients of recs took to see their
// stream online.
func openTimes(recs []*recorder) latencyStats {
	ns := make([]int64, 0, len(recs))
	for _, r := range recs {
		if d := r.onlineIn.Load(); d > 0 {
			ns = append(ns, d)
		}
	}
	return summarise(ns)
}

// deliveryOf counts what the clients of recs got against want(i) each.
// Call it once they have ended.
func deliveryOf(recs []*recorder, want func(i int) int64) delivery {
	var d delivery
	for i, r := range recs {
		d.Events += r.distinct.Load()
		d.Expected += want(i)
		d.Disconnects += r.disconnects.Load()
	}
	d.Lost, d.Duplicated = exactlyOnce(recs, want)
	return d
}

// latencyWhere is latencyOf over the samples keep accepts (i: the
// client's index). Call it once the clients have ended.
func latencyWhere(recs []*recorder, keep func(i int, s sample) bool) latencyStats {
	var all []int64
	for i, r := range recs {
		for _, s := range r.samples {
			if keep(i, s) {
				all = append(all, s.latency())
			}
		}
	}
	return summarise(all)
}

// cpuOf formats the CPU of a phase, in names' order.
func cpuOf(cpu map[string]float64, wall float64) string {
	names := slices.Sorted(maps.Keys(cpu))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f s", n, cpu[n]))
	}
	return fmt.Sprintf("%s over %.1f s", strings.Join(parts, ", "), wall)
}

// tables: the comparison, memory, Redis's work, the failovers.
func (r *clusterReport) tables() []*table {
	s, c := r.Single, r.Cluster
	lat := &table{title: fmt.Sprintf("cluster — %d replicas and Redis against one dlsse: %s conversations × 1 subscriber, 1 message per conversation every %s, %d rounds",
		r.Replicas, count(int64(r.Conversations)), r.Interval, r.Rounds)}
	if r.Capped != "" {
		lat.add("size", r.Capped)
	}
	lat.add("placement", fmt.Sprintf("each replica owns %s conversations and holds %s subscribers: %s subscribers on their conversation's owner, %s on another replica; lease_ttl %s; Redis %s",
		count(int64(r.Conversations/r.Replicas)), count(int64(r.Conversations/r.Replicas)), count(int64(r.OnOwner)), count(int64(r.OnFollower)), r.LeaseTTL, r.Redis.Version))
	lat.add("all streams online after (single; cluster, placement included)", fmt.Sprintf("%s; %s", secs(s.ConnectS), secs(c.ConnectS)))
	lat.add("events delivered / expected (single; cluster)", fmt.Sprintf("%s / %s; %s / %s", count(s.Events), count(s.Expected), count(c.Events), count(c.Expected)))
	lat.goal("lost / duplicated (single; cluster)", fmt.Sprintf("%d / %d; %d / %d", s.Lost, s.Duplicated, c.Lost, c.Duplicated), "0 / 0",
		s.Lost == 0 && s.Duplicated == 0 && c.Lost == 0 && c.Duplicated == 0)
	lat.add("a stream online after, single: p50, p99, max", openRow(s.OpenFirst))
	lat.add("… cluster, on the replica that became the owner", openRow(c.OpenFirst))
	if c.OpenFollow != nil {
		lat.add("… cluster, on another replica (following)", openRow(*c.OpenFollow))
	}
	lat.add("client disconnects while connecting (single; cluster)", fmt.Sprintf("%s; %s", count(s.Disconnects-s.TrickleDisconnects), count(c.Disconnects-c.TrickleDisconnects)))
	lat.add("client disconnects during the trickle (single; cluster)", fmt.Sprintf("%s; %s", count(s.TrickleDisconnects), count(c.TrickleDisconnects)))
	lat.add("latency, single node", latencyRow(s.Latency))
	lat.add("latency, cluster, every subscriber", latencyRow(c.Latency))
	if c.LatencyOwner != nil && c.LatencyFollower != nil {
		lat.add("… subscribers on the conversation's owner", latencyRow(*c.LatencyOwner))
		lat.add("… subscribers on another replica (through Redis)", latencyRow(*c.LatencyFollower))
	}
	lat.add("cluster adds p50 / p99 / p99.9, every subscriber", fmt.Sprintf("%s / %s / %s", ms(r.Added.P50), ms(r.Added.P99), ms(r.Added.P999)))
	lat.add("cluster adds p50 / p99.9, subscribers on another replica", fmt.Sprintf("%s / %s", ms(r.AddedFollower.P50), ms(r.AddedFollower.P999)))
	lat.goal("cluster adds p99, subscribers on another replica", ms(r.AddedFollower.P99), "≤ 5 ms", r.AddedFollower.P99 <= 5)
	lat.add("fake fell behind its schedule by at most (single; cluster)", fmt.Sprintf("%s; %s", ms(s.FakeMaxLagMs), ms(c.FakeMaxLagMs)))
	lat.add("CPU with C idle sessions (no messages), single", cpuOf(s.IdleCPU, s.IdleWallS))
	lat.add("CPU with C idle sessions (no messages), cluster", cpuOf(c.IdleCPU, c.IdleWallS))
	lat.add("CPU during the trickle, single", cpuOf(s.CPU, s.WallS))
	lat.add("CPU during the trickle, cluster", cpuOf(c.CPU, c.WallS))
	lat.add("CPU per 1k events (all; minus the idle rate): one dlsse; the replicas and Redis", fmt.Sprintf("%.1f ms; %.1f ms — %.1f ms; %.1f ms",
		s.CPUPer1kEvents, s.CPUPer1kMarg, c.CPUPer1kEvents, c.CPUPer1kMarg))

	u := r.Redis
	mem := &table{title: "cluster — memory: dlsse per replica, Redis per conversation and per activity"}
	mem.add("dlsse RSS per conversation ((end − idle) / C): one dlsse; the replicas together", fmt.Sprintf("%s; %s", kib(s.PerConv), kib(c.PerConv)))
	for i, p := range r.PerReplica {
		mem.add(fmt.Sprintf("replica %d: sessions (owned), subscribers; RSS idle → connected → end", i),
			fmt.Sprintf("%s (%s), %s; %s → %s → %s", count(int64(p.Sessions)), count(int64(p.Owned)), count(int64(p.Subscribers)), mib(p.RSSIdle), mib(p.RSSConnected), mib(p.RSSEnd)))
		mem.add(fmt.Sprintf("replica %d: RSS per session ((end − idle) / sessions)", i), kib(p.PerSession))
	}
	mem.add("Redis used_memory: replicas connected → C conversations → after round 1 → end", fmt.Sprintf("%s → %s → %s → %s (RSS at the end %s)",
		mib(u.UsedEmpty), mib(u.UsedConnected), mib(u.UsedRound1), mib(u.UsedEnd), mib(u.RSSEnd)))
	mem.add("Redis bytes per conversation, before any activity (lease, fence, status)", fmt.Sprintf("%.0f B", u.PerConversation))
	mem.add("Redis used_memory for a conversation's first activity (its journal made: a stream and a 4 KiB listpack node)", fmt.Sprintf("%.0f B", u.FirstActivity))
	mem.add("Redis used_memory per further activity, rounds 2+ (a journal grows by whole nodes: 0 until one fills)", fmt.Sprintf("%.0f B", u.PerActivity))
	if u.FitSamples > 1 {
		mem.add(fmt.Sprintf("a journal's MEMORY USAGE against its XLEN (%d conversations of %d to %d entries, least squares): fixed + per activity", u.FitSamples, u.FitEntries[0], u.FitEntries[1]),
			fmt.Sprintf("%.0f B + %.0f B", u.StreamFixed, u.StreamPerEntry))
		mem.add(fmt.Sprintf("… a journal at its cap (replay_buffer %s entries of this size), projected", count(defaultReplayBuffer)),
			kib(u.StreamFixed+defaultReplayBuffer*u.StreamPerEntry))
	}
	mem.add(fmt.Sprintf("MEMORY USAGE, mean over %d conversations after the trickle: log, meta, lease, fence", u.Samples),
		fmt.Sprintf("%.0f B (%.1f entries of %.0f B), %.0f B, %.0f B, %.0f B", u.LogBytes, u.LogEntries, u.EntryBytes, u.MetaBytes, u.LeaseBytes, u.FenceBytes))

	k := r.Calls
	calls := &table{title: "cluster — Redis round trips during the trickle"}
	calls.add("activities read from Direct Line by their owners / applied by another replica from the bus", fmt.Sprintf("%s / %s", count(k.Activities), count(k.FollowerApplied)))
	calls.add("dlsse's Redis calls, every replica (dlsse_redis_call_duration_seconds_count)", opsRow(k.ByOp))
	calls.add("per activity, by its owner (append, publish_owned)", fmt.Sprintf("%.3f", k.OwnerPerActivity))
	calls.add("per activity per replica following it (read, tail, publish; the append reaches it by pub/sub)", fmt.Sprintf("%.3f", k.FollowerPerActivity))
	calls.add("pub/sub messages Redis sends per append (replicas subscribed to a conversation, PUBSUB NUMSUB)", fmt.Sprintf("%.2f", u.Following))
	calls.add("all calls per activity, leases included", fmt.Sprintf("%.2f", k.AllPerActivity))
	calls.add("while idle: dlsse's Redis calls, every replica", opsRow(k.IdleByOp))
	calls.add("lease calls per conversation per minute, idle: renew (owner), acquire (the others)", fmt.Sprintf("%.1f, %.1f", k.RenewPerConvMin, k.AcquirePerConvMin))
	calls.add("dlsse's append / renew calls (its own timing)", fmt.Sprintf("%s / %s", k.Append, k.Renew))
	calls.add("scripts Redis ran (evalsha + eval, INFO commandstats)", count(int64(k.ScriptsSeen)))
	calls.add("commands Redis ran per activity (the scripts' own commands and the leases' included)", fmt.Sprintf("%.2f: %s", u.CommandsPerEvt, cmdsRow(u.Commands)))
	calls.add("Redis network bytes per activity, in / out (all traffic, leases included)", fmt.Sprintf("%.0f B / %.0f B", u.NetInPerEvent, u.NetOutPerEvent))

	fail := &table{title: fmt.Sprintf("cluster — failover of a replica that owns conversations (lease_ttl %s)", r.LeaseTTL)}
	for _, fo := range []*failover{r.Kill, r.Term} {
		if fo == nil {
			continue
		}
		name := fmt.Sprintf("%s replica %d", fo.Signal, fo.Replica)
		fail.add(name+": conversations it owned / with another owner after / leases acquired by the others", fmt.Sprintf("%s / %s / %.0f", count(int64(fo.Owned)), count(int64(fo.ChangedOwner)), fo.Acquired))
		fail.add(name+": process gone after", secs(fo.ExitS))
		goal := fmt.Sprintf("≤ %.0f s (lease_ttl + 2 s)", fo.GoalS)
		if fo.Signal == "SIGTERM" {
			goal = "≤ 1 s"
		}
		fail.goal(name+": signal → a message sent right after it, at the subscribers on the other replicas: p50 (max)",
			fmt.Sprintf("%s (%s) over %s subscribers", secs(fo.ProbeP50S), secs(fo.ProbeMaxS), count(int64(fo.Steady))), goal, fo.Steady > 0 && fo.ProbeMaxS <= fo.GoalS)
		if fo.Signal == "SIGKILL" {
			fail.add(name+": its leases had left at the signal (PTTL); the message arrived after its lease expired: p50 (max)",
				fmt.Sprintf("%s to %s; %s (%s)", secs(fo.LeaseLeftMinS), secs(fo.LeaseLeftMaxS), secs(fo.AfterExpiryP50S), secs(fo.AfterExpiryMaxS)))
		}
		if fo.Waves > 0 {
			fail.add(name+": worst latency of a message sent to its conversations during the hand-over (probe, and waves every 100 ms)",
				fmt.Sprintf("%s (%s wave messages)", ms(fo.WorstMs), count(int64(fo.Waves))))
		} else {
			fail.add(name+": worst latency of a message sent to its conversations after the signal", ms(fo.WorstMs))
		}
		fail.add(name+": its subscribers, back on another replica (retry hint, Last-Event-ID): signal → the message, at most", fmt.Sprintf("%s (%s subscribers)", secs(fo.MovedMaxS), count(int64(fo.Moved))))
		fail.goal(name+": collisions (the fake's)", fmt.Sprintf("%d for %s conversations that changed owner", fo.Collisions, count(int64(fo.ChangedOwner))), "≤ 1 per conversation that changed owner",
			fo.Collisions <= int64(fo.ChangedOwner))
		fail.add(name+": reconnect calls / sockets opened (the fake's)", fmt.Sprintf("%s / %s", count(fo.ReconnectCall), count(fo.SocketsOpened)))
		if fo.CPU != nil {
			fail.add(name+": CPU from the signal until every message arrived", cpuOf(fo.CPU, fo.WallS))
		}
	}
	t := r.Total
	fail.add("events delivered / expected, the whole cluster run", fmt.Sprintf("%s / %s", count(t.Events), count(t.Expected)))
	fail.goal("lost / duplicated, the whole cluster run", fmt.Sprintf("%d / %d", t.Lost, t.Duplicated), "0 / 0", t.Lost == 0 && t.Duplicated == 0)
	fail.add("client disconnects, the whole cluster run", count(t.Disconnects))
	return []*table{lat, mem, calls, fail}
}

func openRow(l latencyStats) string {
	return fmt.Sprintf("%s, %s, %s (n=%s)", secs(l.P50/1000), secs(l.P99/1000), secs(l.Max/1000), count(int64(l.N)))
}

// opsRow lists calls by operation, the most first.
func opsRow(ops map[string]float64) string {
	names := slices.Collect(maps.Keys(ops))
	slices.SortFunc(names, func(a, b string) int { return int(ops[b] - ops[a]) })
	var parts []string
	for _, n := range names {
		if ops[n] > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", n, count(int64(ops[n]))))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// cmdsRow lists Redis's commands, the most first.
func cmdsRow(cmds map[string]int64) string {
	ops := make(map[string]float64, len(cmds))
	for k, v := range cmds {
		ops[k] = float64(v)
	}
	return opsRow(ops)
}
