package agent

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// A wait notices an object turning Ready through its watch, not the poll: with an hour-long
// poll interval it still returns as soon as the object changes, on a real API server.
func TestWaitTargetsWakesOnWatch(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "waitwatch", ControlPlanes: 1, Workers: 0})
	k, err := newKube(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	s := &state{k: k, rep: NewReporter(out, true), opts: Options{PollInterval: time.Hour, ProgressEvery: time.Hour}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "flag", Namespace: "default"}, Data: map[string]string{"ready": "no"}}
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := func(u *unstructured.Unstructured) (bool, string) {
		v, _, _ := unstructured.NestedString(u.Object, "data", "ready")
		return v == "yes", "ready=" + v
	}
	done := make(chan error, 1)
	go func() {
		done <- s.waitTargets(ctx, PhaseHandover, []target{{GVK: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Namespace: "default", Name: "flag", Ready: ready}})
	}()
	// Flip the flag once the wait has reported that it waits (its watches run by then).
	for !out.contains([]byte(`"waiting for ConfigMap default/flag`)) {
		select {
		case err := <-done:
			t.Fatalf("wait ended before the object was Ready: %v", err)
		case <-ctx.Done():
			t.Fatal("no progress event")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cm.Data["ready"] = "yes"
	flipped := time.Now()
	if _, err := c.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Ready noticed %s after the update", time.Since(flipped))
	case <-time.After(30 * time.Second):
		t.Fatal("the wait did not notice the object turning Ready within 30 s (poll interval 1 h): no watch")
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) contains(s []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Contains(b.buf.Bytes(), s)
}
