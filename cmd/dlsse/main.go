// Command dlsse is a Direct Line 3.0 gateway that serves bot activities as
// Server-Sent Events. main only wires: configuration, logger, upstream
// client, sessions, gateway; then it serves until a signal and shuts down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/dlsse/dlsse/cluster"
	"github.com/dlsse/dlsse/gateway"
	"github.com/dlsse/dlsse/metrics"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], environMap(os.Environ()), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dlsse:", err)
		os.Exit(1)
	}
}

// run is main with its inputs made explicit, for tests: it serves until ctx
// ends (main ends it on SIGINT or SIGTERM), or runs the healthcheck
// command.
func run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], environ, stdout)
	}
	c := newCLI()
	if err := c.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(stdout)
			return nil // asked for, so success
		}
		return err
	}
	if *c.version {
		fmt.Fprintln(stdout, "dlsse", version())
		return nil
	}
	l, err := loadConfig(c.fs, *c.config, environ)
	if err != nil {
		return err
	}
	cfg := l.cfg
	if *c.demo && l.from["listen"] == "" {
		cfg.Listen = demoListen
	}
	applyGCPercent(cfg.GCPercent, environ["GOGC"])
	lg, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	for _, w := range l.warnings {
		lg.Warn().Msg(w)
	}

	if *c.demo {
		fake := startDemoUpstream()
		defer fake.Close()
		cfg.UpstreamURL = fake.URL
		demoConfig(&cfg, fake.Secret())
		if !isLoopback(cfg.Listen) {
			lg.Warn().Str("listen", cfg.Listen).Msg("-demo listens beyond this machine: its token-server mode hands anyone who reaches it a token for the fake's echo bot; set listen to 127.0.0.1:PORT to keep it local")
		}
		printDemoHelp(stdout, cfg, fake.Secret())
	}
	return serve(ctx, cfg, lg)
}

// environMap is os.Environ's list as a map.
func environMap(list []string) map[string]string {
	m := make(map[string]string, len(list))
	for _, kv := range list {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// applyGCPercent sets Go's GC target to gc_percent, unless the GOGC
// variable (Go's own knob, which an operator may have set on purpose) is
// set. It reports whether it did.
func applyGCPercent(percent int, gogc string) bool {
	if gogc != "" {
		return false
	}
	debug.SetGCPercent(percent)
	return true
}

// serve runs the gateway until ctx ends, then shuts it down within
// cfg.ShutdownTimeout.
func serve(ctx context.Context, cfg Config, lg zerolog.Logger) error {
	m := metrics.New()
	m.SetBuildInfo(version())
	breakerHooks := m.UpstreamHooks()
	onBreaker := breakerHooks.BreakerChange
	breakerHooks.BreakerChange = func(from, to gobreaker.State) {
		lg.Warn().Str("from", from.String()).Str("to", to.String()).Msg("Direct Line circuit breaker changed state")
		onBreaker(from, to)
	}
	breakerHooks.LocalResourceError = newResourceWarner(lg).note
	breakerHooks.Failure = newFailureWarner(lg).note
	up, err := upstream.New(upstream.Config{
		BaseURL:        cfg.UpstreamURL,
		RequestTimeout: cfg.UpstreamTimeout,
		Keepalive:      cfg.UpstreamKeepalive,
		// 0 in the file is "no cap", which upstream spells negative.
		MaxConnsPerHost: zeroMeansNone(cfg.UpstreamMaxConns),
		Breaker: gobreaker.Settings{
			Timeout:     cfg.BreakerOpen,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(cfg.BreakerFailures) },
		},
		Hooks: breakerHooks,
	})
	if err != nil {
		return err
	}
	replica := replicaName()
	var shared session.Shared
	if cfg.RedisURL != "" {
		r, err := cluster.New(cluster.Config{
			URL:     cfg.RedisURL,
			Prefix:  cfg.RedisPrefix,
			Keep:    cfg.ReplayBuffer,
			Logger:  lg,
			Observe: m.RedisCall,
		})
		if err != nil {
			return err
		}
		defer r.Close()
		shared = r.Shared()
		lg.Info().Str("replica", replica).Str("redis", redisAddress(cfg.RedisURL)).Str("prefix", cfg.RedisPrefix).
			Msg("cluster mode: conversations shared with the other replicas through Redis")
	}
	sessions := session.NewManager(up, session.Config{
		ReplayBuffer: cfg.ReplayBuffer,
		IdleGrace:    cfg.IdleGrace,
		VerifyTTL:    cfg.VerifyTTL,
		BackoffBase:  cfg.BackoffBase,
		BackoffMax:   cfg.BackoffMax,
		// 0 in the file is "no limit", which session spells negative.
		ReconnectRate:  zeroMeansNone(cfg.ReconnectRate),
		ReconnectBurst: cfg.ReconnectBurst,
		VerifyRate:     zeroMeansNone(cfg.VerifyRate),
		VerifyBurst:    cfg.VerifyBurst,
		Reverify:       cfg.Reverify,
		MaxBatch:       cfg.MaxBatch,
		Logger:         lg,
		Observer:       m,
		Shared:         shared,
		Replica:        replica,
		LeaseTTL:       cfg.LeaseTTL,
	})
	// /metrics on its own address when asked: the usual practice, which
	// keeps it off whatever the public listener is exposed to.
	var metricsOnMain http.Handler = m.Handler()
	var metricsSrv *metricsServer
	if cfg.MetricsListen != "" {
		metricsOnMain = nil
		if metricsSrv, err = startMetricsServer(cfg.MetricsListen, m.Handler(), lg); err != nil {
			return err
		}
		defer metricsSrv.close()
	}
	gw, err := gateway.New(gateway.Config{
		PublicURL:       cfg.PublicURL,
		Heartbeat:       cfg.Heartbeat,
		Retry:           cfg.Retry,
		ShutdownJitter:  cfg.ShutdownJitter,
		SSEWriteTimeout: cfg.SSEWriteTimeout,
		Logger:          lg,
		Observer:        m,
		Metrics:         metricsOnMain,

		ReadyIgnoresUpstream: cfg.ReadyIgnoresUpstream,
		ReadyIgnoresShared:   cfg.ReadyIgnoresRedis,
		DrainDelay:           cfg.ShutdownDrain,
		DemoPages:            cfg.DemoPages,
		SSEOnly:              !cfg.WebSockets,
		WebChatBundle:        cfg.WebChatBundle,

		ReadTimeout:               cfg.ReadTimeout,
		MaxActivityChars:          cfg.MaxActivityChars,
		MaxUploadBytes:            cfg.MaxUploadBytes,
		MaxHeaderBytes:            cfg.MaxHeaderBytes,
		MaxStreamsPerConversation: cfg.MaxStreamsPerConversation,
		MaxStreamsPerIP:           cfg.MaxStreamsPerIP,
		MaxStreams:                cfg.MaxStreams,
		RequestsPerIP:             cfg.RequestsPerIP,
		MaxConnsPerIP:             cfg.MaxConnsPerIP,
		ForwardTimeout:            cfg.ForwardTimeout,
		UploadTimeout:             cfg.UploadTimeout,
		TrustedProxies:            cfg.TrustedProxies,
		AllowedOrigins:            cfg.AllowedOrigins,
		DirectLineSecret:          cfg.DirectLineSecret,
		TokenOrigins:              cfg.TokenOrigins,
		TokensPerIPPerMinute:      cfg.TokensPerIPPerMinute,
	}, up, sessions)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	lg.Info().Str("version", version()).Str("listen", ln.Addr().String()).Str("upstream", cfg.UpstreamURL).Msg("dlsse serving")
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	lg.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = errors.Join(gw.Shutdown(sctx), sessions.Close(sctx))
	if serr := <-served; serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		lg.Warn().Err(err).Msg("shutdown incomplete")
		return err
	}
	lg.Info().Msg("stopped")
	return nil
}

// zeroMeansNone maps the file's 0 ("none") onto the packages' negative
// value; the packages read 0 as "the default".
func zeroMeansNone[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// newLogger builds the process logger: JSON by default, console for humans.
func newLogger(cfg Config, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("config: log_level: %w", err)
	}
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
