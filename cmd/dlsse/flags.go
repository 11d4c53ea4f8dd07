package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// keyDoc is a key's line of help.
type keyDoc struct{ key, usage string }

// keyGroups document every configuration key once, in the order -h shows
// them. A test keeps them and Config in agreement.
var keyGroups = []struct {
	title string
	keys  []keyDoc
}{
	{"Serving and logging", []keyDoc{
		{"listen", "address to listen on"},
		{"upstream_url", "Direct Line base URL (/v3/directline/... is appended)"},
		{"public_url", "base URL written into streamUrl (empty: from each request's scheme and Host)"},
		{"log_level", "debug, info, warn or error"},
		{"log_format", "json, or console for humans"},
		{"metrics_listen", "separate address serving /metrics (e.g. 127.0.0.1:9090); empty: /metrics on listen"},
	}},
	{"Streams", []keyDoc{
		{"heartbeat", "idle time before a stream gets a keepalive comment"},
		{"retry", "SSE retry hint sent at the start of every stream"},
		{"sse_write_timeout", "a stream write that takes longer drops the client as slow"},
		{"max_batch_bytes", "bytes a stream writes in one go"},
		{"websocket_streams", "stream URLs may also be opened as WebSockets speaking Direct Line's stream protocol, and DirectLineJS clients get ws(s):// stream URLs (false: SSE only, upgrades refused)"},
	}},
	{"Conversations", []keyDoc{
		{"replay_buffer", "activities kept per conversation for resume and slow readers"},
		{"idle_grace", "how long a conversation's upstream socket stays open after its last subscriber left"},
		{"verify_ttl", "how long a credential Direct Line accepted is trusted without asking again"},
		{"backoff_base", "first reconnect delay ceiling (exponential, full jitter)"},
		{"backoff_max", "largest reconnect delay"},
		{"reconnect_rate", "upstream reconnect attempts per second across the instance, after each session's backoff, so a mass drop does not come back as one spike (0: no limit)"},
		{"reconnect_burst", "upstream reconnect attempts allowed at once before reconnect_rate applies (a lone drop is never delayed)"},
		{"verify_rate", "questions a second to Direct Line about stream credentials nobody vouched for, across the instance; a stream over it is told to come back (0: no limit)"},
		{"verify_burst", "such questions allowed at once before verify_rate applies"},
		{"reverify_interval", "how often a stream whose credential's lifetime Direct Line never told (a secret, a token dlsse saw no answer about) is re-checked; it ends once Direct Line refuses it"},
	}},
	{"Several replicas (cluster mode)", []keyDoc{
		{"redis_url", "Redis shared by the replicas: redis://[:password@]host:port/db, or rediss:// for TLS; empty: a single process, no Redis"},
		{"redis_prefix", "prefix of every Redis key and channel, so several deployments can share one Redis"},
		{"lease_ttl", "how long a replica owns a conversation's Direct Line socket without renewing its lease (renewed every third of it; another replica takes over within it when the owner dies)"},
		{"ready_ignores_redis", "keep /readyz at 200 while Redis is unreachable (default: not ready)"},
	}},
	{"Direct Line", []keyDoc{
		{"upstream_timeout", "timeout of a REST call dlsse makes to Direct Line for itself"},
		{"upstream_keepalive", "how often an upstream socket sends a keepalive"},
		{"upstream_max_conns", "REST connections to Direct Line at most, busy and idle (0: no cap); WebSocket streams are not counted"},
		{"breaker_failures", "consecutive Direct Line failures (5xx, 408, timeouts, network) that open the circuit breaker"},
		{"breaker_open", "how long the breaker stays open before it lets one probe through"},
		{"ready_ignores_upstream", "keep /readyz at 200 while the breaker is open (default: not ready)"},
	}},
	{"Security and limits", []keyDoc{
		{"allowed_origins", "origins allowed to call dlsse from a browser (CORS); * for any, without credentials"},
		{"directline_secret", "bot's Direct Line secret: turns on token-server mode (POST tokens/generate without Authorization); prefer the environment variable"},
		{"token_origins", "origins that may get tokens in token-server mode (empty: allowed_origins)"},
		{"tokens_per_ip_per_minute", "token-server requests per client address per minute"},
		{"trusted_proxies", "proxy IPs/CIDRs whose X-Forwarded-For names the client"},
		{"max_activity_chars", "largest activity accepted, in characters (Direct Line's limit)"},
		{"max_upload_bytes", "largest upload accepted, in bytes (streamed, never held whole)"},
		{"max_header_bytes", "largest request line plus headers, in bytes"},
		{"max_streams_per_conversation", "open streams (SSE and WebSocket) allowed per conversation"},
		{"max_streams_per_ip", "open streams (SSE and WebSocket) allowed per client address"},
		{"max_streams", "open streams (SSE and WebSocket) allowed on this instance"},
		{"requests_per_ip", "requests a second allowed per client address on /v3/directline"},
		{"max_conns_per_ip", "TCP connections allowed per client address (0: no cap; leave 0 behind a proxy)"},
		{"read_timeout", "time allowed to read a REST request (slow clients)"},
		{"forward_timeout", "timeout of a REST call proxied to Direct Line"},
		{"upload_timeout", "timeout of an upload proxied to Direct Line"},
	}},
	{"Shutdown", []keyDoc{
		{"shutdown_timeout", "how long shutdown may take"},
		{"shutdown_drain", "on SIGTERM, keep serving this long with /readyz at 503 so a load balancer takes the instance out (within shutdown_timeout)"},
		{"shutdown_jitter", "random extra added to the retry hint sent at shutdown"},
	}},
	{"Go runtime", []keyDoc{
		{"gc_percent", "Go GC target: heap growth allowed over the live heap before a collection, in percent (the GOGC variable wins when set)"},
	}},
	{"Demo pages", []keyDoc{
		{"demo_pages", "serve the demo pages, / (plain) and /webchat (Web Chat) (need token-server mode to chat; -demo turns them on)"},
		{"webchat_bundle", "path of botframework-webchat's webchat.js served at /webchat/webchat.js (./scripts/fetch-webchat puts it at the default)"},
	}},
}

// configFlag is a configuration key's flag. It keeps the text as given: the
// loader decodes it as it decodes an environment variable, so a bad value
// is refused with the key and its source like any other. A bool key's flag
// needs no value (-demo-pages), as the flag package's own bools.
type configFlag struct {
	key  configKey
	text string
}

func (f *configFlag) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

func (f *configFlag) Set(s string) error { f.text = s; return nil }

func (f *configFlag) IsBoolFlag() bool { return f.key.kind == kindBool }

// registerFlags defines a flag for every configuration key.
func registerFlags(fs *flag.FlagSet) {
	for _, g := range keyGroups {
		for _, d := range g.keys {
			k := keyByName[d.key]
			fs.Var(&configFlag{key: k}, k.flagName(), d.usage)
		}
	}
}

// cli is dlsse's command line: the flags of its own, and one per
// configuration key.
type cli struct {
	fs      *flag.FlagSet
	config  *string
	demo    *bool
	version *bool
}

// demoListen is where -demo listens when no source set listen: this
// machine only, since -demo turns on token-server mode.
const demoListen = "127.0.0.1:8080"

func newCLI() *cli {
	fs := flag.NewFlagSet("dlsse", flag.ContinueOnError)
	// Errors and help are written by run, once, not by the flag package.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &cli{
		fs:      fs,
		config:  fs.String("config", "", "YAML configuration file (configs/dlsse.yaml documents every key)"),
		demo:    fs.Bool("demo", false, "run with an in-process Direct Line fake and an echo bot (no network, no secret); listens on "+demoListen+" unless listen is set"),
		version: fs.Bool("version", false, "print the version and exit"),
	}
	registerFlags(fs)
	return c
}

// parse parses args; it reports flag.ErrHelp for -h.
func (c *cli) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			return fmt.Errorf("unknown flag -%s (%s)", name, c.flagHint(name))
		}
		return fmt.Errorf("%w (dlsse -h lists the flags)", err)
	}
	if c.fs.NArg() == 0 {
		return nil
	}
	arg := c.fs.Arg(0)
	// A bool flag given a separate value (-demo-pages true) ends the flags
	// at the value.
	if i := len(args) - c.fs.NArg(); i > 0 && strings.HasPrefix(args[i-1], "-") {
		if f := c.fs.Lookup(strings.TrimLeft(args[i-1], "-")); f != nil && isBool(f) {
			return fmt.Errorf("unexpected argument %q: a bool flag takes no separate value (write %s, or %s=%s)", arg, args[i-1], args[i-1], arg)
		}
	}
	hint := "dlsse takes flags, and one command: healthcheck (dlsse -h)"
	switch {
	case arg == "help":
		hint = "did you mean -h?"
	case c.fs.Lookup(arg) != nil:
		hint = "did you mean -" + arg + "?"
	}
	return fmt.Errorf("unexpected argument %q: %s", arg, hint)
}

// flagHint follows an unknown flag: the nearest one, or where they are.
func (c *cli) flagHint(name string) string {
	var names []string
	c.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if best, ok := closest(name, names); ok {
		return "did you mean -" + best + "?"
	}
	return "dlsse -h lists the flags"
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// printHelp writes -h: what dlsse is, how it is called, and every key by
// group, with its default (when it has one) and its environment variable.
func (c *cli) printHelp(w io.Writer) {
	fmt.Fprint(w, `dlsse: a Direct Line 3.0 gateway that streams a bot's activities to clients as Server-Sent Events.

Usage:
  dlsse [flags]                       serve until SIGINT or SIGTERM
  dlsse healthcheck [-url URL]        probe a running dlsse's /healthz: exit 0 when it answers 200, else 1
  dlsse -version                      print the version

`)
	for _, name := range []string{"config", "demo", "version"} {
		f := c.fs.Lookup(name)
		placeholder := ""
		if name == "config" {
			placeholder = " file"
		}
		writeFlagHelp(w, "-"+name+placeholder, f.Usage)
	}
	writeFlagHelp(w, "-h", "this help")
	fmt.Fprint(w, `
Settings: each is a key of the -config file, an environment variable
DLSSE_<KEY> and a flag -<key-with-dashes>. Flags win over the environment,
which wins over the file. Durations are written 15s, 500ms, 10m; lists are
comma-separated in the environment and in flags.
`)
	defaults := toMap(defaults())
	for _, g := range keyGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, d := range g.keys {
			k := keyByName[d.key]
			head := "-" + k.flagName()
			if k.kind != kindBool {
				head += " " + k.kind.name()
			}
			usage := d.usage + " ("
			if def := k.format(defaults[k.name]); def != "" && def != "false" {
				usage += "default " + def + "; "
			}
			writeFlagHelp(w, head, usage+k.envName()+")")
		}
	}
}

// writeFlagHelp writes one flag: its name on a line, its usage wrapped and
// indented below it.
func writeFlagHelp(w io.Writer, head, usage string) {
	fmt.Fprintf(w, "  %s\n", head)
	const indent, width = "      ", 80
	line := indent
	for _, word := range strings.Fields(usage) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	fmt.Fprintln(w, line)
}
