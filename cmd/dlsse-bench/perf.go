package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// profileCPU records dlsse's CPU with Linux perf (cpu-clock samples with
// call graphs; Go keeps frame pointers, so perf unwinds Go stacks) while a
// scenario's measured phase runs, when -perf DIR is set: dlsse has no
// pprof endpoint, and perf needs none. It returns the function that stops
// the recording (safe to call more than once). Read the result with
//
//	perf report -i DIR/NAME.perf.data --no-children --sort symbol
func (b *bench) profileCPU(name, pid string) (stop func()) {
	if b.opt.perf == "" || pid == "" {
		return func() {}
	}
	out := filepath.Join(b.opt.perf, name+".perf.data")
	cmd := exec.Command("perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", pid, "-o", out)
	log, err := os.Create(filepath.Join(b.opt.perf, name+".perf.log"))
	if err == nil {
		cmd.Stdout, cmd.Stderr = log, log
	}
	if err := cmd.Start(); err != nil {
		b.logf("perf: %v (is linux perf installed?)", err)
		if log != nil {
			log.Close()
		}
		return func() {}
	}
	b.logf("perf recording dlsse (pid %s) into %s", pid, out)
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGINT) // perf writes its file on SIGINT
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t := time.NewTimer(30 * time.Second)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
				_ = cmd.Process.Kill()
				<-done
			}
			if log != nil {
				log.Close()
			}
			b.logf("perf: %s written (%s)", out, strconv.Quote(cmd.String()))
		})
	}
}
