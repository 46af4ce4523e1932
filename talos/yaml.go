package talos

import (
	"bytes"

	"go.yaml.in/yaml/v4" // the YAML library machinery's config loader uses
)

// Patches are written from yaml.Node trees rather than marshalled structs: the key order is
// fixed, nothing but the fields set here appears, and manifests keep literal block style.

func str(s string) *yaml.Node {
	// The !!str tag makes the encoder quote values that would otherwise read as numbers or booleans.
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func boolean(b bool) *yaml.Node {
	v := "false"
	if b {
		v = "true"
	}

	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v}
}

// literal renders s as a `|` block. The encoder falls back to a quoted scalar for strings a
// block cannot hold (trailing spaces on a line, control characters); the value is the same.
func literal(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.LiteralStyle, Value: s}
}

func mapping(kv ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: kv}
}

func sequence(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

// document starts a multi-doc config document (all Kubernetes documents are apiVersion v1alpha1).
func document(kind string, kv ...*yaml.Node) *yaml.Node {
	return mapping(append([]*yaml.Node{str("apiVersion"), str("v1alpha1"), str("kind"), str(kind)}, kv...)...)
}

// encodePatch writes the header line and then the documents, separated by `---`.
func encodePatch(docs []*yaml.Node) ([]byte, error) {
	var buf bytes.Buffer

	buf.WriteString(Header)

	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)

	for _, doc := range docs {
		if err := enc.Encode(doc); err != nil {
			return nil, err
		}
	}

	if err := enc.Close(); err != nil {
		return nil, err
	}

	return buf.Bytes(), nil
}
