package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bootcore-dev/bootcore/internal/term"
)

// PrintText writes findings as "file:line: severity [check] message", then the order.
func (r *Report) PrintText(w io.Writer) {
	paint := term.Paint(term.Colors(w))
	for _, f := range r.Findings {
		loc := f.File
		if loc == "" {
			loc = "(repository)"
		}
		if f.Line > 0 {
			loc = fmt.Sprintf("%s:%d", loc, f.Line)
		}
		cluster := ""
		if f.Cluster != "" {
			cluster = " cluster " + f.Cluster + ":"
		}
		sev := paint.Yellow(f.Severity)
		if f.Severity == Error {
			sev = paint.Red(f.Severity)
		}
		fmt.Fprintf(w, "%s: %s [%s]%s %s\n", loc, sev, f.Check, cluster, strings.ReplaceAll(f.Message, "\n", "\n    "))
	}
	for _, cluster := range sortedKeys(r.Order) {
		fmt.Fprintf(w, "order %s: %s\n", cluster, strings.Join(r.Order[cluster], " -> "))
	}
	skipped := len(r.Findings) - r.Errors()
	fmt.Fprintf(w, "%d checks, %d errors, %d skipped\n", len(r.Checks), r.Errors(), skipped)
}

// PrintJSON writes the report as one JSON document (for CI annotations).
func (r *Report) PrintJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}
