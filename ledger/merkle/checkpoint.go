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
	// Rotation, if set, announces that the signing key changes with this
	// checkpoint, which both keys sign.
	Rotation *Rotation
	// Note is the signed note text, empty until signed.
	Note []byte
}

// Rotation is a change of signing key: checkpoints up to the one that
// announces it are signed by Old, those after it by New (note verifier
// keys, "name+hash+base64").
type Rotation struct {
	Old, New string
}

// rotationPrefix starts the extension line that announces a rotation:
// "heed-key-rotation OLD NEW".
const rotationPrefix = "heed-key-rotation "

// Body returns the checkpoint text that is signed: origin, size and root,
// and the rotation's extension line if there is one.
func (c Checkpoint) Body() string {
	b := c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
	if c.Rotation != nil {
		b += rotationPrefix + c.Rotation.Old + " " + c.Rotation.New + "\n"
	}
	return b
}

// ParseBody parses checkpoint text (without signatures). Extension lines
// after the root are allowed by the format; a key rotation line is read,
// others are ignored.
func ParseBody(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root lines", ErrMalformed)
	}
	var rot *Rotation
	for _, ext := range lines[3 : len(lines)-1] {
		r, ok := strings.CutPrefix(ext, rotationPrefix)
		if !ok {
			continue
		}
		old, next, ok := strings.Cut(r, " ")
		if rot != nil || !ok || old == "" || next == "" || old == next || strings.Contains(next, " ") {
			return Checkpoint{}, fmt.Errorf("%w: bad key rotation line", ErrMalformed)
		}
		rot = &Rotation{Old: old, New: next}
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
	c := Checkpoint{Origin: origin, Size: size, Rotation: rot}
	copy(c.Root[:], root)
	return c, nil
}

// ParseNote parses a signed checkpoint without checking any signature.
func ParseNote(msg []byte) (Checkpoint, error) { return parseSigned(msg) }

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

// SignRotation returns c signed by s and by next, announcing that next
// signs the checkpoints after it.
func (s *Signer) SignRotation(c Checkpoint, next *Signer) (Checkpoint, error) {
	if next.vkey == s.vkey {
		return Checkpoint{}, fmt.Errorf("%w: the new signing key is the old one", ErrMalformed)
	}
	if strings.ContainsAny(c.Origin, "\n") || c.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: bad origin", ErrMalformed)
	}
	c.Rotation = &Rotation{Old: s.vkey, New: next.vkey}
	msg, err := note.Sign(&note.Note{Text: c.Body()}, s.s, next.s)
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

// Chain checks a sequence of checkpoints, in order, against a signing key
// that may rotate: a checkpoint must be signed by the active key; one that
// announces a rotation from the active key must also be signed by the new
// key, which is active from then on, so the old key signs nothing after it.
// Trust in the first key thereby extends to each successor.
type Chain struct {
	keys []*Verifier
}

// NewChain returns a chain whose active key is vkey.
func NewChain(vkey string) (*Chain, error) {
	v, err := NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return &Chain{keys: []*Verifier{v}}, nil
}

// Active returns the key the next checkpoint must be signed by.
func (c *Chain) Active() *Verifier { return c.keys[len(c.keys)-1] }

// Keys returns the chain's keys, first to active.
func (c *Chain) Keys() []string {
	out := make([]string, len(c.keys))
	for i, v := range c.keys {
		out[i] = v.Key()
	}
	return out
}

// Open checks msg as Verifier.Open does with the active key; a rotation
// it announces also needs the new key's signature, and moves the chain on.
func (c *Chain) Open(msg []byte) (Checkpoint, error) {
	active := c.Active()
	peek, err := parseSigned(msg)
	if err != nil || peek.Rotation == nil {
		return active.Open(msg)
	}
	if peek.Rotation.Old != active.Key() {
		return Checkpoint{}, fmt.Errorf("%w: announces a rotation from %s, but checkpoints are signed by %s", ErrSignature, keyID(peek.Rotation.Old), keyID(active.Key()))
	}
	next, err := NewVerifier(peek.Rotation.New)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: the announced key: %v", ErrMalformed, err)
	}
	cp, err := active.Open(msg)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w (a key rotation must be signed by the old key)", err)
	}
	if _, err := next.Open(msg); err != nil {
		return Checkpoint{}, fmt.Errorf("%w (a key rotation must be signed by the new key too)", err)
	}
	c.keys = append(c.keys, next)
	return cp, nil
}

// keyID shortens a verifier key to its name and hash for messages.
func keyID(vkey string) string {
	if p := strings.SplitN(vkey, "+", 3); len(p) == 3 {
		return p[0] + "+" + p[1]
	}
	return vkey
}
