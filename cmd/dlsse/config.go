package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"

	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
)

// Config is everything dlsse can be told. Keys are the koanf tags: the YAML
// key, the environment variable DLSSE_<KEY upper-cased>, and the flag
// -<key with dashes>. Later sources win: defaults, file, environment, flags.
type Config struct {
	Listen      string `koanf:"listen"`
	UpstreamURL string `koanf:"upstream_url"`
	PublicURL   string `koanf:"public_url"`
	LogLevel    string `koanf:"log_level"`
	LogFormat   string `koanf:"log_format"`

	Heartbeat       time.Duration `koanf:"heartbeat"`
	Retry           time.Duration `koanf:"retry"`
	ShutdownJitter  time.Duration `koanf:"shutdown_jitter"`
	SSEWriteTimeout time.Duration `koanf:"sse_write_timeout"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	ShutdownDrain   time.Duration `koanf:"shutdown_drain"`

	ReplayBuffer int           `koanf:"replay_buffer"`
	MaxBatch     int           `koanf:"max_batch_bytes"`
	IdleGrace    time.Duration `koanf:"idle_grace"`
	VerifyTTL    time.Duration `koanf:"verify_ttl"`
	BackoffBase  time.Duration `koanf:"backoff_base"`
	BackoffMax   time.Duration `koanf:"backoff_max"`

	ReconnectRate  float64 `koanf:"reconnect_rate"`
	ReconnectBurst int     `koanf:"reconnect_burst"`

	GCPercent int `koanf:"gc_percent"`

	UpstreamTimeout   time.Duration `koanf:"upstream_timeout"`
	UpstreamKeepalive time.Duration `koanf:"upstream_keepalive"`
	UpstreamMaxConns  int           `koanf:"upstream_max_conns"`

	MaxActivityChars          int           `koanf:"max_activity_chars"`
	MaxUploadBytes            int64         `koanf:"max_upload_bytes"`
	MaxHeaderBytes            int           `koanf:"max_header_bytes"`
	MaxStreamsPerConversation int           `koanf:"max_streams_per_conversation"`
	MaxStreamsPerIP           int           `koanf:"max_streams_per_ip"`
	MaxStreams                int           `koanf:"max_streams"`
	RequestsPerIP             int           `koanf:"requests_per_ip"`
	MaxConnsPerIP             int           `koanf:"max_conns_per_ip"`
	ForwardTimeout            time.Duration `koanf:"forward_timeout"`
	UploadTimeout             time.Duration `koanf:"upload_timeout"`
	ReadTimeout               time.Duration `koanf:"read_timeout"`
	TrustedProxies            []string      `koanf:"trusted_proxies"`
	AllowedOrigins            []string      `koanf:"allowed_origins"`
	DirectLineSecret          string        `koanf:"directline_secret"`
	TokenOrigins              []string      `koanf:"token_origins"`
	TokensPerIPPerMinute      int           `koanf:"tokens_per_ip_per_minute"`

	BreakerFailures      int           `koanf:"breaker_failures"`
	BreakerOpen          time.Duration `koanf:"breaker_open"`
	ReadyIgnoresUpstream bool          `koanf:"ready_ignores_upstream"`

	DemoPages     bool   `koanf:"demo_pages"`
	WebChatBundle string `koanf:"webchat_bundle"`
}

// defaultGCPercent is gc_percent's default, half of Go's 100. A gateway's
// live heap is small per chat and its allocation rate low, so the headroom
// Go leaves by default is a large share of what a session costs beyond its
// sockets. Measured at 9,800 sessions (docs/benchmarks.md): 23.4 KiB of
// RSS per session with 100, 18.1 with 50, 16.1 with 25; a burst to 1,000
// subscribers pays for it: ~1.6 M events/s with 100, ~1.05 M with 50,
// ~0.85 M with 25. Chat loads showed no CPU difference.
const defaultGCPercent = 50

// defaults is the configuration before any source is read.
func defaults() Config {
	return Config{
		Listen:                    ":8080",
		UpstreamURL:               upstream.DefaultBaseURL,
		LogLevel:                  "info",
		LogFormat:                 "json",
		Heartbeat:                 gateway.DefaultHeartbeat,
		Retry:                     gateway.DefaultRetry,
		ShutdownJitter:            gateway.DefaultShutdownJitter,
		SSEWriteTimeout:           gateway.DefaultSSEWriteTimeout,
		ShutdownTimeout:           10 * time.Second,
		ReplayBuffer:              session.DefaultReplayBuffer,
		MaxBatch:                  session.DefaultMaxBatch,
		IdleGrace:                 session.DefaultIdleGrace,
		VerifyTTL:                 session.DefaultVerifyTTL,
		BackoffBase:               session.DefaultBackoffBase,
		BackoffMax:                session.DefaultBackoffMax,
		ReconnectRate:             session.DefaultReconnectRate,
		ReconnectBurst:            session.DefaultReconnectBurst,
		GCPercent:                 defaultGCPercent,
		UpstreamTimeout:           20 * time.Second,
		UpstreamKeepalive:         20 * time.Second,
		UpstreamMaxConns:          upstream.DefaultMaxConnsPerHost,
		MaxActivityChars:          gateway.DefaultMaxActivityChars,
		MaxUploadBytes:            gateway.DefaultMaxUploadBytes,
		MaxHeaderBytes:            gateway.DefaultMaxHeaderBytes,
		MaxStreamsPerConversation: gateway.DefaultStreamsPerConv,
		MaxStreamsPerIP:           gateway.DefaultStreamsPerIP,
		MaxStreams:                gateway.DefaultMaxStreams,
		RequestsPerIP:             gateway.DefaultRequestsPerIP,
		ForwardTimeout:            gateway.DefaultForwardTimeout,
		UploadTimeout:             gateway.DefaultUploadTimeout,
		ReadTimeout:               gateway.DefaultReadTimeout,
		TokensPerIPPerMinute:      gateway.DefaultTokensPerIPPerMin,
		BreakerFailures:           upstream.DefaultBreakerFailures,
		BreakerOpen:               upstream.DefaultBreakerOpen,
		WebChatBundle:             "third_party/botframework-webchat/webchat.js",
	}
}

// flagUsage documents each key once; it is the -help text and the list of
// flags.
var flagUsage = map[string]string{
	"listen":                       "address to listen on",
	"upstream_url":                 "Direct Line base URL (/v3/directline/... is appended)",
	"public_url":                   "base URL written into streamUrl (default: from each request's Host)",
	"log_level":                    "debug, info, warn or error",
	"log_format":                   "json or console",
	"heartbeat":                    "idle time before a stream gets a keepalive comment",
	"retry":                        "SSE retry hint sent at the start of every stream",
	"shutdown_jitter":              "random extra added to the retry hint sent at shutdown",
	"sse_write_timeout":            "a stream write that takes longer drops the client as slow",
	"shutdown_timeout":             "how long shutdown may take",
	"shutdown_drain":               "on SIGTERM, keep serving this long with /readyz at 503 so a load balancer takes the instance out (within shutdown_timeout)",
	"replay_buffer":                "activities kept per conversation for resume and slow readers",
	"max_batch_bytes":              "bytes a stream writes in one go",
	"idle_grace":                   "how long a conversation's upstream socket stays open after its last subscriber left",
	"verify_ttl":                   "how long a credential Direct Line accepted is trusted without asking again",
	"backoff_base":                 "first reconnect delay ceiling (exponential, full jitter)",
	"backoff_max":                  "largest reconnect delay",
	"reconnect_rate":               "upstream reconnect attempts per second across the instance, after each session's backoff, so a mass drop does not come back as one spike (0: no limit)",
	"reconnect_burst":              "upstream reconnect attempts allowed at once before reconnect_rate applies (a lone drop is never delayed)",
	"gc_percent":                   "Go GC target: heap growth allowed over the live heap before a collection, in percent (the GOGC variable wins when set)",
	"upstream_timeout":             "timeout of a REST call dlsse makes to Direct Line for itself",
	"upstream_keepalive":           "how often an upstream socket sends a keepalive",
	"upstream_max_conns":           "REST connections to Direct Line at most, busy and idle (0: no cap); WebSocket streams are not counted",
	"max_activity_chars":           "largest activity accepted, in characters (Direct Line's limit)",
	"max_upload_bytes":             "largest upload accepted, in bytes (streamed, never held whole)",
	"max_header_bytes":             "largest request line plus headers, in bytes",
	"max_streams_per_conversation": "open SSE streams allowed per conversation",
	"max_streams_per_ip":           "open SSE streams allowed per client address",
	"max_streams":                  "open SSE streams allowed on this instance",
	"requests_per_ip":              "requests a second allowed per client address on /v3/directline",
	"max_conns_per_ip":             "TCP connections allowed per client address (0: no cap; leave 0 behind a proxy)",
	"forward_timeout":              "timeout of a REST call proxied to Direct Line",
	"upload_timeout":               "timeout of an upload proxied to Direct Line",
	"read_timeout":                 "time allowed to read a REST request (slow clients)",
	"trusted_proxies":              "comma-separated proxy IPs/CIDRs whose X-Forwarded-For names the client",
	"allowed_origins":              "comma-separated origins allowed to call dlsse from a browser (CORS); * for any, without credentials",
	"directline_secret":            "bot's Direct Line secret: turns on token-server mode (POST tokens/generate without Authorization)",
	"token_origins":                "comma-separated origins that may get tokens in token-server mode (default: allowed_origins)",
	"tokens_per_ip_per_minute":     "token-server requests per client address per minute",
	"breaker_failures":             "consecutive Direct Line failures (5xx, 408, timeouts, network) that open the circuit breaker",
	"breaker_open":                 "how long the breaker stays open before it lets one probe through",
	"ready_ignores_upstream":       "keep /readyz at 200 while the breaker is open (default: not ready)",
	"demo_pages":                   "serve the demo pages, / (plain) and /webchat (Web Chat) (need token-server mode to chat; -demo turns them on)",
	"webchat_bundle":               "path of botframework-webchat's webchat.js served at /webchat/webchat.js (./scripts/fetch-webchat puts it at the default)",
}

// loadConfig reads defaults, then the YAML file (if any), then DLSSE_*
// environment variables, then the flags that were set.
func loadConfig(fs *flag.FlagSet, path string, environ func(string) string) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(toMap(defaults()), "."), nil); err != nil {
		return Config{}, err
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	envProvider := env.Provider(".", env.Opt{
		Prefix: "DLSSE_",
		TransformFunc: func(key, value string) (string, any) {
			return strings.ToLower(strings.TrimPrefix(key, "DLSSE_")), value
		},
		EnvironFunc: environList(environ),
	})
	if err := k.Load(envProvider, nil); err != nil {
		return Config{}, err
	}
	set := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		if _, known := flagUsage[key]; known {
			set[key] = f.Value.String()
		}
	})
	if err := k.Load(confmap.Provider(set, "."), nil); err != nil {
		return Config{}, err
	}
	var cfg Config
	dc := &mapstructure.DecoderConfig{
		Result:           &cfg,
		WeaklyTypedInput: true,
		// Lists come from YAML as lists, and from the environment and
		// flags as comma-separated strings.
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	}
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc}); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	switch c.LogFormat {
	case "json", "console":
	default:
		return fmt.Errorf("config: log_format must be json or console, not %q", c.LogFormat)
	}
	if c.Heartbeat <= 0 || c.Retry <= 0 || c.ReplayBuffer <= 0 || c.BreakerFailures <= 0 || c.BreakerOpen <= 0 {
		return fmt.Errorf("config: heartbeat, retry, replay_buffer, breaker_failures and breaker_open must be positive")
	}
	if !(c.ReconnectRate >= 0) || c.ReconnectBurst < 1 { // !(>= 0) also rejects NaN
		return fmt.Errorf("config: reconnect_rate must be 0 (no limit) or positive, reconnect_burst at least 1")
	}
	if c.GCPercent < 1 {
		return fmt.Errorf("config: gc_percent must be at least 1")
	}
	if c.UpstreamMaxConns < 0 {
		return fmt.Errorf("config: upstream_max_conns must be 0 (no cap) or positive")
	}
	return nil
}

// registerFlags defines one string flag per key; values are parsed by the
// config loader with the other sources.
func registerFlags(fs *flag.FlagSet) {
	d := toMap(defaults())
	for key, usage := range flagUsage {
		fs.String(strings.ReplaceAll(key, "_", "-"), "", fmt.Sprintf("%s (default %v; env DLSSE_%s)", usage, d[key], strings.ToUpper(key)))
	}
}

// toMap turns a Config into koanf's key map.
func toMap(c Config) map[string]any {
	k := koanf.New(".")
	_ = k.Load(structs.Provider(c, "koanf"), nil)
	return k.All()
}

// environList adapts a getenv-like function to koanf's environment list.
func environList(getenv func(string) string) func() []string {
	return func() []string {
		var out []string
		for key := range flagUsage {
			name := "DLSSE_" + strings.ToUpper(key)
			if v := getenv(name); v != "" {
				out = append(out, name+"="+v)
			}
		}
		return out
	}
}
