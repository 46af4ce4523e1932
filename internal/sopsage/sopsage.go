// Package sopsage decrypts SOPS-encrypted YAML and JSON documents whose data key is
// encrypted for age recipients, and only those.
//
// Why not sops' own decrypt package: it links every key service sops supports (AWS, GCP,
// Azure, Vault, HuaweiCloud KMS, PGP) and makes the binary ~100 MB larger. This package uses
// sops' age key source (github.com/getsops/sops/v3/age, which finds identities exactly as the
// sops CLI does: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, SSH keys, the default key
// file) for the data key, and re-implements the small value format on top: AES-256-GCM per
// value with the value's key path as additional data, and the document MAC over all values.
//
// A document is read as sops reads it: a JSON object as sops' JSON store reads a .json file,
// anything else as its YAML store reads a .yaml file (the same keys, types and refusals), and
// the metadata as sops decodes it. What sops refuses, Decrypt refuses; the differential tests
// (sops_diff_test.go) check that against sops itself. Not supported, and refused with a
// message saying so: several YAML documents in one file, Shamir key groups, and the comment
// regexes (encrypted_comment_regex, unencrypted_comment_regex).
package sopsage

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	sopsagekey "github.com/getsops/sops/v3/age"
	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

// macOnlyEncryptedInit is sops' MACOnlyEncryptedInitialization: the MAC of a document with
// mac_only_encrypted starts from these bytes.
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// defaultUnencryptedSuffix is the rule sops applies to a file whose metadata has none.
const defaultUnencryptedSuffix = "_unencrypted"

var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// IsEncrypted reports whether data is a YAML or JSON document with SOPS metadata.
func IsEncrypted(data []byte) bool {
	var doc struct {
		Sops *struct {
			MAC string `yaml:"mac" json:"mac"`
		} `yaml:"sops" json:"sops"`
	}
	if isJSONObject(data) {
		return json.Unmarshal(data, &doc) == nil && doc.Sops != nil && doc.Sops.MAC != ""
	}
	return yaml.Unmarshal(data, &doc) == nil && doc.Sops != nil && doc.Sops.MAC != ""
}

// Decrypt decrypts a SOPS-encrypted YAML or JSON document (one document) and returns it
// without its "sops" key, as maps, slices and scalars. The MAC is verified.
func Decrypt(data []byte) (map[string]any, error) {
	load := loadYAML
	if isJSONObject(data) {
		load = loadJSON
	}
	top, err := load(data)
	if err != nil {
		return nil, err
	}
	body, meta, err := extractMetadata(top)
	if err != nil {
		return nil, err
	}
	key, err := dataKey(meta.ageKeys)
	if err != nil {
		return nil, err
	}
	d := &decrypter{meta: meta, key: key, mac: sha512.New()}
	if meta.MACOnlyEncrypted {
		d.mac.Write(macOnlyEncryptedInit)
	}
	out, err := d.branch(body, nil)
	if err != nil {
		return nil, err
	}

	// The MAC is encrypted with the data key; its additional data is lastmodified (RFC 3339).
	want, err := decryptValue(meta.MAC, key, meta.lastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("sops metadata: mac: %w", err)
	}
	if got := fmt.Sprintf("%X", d.mac.Sum(nil)); want != got {
		return nil, errors.New("MAC mismatch: the file was changed after it was encrypted (or is corrupt)")
	}
	return out, nil
}

// A document as sops holds it: keys in their order, a value a branch, a []any or a scalar.
type (
	item struct {
		key   string
		value any
	}
	branch []item
)

// isJSONObject says sops would read data as a JSON file: it is a JSON object.
func isJSONObject(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) && json.Valid(data)
}

// loadYAML reads a document as sops' YAML store does.
func loadYAML(data []byte) (branch, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("not a YAML or JSON document: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("multi-document SOPS files are not supported: keep one document per file")
	}
	// sops decodes the document into a map first, which refuses duplicate keys (and merge
	// keys whose value is no map) anywhere in it.
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(make(map[string]any)); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a SOPS document: the top level is not a map")
	}
	return yamlBranch(root.Content[0])
}

func yamlBranch(n *yaml.Node) (branch, error) {
	b := make(branch, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		// A key is what it decodes to; sops refuses keys that are not strings (1, true, null).
		var k any
		_ = n.Content[i].Decode(&k)
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("line %d: a key that is not a string (%T)", n.Content[i].Line, k)
		}
		v, err := yamlValue(n.Content[i+1])
		if err != nil {
			return nil, err
		}
		b = append(b, item{key, v})
	}
	return b, nil
}

func yamlValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		return yamlBranch(n)
	case yaml.SequenceNode:
		var out []any
		for _, c := range n.Content {
			v, err := yamlValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.AliasNode:
		return yamlValue(n.Alias)
	case yaml.ScalarNode:
		var v any
		_ = n.Decode(&v) // as sops: a scalar that does not decode is null (the map check refused it)
		return v, nil
	}
	return nil, nil
}

// loadJSON reads a JSON object as sops' JSON store does: keys in their order (duplicates
// kept), integers in the int64 range as int, other numbers as float64.
func loadJSON(data []byte) (branch, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the "{" isJSONObject saw
		return nil, err
	}
	return jsonBranch(dec)
}

func jsonBranch(dec *json.Decoder) (branch, error) {
	b := branch{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := t.(string)
		if !ok {
			return nil, fmt.Errorf("JSON object key %v", t)
		}
		v, err := jsonValue(dec)
		if err != nil {
			return nil, err
		}
		b = append(b, item{key, v})
	}
	_, err := dec.Token() // "}"
	return b, err
}

func jsonValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		if t == '{' {
			return jsonBranch(dec)
		}
		var out []any
		for dec.More() {
			v, err := jsonValue(dec)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		_, err := dec.Token() // "]"
		return out, err
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return int(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("JSON number %s: %w", t, err)
		}
		return f, nil
	default:
		return t, nil
	}
}

// storedMetadata is the "sops" key as sops decodes it (with mapstructure, weakly typed: the
// same conversions and the same refusals). Only the age keys are used; the others are
// checked as sops checks them.
type storedMetadata struct {
	ShamirThreshold         int                      `mapstructure:"shamir_threshold"`
	KeyGroups               []storedKeyGroup         `mapstructure:"key_groups"`
	LastModified            string                   `mapstructure:"lastmodified"`
	MAC                     string                   `mapstructure:"mac"`
	UnencryptedSuffix       string                   `mapstructure:"unencrypted_suffix"`
	EncryptedSuffix         string                   `mapstructure:"encrypted_suffix"`
	UnencryptedRegex        string                   `mapstructure:"unencrypted_regex"`
	EncryptedRegex          string                   `mapstructure:"encrypted_regex"`
	UnencryptedCommentRegex string                   `mapstructure:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string                   `mapstructure:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool                     `mapstructure:"mac_only_encrypted"`
	Version                 string                   `mapstructure:"version"`
	storedKeyGroup          `mapstructure:",squash"` // the keys of a file with one key group
}

type storedKeyGroup struct {
	KMS []struct {
		ARN        string             `mapstructure:"arn"`
		Role       string             `mapstructure:"role"`
		Context    map[string]*string `mapstructure:"context"`
		CreatedAt  string             `mapstructure:"created_at"`
		Enc        string             `mapstructure:"enc"`
		AWSProfile string             `mapstructure:"aws_profile"`
	} `mapstructure:"kms"`
	GCPKMS []struct {
		ResourceID string `mapstructure:"resource_id"`
		CreatedAt  string `mapstructure:"created_at"`
		Enc        string `mapstructure:"enc"`
	} `mapstructure:"gcp_kms"`
	HCKMS []struct {
		KeyID     string `mapstructure:"key_id"`
		CreatedAt string `mapstructure:"created_at"`
		Enc       string `mapstructure:"enc"`
	} `mapstructure:"hckms"`
	AzureKV []struct {
		VaultURL  string `mapstructure:"vault_url"`
		Name      string `mapstructure:"name"`
		Version   string `mapstructure:"version"`
		CreatedAt string `mapstructure:"created_at"`
		Enc       string `mapstructure:"enc"`
	} `mapstructure:"azure_kv"`
	Vault []struct {
		VaultAddress string `mapstructure:"vault_address"`
		EnginePath   string `mapstructure:"engine_path"`
		KeyName      string `mapstructure:"key_name"`
		CreatedAt    string `mapstructure:"created_at"`
		Enc          string `mapstructure:"enc"`
	} `mapstructure:"hc_vault"`
	PGP []struct {
		CreatedAt   string `mapstructure:"created_at"`
		Enc         string `mapstructure:"enc"`
		Fingerprint string `mapstructure:"fp"`
	} `mapstructure:"pgp"`
	Age []ageKey `mapstructure:"age"`
}

type ageKey struct {
	Recipient string `mapstructure:"recipient"`
	Enc       string `mapstructure:"enc"`
}

// metadata is the checked metadata.
type metadata struct {
	storedMetadata
	lastModified                     time.Time
	ageKeys                          []ageKey
	unencryptedRegex, encryptedRegex *regexp.Regexp
}

// extractMetadata splits the document into its body and its checked metadata.
func extractMetadata(top branch) (branch, metadata, error) {
	var body branch
	var stored any
	for _, it := range top {
		if it.key != "sops" {
			body = append(body, it)
			continue
		}
		if stored != nil {
			return nil, metadata{}, errors.New("sops metadata: more than one sops key")
		}
		b, ok := it.value.(branch)
		if !ok {
			return nil, metadata{}, errors.New("sops metadata: the sops key is not a map")
		}
		stored = plain(b)
	}
	if stored == nil {
		return nil, metadata{}, errors.New("not SOPS-encrypted: no sops metadata")
	}
	var m metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: &m.storedMetadata, WeaklyTypedInput: true})
	if err != nil {
		return nil, metadata{}, err
	}
	if err := dec.Decode(stored); err != nil {
		return nil, metadata{}, fmt.Errorf("sops metadata: %w", err)
	}
	if m.MAC == "" {
		return nil, metadata{}, errors.New("not SOPS-encrypted: no sops metadata with a mac")
	}
	if m.lastModified, err = time.Parse(time.RFC3339, m.LastModified); err != nil {
		return nil, metadata{}, fmt.Errorf("sops metadata: lastmodified: %w", err)
	}
	if err := m.keyGroups(); err != nil {
		return nil, metadata{}, err
	}
	if err := m.rule(); err != nil {
		return nil, metadata{}, err
	}
	return body, m, nil
}

// plain turns a branch into a map, as sops does before decoding the metadata.
func plain(v any) any {
	switch v := v.(type) {
	case branch:
		m := make(map[string]any, len(v))
		for _, it := range v {
			m[it.key] = plain(it.value)
		}
		return m
	case []any:
		l := make([]any, 0, len(v))
		for _, x := range v {
			l = append(l, plain(x))
		}
		return l
	default:
		return v
	}
}

// keyGroups finds the age keys as sops finds its key groups: the keys at the top of the
// metadata if there are any, the key groups otherwise.
func (m *metadata) keyGroups() error {
	groups := []storedKeyGroup{m.storedKeyGroup}
	top := m.storedKeyGroup
	if len(top.KMS)+len(top.GCPKMS)+len(top.HCKMS)+len(top.AzureKV)+len(top.Vault)+len(top.PGP)+len(top.Age) == 0 {
		if len(m.KeyGroups) == 0 {
			return errors.New("sops metadata: no keys found in the file")
		}
		groups = m.KeyGroups
	}
	for _, g := range groups {
		if err := g.check(); err != nil {
			return fmt.Errorf("sops metadata: %w", err)
		}
	}
	if len(groups) > 1 {
		return errors.New("sops key groups with a Shamir threshold are not supported by bootcore")
	}
	m.ageKeys = groups[0].Age
	return nil
}

// check refuses the keys sops refuses to read: a creation date that is not RFC 3339, a
// HuaweiCloud key ID that is not region:uuid.
func (g storedKeyGroup) check() error {
	var dates []string
	for _, k := range g.KMS {
		dates = append(dates, k.CreatedAt)
	}
	for _, k := range g.GCPKMS {
		dates = append(dates, k.CreatedAt)
	}
	for _, k := range g.HCKMS {
		dates = append(dates, k.CreatedAt)
		region, uuid, ok := strings.Cut(strings.TrimSpace(k.KeyID), ":")
		if !ok || strings.TrimSpace(region) == "" || strings.TrimSpace(uuid) == "" {
			return fmt.Errorf("hckms key ID %q is not region:key-uuid", k.KeyID)
		}
	}
	for _, k := range g.AzureKV {
		dates = append(dates, k.CreatedAt)
	}
	for _, k := range g.Vault {
		dates = append(dates, k.CreatedAt)
	}
	for _, k := range g.PGP {
		dates = append(dates, k.CreatedAt)
	}
	for _, d := range dates {
		if _, err := time.Parse(time.RFC3339, d); err != nil {
			return fmt.Errorf("created_at: %w", err)
		}
	}
	return nil
}

// rule checks the encryption rule: one at most, unencrypted_suffix _unencrypted if none.
func (m *metadata) rule() error {
	n := 0
	for _, r := range []string{m.UnencryptedSuffix, m.EncryptedSuffix, m.UnencryptedRegex, m.EncryptedRegex, m.UnencryptedCommentRegex, m.EncryptedCommentRegex} {
		if r != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("sops metadata: more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex, unencrypted_comment_regex")
	case m.UnencryptedCommentRegex != "" || m.EncryptedCommentRegex != "":
		return errors.New("sops metadata: unencrypted_comment_regex and encrypted_comment_regex are not supported by bootcore")
	case n == 0:
		m.UnencryptedSuffix = defaultUnencryptedSuffix
	}
	// sops matches each key with regexp.Match, which treats an invalid pattern as no match.
	m.unencryptedRegex, _ = regexp.Compile(m.UnencryptedRegex)
	m.encryptedRegex, _ = regexp.Compile(m.EncryptedRegex)
	return nil
}

// dataKey decrypts the document's data key with the first age key whose identity is
// available.
func dataKey(keys []ageKey) ([]byte, error) {
	if len(keys) == 0 {
		return nil, errors.New("the file has no age recipient; bootcore decrypts SOPS files with age keys only")
	}
	var errs []error
	for _, k := range keys {
		mk := &sopsagekey.MasterKey{Recipient: k.Recipient, EncryptedKey: k.Enc}
		key, err := mk.Decrypt()
		if err == nil {
			return key, nil
		}
		errs = append(errs, fmt.Errorf("age recipient %s: %w", k.Recipient, err))
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

func (d *decrypter) branch(b branch, path []string) (map[string]any, error) {
	out := make(map[string]any, len(b))
	for _, it := range b {
		// A fresh slice per key: append must not share the parent's backing array.
		p := append(append([]string(nil), path...), it.key)
		v, err := d.value(it.value, p)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(comment); ok {
			return nil, fmt.Errorf("%s: a map value of type comment", strings.Join(p, "."))
		}
		out[it.key] = v // a duplicate JSON key: the last one, as JSON readers take it
	}
	return out, nil
}

func (d *decrypter) value(v any, path []string) (any, error) {
	switch v := v.(type) {
	case branch:
		return d.branch(v, path)
	case []any:
		var out []any
		for _, item := range v {
			x, err := d.value(item, path)
			if err != nil {
				return nil, err
			}
			if _, ok := x.(comment); ok {
				continue
			}
			out = append(out, x)
		}
		return out, nil
	case nil:
		return nil, nil // sops neither encrypts nor MACs null values
	case string, int, float64, bool, time.Time:
		return d.leaf(v, path)
	default:
		// Also with mac_only_encrypted, for a value left out of the MAC: sops refuses it.
		return nil, fmt.Errorf("%s: a value of type %T, which sops does not support", strings.Join(path, "."), v)
	}
}

func (d *decrypter) leaf(v any, path []string) (any, error) {
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
			if m.unencryptedRegex != nil && m.unencryptedRegex.MatchString(p) {
				encrypted = false
				break
			}
		}
	}
	if m.EncryptedRegex != "" {
		encrypted = false
		for _, p := range path {
			if m.encryptedRegex != nil && m.encryptedRegex.MatchString(p) {
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
		// sops' decrypt panics on this type (it never writes it): refuse it as sops does.
		return nil, errors.New("a value of type bytes, which sops cannot decrypt")
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
