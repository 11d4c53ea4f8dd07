package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// TestResourceWarnerLogsOncePerBurst: a burst of EMFILE is one warning;
// the next warning, an interval later, says how many went unlogged.
func TestResourceWarnerLogsOncePerBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // fake time: the sleeps below move the clock
		var buf bytes.Buffer
		w := newResourceWarner(zerolog.New(&buf))
		for range 1000 {
			w.note("dial", syscall.EMFILE)
		}
		time.Sleep(resourceLogEvery - time.Millisecond)
		w.note("reconnect", syscall.EMFILE)
		time.Sleep(time.Millisecond)
		w.note("reconnect", syscall.ENFILE)
		checkResourceWarnings(t, buf.String())
	})
}

func checkResourceWarnings(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), out)
	}
	var first, second struct {
		Level, Operation, Error string
		Unlogged                int `json:"unlogged_since_last"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first.Level != "warn" || first.Operation != "dial" || first.Error != syscall.EMFILE.Error() || first.Unlogged != 0 {
		t.Errorf("first line %+v", first)
	}
	if second.Operation != "reconnect" || second.Error != syscall.ENFILE.Error() || second.Unlogged != 1000 {
		t.Errorf("second line %+v, want reconnect, %q, 1000 unlogged", second, syscall.ENFILE.Error())
	}
}
