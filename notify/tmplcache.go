package notify

import (
	"context"
	"sync"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify/template"
)

// templates caches what a reminder reads of its template: the versions as
// of a stream revision, and each version's parsed text. A template stream
// changes rarely (a proposal, a review) while every reminder reads it, so
// the stream's revision, one index lookup, tells whether the cached read
// still holds; any change to the stream reads it again.
type templates struct {
	mu sync.Mutex
	m  map[string]*templateRead // template stream → its last read
}

type templateRead struct {
	rev    uint64
	vs     []Version // shared: read-only
	mu     sync.Mutex
	parsed map[int]parsedTemplate
	// approved is approval's answer per version (its reasons are
	// formatted text, the same for every reminder of the read).
	approved map[int]approved
}

type parsedTemplate struct {
	t   *template.Template
	err error
}

type approved struct {
	reason ledger.Reason
	v      *Version
}

// approval is approval(tr.vs, id, version), worked out once per read.
func (tr *templateRead) approval(id string, version int) (ledger.Reason, *Version) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if a, ok := tr.approved[version]; ok {
		return a.reason, a.v
	}
	reason, v := approval(tr.vs, id, version)
	if tr.approved == nil {
		tr.approved = map[int]approved{}
	}
	tr.approved[version] = approved{reason, v}
	return reason, v
}

// maxTemplates bounds the cache; past it the cache starts again empty
// (a tenant has a handful of templates, a server a few hundred).
const maxTemplates = 4096

// read returns the versions of a tenant's template and its stream's
// revision, from the cache when the stream has not moved since.
func (c *templates) read(ctx context.Context, st ledger.Store, tenant, id string) (*templateRead, error) {
	stream := ledger.TemplateStream(tenant, id)
	rev, err := st.StreamRevision(ctx, stream)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	tr := c.m[stream]
	c.mu.Unlock()
	if tr != nil && tr.rev == rev && rev != 0 {
		return tr, nil
	}
	vs, rev, err := ReadTemplate(ctx, st, tenant, id)
	if err != nil {
		return nil, err
	}
	tr = &templateRead{rev: rev, vs: vs}
	if rev == 0 {
		return tr, nil
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxTemplates {
		c.m = map[string]*templateRead{}
	}
	if old := c.m[stream]; old == nil || old.rev <= rev {
		c.m[stream] = tr
	}
	c.mu.Unlock()
	return tr, nil
}

// parse returns version v's text parsed, parsing it once per read.
func (tr *templateRead) parse(v *Version) (*template.Template, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if p, ok := tr.parsed[v.Version]; ok {
		return p.t, p.err
	}
	t, err := template.Parse(v.Signature, v.Text)
	if tr.parsed == nil {
		tr.parsed = map[int]parsedTemplate{}
	}
	tr.parsed[v.Version] = parsedTemplate{t, err}
	return t, err
}
