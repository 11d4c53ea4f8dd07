package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
)

// writeConfig writes a YAML file in the test's directory.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dlsse.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load parses args as run does and loads the configuration. The tests
// never touch the process environment.
func load(t *testing.T, path string, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	l, err := loadAll(t, path, env, args...)
	return l.cfg, err
}

// loadAll is load with where each value came from, and the warnings.
func loadAll(t *testing.T, path string, env map[string]string, args ...string) (loaded, error) {
	t.Helper()
	c := newCLI()
	if err := c.parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return loadConfig(c.fs, path, env)
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := load(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:            ":8080",
		UpstreamURL:       upstream.DefaultBaseURL,
		LogLevel:          "info",
		LogFormat:         "json",
		Heartbeat:         gateway.DefaultHeartbeat,
		WebSockets:        true,
		Retry:             gateway.DefaultRetry,
		ShutdownJitter:    gateway.DefaultShutdownJitter,
		SSEWriteTimeout:   gateway.DefaultSSEWriteTimeout,
		ShutdownTimeout:   10 * time.Second,
		ReplayBuffer:      session.DefaultReplayBuffer,
		MaxBatch:          session.DefaultMaxBatch,
		IdleGrace:         session.DefaultIdleGrace,
		VerifyTTL:         session.DefaultVerifyTTL,
		BackoffBase:       session.DefaultBackoffBase,
		BackoffMax:        session.DefaultBackoffMax,
		ReconnectRate:     1000,
		ReconnectBurst:    100,
		VerifyRate:        500,
		VerifyBurst:       100,
		Reverify:          5 * time.Minute,
		RedisPrefix:       "dlsse",
		LeaseTTL:          15 * time.Second,
		GCPercent:         50,
		UpstreamTimeout:   20 * time.Second,
		UpstreamKeepalive: 20 * time.Second,
		UpstreamMaxConns:  512,
		BreakerFailures:   upstream.DefaultBreakerFailures,
		BreakerOpen:       upstream.DefaultBreakerOpen,

		MaxActivityChars:          256 * 1024,
		MaxUploadBytes:            64 << 20,
		MaxHeaderBytes:            8 << 10,
		MaxStreamsPerConversation: 50,
		MaxStreamsPerIP:           1000,
		MaxStreams:                50_000,
		RequestsPerIP:             200,
		ForwardTimeout:            time.Minute,
		UploadTimeout:             10 * time.Minute,
		ReadTimeout:               30 * time.Second,
		TokensPerIPPerMinute:      10,
		WebChatBundle:             "third_party/botframework-webchat/webchat.js",
	}
	if !reflect.DeepEqual(normalized(cfg), normalized(want)) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

// TestConfigPrecedence: defaults < file < environment < flags, key by key.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `
listen: "127.0.0.1:7001"
log_level: debug
heartbeat: 7s
replay_buffer: 50
retry: 9s
upstream_url: "http://file.example"
idle_grace: 1m
`)
	env := map[string]string{
		"DLSSE_LISTEN":        "127.0.0.1:7002",
		"DLSSE_LOG_LEVEL":     "warn",
		"DLSSE_HEARTBEAT":     "5s",
		"DLSSE_REPLAY_BUFFER": "10",
		"DLSSE_RETRY":         "4s",
		"DLSSE_PUBLIC_URL":    "https://env.example",
	}
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c Config)
	}{
		{"file over defaults", file, nil, nil, func(t *testing.T, c Config) {
			expect(t, "listen", c.Listen, "127.0.0.1:7001")
			expect(t, "log_level", c.LogLevel, "debug")
			expect(t, "heartbeat", c.Heartbeat, 7*time.Second)
			expect(t, "replay_buffer", c.ReplayBuffer, 50)
			expect(t, "upstream_url", c.UpstreamURL, "http://file.example")
			expect(t, "idle_grace", c.IdleGrace, time.Minute)
			expect(t, "log_format (default)", c.LogFormat, "json")
			expect(t, "max_batch_bytes (default)", c.MaxBatch, session.DefaultMaxBatch)
		}},
		{"environment over defaults", "", env, nil, func(t *testing.T, c Config) {
			expect(t, "listen", c.Listen, "127.0.0.1:7002")
			expect(t, "heartbeat", c.Heartbeat, 5*time.Second)
			expect(t, "replay_buffer", c.ReplayBuffer, 10)
			expect(t, "upstream_url (default)", c.UpstreamURL, upstream.DefaultBaseURL)
		}},
		{"environment over file", file, env, nil, func(t *testing.T, c Config) {
			expect(t, "listen", c.Listen, "127.0.0.1:7002")
			expect(t, "log_level", c.LogLevel, "warn")
			expect(t, "heartbeat", c.Heartbeat, 5*time.Second)
			expect(t, "replay_buffer", c.ReplayBuffer, 10)
			expect(t, "retry", c.Retry, 4*time.Second)
			expect(t, "public_url", c.PublicURL, "https://env.example")
			// Keys the environment does not set keep the file's value.
			expect(t, "upstream_url (file)", c.UpstreamURL, "http://file.example")
			expect(t, "idle_grace (file)", c.IdleGrace, time.Minute)
		}},
		{"flags over everything", file, env, []string{
			"-listen", "127.0.0.1:7003", "-heartbeat", "3s", "-replay-buffer", "7",
			"-log-level", "error", "-upstream-url", "http://flag.example", "-max-batch-bytes", "4096",
		}, func(t *testing.T, c Config) {
			expect(t, "listen", c.Listen, "127.0.0.1:7003")
			expect(t, "heartbeat", c.Heartbeat, 3*time.Second)
			expect(t, "replay_buffer", c.ReplayBuffer, 7)
			expect(t, "log_level", c.LogLevel, "error")
			expect(t, "upstream_url", c.UpstreamURL, "http://flag.example")
			expect(t, "max_batch_bytes", c.MaxBatch, 4096)
			// Not given as flags: the environment, then the file.
			expect(t, "retry (env)", c.Retry, 4*time.Second)
			expect(t, "public_url (env)", c.PublicURL, "https://env.example")
			expect(t, "idle_grace (file)", c.IdleGrace, time.Minute)
		}},
		{"flag forms", "", nil, []string{"--listen=127.0.0.1:7004", "-shutdown-timeout=250ms", "-log-format", "console"}, func(t *testing.T, c Config) {
			expect(t, "listen", c.Listen, "127.0.0.1:7004")
			expect(t, "shutdown_timeout", c.ShutdownTimeout, 250*time.Millisecond)
			expect(t, "log_format", c.LogFormat, "console")
		}},
		{"every key from the environment", "", map[string]string{
			"DLSSE_UPSTREAM_URL": "http://u", "DLSSE_LOG_FORMAT": "console", "DLSSE_SHUTDOWN_JITTER": "2s",
			"DLSSE_SSE_WRITE_TIMEOUT": "3s", "DLSSE_SHUTDOWN_TIMEOUT": "4s", "DLSSE_MAX_BATCH_BYTES": "1234",
			"DLSSE_IDLE_GRACE": "5s", "DLSSE_VERIFY_TTL": "6s", "DLSSE_BACKOFF_BASE": "7ms",
			"DLSSE_BACKOFF_MAX": "8s", "DLSSE_UPSTREAM_TIMEOUT": "9s", "DLSSE_UPSTREAM_KEEPALIVE": "10s",
			"DLSSE_RECONNECT_RATE": "2.5", "DLSSE_RECONNECT_BURST": "11", "DLSSE_UPSTREAM_MAX_CONNS": "12",
		}, nil, func(t *testing.T, c Config) {
			expect(t, "reconnect_rate", c.ReconnectRate, 2.5)
			expect(t, "reconnect_burst", c.ReconnectBurst, 11)
			expect(t, "upstream_max_conns", c.UpstreamMaxConns, 12)
			expect(t, "upstream_url", c.UpstreamURL, "http://u")
			expect(t, "log_format", c.LogFormat, "console")
			expect(t, "shutdown_jitter", c.ShutdownJitter, 2*time.Second)
			expect(t, "sse_write_timeout", c.SSEWriteTimeout, 3*time.Second)
			expect(t, "shutdown_timeout", c.ShutdownTimeout, 4*time.Second)
			expect(t, "max_batch_bytes", c.MaxBatch, 1234)
			expect(t, "idle_grace", c.IdleGrace, 5*time.Second)
			expect(t, "verify_ttl", c.VerifyTTL, 6*time.Second)
			expect(t, "backoff_base", c.BackoffBase, 7*time.Millisecond)
			expect(t, "backoff_max", c.BackoffMax, 8*time.Second)
			expect(t, "upstream_timeout", c.UpstreamTimeout, 9*time.Second)
			expect(t, "upstream_keepalive", c.UpstreamKeepalive, 10*time.Second)
		}},
		{"empty and foreign variables are ignored", file, map[string]string{
			"DLSSE_LISTEN": "", "LISTEN": "127.0.0.1:1", "DLSSE_BOGUS": "x", "dlsse_heartbeat": "1s",
		}, nil, func(t *testing.T, c Config) {
			expect(t, "listen", c.Listen, "127.0.0.1:7001")
			expect(t, "heartbeat", c.Heartbeat, 7*time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.file, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func expect[T comparable](t *testing.T, key string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", key, got, want)
	}
}

// TestConfigErrorsNameKeyAndSource: a value dlsse cannot use is refused
// with one line that names the key and the source that held it (the file,
// the variable or the flag), and says what a good value looks like.
func TestConfigErrorsNameKeyAndSource(t *testing.T) {
	tests := []struct {
		name    string
		file    string // YAML; "-" for a path that does not exist
		env     map[string]string
		args    []string
		wantErr string // FILE stands for the file's path; "" for no error
	}{
		{"duration flag without unit", "", nil, []string{"-heartbeat", "15"}, `config: flag -heartbeat: "15" is not a duration (e.g. 15s)`},
		{"duration variable without unit", "", map[string]string{"DLSSE_HEARTBEAT": "15"}, nil, `config: DLSSE_HEARTBEAT: "15" is not a duration (e.g. 15s)`},
		{"duration in file without unit", "heartbeat: 15\n", nil, nil, `config: FILE: heartbeat: 15 is not a duration (e.g. 15s)`},
		{"duration garbage", "", map[string]string{"DLSSE_IDLE_GRACE": "soon"}, nil, `config: DLSSE_IDLE_GRACE: "soon" is not a duration (e.g. 15s)`},
		{"zero duration needs no unit", "shutdown_drain: 0\n", nil, nil, ""},
		{"number garbage", "", nil, []string{"-replay-buffer", "many"}, `config: flag -replay-buffer: "many" is not a whole number (e.g. 10)`},
		{"fraction for a whole number", "replay_buffer: 1.5\n", nil, nil, `config: FILE: replay_buffer: 1.5 is not a whole number (e.g. 10)`},
		{"whole number in exponent form", "replay_buffer: 1e3\n", nil, nil, ""},
		{"rate garbage", "", nil, []string{"-reconnect-rate", "fast"}, `config: flag -reconnect-rate: "fast" is not a number (e.g. 2.5)`},
		{"bool garbage", "", map[string]string{"DLSSE_DEMO_PAGES": "yes"}, nil, `config: DLSSE_DEMO_PAGES: "yes" is not true or false`},
		{"bool flag garbage", "", nil, []string{"-demo-pages=maybe"}, `config: flag -demo-pages: "maybe" is not true or false`},
		{"list for a string", "listen: [a, b]\n", nil, nil, `config: FILE: listen: a list is not text`},
		{"mapping for a duration", "retry: {s: 1}\n", nil, nil, `config: FILE: retry: a mapping is not a duration (e.g. 15s)`},
		{"empty duration", "retry:\n", nil, nil, `config: FILE: retry: an empty value is not a duration (e.g. 15s)`},

		{"log level from a flag", "", nil, []string{"-log-level", "verbose"}, `config: flag -log-level: "verbose" is not a log level: use debug, info, warn or error`},
		{"log level in file", "log_level: loud\n", nil, nil, `config: FILE: log_level: "loud" is not a log level: use debug, info, warn or error`},
		{"log format in file", "log_format: xml\n", nil, nil, `config: FILE: log_format: "xml" is not a log format: use json or console`},
		{"log format in env", "", map[string]string{"DLSSE_LOG_FORMAT": "text"}, nil, `config: DLSSE_LOG_FORMAT: "text" is not a log format: use json or console`},
		{"log format flag", "", nil, []string{"-log-format", "JSON"}, `config: flag -log-format: "JSON" is not a log format: use json or console`},
		{"a flag can fix the file", "log_format: xml\n", nil, []string{"-log-format", "json"}, ""},
		{"zero heartbeat", "", map[string]string{"DLSSE_HEARTBEAT": "0s"}, nil, `config: DLSSE_HEARTBEAT: must be positive, not 0s`},
		{"negative retry", "", nil, []string{"-retry", "-1s"}, `config: flag -retry: must be positive, not -1s`},
		{"zero replay buffer", "replay_buffer: 0\n", nil, nil, `config: FILE: replay_buffer: must be positive, not 0`},
		{"zero breaker failures", "", nil, []string{"-breaker-failures", "0"}, `config: flag -breaker-failures: must be positive, not 0`},
		{"negative reconnect rate", "reconnect_rate: -5\n", nil, nil, `config: FILE: reconnect_rate: must be 0 (no limit) or positive, not -5`},
		{"NaN reconnect rate", "", nil, []string{"-reconnect-rate", "NaN"}, `config: flag -reconnect-rate: must be 0 (no limit) or positive, not NaN`},
		{"zero reconnect burst", "", map[string]string{"DLSSE_RECONNECT_BURST": "0"}, nil, `config: DLSSE_RECONNECT_BURST: must be at least 1, not 0`},
		{"zero gc percent", "", map[string]string{"DLSSE_GC_PERCENT": "0"}, nil, `config: DLSSE_GC_PERCENT: must be at least 1, not 0`},
		{"no reconnect limit is allowed", "reconnect_rate: 0\n", nil, nil, ""},
		{"negative upstream_max_conns", "", nil, []string{"-upstream-max-conns", "-1"}, `config: flag -upstream-max-conns: must be 0 (no cap) or positive, not -1`},
		{"no connection cap is allowed", "upstream_max_conns: 0\n", nil, nil, ""},

		{"unknown key", "listen: ':1'\nlistn: ':2'\n", nil, nil, `config: FILE: unknown key "listn" (did you mean "listen"?)`},
		{"unknown key with dashes", "log-level: debug\n", nil, nil, `config: FILE: unknown key "log-level" (did you mean "log_level"?)`},
		{"unknown key, nothing close", "colour: blue\n", nil, nil, `config: FILE: unknown key "colour" (dlsse -h lists the keys)`},
		{"nested keys are unknown", "gateway:\n  listen: ':1'\n", nil, nil, `config: FILE: unknown key "gateway" (dlsse -h lists the keys)`},
		{"missing file", "-", nil, nil, `config: FILE: no such file or directory`},
		{"malformed YAML", "listen: [unclosed\n", nil, nil, `config: FILE: yaml: line 1: did not find expected ',' or ']'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			switch tt.file {
			case "":
			case "-":
				path = filepath.Join(t.TempDir(), "absent.yaml")
			default:
				path = writeConfig(t, tt.file)
			}
			_, err := load(t, path, tt.env, tt.args...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			want := strings.ReplaceAll(tt.wantErr, "FILE", path)
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant   %s", err, want)
			}
		})
	}
}

// TestTypedFlags: a bool key's flag needs no value, lists are
// comma-separated in flags and the environment and YAML lists in the file.
func TestTypedFlags(t *testing.T) {
	cfg, err := load(t, "", map[string]string{"DLSSE_ALLOWED_ORIGINS": "https://a.example, https://b.example"},
		"-demo-pages", "-ready-ignores-upstream=true", "-trusted-proxies", "10.0.0.1,10.1.0.0/16,", "-reconnect-rate", "2.5")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "demo_pages", cfg.DemoPages, true)
	expect(t, "ready_ignores_upstream", cfg.ReadyIgnoresUpstream, true)
	expect(t, "reconnect_rate", cfg.ReconnectRate, 2.5)
	if !reflect.DeepEqual(cfg.TrustedProxies, []string{"10.0.0.1", "10.1.0.0/16"}) {
		t.Errorf("trusted_proxies = %q", cfg.TrustedProxies)
	}
	if !reflect.DeepEqual(cfg.AllowedOrigins, []string{"https://a.example", "https://b.example"}) {
		t.Errorf("allowed_origins = %q", cfg.AllowedOrigins)
	}

	file := writeConfig(t, "demo_pages: true\ntoken_origins: [\"https://a.example\", \"*\"]\nmax_upload_bytes: 1048576\n")
	cfg, err = load(t, file, nil, "-demo-pages=false")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "demo_pages (flag over file)", cfg.DemoPages, false)
	expect(t, "max_upload_bytes", cfg.MaxUploadBytes, int64(1<<20))
	if !reflect.DeepEqual(cfg.TokenOrigins, []string{"https://a.example", "*"}) {
		t.Errorf("token_origins = %q", cfg.TokenOrigins)
	}
}

// TestConfigRemembersSources: loaded.from names the source that set each
// key last; keys at their defaults are absent.
func TestConfigRemembersSources(t *testing.T) {
	file := writeConfig(t, "listen: ':1'\nretry: 2s\nheartbeat: 3s\n")
	l, err := loadAll(t, file, map[string]string{"DLSSE_RETRY": "4s", "DLSSE_HEARTBEAT": "5s"}, "-heartbeat", "6s")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"listen":    file + ": listen",
		"retry":     "DLSSE_RETRY",
		"heartbeat": "flag -heartbeat",
	}
	if !reflect.DeepEqual(l.from, want) {
		t.Errorf("from = %v, want %v", l.from, want)
	}
}

// TestUnknownVariablesWarn: a DLSSE_* variable that is no key is ignored
// with a warning naming the closest key's variable; the variables
// Kubernetes makes for a Service named dlsse are ignored silently.
func TestUnknownVariablesWarn(t *testing.T) {
	l, err := loadAll(t, "", map[string]string{
		"DLSSE_LISTN":              "127.0.0.1:1",
		"DLSSE_listen":             "127.0.0.1:2",
		"DLSSE_COLOUR":             "blue",
		"DLSSE_SERVICE_HOST":       "10.0.0.1",
		"DLSSE_SERVICE_PORT":       "8080",
		"DLSSE_SERVICE_PORT_HTTP":  "8080",
		"DLSSE_PORT":               "tcp://10.0.0.1:8080",
		"DLSSE_PORT_8080_TCP":      "tcp://10.0.0.1:8080",
		"DLSSE_PORT_8080_TCP_ADDR": "10.0.0.1",
		"DLSSE_PORT_8080_TCP_PORT": "8080",
		"OTHER_LISTEN":             "127.0.0.1:3",
	})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "listen", l.cfg.Listen, defaults().Listen)
	want := []string{
		"DLSSE_COLOUR is not a dlsse setting and is ignored (dlsse -h lists the keys)",
		"DLSSE_LISTN is not a dlsse setting and is ignored (did you mean DLSSE_LISTEN?)",
		"DLSSE_listen is not a dlsse setting and is ignored (did you mean DLSSE_LISTEN?)",
	}
	if !reflect.DeepEqual(l.warnings, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(l.warnings, "\n"), strings.Join(want, "\n"))
	}
}

// TestFlagsCoverEveryKey: every Config key has exactly one line of help in
// keyGroups and a flag, and keyGroups names no other key.
func TestFlagsCoverEveryKey(t *testing.T) {
	c := newCLI()
	documented := map[string]int{}
	for _, g := range keyGroups {
		for _, d := range g.keys {
			documented[d.key]++
			if _, ok := keyByName[d.key]; !ok {
				t.Errorf("keyGroups documents %q, which is not a key of Config", d.key)
			}
		}
	}
	for _, k := range configKeys {
		if n := documented[k.name]; n != 1 {
			t.Errorf("key %s is documented %d times in keyGroups (cmd/dlsse/flags.go), want once", k.name, n)
		}
		f := c.fs.Lookup(k.flagName())
		if f == nil {
			t.Errorf("no flag for %s", k.name)
			continue
		}
		if isBool(f) != (k.kind == kindBool) {
			t.Errorf("flag -%s: bool flag %v, but the key is a %s", f.Name, isBool(f), k.kind.name())
		}
	}
}

// TestHelp: -h prints, to stdout, a one-line summary, the commands, and
// every key grouped, with its type, its default when it has one, and its
// variable; no empty "(default ; ...)".
func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	help := stdout.String()
	if stderr.Len() != 0 {
		t.Errorf("help wrote to stderr: %q", stderr.String())
	}
	first, _, _ := strings.Cut(help, "\n")
	if !strings.HasPrefix(first, "dlsse: ") || len(first) > 100 {
		t.Errorf("first line %q is not a one-line summary", first)
	}
	// Unwrap the usage lines, to look for phrases that wrap.
	flat := strings.Join(strings.Fields(help), " ")
	for _, want := range []string{
		"dlsse healthcheck [-url URL]",
		"-version print the version",
		"-demo run with an in-process Direct Line fake",
		"listens on 127.0.0.1:8080 unless listen is set",
		"-heartbeat duration idle time before a stream gets a keepalive comment (default 15s; DLSSE_HEARTBEAT)",
		"-listen string address to listen on (default :8080; DLSSE_LISTEN)",
		"-upload-timeout duration timeout of an upload proxied to Direct Line (default 10m; DLSSE_UPLOAD_TIMEOUT)",
		"-max-upload-bytes int",
		"-reconnect-rate number",
		"-trusted-proxies list proxy IPs/CIDRs whose X-Forwarded-For names the client (DLSSE_TRUSTED_PROXIES)",
		"(DLSSE_DIRECTLINE_SECRET)",
		"-demo-pages serve the demo pages",
		"(DLSSE_DEMO_PAGES)",
		"Serving and logging:",
		"Security and limits:",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	for _, junk := range []string{"(default ;", "(default )", "default false", "default []", "env DLSSE_"} {
		if strings.Contains(flat, junk) {
			t.Errorf("help contains %q", junk)
		}
	}
	for _, k := range configKeys {
		if !strings.Contains(help, "\n  -"+k.flagName()+"\n") && !strings.Contains(help, "\n  -"+k.flagName()+" "+k.kind.name()+"\n") {
			t.Errorf("help has no line for -%s", k.flagName())
		}
		if !strings.Contains(flat, k.envName()+")") {
			t.Errorf("help does not name %s", k.envName())
		}
	}
}

// The example configuration ships the defaults: it must load, and say
// nothing different from them.
func TestShippedConfigIsTheDefaults(t *testing.T) {
	cfg, err := load(t, filepath.Join("..", "..", "configs", "dlsse.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalized(cfg), normalized(defaults())) {
		t.Errorf("configs/dlsse.yaml differs from the defaults:\n file %+v\n code %+v", cfg, defaults())
	}
}

// normalized makes empty lists nil, so a list that came from nowhere and
// one that came from an empty YAML value compare equal.
func normalized(c Config) Config {
	for _, l := range []*[]string{&c.TrustedProxies, &c.AllowedOrigins, &c.TokenOrigins} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return c
}

// TestZeroMeansNone: the file's 0 for reconnect_rate and upstream_max_conns
// reaches the packages as their "none" (negative), not as their "default"
// (zero).
func TestZeroMeansNone(t *testing.T) {
	expect(t, "0 (int)", zeroMeansNone(0), -1)
	expect(t, "512", zeroMeansNone(512), 512)
	expect(t, "0 (float)", zeroMeansNone(0.0), -1.0)
	expect(t, "2.5", zeroMeansNone(2.5), 2.5)
}

// TestGCPercentAppliedUnlessGOGC: gc_percent becomes the GC target, except
// when the GOGC variable is set.
func TestGCPercentAppliedUnlessGOGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	if !applyGCPercent(25, "") {
		t.Fatal("not applied without GOGC")
	}
	if got := debug.SetGCPercent(100); got != 25 {
		t.Fatalf("GC percent %d, want 25", got)
	}
	if applyGCPercent(25, "200") {
		t.Fatal("applied although GOGC is set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d, want it left at 100", got)
	}
}
