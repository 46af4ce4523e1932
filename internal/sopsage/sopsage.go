// Package sopsage decrypts SOPS-encrypted YAML and JSON documents whose data key is
// encrypted for age recipients, and only those.
//
// Why not sops' own decrypt package: it links every key service sops supports (AWS, GCP,
// Azure, Vault, HuaweiCloud KMS, PGP) and makes the binary ~100 MB larger. This package uses
// sops' age key source (github.com/getsops/sops/v3/age, which finds identities exactly as the
// sops CLI does: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, SSH keys, the default key
// file) for the data key, and re-implements the small value format on top: AES-256-GCM per
// value with the value's key path as additional data, and the document MAC over all values.
// The tests decrypt documents written by the sops CLI's libraries.
package sopsage

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	sopsagekey "github.com/getsops/sops/v3/age"
	"go.yaml.in/yaml/v3"
)

// macOnlyEncryptedInit is sops' MACOnlyEncryptedInitialization: the MAC of a document with
// mac_only_encrypted starts from these bytes.
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// metadata is the part of the "sops" key this package understands.
type metadata struct {
	Age []struct {
		Recipient string `yaml:"recipient"`
		Enc       string `yaml:"enc"`
	} `yaml:"age"`
	KeyGroups               []map[string]any `yaml:"key_groups"`
	ShamirThreshold         int              `yaml:"shamir_threshold"`
	LastModified            string           `yaml:"lastmodified"`
	MAC                     string           `yaml:"mac"`
	UnencryptedSuffix       string           `yaml:"unencrypted_suffix"`
	EncryptedSuffix         string           `yaml:"encrypted_suffix"`
	UnencryptedRegex        string           `yaml:"unencrypted_regex"`
	EncryptedRegex          string           `yaml:"encrypted_regex"`
	UnencryptedCommentRegex string           `yaml:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string           `yaml:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool             `yaml:"mac_only_encrypted"`
}

// IsEncrypted reports whether data is a YAML or JSON document with SOPS metadata.
func IsEncrypted(data []byte) bool {
	var doc struct {
		Sops *struct {
			MAC string `yaml:"mac"`
		} `yaml:"sops"`
	}
	return yaml.Unmarshal(data, &doc) == nil && doc.Sops != nil && doc.Sops.MAC != ""
}

// Decrypt decrypts a SOPS-encrypted YAML or JSON document (one document) and returns it
// without its "sops" key, as maps, slices and scalars. The MAC is verified.
func Decrypt(data []byte) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("not a YAML or JSON document: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("multi-document SOPS files are not supported: keep one document per file")
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a SOPS document: the top level is not a map")
	}
	top := root.Content[0]

	var meta metadata
	var body []*yaml.Node // key, value pairs without "sops"
	found := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "sops" {
			if err := top.Content[i+1].Decode(&meta); err != nil {
				return nil, fmt.Errorf("sops metadata: %w", err)
			}
			found = true
			continue
		}
		body = append(body, top.Content[i], top.Content[i+1])
	}
	if !found || meta.MAC == "" {
		return nil, errors.New("not SOPS-encrypted: no sops metadata with a mac")
	}
	if meta.UnencryptedCommentRegex != "" || meta.EncryptedCommentRegex != "" {
		return nil, errors.New("sops metadata: unencrypted_comment_regex and encrypted_comment_regex are not supported by bootcore")
	}

	key, err := dataKey(meta)
	if err != nil {
		return nil, err
	}
	d := &decrypter{meta: meta, key: key, mac: sha512.New()}
	if meta.MACOnlyEncrypted {
		d.mac.Write(macOnlyEncryptedInit)
	}
	out, err := d.mapping(body, nil)
	if err != nil {
		return nil, err
	}

	// The MAC is encrypted with the data key; its additional data is lastmodified (RFC 3339).
	lm, err := time.Parse(time.RFC3339, meta.LastModified)
	if err != nil {
		return nil, fmt.Errorf("sops metadata: lastmodified: %w", err)
	}
	want, err := decryptValue(meta.MAC, key, lm.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("sops metadata: mac: %w", err)
	}
	if got := fmt.Sprintf("%X", d.mac.Sum(nil)); want != got {
		return nil, errors.New("MAC mismatch: the file was changed after it was encrypted (or is corrupt)")
	}
	return out, nil
}

// dataKey decrypts the document's data key with the first age recipient whose identity is
// available.
func dataKey(meta metadata) ([]byte, error) {
	if meta.ShamirThreshold > 1 || len(meta.KeyGroups) > 1 {
		return nil, errors.New("sops key groups with a Shamir threshold are not supported by bootcore")
	}
	type recipient struct{ recipient, enc string }
	var recipients []recipient
	for _, a := range meta.Age {
		recipients = append(recipients, recipient{a.Recipient, a.Enc})
	}
	for _, g := range meta.KeyGroups {
		ages, _ := g["age"].([]any)
		for _, a := range ages {
			m, _ := a.(map[string]any)
			r, _ := m["recipient"].(string)
			e, _ := m["enc"].(string)
			recipients = append(recipients, recipient{r, e})
		}
	}
	if len(recipients) == 0 {
		return nil, errors.New("the file has no age recipient; bootcore decrypts SOPS files with age keys only")
	}
	var errs []error
	for _, r := range recipients {
		mk := &sopsagekey.MasterKey{Recipient: r.recipient, EncryptedKey: r.enc}
		key, err := mk.Decrypt()
		if err == nil {
			return key, nil
		}
		errs = append(errs, fmt.Errorf("age recipient %s: %w", r.recipient, err))
	}
	return nil, fmt.Errorf("no age identity can decrypt the data key (set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY): %w", errors.Join(errs...))
}

type decrypter struct {
	meta metadata
	key  []byte
	mac  hash.Hash
}

// comment is a decrypted value of type "comment": sops keeps it out of the MAC and the output.
type comment struct{}

func (d *decrypter) value(n *yaml.Node, path []string) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		return d.mapping(n.Content, path)
	case yaml.SequenceNode:
		var out []any
		for _, item := range n.Content {
			v, err := d.value(item, path)
			if err != nil {
				return nil, err
			}
			if _, ok := v.(comment); ok {
				continue
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.AliasNode:
		return d.value(n.Alias, path)
	case yaml.ScalarNode:
		return d.leaf(n, path)
	default:
		return nil, fmt.Errorf("%s: unexpected YAML node", strings.Join(path, "."))
	}
}

func (d *decrypter) mapping(pairs []*yaml.Node, path []string) (map[string]any, error) {
	out := map[string]any{}
	for i := 0; i+1 < len(pairs); i += 2 {
		k := pairs[i]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: non-scalar map key", strings.Join(path, "."))
		}
		// A fresh slice per key: append must not share the parent's backing array.
		p := append(append([]string(nil), path...), k.Value)
		v, err := d.value(pairs[i+1], p)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(comment); ok {
			continue
		}
		out[k.Value] = v
	}
	return out, nil
}

func (d *decrypter) leaf(n *yaml.Node, path []string) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil // sops neither encrypts nor MACs null values
	}
	encrypted := d.shouldBeEncrypted(path)
	if encrypted {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: expected an encrypted value, found %T", strings.Join(path, "."), v)
		}
		plain, err := decryptTyped(s, d.key, strings.Join(path, ":")+":")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(path, "."), err)
		}
		v = plain
	}
	if _, ok := v.(comment); ok {
		return v, nil
	}
	if !d.meta.MACOnlyEncrypted || encrypted {
		b, err := toBytes(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(path, "."), err)
		}
		d.mac.Write(b)
	}
	return v, nil
}

// shouldBeEncrypted mirrors sops.Tree.shouldBeEncrypted for the key-based rules.
func (d *decrypter) shouldBeEncrypted(path []string) bool {
	m := d.meta
	encrypted := true
	if m.UnencryptedSuffix != "" {
		for _, p := range path {
			if strings.HasSuffix(p, m.UnencryptedSuffix) {
				encrypted = false
				break
			}
		}
	}
	if m.EncryptedSuffix != "" {
		encrypted = false
		for _, p := range path {
			if strings.HasSuffix(p, m.EncryptedSuffix) {
				encrypted = true
				break
			}
		}
	}
	if m.UnencryptedRegex != "" {
		for _, p := range path {
			if ok, _ := regexp.MatchString(m.UnencryptedRegex, p); ok {
				encrypted = false
				break
			}
		}
	}
	if m.EncryptedRegex != "" {
		encrypted = false
		for _, p := range path {
			if ok, _ := regexp.MatchString(m.EncryptedRegex, p); ok {
				encrypted = true
				break
			}
		}
	}
	return encrypted
}

func decryptValue(s string, key []byte, aad string) (string, error) {
	v, err := decryptTyped(s, key, aad)
	if err != nil {
		return "", err
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("expected a string, found %T", v)
	}
	return str, nil
}

// decryptTyped is sops' aes.Cipher.Decrypt.
func decryptTyped(s string, key []byte, aad string) (any, error) {
	if s == "" {
		return "", nil
	}
	m := encValue.FindStringSubmatch(s)
	if m == nil {
		return nil, errors.New("value is not in sops' ENC[AES256_GCM,...] format")
	}
	var parts [3][]byte
	for i := range parts {
		b, err := base64.StdEncoding.DecodeString(m[i+1])
		if err != nil {
			return nil, fmt.Errorf("invalid base64 in encrypted value: %w", err)
		}
		parts[i] = b
	}
	data, iv, tag := parts[0], parts[1], parts[2]
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), []byte(aad))
	if err != nil {
		return nil, errors.New("cannot decrypt value (wrong key, or the value was moved or changed)")
	}
	switch m[4] {
	case "str":
		return string(plain), nil
	case "int":
		return strconv.Atoi(string(plain))
	case "float":
		return strconv.ParseFloat(string(plain), 64)
	case "bytes":
		return plain, nil
	case "bool":
		return strconv.ParseBool(string(plain))
	case "time":
		var t time.Time
		return t, t.UnmarshalText(plain)
	case "comment":
		return comment{}, nil
	default:
		return nil, fmt.Errorf("unknown encrypted value type %q", m[4])
	}
}

// toBytes is sops.ToBytes: the bytes of a value that enter the MAC.
func toBytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case int:
		return []byte(strconv.Itoa(v)), nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		if v {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case []byte:
		return v, nil
	case time.Time:
		return v.MarshalText()
	default:
		return nil, fmt.Errorf("cannot MAC a value of type %T", v)
	}
}

// Lookup returns the value at a dotted key path ("stringData.token"). Keys that contain dots
// ("stringData.1password-credentials.json") match whole; list items are numbered from 0.
// Scalars are returned as their text, bytes as they are; a map or list is an error.
func Lookup(doc map[string]any, path string) ([]byte, error) {
	parts := strings.Split(path, ".")
	var cur any = doc
	for len(parts) > 0 {
		switch node := cur.(type) {
		case map[string]any:
			matched := false
			// The longest run of segments that is a key wins, so dotted keys work.
			for n := len(parts); n > 0; n-- {
				if v, ok := node[strings.Join(parts[:n], ".")]; ok {
					cur, parts, matched = v, parts[n:], true
					break
				}
			}
			if !matched {
				return nil, fmt.Errorf("key %q not found", path)
			}
		case []any:
			i, err := strconv.Atoi(parts[0])
			if err != nil || i < 0 || i >= len(node) {
				return nil, fmt.Errorf("key %q: %q is not an index of a list of %d", path, parts[0], len(node))
			}
			cur, parts = node[i], parts[1:]
		default:
			return nil, fmt.Errorf("key %q not found", path)
		}
	}
	switch v := cur.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	case nil:
		return nil, fmt.Errorf("key %q is null", path)
	case map[string]any, []any:
		return nil, fmt.Errorf("key %q is a map or list, not a value", path)
	default:
		return toBytes(v)
	}
}
