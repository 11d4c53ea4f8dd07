package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/dlsse/dlsse/cluster"
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
	WebSockets   bool          `koanf:"websocket_streams"`
	IdleGrace    time.Duration `koanf:"idle_grace"`
	VerifyTTL    time.Duration `koanf:"verify_ttl"`
	BackoffBase  time.Duration `koanf:"backoff_base"`
	BackoffMax   time.Duration `koanf:"backoff_max"`

	ReconnectRate  float64 `koanf:"reconnect_rate"`
	ReconnectBurst int     `koanf:"reconnect_burst"`

	VerifyRate  float64       `koanf:"verify_rate"`
	VerifyBurst int           `koanf:"verify_burst"`
	Reverify    time.Duration `koanf:"reverify_interval"`

	MetricsListen string `koanf:"metrics_listen"`

	RedisURL          string        `koanf:"redis_url"`
	RedisPrefix       string        `koanf:"redis_prefix"`
	LeaseTTL          time.Duration `koanf:"lease_ttl"`
	ReadyIgnoresRedis bool          `koanf:"ready_ignores_redis"`

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
		WebSockets:                true,
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
		VerifyRate:                session.DefaultVerifyRate,
		VerifyBurst:               session.DefaultVerifyBurst,
		Reverify:                  session.DefaultReverify,
		RedisPrefix:               cluster.DefaultPrefix,
		LeaseTTL:                  session.DefaultLeaseTTL,
		GCPercent:                 defaultGCPercent,
		UpstreamTimeout:           upstream.DefaultRequestTimeout,
		UpstreamKeepalive:         upstream.DefaultKeepalive,
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

// check reports the first key whose value dlsse cannot run with, and what
// is wrong with it; "" when all are fine. The loader names the source that
// set the key.
func (c Config) check() (key, problem string) {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return "log_level", fmt.Sprintf("%q is not a log level: use debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		return "log_format", fmt.Sprintf("%q is not a log format: use json or console", c.LogFormat)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"heartbeat", c.Heartbeat}, {"retry", c.Retry}, {"breaker_open", c.BreakerOpen}} {
		if d.v <= 0 {
			return d.key, fmt.Sprintf("must be positive, not %s", formatDuration(d.v))
		}
	}
	if c.ReplayBuffer <= 0 {
		return "replay_buffer", fmt.Sprintf("must be positive, not %d", c.ReplayBuffer)
	}
	if c.BreakerFailures <= 0 {
		return "breaker_failures", fmt.Sprintf("must be positive, not %d", c.BreakerFailures)
	}
	if !(c.ReconnectRate >= 0) { // !(>= 0) also rejects NaN
		return "reconnect_rate", fmt.Sprintf("must be 0 (no limit) or positive, not %v", c.ReconnectRate)
	}
	if c.ReconnectBurst < 1 {
		return "reconnect_burst", fmt.Sprintf("must be at least 1, not %d", c.ReconnectBurst)
	}
	if !(c.VerifyRate >= 0) {
		return "verify_rate", fmt.Sprintf("must be 0 (no limit) or positive, not %v", c.VerifyRate)
	}
	if c.VerifyBurst < 1 {
		return "verify_burst", fmt.Sprintf("must be at least 1, not %d", c.VerifyBurst)
	}
	if c.Reverify <= 0 {
		return "reverify_interval", fmt.Sprintf("must be positive, not %s", formatDuration(c.Reverify))
	}
	if c.LeaseTTL < 3*time.Second {
		return "lease_ttl", fmt.Sprintf("must be at least 3s, not %s", formatDuration(c.LeaseTTL))
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		return "redis_url", "must start with redis:// or rediss:// (e.g. redis://:password@host:6379/0)"
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{} \t\n") {
		return "redis_prefix", "must be a non-empty word without braces or spaces"
	}
	if c.GCPercent < 1 {
		return "gc_percent", fmt.Sprintf("must be at least 1, not %d", c.GCPercent)
	}
	if c.UpstreamMaxConns < 0 {
		return "upstream_max_conns", fmt.Sprintf("must be 0 (no cap) or positive, not %d", c.UpstreamMaxConns)
	}
	return "", ""
}
