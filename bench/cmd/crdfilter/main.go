// Command crdfilter copies the CustomResourceDefinitions of a YAML stream from stdin to stdout
// and drops everything else. It is the CRD-filter step of the `helm template` pipeline that the
// benchmarks compare `bootcore gen` with, standing in for what users run today, e.g.
// `helm template ... | yq 'select(.kind == "CustomResourceDefinition")'`: a separate process
// that parses every document.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	out := bufio.NewWriter(os.Stdout)
	n := 0
	for _, doc := range split(data) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			fail(fmt.Errorf("document %d: %w", n+1, err))
		}
		if head.Kind != "CustomResourceDefinition" {
			continue
		}
		if n > 0 {
			out.WriteString("---\n")
		}
		out.Write(doc)
		n++
	}
	if err := out.Flush(); err != nil {
		fail(err)
	}
}

// split cuts a stream at "---" lines.
func split(data []byte) [][]byte {
	var docs [][]byte
	start := 0
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data) - i
		} else {
			end++
		}
		line := bytes.TrimRight(data[i:i+end], " \t\r\n")
		if bytes.Equal(line, []byte("---")) {
			if len(bytes.TrimSpace(data[start:i])) > 0 {
				docs = append(docs, data[start:i])
			}
			start = i + end
		}
		i += end
	}
	if len(bytes.TrimSpace(data[start:])) > 0 {
		docs = append(docs, data[start:])
	}
	return docs
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "crdfilter:", err)
	os.Exit(1)
}
