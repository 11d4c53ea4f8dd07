package directlinetest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// uploadChunk is the read size of uploads; each chunk read is counted at
// once so tests can watch an upload progress with WaitFor.
const uploadChunk = 32 << 10

// handleUpload implements POST /conversations/{id}/upload?userId=U. The body
// is read as a stream, without needing a Content-Length, counted and
// discarded. The resulting activity is a message from U with one attachment
// describing the upload; it is delivered like a posted activity.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	_, id, ok := s.authorizeConv(w, r)
	if !ok {
		return
	}
	user := r.URL.Query().Get("userId")
	if user == "" {
		writeError(w, http.StatusBadRequest, codeBadArgument, "missing userId")
		return
	}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	buf := make([]byte, uploadChunk)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			s.bump(func(st *Stats) { st.UploadBytes += int64(n) })
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// Usually the client went away; an answer may not arrive,
			// but nothing is stored for an incomplete upload.
			writeError(w, http.StatusBadRequest, codeBadArgument, "reading upload: "+err.Error())
			return
		}
	}
	s.mu.Lock()
	s.attachSeq++
	n := s.attachSeq
	s.mu.Unlock()
	act := map[string]any{
		"type": "message",
		"from": map[string]any{"id": user},
		"attachments": []any{map[string]any{
			"contentType": contentType,
			"name":        "upload",
			"contentUrl":  fmt.Sprintf("%s/attachments/%d", s.URL, n),
		}},
	}
	stamped, ok := s.deliverFromUser(w, id, act)
	if !ok {
		return
	}
	s.bump(func(st *Stats) { st.Uploads++ })
	writeJSON(w, http.StatusOK, idResponse{ID: stamped["id"].(string)})
}
