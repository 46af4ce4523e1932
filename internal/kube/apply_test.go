package kube_test

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/ssa"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/kube"
)

func obj(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

func actions(changes []kube.Change) []string {
	var out []string
	for _, c := range changes {
		s := c.Object + " " + string(c.Action)
		if c.Note != "" {
			s += " (" + c.Note + ")"
		}
		out = append(out, s)
	}
	return out
}

// What the agent's prerequisites and record phases rely on: a dry run says what would change
// and writes nothing, even for objects in a namespace the same run creates; an apply creates,
// then finds nothing to do (no write: the resourceVersion stays), then changes only what
// changed, and drops keys an earlier apply set that the new one leaves out.
func TestApplyAndDiff(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "apply", ControlPlanes: 1, Workers: -1})
	k, err := kube.New(c.Config, "bootcore-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := obj("v1", "Namespace", "", "boot", nil)
	secret := obj("v1", "Secret", "boot", "token", map[string]any{"stringData": map[string]any{"token": "s3cr3t"}})
	marker := obj("v1", "ConfigMap", "boot", "marker", map[string]any{"data": map[string]any{"a": "1", "stale": "x"}})
	objs := []*unstructured.Unstructured{ns, secret, marker}

	diff, err := k.Diff(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Namespace boot created", "Secret boot/token created (namespace boot does not exist yet)", "ConfigMap boot/marker created (namespace boot does not exist yet)"}
	if got := actions(diff); !equal(got, want) {
		t.Errorf("dry run:\n got %q\nwant %q", got, want)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "boot", metav1.GetOptions{}); err == nil {
		t.Fatal("the dry run created namespace boot")
	}

	applied, err := k.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(applied), []string{"Namespace boot created", "Secret boot/token created", "ConfigMap boot/marker created"}; !equal(got, want) {
		t.Errorf("first apply:\n got %q\nwant %q", got, want)
	}
	before, err := c.Client.CoreV1().Secrets("boot").Get(ctx, "token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := k.Apply(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range again {
		if ch.Action != ssa.UnchangedAction {
			t.Errorf("second apply: %s %s, want unchanged", ch.Object, ch.Action)
		}
	}
	after, err := c.Client.CoreV1().Secrets("boot").Get(ctx, "token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("an unchanged apply wrote the Secret (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}

	secret.Object["stringData"] = map[string]any{"token": "rotated"}
	marker.Object["data"] = map[string]any{"a": "2"}
	diff, err = k.Diff(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(diff), []string{"Namespace boot unchanged", "Secret boot/token configured", "ConfigMap boot/marker configured"}; !equal(got, want) {
		t.Errorf("dry run of a change:\n got %q\nwant %q", got, want)
	}
	if _, err := k.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	cm, err := c.Client.CoreV1().ConfigMaps("boot").Get(ctx, "marker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 1 || cm.Data["a"] != "2" {
		t.Errorf("marker data after the re-apply = %v, want only a=2 (the key left out is dropped)", cm.Data)
	}
	s, err := c.Client.CoreV1().Secrets("boot").Get(ctx, "token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data["token"]) != "rotated" {
		t.Errorf("Secret value not updated")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
