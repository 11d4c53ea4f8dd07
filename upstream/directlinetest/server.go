package directlinetest

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// basePath is the prefix of every Direct Line 3.0 route.
const basePath = "/v3/directline"

// Server is a fake Direct Line 3.0 service listening on 127.0.0.1. Create it
// with NewServer and always Close it. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of the server, http://127.0.0.1:PORT, without a
	// trailing slash. The Direct Line endpoint is URL + "/v3/directline".
	URL string

	cfg     config
	ts      *httptest.Server
	wsBase  string        // ws://127.0.0.1:PORT, the origin of stream URLs
	closing chan struct{} // closed by Close; aborts latency waits
	once    sync.Once

	// wg counts the goroutines the Server owns beyond httptest's request
	// handlers: stream handlers (whose connections httptest forgets once
	// hijacked) and socket writers. A stream handler's Add happens under
	// mu while !closed, and its writer's Add while that count is held, so
	// no Add can race with Close's Wait.
	wg sync.WaitGroup

	// mu guards the whole fake's state: conversations, credentials and
	// fault plans. It is never held while waiting on the network or a bot.
	mu         sync.Mutex
	closed     bool
	convs      map[string]*conversation
	tokens     map[string]*token
	tickets    map[string]ticket
	live       map[*socket]struct{} // every socket whose handler still runs
	attachSeq  int
	latency    time.Duration
	fail       failure // pending REST failures
	dialFailN  int
	dialStatus int

	// ticketPruneAt is the size of tickets at which the next issue
	// prunes expired ones; guarded by mu.
	ticketPruneAt int

	// Test hooks, also guarded by mu: called when a REST call starts
	// waiting out its latency, and when it gives up because its client
	// went away.
	testHookLatency, testHookLatencyAbort func()

	// load is the bot load the control API started last (nil: none).
	// loadMu serialises the control API's load calls; it is taken before
	// mu, never inside it. Every Load's goroutine is counted in wg.
	loadMu sync.Mutex
	load   *Load

	statsMu   sync.Mutex
	stats     Stats
	statsWake chan struct{} // closed and replaced on every counter change
}

// NewServer starts a Server on 127.0.0.1:0 configured by opts.
func NewServer(opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{
		cfg:       cfg,
		closing:   make(chan struct{}),
		convs:     make(map[string]*conversation),
		tokens:    make(map[string]*token),
		tickets:   make(map[string]ticket),
		live:      make(map[*socket]struct{}),
		statsWake: make(chan struct{}),
	}
	// The URLs are known before the first request can arrive, because
	// handlers read them.
	s.ts = httptest.NewUnstartedServer(s.routes())
	if cfg.listener != nil {
		s.ts.Listener.Close()
		s.ts.Listener = cfg.listener
	}
	addr := s.ts.Listener.Addr().String()
	s.URL = "http://" + addr
	s.wsBase = "ws://" + addr
	s.ts.Start()
	return s
}

// routes builds the Direct Line route table. Every route except the stream
// goes through rest(), which applies latency and injected failures.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+basePath+"/tokens/generate", s.rest(s.handleGenerate))
	mux.HandleFunc("POST "+basePath+"/tokens/refresh", s.rest(s.handleRefresh))
	mux.HandleFunc("POST "+basePath+"/conversations", s.rest(s.handleStart))
	mux.HandleFunc("GET "+basePath+"/conversations/{id}", s.rest(s.handleReconnect))
	mux.HandleFunc("POST "+basePath+"/conversations/{id}/activities", s.rest(s.handlePostActivity))
	mux.HandleFunc("GET "+basePath+"/conversations/{id}/activities", s.rest(s.handleGetActivities))
	mux.HandleFunc("POST "+basePath+"/conversations/{id}/upload", s.rest(s.handleUpload))
	mux.HandleFunc("GET "+basePath+"/conversations/{id}/stream", s.handleStream)
	return mux
}

// rest wraps a REST handler with the fault hooks: first the configured
// latency (waited for without holding any lock, abandoned when the client
// goes away or the server closes), then any pending injected failure, which
// answers instead of the handler.
func (s *Server) rest(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		d, onWait, onAbort := s.latency, s.testHookLatency, s.testHookLatencyAbort
		s.mu.Unlock()
		if d > 0 {
			if onWait != nil {
				onWait()
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				if onAbort != nil {
					onAbort()
				}
				return
			case <-s.closing:
				t.Stop()
				writeError(w, http.StatusServiceUnavailable, codeServiceError, "server closing")
				return
			}
		}
		if f, ok := s.takeFailure(); ok {
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			writeError(w, f.status, f.code, "injected failure")
			return
		}
		h(w, r)
	}
}

// Secret returns the Direct Line secret the Server accepts.
func (s *Server) Secret() string { return s.cfg.secret }

// Client returns an HTTP client configured for the Server whose idle
// connections are closed by Close, so tests using it leak no goroutines.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Close closes every socket abruptly, shuts the HTTP server down, and waits
// for every request handler and every goroutine the Server started. It is
// safe to call more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.closing)
		socks := make([]*socket, 0, len(s.live))
		for k := range s.live {
			socks = append(socks, k)
		}
		s.mu.Unlock()
		// Closing the connections ends every socket's read loop; the
		// handlers then stop their writers and return.
		for _, k := range socks {
			k.abort()
		}
		s.ts.Close()
		s.wg.Wait()
		s.cfg.logf("directlinetest: closed")
	})
}

// newID returns a random identifier safe to use in URLs and paths.
func newID() string { return rand.Text() }

// now is the single clock of the package, in UTC as Direct Line reports it.
func now() time.Time { return time.Now().UTC() }
