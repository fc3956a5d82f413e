package audit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func setup(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func TestRecordAndList(t *testing.T) {
	ctx := context.Background()
	nc, js := setup(t)

	// No stream yet: nothing listed, and listing does not create it.
	if evs, err := List(ctx, js, time.Time{}, 10); err != nil || len(evs) != 0 {
		t.Fatalf("empty: %v, %v", evs, err)
	}
	if _, err := js.Stream(ctx, wire.StreamAudit); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("List created the stream: %v", err)
	}

	// The first Record creates the stream as documented.
	if err := Record(ctx, js, KindDeploy, Event{Who: "ops", Action: "deploy", Target: "greet", Outcome: OutcomeOK, Detail: "v1"}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, wire.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxAge != MaxAge || cfg.Storage != jetstream.FileStorage || cfg.Retention != jetstream.LimitsPolicy ||
		len(cfg.Subjects) != 1 || cfg.Subjects[0] != "yard.audit.>" {
		t.Fatalf("stream config: %+v", cfg)
	}
	if err := Record(ctx, js, KindRemove, Event{Who: "ops", Action: "remove", Target: "nope", Outcome: Outcome(errors.New("not found")),
		Detail: strings.Repeat("é", MaxField)}); err != nil {
		t.Fatal(err)
	}
	// The gateway's kind of writer: core NATS, same JSON.
	if err := nc.Publish(Subject(KindDenied), []byte(`{"who":"anon","action":"invoke","target":"greet","outcome":"denied"}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(Subject("odd"), []byte(`garbage`)); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	natstest.WaitFor(t, 5*time.Second, "four events", func() bool {
		evs, err = List(ctx, js, time.Time{}, 0)
		return err == nil && len(evs) == 4
	})
	if e := evs[0]; e.Action != "deploy" || e.Target != "greet" || e.Outcome != "ok" || e.Who != "ops" || e.Detail != "v1" || e.Time.IsZero() {
		t.Fatalf("first: %+v", e)
	}
	if e := evs[1]; e.Outcome != "not found" || len(e.Detail) > MaxField+len("…") || !strings.HasSuffix(e.Detail, "é…") {
		t.Fatalf("second: %+v", e)
	}
	if e := evs[2]; e.Action != "invoke" || e.Outcome != "denied" || e.Time.IsZero() {
		t.Fatalf("core NATS event: %+v", e)
	}
	if e := evs[3]; e.Action != "odd" || !strings.Contains(e.Detail, "not an audit event") {
		t.Fatalf("garbage: %+v", e)
	}

	if err := Record(ctx, js, "a.b", Event{}); err == nil {
		t.Fatal("a kind with a dot was accepted")
	}
}

// TestListLimitAndSince: the newest limit events, oldest first, and only
// those since a time.
func TestListLimitAndSince(t *testing.T) {
	ctx := context.Background()
	_, js := setup(t)
	for i := range 20 {
		if err := Record(ctx, js, KindSecret, Event{Who: "ops", Action: "secret.set", Target: "f", Outcome: OutcomeOK, Detail: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := List(ctx, js, time.Time{}, 5)
	if err != nil || len(evs) != 5 || evs[0].Detail != "15" || evs[4].Detail != "19" {
		t.Fatalf("limit 5: %+v, %v", evs, err)
	}
	// since: a moment after the first 20, only the later ones.
	mark := time.Now()
	natstest.WaitFor(t, time.Second, "the clock to move", func() bool { return time.Since(mark) > 2*time.Millisecond })
	mark = time.Now()
	for i := 20; i < 23; i++ {
		if err := Record(ctx, js, KindSecret, Event{Who: "ops", Action: "secret.set", Target: "f", Outcome: OutcomeOK, Detail: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err = List(ctx, js, mark, 100)
	if err != nil || len(evs) != 3 || evs[0].Detail != "20" {
		t.Fatalf("since: %+v, %v", evs, err)
	}
	evs, err = List(ctx, js, mark, 2)
	if err != nil || len(evs) != 2 || evs[0].Detail != "21" || evs[1].Detail != "22" {
		t.Fatalf("since with limit: %+v, %v", evs, err)
	}
	if evs, err := List(ctx, js, time.Now().Add(time.Hour), 10); err != nil || len(evs) != 0 {
		t.Fatalf("future since: %+v, %v", evs, err)
	}
}

func TestConnUser(t *testing.T) {
	nc, _ := setup(t)
	if got := ConnUser(nc); got != "admin" {
		t.Fatalf("no users: %q", got)
	}
	s := natstest.RunWithUsers(t, []*natsserver.User{{Username: "ops", Password: "pw"}})
	nc2 := natstest.ConnectURL(t, s.ClientURL(), nats.UserInfo("ops", "pw"))
	if got := ConnUser(nc2); got != "ops" {
		t.Fatalf("user ops: %q", got)
	}
}
