package directlinetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stampOf reads the benchmark stamp of a decoded activity.
func stampOf(t *testing.T, a map[string]any) (sentAt int64, seq int) {
	t.Helper()
	cd, _ := a["channelData"].(map[string]any)
	sa, err1 := strconv.ParseInt(fmt.Sprint(cd["sentAt"]), 10, 64)
	sq, err2 := strconv.Atoi(fmt.Sprint(cd["seq"]))
	if err1 != nil || err2 != nil {
		t.Fatalf("activity %v has no stamp", a)
	}
	return sa, sq
}

func TestPushStampedCarriesSendTimeAndPosition(t *testing.T) {
	s := newTestServer(t)
	id, _ := s.NewConversation()
	if err := s.Push(id, "plain"); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixNano()
	if err := s.PushStamped(id, "a", "b"); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()

	h := s.History(id)
	if len(h) != 3 || h[0]["channelData"] != nil {
		t.Fatalf("history %v", h)
	}
	for i, a := range h[1:] {
		sentAt, seq := stampOf(t, a)
		if sentAt < before || sentAt > after {
			t.Errorf("sentAt %d outside [%d, %d]", sentAt, before, after)
		}
		if seq != i+1 || !strings.HasSuffix(a["id"].(string), fmt.Sprintf("|%07d", seq)) {
			t.Errorf("seq %d for activity %v (position %d)", seq, a["id"], i+1)
		}
	}
	// The stamp is findable without decoding, as documented.
	raw, _ := json.Marshal(h[2])
	if !bytes.Contains(raw, []byte(`"sentAt":`)) || !bytes.Contains(raw, []byte(`"seq":2`)) {
		t.Errorf("encoded activity %s", raw)
	}
	if err := s.PushStamped("nope", "x"); err == nil {
		t.Error("stamped push to an unknown conversation succeeded")
	}
}

func TestNewConversationsGivesWorkingTokens(t *testing.T) {
	s := newTestServer(t)
	convs := s.NewConversations(5)
	seen := map[string]bool{}
	for _, c := range convs {
		if seen[c.ConversationID] || c.Token == "" {
			t.Fatalf("duplicate or empty: %+v", convs)
		}
		seen[c.ConversationID] = true
		r := call(t, s, "GET", "/conversations/"+c.ConversationID, c.Token, nil)
		mustStatus(t, "reconnect with a bulk token", r, 200, "")
	}
	// A token opens its own conversation only.
	r := call(t, s, "GET", "/conversations/"+convs[0].ConversationID, convs[1].Token, nil)
	mustStatus(t, "another conversation's token", r, 403, "Forbidden")
}

func TestLoadSendsRoundsInOrder(t *testing.T) {
	s := newTestServer(t)
	convs := s.NewConversations(3)
	ids := []string{convs[0].ConversationID, convs[1].ConversationID, convs[2].ConversationID}
	// A socket on one of them sees its messages live, in order.
	r := call(t, s, "GET", "/conversations/"+ids[1], convs[1].Token, nil)
	c := dial(t, r.str("streamUrl"))

	for _, interval := range []time.Duration{0, 5 * time.Millisecond} {
		l, err := s.StartLoad(LoadConfig{Conversations: ids, Interval: interval, Rounds: 4, Prefix: "r"})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-l.Done():
		case <-testCtx(t).Done():
			t.Fatal("load did not end")
		}
		if st := l.Status(); st.Running || st.Sent != 12 || st.Errors != 0 || st.Conversations != 3 {
			t.Fatalf("interval %v: status %+v", interval, st)
		}
		if st := l.Stop(); st.Sent != 12 { // Stop after the end is harmless
			t.Fatalf("stop after end: %+v", st)
		}
	}
	for _, id := range ids {
		h := s.History(id)
		if got := strings.Join(texts(h), ","); got != "r1,r2,r3,r4,r1,r2,r3,r4" {
			t.Errorf("%s got %s", id, got)
		}
		for i, a := range h {
			if _, seq := stampOf(t, a); seq != i {
				t.Errorf("%s: activity %d has seq %d", id, i, seq)
			}
		}
	}
	var live []string
	for len(live) < 8 {
		live = append(live, texts(readSet(t, c).Activities)...)
	}
	if strings.Join(live, ",") != "r1,r2,r3,r4,r1,r2,r3,r4" {
		t.Errorf("socket got %v", live)
	}
}

func TestLoadEveryConversationAndErrors(t *testing.T) {
	s := newTestServer(t)
	if _, err := s.StartLoad(LoadConfig{Rounds: 1}); err != ErrNoConversations {
		t.Fatalf("load without conversations: %v", err)
	}
	if _, err := s.StartLoad(LoadConfig{Rounds: -1}); err == nil {
		t.Fatal("negative rounds accepted")
	}
	s.NewConversations(4)
	l, err := s.StartLoad(LoadConfig{Rounds: 2}) // every conversation, default prefix
	if err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if st := l.Status(); st.Sent != 8 || st.Conversations != 4 {
		t.Fatalf("status %+v", st)
	}
	// Unknown ids are counted, not fatal.
	l, err = s.StartLoad(LoadConfig{Conversations: []string{"nope"}, Rounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	if st := l.Stop(); st.Errors+st.Sent > 3 || st.Sent != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestLoadStopsOnStopAndOnClose(t *testing.T) {
	s := newTestServer(t)
	s.NewConversations(2)
	// Endless and slow: only Stop ends it.
	l, err := s.StartLoad(LoadConfig{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	st := l.Stop()
	if st.Running || st.Sent > 1 {
		t.Fatalf("after stop: %+v", st)
	}
	// Endless and fast: Close ends it (goleak checks the goroutine).
	l, err = s.StartLoad(LoadConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	<-l.Done()
	if _, err := s.StartLoad(LoadConfig{Rounds: 1}); err != ErrServerClosed {
		t.Fatalf("start after close: %v", err)
	}
}

func TestControlAPIBenchRoutes(t *testing.T) {
	s := newTestServer(t)
	ctl := httptest.NewServer(s.ControlHandler())
	defer ctl.Close()
	defer http.DefaultClient.CloseIdleConnections()

	var bulk struct{ Conversations []ConversationCredentials }
	if st := controlCall(t, ctl.URL, "POST", "/conversations/bulk", `{"count":3}`, &bulk); st != 200 || len(bulk.Conversations) != 3 {
		t.Fatalf("bulk: %d %+v", st, bulk)
	}
	for _, bad := range []string{`{"count":0}`, `{"count":100001}`, `{"count":`} {
		if st := controlCall(t, ctl.URL, "POST", "/conversations/bulk", bad, nil); st != 400 {
			t.Errorf("bulk %s: %d", bad, st)
		}
	}
	id := bulk.Conversations[0].ConversationID
	if st := controlCall(t, ctl.URL, "POST", "/conversations/"+id+"/messages", `{"texts":["a","b"],"set":true,"stamp":true}`, nil); st != 200 {
		t.Fatalf("stamped set: %d", st)
	}
	if h := s.History(id); len(h) != 2 {
		t.Fatalf("history %v", h)
	} else if _, seq := stampOf(t, h[1]); seq != 1 {
		t.Fatalf("seq %d", seq)
	}

	var st LoadStatus
	if code := controlCall(t, ctl.URL, "GET", "/load", "", nil); code != 404 {
		t.Fatalf("status before any load: %d", code)
	}
	if code := controlCall(t, ctl.URL, "POST", "/load/stop", "", nil); code != 404 {
		t.Fatalf("stop before any load: %d", code)
	}
	// An endless load holds the slot until it is stopped.
	if code := controlCall(t, ctl.URL, "POST", "/load", `{"interval":"1h"}`, &st); code != 200 || !st.Running || st.Conversations != 3 {
		t.Fatalf("start: %d %+v", code, st)
	}
	if code := controlCall(t, ctl.URL, "POST", "/load", `{"rounds":1}`, nil); code != 409 {
		t.Fatalf("second start: %d", code)
	}
	if code := controlCall(t, ctl.URL, "POST", "/load/stop", "", &st); code != 200 || st.Running {
		t.Fatalf("stop: %d %+v", code, st)
	}
	body := fmt.Sprintf(`{"conversations":[%q],"interval":"1ms","rounds":5,"prefix":"x"}`, id)
	if code := controlCall(t, ctl.URL, "POST", "/load", body, nil); code != 200 {
		t.Fatalf("start: %d", code)
	}
	if code := controlCall(t, ctl.URL, "GET", "/load?wait=true", "", &st); code != 200 || st.Running || st.Sent != 5 {
		t.Fatalf("wait: %d %+v", code, st)
	}
	if got := strings.Join(texts(s.History(id)), ","); !strings.HasSuffix(got, ",x1,x2,x3,x4,x5") {
		t.Fatalf("history texts %v", got)
	}
	for _, bad := range []string{`{"interval":"soon"}`, `{"rounds":-1}`, `{"conversations":[]`} {
		if code := controlCall(t, ctl.URL, "POST", "/load", bad, nil); code != 400 {
			t.Errorf("load %s: %d", bad, code)
		}
	}
}

// Stream URLs are pruned in amortised constant time: many issues keep the
// ticket map bounded by the live ones, and a fresh URL still works.
func TestTicketsPrunedAsTheyExpire(t *testing.T) {
	s := newTestServer(t, WithStreamURLWindow(time.Millisecond))
	id, tok := s.NewConversation()
	for range 500 {
		r := call(t, s, "GET", "/conversations/"+id, tok, nil)
		mustStatus(t, "reconnect", r, 200, "")
	}
	s.mu.Lock()
	n := len(s.tickets)
	s.mu.Unlock()
	if n > 2*minTicketPrune {
		t.Errorf("%d tickets kept after 500 issues with a 1 ms window", n)
	}
}
