package directlinetest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// Example starts a conversation with the secret and posts a message; the
// default EchoBot answers it, as the history shows.
func Example() {
	srv := directlinetest.NewServer()
	defer srv.Close()
	client := srv.Client()
	endpoint := srv.URL + "/v3/directline"

	req, _ := http.NewRequest("POST", endpoint+"/conversations", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Secret())
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	var conv struct {
		ConversationID string `json:"conversationId"`
		Token          string `json:"token"`
		StreamURL      string `json:"streamUrl"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&conv)
	resp.Body.Close()
	fmt.Println("start:", resp.StatusCode)

	body := `{"type":"message","from":{"id":"user1"},"text":"hello"}`
	req, _ = http.NewRequest("POST", endpoint+"/conversations/"+conv.ConversationID+"/activities", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+conv.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = client.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("post:", resp.StatusCode)

	for _, a := range srv.History(conv.ConversationID) {
		from := a["from"].(map[string]any)
		fmt.Printf("%s: %s\n", from["id"], a["text"])
	}
	// Output:
	// start: 201
	// post: 200
	// user1: hello
	// bot: echo: hello
}
