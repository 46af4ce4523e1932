package talos

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/siderolabs/talos/pkg/machinery/config"
	coreconfig "github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/k8s"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
	"go.yaml.in/yaml/v4"
)

// Cache lets the clusters of one run share the YAML encoding and loading of their equal inline
// manifests. A fleet's clusters carry the same megabytes of CRDs, and encoding them (into the
// patch, and into each config to measure it) and loading them (each patch Validate applies) was
// most of Generate's and Validate's time per cluster. On the multi-document contract every
// inline manifest is a document of its own, encoded on its own by the YAML encoder and by
// machinery's container (Container.encodeToBuf: each document encoded alone, joined by "---"),
// so a document's bytes depend on its contents alone and are reused. The v1alpha1 contract keeps
// manifests in the v1alpha1 document's cluster.inlineManifests list, whose items are encoded,
// measured and loaded on their own the same way (encodeV1alpha1, v1alpha1Size, loadV1alpha1).
// Loaded patches and documents are shared by their bytes (loadPatch, loadDocs).
//
// A nil Cache shares nothing. Results are the same with and without one (TestCacheIsTransparent).
type Cache struct {
	mu      sync.Mutex
	docs    map[string][]byte                // encoded patch documents
	sizes   map[string]docSize               // encoded config documents, measured
	patches map[[32]byte]configpatcher.Patch // loaded patches, by the digest of their bytes
}

type docSize struct{ bytes, extra int }

func (c *Cache) doc(key string, encode func() ([]byte, error)) ([]byte, error) {
	return remember(&c.mu, &c.docs, key, encode)
}

func (c *Cache) size(key string, measure func() (docSize, error)) (docSize, error) {
	return remember(&c.mu, &c.sizes, key, measure)
}

// loadPatch is configpatcher.LoadPatch, once per Cache for byte-identical patches: the clusters
// of a flavour often validate the same patches, megabytes of inline manifests to parse. Sharing
// the loaded patch is safe because nothing writes to it (TestSharedPatchesAreTransparent).
// Machinery's configpatcher.Apply hands a strategic-merge patch to StrategicMerge, which clones
// the config it patches (cfg.Clone()), appends clones of the patch's new documents
// (rightDoc.Clone()), merges the others with merge.Merge(leftDoc, rightDoc), which only reads its
// right side, and applies delete selectors to the left documents (selector.ApplyTo reads the
// selector). The patched config may still alias parts of the patch (merge.Merge sets a nil
// pointer, map or replaced slice of the left to the right's), so Validate, the only caller,
// keeps its configs to itself and writes to none: the next patch applies to a clone, and
// v1alpha1Size writes its placeholders into a clone.
func (c *Cache) loadPatch(data []byte) (configpatcher.Patch, error) {
	if c == nil {
		return configpatcher.LoadPatch(data)
	}
	return remember(&c.mu, &c.patches, sha256.Sum256(data), func() (configpatcher.Patch, error) {
		return configpatcher.LoadPatch(data)
	})
}

// loadDocs is loadPatch for a patch of several YAML documents (the multi-document contract's
// control-plane patch: its inline manifests are documents of their own), each document loaded
// once per Cache: a fleet's clusters carry the same megabytes of CRDs in different patches.
// Machinery's loader (configloader.NewFromBytes, as LoadPatch calls it) decodes a stream's
// documents one by one, with no state between them but a duplicate check LoadPatch turns off
// and the document's index, which only delete selectors keep; and it returns the decoded
// documents in a readonly unvalidated container over the patch's bytes. So the patch is that
// container over the documents of its documents loaded alone, provided only the first holds
// delete selectors. Anything else (a document that does not load alone as a strategic-merge
// patch, a selector after the first document, a marker the split does not know) is loaded whole.
func (c *Cache) loadDocs(data []byte) (configpatcher.Patch, error) {
	if c == nil {
		return configpatcher.LoadPatch(data)
	}
	pieces := splitDocs(data)
	if len(pieces) < 2 {
		return c.loadV1alpha1(data)
	}
	var docs []coreconfig.Document
	for i, piece := range pieces {
		p, err := c.loadPatch(piece)
		if err != nil {
			return c.loadPatch(data)
		}
		smp, ok := p.(configpatcher.StrategicMergePatch)
		if !ok {
			return c.loadPatch(data)
		}
		for _, doc := range smp.Documents() {
			if _, ok := doc.(configloader.Selector); ok && i > 0 {
				return c.loadPatch(data)
			}
			docs = append(docs, doc)
		}
	}
	return configpatcher.NewStrategicMergePatch(container.NewReadonlyUnvalidated(data, docs...)), nil
}

// loadV1alpha1 is loadPatch for the v1alpha1 control-plane patch (v1alpha1ControlPlane), with
// each inline manifest's list item loaded once per Cache. The patch is one v1alpha1 document whose
// last lines are the items of cluster.inlineManifests. Machinery's loader decodes the document
// into a v1alpha1.Config field by field (yaml struct decoding, then its unknown-key and null checks
// on the same nodes), and the list item by item (ClusterInlineManifests.UnmarshalYAML decodes the
// list, then trims each item's contents alone). So the loaded document is the head's (the patch
// up to cluster.inlineManifests) with the items of the items loaded alone, each as the only item
// of a v1alpha1 patch (TestLoadDocsIsLoadPatch). Any other shape is loaded whole.
func (c *Cache) loadV1alpha1(data []byte) (configpatcher.Patch, error) {
	const listKey, itemPrefix = "  inlineManifests:\n", "    - "
	at := bytes.Index(data, []byte("\n"+listKey))
	if at < 0 {
		return c.loadPatch(data)
	}
	head, rest := data[:at+1], data[at+1+len(listKey):]
	var starts []int
	for line := 0; line < len(rest); {
		end := bytes.IndexByte(rest[line:], '\n')
		if end < 0 {
			return c.loadPatch(data) // the encoder ends every line
		}
		end += line + 1
		switch l := rest[line:end]; {
		case bytes.HasPrefix(l, []byte(itemPrefix)):
			starts = append(starts, line)
		case len(starts) > 0 && (string(l) == "\n" || bytes.HasPrefix(l, []byte("      "))):
		default:
			return c.loadPatch(data)
		}
		line = end
	}
	items := make([][]byte, len(starts))
	for k, start := range starts {
		end := len(rest)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		items[k] = rest[start:end]
	}
	if len(items) == 0 {
		return c.loadPatch(data)
	}
	single := func(p configpatcher.Patch) *v1alpha1.Config {
		smp, ok := p.(configpatcher.StrategicMergePatch)
		if !ok || len(smp.Documents()) != 1 {
			return nil
		}
		doc, _ := smp.Documents()[0].(*v1alpha1.Config)
		return doc
	}
	p, err := c.loadPatch(head)
	if err != nil {
		return c.loadPatch(data)
	}
	headDoc := single(p)
	if headDoc == nil || headDoc.ClusterConfig == nil || headDoc.ClusterConfig.ClusterInlineManifests != nil {
		return c.loadPatch(data)
	}
	var list v1alpha1.ClusterInlineManifests
	for _, item := range items {
		p, err := c.loadPatch(append([]byte("cluster:\n"+listKey), item...))
		if err != nil {
			return c.loadPatch(data)
		}
		doc := single(p)
		if doc == nil || doc.ClusterConfig == nil || len(doc.ClusterConfig.ClusterInlineManifests) != 1 {
			return c.loadPatch(data)
		}
		list = append(list, doc.ClusterConfig.ClusterInlineManifests[0])
	}
	doc := headDoc.DeepCopy()
	doc.ClusterConfig.ClusterInlineManifests = list
	return configpatcher.NewStrategicMergePatch(container.NewReadonlyUnvalidated(data, doc)), nil
}

// splitDocs splits a YAML stream before each document start marker, a line "---": at the start
// of a line a marker cannot be part of a scalar (block scalars are indented, and the scanner
// ends any other scalar there). It returns nil for a stream with other markers at the start of
// a line ("--- " with content, "...", a directive), which are left to the loader.
func splitDocs(data []byte) [][]byte {
	var pieces [][]byte
	start := 0
	for at := 0; at < len(data); {
		end := bytes.IndexByte(data[at:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += at + 1
		}
		line := data[at:end]
		switch {
		case string(line) == "---\n":
			if at > start {
				pieces = append(pieces, data[start:at])
			}
			start = at
		case bytes.HasPrefix(line, []byte("---")), bytes.HasPrefix(line, []byte("...")), bytes.HasPrefix(line, []byte("%")):
			return nil
		}
		at = end
	}
	return append(pieces, data[start:])
}

// remember returns (*m)[key], computing and storing it when absent. compute runs unlocked: two
// clusters may both compute one key, and both get the same result.
func remember[K comparable, V any](mu *sync.Mutex, m *map[K]V, key K, compute func() (V, error)) (V, error) {
	mu.Lock()
	v, ok := (*m)[key]
	mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := compute()
	if err != nil {
		return v, err
	}
	mu.Lock()
	defer mu.Unlock()
	if *m == nil {
		*m = map[K]V{}
	}
	(*m)[key] = v
	return v, nil
}

func manifestKey(name string, contents []byte) string {
	sum := sha256.Sum256(contents)
	return fmt.Sprintf("%d:%s:%s", len(name), name, hex.EncodeToString(sum[:]))
}

// encodeDocs is encodePatch for documents of which shared[i], when not empty, identifies
// docs[i] by its contents: those are encoded once per Cache. The YAML encoder writes a stream of
// documents as each document's encoding joined by "---" (TestEncodeDocsIsEncodePatch).
func (c *Cache) encodeDocs(docs []*yaml.Node, shared []string) ([]byte, error) {
	if c == nil {
		return encodePatch(docs)
	}
	var buf bytes.Buffer
	buf.WriteString(Header)
	for i, doc := range docs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		encode := func() ([]byte, error) { return encodeDoc(doc) }
		var data []byte
		var err error
		if shared[i] != "" {
			data, err = c.doc(shared[i], encode)
		} else {
			data, err = encode()
		}
		if err != nil {
			return nil, err
		}
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

func encodeDoc(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodedSize is the size Report.add measures, len(cfg.EncodeBytes(comments disabled)) plus
// serviceAccountKeyExtra, summed over the documents the way machinery's container encodes them:
// the v1alpha1 document, then every other document, each encoded alone and joined by "---\n".
// Inline-manifest documents are measured once per Cache. Neither the base64 key nor the PEM
// block serviceAccountKeyExtra looks for can span the "---" between two documents, so its
// count over the whole is the sum of the documents' counts.
func (c *Cache) encodedSize(o Options, cfg config.Provider) (int, error) {
	docs := cfg.Documents()
	manifests := 0
	for i, doc := range docs {
		if _, ok := doc.(*k8s.KubeInlineManifestConfigV1Alpha1); ok {
			manifests++
		}
		if _, ok := doc.(*v1alpha1.Config); ok && i > 0 {
			manifests = 0 // v1alpha1 delete selectors come first: not a config to measure this way
			break
		}
	}
	if c == nil {
		return wholeSize(o, cfg)
	}
	if manifests == 0 {
		return c.v1alpha1Size(o, cfg)
	}
	contract, err := parseContract(o)
	if err != nil {
		return 0, err
	}
	encoded, total := 0, 0
	for _, doc := range docs {
		measure := func() (docSize, error) {
			data, err := encoder.NewEncoder(doc, encoder.WithComments(encoder.CommentsDisabled)).Encode()
			if err != nil {
				return docSize{}, err
			}
			extra, err := serviceAccountKeyExtra(o, data)
			return docSize{len(data), extra}, err
		}
		var s docSize
		if m, ok := doc.(*k8s.KubeInlineManifestConfigV1Alpha1); ok {
			key := manifestKey(m.MetaName, []byte(m.ManifestSpec))
			s, err = c.size(contract.String()+" "+key, func() (docSize, error) {
				if s, ok, err := c.manifestDocSizeFromPatch(o, key, m); ok || err != nil {
					return s, err
				}
				return measure()
			})
		} else {
			s, err = measure()
		}
		if err != nil {
			return 0, err
		}
		if _, ok := doc.(*v1alpha1.Config); !ok && encoded > 0 {
			encoded += len("---\n")
			total += len("---\n")
		}
		encoded += s.bytes
		total += s.bytes + s.extra
	}
	return total, nil
}

func wholeSize(o Options, cfg config.Provider) (int, error) {
	encoded, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		return 0, err
	}
	extra, err := serviceAccountKeyExtra(o, encoded)
	if err != nil {
		return 0, err
	}
	return len(encoded) + extra, nil
}

// v1alpha1Size is wholeSize for configs whose inline manifests live in the v1alpha1 document
// (contract <= v1.13), with each manifest's contents measured once per Cache. Machinery's
// encoder marshals the document with YAML, and the YAML emitter writes a scalar from its
// contents, its indentation and its column alone: every inline manifest's contents is the value
// of cluster.inlineManifests[i].contents, at one indentation and column in every v1alpha1
// document. So the encoded config is the config with every manifest's contents replaced by a
// placeholder, plus per manifest what its contents encode to beyond the placeholder, measured
// on a v1alpha1 document holding nothing else (TestV1alpha1SizeIsWholeSize, on the lab's
// configs). The service-account key serviceAccountKeyExtra counts cannot cross into or out of
// a manifest's contents: those are delimited by "contents: " and a line break, which neither the
// base64 key nor a PEM line holds, so the extra is additive too.
func (c *Cache) v1alpha1Size(o Options, cfg config.Provider) (int, error) {
	var list v1alpha1.ClusterInlineManifests
	for _, doc := range cfg.Documents() {
		if v, ok := doc.(*v1alpha1.Config); ok && v.ClusterConfig != nil {
			list = v.ClusterConfig.ClusterInlineManifests
		}
	}
	if len(list) == 0 {
		return wholeSize(o, cfg)
	}
	contract, err := parseContract(o)
	if err != nil {
		return 0, err
	}
	placeholders := cfg.Clone()
	total := 0
	for _, doc := range placeholders.Documents() {
		v, ok := doc.(*v1alpha1.Config)
		if !ok || v.ClusterConfig == nil {
			continue
		}
		for i := range v.ClusterConfig.ClusterInlineManifests {
			m := &v.ClusterConfig.ClusterInlineManifests[i]
			key := manifestKey(m.InlineManifestName, []byte(m.InlineManifestContents))
			s, err := c.size(contract.String()+" v1alpha1 "+key, func() (docSize, error) {
				if s, ok, err := c.contentsSizeFromPatch(o, key, m.InlineManifestName, m.InlineManifestContents); ok || err != nil {
					return s, err
				}
				return contentsSize(o, m.InlineManifestName, m.InlineManifestContents)
			})
			if err != nil {
				return 0, err
			}
			total += s.bytes + s.extra
			m.InlineManifestContents = contentsPlaceholder
		}
	}
	rest, err := wholeSize(o, placeholders)
	if err != nil {
		return 0, err
	}
	return total + rest, nil
}

const contentsPlaceholder = "placeholder\n"

// contentsSize is what an inline manifest's contents add to an encoded v1alpha1 document over
// contentsPlaceholder, and to serviceAccountKeyExtra's count.
func contentsSize(o Options, name, contents string) (docSize, error) {
	measure := func(contents string) (docSize, error) {
		data, err := encoder.NewEncoder(v1alpha1Holding(name, contents), encoder.WithComments(encoder.CommentsDisabled)).Encode()
		if err != nil {
			return docSize{}, err
		}
		extra, err := serviceAccountKeyExtra(o, data)
		return docSize{len(data), extra}, err
	}
	with, err := measure(contents)
	if err != nil {
		return docSize{}, err
	}
	without, err := measure(contentsPlaceholder)
	if err != nil {
		return docSize{}, err
	}
	return docSize{with.bytes - without.bytes, with.extra - without.extra}, nil
}

// v1alpha1Holding is a v1alpha1 document holding one inline manifest and nothing else.
func v1alpha1Holding(name, contents string) *v1alpha1.Config {
	return &v1alpha1.Config{ConfigVersion: "v1alpha1", ClusterConfig: &v1alpha1.ClusterConfig{
		ClusterInlineManifests: v1alpha1.ClusterInlineManifests{{InlineManifestName: name, InlineManifestContents: contents}},
	}}
}

// encodeV1alpha1 is encodePatch of the v1alpha1 control-plane patch cp (v1alpha1ControlPlane)
// with each manifest's list item encoded once per Cache. The YAML encoder writes a block
// sequence item from the item and its indentation alone, and the items are the document's
// last lines: the document is its encoding with one placeholder item, less that item, followed
// by the items, each encoded as the only item of cluster.inlineManifests
// (TestEncodeV1alpha1IsEncodePatch, and gen --check on the lab's v1.13 cluster). An encoding
// that does not have that shape is not spliced: cp is encoded whole.
func (c *Cache) encodeV1alpha1(cp *yaml.Node, manifests []Manifest) ([]byte, error) {
	whole := func() ([]byte, error) { return encodePatch([]*yaml.Node{cp}) }
	cluster := cp.Content[1]
	list := cluster.Content[len(cluster.Content)-1]
	if list.Kind != yaml.SequenceNode || len(list.Content) != len(manifests) {
		return whole()
	}
	placeholder := Manifest{Name: "placeholder", Contents: []byte(contentsPlaceholder)}
	p, err := v1alpha1Item(placeholder)
	if err != nil || p == nil {
		return whole()
	}
	kv := cluster.Content[:len(cluster.Content)-2]
	head, err := encodeDoc(v1alpha1ControlPlane(kv[:len(kv):len(kv)], []*yaml.Node{inlineManifestItem(placeholder)}))
	if err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(head, p) {
		return whole()
	}
	var buf bytes.Buffer
	buf.WriteString(Header)
	buf.Write(head[:len(head)-len(p)])
	for _, m := range manifests {
		data, err := c.doc(v1alpha1ItemKey(m.Name, m.Contents), func() ([]byte, error) { return v1alpha1Item(m) })
		if err != nil {
			return nil, err
		}
		if data == nil {
			return whole()
		}
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

func v1alpha1ItemKey(name string, contents []byte) string {
	return v1alpha1ItemKeyOf(manifestKey(name, contents))
}

func v1alpha1ItemKeyOf(manifestKey string) string { return "v1alpha1 item " + manifestKey }

// v1alpha1Item is m's item of cluster.inlineManifests as the patch's encoding writes it, or nil
// when the encoding does not have the shape encodeV1alpha1 splices.
func v1alpha1Item(m Manifest) ([]byte, error) {
	const itemPrefix = "cluster:\n  inlineManifests:\n"
	data, err := encodeDoc(v1alpha1ControlPlane(nil, []*yaml.Node{inlineManifestItem(m)}))
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(data, []byte(itemPrefix)) {
		return nil, nil
	}
	return data[len(itemPrefix):], nil
}
