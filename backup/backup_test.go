package backup

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
)

// The format records the iteration count; the tests need not pay for
// 600,000 of them under the race detector.
func init() { iterations = 1000 }

func files(t *testing.T, sizes ...int) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for i, n := range sizes {
		b := make([]byte, n)
		rand.Read(b)
		m[fmt.Sprintf("f%d", i)] = b
	}
	return m
}

func pack(t *testing.T, w io.Writer, fs map[string][]byte) {
	t.Helper()
	a := NewArchiveWriter(w)
	for i := range len(fs) {
		name := fmt.Sprintf("f%d", i)
		if err := a.File(name, func(w io.Writer) error { _, err := w.Write(fs[name]); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func unpack(r io.Reader) (map[string][]byte, error) {
	m := map[string][]byte{}
	a := NewArchiveReader(r)
	for {
		name, c, err := a.Next()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		if m[name], err = io.ReadAll(c); err != nil {
			return nil, err
		}
	}
}

// TestRoundTrip: archives of files whose sizes fall on and around chunk
// boundaries come back byte for byte, for a recipient, for a passphrase,
// and after rewrapping one into the other.
func TestRoundTrip(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := ParseIdentity(id.String())
	for _, sizes := range [][]int{{}, {0}, {1, chunkSize - 20}, {chunkSize, 3*chunkSize + 7, 5}} {
		fs := files(t, sizes...)
		var enc bytes.Buffer
		w, err := Encrypt(&enc, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		pack(t, w, fs)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := Decrypt(bytes.NewReader(enc.Bytes()), id2)
		if err != nil {
			t.Fatal(err)
		}
		got, err := unpack(r)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(fs) {
			t.Fatalf("sizes %v: %v", sizes, err)
		}
		var re bytes.Buffer
		if err := Rewrap(&re, bytes.NewReader(enc.Bytes()), id, Passphrase("correct horse")); err != nil {
			t.Fatal(err)
		}
		r, err = Decrypt(bytes.NewReader(re.Bytes()), Passphrase("correct horse"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := unpack(r); err != nil || fmt.Sprint(got) != fmt.Sprint(fs) {
			t.Fatalf("rewrapped, sizes %v: %v", sizes, err)
		}
	}
}

// TestRefused: a wrong key, an altered, cut or extended body are refused.
func TestRefused(t *testing.T) {
	var enc bytes.Buffer
	w, err := EncryptPassphrase(&enc, Passphrase("pw"))
	if err != nil {
		t.Fatal(err)
	}
	pack(t, w, files(t, 2*chunkSize+100))
	w.Close()
	good := enc.Bytes()
	other, _ := NewIdentity()
	if _, err := Decrypt(bytes.NewReader(good), Passphrase("wrong")); !errors.Is(err, ErrKey) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := Decrypt(bytes.NewReader(good), other); !errors.Is(err, ErrKey) {
		t.Errorf("identity for a passphrase backup: %v", err)
	}
	if _, err := Decrypt(bytes.NewReader([]byte("hello\n")), Passphrase("pw")); !errors.Is(err, ErrFormat) {
		t.Errorf("not a backup: %v", err)
	}
	hdr := bytes.Index(good, []byte("---\n")) + 4
	damaged := map[string][]byte{
		"a flipped byte":          append(append([]byte{}, good[:hdr+100]...), append([]byte{good[hdr+100] ^ 1}, good[hdr+101:]...)...),
		"cut at a chunk boundary": good[:hdr+chunkSize+16],
		"cut inside a chunk":      good[:len(good)-10],
		"a chunk dropped":         append(append([]byte{}, good[:hdr]...), good[hdr+chunkSize+16:]...),
		"bytes appended":          append(append([]byte{}, good...), 0),
	}
	for name, b := range damaged {
		r, err := Decrypt(bytes.NewReader(b), Passphrase("pw"))
		if err == nil {
			_, err = unpack(r)
		}
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
