package contactindex

import (
	"encoding/hex"
	"slices"
)

// tenantSets maps each subject to the tenants that hold its contact
// stream. It is the contact index's storage, and like the people cache it
// holds no pointers for the common case, a 64-hex-digit pseudonym known to
// at most four tenants: the index has an entry for every subject ever seen,
// and a map of maps of strings was a quarter of a million objects for the
// collector to mark at 100,000 subjects. Callers hold the index's lock.
type tenantSets struct {
	byHash map[[32]byte]tenantSet // subjects that are 64 hex digits
	other  map[string][]uint32    // any other subject, or more tenants
	ids    map[string]uint32      // tenant → its number
	names  []string               // number → tenant
}

// tenantSet holds up to four tenant numbers by value.
type tenantSet struct {
	n   uint8
	ids [4]uint32
}

func newTenantSets() tenantSets {
	return tenantSets{byHash: map[[32]byte]tenantSet{}, other: map[string][]uint32{}, ids: map[string]uint32{}}
}

// hashKey decodes a 64-hex-digit subject into a key; lower case only, so
// that every subject has one key.
func hashKey[S string | []byte](subject S) (k [32]byte, ok bool) {
	if len(subject) != 64 {
		return k, false
	}
	for i := range 64 {
		c := subject[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return k, false
		}
	}
	_, err := hex.Decode(k[:], []byte(subject))
	return k, err == nil
}

// has reports whether tenant holds subject's contact stream.
func (t *tenantSets) has(tenant, subject []byte) bool {
	id, ok := t.ids[string(tenant)]
	if !ok {
		return false
	}
	if k, ok := hashKey(subject); ok {
		if s, ok := t.byHash[k]; ok {
			return slices.Contains(s.ids[:s.n], id)
		}
	}
	return slices.Contains(t.other[string(subject)], id)
}

// add records that tenant holds subject's contact stream.
func (t *tenantSets) add(tenant, subject string) {
	id, ok := t.ids[tenant]
	if !ok {
		id = uint32(len(t.names))
		t.names = append(t.names, tenant)
		t.ids[tenant] = id
	}
	if _, spilled := t.other[subject]; !spilled {
		if k, ok := hashKey(subject); ok {
			t.addHash(k, id, subject)
			return
		}
	}
	if !slices.Contains(t.other[subject], id) {
		t.other[subject] = append(t.other[subject], id)
	}
}

// addHash adds tenant id to a hex subject's fixed-size set, moving the
// subject to the general map at a fifth tenant.
func (t *tenantSets) addHash(k [32]byte, id uint32, subject string) {
	s := t.byHash[k]
	switch {
	case slices.Contains(s.ids[:s.n], id):
	case int(s.n) < len(s.ids):
		s.ids[s.n] = id
		s.n++
		t.byHash[k] = s
	default:
		delete(t.byHash, k)
		t.other[subject] = append(slices.Clone(s.ids[:]), id)
	}
}

// of returns subject's tenants, sorted.
func (t *tenantSets) of(subject string) []string {
	var ids []uint32
	if k, ok := hashKey(subject); ok {
		if s, ok := t.byHash[k]; ok {
			ids = s.ids[:s.n]
		}
	}
	if ids == nil {
		ids = t.other[subject]
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.names[id]
	}
	slices.Sort(out)
	return out
}
