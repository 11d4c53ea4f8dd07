package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/dlsse/dlsse/internal/proc"
)

// redisProc is a redis-server the cluster scenario runs as its own
// process, as internal/redistest runs one for tests (no persistence, on a
// free loopback port), with a client of the bench's own that reads what
// Redis says about itself: INFO (memory, command counts, network bytes),
// MEMORY USAGE of sample keys, PUBSUB NUMSUB.
type redisProc struct {
	*proc.Child
	Addr   string
	URL    string
	client rueidis.Client
}

// findRedis is the redis-server to run: path when set, else the one on
// PATH.
func findRedis(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("the cluster scenario runs redis-server (apt-get install redis-server, or -redis-server PATH): %w", err)
	}
	return bin, nil
}

// startRedis runs redis-server and waits until it answers.
func startRedis(ctx context.Context, bin, logDir string) (*redisProc, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	c, err := proc.Start("redis-server", bin, []string{"--port", port, "--bind", host,
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"},
		filepath.Join(logDir, "redis.log"), nil)
	if err != nil {
		return nil, err
	}
	r := &redisProc{Child: c, Addr: addr, URL: "redis://" + addr + "/0"}
	// A process start has no event to wait on: try to connect until it
	// answers, it exits, or 20 s pass.
	deadline := time.Now().Add(20 * time.Second)
	for {
		cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, DisableRetry: true})
		if err == nil {
			if err = cl.Do(ctx, cl.B().Ping().Build()).Error(); err == nil {
				r.client = cl
				return r, nil
			}
			cl.Close()
		}
		select {
		case <-c.Exited:
			return nil, fmt.Errorf("redis-server exited at start: %v (log: %s)", c.Err, c.Log.Name())
		case <-ctx.Done():
			c.Stop(time.Second)
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop(time.Second)
			return nil, fmt.Errorf("redis-server on %s did not answer: %v", addr, err)
		}
	}
}

// stop closes the client and ends the server.
func (r *redisProc) stop() error {
	if r.client != nil {
		r.client.Close()
	}
	return r.Stop(5 * time.Second)
}

// info reads INFO section into key → value.
func (r *redisProc) info(ctx context.Context, section string) (map[string]string, error) {
	s, err := r.client.Do(ctx, r.client.B().Info().Section(section).Build()).ToString()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out, nil
}

// redisSnapshot is what Redis says about itself at one moment.
type redisSnapshot struct {
	UsedMemory int64            // used_memory: what its allocator holds for data, buffers, scripts
	Commands   map[string]int64 // calls per command (INFO commandstats), scripts' own commands included
	Processed  int64            // total_commands_processed (scripts' own commands included)
	NetIn      int64            // total_net_input_bytes
	NetOut     int64            // total_net_output_bytes
	Clients    int64            // connected_clients
	PubsubChan int64            // pubsub_channels
}

func (r *redisProc) snapshot(ctx context.Context) (redisSnapshot, error) {
	var s redisSnapshot
	all, err := r.info(ctx, "everything")
	if err != nil {
		return s, err
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(all[k], 10, 64); return n }
	s.UsedMemory, s.Processed = num("used_memory"), num("total_commands_processed")
	s.NetIn, s.NetOut = num("total_net_input_bytes"), num("total_net_output_bytes")
	s.Clients, s.PubsubChan = num("connected_clients"), num("pubsub_channels")
	s.Commands = map[string]int64{}
	for k, v := range all {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		if n, err := strconv.ParseInt(calls, 10, 64); err == nil {
			s.Commands[name] = n
		}
	}
	return s, nil
}

// memoryUsage is MEMORY USAGE key SAMPLES 0 (every element counted), 0
// for a key that does not exist.
func (r *redisProc) memoryUsage(ctx context.Context, key string) (int64, error) {
	n, err := r.client.Do(ctx, r.client.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	return n, err
}

// streamEntries is a stream's length and the mean size of its entries'
// values (the encoded journal records).
func (r *redisProc) streamEntries(ctx context.Context, key string) (n int64, meanBytes float64, err error) {
	n, err = r.client.Do(ctx, r.client.B().Xlen().Key(key).Build()).AsInt64()
	if err != nil {
		return 0, 0, err
	}
	entries, err := r.client.Do(ctx, r.client.B().Xrange().Key(key).Start("-").End("+").Count(100).Build()).AsXRange()
	if err != nil {
		return 0, 0, err
	}
	var total, values int
	for _, e := range entries {
		for _, v := range e.FieldValues {
			total += len(v)
			values++
		}
	}
	if values > 0 {
		meanBytes = float64(total) / float64(values)
	}
	return n, meanBytes, nil
}

// numSub is how many connections (one per replica following) subscribe to
// channel.
func (r *redisProc) numSub(ctx context.Context, channel string) (int64, error) {
	res, err := r.client.Do(ctx, r.client.B().PubsubNumsub().Channel(channel).Build()).ToArray()
	if err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, errors.New("PUBSUB NUMSUB: unexpected answer")
	}
	return res[1].AsInt64()
}

// getAll is MGET keys: values, "" for a key that is not set.
func (r *redisProc) getAll(ctx context.Context, keys []string) ([]string, error) {
	out := make([]string, 0, len(keys))
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		res, err := r.client.Do(ctx, r.client.B().Mget().Key(keys[:n]...).Build()).ToArray()
		if err != nil {
			return nil, err
		}
		for _, m := range res {
			v, err := m.ToString()
			if err != nil && !rueidis.IsRedisNil(err) {
				return nil, err
			}
			out = append(out, v)
		}
		keys = keys[n:]
	}
	return out, nil
}

// pttls is PTTL of each key, in one pipeline: how long each has left
// (negative: no key, or no expiry).
func (r *redisProc) pttls(ctx context.Context, keys []string) ([]time.Duration, error) {
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = r.client.B().Pttl().Key(k).Build()
	}
	out := make([]time.Duration, len(keys))
	for i, res := range r.client.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return nil, err
		}
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out, nil
}
