package render

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"sort"
	"strings"
)

// PrivateKey returns the field path of the first string in obj that holds a PEM private key
// block, in clear or base64-encoded (as in a Secret's data), and whether there is one.
//
// A block counts when encoding/pem decodes it: BEGIN and END lines of a "... PRIVATE KEY" type
// around valid base64 content. Text that only quotes the markers, as the field descriptions of
// External Secrets' CRDs do ("-----BEGIN PRIVATE KEY-----\n<private-key>\n..."), is no key.
func PrivateKey(obj map[string]any) (string, bool) {
	return findKey(obj, "")
}

func findKey(v any, path string) (string, bool) {
	switch n := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys) // the same object names the same field every time
		for _, k := range keys {
			if p, ok := findKey(n[k], path+"."+k); ok {
				return p, true
			}
		}
	case []any:
		for i, c := range n {
			if p, ok := findKey(c, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	case string:
		if hasPEMKey(n) {
			return strings.TrimPrefix(path, "."), true
		}
		// "LS0tLS1CRUdJTi" is base64 of "-----BEGIN".
		if t := strings.TrimSpace(n); strings.HasPrefix(t, "LS0tLS1CRUdJTi") {
			if raw, err := base64.StdEncoding.DecodeString(t); err == nil && hasPEMKey(string(raw)) {
				return strings.TrimPrefix(path, "."), true
			}
		}
	}
	return "", false
}

func hasPEMKey(s string) bool {
	if !strings.Contains(s, "PRIVATE KEY-----") {
		return false
	}
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") && len(b.Bytes) > 0 {
			return true
		}
	}
}
