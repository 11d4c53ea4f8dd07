package main

import "time"

// peakSampler follows a process's highest RSS and open file count,
// sampled periodically: the file count shows how close dlsse gets to
// RLIMIT_NOFILE, whose exhaustion fails its upstream calls.
type peakSampler struct {
	stopCh chan struct{}
	done   chan struct{}
	rss    int64
	files  int
}

func startPeakSampler(pid string, every time.Duration) *peakSampler {
	s := &peakSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if p, err := readProc(pid); err == nil {
				s.rss = max(s.rss, p.RSS)
			}
			if n, err := openFiles(pid); err == nil {
				s.files = max(s.files, n)
			}
			select {
			case <-t.C:
			case <-s.stopCh:
				return
			}
		}
	}()
	return s
}

// stop ends the sampler and returns the highest RSS and file count seen.
func (s *peakSampler) stop() (rss int64, files int) {
	close(s.stopCh)
	<-s.done
	return s.rss, s.files
}
