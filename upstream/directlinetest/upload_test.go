package directlinetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestUploadStreamsChunkedBody(t *testing.T) {
	s := newTestServer(t)
	convID, tok, url := start(t, s)
	ws := dial(t, url)

	const (
		first = 1 << 20
		total = 6 << 20
	)
	pr, pw := io.Pipe()
	resume := make(chan struct{})
	go func() {
		chunk := bytes.Repeat([]byte{'u'}, 64<<10)
		for sent := 0; sent < total; sent += len(chunk) {
			if sent == first {
				<-resume // hold the rest back until the server saw the start
			}
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequestWithContext(testCtx(t), "POST", s.URL+basePath+"/conversations/"+convID+"/upload?userId=user1", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // unknown: the transport sends it chunked
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "image/png")

	type answer struct {
		resp *http.Response
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := s.Client().Do(req)
		done <- answer{resp, err}
	}()
	// The server counts bytes while the body is still being sent, which
	// proves it streams rather than waiting for the whole body.
	if err := s.WaitFor(testCtx(t), func(st Stats) bool { return st.UploadBytes >= first }); err != nil {
		close(resume)
		t.Fatal(err)
	}
	if st := s.Stats(); st.Uploads != 0 {
		t.Errorf("upload finished before its body: %+v", st)
	}
	close(resume)
	ans := <-done
	if ans.err != nil {
		t.Fatal(ans.err)
	}
	var up struct {
		ID string `json:"id"`
	}
	err = json.NewDecoder(ans.resp.Body).Decode(&up)
	ans.resp.Body.Close()
	if ans.resp.StatusCode != http.StatusOK || err != nil || up.ID == "" {
		t.Fatalf("upload: status %d, body error %v", ans.resp.StatusCode, err)
	}
	if st := s.Stats(); st.Uploads != 1 || st.UploadBytes != total {
		t.Errorf("stats %+v, want 1 upload of %d bytes", st, total)
	}

	h := s.History(convID)
	if len(h) != 1 || h[0]["id"] != up.ID {
		t.Fatalf("history %v", h)
	}
	a := h[0]
	att, _ := a["attachments"].([]any)
	if a["type"] != "message" || field(a, "from", "id") != "user1" || len(att) != 1 {
		t.Fatalf("upload activity %v", a)
	}
	m := att[0].(map[string]any)
	if m["contentType"] != "image/png" || m["name"] != "upload" || !strings.HasPrefix(m["contentUrl"].(string), s.URL+"/attachments/") {
		t.Errorf("attachment %v", m)
	}
	if st := readSet(t, ws); len(st.Activities) != 1 || st.Activities[0]["id"] != up.ID || st.wm() != "1" {
		t.Errorf("socket got %+v", st)
	}
}

func TestUploadRequiresUserID(t *testing.T) {
	s := newTestServer(t)
	convID, tok, _ := start(t, s)
	r := call(t, s, "POST", "/conversations/"+convID+"/upload", tok, "data")
	mustStatus(t, "upload without userId", r, http.StatusBadRequest, "BadArgument")
	if st := s.Stats(); st.Uploads != 0 || st.UploadBytes != 0 {
		t.Errorf("stats %+v", st)
	}
}
