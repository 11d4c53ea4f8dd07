package netwatch

import (
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Epoll is the Linux Watcher: one epoll set, edge-triggered, read by one
// goroutine. A watch costs a map entry, not a goroutine.
//
// The set's own descriptor is waited on through the runtime's poller (an
// epoll set is itself pollable), not in a blocking epoll_wait: a thread
// blocked in a system call makes sysmon take its P back after 20 µs, and
// keeps sysmon polling at that rate, which cost a third of dlsse's CPU per
// widget event.
type Epoll struct {
	epfd int
	set  *os.File // epfd, registered with the runtime's poller
	wake int      // eventfd: Close's signal to the loop

	mu      sync.Mutex
	closed  bool
	broken  bool // the loop ended by itself: nothing would be told
	next    uint64
	watches map[uint64]func()
	done    chan struct{}
}

// wakeID names the eventfd in the set; watches are numbered from 1.
const wakeID = 0

// NewEpoll starts an Epoll watcher.
func NewEpoll() (*Epoll, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	set := os.NewFile(uintptr(epfd), "epoll") // owns epfd from here on
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		set.Close()
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		set.Close()
		return nil, err
	}
	rc, err := set.SyscallConn()
	if err == nil {
		// os.NewFile falls back to blocking reads, silently, when the
		// runtime's poller refuses a descriptor; deadlines tell.
		err = set.SetReadDeadline(time.Time{})
	}
	if err != nil {
		unix.Close(wake)
		set.Close()
		return nil, err
	}
	e := &Epoll{epfd: epfd, set: set, wake: wake, watches: make(map[uint64]func()), done: make(chan struct{})}
	go e.loop(rc)
	return e, nil
}

// The event's 64 bits of user data hold the watch's number: a descriptor
// number is reused after a close, a watch number never is, so a late
// event for a finished watch finds nothing.
func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Watch implements Watcher.
func (e *Epoll) Watch(c syscall.Conn, readable func()) (func(), error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.closed || e.broken {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	e.next++
	id := e.next
	e.watches[id] = readable
	e.mu.Unlock()

	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET}
	setID(&ev, id)
	var ctlErr error
	if err := rc.Control(func(fd uintptr) {
		ctlErr = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil {
		ctlErr = err
	}
	if ctlErr != nil {
		e.forget(id)
		return nil, ctlErr
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			delete(e.watches, id)
			if e.closed {
				return // the set is gone, and its number may be another's now
			}
			// A closed descriptor left the set by itself.
			_ = rc.Control(func(fd uintptr) {
				_ = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
			})
		})
	}, nil
}

func (e *Epoll) forget(id uint64) {
	e.mu.Lock()
	delete(e.watches, id)
	e.mu.Unlock()
}

// loop takes the set's events when the runtime's poller says it has
// some, and calls the watches' functions.
func (e *Epoll) loop(rc syscall.RawConn) {
	defer close(e.done)
	defer func() {
		e.mu.Lock()
		e.broken = !e.closed
		e.mu.Unlock()
	}()
	events := make([]unix.EpollEvent, 256)
	calls := make([]func(), 0, len(events))
	var n int
	var err error
	take := func(fd uintptr) bool { // false: nothing yet, wait
		for {
			n, err = epollTake(fd, events)
			if err != unix.EINTR {
				return n > 0 || err != nil
			}
		}
	}
	for {
		if rerr := rc.Read(take); rerr != nil {
			return
		}
		if err != nil {
			return
		}
		calls = calls[:0]
		e.mu.Lock()
		stop := e.closed
		for i := range n {
			if f := e.watches[getID(&events[i])]; f != nil {
				calls = append(calls, f)
			}
		}
		e.mu.Unlock()
		if stop {
			return
		}
		for i, f := range calls {
			f()
			calls[i] = nil
		}
	}
}

// Close implements Watcher.
func (e *Epoll) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		return nil
	}
	e.closed = true
	clear(e.watches)
	e.mu.Unlock()
	var one = [8]byte{1}
	_, _ = unix.Write(e.wake, one[:])
	<-e.done
	unix.Close(e.wake)
	return e.set.Close()
}

// epollTake takes the events ready now, without waiting: a raw system
// call, as readFD is.
func epollTake(epfd uintptr, events []unix.EpollEvent) (int, error) {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
