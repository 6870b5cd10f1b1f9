package bundle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to Verify: it must never panic, and
// every refusal must be an *Error saying what kind of failure it is.
func FuzzVerify(f *testing.F) {
	golden, err := os.ReadFile("testdata/five.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(golden[:len(golden)/2])
	f.Add(bytes.Replace(golden, []byte(`"position":3`), []byte(`"position":4`), 1))
	f.Add([]byte(`{"format":"heed-bundle/1","origin":"o","key":"k","events":1,"checkpoints":0}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := Verify(context.Background(), bytes.NewReader(b), Options{Workers: 2})
		if err == nil {
			if rep.Events > 0 && rep.Checkpoints == 0 {
				t.Fatalf("accepted %d events under no checkpoint", rep.Events)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Verify = %v (%T), want *Error", err, err)
		}
	})
}
