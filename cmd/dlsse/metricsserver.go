package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// metricsServer serves /metrics alone, on metrics_listen.
type metricsServer struct {
	srv    *http.Server
	served chan struct{}
}

func startMetricsServer(addr string, h http.Handler, lg zerolog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	m := &metricsServer{
		srv:    &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		served: make(chan struct{}),
	}
	lg.Info().Str("metrics_listen", ln.Addr().String()).Msg("metrics serving")
	go func() {
		defer close(m.served)
		if err := m.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			lg.Error().Err(err).Msg("metrics server stopped")
		}
	}()
	return m, nil
}

// close stops the server and waits for it.
func (m *metricsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.srv.Shutdown(ctx)
	<-m.served
}
