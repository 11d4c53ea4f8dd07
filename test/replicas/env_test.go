// Package replicas_test runs dlsse as it runs in production with several
// replicas: three dlsse processes sharing conversations through a real
// redis-server, behind HAProxy with the shipped configs/haproxy.cfg (plain
// round-robin), in front of the Direct Line fake as a process of its own.
// The tests kill, stop and restart those processes and Redis, and check
// what a user sees: every activity once, in order.
package replicas_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dlsse/dlsse/internal/proc"
	"github.com/dlsse/dlsse/internal/redistest"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// leaseTTL is the replicas' lease: short, so failovers are quick.
const leaseTTL = 4 * time.Second

const greeting = "hello, I am the bot"

// binaries are built once for every test of the package.
var binaries struct {
	once        sync.Once
	dir         string
	dlsse, fake string
	err         error
}

func build(t *testing.T) (dlsse, fake string) {
	t.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "dlsse-replicas-")
		if binaries.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			binaries.dlsse, binaries.fake, binaries.err = proc.Build(ctx, binaries.dir, false)
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dlsse, binaries.fake
}

// env is one cluster: Redis, the fake, the replicas, HAProxy.
type env struct {
	t        *testing.T
	dir      string
	redis    *redistest.Server
	fake     *proc.Fake
	bin      string
	replicas []*replica
	proxy    *proc.Child
	URL      string // HAProxy
	http     *http.Client
}

// replica is one dlsse process, restartable on its address.
type replica struct {
	*proc.Dlsse
	name string // as dlsse logs it, the holder of its leases
	n    int    // starts so far
}

func newEnv(t *testing.T, n int, dlsseArgs ...string) *env {
	t.Helper()
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("REQUIRE_TEST_SERVERS") != "" {
			t.Fatalf("haproxy is required: %v", err)
		}
		t.Skip("haproxy not installed (./scripts/test installs it)")
	}
	redis := redistest.Start(t)
	dlsseBin, fakeBin := build(t)
	dir := t.TempDir()
	if keep := os.Getenv("KEEP_TEST_LOGS"); keep != "" {
		dir, _ = os.MkdirTemp(keep, "replicas-") // kept for a post-mortem
	}
	e := &env{t: t, dir: dir, redis: redis, bin: dlsseBin,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}}
	t.Cleanup(e.http.CloseIdleConnections)
	t.Cleanup(func() { // registered early: runs after every process stopped
		if t.Failed() {
			e.dumpLogs()
		}
	})
	ctx := context.Background()
	e.fake, err = proc.StartFake(ctx, fakeBin, e.dir, "-greet", greeting, "-keepalive", "1s", "-replay-extra", "3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.fake.Stop(5 * time.Second) })
	for i := range n {
		addr, err := proc.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{Dlsse: &proc.Dlsse{Addr: addr, URL: "http://" + addr}}
		e.replicas = append(e.replicas, r)
		e.startReplica(i, dlsseArgs...)
	}
	t.Cleanup(func() {
		for _, r := range e.replicas {
			if r.Child != nil {
				if err := r.Stop(10 * time.Second); err != nil {
					t.Errorf("replica: %v", err)
				}
			}
		}
	})
	e.startProxy(haproxy)
	return e
}

// startReplica (re)starts replica i on its address.
func (e *env) startReplica(i int, args ...string) {
	e.t.Helper()
	r := e.replicas[i]
	r.n++
	all := append([]string{
		"-redis-url", e.redis.URL(),
		"-lease-ttl", leaseTTL.String(),
		"-log-level", "info",
		"-trusted-proxies", "127.0.0.1",
		"-idle-grace", "3s",
		"-backoff-base", "100ms",
		"-heartbeat", "2s",
		"-max-streams-per-ip", "100000",
		"-requests-per-ip", "100000",
	}, args...)
	d, err := proc.StartDlsse(context.Background(), e.bin, filepath.Join(e.dir, fmt.Sprintf("dlsse%d.%d.log", i, r.n)), r.Addr, e.fake.URL, all...)
	if err != nil {
		e.t.Fatal(err)
	}
	r.Dlsse = d
	r.name = replicaName(e.t, d.Log.Name())
}

var replicaLine = regexp.MustCompile(`"replica":"([^"]+)"`)

// replicaName reads the replica's name from its log.
func replicaName(t *testing.T, logPath string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logPath)
		if m := replicaLine.FindSubmatch(b); m != nil {
			return string(m[1])
		}
		time.Sleep(20 * time.Millisecond) // polls a file a process writes: no event to wait on
	}
	t.Fatalf("%s names no replica", logPath)
	return ""
}

// startProxy runs HAProxy with the shipped configuration, its addresses
// replaced: the bind, and one server line per replica, in both backends.
func (e *env) startProxy(bin string) {
	e.t.Helper()
	root, err := proc.ModuleRoot(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, "configs", "haproxy.cfg"))
	if err != nil {
		e.t.Fatal(err)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		e.t.Fatal(err)
	}
	var servers strings.Builder
	for i, r := range e.replicas {
		fmt.Fprintf(&servers, "    server dlsse%d %s check inter 500ms fall 2 rise 1\n", i+1, r.Addr)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(shipped))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "bind :"):
			fmt.Fprintf(&out, "    bind %s\n", addr)
		case trimmed == "maxconn 20000":
			out.WriteString("    maxconn 2000\n") // within this machine's open-file limit
		case strings.HasPrefix(trimmed, "server dlsse1 "):
			out.WriteString(servers.String())
		case strings.HasPrefix(trimmed, "# server dlsse"):
		default:
			out.WriteString(line + "\n")
		}
	}
	cfg := filepath.Join(e.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, out.Bytes(), 0o644); err != nil {
		e.t.Fatal(err)
	}
	c, err := proc.Start("haproxy", bin, []string{"-f", cfg, "-db"}, filepath.Join(e.dir, "haproxy.log"), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proxy = c
	e.URL = "http://" + addr
	e.t.Cleanup(func() { c.Stop(5 * time.Second) })
	// Until every replica is in: HAProxy checks /readyz.
	e.waitFor("HAProxy to pass requests", 20*time.Second, func() bool {
		res, err := e.http.Get(e.URL + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

func (e *env) dumpLogs() {
	entries, _ := os.ReadDir(e.dir)
	for _, en := range entries {
		if !strings.HasSuffix(en.Name(), ".log") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(e.dir, en.Name()))
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		e.t.Logf("--- %s (tail)\n%s", en.Name(), b)
	}
}

// waitFor polls cond (processes give no event to wait on) until it holds.
func (e *env) waitFor(what string, d time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// conversation is one started through HAProxy.
type conversation struct {
	ID, Token, StreamURL string
}

func (e *env) start() conversation {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/v3/directline/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+e.fake.Secret)
	res, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var c struct {
		ConversationID, Token, StreamURL string
	}
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil || res.StatusCode != http.StatusCreated {
		e.t.Fatalf("start: %d %v", res.StatusCode, err)
	}
	return conversation{ID: c.ConversationID, Token: c.Token, StreamURL: c.StreamURL}
}

// say makes the bot send texts to a conversation, through the fake's
// control API.
func (e *env) say(conv string, texts ...string) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"texts": texts})
	res, err := e.http.Post(e.fake.Control+"/conversations/"+conv+"/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("say: %d", res.StatusCode)
	}
}

func (e *env) stats() directlinetest.Stats {
	e.t.Helper()
	res, err := e.http.Get(e.fake.Control + "/stats")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var st directlinetest.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// owner is the replica holding a conversation's lease, or -1.
func (e *env) owner(conv string) int {
	holder, err := e.redis.Get("dlsse:{" + conv + "}:lease")
	if err != nil {
		return -1
	}
	for i, r := range e.replicas {
		if r.Child != nil && strings.HasPrefix(holder, r.name+"|") {
			return i
		}
	}
	return -1
}
