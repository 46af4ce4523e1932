package agent

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bootcore-dev/bootcore/integration/talosemu"
)

// Until the boot CNI runs a control-plane node is NotReady: the check says which node and why,
// a dry run says what it would wait for, and the wait ends once Talos has applied the CNI.
func TestWaitControlPlaneWaitsForTheBootCNI(t *testing.T) {
	c, k := onBed(t, "waitcp")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep := NewReporter(&out, true)
	p := &waitControlPlanePhase{env{inputs: &inputs{}, k: k, rep: rep}}

	before, err := p.Done(ctx)
	if err != nil || before.Done || !strings.Contains(before.Why, "control-plane nodes not Ready: controlplane-1 (") {
		t.Fatalf("before boot: %+v, %v; want controlplane-1 not Ready", before, err)
	}
	if _, err := p.DryRun(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := rep.Events(); len(ev) != 1 || ev[0].Message != "would wait for: "+before.Why {
		t.Fatalf("dry run events: %+v", ev)
	}

	// The wait runs while the node boots, as it does after `talosctl apply-config`.
	waited := make(chan error, 1)
	go func() { _, err := p.Run(ctx); waited <- err }()
	cfg, err := talosemu.MachineConfig(talosemu.ConfigOptions{}, []byte(cniOnlyPatch))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&talosemu.Node{Name: "controlplane-1", Config: c.Config, Logf: t.Logf}).Boot(ctx, cfg, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("wait: %v\nevents: %s", err, out.String())
	}
	if !hasEvent(rep, EventReady, "Node controlplane-1") {
		t.Errorf("no Ready event for the node: %s", out.String())
	}
	after, err := p.Done(ctx)
	if err != nil || !after.Done || after.Why != "1 control-plane nodes Ready" {
		t.Errorf("after boot: %+v, %v", after, err)
	}
}

func hasEvent(rep *Reporter, typ EventType, object string) bool {
	for _, e := range rep.Events() {
		if e.Type == typ && e.Object == object {
			return true
		}
	}
	return false
}
