package directlinetest

// The identity the Server uses for bot activities that do not name a sender
// (Push, PushSet, PushTyping, EchoBot replies).
const (
	BotID   = "bot"
	BotName = "Echo Bot"
)

// botAccount is the default "from" of bot activities.
func botAccount() map[string]any {
	return map[string]any{"id": BotID, "name": BotName, "role": "bot"}
}

// Bot is the bot behind the fake service. The Server calls it synchronously
// from the REST handler, as Direct Line waits for the bot before answering,
// so everything a Bot sends is on the socket before the client gets its
// HTTP response. Methods may be called concurrently for different requests.
type Bot interface {
	// OnStart is called once per conversation, when it is first started
	// (POST /conversations answering 201, or NewConversation).
	OnStart(c *Conv)
	// OnActivity is called for every activity a client posts or uploads,
	// after it has been stored and echoed. activity is the stamped activity
	// (with its id) and belongs to the Bot.
	OnActivity(c *Conv, activity map[string]any)
}

// Conv is a Bot's handle on one conversation.
type Conv struct {
	s  *Server
	id string
}

// ID returns the conversation id.
func (c *Conv) ID() string { return c.id }

// Send delivers activities from the bot, each in its own ActivitySet, the
// way a real bot's replies usually arrive. Missing "type" defaults to
// "message" and missing "from" to the Echo Bot account; id, timestamp,
// channelId and conversation are always set by the Server. Typing
// activities are ephemeral; everything else is stored in the history.
// The caller's maps are not modified.
func (c *Conv) Send(activities ...map[string]any) error {
	sets := make([][]map[string]any, len(activities))
	for i, a := range activities {
		sets[i] = []map[string]any{a}
	}
	_, err := c.s.deliver(c.id, sets, stampOptions{defaultFrom: botAccount()})
	return err
}

// SendSet is Send, but delivers all activities in a single ActivitySet,
// which is how a client can receive several activities in one message.
func (c *Conv) SendSet(activities ...map[string]any) error {
	if len(activities) == 0 {
		return nil
	}
	_, err := c.s.deliver(c.id, [][]map[string]any{activities}, stampOptions{defaultFrom: botAccount()})
	return err
}

// BotFunc adapts a function to a Bot that does nothing on start.
type BotFunc func(c *Conv, activity map[string]any)

// OnStart does nothing.
func (BotFunc) OnStart(*Conv) {}

// OnActivity calls f.
func (f BotFunc) OnActivity(c *Conv, activity map[string]any) { f(c, activity) }

// EchoBot is the default Bot. For every message activity with a non-empty
// text T it replies with a typing activity and then a message "echo: T"
// whose replyToId is the user activity's id, each in its own ActivitySet.
// It ignores every other activity and does nothing on start.
type EchoBot struct{}

// OnStart does nothing: the echo bot does not greet.
func (EchoBot) OnStart(*Conv) {}

// OnActivity echoes user messages.
func (EchoBot) OnActivity(c *Conv, activity map[string]any) {
	if t, _ := activity["type"].(string); t != "message" {
		return
	}
	text, _ := activity["text"].(string)
	if text == "" {
		return
	}
	id, _ := activity["id"].(string)
	// The only possible error is an unknown conversation, which cannot
	// happen for a Conv the Server handed out.
	_ = c.Send(
		map[string]any{"type": "typing", "from": botAccount()},
		map[string]any{"type": "message", "from": botAccount(), "text": "echo: " + text, "replyToId": id},
	)
}

// GreeterBot is the echo bot that greets each conversation when it starts,
// as most real bots do.
type GreeterBot struct {
	EchoBot
	Greeting string
}

// OnStart sends the greeting.
func (b GreeterBot) OnStart(c *Conv) {
	_ = c.Send(map[string]any{"type": "message", "from": botAccount(), "text": b.Greeting})
}
