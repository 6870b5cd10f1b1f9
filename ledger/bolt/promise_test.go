package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
)

// alter changes one byte of the stored event at pos through bbolt itself,
// as a disk error under a valid page would, leaving its tree hash as it
// was.
func alter(t *testing.T, path string, pos uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("events"))
		k := binary.BigEndian.AppendUint64(nil, pos)
		v := bytes.Clone(b.Get(k))
		i := bytes.Index(v, []byte(`"tenant":"acme"`))
		v[i+len(`"tenant":"a`)] = 'k' // still valid JSON, another tenant
		return b.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAlteredEventRefusedOnRead alters an event in the part of the log
// Open does not reread (its stream entries folded into the file) and
// checks that every read path refuses it rather than serve it, while the
// events after it still read.
func TestAlteredEventRefusedOnRead(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t, bolt.FoldEvery(4))
	var evs []ledger.Event
	for range 40 {
		evs = append(evs, appendN(t, s, "st", 1)...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	alter(t, path, 3)
	s, err := bolt.Open(path, bolt.FoldEvery(4))
	if err != nil {
		t.Fatalf("open: %v (event 3 is folded: open does not reread it)", err)
	}
	defer s.Close()
	reads := map[string]func() error{
		"ReadAll":    func() error { _, err := s.ReadAll(ctx, 1, 0); return err },
		"ReadLeaves": func() error { _, err := s.ReadLeaves(ctx, 2, 5); return err },
		"ReadStream": func() error { _, err := s.ReadStream(ctx, "st", 1, 0); return err },
		"Lookup":     func() error { _, _, err := s.Lookup(ctx, evs[2].ID); return err },
		"Follow": func() error {
			return s.Follow(ctx, 1, func(e ledger.Event) error {
				if e.Position >= 3 {
					t.Errorf("Follow served event %d", e.Position)
				}
				return nil
			})
		},
	}
	for name, read := range reads {
		if err := read(); !errors.Is(err, bolt.ErrCorrupt) || !strings.Contains(err.Error(), "event 3 does not match its tree hash") {
			t.Errorf("%s: %v, want the altered event refused", name, err)
		}
	}
	if got, err := s.ReadAll(ctx, 4, 0); err != nil || len(got) != 37 {
		t.Errorf("ReadAll after the altered event: %d events, %v", len(got), err)
	}
	if _, ok, err := s.Lookup(ctx, evs[3].ID); !ok || err != nil {
		t.Errorf("Lookup of event 4: %v %v", ok, err)
	}
}

// TestAlteredTailRefusedAtOpen alters an event Open rereads to rebuild the
// stream index: the store does not open.
func TestAlteredTailRefusedAtOpen(t *testing.T) {
	s, path := openTemp(t)
	for range 10 {
		appendN(t, s, "st", 1)
	}
	s.Close()
	alter(t, path, 7)
	if s, err := bolt.Open(path); !errors.Is(err, bolt.ErrCorrupt) || !strings.Contains(err.Error(), "event 7 does not match its tree hash") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open: %v", err)
	}
}

func TestPromise(t *testing.T) {
	s, path := openTemp(t)
	for range 10 {
		appendN(t, s, "st", 1)
	}
	root10, err := tlog.TreeHash(10, s)
	if err != nil {
		t.Fatal(err)
	}
	root6, _ := tlog.TreeHash(6, s)
	s.Close()
	tests := []struct {
		name string
		size int64
		root tlog.Hash
		want error
		says string
	}{
		{"at the head", 10, root10, nil, ""},
		{"behind the head", 6, root6, nil, ""},
		{"ahead of the head", 11, root10, ledger.ErrBehind, "holds 10 events, but a checkpoint signed over it covers 11"},
		{"another root", 10, root6, ledger.ErrDiverged, "its first 10 hash to another root than the signed checkpoint of size 10"},
		{"another root behind", 6, root10, ledger.ErrDiverged, "of size 6"},
	}
	for _, tt := range tests {
		for _, ro := range []bool{false, true} {
			opts := []bolt.Option{bolt.Promise(tt.size, tt.root)}
			if ro {
				opts = append(opts, bolt.ReadOnly())
			}
			s, err := bolt.Open(path, opts...)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tt.want) || (tt.want != nil && !strings.Contains(err.Error(), tt.says)) {
				t.Errorf("%s (read-only %v): %v, want %v %q", tt.name, ro, err, tt.want, tt.says)
			}
		}
	}
	missing := filepath.Join(t.TempDir(), "gone.db")
	if _, err := bolt.Open(missing, bolt.Promise(10, root10)); !errors.Is(err, ledger.ErrBehind) || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a refused open created the file")
	}
}

func TestIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heed.db")
	open := func(fields map[string]string, opts ...bolt.Option) error {
		m := map[string][]byte{}
		for k, v := range fields {
			m[k] = []byte(v)
		}
		s, err := bolt.Open(path, append(opts, bolt.Identity(m))...)
		if err == nil {
			s.Close()
		}
		return err
	}
	steps := []struct {
		fields   map[string]string
		readOnly bool
		says     string // "" for success
	}{
		{map[string]string{"a.key": "1"}, false, ""},
		{map[string]string{"a.key": "2"}, false, "was made with another a.key"},
		{map[string]string{"a.key": "2"}, true, "was made with another a.key"},
		// A field not stored yet is recorded on the first read-write open.
		{map[string]string{"a.key": "1", "b.key": "1"}, true, ""},
		{map[string]string{"b.key": "2"}, false, ""},
		{map[string]string{"b.key": "1"}, false, "was made with another b.key"},
		{map[string]string{"a.key": "1", "b.key": "2"}, true, ""},
	}
	for i, st := range steps {
		var opts []bolt.Option
		if st.readOnly {
			opts = append(opts, bolt.ReadOnly())
		}
		err := open(st.fields, opts...)
		if st.says == "" && err != nil || st.says != "" && (!errors.Is(err, bolt.ErrForeign) || !strings.Contains(err.Error(), st.says)) {
			t.Errorf("step %d %v: %v, want %q", i, st.fields, err, st.says)
		}
	}
}
