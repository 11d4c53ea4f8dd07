package main

// fdReserve is what dlsse needs besides its per-session sockets in steady
// state: listeners, the upstream REST pool (256 idle connections at most,
// plus calls in flight), epoll, stdio, files.
const fdReserve = 400

// stormReserve is the same during a reconnect storm, measured: with
// thousands of reconnect calls in flight, dlsse's HTTP/1.1 transport to
// the fake dials a connection for nearly each (a real Direct Line speaks
// HTTP/2, one connection), and holds up to ~3,000 more descriptors than
// its steady state for a few seconds.
const stormReserve = 4000

// maxSessions is how many single-subscriber sessions fit in limit file
// descriptors, keeping reserve spare: dlsse holds two sockets per session.
func maxSessions(limit uint64, reserve int) int {
	if limit <= uint64(2+2*reserve) {
		return 1
	}
	return int(limit-uint64(reserve)) / 2
}
