package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestLoadCreatesOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Load(dir, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{SigningFile, PseudonymFile, KEKFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %#o, want 0600", f, fi.Mode().Perm())
		}
	}
	again, err := Load(dir, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if again.SigningKey != s.SigningKey || string(again.KEK) != string(s.KEK) ||
		string(again.PseudonymKey) != string(s.PseudonymKey) || again.LedgerID != s.LedgerID {
		t.Fatal("second Load returned different keys")
	}
	if string(s.KEK) == string(s.PseudonymKey) || len(s.KEK) != 32 {
		t.Fatal("keys are not independent 32-byte keys")
	}
	// The derived verifier key checks what the signing key signs.
	signer, err := note.NewSigner(s.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(s.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("verifier key does not match signing key: %v", err)
	}
	if !strings.HasPrefix(s.VerifierKey, Origin(s.LedgerID)+"+") {
		t.Errorf("verifier key %q not named after origin %q", s.VerifierKey, Origin(s.LedgerID))
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		mode   os.FileMode
		body   string
		want   error
		noLeak string
	}{
		{"world readable signing key", SigningFile, 0o644, "", ErrExposed, ""},
		{"group readable kek", KEKFile, 0o640, "", ErrExposed, ""},
		{"short kek", KEKFile, 0o600, "abcd\n", ErrMalformed, "abcd"},
		{"not hex pseudonym", PseudonymFile, 0o600, strings.Repeat("zz", 32) + "\n", ErrMalformed, "zzzz"},
		{"garbage signing key", SigningFile, 0o600, "PRIVATE+KEY+x+deadbeef+c2VjcmV0\n", ErrMalformed, "c2VjcmV0"},
		{"empty file", PseudonymFile, 0o600, "", ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Load(dir, Overrides{}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tt.file)
			if tt.body != "" || tt.want == ErrMalformed {
				if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, Overrides{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name %s", err, tt.file)
			}
			if tt.noLeak != "" && strings.Contains(err.Error(), tt.noLeak) {
				t.Errorf("error %q leaks the file's content", err)
			}
		})
	}
}

func TestOverridesWinAndWriteNothing(t *testing.T) {
	src, err := Load(t.TempDir(), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := Overrides{
		SigningKey:   src.SigningKey,
		PseudonymKey: strings.Repeat("ab", 32),
		KEK:          strings.Repeat("cd", 32),
	}
	s, err := Load(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.SigningKey != src.SigningKey || s.KEK[0] != 0xcd || s.PseudonymKey[0] != 0xab {
		t.Fatal("overrides not used")
	}
	for _, f := range []string{SigningFile, PseudonymFile, KEKFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s written although overridden", f)
		}
	}
	_, err = Load(dir, Overrides{KEK: "nothex"})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), EnvKEK) || strings.Contains(err.Error(), "nothex") {
		t.Fatalf("bad override: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(EnvKEK, "k")
	t.Setenv(EnvPseudonymKey, "p")
	t.Setenv(EnvSigningKey, "s")
	if got := FromEnv(); got != (Overrides{SigningKey: "s", PseudonymKey: "p", KEK: "k"}) {
		t.Fatalf("FromEnv = %+v", got)
	}
}

func TestOpenCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Overrides{}); !errors.Is(err, ErrMissing) {
		t.Fatalf("Open of an empty dir: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("Open wrote %d files", len(entries))
	}
	want, err := Load(dir, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, VerifierFile))
	if err != nil || strings.TrimSpace(string(pub)) != want.VerifierKey {
		t.Fatalf("verifier.key = %q, %v; want the public key", pub, err)
	}
	got, err := Open(dir, Overrides{})
	if err != nil || got.VerifierKey != want.VerifierKey || string(got.KEK) != string(want.KEK) {
		t.Fatalf("Open after Load: %v", err)
	}
	// An auditor's copy: no secrets at all, only the public key.
	for _, f := range []string{SigningFile, PseudonymFile, KEKFile} {
		os.Remove(filepath.Join(dir, f))
	}
	got, err = Open(dir, Overrides{})
	if err != nil || got.VerifierKey != want.VerifierKey || got.KEK != nil || got.SigningKey != "" {
		t.Fatalf("Open without secrets = %+v, %v", got, err)
	}
	os.Remove(filepath.Join(dir, VerifierFile))
	if _, err := Open(dir, Overrides{}); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), VerifierFile) {
		t.Fatalf("Open without any key: %v", err)
	}
}

func TestLoadRefusesVerifierKeyOfAnotherSigner(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, Overrides{}); err != nil {
		t.Fatal(err)
	}
	other, err := Load(t.TempDir(), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, VerifierFile), []byte(other.VerifierKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, Overrides{}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), VerifierFile) {
		t.Fatalf("Load with a foreign verifier.key: %v", err)
	}
}
