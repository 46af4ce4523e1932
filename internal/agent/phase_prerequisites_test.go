package agent

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/internal/spec"
)

// The namespaces and bootstrap Secrets are created, a dry run creates nothing, a changed
// input value applies the Secret again, and no event carries a value.
func TestPrerequisitesCreateNamespacesAndSecrets(t *testing.T) {
	_, k := onBed(t, "prereq")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	agent := spec.Agent{
		Namespaces: []string{"external-secrets"},
		Secrets:    []spec.AgentSecret{{Name: "external-secrets/onepassword-connect", Data: map[string]spec.SecretSource{"token": {Env: "OP_TOKEN"}}}},
	}
	token := func(v string) []*corev1.Secret {
		return []*corev1.Secret{{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "external-secrets", Name: "onepassword-connect"},
			Data:       map[string][]byte{"token": []byte(v)},
		}}
	}
	p := &prerequisitesPhase{env: env{inputs: &inputs{agent: agent}, k: k, rep: NewReporter(&out, true)}, secrets: token("token-value-1")}

	if o, err := p.Done(ctx); err != nil || o.Done || o.Why != "Namespace external-secrets missing" {
		t.Fatalf("before: %+v, %v", o, err)
	}
	if _, err := p.DryRun(ctx); err != nil {
		t.Fatal(err)
	}
	if o, err := p.Done(ctx); err != nil || o.Done {
		t.Fatalf("the dry run created something: %+v, %v", o, err)
	}
	if _, err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if o, err := p.Done(ctx); err != nil || !o.Done || o.Why != "1 namespaces and 1 Secrets present" {
		t.Fatalf("after the run: %+v, %v", o, err)
	}

	p.secrets = token("token-value-2")
	if o, err := p.Done(ctx); err != nil || o.Done || o.Why != "Secret external-secrets/onepassword-connect differs from its inputs" {
		t.Fatalf("changed input: %+v, %v", o, err)
	}
	if _, err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	live, err := k.Clientset.CoreV1().Secrets("external-secrets").Get(ctx, "onepassword-connect", metav1.GetOptions{})
	if err != nil || string(live.Data["token"]) != "token-value-2" {
		t.Fatalf("live Secret: %v, %v", live, err)
	}
	// The run-once check (no inputs read) asks only for the keys.
	p.secrets = nil
	if o, err := p.Done(ctx); err != nil || !o.Done {
		t.Fatalf("run-once check: %+v, %v", o, err)
	}
	if strings.Contains(out.String(), "token-value") {
		t.Errorf("an event carries a Secret value: %s", out.String())
	}
	if !strings.Contains(out.String(), "keys token") {
		t.Errorf("the events do not name the Secret's keys: %s", out.String())
	}
}
