package directlinetest

import "context"

// Stats are the Server's counters. Call counters count HTTP calls that
// succeeded (answered 2xx); calls refused by authentication, validation or
// an injected failure are not counted, and neither are hooks such as
// NewConversation or Push.
type Stats struct {
	SocketsOpened   int64 // sockets ever attached to a conversation
	SocketsOpen     int64 // sockets currently attached (at most one per conversation)
	ReconnectCalls  int64 // GET /conversations/{id}
	StartCalls      int64 // POST /conversations, 201 or 200
	Posts           int64 // POST /conversations/{id}/activities, counted after the bot ran
	ActivityGets    int64 // GET /conversations/{id}/activities
	Uploads         int64 // POST /conversations/{id}/upload, counted after the bot ran
	UploadBytes     int64 // upload body bytes received, counted as they arrive
	Collisions      int64 // sockets closed because a newer one opened
	TokensGenerated int64 // POST /tokens/generate
	TokensRefreshed int64 // POST /tokens/refresh
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// WaitFor blocks until cond holds for the counters or ctx is done, in which
// case it returns ctx.Err(). cond is evaluated on a snapshot, without locks
// held, after every counter change; it must not block.
func (s *Server) WaitFor(ctx context.Context, cond func(Stats) bool) error {
	for {
		s.statsMu.Lock()
		st, wake := s.stats, s.statsWake
		s.statsMu.Unlock()
		if cond(st) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// bump applies f to the counters and wakes every WaitFor. statsMu is a leaf
// lock, so bump may be called with s.mu held.
func (s *Server) bump(f func(*Stats)) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	f(&s.stats)
	close(s.statsWake)
	s.statsWake = make(chan struct{})
}
