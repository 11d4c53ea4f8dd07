//go:build race

package session

// raceEnabled: sync.Pool drops a quarter of what it is given at random
// under the race detector, so pool misses happen without a leak.
const raceEnabled = true
