package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/switchyard-dev/switchyard/internal/openapi"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// maxOpenAPIDocs bounds the documents kept: callers see different sets of
// functions, and each set's document is built once.
const maxOpenAPIDocs = 64

// openAPIDocs keeps the documents built for sets of specs, by a hash of
// what the document is made of. A deploy changes the hash, so the next
// GET /openapi.json builds anew: the document follows the registry as
// closely as the schema cache does.
type openAPIDocs struct {
	mu   sync.Mutex
	docs map[string][]byte
}

// openAPI serves GET /openapi.json: the OpenAPI 3.1 document of the
// functions p may call (anonymous callers: the public ones), with the
// gateway's own routes. A function the document cannot describe is left
// out, and logged.
func (g *Gateway) openAPI(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := onlyMethods(r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	var specs []registry.Spec
	for _, s := range g.cache.list() {
		if !may(p, s) {
			continue
		}
		if err := openapi.Check(*s); err != nil {
			g.log.Warn("function left out of /openapi.json", logKeyFn, s.Name, logKeyErr, err)
			continue
		}
		specs = append(specs, *s)
	}
	doc, err := g.openAPIDocs.get(specs, openapi.Options{Title: "Switchyard", Version: "1", OIDC: g.tokens != nil, Operator: p.Operator})
	if err != nil {
		var se *openapi.SpecError
		if errors.As(err, &se) {
			g.log.Warn("no /openapi.json", logKeyFn, se.Name, logKeyErr, err)
		}
		return errorf(wire.CodeInternal, "the OpenAPI document could not be built")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(doc)
	}
	return nil
}

func (d *openAPIDocs) get(specs []registry.Spec, opts openapi.Options) ([]byte, error) {
	b, err := json.Marshal(struct {
		Specs []registry.Spec
		Opts  openapi.Options
	}{specs, opts})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:])
	d.mu.Lock()
	doc, ok := d.docs[key]
	d.mu.Unlock()
	if ok {
		return doc, nil
	}
	doc, err = openapi.Document(specs, opts)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.docs == nil || len(d.docs) >= maxOpenAPIDocs {
		d.docs = map[string][]byte{}
	}
	d.docs[key] = doc
	d.mu.Unlock()
	return doc, nil
}
