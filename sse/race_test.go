//go:build race

package sse

// raceEnabled: sync.Pool drops a quarter of what it is given at random
// under the race detector, so pool misses happen without a leak.
const raceEnabled = true
