# syntax=docker/dockerfile:1
# Build a static binary, ship it alone on a distroless, non-root base.
#
# The toolchain is pinned to go.mod's exact `go` line (a test in cmd/dlsse
# keeps them equal): the official images set GOTOOLCHAIN=local, so an image
# older than go.mod's version would refuse to build rather than download
# one. Pin by digest too (golang:1.26.8-bookworm@sha256:...) for builds
# that must not change under you.
FROM golang:1.26.8-bookworm AS build
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not in the build context (.dockerignore), so Go records no VCS
# revision: pass one, e.g. --build-arg VERSION=$(git describe --always --dirty).
ARG VERSION=""
RUN go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION}" -o /out/dlsse ./cmd/dlsse

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dlsse /dlsse
COPY configs/dlsse.yaml /etc/dlsse/dlsse.yaml
USER nonroot:nonroot
EXPOSE 8080
# Distroless has no shell or curl: dlsse probes its own /healthz (on
# 127.0.0.1 and the port of DLSSE_LISTEN, else 8080).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/dlsse", "healthcheck", "-timeout", "3s"]
ENTRYPOINT ["/dlsse", "-config", "/etc/dlsse/dlsse.yaml"]
