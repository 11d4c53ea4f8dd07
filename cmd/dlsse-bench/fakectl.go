package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// ctl drives the fake's control API and reads its Direct Line API and
// dlsse's metrics: the bench's only plain HTTP client.
type ctl struct {
	http *http.Client
	fake *fakeProc
}

func newCtl(f *fakeProc) *ctl {
	// One transport of its own, closed by close, so nothing lingers.
	return &ctl{http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, fake: f}
}

func (c *ctl) close() { c.http.CloseIdleConnections() }

// call sends body (JSON-encoded unless nil) and decodes a 200 answer into
// out (when not nil).
func (c *ctl) call(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNoContent {
		return fmt.Errorf("%s %s: %d %s", method, req.URL.Path, res.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// conversations creates n conversations in the fake, in bulk calls.
func (c *ctl) conversations(ctx context.Context, n int) ([]directlinetest.ConversationCredentials, error) {
	const perCall = 10_000
	out := make([]directlinetest.ConversationCredentials, 0, n)
	for len(out) < n {
		var res struct {
			Conversations []directlinetest.ConversationCredentials `json:"conversations"`
		}
		if err := c.call(ctx, "POST", c.fake.Control+"/conversations/bulk", map[string]int{"count": min(perCall, n-len(out))}, &res); err != nil {
			return nil, err
		}
		out = append(out, res.Conversations...)
	}
	return out, nil
}

// loadRequest is the control API's POST /load body.
type loadRequest struct {
	Conversations []string `json:"conversations,omitempty"`
	Interval      string   `json:"interval,omitempty"`
	Rounds        int      `json:"rounds"`
	Prefix        string   `json:"prefix,omitempty"`
}

// load starts a bot load in the fake and returns at once.
func (c *ctl) load(ctx context.Context, req loadRequest) error {
	return c.call(ctx, "POST", c.fake.Control+"/load", req, nil)
}

// waitLoad blocks until the fake's load has ended and returns its status.
func (c *ctl) waitLoad(ctx context.Context) (directlinetest.LoadStatus, error) {
	var st directlinetest.LoadStatus
	err := c.call(ctx, "GET", c.fake.Control+"/load?wait=true", nil, &st)
	return st, err
}

// runLoad is load then waitLoad.
func (c *ctl) runLoad(ctx context.Context, req loadRequest) (directlinetest.LoadStatus, error) {
	if err := c.load(ctx, req); err != nil {
		return directlinetest.LoadStatus{}, err
	}
	return c.waitLoad(ctx)
}

func (c *ctl) stats(ctx context.Context) (directlinetest.Stats, error) {
	var st directlinetest.Stats
	err := c.call(ctx, "GET", c.fake.Control+"/stats", nil, &st)
	return st, err
}

// dropAll drops every upstream socket at once and returns how many.
func (c *ctl) dropAll(ctx context.Context) (int, error) {
	var res struct{ Sockets int }
	err := c.call(ctx, "POST", c.fake.Control+"/sockets/drop", nil, &res)
	return res.Sockets, err
}

// streamURL asks the fake's Direct Line API (reconnect) for a fresh
// streamUrl of a conversation, as any Direct Line client would.
func (c *ctl) streamURL(ctx context.Context, conv directlinetest.ConversationCredentials) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.fake.URL+"/v3/directline/conversations/"+conv.ConversationID, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+conv.Token)
	res, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var body struct {
		StreamURL string `json:"streamUrl"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK || body.StreamURL == "" {
		return "", fmt.Errorf("reconnect %s: status %d: %v", conv.ConversationID, res.StatusCode, err)
	}
	return body.StreamURL, nil
}

// metrics reads the Prometheus text exposition at url into name{labels}
// → value. It is how the bench sees inside dlsse without changing it:
// goroutines, heap and stack in use, and why streams ended.
func (c *ctl) metrics(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// statsSample is the fake's counters at one moment.
type statsSample struct {
	Asked time.Time // when the request left
	At    time.Time // when the answer came
	Stats directlinetest.Stats
}
