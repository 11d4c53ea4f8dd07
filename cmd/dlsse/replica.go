package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
)

// replicaName names this process among the replicas: its host name, for
// logs, and a random part, unique per start (leases are held by it).
func replicaName() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r == '|' || r == ' ' {
			return '-'
		}
		return r
	}, host)
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// redisAddress is what a log line may say of redis_url: host, port and
// database, never the password.
func redisAddress(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
