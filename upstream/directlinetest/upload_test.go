package directlinetest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
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

// TestUploadMultipartKeepsTheActivity: DirectLineJS's shape, an "activity"
// part plus file parts, becomes that activity (its channelData included,
// which is how Web Chat matches the echo to its send) with one attachment
// per file, from the userId of the query.
func TestUploadMultipartKeepsTheActivity(t *testing.T) {
	s := newTestServer(t)
	convID, tok, url := start(t, s)
	ws := dial(t, url)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ah := textproto.MIMEHeader{}
	ah.Set("Content-Disposition", `form-data; name="activity"`)
	ah.Set("Content-Type", "application/vnd.microsoft.activity")
	ap, _ := mw.CreatePart(ah)
	ap.Write([]byte(`{"type":"message","text":"two files","from":{"id":"spoofed"},"channelData":{"clientActivityID":"c-1"}}`))
	for _, f := range []struct{ name, ctype, data string }{{"a.png", "image/png", "PNGDATA"}, {"b.txt", "text/plain", "hello"}} {
		fh := textproto.MIMEHeader{}
		fh.Set("Content-Disposition", `form-data; name="file"; filename="`+f.name+`"`)
		fh.Set("Content-Type", f.ctype)
		fp, _ := mw.CreatePart(fh)
		fp.Write([]byte(f.data))
	}
	mw.Close()
	req, _ := http.NewRequestWithContext(testCtx(t), "POST", s.URL+basePath+"/conversations/"+convID+"/upload?userId=user1", &body)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	r := do(t, s, req)
	mustStatus(t, "multipart upload", r, http.StatusOK, "")

	a := readSet(t, ws).Activities[0]
	if a["text"] != "two files" || field(a, "from", "id") != "user1" || field(a, "channelData", "clientActivityID") != "c-1" {
		t.Fatalf("activity %v", a)
	}
	att, _ := a["attachments"].([]any)
	if len(att) != 2 || att[0].(map[string]any)["name"] != "a.png" || att[0].(map[string]any)["contentType"] != "image/png" ||
		att[1].(map[string]any)["name"] != "b.txt" {
		t.Fatalf("attachments %v", att)
	}
	if st := s.Stats(); st.Uploads != 1 || st.UploadBytes != int64(len("PNGDATA")+len("hello")) {
		t.Errorf("stats %+v", st)
	}

	// An activity part that is not JSON is refused, and nothing is stored.
	stored := len(s.History(convID)) // the upload and the bot's echo of its text
	body.Reset()
	mw = multipart.NewWriter(&body)
	ap, _ = mw.CreateFormField("activity")
	ap.Write([]byte("not json"))
	mw.Close()
	req, _ = http.NewRequestWithContext(testCtx(t), "POST", s.URL+basePath+"/conversations/"+convID+"/upload?userId=user1", &body)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	mustStatus(t, "bad activity part", do(t, s, req), http.StatusBadRequest, "BadArgument")
	if n := len(s.History(convID)); n != stored {
		t.Errorf("history has %d activities, want %d", n, stored)
	}
}
