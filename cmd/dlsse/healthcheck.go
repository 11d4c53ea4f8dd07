package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheck is `dlsse healthcheck`: it asks a running dlsse's /healthz and
// succeeds only on a 200 within the timeout. It is the container's health
// check: distroless images have no shell or curl, but they have dlsse.
func healthcheck(ctx context.Context, args []string, environ map[string]string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dlsse healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	url := fs.String("url", defaultHealthURL(environ), "the URL to probe (default: /healthz on 127.0.0.1 and the port of DLSSE_LISTEN, or 8080)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long the probe may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: dlsse healthcheck [-url URL] [-timeout DURATION]\n\nProbes a running dlsse: exit 0 when URL answers 200 within the timeout, else 1.\n\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("healthcheck: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q (flags: -url, -timeout)", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{
		// Straight to dlsse: no proxy from the environment, no kept
		// connection, and a redirect is an answer, not a 200.
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s", *url, resp.Status)
	}
	fmt.Fprintf(stdout, "GET %s: %s\n", *url, resp.Status)
	return nil
}

// defaultHealthURL is /healthz on this machine at the port dlsse listens
// on: DLSSE_LISTEN's when set (its host too, unless it is every
// interface), else the default listen's.
func defaultHealthURL(environ map[string]string) string {
	listen := defaults().Listen
	if v := environ[keyByName["listen"].envName()]; v != "" {
		listen = v
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}
