package main

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// startDemoUpstream starts the in-repo Direct Line fake with its echo bot.
// It is the only place production code touches directlinetest.
func startDemoUpstream() *directlinetest.Server {
	return directlinetest.NewServer()
}

// demoConfig sets what -demo needs on top of the configuration: the demo
// page at /, and token-server mode with the fake's secret so that page can
// get a token (POST tokens/generate without Authorization).
func demoConfig(cfg *Config, secret string) {
	cfg.DemoPages = true
	cfg.DirectLineSecret = secret // the fake's made-up secret, nothing real
	if len(cfg.TokenOrigins) == 0 {
		// Any origin may get a token: the page's own origin is not known
		// here (localhost, 127.0.0.1, a LAN name, a tunnel...), and
		// allowed_origins (CORS) is about other origins. Acceptable
		// only because the secret is the in-process fake's and the bot an
		// echo; never run a real secret with token_origins "*".
		cfg.TokenOrigins = []string{"*"}
	}
}

// isLoopback reports whether a listen address is reachable from this
// machine only.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// printDemoHelp prints ready-to-paste commands for the demo.
func printDemoHelp(w io.Writer, cfg Config, secret string) {
	base := cfg.PublicURL
	if base == "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			host, port = "", "8080"
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	base = strings.TrimRight(base, "/")
	reach := "Listening on " + cfg.Listen + ": this machine only (-listen :8080 opens it to the\nnetwork, and its token-server mode with it)."
	if !isLoopback(cfg.Listen) {
		reach = "Listening on " + cfg.Listen + ": reachable from the network, token-server mode included."
	}
	fmt.Fprintf(w, `
dlsse demo: a Direct Line fake with an echo bot runs inside this process.
%[3]s

In a browser: open %[1]s/ (a plain chat page over the SSE stream),
or %[1]s/webchat (Bot Framework Web Chat over the same stream; needs
./scripts/fetch-webchat once).

Or paste this into another terminal:

  # start a conversation: 201 Created, and a streamUrl that points at dlsse
  CONV_JSON=$(curl -s -X POST %[1]s/v3/directline/conversations -H 'Authorization: Bearer %[2]s')
  echo "$CONV_JSON"
  CONV=$(echo "$CONV_JSON" | sed -E 's/.*"conversationId":"([^"]+)".*/\1/')
  STREAM=$(echo "$CONV_JSON" | sed -E 's/.*"streamUrl":"([^"]+)".*/\1/')

  # watch the stream (Server-Sent Events) in the background
  curl -N "$STREAM" &

  # say hello: the stream prints your message, a typing event, then "echo: hello"
  curl -s -X POST %[1]s/v3/directline/conversations/$CONV/activities \
    -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"type":"message","from":{"id":"user1"},"text":"hello"}'

  kill %%1   # stop watching

`, base, secret, reach)
}
