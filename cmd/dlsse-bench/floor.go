package main

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// rusageThread is Linux's RUSAGE_THREAD: the calling thread's usage.
const rusageThread = 1

// floorMessage is the size of what the floor writes per delivery: about
// a chat activity's SSE event.
const floorMessage = 512

// writeFloor measures what one delivery's write(2) costs on this machine
// and nothing else: a plain loop, on an OS thread of its own, writes a
// floorMessage-byte message to each of n loopback TCP connections every
// interval, rounds times, with the system call dlsse's streams use (raw,
// non-blocking). Goroutines of this process read the other ends, as the
// bench's clients do. It returns the writing thread's CPU per write, in
// µs: the floor under dlsse's CPU per delivered event.
func writeFloor(ctx context.Context, n int, interval time.Duration, rounds int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	var readers sync.WaitGroup
	var read atomic.Int64
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		readers.Wait()
	}()
	fds := make([]uintptr, 0, n)
	for range n {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return 0, err
		}
		conns = append(conns, client)
		server, err := ln.Accept()
		if err != nil {
			return 0, err
		}
		conns = append(conns, server)
		readers.Go(func() {
			buf := make([]byte, 4096)
			for {
				k, err := client.Read(buf)
				read.Add(int64(k))
				if err != nil {
					return
				}
			}
		})
		raw, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			return 0, err
		}
		// The descriptor stays valid: the conn is closed only after
		// the loop.
		if err := raw.Control(func(fd uintptr) { fds = append(fds, fd) }); err != nil {
			return 0, err
		}
	}

	msg := make([]byte, floorMessage)
	for i := range msg {
		msg[i] = 'a' + byte(i%26)
	}
	cpu, writes, err := writeLoop(ctx, fds, msg, interval, rounds)
	if err != nil {
		return 0, err
	}
	want := int64(writes) * floorMessage
	deadline := time.Now().Add(30 * time.Second)
	for read.Load() < want {
		if time.Now().After(deadline) {
			return 0, errors.New("floor: the readers did not get every byte")
		}
		if err := settle(ctx, 10*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return cpu.Seconds() * 1e6 / float64(writes), nil
}

// writeLoop is writeFloor's loop, on a locked OS thread so that the
// thread's CPU is the loop's. A write the socket does not take whole is
// an error: at a chat rate the buffers are empty.
func writeLoop(ctx context.Context, fds []uintptr, msg []byte, interval time.Duration, rounds int) (time.Duration, int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &before); err != nil {
		return 0, 0, err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	writes := 0
	for range rounds {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
		for _, fd := range fds {
			k, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)))
			if errno != 0 || int(k) != len(msg) {
				return 0, 0, io.ErrShortWrite
			}
			writes++
		}
	}
	if err := syscall.Getrusage(rusageThread, &after); err != nil {
		return 0, 0, err
	}
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()) - time.Duration(before.Utime.Nano()+before.Stime.Nano())
	return cpu, writes, nil
}
