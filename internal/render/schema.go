package render

import (
	"bytes"
	"crypto/sha256"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

// Helm's values-schema validation (chartutil.ValidateAgainstSchema) compiles the chart's
// values.schema.json on every render: for Cilium's schema that compile is ~85 % of the
// validation and as much as the template engine itself, paid once per render and cluster. The
// compiled schema depends on the schema's bytes alone, so bootcore compiles each schema once per
// process and validates with it as Helm does. Only a pass is taken from here: on a failure, or a
// schema this cannot compile the same way (references outside the file), Helm's own validation
// runs and its error is the one returned, so errors stay Helm's word for word.

type compiled struct {
	once sync.Once
	sch  *jsonschema.Schema
	err  error
}

var schemas sync.Map // sha256 of the schema JSON -> *compiled

// compileSchema is chartutil.ValidateAgainstSingleSchema's compile, with file references only:
// Helm's http, https and urn loaders are left out, so a schema that needs them fails to
// compile here and Helm validates it.
func compileSchema(schemaJSON []byte) (*jsonschema.Schema, error) {
	e, _ := schemas.LoadOrStore(sha256.Sum256(schemaJSON), &compiled{})
	c := e.(*compiled)
	c.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				c.sch, c.err = nil, errPanic
			}
		}()
		schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
		if err != nil {
			c.err = err
			return
		}
		compiler := jsonschema.NewCompiler()
		compiler.UseLoader(jsonschema.SchemeURLLoader{"file": jsonschema.FileLoader{}})
		if c.err = compiler.AddResource("file:///values.schema.json", schema); c.err != nil {
			return
		}
		c.sch, c.err = compiler.Compile("file:///values.schema.json")
	})
	return c.sch, c.err
}

type panicError struct{}

func (panicError) Error() string { return "panic" }

var errPanic error = panicError{}

// valuesPass says whether values pass the schemas of chrt and its subcharts, walking them as
// chartutil.ValidateAgainstSchema does; false also when this cannot tell (see compileSchema).
func valuesPass(chrt *chart.Chart, values map[string]any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if chrt.Schema != nil {
		sch, err := compileSchema(chrt.Schema)
		if err != nil || sch.Validate(chartutil.Values(values).AsMap()) != nil {
			return false
		}
	}
	for _, sub := range chrt.Dependencies() {
		raw, exists := values[sub.Name()]
		if !exists || raw == nil {
			continue
		}
		subValues, isMap := raw.(map[string]any)
		if !isMap || !valuesPass(sub, subValues) {
			return false
		}
	}
	return true
}

// renderValues is chartutil.ToRenderValuesWithSchemaValidation with the schema validation above.
func renderValues(chrt *chart.Chart, values map[string]any, opts chartutil.ReleaseOptions, caps *chartutil.Capabilities) (chartutil.Values, error) {
	top, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, values, opts, caps, true)
	if err != nil {
		return top, err
	}
	if vals, ok := top["Values"].(chartutil.Values); ok && valuesPass(chrt, vals) {
		return top, nil
	}
	return chartutil.ToRenderValuesWithSchemaValidation(chrt, values, opts, caps, false)
}
