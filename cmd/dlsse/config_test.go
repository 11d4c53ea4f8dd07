package main

import (
	"flag"
	"io"
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

// fakeEnv is a getenv over a map: the tests never touch the process
// environment.
func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeConfig writes a YAML file in the test's directory.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dlsse.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load parses args as run does and loads the configuration.
func load(t *testing.T, path string, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("dlsse", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return loadConfig(fs, path, fakeEnv(env))
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

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		name    string
		file    string // YAML; "-" for a path that does not exist
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"log_format in file", "log_format: xml\n", nil, nil, "log_format"},
		{"log_format in env", "", map[string]string{"DLSSE_LOG_FORMAT": "text"}, nil, "log_format"},
		{"log_format flag", "", nil, []string{"-log-format", "JSON"}, "log_format"},
		{"a flag can fix the file", "log_format: xml\n", nil, []string{"-log-format", "json"}, ""},
		{"missing file", "-", nil, nil, "config file"},
		{"malformed YAML", "listen: [unclosed\n", nil, nil, "config file"},
		{"zero heartbeat", "", map[string]string{"DLSSE_HEARTBEAT": "0s"}, nil, "heartbeat"},
		{"negative retry", "", nil, []string{"-retry", "-1s"}, "retry"},
		{"zero replay buffer", "replay_buffer: 0\n", nil, nil, "replay_buffer"},
		{"duration garbage", "", map[string]string{"DLSSE_HEARTBEAT": "soon"}, nil, "config"},
		{"number garbage", "", nil, []string{"-replay-buffer", "many"}, "config"},
		{"negative reconnect rate", "reconnect_rate: -5\n", nil, nil, "reconnect_rate"},
		{"NaN reconnect rate", "", nil, []string{"-reconnect-rate", "NaN"}, "reconnect_rate"},
		{"zero reconnect burst", "", map[string]string{"DLSSE_RECONNECT_BURST": "0"}, nil, "reconnect_burst"},
		{"zero gc percent", "", map[string]string{"DLSSE_GC_PERCENT": "0"}, nil, "gc_percent"},
		{"no reconnect limit is allowed", "reconnect_rate: 0\n", nil, nil, ""},
		{"negative upstream_max_conns", "", nil, []string{"-upstream-max-conns", "-1"}, "upstream_max_conns"},
		{"no connection cap is allowed", "upstream_max_conns: 0\n", nil, nil, ""},
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
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
			if tt.file == "-" && !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v does not name the file", err)
			}
		})
	}
}

// TestFlagsCoverEveryKey: each Config field is reachable from a flag and
// documented with its environment variable.
func TestFlagsCoverEveryKey(t *testing.T) {
	fs := flag.NewFlagSet("dlsse", flag.ContinueOnError)
	registerFlags(fs)
	keys := toMap(defaults())
	if len(keys) != len(flagUsage) {
		t.Errorf("%d config keys, %d documented flags", len(keys), len(flagUsage))
	}
	for key := range keys {
		f := fs.Lookup(strings.ReplaceAll(key, "_", "-"))
		if f == nil {
			t.Errorf("no flag for %s", key)
			continue
		}
		if !strings.Contains(f.Usage, "DLSSE_"+strings.ToUpper(key)) {
			t.Errorf("flag -%s usage %q does not name its variable", f.Name, f.Usage)
		}
	}
}

// The example configuration ships the defaults: it must load, and say
// nothing different from them.
func TestShippedConfigIsTheDefaults(t *testing.T) {
	fs := flag.NewFlagSet("dlsse", flag.ContinueOnError)
	registerFlags(fs)
	cfg, err := loadConfig(fs, filepath.Join("..", "..", "configs", "dlsse.yaml"), func(string) string { return "" })
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
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	if !applyGCPercent(25, env(nil)) {
		t.Fatal("not applied without GOGC")
	}
	if got := debug.SetGCPercent(100); got != 25 {
		t.Fatalf("GC percent %d, want 25", got)
	}
	if applyGCPercent(25, env(map[string]string{"GOGC": "200"})) {
		t.Fatal("applied although GOGC is set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d, want it left at 100", got)
	}
}
