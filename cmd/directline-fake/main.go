// Command directline-fake runs the in-repo Direct Line 3.0 fake
// (upstream/directlinetest) as its own process, with its echo bot and its
// fault hooks exposed as a JSON control API on a second listener. Browser
// end-to-end tests and the load benchmark use it so that dlsse is measured
// and restarted as a separate process; developers can point a dlsse at it
// with -upstream_url.
//
// On start it prints one JSON line to stdout, then serves until SIGINT or
// SIGTERM:
//
//	{"url":"http://127.0.0.1:PORT","control":"http://127.0.0.1:PORT","secret":"…"}
//
// The secret is the fake's made-up one (directlinetest.DefaultSecret unless
// -secret says otherwise); it opens nothing real.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dlsse/dlsse/upstream/directlinetest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "directline-fake:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. It is main without the process globals, so
// tests can run it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("directline-fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address of the Direct Line API and streams")
	control := fs.String("control", "127.0.0.1:0", "address of the control API (never expose it: it needs no credential)")
	secret := fs.String("secret", directlinetest.DefaultSecret, "the Direct Line secret the fake accepts")
	tokenTTL := fs.Duration("token-ttl", 30*time.Minute, "lifetime of issued tokens")
	keepalive := fs.Duration("keepalive", 10*time.Second, "interval of empty keepalive messages on sockets (0 disables)")
	window := fs.Duration("stream-window", 60*time.Second, "how long a streamUrl can be dialled")
	verbose := fs.Bool("v", false, "log every call to stderr (never tokens or the secret)")
	greet := fs.String("greet", "", "the bot greets every conversation it starts with this text (default: no greeting)")
	replayExtra := fs.Int("replay-extra", 0, "a reconnect's stream replays this many activities from before its watermark too (a Direct Line quirk)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	dl, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	cl, err := net.Listen("tcp", *control)
	if err != nil {
		dl.Close()
		return err
	}
	opts := []directlinetest.Option{
		directlinetest.WithListener(dl),
		directlinetest.WithSecret(*secret),
		directlinetest.WithTokenTTL(*tokenTTL),
		directlinetest.WithKeepalive(*keepalive),
		directlinetest.WithStreamURLWindow(*window),
		directlinetest.WithReplayExtra(*replayExtra),
	}
	if *greet != "" {
		opts = append(opts, directlinetest.WithBot(directlinetest.GreeterBot{Greeting: *greet}))
	}
	if *verbose {
		opts = append(opts, directlinetest.WithLogf(func(format string, a ...any) {
			fmt.Fprintf(stderr, format+"\n", a...)
		}))
	}
	fake := directlinetest.NewServer(opts...)
	defer fake.Close()

	srv := &http.Server{Handler: fake.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(cl) }()

	hello, _ := json.Marshal(map[string]string{
		"url":     fake.URL,
		"control": "http://" + cl.Addr().String(),
		"secret":  *secret,
	})
	fmt.Fprintf(stdout, "%s\n", hello)

	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shut)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
