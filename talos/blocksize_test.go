package talos

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/k8s"
)

// sizeBothWays measures contents x of a manifest named name as Validate's Cache does after
// Generate encoded it (from the patch's encoding) and by encoding it again as machinery does.
// fromPatch is false when the rule of grownSize does not apply.
func sizeBothWays(t testing.TB, v, name, x string) (fromPatch, encoded docSize, ok bool) {
	t.Helper()
	o := options(v)
	o.Manifests = []Manifest{{Name: name, Contents: []byte(x)}}
	c := &Cache{}
	o.Cache = c
	if _, err := Generate(o); err != nil {
		t.Skipf("contents Generate refuses: %v", err) // not a manifest gen can write
	}
	contract, err := parseContract(o)
	if err != nil {
		t.Fatal(err)
	}
	if !contract.MultidocKubernetesConfigSupported() {
		fromPatch, ok, err = c.contentsSizeFromPatch(o, manifestKey(name, []byte(x)), name, x)
		if err != nil {
			t.Fatal(err)
		}
		encoded, err = contentsSize(o, name, x)
		if err != nil {
			t.Fatal(err)
		}
		return fromPatch, encoded, ok
	}
	m := k8s.NewKubeInlineManifestConfigV1Alpha1()
	m.MetaName, m.ManifestSpec = name, x
	fromPatch, ok, err = c.manifestDocSizeFromPatch(o, manifestKey(name, []byte(x)), m)
	if err != nil {
		t.Fatal(err)
	}
	data, err := encoder.NewEncoder(m, encoder.WithComments(encoder.CommentsDisabled)).Encode()
	if err != nil {
		t.Fatal(err)
	}
	extra, err := serviceAccountKeyExtra(o, data)
	if err != nil {
		t.Fatal(err)
	}
	return fromPatch, docSize{len(data), extra}, ok
}

// A manifest's size taken from the patch's encoding of it is the size of encoding it again,
// on both contracts: for the lab's real CRD bundle and for contents whose literal block needs
// an indentation hint, a chomping indicator, empty lines, or that a literal block cannot hold
// (those must be encoded again). The manifests gen writes take the shortcut.
func TestGrownSizeIsEncodedSize(t *testing.T) {
	ms, err := PatchManifests(filepath.Join("..", "integration", "testdata", "lab", "generated", "apps", "controlplane.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var labCRDs string
	for _, m := range ms {
		if m.Name == CRDManifest {
			labCRDs = string(m.Contents)
		}
	}
	if len(labCRDs) < 1<<20 {
		t.Fatalf("the lab's %s holds %d bytes, want its CRD bundle", CRDManifest, len(labCRDs))
	}
	shortcut := []string{labCRDs, crds, apps, "a: 1\n", "a: 1\nb: 2", "a: 1\n\n\n", " leading: space\n", "x\n\n", "a\n\n\nb\n",
		"# comment\n---\nc: 3\n", strings.Repeat("long line ", 40) + "end\n", "\"quoted\": 'x'\n", "tab\there\n", "unicode: é ü 日本\n", "placeholder\n", "a:\n    deep: 1\n  back: 2\n"}
	// Not a literal block on one side or both (a single line, leading line breaks, a space
	// before a line break, only spaces, a control character), or line breaks literalLines does not count.
	encodeAgain := []string{"a: 1", "\n\nb: 2\n", "trailing \nspace\n", "  \n \n", "bell\a\n", " \n", "crlf: 1\r\nnext: 2\r\n", "nel\u0085line\n"}
	for _, v := range contracts {
		for i, x := range append(shortcut, encodeAgain...) {
			t.Run(fmt.Sprintf("%s/%d", v, i), func(t *testing.T) {
				fromPatch, encoded, ok := sizeBothWays(t, v, "bootcore-crds", x)
				if ok && fromPatch != encoded {
					t.Errorf("contents %.40q: %+v from the patch, %+v encoded", x, fromPatch, encoded)
				}
				if want := i < len(shortcut); ok != want {
					t.Errorf("contents %.40q: shortcut taken %v, want %v", x, ok, want)
				}
			})
		}
	}
}

func FuzzGrownSize(f *testing.F) {
	for _, x := range []string{crds, "a: 1\n", " x\n\n y", "\n\n", "a\tb\n c \n", "é\n"} {
		f.Add(x, false)
	}
	f.Fuzz(func(t *testing.T, x string, multidoc bool) {
		v := contracts[0]
		if multidoc {
			v = contracts[1]
		}
		fromPatch, encoded, ok := sizeBothWays(t, v, "bootcore-cni", x)
		if ok && fromPatch != encoded {
			t.Fatalf("contents %q: %+v from the patch, %+v encoded", x, fromPatch, encoded)
		}
	})
}
