package netwatch

// New returns the best Watcher for this platform: Epoll.
func New() (Watcher, error) { return NewEpoll() }
