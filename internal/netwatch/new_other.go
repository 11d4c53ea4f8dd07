//go:build !linux

package netwatch

// New returns the best Watcher for this platform: PerConn.
func New() (Watcher, error) { return NewPerConn(), nil }
