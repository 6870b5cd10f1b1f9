package fake

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

func TestPoC(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg, err := kurrentdb.ParseConnectionString(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c, err := kurrentdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	r, err := c.AppendToStream(ctx, "a", kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, kurrentdb.EventData{EventID: uuid.New(), EventType: "X", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{}`)})
	t.Log(r, err)
	rs, err := c.ReadStream(ctx, "a", kurrentdb.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rs.Recv()
	t.Log(ev.Event.EventType, ev.Event.Position, err)
}
