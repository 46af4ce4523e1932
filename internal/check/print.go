package check

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
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
	warnings := r.count(Warning)
	skipped := len(r.Findings) - r.Errors() - warnings
	fmt.Fprintf(w, "%d checks, %d errors, %d warnings, %d skipped\n", len(r.Checks), r.Errors(), warnings, skipped)
}

func (r *Report) count(sev string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == sev {
			n++
		}
	}
	return n
}

// PrintGitHub writes findings as GitHub Actions workflow commands, so that each one becomes
// an annotation on its file and line in the pull request (errors, warnings; skipped ones as
// notices). A summary line follows.
func (r *Report) PrintGitHub(w io.Writer, repo string) {
	for _, f := range r.Findings {
		level := map[string]string{Error: "error", Warning: "warning"}[f.Severity]
		if level == "" {
			level = "notice"
		}
		props := []string{"title=" + ghProperty("bootcore check ["+f.Check+"]")}
		if f.File != "" {
			props = append([]string{"file=" + ghProperty(filepath.ToSlash(filepath.Join(repo, f.File)))}, props...)
			if f.Line > 0 {
				props = append(props[:1], append([]string{fmt.Sprintf("line=%d", f.Line)}, props[1:]...)...)
			}
		}
		msg := f.Message
		if f.Cluster != "" {
			msg = "cluster " + f.Cluster + ": " + msg
		}
		fmt.Fprintf(w, "::%s %s::%s\n", level, strings.Join(props, ","), ghData(msg))
	}
	fmt.Fprintf(w, "%d checks, %d errors, %d warnings, %d skipped\n", len(r.Checks), r.Errors(), r.count(Warning), len(r.Findings)-r.Errors()-r.count(Warning))
}

// ghData and ghProperty escape as GitHub's toolkit does (core/command.ts).
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
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
