package directlinetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// idResponse is the body answering a posted or uploaded activity.
type idResponse struct {
	ID string `json:"id"`
}

// handlePostActivity implements POST /conversations/{id}/activities. The
// activity is stored and echoed on the socket in its own set, then the bot
// runs synchronously and its replies are delivered, and only then does the
// client get its answer, as with the real service.
func (s *Server) handlePostActivity(w http.ResponseWriter, r *http.Request) {
	_, id, ok := s.authorizeConv(w, r)
	if !ok {
		return
	}
	act, code, msg := readActivity(w, r)
	if act == nil {
		writeError(w, http.StatusBadRequest, code, msg)
		return
	}
	stamped, ok := s.deliverFromUser(w, id, act)
	if !ok {
		return
	}
	s.bump(func(st *Stats) { st.Posts++ })
	writeJSON(w, http.StatusOK, idResponse{ID: stamped["id"].(string)})
}

// deliverFromUser stores and broadcasts a user activity, then runs the bot
// on it. It returns the stamped activity. On failure it has answered.
func (s *Server) deliverFromUser(w http.ResponseWriter, convID string, act map[string]any) (map[string]any, bool) {
	raws, err := s.deliver(convID, [][]map[string]any{{act}}, stampOptions{})
	if err != nil {
		// The activity was decoded from JSON, so only a vanished
		// conversation can fail here, and conversations never vanish.
		writeError(w, http.StatusInternalServerError, codeServiceError, err.Error())
		return nil, false
	}
	stamped, err := decodeActivity(raws[0])
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeServiceError, err.Error())
		return nil, false
	}
	// The bot gets its own copy so it cannot alter what the handler reads.
	forBot, _ := decodeActivity(raws[0])
	s.cfg.bot.OnActivity(&Conv{s: s, id: convID}, forBot)
	return stamped, true
}

// readActivity decodes a posted activity: a JSON object with a non-empty
// string "type". On failure it returns nil with the Direct Line error code
// and message to answer 400 with.
func readActivity(w http.ResponseWriter, r *http.Request) (act map[string]any, code, msg string) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return nil, codeBadArgument, "cannot read body: " + err.Error()
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, codeBadArgument, "malformed JSON: " + err.Error()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, codeBadArgument, "trailing data after the activity"
	}
	act, isObj := v.(map[string]any)
	if !isObj {
		return nil, codeBadArgument, "an activity must be a JSON object"
	}
	t, present := act["type"]
	if !present || t == nil {
		return nil, codeMissingProperty, "Invalid or missing activity type"
	}
	if ts, isStr := t.(string); !isStr || ts == "" {
		return nil, codeBadArgument, "activity type must be a non-empty string"
	}
	return act, "", ""
}

// handleGetActivities implements GET /conversations/{id}/activities, the
// polling API: the durable activities after the watermark (all of them
// without one) and the current watermark. Typing never appears here because
// it is never stored.
func (s *Server) handleGetActivities(w http.ResponseWriter, r *http.Request) {
	_, id, ok := s.authorizeConv(w, r)
	if !ok {
		return
	}
	wm, _, ok := parseWatermark(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.convs[id]
	acts := c.historyAfterLocked(wm)
	cur := len(c.history)
	s.mu.Unlock()
	if acts == nil {
		acts = []json.RawMessage{} // "activities":[] rather than null
	}
	s.bump(func(st *Stats) { st.ActivityGets++ })
	writeJSON(w, http.StatusOK, activitySet{Activities: acts, Watermark: strconv.Itoa(cur)})
}
