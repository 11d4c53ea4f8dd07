package directlinetest

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The control routes for load benchmarks: many conversations in one call,
// and one bot load at a time, owned by the Server.

// maxBulkConversations bounds one bulk create, like maxControlMessages.
const maxBulkConversations = 100_000

func (s *Server) controlBulkConversations(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count int `json:"count"`
	}
	if !controlDecode(w, r, &req) {
		return
	}
	if req.Count < 1 || req.Count > maxBulkConversations {
		writeError(w, http.StatusBadRequest, codeBadArgument, fmt.Sprintf("count must be 1 to %d", maxBulkConversations))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": s.NewConversations(req.Count)})
}

func (s *Server) controlStartLoad(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Conversations []string `json:"conversations"`
		Interval      string   `json:"interval"`
		Rounds        int      `json:"rounds"`
		Prefix        string   `json:"prefix"`
	}
	if !controlDecode(w, r, &req) {
		return
	}
	var interval time.Duration
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeBadArgument, "interval: "+err.Error())
			return
		}
		interval = d
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.load != nil && s.load.Status().Running {
		writeError(w, http.StatusConflict, codeBadArgument, "a load is running: stop it first")
		return
	}
	l, err := s.StartLoad(LoadConfig{Conversations: req.Conversations, Interval: interval, Rounds: req.Rounds, Prefix: req.Prefix})
	switch {
	case errors.Is(err, ErrServerClosed):
		writeError(w, http.StatusServiceUnavailable, codeServiceError, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, codeBadArgument, err.Error())
		return
	}
	s.load = l
	writeJSON(w, http.StatusOK, l.Status())
}

// currentLoad returns the load the control API started last, or answers
// 404 itself.
func (s *Server) currentLoad(w http.ResponseWriter) *Load {
	s.loadMu.Lock()
	l := s.load
	s.loadMu.Unlock()
	if l == nil {
		writeError(w, http.StatusNotFound, codeBadArgument, "no load was started")
	}
	return l
}

// controlLoadStatus answers the last load's status; with wait=true, once
// the load has ended (or the caller gave up, or the Server is closing).
func (s *Server) controlLoadStatus(w http.ResponseWriter, r *http.Request) {
	l := s.currentLoad(w)
	if l == nil {
		return
	}
	if r.URL.Query().Get("wait") == "true" {
		select {
		case <-l.Done():
		case <-r.Context().Done():
			return
		case <-s.closing:
		}
	}
	writeJSON(w, http.StatusOK, l.Status())
}

func (s *Server) controlStopLoad(w http.ResponseWriter, r *http.Request) {
	if l := s.currentLoad(w); l != nil {
		writeJSON(w, http.StatusOK, l.Stop())
	}
}
