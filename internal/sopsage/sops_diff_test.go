package sopsage

// Differential tests against sops itself. Files are encrypted with the sops CLI's own Go code
// path (a store loads the plaintext, sops.Tree generates and age-encrypts the data key,
// common.EncryptTree encrypts the values and the MAC, a store writes the file), then decrypted
// by sops (the steps of decrypt.DataWithFormat, and the decrypt package itself) and by this
// package, and both must agree: the same tree, or both refuse.
//
// Only this test binary links sops' decrypt package (and with it every KMS client sops
// supports); the bootcore binary links this package and sops' age key source only.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsagekey "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/decrypt"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/logging"
	"github.com/getsops/sops/v3/version"
)

// ---- age identities -------------------------------------------------------------------

// newIdentity makes an age identity for one test.
func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fixtureIdentity is the identity of testdata/test.agekey, the recipient of the golden files.
func fixtureIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "test.agekey"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil || len(ids) != 1 {
		t.Fatalf("testdata/test.agekey: %d identities, %v", len(ids), err)
	}
	return ids[0].(*age.X25519Identity)
}

// quietSops discards the warnings sops logs (an unencrypted comment, for one): the tests
// check its results.
func quietSops() {
	for _, l := range logging.Loggers {
		l.SetOutput(io.Discard)
	}
}

// useIdentities makes ids the only age identities sops and this package find: in SOPS_AGE_KEY,
// with no key file, key command, SSH key or user key file around.
func useIdentities(t testing.TB, ids ...*age.X25519Identity) {
	t.Helper()
	quietSops()
	for _, k := range []string{"SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE", "SOPS_AGE_SSH_PRIVATE_KEY_CMD"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if len(ids) > 0 {
		var keys []string
		for _, id := range ids {
			keys = append(keys, id.String())
		}
		t.Setenv("SOPS_AGE_KEY", strings.Join(keys, "\n"))
	}
}

func recipients(ids ...*age.X25519Identity) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id.Recipient().String())
	}
	return out
}

// ---- encrypting with sops ---------------------------------------------------------------

// fileFormat is `sops encrypt --input-type in --output-type out`: the store that reads the
// plaintext and the store that writes (and later reads) the encrypted file.
type fileFormat struct {
	name    string
	in, out formats.Format
}

var (
	yamlFile       = fileFormat{"yaml", formats.Yaml, formats.Yaml}
	jsonFile       = fileFormat{"json", formats.Json, formats.Json}
	binaryFile     = fileFormat{"binary", formats.Binary, formats.Binary} // a JSON file, the content in "data"
	binaryYAMLFile = fileFormat{"binary-as-yaml", formats.Binary, formats.Yaml}
	dotenvFile     = fileFormat{"dotenv", formats.Dotenv, formats.Dotenv}
	iniFile        = fileFormat{"ini", formats.Ini, formats.Ini}
)

// encryptOptions are the options of `sops encrypt` (or of a .sops.yaml creation rule).
type encryptOptions struct {
	rule, value string // unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex, unencrypted_comment_regex, encrypted_comment_regex
	macOnly     bool
	// noDefaultRule writes no rule at all, as sops' Go library does when its caller sets none
	// (the CLI writes unencrypted_suffix: _unencrypted). sops reads such a file with the
	// default _unencrypted suffix.
	noDefaultRule bool
	groups        [][]string // age recipients of each key group
	threshold     int        // shamir_threshold
}

func (o encryptOptions) String() string {
	s := o.rule
	if s == "" {
		s = "default-rule"
		if o.noDefaultRule {
			s = "no-rule"
		}
	}
	if o.macOnly {
		s += ",mac-only"
	}
	if len(o.groups) > 1 {
		s += fmt.Sprintf(",%d-groups", len(o.groups))
	} else if len(o.groups) == 1 && len(o.groups[0]) > 1 {
		s += fmt.Sprintf(",%d-recipients", len(o.groups[0]))
	}
	return s
}

// sopsEncrypt encrypts plain as cmd/sops/encrypt.go does (getEncryptConfig's defaults
// included), with the local key service and age master keys.
func sopsEncrypt(plain []byte, f fileFormat, o encryptOptions) ([]byte, error) {
	cfg := config.NewStoresConfig()
	in, out := common.StoreForFormat(f.in, cfg), common.StoreForFormat(f.out, cfg)
	branches, err := in.LoadPlainFile(plain)
	if err != nil {
		return nil, err
	}
	if len(branches) < 1 {
		return nil, errors.New("empty file")
	}
	if out.HasSopsTopLevelKey(branches[0]) {
		return nil, errors.New("file already encrypted")
	}
	md := sops.Metadata{MACOnlyEncrypted: o.macOnly, ShamirThreshold: o.threshold, Version: version.Version}
	switch o.rule {
	case "":
	case "unencrypted_suffix":
		md.UnencryptedSuffix = o.value
	case "encrypted_suffix":
		md.EncryptedSuffix = o.value
	case "unencrypted_regex":
		md.UnencryptedRegex = o.value
	case "encrypted_regex":
		md.EncryptedRegex = o.value
	case "unencrypted_comment_regex":
		md.UnencryptedCommentRegex = o.value
	case "encrypted_comment_regex":
		md.EncryptedCommentRegex = o.value
	default:
		return nil, fmt.Errorf("unknown rule %q", o.rule)
	}
	if f.in == formats.Binary {
		// The CLI ignores rules for the binary store: its one value is always encrypted.
		md = sops.Metadata{ShamirThreshold: o.threshold, Version: version.Version}
	} else if o.value == "" && !o.noDefaultRule {
		md.UnencryptedSuffix = sops.DefaultUnencryptedSuffix
	}
	for _, g := range o.groups {
		var group sops.KeyGroup
		for _, r := range g {
			k, err := sopsagekey.MasterKeyFromRecipient(r)
			if err != nil {
				return nil, err
			}
			group = append(group, k)
		}
		md.KeyGroups = append(md.KeyGroups, group)
	}
	tree := sops.Tree{Branches: branches, Metadata: md, FilePath: "differential-test"}
	key, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewLocalClient()})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := common.EncryptTree(common.EncryptTreeOpts{DataKey: key, Tree: &tree, Cipher: aes.NewCipher()}); err != nil {
		return nil, err
	}
	return out.EmitEncryptedFile(tree)
}

// ---- decrypting with sops ---------------------------------------------------------------

// errSeveralDocuments: sops decrypted a file with more than one YAML document.
var errSeveralDocuments = errors.New("sops decrypted several documents")

// sopsTree decrypts data with the calls of decrypt.DataWithFormat, in its order, and returns
// the decrypted tree before sops writes it out: with its Go types (an int stays an int, a
// float a float), comments left out.
func sopsTree(data []byte, f formats.Format) (_ map[string]any, err error) {
	defer sopsPanic(&err)
	store := common.StoreForFormat(f, config.NewStoresConfig())
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, err
	}
	key, err := tree.Metadata.GetDataKey()
	if err != nil {
		return nil, err
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, err
	}
	want, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, err
	}
	if want != mac {
		return nil, errors.New("MAC mismatch")
	}
	if len(tree.Branches) != 1 {
		return nil, errSeveralDocuments
	}
	return sopsBranch(tree.Branches[0])
}

// sopsAPI decrypts data with decrypt.DataWithFormat, sops' public API, and reads its output
// back with the same store: the document a sops user gets.
func sopsAPI(data []byte, f formats.Format) (map[string]any, error) {
	out, err := sopsDecrypt(data, f)
	if err != nil {
		return nil, err
	}
	if f == formats.Binary {
		return map[string]any{"data": string(out)}, nil
	}
	branches, err := common.StoreForFormat(f, config.NewStoresConfig()).LoadPlainFile(out)
	if err != nil {
		return nil, fmt.Errorf("reading sops' output back: %w", err)
	}
	if len(branches) != 1 {
		return nil, errSeveralDocuments
	}
	return sopsBranch(branches[0])
}

// sopsDecrypt is decrypt.DataWithFormat, a panic an error.
func sopsDecrypt(data []byte, f formats.Format) (_ []byte, err error) {
	defer sopsPanic(&err)
	return decrypt.DataWithFormat(data, f)
}

// sopsPanic turns a panic in sops into an error: sops refuses the file (it panics on a value
// of type bytes, for one).
func sopsPanic(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("sops panics: %v", p)
	}
}

// sopsPlain is the plaintext as sops' input store reads it, before encryption.
func sopsPlain(plain []byte, f fileFormat) (map[string]any, error) {
	branches, err := common.StoreForFormat(f.in, config.NewStoresConfig()).LoadPlainFile(plain)
	if err != nil {
		return nil, err
	}
	if len(branches) != 1 {
		return nil, errSeveralDocuments
	}
	return sopsBranch(branches[0])
}

// sopsBranch turns a sops tree into maps, slices and scalars, without comments.
func sopsBranch(b sops.TreeBranch) (map[string]any, error) {
	out := map[string]any{}
	for _, item := range b {
		if _, ok := item.Key.(sops.Comment); ok {
			continue
		}
		k, ok := item.Key.(string)
		if !ok {
			return nil, fmt.Errorf("sops tree: key of type %T", item.Key)
		}
		v, err := sopsValue(item.Value)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func sopsValue(v any) (any, error) {
	switch v := v.(type) {
	case sops.TreeBranch:
		return sopsBranch(v)
	case []any:
		out := []any{}
		for _, item := range v {
			if _, ok := item.(sops.Comment); ok {
				continue
			}
			x, err := sopsValue(item)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	default:
		return v, nil
	}
}

// ---- comparing trees ----------------------------------------------------------------

// The exact form keeps Go types (the int 1 and the float 1 differ); the loose form compares
// numbers by value and times and bytes by their text: sops writes the float 1 as "1", which
// reads back as the int 1, and a JSON file has no times.
type (
	number    string // a number by value
	timestamp string // a time.Time as its text
	bytesText string // a []byte value
	nan       struct{}
)

func exactForm(v any) any { return form(v, true) }
func looseForm(v any) any { return form(v, false) }

func form(v any, exact bool) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = form(x, exact)
		}
		return out
	case []any:
		out := make([]any, 0, len(v))
		for _, x := range v {
			out = append(out, form(x, exact))
		}
		return out
	case float64:
		if math.IsNaN(v) {
			return nan{}
		}
		if exact {
			return v
		}
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return number(strconv.FormatInt(int64(v), 10))
		}
		return number(strconv.FormatFloat(v, 'g', -1, 64))
	case int:
		if exact {
			return v
		}
		return number(strconv.Itoa(v))
	case time.Time:
		b, _ := v.MarshalText()
		if exact {
			return timestamp(b)
		}
		return string(b)
	case []byte:
		if exact {
			return bytesText(v)
		}
		return string(v)
	default:
		return v
	}
}

// treeDiff describes the first difference between two trees, or returns "".
func treeDiff(want, got any) string { return diffAt("", want, got) }

func diffAt(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want a map, got %s", at(path), show(got))
		}
		var keys []string
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !gok:
				return fmt.Sprintf("%s: key %q missing", at(path), k)
			case !wok:
				return fmt.Sprintf("%s: unexpected key %q", at(path), k)
			}
			if d := diffAt(path+"."+k, wv, gv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: want a list, got %s", at(path), show(got))
		}
		if len(w) != len(g) {
			return fmt.Sprintf("%s: want %d items, got %d", at(path), len(w), len(g))
		}
		for i := range w {
			if d := diffAt(fmt.Sprintf("%s.%d", path, i), w[i], g[i]); d != "" {
				return d
			}
		}
		return ""
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: want %s, got %s", at(path), show(want), show(got))
		}
		return ""
	}
}

func at(path string) string {
	if path == "" {
		return "(top)"
	}
	return path[1:]
}

func show(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return fmt.Sprintf("%T %s", v, s)
}

// ---- agreement ----------------------------------------------------------------------

// limitation is what Decrypt says for a sops feature bootcore does not support; the tests
// accept a refusal with one of these messages for files sops decrypts, and nothing else.
var limitation = regexp.MustCompile(`multi-document SOPS files are not supported|comment_regex are not supported|Shamir threshold are not supported`)

// agree decrypts an encrypted file with sops (reading it with store f) and with Decrypt and
// returns what differs: a file one decrypts and the other refuses, or a different tree.
// Decrypt may refuse a file sops decrypts only with a limitation message.
func agree(data []byte, f formats.Format) (problem string, decrypted bool) {
	want, sopsErr := sopsTree(data, f)
	got, err := Decrypt(data)
	switch {
	case errors.Is(sopsErr, errSeveralDocuments):
		if err == nil || !limitation.MatchString(err.Error()) {
			return fmt.Sprintf("several YAML documents: want the multi-document limitation, got err = %v", err), false
		}
		return "", false
	case sopsErr != nil && err == nil:
		return fmt.Sprintf("sops refuses the file (%v), Decrypt decrypts it", sopsErr), false
	case sopsErr != nil:
		return "", false
	case err != nil && limitation.MatchString(err.Error()):
		return "", false
	case err != nil:
		return fmt.Sprintf("sops decrypts the file, Decrypt refuses it: %v", err), false
	}
	if d := treeDiff(exactForm(want), exactForm(got)); d != "" {
		return "Decrypt and sops differ: " + d, true
	}
	return "", true
}

// ---- documents ----------------------------------------------------------------------

const secretYAML = `# A Kubernetes Secret, as Flux applies it.
apiVersion: v1
kind: Secret
metadata:
  name: app-credentials # an inline comment
  namespace: prod
  labels:
    app.kubernetes.io/name: app
  annotations: {}
type: Opaque
stringData:
  token: canary-token-7f3a9b
  config.json: '{"verifier":{"salt":"abc"}}'
  multiline: |
    line one
    line two
  folded: >
    folded
    text
data:
  password: czNjcjN0UDRzcw==
  api_secret: c2VjcmV0
note_unencrypted: visible
`

const typesYAML = `str: hello
quoted_int: "5432"
quoted_bool: "true"
quoted_null: "null"
int: 5432
negative: -17
zero: 0
max_int: 9223372036854775807
min_int: -9223372036854775808
hex: 0x1F
octal: 0o17
float: 0.25
whole_float: 1.0
exponent: 1.5e-7
big_float: 1e300
inf: .inf
minus_inf: -.inf
yes_is_a_string: yes
bool_true: true
bool_false: false
empty: ""
null_value: null
tilde: ~
date: 2024-01-01
timestamp: 2024-01-01T10:20:30.123456789+02:00
binary: !!binary aGVsbG8gd29ybGQ=
tagged_str: !!str 123
unicode: "Grüße, 世界 🌍 مرحبا"
"ключ 🔑": значение
"key with spaces": v1
"key:with:colons": v2
"key.with.dots": v3
"": empty key
escapes: "tab\tnewline\nquote\" backslash\\ nul\0 bell\a"
single_quoted: 'it''s'
looks_encrypted_unencrypted: "ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]"
price_secret: 12.5
count_secret: 3
flag_secret: false
`

const nestedYAML = `# head comment
top:
  list:
    - a
    # a comment in a list
    - 1
    - true
    - null
    - ""
    - [nested, list]
    - {k: v, n: 2}
    - - deeper
      - - deepest
  empty_list: []
  empty_map: {}
  maps_in_list:
    - name: one
      value: 1
    - name: two # inline
      value: [x, y]
anchors:
  base: &base
    host: db
    port: 5432
  copy: *base
  merged:
    <<: *base
    port: 5433
  scalar: &s shared
  alias_of_scalar: *s
list_of_lists: [[1, 2], [3, [4, 5]]]
settings_unencrypted:
  plain: visible
  deeper: {a: 1, b: [true, 2.5]}
stringData:
  nested_secret:
    - x
    - {y: z}
data: {k: v}
# foot comment
`

const secretJSON = `{
  "apiVersion": "v1",
  "kind": "Secret",
  "metadata": {"name": "app", "labels": {"app.kubernetes.io/name": "app"}},
  "type": "Opaque",
  "stringData": {
    "token": "canary-token-7f3a9b",
    "html": "<a href=\"x\">&amp;</a>",
    "unicode": "\u00e9\u4e16 \ud83d\ude00 \u2028 end",
    "escapes": "tab\t nl\n slash\/ quote\" back\\"
  },
  "data": {"password": "czNjcjN0UDRzcw==", "api_secret": "c2VjcmV0"},
  "note_unencrypted": "visible"
}
`

const typesJSON = `{
  "int": 42,
  "negative": -1,
  "float": 0.5,
  "whole_float": 1.0,
  "exponent": 1e3,
  "beyond_float64_precision": 9007199254740993,
  "max_int": 9223372036854775807,
  "beyond_int64": 9223372036854775808,
  "bools": [true, false],
  "null": null,
  "empty": "",
  "empty_object": {},
  "empty_array": [],
  "nested": [[1, [2, {"x": [3]}]], {"y": null}],
  "numbers_unencrypted": {"int": 7, "whole_float": 2.0, "float": 0.1, "big": 9223372036854775807},
  "price_secret": 12.5,
  "flag_secret": true,
  "": "empty key",
  "ключ 🔑": "значение"
}
`

const multiDocYAML = "a: 1\n---\nb: 2\n"

// ruleOptions are the encryption rules every YAML and JSON document is encrypted with.
var ruleOptions = []encryptOptions{
	{},                    // the CLI default: unencrypted_suffix _unencrypted
	{noDefaultRule: true}, // no rule in the file: sops' default applies when reading it
	{rule: "unencrypted_suffix", value: "_unencrypted"},
	{rule: "encrypted_suffix", value: "_secret"},
	{rule: "encrypted_regex", value: "^(data|stringData)$"},
	{rule: "unencrypted_regex", value: "^(apiVersion|kind|metadata|type|anchors)$"},
}

// ---- tests --------------------------------------------------------------------------

// TestDecryptMatchesSops encrypts documents in every format and with every option this
// package supports with sops' own code, and requires Decrypt to return what sops decrypts
// (the tree before sops writes it, with Go types; and what sops' decrypt package writes),
// which is the plaintext that was encrypted.
func TestDecryptMatchesSops(t *testing.T) {
	me, other, third := newIdentity(t), newIdentity(t), newIdentity(t)
	useIdentities(t, me)
	one := [][]string{recipients(me)}

	type testCase struct {
		name  string
		plain []byte
		f     fileFormat
		o     encryptOptions
	}
	var cases []testCase
	for _, doc := range []struct {
		name, text string
		f          fileFormat
	}{
		{"secret", secretYAML, yamlFile},
		{"types", typesYAML, yamlFile},
		{"nested", nestedYAML, yamlFile},
		{"secret", secretJSON, jsonFile},
		{"types", typesJSON, jsonFile},
	} {
		for _, o := range ruleOptions {
			for _, macOnly := range []bool{false, true} {
				o.macOnly, o.groups = macOnly, one
				cases = append(cases, testCase{doc.f.name + "/" + doc.name + "/" + o.String(), []byte(doc.text), doc.f, o})
			}
		}
	}
	binary := map[string][]byte{
		"text":  []byte("raw binary-ish content\nline2\n"),
		"bytes": {0, 1, 2, 0xff, 0xfe, '\n', 0x80, 'x'},
		"empty": {},
		"yaml":  []byte(secretYAML),
	}
	for name, content := range binary {
		for _, f := range []fileFormat{binaryFile, binaryYAMLFile} {
			cases = append(cases, testCase{f.name + "/" + name, content, f, encryptOptions{groups: one}})
		}
	}
	// Several recipients: the identity at hand is not the first one sops lists.
	for _, f := range []fileFormat{yamlFile, jsonFile} {
		doc := secretYAML
		if f == jsonFile {
			doc = secretJSON
		}
		o := encryptOptions{groups: [][]string{recipients(other, third, me)}}
		cases = append(cases, testCase{f.name + "/" + o.String(), []byte(doc), f, o})
		o.macOnly = true
		cases = append(cases, testCase{f.name + "/" + o.String(), []byte(doc), f, o})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := sopsEncrypt(c.plain, c.f, c.o)
			if err != nil {
				t.Fatalf("sops encrypt: %v", err)
			}
			if !IsEncrypted(data) {
				t.Error("IsEncrypted = false")
			}
			if c.o.noDefaultRule && bytes.Contains(c.plain, []byte("_unencrypted")) {
				// Written without a rule, the _unencrypted values are encrypted; sops reads
				// the file with the default rule, takes them for plain values and the MAC
				// fails. Decrypt must refuse the file too.
				if _, err := sopsTree(data, c.f.out); err == nil {
					t.Fatal("premise: sops decrypts a file with encrypted _unencrypted values and no rule")
				}
				if _, err := Decrypt(data); err == nil {
					t.Fatal("Decrypt decrypts a file sops refuses (encrypted _unencrypted values, no rule)")
				}
				return
			}
			want, err := sopsTree(data, c.f.out)
			if err != nil {
				t.Fatalf("premise: sops does not decrypt the file it wrote: %v", err)
			}
			got, err := Decrypt(data)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if d := treeDiff(exactForm(want), exactForm(got)); d != "" {
				t.Errorf("Decrypt and sops' decrypted tree differ: %s", d)
			}
			api, err := sopsAPI(data, c.f.out)
			if err != nil {
				t.Fatalf("decrypt.DataWithFormat: %v", err)
			}
			if d := treeDiff(looseForm(api), looseForm(got)); d != "" {
				t.Errorf("Decrypt and decrypt.DataWithFormat differ: %s", d)
			}
			plain := map[string]any{"data": string(c.plain)}
			if c.f.in != formats.Binary {
				if plain, err = sopsPlain(c.plain, c.f); err != nil {
					t.Fatal(err)
				}
			}
			if d := treeDiff(looseForm(plain), looseForm(got)); d != "" {
				t.Errorf("Decrypt does not return the plaintext: %s", d)
			}
			if c.f.in == formats.Binary {
				v, err := Lookup(got, "data")
				if err != nil || !bytes.Equal(v, c.plain) {
					t.Errorf("Lookup(data) = %q, %v; want the file content %q", v, err, c.plain)
				}
				if c.f.out == formats.Binary {
					raw, err := sopsDecrypt(data, formats.Binary)
					if err != nil || !bytes.Equal(raw, c.plain) {
						t.Errorf("decrypt.Data(binary) = %q, %v; want %q", raw, err, c.plain)
					}
				}
			}
		})
	}
	t.Logf("%d files encrypted by sops, decrypted (or refused) by both", len(cases))
}

// TestDecryptLimitations: what sops decrypts and this package refuses, with a message that
// says so, never with a wrong result.
func TestDecryptLimitations(t *testing.T) {
	me, other := newIdentity(t), newIdentity(t)
	useIdentities(t, me, other)
	one := [][]string{recipients(me)}
	for _, c := range []struct {
		name  string
		plain string
		f     fileFormat
		o     encryptOptions
		want  string
	}{
		{"multi-document YAML", multiDocYAML, yamlFile, encryptOptions{groups: one}, "multi-document"},
		{"encrypted_comment_regex", "# sops:enc\na: 1\nb: 2\n", yamlFile, encryptOptions{rule: "encrypted_comment_regex", value: "sops:enc", groups: one}, "comment_regex"},
		{"unencrypted_comment_regex", "# sops:plain\na: 1\nb: 2\n", yamlFile, encryptOptions{rule: "unencrypted_comment_regex", value: "sops:plain", groups: one}, "comment_regex"},
		{"Shamir key groups", secretYAML, yamlFile, encryptOptions{groups: [][]string{recipients(me), recipients(other)}, threshold: 2}, "Shamir"},
		{"dotenv", "TOKEN=abc\nPORT=5432\n", dotenvFile, encryptOptions{groups: one}, "not"},
		{"ini", "[db]\nuser = admin\npassword = s3cr3t\n", iniFile, encryptOptions{groups: one}, "not"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data, err := sopsEncrypt([]byte(c.plain), c.f, c.o)
			if err != nil {
				t.Fatalf("sops encrypt: %v", err)
			}
			if _, err := sopsDecrypt(data, c.f.out); err != nil {
				t.Fatalf("sops does not decrypt the file either: %v", err)
			}
			doc, err := Decrypt(data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Decrypt = %v, %v; want an error about %q", doc != nil, err, c.want)
			}
		})
	}
}

// mutation changes an encrypted file; it fails the test when the file lacks what it changes.
type mutation struct {
	name string
	edit func(t *testing.T, file string) string
}

func replaceOnce(old, new string) func(*testing.T, string) string {
	return func(t *testing.T, file string) string {
		t.Helper()
		if !strings.Contains(file, old) {
			t.Fatalf("the file has no %q", old)
		}
		return strings.Replace(file, old, new, 1)
	}
}

func replaceRegexp(re, repl string) func(*testing.T, string) string {
	r := regexp.MustCompile(re)
	return func(t *testing.T, file string) string {
		t.Helper()
		loc := r.FindStringIndex(file)
		if loc == nil {
			t.Fatalf("the file has nothing matching %s", re)
		}
		return file[:loc[0]] + r.ReplaceAllString(file[loc[0]:loc[1]], repl) + file[loc[1]:]
	}
}

// flipBase64 changes one base64 character inside the first match of re (group 1).
func flipBase64(re string) func(*testing.T, string) string {
	r := regexp.MustCompile(re)
	return func(t *testing.T, file string) string {
		t.Helper()
		m := r.FindStringSubmatchIndex(file)
		if m == nil || m[3]-m[2] < 2 {
			t.Fatalf("the file has nothing matching %s", re)
		}
		i := m[2] + (m[3]-m[2])/2
		c := byte('A')
		if file[i] == 'A' {
			c = 'B'
		}
		return file[:i] + string(c) + file[i+1:]
	}
}

// swapValues exchanges the encrypted values of two keys.
func swapValues(a, b string) func(*testing.T, string) string {
	return func(t *testing.T, file string) string {
		t.Helper()
		ra := regexp.MustCompile(`(?m)^(\s*` + a + `: )(ENC\[[^\]]*\])`)
		rb := regexp.MustCompile(`(?m)^(\s*` + b + `: )(ENC\[[^\]]*\])`)
		ma, mb := ra.FindStringSubmatch(file), rb.FindStringSubmatch(file)
		if ma == nil || mb == nil {
			t.Fatalf("the file has no encrypted %s or %s", a, b)
		}
		file = strings.Replace(file, ma[0], ma[1]+"\x00", 1)
		file = strings.Replace(file, mb[0], mb[1]+ma[2], 1)
		return strings.Replace(file, "\x00", mb[2], 1)
	}
}

func deleteLine(prefix string) func(*testing.T, string) string {
	return replaceRegexp(`(?m)^\s*`+regexp.QuoteMeta(prefix)+`.*\n`, "")
}

// TestDecryptRefusesWhatSopsRefuses changes encrypted files the way an attacker, a merge or a
// careless edit would, and requires that sops refuses each one and Decrypt does too.
func TestDecryptRefusesWhatSopsRefuses(t *testing.T) {
	me := newIdentity(t)
	useIdentities(t, me)
	one := [][]string{recipients(me)}
	const plain = "user: admin\npassword: s3cr3t\nport: 5432\nempty: \"\"\nnote_unencrypted: visible\nlist_unencrypted:\n  - a\n  - b\n"
	mk := func(o encryptOptions, f fileFormat, text string) string {
		o.groups = one
		data, err := sopsEncrypt([]byte(text), f, o)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	base := mk(encryptOptions{}, yamlFile, plain)
	macOnly := mk(encryptOptions{macOnly: true}, yamlFile, plain)
	regexFile := mk(encryptOptions{rule: "encrypted_regex", value: "^pass"}, yamlFile, plain)
	jsonData := mk(encryptOptions{}, jsonFile, `{"user": "admin", "password": "s3cr3t", "port": 5432, "note_unencrypted": "visible"}`)
	binary := mk(encryptOptions{}, binaryFile, "raw content\n")

	for _, c := range []struct {
		file string
		f    formats.Format
		m    mutation
	}{
		// The values and their places.
		{base, formats.Yaml, mutation{"an encrypted value changed", flipBase64(`password: ENC\[AES256_GCM,data:([^,]+)`)}},
		{base, formats.Yaml, mutation{"an IV changed", flipBase64(`password: ENC\[AES256_GCM,data:[^,]+,iv:([^,]+)`)}},
		{base, formats.Yaml, mutation{"a tag changed", flipBase64(`password: ENC\[AES256_GCM,data:[^,]+,iv:[^,]+,tag:([^,]+)`)}},
		{base, formats.Yaml, mutation{"encrypted values swapped", swapValues("user", "password")}},
		{base, formats.Yaml, mutation{"an encrypted value moved to a new key", replaceOnce("password:", "passw0rd:")}},
		{base, formats.Yaml, mutation{"a value decrypted in place", replaceRegexp(`port: ENC\[[^\]]*\]`, "port: 5432")}},
		{base, formats.Yaml, mutation{"a value of type bytes", replaceRegexp(`(password: ENC\[[^\]]*)type:str\]`, "${1}type:bytes]")}},
		{base, formats.Yaml, mutation{"a value of an unknown type", replaceRegexp(`(password: ENC\[[^\]]*)type:str\]`, "${1}type:blob]")}},
		{base, formats.Yaml, mutation{"a plain value changed", replaceOnce("note_unencrypted: visible", "note_unencrypted: changed")}},
		{base, formats.Yaml, mutation{"a plain list item changed", replaceOnce("- a\n", "- c\n")}},
		{base, formats.Yaml, mutation{"a value removed", deleteLine("port:")}},
		{base, formats.Yaml, mutation{"a plain value added", replaceOnce("note_unencrypted: visible\n", "note_unencrypted: visible\nextra_unencrypted: x\n")}},
		{base, formats.Yaml, mutation{"values reordered", func(t *testing.T, f string) string {
			lines := strings.Split(f, "\n")
			lines[0], lines[1] = lines[1], lines[0]
			return strings.Join(lines, "\n")
		}}},
		{base, formats.Yaml, mutation{"a key duplicated", replaceOnce("note_unencrypted: visible\n", "note_unencrypted: visible\nnote_unencrypted: visible\n")}},
		{base, formats.Yaml, mutation{"truncated", func(t *testing.T, f string) string { return f[:len(f)/2] }}},
		// The metadata.
		{base, formats.Yaml, mutation{"the MAC changed", flipBase64(`mac: ENC\[AES256_GCM,data:([^,]+)`)}},
		{base, formats.Yaml, mutation{"the MAC removed", deleteLine("mac:")}},
		{base, formats.Yaml, mutation{"lastmodified changed", replaceRegexp(`lastmodified: "\d{4}`, `lastmodified: "1999`)}},
		{base, formats.Yaml, mutation{"lastmodified unquoted", replaceRegexp(`lastmodified: "([^"]+)"`, `lastmodified: $1`)}},
		{base, formats.Yaml, mutation{"lastmodified removed", deleteLine("lastmodified:")}},
		{base, formats.Yaml, mutation{"mac_only_encrypted added", replaceOnce("    unencrypted_suffix:", "    mac_only_encrypted: true\n    unencrypted_suffix:")}},
		{macOnly, formats.Yaml, mutation{"mac_only_encrypted removed", deleteLine("mac_only_encrypted:")}},
		{base, formats.Yaml, mutation{"the rule changed", replaceOnce("unencrypted_suffix: _unencrypted", "unencrypted_suffix: _plain")}},
		{base, formats.Yaml, mutation{"a second rule added", replaceOnce("    unencrypted_suffix:", "    unencrypted_regex: ^nothing$\n    unencrypted_suffix:")}},
		{regexFile, formats.Yaml, mutation{"encrypted_regex widened", replaceOnce("encrypted_regex: ^pass", "encrypted_regex: ^(pass|user)")}},
		{macOnly, formats.Yaml, mutation{"mac_only_encrypted: yes", replaceOnce("mac_only_encrypted: true", "mac_only_encrypted: yes")}},
		{base, formats.Yaml, mutation{"the MAC a number", replaceRegexp(`mac: ENC\[[^\]]*\]`, "mac: 12")}},
		{base, formats.Yaml, mutation{"a PGP key without a creation date", replaceOnce("    lastmodified:", "    pgp:\n        - fp: ABCD\n          enc: x\n    lastmodified:")}},
		{base, formats.Yaml, mutation{"a HuaweiCloud key with a bad key ID", replaceOnce("    lastmodified:", "    hckms:\n        - key_id: nocolon\n          created_at: \"2024-01-01T00:00:00Z\"\n    lastmodified:")}},
		{base, formats.Yaml, mutation{"the age keys in key_groups and a KMS key at the top", func(t *testing.T, f string) string {
			return replaceOnce("    lastmodified:", "    kms:\n        - arn: arn:aws:kms:x\n          created_at: \"2024-01-01T00:00:00Z\"\n          enc: x\n    lastmodified:")(t, ageInKeyGroups(t, f))
		}}},
		{base, formats.Yaml, mutation{"the age stanza changed", flipBase64(`(?s)-----BEGIN AGE ENCRYPTED FILE-----\n\s*([A-Za-z0-9+/]{20})`)}},
		{base, formats.Yaml, mutation{"the age recipients removed", replaceRegexp(`(?s)    age:\n.*?recipient: age1[a-z0-9]+\n`, "")}},
		{base, formats.Yaml, mutation{"a second sops key", replaceOnce("user:", "sops: {}\nuser:")}},
		{base, formats.Yaml, mutation{"a second document", func(t *testing.T, f string) string { return f + "---\nuser: x\n" }}},
		// mac_only_encrypted leaves plain values out of the MAC, not out of the checks.
		{macOnly, formats.Yaml, mutation{"mac-only: a number beyond int64", replaceOnce("note_unencrypted: visible", "note_unencrypted: 18446744073709551615")}},
		{macOnly, formats.Yaml, mutation{"mac-only: a key duplicated", replaceOnce("note_unencrypted: visible\n", "note_unencrypted: visible\nnote_unencrypted: visible\n")}},
		{macOnly, formats.Yaml, mutation{"mac-only: an encrypted value changed", flipBase64(`password: ENC\[AES256_GCM,data:([^,]+)`)}},
		{macOnly, formats.Yaml, mutation{"mac-only: a non-string key", replaceOnce("  - a\n", "  - {1: a}\n")}},
		// JSON and binary files.
		{jsonData, formats.Json, mutation{"json: an encrypted value changed", flipBase64(`"password": "ENC\[AES256_GCM,data:([^,]+)`)}},
		{jsonData, formats.Json, mutation{"json: a plain value changed", replaceOnce(`"visible"`, `"changed"`)}},
		{jsonData, formats.Json, mutation{"json: the MAC changed", flipBase64(`"mac": "ENC\[AES256_GCM,data:([^,]+)`)}},
		{binary, formats.Binary, mutation{"binary: the data changed", flipBase64(`"data": "ENC\[AES256_GCM,data:([^,]+)`)}},
		{binary, formats.Binary, mutation{"binary: the data moved to another key", replaceOnce(`"data":`, `"dota":`)}},
	} {
		t.Run(c.m.name, func(t *testing.T) {
			data := []byte(c.m.edit(t, c.file))
			if out, err := sopsDecrypt(data, c.f); err == nil {
				t.Fatalf("premise: sops decrypts the changed file:\n%s", out)
			}
			if doc, err := Decrypt(data); err == nil {
				t.Fatalf("Decrypt accepts a file sops refuses; it returned %d keys", len(doc))
			}
		})
	}

	// sops refuses some files it writes; Decrypt must too.
	t.Run("sops' own JSON file with a plain -0.0", func(t *testing.T) {
		data := []byte(mk(encryptOptions{}, jsonFile, `{"a": "x", "zero_unencrypted": -0.0}`))
		if _, err := sopsTree(data, formats.Json); err == nil {
			t.Fatal("premise: sops decrypts it (it writes -0 as a float and reads it back as the int 0)")
		}
		if _, err := Decrypt(data); err == nil {
			t.Fatal("Decrypt decrypts a file sops refuses")
		}
	})

	t.Run("wrong identity", func(t *testing.T) {
		useIdentities(t, newIdentity(t))
		if _, err := sopsDecrypt([]byte(base), formats.Yaml); err == nil {
			t.Fatal("premise: sops decrypts with another identity")
		}
		if _, err := Decrypt([]byte(base)); err == nil {
			t.Fatal("Decrypt decrypts with another identity")
		}
	})
	t.Run("no identity", func(t *testing.T) {
		useIdentities(t)
		if _, err := sopsDecrypt([]byte(base), formats.Yaml); err == nil {
			t.Fatal("premise: sops decrypts without an identity")
		}
		if _, err := Decrypt([]byte(base)); err == nil || !strings.Contains(err.Error(), "SOPS_AGE_KEY") {
			t.Fatalf("Decrypt without an identity: %v, want an error naming SOPS_AGE_KEY", err)
		}
	})
}

// TestDecryptAcceptsWhatSopsAccepts: changes sops lets through, and Decrypt must too, with
// sops' result.
func TestDecryptAcceptsWhatSopsAccepts(t *testing.T) {
	me := newIdentity(t)
	useIdentities(t, me)
	one := [][]string{recipients(me)}
	const plain = "user: admin\npassword: s3cr3t\nport: 5432\nnote_unencrypted: visible\nempty: \"\"\n"
	const plainJSON = `{"user": "admin", "password": "s3cr3t", "note_unencrypted": "visible", "empty": ""}`
	mk := func(o encryptOptions, f fileFormat, text string) string {
		o.groups = one
		data, err := sopsEncrypt([]byte(text), f, o)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	base, macOnly := mk(encryptOptions{}, yamlFile, plain), mk(encryptOptions{macOnly: true}, yamlFile, plain)
	jsonData, jsonMACOnly := mk(encryptOptions{}, jsonFile, plainJSON), mk(encryptOptions{macOnly: true}, jsonFile, plainJSON)
	for _, c := range []struct {
		file string
		f    formats.Format
		m    mutation
	}{
		// mac_only_encrypted: plain values are not authenticated, by design.
		{macOnly, formats.Yaml, mutation{"mac-only: a plain value changed", replaceOnce("note_unencrypted: visible", "note_unencrypted: changed")}},
		{macOnly, formats.Yaml, mutation{"mac-only: a plain value added", replaceOnce("note_unencrypted: visible\n", "note_unencrypted: visible\nmore_unencrypted: 2\n")}},
		// A file without a rule is read with sops' default, unencrypted_suffix: _unencrypted.
		{base, formats.Yaml, mutation{"the default rule removed", deleteLine("unencrypted_suffix:")}},
		// Empty and null values are neither encrypted nor in the MAC.
		{base, formats.Yaml, mutation{"a null value added", replaceOnce("user:", "added: null\nuser:")}},
		// The type is not authenticated: the MAC covers the value's text, GCM the key path.
		{base, formats.Yaml, mutation{"a value's type changed", replaceRegexp(`(port: ENC\[[^\]]*)type:int\]`, "${1}type:str]")}},
		// The metadata, as sops decodes it: weakly typed, keys matched regardless of case, the
		// age keys of a file with one key group in key_groups, a Shamir threshold that one
		// key group makes moot.
		{macOnly, formats.Yaml, mutation{"mac_only_encrypted quoted", replaceOnce("mac_only_encrypted: true", `mac_only_encrypted: "true"`)}},
		{base, formats.Yaml, mutation{"MAC in capitals", replaceOnce("    mac:", "    MAC:")}},
		{base, formats.Yaml, mutation{"the age keys in key_groups", ageInKeyGroups}},
		{base, formats.Yaml, mutation{"shamir_threshold with one key group", replaceOnce("    lastmodified:", "    shamir_threshold: 2\n    lastmodified:")}},
		{base, formats.Yaml, mutation{"an unknown metadata key", replaceOnce("    lastmodified:", "    future_option: [1, {a: b}]\n    lastmodified:")}},
		// Formatting.
		{base, formats.Yaml, mutation{"re-indented metadata", func(t *testing.T, f string) string {
			return strings.ReplaceAll(strings.ReplaceAll(f, "\n    ", "\n  "), "\n      ", "\n    ")
		}}},
		{base, formats.Yaml, mutation{"comments added", replaceOnce("user:", "# a comment\nuser:")}},
		{base, formats.Yaml, mutation{"quoted keys", replaceOnce("password:", `"password":`)}},
		{base, formats.Yaml, mutation{"recipient removed", replaceRegexp(`\n\s*recipient: age1[a-z0-9]+`, "")}},
		// JSON files are read as sops reads JSON: duplicate keys, JSON's escapes, its numbers.
		{jsonData, formats.Json, mutation{"json: a key duplicated", replaceOnce(`"empty": "",`, `"empty": "", "empty": "",`)}},
		{jsonMACOnly, formats.Json, mutation{"json, mac-only: JSON escapes", replaceOnce(`"visible"`, `"\/ \ud83d\ude00 \u00e9"`)}},
		{jsonMACOnly, formats.Json, mutation{"json, mac-only: a number beyond int64", replaceOnce(`"visible"`, `18446744073709551615`)}},
		{jsonMACOnly, formats.Json, mutation{"json, mac-only: a float written as an integer", replaceOnce(`"visible"`, `1e2`)}},
	} {
		t.Run(c.m.name, func(t *testing.T) {
			data := []byte(c.m.edit(t, c.file))
			want, err := sopsTree(data, c.f)
			if err != nil {
				t.Fatalf("premise: sops refuses the changed file: %v", err)
			}
			got, err := Decrypt(data)
			if err != nil {
				t.Fatalf("Decrypt refuses a file sops decrypts: %v", err)
			}
			if d := treeDiff(exactForm(want), exactForm(got)); d != "" {
				t.Errorf("Decrypt and sops differ: %s", d)
			}
		})
	}
}

// ageInKeyGroups moves the age keys of a YAML file into key_groups, one group.
func ageInKeyGroups(t *testing.T, file string) string {
	t.Helper()
	i := strings.Index(file, "\n    age:\n")
	if i < 0 {
		t.Fatal("the file has no age keys")
	}
	lines := strings.SplitAfter(file[i+len("\n    age:\n"):], "\n")
	var out strings.Builder
	out.WriteString(file[:i] + "\n    key_groups:\n        - age:\n")
	for j, l := range lines {
		if !strings.HasPrefix(l, "      ") { // the end of the age list
			out.WriteString(strings.Join(lines[j:], ""))
			break
		}
		out.WriteString("    " + l)
	}
	return out.String()
}

// TestGoldenFilesMatchSops decrypts the files the sops CLI wrote (testdata) with both.
func TestGoldenFilesMatchSops(t *testing.T) {
	useIdentities(t, fixtureIdentity(t))
	for name, f := range map[string]formats.Format{
		"secret.sops.yaml": formats.Yaml, "mixed.sops.yaml": formats.Yaml,
		"suffix-maconly.sops.yaml": formats.Yaml, "blob.sops.json": formats.Binary,
		"nested.sops.yaml": formats.Yaml, "types-maconly.sops.yaml": formats.Yaml,
		"blob.sops.yaml": formats.Yaml, "types.sops.json": formats.Json,
		"secret-maconly.sops.json": formats.Json,
	} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			problem, ok := agree(data, f)
			if problem != "" || !ok {
				t.Fatalf("ok = %v %s", ok, problem)
			}
			got, _ := Decrypt(data)
			api, err := sopsAPI(data, f)
			if err != nil {
				t.Fatal(err)
			}
			if d := treeDiff(looseForm(api), looseForm(got)); d != "" {
				t.Errorf("Decrypt and decrypt.DataWithFormat differ: %s", d)
			}
		})
	}
}

// ---- fuzzing ------------------------------------------------------------------------

var fuzzFormats = []fileFormat{yamlFile, jsonFile, binaryFile, binaryYAMLFile}

var fuzzRules = []string{"", "", "unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex"}

// fuzzDocs seed FuzzDecryptMatchesSops. They are small: the fuzzer minimizes every input
// that finds new code, in time that grows with the square of its length.
var fuzzDocs = []string{
	"a: 1\n",
	"s: x\nn: -1\nf: 1.5\nw: 2.0\nb: true\nz: null\ne: \"\"\n",
	"l: [1, x, {k: v}, [2]]\nm: {a: {b: c}}\nel: []\nem: {}\n",
	"# c\nk_unencrypted: v # c\nk_secret: 2\nlist:\n  # c\n  - x\n",
	"t: 2024-01-01\ni: .inf\nh: 0x1F\nq: \"5\"\nbin: !!binary aGk=\nu: é🌍\n",
	"a: &x {p: 1}\nb: *x\nc:\n  <<: *x\n  q: 2\n",
	"data: {k: v}\nstringData: {t: s}\nmetadata: {name: n}\nkind: Secret\n",
	`{"a": 1.0, "b": [1, "x", null, true], "c_unencrypted": 1e3, "": {}}`,
	`{"k": "\u00e9\ud83d\ude00\/", "n": 9223372036854775808, "m": -0}`,
	"a: 1\n---\nb: 2\n",
}

var fuzzRuleValues = map[string]string{
	"unencrypted_suffix": "_unencrypted", "encrypted_suffix": "_secret",
	"unencrypted_regex": "^(metadata|kind)$", "encrypted_regex": "^(data|stringData)$",
}

// FuzzDecryptMatchesSops encrypts fuzzed documents with sops' own code, in every format and
// with fuzzed options, and requires that Decrypt returns what sops decrypts (or that both
// refuse the file).
func FuzzDecryptMatchesSops(f *testing.F) {
	me := newIdentity(f)
	useIdentities(f, me)
	groups := [][]string{recipients(me)}
	for _, doc := range fuzzDocs {
		for i := range fuzzFormats {
			f.Add([]byte(doc), uint8(i), uint8(0), "", false)
		}
		for i, r := range fuzzRules {
			f.Add([]byte(doc), uint8(0), uint8(i), fuzzRuleValues[r], i%2 == 0)
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte, format, rule uint8, value string, macOnly bool) {
		ff := fuzzFormats[int(format)%len(fuzzFormats)]
		o := encryptOptions{rule: fuzzRules[int(rule)%len(fuzzRules)], value: value, macOnly: macOnly, groups: groups}
		if o.rule == "" {
			o.value, o.noDefaultRule = "", rule%2 == 1
		}
		data, err := sopsEncrypt(doc, ff, o)
		if err != nil {
			return // sops cannot encrypt it: not a document, a non-string key, a value sops has no type for
		}
		problem, ok := agree(data, ff.out)
		if problem != "" {
			t.Fatalf("%s, %s: %s", ff.name, o, problem)
		}
		if !ok {
			return
		}
		// What sops' decrypt package returns is what Decrypt returns.
		got, _ := Decrypt(data)
		api, err := sopsAPI(data, ff.out)
		if err != nil {
			t.Fatalf("%s, %s: the tree decrypts, decrypt.DataWithFormat fails: %v", ff.name, o, err)
		}
		if d := treeDiff(looseForm(api), looseForm(got)); d != "" {
			t.Fatalf("%s, %s: Decrypt and decrypt.DataWithFormat differ: %s", ff.name, o, d)
		}
	})
}

// fuzzBases are the files FuzzDecryptNeverAcceptsWhatSopsRefuses changes: written by the sops
// CLI for testdata/test.agekey (testdata/README.md), so that an input means the same file in
// every run.
var fuzzBases = []string{
	"secret.sops.yaml", "mixed.sops.yaml", "suffix-maconly.sops.yaml", "nested.sops.yaml",
	"types-maconly.sops.yaml", "blob.sops.yaml", "blob.sops.json", "types.sops.json", "secret-maconly.sops.json",
}

// fuzzTokens are what edit operation 6 inserts: pieces of SOPS files, YAML and JSON.
var fuzzTokens = []string{
	"\n", " ", "    ", "- ", ": ", ", ", `"`, "'", "#", "{", "}", "[", "]", "null", "~", "1", "-0", "1.0",
	"1e400", "18446744073709551615", "true", "yes", `""`, "_unencrypted", "_secret", "sops", "sops:\n",
	"mac", "MAC", "mac_only_encrypted: true\n", "mac_only_encrypted: yes\n", "unencrypted_suffix: _x\n",
	"encrypted_regex: ^x\n", "unencrypted_regex: .\n", "encrypted_comment_regex: x\n",
	"shamir_threshold: 2\n", "key_groups:\n", "lastmodified: ", "version: 3\n", "recipient: ", "enc: ",
	"pgp: [{created_at: x}]\n", "ENC[AES256_GCM,data:", ",iv:", ",tag:", ",type:str]", ",type:int]",
	",type:float]", ",type:bool]", ",type:time]", ",type:comment]", ",type:bytes]", "<<: ", "&a ",
	"*a", "!!binary ", "!!str ", "!!int ", "!!timestamp ", "---\n", "? ", "|\n", ">\n",
	`\u00e9`, `\/`, `\ud83d\ude00`,
}

// applyEdits changes a file by an edit script: up to 16 operations of 4 bytes, an operation,
// a position (2 bytes) and an argument. A short script is cheap for the fuzzer to minimize.
func applyEdits(file, edits []byte) []byte {
	out := append([]byte(nil), file...)
	for i := 0; i+4 <= len(edits) && i < 16*4; i += 4 {
		op, arg := edits[i], edits[i+3]
		pos := 0
		if len(out) > 0 {
			pos = (int(edits[i+1])<<8 | int(edits[i+2])) % len(out)
		}
		start := bytes.LastIndexByte(out[:pos], '\n') + 1 // the line at pos
		end := len(out)
		if j := bytes.IndexByte(out[pos:], '\n'); j >= 0 {
			end = pos + j + 1
		}
		switch op % 8 {
		case 0: // set a byte
			if len(out) > 0 {
				out[pos] = arg
			}
		case 1: // insert a byte
			out = slices.Insert(out, pos, arg)
		case 2: // delete a byte
			if len(out) > 0 {
				out = slices.Delete(out, pos, pos+1)
			}
		case 3: // delete the line
			out = slices.Delete(out, start, end)
		case 4: // duplicate the line
			out = slices.Insert(out, end, out[start:end]...)
		case 5: // swap the line with the next one
			next := end
			if j := bytes.IndexByte(out[end:], '\n'); j >= 0 {
				next = end + j + 1
			} else {
				next = len(out)
			}
			line := append([]byte(nil), out[start:end]...)
			out = slices.Insert(slices.Delete(out, start, end), start+next-end, line...)
		case 6: // insert a token
			out = slices.Insert(out, pos, []byte(fuzzTokens[int(arg)%len(fuzzTokens)])...)
		case 7: // cut the file
			out = out[:pos]
		}
	}
	return out
}

// FuzzDecryptNeverAcceptsWhatSopsRefuses changes encrypted files (fuzzed edit scripts on the
// testdata files) and requires that Decrypt never panics, never decrypts a file sops refuses,
// and returns sops' tree when sops decrypts it. A file is read as sops reads a JSON file when
// it is a JSON object, and as a YAML file otherwise.
func FuzzDecryptNeverAcceptsWhatSopsRefuses(f *testing.F) {
	useIdentities(f, fixtureIdentity(f))
	var bases [][]byte
	for _, name := range fuzzBases {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		bases = append(bases, data)
	}
	// Seeds: each file as it is, and edits at the places that matter.
	for b, data := range bases {
		f.Add(uint8(b), []byte{})
		for _, at := range []string{"mac_only_encrypted", "unencrypted_suffix", "encrypted_", "lastmodified", "_unencrypted:", "mac"} {
			if i := bytes.Index(data, []byte(at)); i >= 0 {
				f.Add(uint8(b), []byte{3, byte(i >> 8), byte(i), 0})                 // delete the line
				f.Add(uint8(b), []byte{4, byte(i >> 8), byte(i), 0})                 // duplicate it
				f.Add(uint8(b), []byte{6, byte(i >> 8), byte(i), byte(7 * len(at))}) // insert a token
			}
		}
	}
	f.Fuzz(func(t *testing.T, base uint8, edits []byte) {
		data := applyEdits(bases[int(base)%len(bases)], edits)
		format := formats.Yaml
		if sopsReadsAsJSON(data) {
			format = formats.Json
		}
		if problem, _ := agree(data, format); problem != "" {
			t.Fatalf("%s changed by %x: %s", fuzzBases[int(base)%len(bases)], edits, problem)
		}
	})
}

// sopsReadsAsJSON: the file is a JSON object, which sops reads as a .json file.
func sopsReadsAsJSON(data []byte) bool {
	return json.Valid(data) && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
}
