package main

import (
	"context"
	"path/filepath"
	"strconv"

	"github.com/dlsse/dlsse/internal/proc"
)

// The processes a scenario runs (internal/proc).
type (
	fakeProc  = proc.Fake
	dlsseProc = proc.Dlsse
)

// startDlsse runs dlsse against the fake with limits that never refuse a
// benchmark client (everything comes from a few loopback addresses), and
// waits until it answers /healthz. verify_rate is off too: the bench
// makes its conversations through the fake's control API, so no start
// answer through dlsse vouches for their tokens, as it would in service,
// and every stream would be a question to pace.
func startDlsse(ctx context.Context, bin, logDir, upstreamURL string, streamsPerConversation int, extra []string) (*dlsseProc, error) {
	return startDlsseLog(ctx, bin, filepath.Join(logDir, "dlsse.log"), upstreamURL, streamsPerConversation, extra)
}

// startDlsseLog is startDlsse with the log at logPath (several replicas in
// one directory).
func startDlsseLog(ctx context.Context, bin, logPath, upstreamURL string, streamsPerConversation int, extra []string) (*dlsseProc, error) {
	args := []string{
		"-log-level", "warn",
		"-max-streams", "10000000",
		"-max-streams-per-ip", "10000000",
		"-max-streams-per-conversation", strconv.Itoa(streamsPerConversation),
		"-requests-per-ip", "10000000",
		"-verify-rate", "0",
	}
	return proc.StartDlsse(ctx, bin, logPath, "", upstreamURL, append(args, extra...)...)
}
