package directlinetest

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ControlHandler returns an HTTP handler exposing the Server's hooks as a
// small JSON API, for tests and benchmarks that run the fake in another
// process (cmd/directline-fake) and drive it from a script or a browser
// test. Serve it on its own listener: it needs no credential, so it must
// never share the Direct Line origin a client under test can reach.
//
// Routes (bodies and answers are JSON; errors are Direct Line-shaped):
//
//	POST /conversations                       create and start one: {"conversationId","token"}
//	POST /conversations/bulk                  {"count":N}: create and start N: {"conversations":[{"conversationId","token"},…]}
//	POST /conversations/{id}/messages         bot messages: {"texts":[…]} or {"count":N,"prefix":"p"}; "set":true sends one ActivitySet;
//	                                          "stamp":true stamps each for benchmarks (PushStamped)
//	POST /conversations/{id}/typing           a typing activity (live sockets only)
//	GET  /conversations/{id}/history          the durable activities, oldest first
//	POST /sockets/drop?conversation=ID        drop the socket (no conversation: every socket): {"sockets":N}
//	POST /sockets/stall?conversation=ID       stall it (half-open): {"sockets":N}
//	POST /sockets/close?conversation=ID&code=C&reason=R   close frame: {"sockets":0|1}
//	POST /tokens/expire                       expire every token issued so far
//	POST /failures                            {"n","status","code","retryAfter"}: FailNext
//	POST /dial-failures                       {"n","status"}: FailNextDials
//	POST /latency                             {"ms"}: SetLatency
//	GET  /stats                               the counters (Stats)
//	POST /load                                start a bot load (LoadConfig as {"conversations","interval":"10s","rounds","prefix"}): its LoadStatus; 409 while one runs
//	GET  /load?wait=true                      the last load's LoadStatus; with wait, once it has ended
//	POST /load/stop                           stop the last load: its final LoadStatus
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /conversations", func(w http.ResponseWriter, r *http.Request) {
		id, tok := s.NewConversation()
		writeJSON(w, http.StatusOK, map[string]string{"conversationId": id, "token": tok})
	})
	mux.HandleFunc("POST /conversations/{id}/messages", s.controlMessages)
	mux.HandleFunc("POST /conversations/{id}/typing", func(w http.ResponseWriter, r *http.Request) {
		controlResult(w, s.PushTyping(r.PathValue("id")), nil)
	})
	mux.HandleFunc("GET /conversations/{id}/history", func(w http.ResponseWriter, r *http.Request) {
		h := s.History(r.PathValue("id"))
		if h == nil {
			controlResult(w, errUnknownConversation, nil)
			return
		}
		writeJSON(w, http.StatusOK, h)
	})
	mux.HandleFunc("POST /sockets/drop", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"sockets": s.DropSockets(r.URL.Query().Get("conversation"))})
	})
	mux.HandleFunc("POST /sockets/stall", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"sockets": s.StallSockets(r.URL.Query().Get("conversation"))})
	})
	mux.HandleFunc("POST /sockets/close", s.controlCloseSocket)
	mux.HandleFunc("POST /tokens/expire", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /failures", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			N          int    `json:"n"`
			Status     int    `json:"status"`
			Code       string `json:"code"`
			RetryAfter string `json:"retryAfter"`
		}
		if controlDecode(w, r, &req) {
			s.FailNext(req.N, req.Status, req.Code, req.RetryAfter)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("POST /dial-failures", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			N      int `json:"n"`
			Status int `json:"status"`
		}
		if controlDecode(w, r, &req) {
			s.FailNextDials(req.N, req.Status)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("POST /latency", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Ms int `json:"ms"`
		}
		if controlDecode(w, r, &req) {
			s.SetLatency(time.Duration(req.Ms) * time.Millisecond)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST /conversations/bulk", s.controlBulkConversations)
	mux.HandleFunc("POST /load", s.controlStartLoad)
	mux.HandleFunc("GET /load", s.controlLoadStatus)
	mux.HandleFunc("POST /load/stop", s.controlStopLoad)
	return mux
}

// maxControlMessages bounds one messages call, so a typo cannot make the
// fake build millions of activities in memory.
const maxControlMessages = 100_000

// controlMessages makes the bot send text messages, given verbatim or
// generated as "prefix1" … "prefixN".
func (s *Server) controlMessages(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Texts  []string `json:"texts"`
		Count  int      `json:"count"`
		Prefix string   `json:"prefix"`
		Set    bool     `json:"set"`
		Stamp  bool     `json:"stamp"`
	}
	if !controlDecode(w, r, &req) {
		return
	}
	if req.Count < 0 || req.Count > maxControlMessages || len(req.Texts) > maxControlMessages {
		writeError(w, http.StatusBadRequest, codeBadArgument, fmt.Sprintf("at most %d messages per call", maxControlMessages))
		return
	}
	texts := req.Texts
	for i := 1; i <= req.Count; i++ {
		texts = append(texts, req.Prefix+strconv.Itoa(i))
	}
	err := s.pushTexts(r.PathValue("id"), texts, req.Set, req.Stamp)
	controlResult(w, err, map[string]int{"sent": len(texts)})
}

func (s *Server) controlCloseSocket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code, err := strconv.Atoi(q.Get("code"))
	if err != nil || code < 1000 || code > 4999 || len(q.Get("reason")) > 123 {
		writeError(w, http.StatusBadRequest, codeBadArgument, "code must be a close code (1000-4999) and reason at most 123 bytes")
		return
	}
	n := 0
	if s.CloseSocket(q.Get("conversation"), code, q.Get("reason")) {
		n = 1
	}
	writeJSON(w, http.StatusOK, map[string]int{"sockets": n})
}

// controlDecode reads a JSON body into v (an empty body leaves v as is) and
// answers 400 itself when it does not decode.
func controlDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := readOptionalJSON(w, r, v); err != nil {
		writeError(w, http.StatusBadRequest, codeBadArgument, err.Error())
		return false
	}
	return true
}

// controlResult answers 404 for an unknown conversation, 500 for any other
// error, and ok (or 204 when ok is nil) otherwise.
func controlResult(w http.ResponseWriter, err error, ok any) {
	switch {
	case errors.Is(err, errUnknownConversation):
		writeError(w, http.StatusNotFound, codeBadArgument, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, codeServiceError, err.Error())
	case ok == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, ok)
	}
}
