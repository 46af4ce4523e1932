package talos

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/k8s"
	"go.yaml.in/yaml/v4"
)

// Measuring a config's size meant encoding each inline manifest's megabytes a second time:
// Generate encodes them into the patch (indent 2) and machinery encodes them into the config
// (indent 4), both with the same YAML emitter, both as a literal block scalar ("|"). The
// emitter writes a literal block from the contents alone: a header whose length does not
// depend on the indentation (go-yaml's writeBlockScalarHints: the indentation hint is the one
// digit of the indent), then the contents, writing the block's indentation before each line
// that is not empty and nothing else (writeLiteralScalar). So the block grows by the difference
// of the two indentations once per line that is not empty, and the config's encoding of the
// contents is as long as the patch's plus that; the rest of both documents is measured on a
// placeholder. That holds when both sides write a literal block: the patch asks for one (a
// literal node), machinery's representer asks for one for multi-line strings
// (shouldUseLiteralStyle), and the emitter refuses one for reasons of the contents alone, which
// the patch's encoding shows. Anything else, or contents with other line breaks (\r, NEL, LS,
// PS), is encoded again (TestGrownSizeIsEncodedSize, FuzzGrownSize).

// grownSize is len(configured(x)) - len(configured(placeholder)), where configured(x) is the
// config-side encoding of contents x and patched(x) the patch's, given patchedX and the two
// encodings of contentsPlaceholder. ok is false where the rule above does not apply.
func grownSize(patchedX, patchedPH, configuredPH []byte, x string) (int, bool) {
	if !literalBothWays(x) {
		return 0, false
	}
	prefix, j, ok := placeholderBlock(patchedPH)
	if !ok {
		return 0, false
	}
	_, k, ok := placeholderBlock(configuredPH)
	if !ok {
		return 0, false
	}
	if !bytes.HasPrefix(patchedX, prefix) || len(patchedX) == len(prefix) || patchedX[len(prefix)] != '|' {
		return 0, false
	}
	return len(patchedX) - len(patchedPH) + (k-j)*(literalLines(x)-literalLines(contentsPlaceholder)), true
}

// placeholderBlock splits the encoding of a document whose last value is contentsPlaceholder,
// written as a literal block, into what precedes the block and the block's indentation.
func placeholderBlock(enc []byte) (prefix []byte, indent int, ok bool) {
	rest, found := bytes.CutSuffix(enc, []byte(contentsPlaceholder))
	if !found {
		return nil, 0, false
	}
	for len(rest) > 0 && rest[len(rest)-1] == ' ' {
		rest = rest[:len(rest)-1]
		indent++
	}
	prefix, found = bytes.CutSuffix(rest, []byte("|\n"))
	return prefix, indent, found && indent > 0
}

// literalBothWays tells whether machinery's representer asks for a literal block for x
// (go-yaml's stringv and shouldUseLiteralStyle: valid UTF-8, a line break, a character that is
// not a space) and whether x breaks lines with "\n" alone, the only break literalLines counts.
func literalBothWays(x string) bool {
	if len(x) < 2 || !strings.Contains(x, "\n") || !utf8.ValidString(x) {
		return false
	}
	for _, b := range []string{"\r", "\u0085", "\u2028", "\u2029"} { // one search each: ContainsAny decodes every rune
		if strings.Contains(x, b) {
			return false
		}
	}
	return strings.IndexFunc(x, func(r rune) bool { return !unicode.IsSpace(r) }) >= 0
}

// literalLines counts the lines of x that are not empty: those a literal block indents.
func literalLines(x string) int {
	n := 0
	for len(x) > 0 {
		line, rest, _ := strings.Cut(x, "\n")
		if line != "" {
			n++
		}
		x = rest
	}
	return n
}

// keyFree tells whether x holds nothing serviceAccountKeyExtra counts: then the contents add
// nothing to the count, whatever their indentation.
func keyFree(o Options, x string) (bool, error) {
	contract, err := parseContract(o)
	if err != nil {
		return false, err
	}
	if !contract.UseRSAServiceAccountKey() {
		return true, nil
	}
	b, err := secretsBundle(contract)
	if err != nil {
		return false, err
	}
	pemKey := b.Certs.K8sServiceAccount.Key
	firstLine, _, _ := bytes.Cut(pemKey, []byte("\n"))
	return !strings.Contains(x, base64.StdEncoding.EncodeToString(pemKey)) && !strings.Contains(x, string(firstLine)), nil
}

// encoded returns the encoding Generate made under key, if it made one with this Cache.
func (c *Cache) encoded(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, ok := c.docs[key]
	return data, ok && data != nil
}

// fromPatch is grownSize for contents x, whose patch encoding Generate stored under key:
// patchedPH encodes the patch's document with contentsPlaceholder for x, and configuredPH is
// the config's document holding contentsPlaceholder, returned encoded as configured.
func (c *Cache) fromPatch(o Options, key, x string, patchedPH func() ([]byte, error), configuredPH any) (grown int, configured []byte, ok bool, err error) {
	patchedX, ok := c.encoded(key)
	if !ok {
		return 0, nil, false, nil
	}
	if free, err := keyFree(o, x); err != nil || !free {
		return 0, nil, false, err
	}
	ph, err := patchedPH()
	if err != nil || ph == nil {
		return 0, nil, false, err
	}
	if configured, err = encoder.NewEncoder(configuredPH, encoder.WithComments(encoder.CommentsDisabled)).Encode(); err != nil {
		return 0, nil, false, err
	}
	grown, ok = grownSize(patchedX, ph, configured, x)
	return grown, configured, ok, nil
}

// contentsSizeFromPatch is contentsSize (the v1alpha1 contract) from the list item Generate
// encoded for the same manifest (key: its manifestKey), when there is one and grownSize applies.
func (c *Cache) contentsSizeFromPatch(o Options, key, name, contents string) (docSize, bool, error) {
	patchedPH := func() ([]byte, error) {
		return v1alpha1Item(Manifest{Name: name, Contents: []byte(contentsPlaceholder)})
	}
	n, _, ok, err := c.fromPatch(o, v1alpha1ItemKeyOf(key), contents, patchedPH, v1alpha1Holding(name, contentsPlaceholder))
	return docSize{bytes: n}, ok, err
}

// manifestDocSizeFromPatch measures a KubeInlineManifestConfig document (the multi-document
// contract) from the document Generate encoded for the same manifest (key: its manifestKey),
// when there is one and grownSize applies: the document with a placeholder for its manifest,
// encoded, plus what the manifest grows it by.
func (c *Cache) manifestDocSizeFromPatch(o Options, key string, m *k8s.KubeInlineManifestConfigV1Alpha1) (docSize, bool, error) {
	patchedPH := func() ([]byte, error) {
		return encodeDoc(manifestDocument(Manifest{Name: m.MetaName, Contents: []byte(contentsPlaceholder)}))
	}
	ph := m.DeepCopy()
	ph.ManifestSpec = contentsPlaceholder
	n, configured, ok, err := c.fromPatch(o, key, m.ManifestSpec, patchedPH, ph)
	if !ok || err != nil {
		return docSize{}, false, err
	}
	extra, err := serviceAccountKeyExtra(o, configured)
	return docSize{len(configured) + n, extra}, true, err
}

// manifestDocument is the multi-document contract's patch document of a manifest.
func manifestDocument(m Manifest) *yaml.Node {
	return document("KubeInlineManifestConfig", str("name"), str(m.Name), str("manifest"), literal(string(m.Contents)))
}
