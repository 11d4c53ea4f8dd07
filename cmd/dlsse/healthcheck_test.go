package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthcheck: `dlsse healthcheck` succeeds on a 200 only, and fails
// within its timeout on a server that does not answer.
func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(http.StatusOK)
		case "/draining":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		case "/stuck":
			<-r.Context().Done() // until the probe gives up
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
	}{
		{"200", []string{"-url", srv.URL + "/healthz"}, ""},
		{"503", []string{"-url", srv.URL + "/draining"}, "healthcheck: GET " + srv.URL + "/draining: 503 Service Unavailable"},
		{"a redirect is not healthy", []string{"-url", srv.URL + "/moved"}, "302 Found"},
		{"no answer in time", []string{"-url", srv.URL + "/stuck", "-timeout", "50ms"}, "context deadline exceeded"},
		{"nobody listening", []string{"-url", "http://" + freeAddr(t) + "/healthz"}, "connection refused"},
		{"a stray argument", []string{"now"}, `healthcheck: unexpected argument "now"`},
		{"a bad flag", []string{"-timeout", "3"}, "healthcheck: invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(context.Background(), append([]string{"healthcheck"}, tt.args...), nil, &stdout, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(stdout.String(), "200 OK") {
					t.Errorf("stdout %q does not say 200 OK", stdout.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestDefaultHealthURL: without -url the probe goes to this machine's
// /healthz at the port dlsse listens on.
func TestDefaultHealthURL(t *testing.T) {
	for listen, want := range map[string]string{
		"":               "http://127.0.0.1:8080/healthz",
		":9000":          "http://127.0.0.1:9000/healthz",
		"0.0.0.0:9001":   "http://127.0.0.1:9001/healthz",
		"[::]:9002":      "http://127.0.0.1:9002/healthz",
		"10.1.2.3:80":    "http://10.1.2.3:80/healthz",
		"[::1]:9003":     "http://[::1]:9003/healthz",
		"localhost:9004": "http://localhost:9004/healthz",
	} {
		env := map[string]string{}
		if listen != "" {
			env["DLSSE_LISTEN"] = listen
		}
		if got := defaultHealthURL(env); got != want {
			t.Errorf("DLSSE_LISTEN=%q: %s, want %s", listen, got, want)
		}
	}
}
