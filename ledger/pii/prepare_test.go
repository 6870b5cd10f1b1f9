package pii

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// oneByOne hides a store's ManyKeyStore methods, as a store without them
// (KurrentDB's) has none.
type oneByOne struct{ KeyStore }

// TestPrepareSealsAsSealEvent: keys prepared for a chunk of subjects, some
// with a key already and some new, seal exactly the bytes SealEvent
// would; the new keys are stored (they open the sealed bytes after the
// file is reopened); a subject not prepared is ErrNoKey; a store without
// the batch methods gives the same.
func TestPrepareSealsAsSealEvent(t *testing.T) {
	ctx := context.Background()
	fields := map[string]string{"number": "+8613800138000"}
	for _, tc := range []struct {
		name string
		wrap func(KeyStore) KeyStore
	}{
		{"one transaction", func(s KeyStore) KeyStore { return s }},
		{"one key a call", func(s KeyStore) KeyStore { return oneByOne{s} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, path := openKeys(t)
			k.store = tc.wrap(k.store)
			var subjects []string
			for i := range 50 {
				subjects = append(subjects, fmt.Sprint("t/subject-", i))
			}
			// Every fifth has sealed something before.
			before := map[string][]byte{}
			for _, s := range everyFifth(subjects) {
				var err error
				if before[s], err = k.SealEvent(ctx, s, "id-before", fields); err != nil {
					t.Fatal(err)
				}
			}
			p, err := k.Prepare(ctx, append(subjects, subjects[0], subjects[1]))
			if err != nil {
				t.Fatal(err)
			}
			sealed := map[string][]byte{}
			for _, s := range subjects {
				got, err := p.SealEvent(s, "id-"+s, fields)
				if err != nil {
					t.Fatal(err)
				}
				want, err := k.SealEvent(ctx, s, "id-"+s, fields)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: prepared and SealEvent seal differently", s)
				}
				sealed[s] = got
			}
			if _, err := p.SealEvent("t/other", "id", fields); !errors.Is(err, ErrNoKey) {
				t.Fatalf("a subject not prepared: %v, want ErrNoKey", err)
			}
			k.Close()
			k2, err := OpenKeys(path, key(9))
			if err != nil {
				t.Fatal(err)
			}
			defer k2.Close()
			for s, b := range sealed {
				if got, err := k2.Open(s, b); err != nil || got["number"] != fields["number"] {
					t.Fatalf("%s after reopening: %v %v", s, got, err)
				}
			}
			for s, b := range before {
				if _, err := k2.Open(s, b); err != nil {
					t.Fatalf("%s's earlier seal after reopening: %v", s, err)
				}
			}
		})
	}
}

func everyFifth(s []string) []string {
	var out []string
	for i := 0; i < len(s); i += 5 {
		out = append(out, s[i])
	}
	return out
}
