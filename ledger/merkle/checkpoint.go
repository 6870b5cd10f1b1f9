package merkle

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Sentinel errors.
var (
	// ErrMalformed means a checkpoint's text is not a tlog checkpoint.
	ErrMalformed = errors.New("merkle: malformed checkpoint")
	// ErrSignature means a checkpoint is not validly signed by the key.
	ErrSignature = errors.New("merkle: checkpoint signature does not verify")
	// ErrNotFound means no checkpoint exists at the requested size.
	ErrNotFound = errors.New("merkle: no such checkpoint")
	// ErrInconsistent means the tree no longer hashes to what an earlier
	// checkpoint signed: the log was rewritten.
	ErrInconsistent = errors.New("merkle: tree is inconsistent with a signed checkpoint")
	// ErrStale means a checkpoint is not beyond the latest one stored.
	ErrStale = errors.New("merkle: checkpoint not after the latest")
	// ErrRange means a position or size lies outside the tree.
	ErrRange = errors.New("merkle: position out of range")
)

// Checkpoint is a signed statement that the log of Origin had Size leaves
// with root hash Root.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	// Note is the signed note text, empty until signed.
	Note []byte
}

// Body returns the checkpoint text that is signed.
func (c Checkpoint) Body() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// ParseBody parses checkpoint text (without signatures). Extension lines
// after the root are allowed by the format and ignored.
func ParseBody(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root lines", ErrMalformed)
	}
	origin, sizeText, rootText := lines[0], lines[1], lines[2]
	if origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrMalformed)
	}
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("%w: bad tree size %q", ErrMalformed, sizeText)
	}
	root, err := base64.StdEncoding.DecodeString(rootText)
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash", ErrMalformed)
	}
	c := Checkpoint{Origin: origin, Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// parseSigned parses a signed note without checking its signature: for
// notes read back from our own checkpoint file.
func parseSigned(msg []byte) (Checkpoint, error) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: no signature block", ErrMalformed)
	}
	c, err := ParseBody(string(msg[:i+1]))
	if err != nil {
		return Checkpoint{}, err
	}
	c.Note = msg
	return c, nil
}

// Signer signs checkpoints with a note signer key.
type Signer struct {
	s    note.Signer
	vkey string
}

// NewSigner returns a signer for skey (note signer key text) whose public
// verifier key is vkey. It fails if the two do not belong together.
func NewSigner(skey, vkey string) (*Signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("merkle: signer key: %w", err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	probe, err := note.Sign(&note.Note{Text: "probe\n"}, s)
	if err != nil {
		return nil, fmt.Errorf("merkle: signer key: %w", err)
	}
	if _, err := note.Open(probe, note.VerifierList(v.v)); err != nil {
		return nil, fmt.Errorf("merkle: verifier key does not match signer key")
	}
	return &Signer{s: s, vkey: vkey}, nil
}

// VerifierKey returns the public key that checks this signer's notes.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns c with Note set to the signed checkpoint.
func (s *Signer) Sign(c Checkpoint) (Checkpoint, error) {
	if strings.ContainsAny(c.Origin, "\n") || c.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: bad origin", ErrMalformed)
	}
	msg, err := note.Sign(&note.Note{Text: c.Body()}, s.s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("merkle: signing: %w", err)
	}
	c.Note = msg
	return c, nil
}

// Verifier checks checkpoints against one public key.
type Verifier struct {
	v    note.Verifier
	vkey string
}

// NewVerifier parses a note verifier key ("name+hash+base64").
func NewVerifier(vkey string) (*Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("merkle: verifier key: %w", err)
	}
	return &Verifier{v: v, vkey: strings.TrimSpace(vkey)}, nil
}

// Key returns the verifier key text.
func (v *Verifier) Key() string { return v.vkey }

// Name returns the key's name.
func (v *Verifier) Name() string { return v.v.Name() }

// Open checks that msg is a checkpoint signed by v's key and parses it.
func (v *Verifier) Open(msg []byte) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v.v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("%w: not signed by %s", ErrSignature, v.v.Name())
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w: bad signature by %s", ErrSignature, v.v.Name())
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	c.Note = msg
	return c, nil
}
