package directlinetest

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
)

// uploadChunk is the read size of uploads; each chunk read is counted at
// once so tests can watch an upload progress with WaitFor.
const uploadChunk = 32 << 10

// handleUpload implements POST /conversations/{id}/upload?userId=U. The body
// is read as a stream, without needing a Content-Length, counted and
// discarded. As with Direct Line, a multipart/form-data body may carry an
// "activity" part (the message, JSON) and any number of file parts, each of
// which becomes an attachment of that message; any other body is one file.
// The resulting message, from U, is delivered like a posted activity.
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
	act := map[string]any{"type": "message"}
	var files []any
	var err error
	if mr, merr := r.MultipartReader(); merr == nil {
		act, files, err = s.readMultipartUpload(mr)
	} else {
		contentType := r.Header.Get("Content-Type")
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		err = s.countUpload(r.Body)
		files = []any{s.attachment(contentType, "upload")}
	}
	if err != nil {
		// Usually the client went away; an answer may not arrive, but
		// nothing is stored for an incomplete upload.
		writeError(w, http.StatusBadRequest, codeBadArgument, "reading upload: "+err.Error())
		return
	}
	act["from"] = map[string]any{"id": user}
	act["attachments"] = files
	stamped, ok := s.deliverFromUser(w, id, act)
	if !ok {
		return
	}
	s.bump(func(st *Stats) { st.Uploads++ })
	writeJSON(w, http.StatusOK, idResponse{ID: stamped["id"].(string)})
}

// readMultipartUpload reads DirectLineJS's upload shape: the "activity"
// part is the message; every other part is a file.
func (s *Server) readMultipartUpload(mr *multipart.Reader) (act map[string]any, files []any, err error) {
	act = map[string]any{"type": "message"}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return act, files, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if part.FormName() == "activity" {
			raw, err := io.ReadAll(io.LimitReader(part, maxJSONBody+1))
			if err != nil {
				return nil, nil, err
			}
			a, err := decodeActivity(raw)
			if err != nil || len(raw) > maxJSONBody {
				return nil, nil, fmt.Errorf("the activity part is not a JSON activity")
			}
			act = a
			continue
		}
		if err := s.countUpload(part); err != nil {
			return nil, nil, err
		}
		contentType := part.Header.Get("Content-Type")
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		name := part.FileName()
		if name == "" {
			name = "upload"
		}
		files = append(files, s.attachment(contentType, name))
	}
}

// countUpload reads r to the end in chunks, counting each as it arrives.
func (s *Server) countUpload(r io.Reader) error {
	buf := make([]byte, uploadChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.bump(func(st *Stats) { st.UploadBytes += int64(n) })
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// attachment describes a stored upload. Its contentUrl is not served.
func (s *Server) attachment(contentType, name string) map[string]any {
	s.mu.Lock()
	s.attachSeq++
	n := s.attachSeq
	s.mu.Unlock()
	return map[string]any{
		"contentType": contentType,
		"name":        name,
		"contentUrl":  fmt.Sprintf("%s/attachments/%d", s.URL, n),
	}
}
