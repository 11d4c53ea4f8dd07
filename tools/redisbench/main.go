// Command redisbench compares two Redis clients on what dlsse's cluster mode
// asks of Redis: the fenced append script (lease check, XADD with MAXLEN,
// PUBLISH) from many goroutines, and SET NX PX. It is its own module so the
// client not chosen stays out of dlsse's go.mod.
//
//	redis-server --port 6399 --save '' --appendonly no &
//	go run . -addr 127.0.0.1:6399
package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

const appendScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', 500, '*', 'e', ARGV[2])
redis.call('PUBLISH', KEYS[3], id)
return id`

func main() {
	addr := flag.String("addr", "127.0.0.1:6399", "redis address")
	conc := flag.Int("c", 50, "concurrent callers")
	dur := flag.Duration("d", 5*time.Second, "duration of each run")
	flag.Parse()
	payload := strings.Repeat("x", 1024)
	ctx := context.Background()

	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{*addr}, DisableCache: true})
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	gc := goredis.NewClient(&goredis.Options{Addr: *addr, PoolSize: *conc})
	defer gc.Close()

	rScript := rueidis.NewLuaScript(appendScript)
	gScript := goredis.NewScript(appendScript)
	for i := range *conc {
		k := fmt.Sprintf("{c%d}:owner", i)
		rc.Do(ctx, rc.B().Set().Key(k).Value("me:1").Build())
	}
	run := func(name string, op func(i int) error) {
		var firstErr atomic.Value
		var n, fails atomic.Int64
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		deadline := time.Now().Add(*dur)
		var wg sync.WaitGroup
		for i := range *conc {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					if err := op(i); err != nil {
						fails.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		runtime.ReadMemStats(&ms1)
		fmt.Printf("%-34s %8.0f ops/s  %6.1f allocs/op  %7.0f B/op  failures %d\n", name,
			float64(n.Load())/dur.Seconds(), float64(ms1.Mallocs-ms0.Mallocs)/float64(n.Load()),
			float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(n.Load()), fails.Load())
		if e := firstErr.Load(); e != nil {
			fmt.Println("  first failure:", e)
		}
	}
	keys := func(i int) []string {
		return []string{fmt.Sprintf("{c%d}:owner", i), fmt.Sprintf("{c%d}:log", i), fmt.Sprintf("{c%d}:bus", i)}
	}
	run("rueidis: fenced append script", func(i int) error {
		return rScript.Exec(ctx, rc, keys(i), []string{"me:1", payload}).Error()
	})
	run("go-redis: fenced append script", func(i int) error {
		return gScript.Run(ctx, gc, keys(i), "me:1", payload).Err()
	})
	run("rueidis: SET NX PX", func(i int) error {
		err := rc.Do(ctx, rc.B().Set().Key(fmt.Sprintf("{l%d}", i)).Value("x").Nx().Px(15*time.Second).Build()).Error()
		if rueidis.IsRedisNil(err) {
			return nil // NX and the key exists: an answer, not a failure
		}
		return err
	})
	run("go-redis: SET NX PX", func(i int) error {
		return gc.SetNX(ctx, fmt.Sprintf("{l%d}", i), "x", 15*time.Second).Err()
	})
}
