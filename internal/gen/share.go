package gen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
)

// What clusters of one run share. A fleet's clusters mostly differ in a few values (name,
// endpoint, per-cluster variables) and share their charts, chart versions and most values, so gen
// does each piece of work once per distinct input, not once per cluster: a key holds everything
// the result depends on, and a result that depends on anything else is not shared.

// memo runs a function once per key for all the clusters that ask, concurrently or not.
type memo[V any] struct {
	mu sync.Mutex
	m  map[string]*memoEntry[V]
	// shareErrors says an error depends on the key alone. Otherwise (an error naming the
	// cluster that hit it, or one that may not happen again, such as a network error) the entry
	// is dropped and the next cluster runs the function itself.
	shareErrors bool
}

type memoEntry[V any] struct {
	once sync.Once
	v    V
	err  error
}

func (m *memo[V]) do(key string, f func() (V, error)) (V, error) {
	m.mu.Lock()
	if m.m == nil {
		m.m = map[string]*memoEntry[V]{}
	}
	e := m.m[key]
	if e == nil {
		e = &memoEntry[V]{}
		m.m[key] = e
	}
	m.mu.Unlock()
	ran := false
	e.once.Do(func() { e.v, e.err = f(); ran = true })
	if e.err != nil && !m.shareErrors {
		m.mu.Lock()
		if m.m[key] == e {
			delete(m.m, key)
		}
		m.mu.Unlock()
		if !ran {
			return f()
		}
	}
	return e.v, e.err
}

// key joins the parts of a cache key unambiguously (length-prefixed) and hashes them.
func key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// valuesKey writes Helm values with their types: JSON would make 1 (int64) and 1.0 (float64)
// the same key, but templates can tell them apart (kindIs, printf "%T").
func valuesKey(v any) string {
	var b strings.Builder
	writeValue(&b, v)
	return b.String()
}

func writeValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("nil")
	case string:
		b.WriteString("s")
		b.WriteString(strconv.Quote(x))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case float64:
		if math.IsNaN(x) {
			b.WriteString("f:NaN")
			return
		}
		b.WriteString("f:" + strconv.FormatFloat(x, 'g', -1, 64))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{")
		for _, k := range keys {
			b.WriteString(strconv.Quote(k))
			b.WriteString(":")
			writeValue(b, x[k])
			b.WriteString(",")
		}
		b.WriteString("}")
	case []any:
		b.WriteString("[")
		for _, e := range x {
			writeValue(b, e)
			b.WriteString(",")
		}
		b.WriteString("]")
	default:
		// Other types (int64, json.Number, typed maps from valuesFrom, ...): the type's name and
		// Go's rendering, which sorts map keys.
		fmt.Fprintf(b, "%s:%#v", reflect.TypeOf(v), v)
	}
}

// cloneChart copies what Helm's dependency processing writes into a chart (the dependency list
// in its metadata and each entry's Enabled, Name and ImportValues, the subchart list, Values),
// down the subchart tree, so that renders with different values never see each other's
// choices; templates and files are shared, nothing writes them.
func cloneChart(c *chart.Chart) *chart.Chart {
	out := *c
	if c.Metadata != nil {
		md := *c.Metadata
		if c.Metadata.Dependencies != nil {
			md.Dependencies = make([]*chart.Dependency, len(c.Metadata.Dependencies))
			for i, d := range c.Metadata.Dependencies {
				if d != nil {
					dd := *d
					md.Dependencies[i] = &dd
				}
			}
		}
		out.Metadata = &md
	}
	deps := make([]*chart.Chart, 0, len(c.Dependencies()))
	for _, d := range c.Dependencies() {
		deps = append(deps, cloneChart(d))
	}
	out.SetDependencies(deps...)
	return &out
}
