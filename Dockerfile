# syntax=docker/dockerfile:1
# Build a static binary, ship it alone on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/dlsse ./cmd/dlsse

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dlsse /dlsse
COPY configs/dlsse.yaml /etc/dlsse/dlsse.yaml
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/dlsse", "-config", "/etc/dlsse/dlsse.yaml"]
