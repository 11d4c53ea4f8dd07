package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/sse/ssetest"
)

// Hostile clients, end to end over real loopback sockets. One attacking
// address (127.0.0.2) runs every attack at once — slow-loris connections, a
// client that opens streams and never reads them while the bot pushes large
// activities, a flood of requests and streams beyond the per-address caps,
// malformed credentials aimed at the circuit breaker, and, through a trusted
// proxy (127.0.0.3), forged X-Forwarded-For headers aimed at the per-address
// limits — while a normal client (127.0.0.1) keeps posting and reading its
// echo. The normal client must never fail; the attackers must be cut or
// refused. Round-trip latencies with and without the attack are logged for
// the record (go test -v -run Hostile), never asserted.
//
// Nothing sleeps to let time pass: the attacks are paced by tickers (a
// slow-loris byte every 200 ms, the normal client's request rate), and
// conditions are awaited through events, channels, or waitFor.

const (
	hostileReadTimeout  = time.Second
	hostileWriteTimeout = time.Second
	hostileRequestsPerS = 200
	hostileStreamsPerIP = 50

	hostileAttackWindow     = 2 * time.Second
	hostileLorisConns       = 100
	hostileLorisDrip        = 200 * time.Millisecond
	hostileSlowStreams      = 4
	hostileFloodStreams     = 60 // > hostileStreamsPerIP - hostileSlowStreams
	hostileFloodWorkers     = 4
	hostileFloodMaxRequests = 12000
	hostileFloodBurst       = 50                    // pipelined requests on one connection,
	hostileFloodBurstEvery  = 25 * time.Millisecond // 2000/s per pipelining worker
	hostileFloodConnEvery   = 2 * time.Millisecond  // 500 new connections/s per worker
	hostileBigBytes         = 64 << 10
	hostilePushWindow       = 16
	hostileMaxBig           = 400 // 25 MiB: far more than loopback socket buffers hold
	hostileBaselineRounds   = 100
	hostileMaxAttackRounds  = 400
	hostileNormalEvery      = 10 * time.Millisecond // 100 requests/s: half the per-address cap
)

// hostileAttackerIP is the address every attack comes from; the normal client
// uses 127.0.0.1 (the harness's own address). hostileProxyIP is a trusted
// proxy the attacker also goes through.
var (
	hostileAttackerIP = net.ParseIP("127.0.0.2")
	hostileProxyIP    = net.ParseIP("127.0.0.3")
)

func TestHostileClientsDoNotStarveOthers(t *testing.T) {
	t.Parallel()
	obs := newHostileReasons()
	h := newHarness(t, harnessOptions{gateway: gateway.Config{
		ReadTimeout:     hostileReadTimeout,
		SSEWriteTimeout: hostileWriteTimeout,
		Heartbeat:       50 * time.Millisecond,
		RequestsPerIP:   hostileRequestsPerS,
		MaxStreamsPerIP: hostileStreamsPerIP,
		Observer:        obs,
		TrustedProxies:  []string{hostileProxyIP.String()},
	}})
	ctx := testContext(t, 60*time.Second)
	addr := strings.TrimPrefix(h.URL, "http://")
	attacker := hostileDialer(t, addr, hostileAttackerIP)
	proxy := hostileDialer(t, addr, hostileProxyIP)

	// --- Setup. The normal client: its own conversation and stream.
	normal := h.start()
	ns := h.open(ctx, normal.StreamURL, nil)
	waitOnline(ctx, t, ns)

	// The attacker's conversations, started from the attacker's address:
	// "big" gets the large bot activities, "quiet" the stream flood.
	ac := hostileHTTPClient(attacker, false)
	big := hostileStart(ctx, t, h, ac)
	quiet := hostileStart(ctx, t, h, ac)

	// A bystander from the normal address reads the big conversation:
	// fan-out is pull-based, so the attacker's stalled streams on the
	// same conversation must not hold it back.
	bs := h.open(ctx, h.streamURL(big.ConversationID, big.Token), nil)
	waitOnline(ctx, t, bs)

	round := func(phase string, i int) time.Duration {
		text := fmt.Sprintf("%s-%04d", phase, i)
		start := time.Now()
		h.post(normal.ConversationID, normal.Token, text) // fails the test on any non-200, a 429 included
		expectTexts(ctx, t, ns, []string{text, "echo: " + text})
		return time.Since(start)
	}
	pace := time.NewTicker(hostileNormalEvery)
	defer pace.Stop()

	// --- Baseline, no attack.
	baseline := make([]time.Duration, 0, hostileBaselineRounds)
	for i := range hostileBaselineRounds {
		<-pace.C
		baseline = append(baseline, round("base", i))
	}

	// --- The attack: everything at once.
	attackCtx, stopAttack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after stopAttack: no attacker outlives the test
	defer stopAttack()
	attackStart := time.Now()

	// Slow-loris: cut by ReadTimeout, long before their own hard stop.
	lorisHardStop := hostileReadTimeout + 3*time.Second
	loris := make([]hostileLorisResult, hostileLorisConns)
	for i := range loris {
		wg.Go(func() { loris[i] = hostileSlowLoris(attackCtx, attacker, addr, i, lorisHardStop) })
	}

	// Slow readers: streams on the big conversation that are never read
	// past their response head, on a small receive buffer.
	bigPath := hostileStreamPath(big.ConversationID, big.Token)
	var slowConns []net.Conn
	defer func() { hostileCloseAll(slowConns) }()
	for range hostileSlowStreams {
		conn, resp, err := hostileRawStream(attackCtx, attacker, addr, bigPath, 4096)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("slow reader's stream: %v %v", err, hostileStatus(resp))
		}
		slowConns = append(slowConns, conn)
	}
	waitFor(t, 5*time.Second, "the slow readers' streams to open", func() bool {
		return obs.opened() >= 2+hostileSlowStreams
	})

	// The bot pushes large activities to the big conversation until every
	// slow reader was dropped as slow (or the cap), then a small sentinel.
	// It keeps at most hostilePushWindow of them ahead of the bystander:
	// a bot as fast as a reader that keeps up, not a backlog of megabytes.
	pushCtx, stopPush := context.WithCancel(ctx) // not the attack's: it pushes until the slow readers are gone
	defer stopPush()                             // before wg.Wait, on an early failure
	var pushed atomic.Int64
	received := make(chan struct{}, hostileMaxBig+1) // one per big activity the bystander read
	pushErr := make(chan error, 1)
	wg.Go(func() {
		pad := strings.Repeat("x", hostileBigBytes)
		credits := hostilePushWindow
		for i := 0; i < hostileMaxBig && obs.count(sse.ReasonSlow) < hostileSlowStreams; i++ {
			for ; credits == 0; credits++ {
				select {
				case <-received:
				case <-pushCtx.Done():
					pushErr <- pushCtx.Err()
					return
				}
			}
			if err := h.fake.Push(big.ConversationID, fmt.Sprintf("big-%04d:%s", i, pad)); err != nil {
				pushErr <- err
				return
			}
			credits--
			pushed.Add(1)
		}
		pushErr <- h.fake.Push(big.ConversationID, "big-end")
	})
	bystander := make(chan error, 1)
	go func() { bystander <- hostileReadBigInOrder(ctx, bs, &pushed, received) }()

	// Stream flood beyond MaxStreamsPerIP (the slow readers hold places
	// already; they are not dropped before a second has passed): admitted
	// streams are held, the rest must be 429. Then a request flood beyond
	// RequestsPerIP: stream requests without a credential (401 when let
	// through), on new connections and pipelined.
	var (
		floodMu             sync.Mutex
		floodConns          []net.Conn
		streamFlood         [3]int // admitted, refused by the stream cap, refused by the request rate
		streamsDuringAttack int
		reqSent, reqPassed  atomic.Int64
		reqRefused          atomic.Int64
		badAnswers          atomic.Int64
		floodTook           time.Duration
	)
	defer func() {
		floodMu.Lock()
		defer floodMu.Unlock()
		hostileCloseAll(floodConns)
	}()
	wg.Go(func() {
		quietPath := hostileStreamPath(quiet.ConversationID, quiet.Token)
		var opens sync.WaitGroup
		for range hostileFloodStreams {
			opens.Go(func() {
				conn, resp, err := hostileRawStream(attackCtx, attacker, addr, quietPath, 0)
				if err != nil {
					t.Errorf("flood stream: %v", err)
					return
				}
				floodMu.Lock()
				defer floodMu.Unlock()
				if resp.StatusCode == http.StatusOK {
					floodConns = append(floodConns, conn)
					streamFlood[0]++
					return
				}
				defer conn.Close()
				switch hostileClassify(t, resp) {
				case "streams":
					streamFlood[1]++
				case "requests":
					streamFlood[2]++
				default:
					badAnswers.Add(1)
				}
			})
		}
		opens.Wait()
		floodMu.Lock()
		streamsDuringAttack = h.gw.Streams()
		floodMu.Unlock()

		// Half the workers open a new connection per request, half
		// pipeline bursts on one connection: the cheapest way for a
		// client to make the gateway work.
		tally := func(status int, kind string) {
			switch {
			case status == http.StatusUnauthorized:
				reqPassed.Add(1)
			case kind == "requests":
				reqRefused.Add(1)
			default:
				badAnswers.Add(1)
			}
		}
		path := "/v3/directline/conversations/" + quiet.ConversationID + "/stream"
		var flood sync.WaitGroup
		floodStart := time.Now()
		for w := range hostileFloodWorkers {
			flood.Go(func() {
				if w%2 == 1 {
					pace := time.NewTicker(hostileFloodBurstEvery)
					defer pace.Stop()
					for ; attackCtx.Err() == nil && reqSent.Add(hostileFloodBurst) <= hostileFloodMaxRequests; <-pace.C {
						if err := hostilePipelined(attackCtx, t, attacker, addr, path, hostileFloodBurst, tally); err != nil {
							if attackCtx.Err() == nil {
								t.Errorf("request flood (pipelined): %v", err)
							}
							return
						}
					}
					return
				}
				c := hostileHTTPClient(attacker, true)
				pace := time.NewTicker(hostileFloodConnEvery)
				defer pace.Stop()
				for ; attackCtx.Err() == nil && reqSent.Add(1) <= hostileFloodMaxRequests; <-pace.C {
					req, _ := http.NewRequestWithContext(attackCtx, http.MethodGet, h.URL+path, nil)
					resp, err := c.Do(req)
					if err != nil {
						if attackCtx.Err() == nil {
							t.Errorf("request flood: %v", err)
						}
						return
					}
					if resp.StatusCode == http.StatusUnauthorized {
						resp.Body.Close()
						tally(resp.StatusCode, "")
						continue
					}
					tally(resp.StatusCode, hostileClassify(t, resp))
				}
			})
		}
		flood.Wait()
		floodTook = time.Since(floodStart)
	})

	// The breaker attack: stream requests whose credential is not one,
	// which once counted as Direct Line failures, opened the breaker and
	// made every REST call and /readyz fail.
	var breakerTries, breakerMoved atomic.Int64
	wg.Go(func() {
		c := hostileHTTPClient(attacker, false)
		pace := time.NewTicker(5 * time.Millisecond)
		defer pace.Stop()
		for ; attackCtx.Err() == nil; <-pace.C {
			for _, q := range []string{"%0A", "%00", "a%20b", "%0D%0A"} {
				req, _ := http.NewRequestWithContext(attackCtx, http.MethodGet,
					h.URL+"/v3/directline/conversations/"+normal.ConversationID+"/stream?t="+q, nil)
				resp, err := c.Do(req)
				if err != nil {
					return // the attack ended
				}
				breakerTries.Add(1)
				if resp.StatusCode == http.StatusUnauthorized {
					resp.Body.Close()
				} else if hostileClassify(t, resp) != "requests" {
					badAnswers.Add(1)
				}
			}
			if h.up.BreakerState() != gobreaker.StateClosed {
				breakerMoved.Add(1)
			}
		}
	})

	// The X-Forwarded-For attack: through the trusted proxy, which
	// appends the attacker's real address, the attacker writes a new
	// address to the left on every request, and sometimes an empty or
	// garbage header. Were any of it believed, every request would have
	// a fresh per-address budget and none would be refused.
	var spoofSent, spoofRefused atomic.Int64
	wg.Go(func() {
		c := hostileHTTPClient(proxy, false)
		for i := 0; attackCtx.Err() == nil && i < hostileFloodMaxRequests; i++ {
			req, _ := http.NewRequestWithContext(attackCtx, http.MethodGet,
				h.URL+"/v3/directline/conversations/"+quiet.ConversationID+"/activities", nil)
			switch i % 4 {
			case 0:
				req.Header.Set("X-Forwarded-For", "")
			case 1:
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("garbage-%d", i))
			default:
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d, %s", i>>16&255, i>>8&255, i&255, hostileAttackerIP))
			}
			resp, err := c.Do(req)
			if err != nil {
				return
			}
			spoofSent.Add(1)
			switch {
			case resp.StatusCode == http.StatusUnauthorized:
				resp.Body.Close()
			case hostileClassify(t, resp) == "requests":
				spoofRefused.Add(1)
			default:
				badAnswers.Add(1)
			}
		}
	})

	// Meanwhile the normal client, for the attack window.
	attack := make([]time.Duration, 0, hostileMaxAttackRounds)
	for i := 0; i < hostileMaxAttackRounds && time.Since(attackStart) < hostileAttackWindow; i++ {
		<-pace.C
		attack = append(attack, round("attack", i))
	}

	// --- The end of the attack, and the verdicts.
	stopAttack()
	floodMu.Lock()
	hostileCloseAll(floodConns)
	floodMu.Unlock()
	wg.Wait() // slow-loris (each bounded by its hard stop), pusher, floods

	if err := <-pushErr; err != nil {
		t.Fatalf("bot push: %v", err)
	}
	select {
	case err := <-bystander:
		if err != nil {
			t.Errorf("bystander on the attacked conversation: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("bystander on the attacked conversation: not every big activity arrived (%d pushed)", pushed.Load())
	}
	// The slow readers were dropped by the stream loop, as slow; the held
	// flood streams ended when their client closed them.
	waitFor(t, 10*time.Second, "every slow reader dropped as slow", func() bool {
		return obs.count(sse.ReasonSlow) >= hostileSlowStreams
	})
	waitFor(t, 10*time.Second, "the attackers' streams to end (normal + bystander left)", func() bool {
		return h.gw.Streams() == 2
	})
	if got := obs.count(sse.ReasonSlow); got != hostileSlowStreams {
		t.Errorf("%d streams dropped as slow, want exactly the %d attacker's", got, hostileSlowStreams)
	}

	// The normal client still works, and nothing arrived twice: the next
	// two activities on its stream are exactly this round's.
	round("after", 0)

	var cut, early int
	var cutTimes []time.Duration
	answers := map[string]int{}
	for _, r := range loris {
		if r.err != nil {
			t.Errorf("slow-loris %d: %v", r.i, r.err)
			continue
		}
		if !r.cut {
			continue
		}
		cut++
		cutTimes = append(cutTimes, r.after)
		if r.after < hostileReadTimeout/2 {
			early++
		}
		answers[r.answer]++
	}
	if cut != hostileLorisConns {
		t.Errorf("slow-loris: %d of %d connections closed by the server within %v, want all (ReadTimeout %v)",
			cut, hostileLorisConns, lorisHardStop, hostileReadTimeout)
	}
	if early > 0 {
		t.Errorf("slow-loris: %d connections cut before half the ReadTimeout: not by the timeout", early)
	}
	admitted, capRefused, rateRefused := streamFlood[0], streamFlood[1], streamFlood[2]
	if capRefused == 0 {
		t.Errorf("stream flood: no 429 for streams beyond MaxStreamsPerIP (%d admitted of %d, %d slow readers)",
			admitted, hostileFloodStreams, hostileSlowStreams)
	}
	if admitted > hostileStreamsPerIP-hostileSlowStreams {
		t.Errorf("stream flood: %d admitted with %d slow readers open, above MaxStreamsPerIP %d",
			admitted, hostileSlowStreams, hostileStreamsPerIP)
	}
	if want := hostileStreamsPerIP - hostileSlowStreams; admitted+rateRefused < want {
		t.Errorf("stream flood: %d admitted, want %d (the places left under MaxStreamsPerIP)", admitted, want)
	}
	if reqRefused.Load() == 0 {
		t.Errorf("request flood: no 429 for %d requests in %v beyond RequestsPerIP %d/s",
			reqPassed.Load(), hostileAttackWindow, hostileRequestsPerS)
	}
	if n := badAnswers.Load(); n > 0 {
		t.Errorf("attacker: %d answers neither expected nor a Throttled 429 with Retry-After", n)
	}
	if breakerTries.Load() == 0 || breakerMoved.Load() > 0 || h.up.BreakerState() != gobreaker.StateClosed {
		t.Errorf("breaker attack: %d malformed credentials sent, the breaker left closed %d times", breakerTries.Load(), breakerMoved.Load())
	}
	if status := h.readyz(); status != http.StatusOK {
		t.Errorf("/readyz %d after the attack, want 200", status)
	}
	if spoofRefused.Load() == 0 {
		t.Errorf("X-Forwarded-For attack: %d requests, none refused: forged addresses got budgets of their own", spoofSent.Load())
	}

	t.Logf("baseline (%d rounds, no attack): %s", len(baseline), hostileLatency(baseline))
	t.Logf("under attack (%d rounds): %s", len(attack), hostileLatency(attack))
	slices.Sort(cutTimes)
	if len(cutTimes) > 0 {
		t.Logf("slow-loris: %d/%d cut by the server after %v..%v; answers %v", cut, hostileLorisConns,
			cutTimes[0].Round(time.Millisecond), cutTimes[len(cutTimes)-1].Round(time.Millisecond), answers)
	}
	t.Logf("slow readers: %d dropped as slow after %d big activities (%d KiB each); bystander got all of them in order",
		obs.count(sse.ReasonSlow), pushed.Load(), hostileBigBytes>>10)
	t.Logf("stream flood: %d admitted, %d refused 429 (stream cap), %d refused 429 (request rate); streams open during attack %d",
		admitted, capRefused, rateRefused, streamsDuringAttack)
	t.Logf("request flood: %d requests in %v: %d let through (401), %d refused 429",
		reqPassed.Load()+reqRefused.Load(), floodTook.Round(time.Millisecond), reqPassed.Load(), reqRefused.Load())
	t.Logf("breaker attack: %d malformed credentials, breaker %v", breakerTries.Load(), h.up.BreakerState())
	t.Logf("X-Forwarded-For attack: %d requests, %d refused 429", spoofSent.Load(), spoofRefused.Load())
	t.Logf("stream ends by reason: %v", obs.snapshot())
}

// ---------------------------------------------------------------------------
// Attacker plumbing

// hostileDialer dials from ip; it skips the test where that address cannot
// be used (127.0.0.0/8 is all loopback on Linux, not on every system).
func hostileDialer(t *testing.T, addr string, ip net.IP) *net.Dialer {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s to model another client address: %v", ip, err)
	}
	conn.Close()
	return d
}

func hostileHTTPClient(d *net.Dialer, newConnEach bool) *http.Client {
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: newConnEach, MaxIdleConnsPerHost: 16}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// hostileStart starts a conversation from the attacker's address.
func hostileStart(ctx context.Context, t *testing.T, h *harness, c *http.Client) conversation {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/v3/directline/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+h.fake.Secret())
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("attacker start: %v", err)
	}
	defer resp.Body.Close()
	var conv conversation
	if err := json.NewDecoder(resp.Body).Decode(&conv); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("attacker start: %d %v", resp.StatusCode, err)
	}
	return conv
}

func hostileStreamPath(conv, token string) string {
	return "/v3/directline/conversations/" + conv + "/stream?t=" + url.QueryEscape(token)
}

// hostileRawStream opens a stream on a raw connection and reads the response
// head only (a refusal's body too). rcvBuf > 0 shrinks the receive buffer.
func hostileRawStream(ctx context.Context, d *net.Dialer, addr, path string, rcvBuf int) (net.Conn, *http.Response, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if rcvBuf > 0 {
		_ = conn.(*net.TCPConn).SetReadBuffer(rcvBuf)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		conn.Close()
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, resp, nil
}

func hostileStatus(resp *http.Response) string {
	if resp == nil {
		return "no answer"
	}
	return resp.Status
}

func hostileCloseAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// hostilePipelined sends n GET requests for path back to back on one
// connection and reads the n answers, passing each to tally.
func hostilePipelined(ctx context.Context, t *testing.T, d *net.Dialer, addr, path string, n int, tally func(int, string)) error {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	if _, err := io.WriteString(conn, strings.Repeat(req, n)); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			tally(resp.StatusCode, "")
			continue
		}
		tally(resp.StatusCode, hostileClassify(t, resp))
	}
	return nil
}

// hostileClassify says which per-address cap refused an answer: "streams"
// (MaxStreamsPerIP), "requests" (RequestsPerIP: a Direct Line-shaped 429
// Throttled with Retry-After, or, for a stream request, a 200 event stream
// saying "unavailable"), or "" for anything else. It closes the body.
func hostileClassify(t *testing.T, resp *http.Response) string {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A stream request over the rate is told to come back later
		// (a 429 would make EventSource give up): 200, a retry hint,
		// status unavailable, end.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if strings.Contains(string(b), `"unavailable"`) && strings.Contains(string(b), "too many requests from this address") {
			return "requests"
		}
		t.Logf("attacker got a 200 stream: %q", b)
		return ""
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	err := json.NewDecoder(resp.Body).Decode(&body)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests && body.Error.Code == "Throttled" &&
		resp.Header.Get("Retry-After") != "" {
		switch body.Error.Message {
		case "too many open streams from this address":
			return "streams"
		case "too many requests from this address":
			return "requests"
		}
	}
	t.Logf("attacker got %d %+v (%v)", resp.StatusCode, body, err)
	return ""
}

// hostileLorisResult is what became of one slow-loris connection.
type hostileLorisResult struct {
	i      int
	cut    bool          // the server closed the connection
	after  time.Duration // since the connection was established
	answer string        // the first line the server sent, if any
	err    error
}

// hostileSlowLoris opens a connection and sends a request that never ends, a
// byte every hostileLorisDrip: half drip the request line from its first byte,
// half send it whole and drip a header. It reports whether the server cut
// the connection before hardStop.
func hostileSlowLoris(ctx context.Context, d *net.Dialer, addr string, i int, hardStop time.Duration) hostileLorisResult {
	res := hostileLorisResult{i: i}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		res.err = err
		return res
	}
	defer conn.Close()
	start := time.Now()

	closed := make(chan struct{})
	var first []byte
	go func() {
		defer close(closed)
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if len(first) < 64 {
				first = append(first, buf[:min(n, 64-len(first))]...)
			}
			if err != nil {
				return
			}
		}
	}()

	drip := "GET /v3/directline/conversations/x/stream HTTP/1.1\r\nHost: " + addr + "\r\nX-Loris: " + strings.Repeat("a", 1000)
	if i%2 == 1 {
		head := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n"
		if _, err := io.WriteString(conn, head); err != nil {
			res.err = err
			return res
		}
		drip = "X-Loris: " + strings.Repeat("a", 1000)
	}
	tick := time.NewTicker(hostileLorisDrip)
	defer tick.Stop()
	stop := time.NewTimer(hardStop)
	defer stop.Stop()
	for pos := 0; ; {
		select {
		case <-closed:
			res.cut, res.after = true, time.Since(start)
			res.answer, _, _ = strings.Cut(string(first), "\r\n")
			return res
		case <-stop.C:
			return res
		case <-ctx.Done():
			// The attack window is over; keep dripping until the
			// server cuts or the hard stop: the verdict needs both.
			ctx = context.Background()
		case <-tick.C:
			if pos < len(drip) {
				_, _ = conn.Write([]byte{drip[pos]}) // a failure shows as the reader's close
				pos++
			}
		}
	}
}

// hostileReadBigInOrder reads the big conversation's activities: big-0000,
// big-0001, … each exactly once and in order, then big-end.
func hostileReadBigInOrder(ctx context.Context, s *ssetest.Stream, pushed *atomic.Int64, received chan<- struct{}) error {
	next := 0
	for {
		ev, err := s.NextNamed(ctx, "activity")
		if err != nil {
			return fmt.Errorf("after big-%04d (%d pushed): %w", next-1, pushed.Load(), err)
		}
		var a activity
		if err := json.Unmarshal([]byte(ev.Data), &a); err != nil {
			return fmt.Errorf("activity data is not JSON: %.80q", ev.Data)
		}
		if a.Type == "typing" {
			continue
		}
		if a.Text == "big-end" {
			if int64(next) != pushed.Load() {
				return fmt.Errorf("big-end after %d activities, %d pushed", next, pushed.Load())
			}
			return nil
		}
		if want := fmt.Sprintf("big-%04d:", next); !strings.HasPrefix(a.Text, want) {
			return fmt.Errorf("activity %d = %.16q…, want %s… (missing or repeated)", next, a.Text, want)
		}
		if len(a.Text) != len("big-0000:")+hostileBigBytes {
			return fmt.Errorf("activity %d: %d bytes of text, want %d", next, len(a.Text), len("big-0000:")+hostileBigBytes)
		}
		next++
		received <- struct{}{}
	}
}

// ---------------------------------------------------------------------------
// Measurement

// hostileReasons is a gateway.Observer that counts stream ends by reason.
type hostileReasons struct {
	mu     sync.Mutex
	open   int
	closed map[sse.Reason]int
}

func newHostileReasons() *hostileReasons { return &hostileReasons{closed: map[sse.Reason]int{}} }

func (c *hostileReasons) UpgradeRefused(string) {}

func (c *hostileReasons) StreamOpened(session.Wire) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open++
}

func (c *hostileReasons) StreamClosed(_ session.Wire, r sse.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed[r]++
}

func (c *hostileReasons) opened() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

func (c *hostileReasons) count(r sse.Reason) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed[r]
}

func (c *hostileReasons) snapshot() map[sse.Reason]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[sse.Reason]int, len(c.closed))
	for k, v := range c.closed {
		out[k] = v
	}
	return out
}

// hostileLatency renders p50/p99/max of round trips.
func hostileLatency(d []time.Duration) string {
	if len(d) == 0 {
		return "no rounds"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("p50 %v  p99 %v  max %v", r(q(0.50)), r(q(0.99)), r(s[len(s)-1]))
}
