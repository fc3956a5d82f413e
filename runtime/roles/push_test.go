package roles_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestPushDeliveriesAreNotStored holds the server to what the roles rely
// on: whoever may create a consumer chooses where a push consumer
// delivers, and no publish permission is checked there, but a delivery
// is never stored by a stream, so a consumer aimed at $KV.<bucket>.<key>
// writes nothing (live subscribers do receive it; see docs/security.md).
func TestPushDeliveriesAreNotStored(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SRC", Subjects: []string{"src.>"}}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "target"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "src.x", []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	// A live subscriber gives the consumer interest, so it delivers.
	sub, err := natstest.Connect(t, s).SubscribeSync("$KV.target.k")
	if err != nil {
		t.Fatal(err)
	}
	req := `{"stream_name":"SRC","config":{"deliver_subject":"$KV.target.k","ack_policy":"none","deliver_policy":"all"}}`
	if _, err := nc.Request("$JS.API.CONSUMER.CREATE.SRC", []byte(req), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("the push consumer delivered nothing, so this test shows nothing: %v", err)
	}
	// A store would be as quick as the delivery; look for a second.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if e, err := kv.Get(ctx, "k"); err == nil {
			t.Fatalf("a push delivery was stored in the bucket: %s", e.Value())
		}
	}
}
