// Package squidtest runs a real squid for tests: an HTTP proxy on a free
// loopback port that forwards and tunnels (CONNECT) from loopback to
// loopback, as an egress proxy would. Tests that need one skip without
// squid, unless REQUIRE_TEST_SERVERS is set (as scripts/test does, after
// installing it), where they fail.
package squidtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proxy is a squid process.
type Proxy struct {
	URL *url.URL // http://127.0.0.1:port
	dir string
}

// Options shape the proxy.
type Options struct {
	DenyConnect bool // refuse every tunnel (403), as a proxy that blocks them does
}

// Start starts squid; it stops when the test ends.
func Start(t testing.TB, opts Options) *Proxy {
	t.Helper()
	bin := "/usr/sbin/squid"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("squid"); err != nil {
			if os.Getenv("REQUIRE_TEST_SERVERS") != "" {
				t.Fatalf("squid is required (REQUIRE_TEST_SERVERS is set): %v", err)
			}
			t.Skip("squid not installed (apt-get install squid; ./scripts/test installs it)")
		}
	}
	// squid's workers run as user proxy: a t.TempDir (0700) would shut
	// them out of their own logs.
	dir, err := os.MkdirTemp("", "squidtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// The port is free when chosen, not when squid binds it: another
	// process may take it in between, and squid then exits. Try again.
	var failures []string
	for range 3 {
		p, why := start(t, bin, dir, opts)
		if p != nil {
			return p
		}
		failures = append(failures, why)
	}
	t.Fatalf("squid did not start:\n%s", strings.Join(failures, "\n"))
	return nil
}

// start runs squid on a free port; nil and why when it did not come up.
func start(t testing.TB, bin, dir string, opts Options) (*Proxy, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := []string{
		fmt.Sprintf("http_port 127.0.0.1:%d", port),
		"pid_filename " + filepath.Join(dir, "squid.pid"),
		"access_log stdio:" + filepath.Join(dir, "access.log") + " squid",
		"cache_log " + filepath.Join(dir, "cache.log"),
		"coredump_dir " + dir,
		"cache deny all",
		"pinger_enable off", // its helper would outlive a killed squid
		"shutdown_lifetime 0 seconds",
		"acl lo_src src 127.0.0.1/32",
		"acl lo_dst dst 127.0.0.1/32",
		"acl CONNECT method CONNECT",
	}
	if opts.DenyConnect {
		conf = append(conf, "http_access deny CONNECT")
	}
	conf = append(conf, "http_access allow lo_src lo_dst", "http_access deny all", "")
	confPath := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// A service name of its own: squids running at once would otherwise
	// share their shared-memory segments.
	cmd := exec.Command(bin, "-N", "-n", fmt.Sprintf("squidtest%d", port), "-f", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		// SIGTERM lets squid remove its shared memory; shutdown_lifetime 0
		// makes it quick.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	p := &Proxy{URL: &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}, dir: dir}
	deadline := time.Now().Add(20 * time.Second)
	for !p.answers() {
		if time.Now().After(deadline) {
			stop()
			return nil, "no answer on " + p.URL.Host + "; its log:\n" + p.read("cache.log")
		}
		select {
		case <-done:
			return nil, "exited; its log:\n" + p.read("cache.log")
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Cleanup(stop)
	return p, ""
}

// answers reports whether squid answers an HTTP request (its own error
// page for a request it refuses will do).
func (p *Proxy) answers() bool {
	c, err := net.DialTimeout("tcp", p.URL.Host, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")); err != nil {
		return false
	}
	b := make([]byte, 8)
	n, _ := c.Read(b)
	return strings.HasPrefix(string(b[:n]), "HTTP/1.")
}

// AccessLog is what squid logged of the requests so far (one line each;
// squid may write a line a moment after the request ends).
func (p *Proxy) AccessLog() string { return p.read("access.log") }

func (p *Proxy) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, name))
	return string(b)
}
