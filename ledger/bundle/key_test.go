package bundle

import (
	"crypto/rand"

	"golang.org/x/mod/sumdb/note"
)

func noteKey() (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}
