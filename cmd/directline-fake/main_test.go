package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestFakeProcessServesDirectLineAndControl runs the command in-process:
// it announces both URLs on stdout, the Direct Line side accepts its
// secret, the control side creates conversations, and cancelling the
// context shuts everything down without leaking a goroutine.
func TestFakeProcessServesDirectLineAndControl(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-secret", "s3cret", "-keepalive", "0"}, pw, io.Discard) }()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr) // nothing more is printed; keep the pipe drained
	var hello struct{ URL, Control, Secret string }
	if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Secret != "s3cret" {
		t.Fatalf("hello line %q: %v", line, err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()

	req, _ := http.NewRequest("POST", hello.URL+"/v3/directline/conversations", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("start with the secret: %d", res.StatusCode)
	}
	res, err = client.Post(hello.Control+"/conversations", "application/json", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("control create: %d", res.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	pw.Close()
}
