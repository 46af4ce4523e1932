package kube

import (
	"fmt"
	"strings"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Readiness decides from an object whether it is Ready and says why not (or how it is). These
// are the one definition of "Ready" bootcore uses, in `bootcore status` and in the agent's
// waits. They are pure: a check that compares its object with another (a Kustomization with its
// source) reads that one through seen, which holds what the same read or wait saw of the
// targets' Needs.
type Readiness func(obj *unstructured.Unstructured, seen Lookup) (ready bool, msg string)

// Lookup returns what the current read or wait saw of ref; nil when it saw nothing.
type Lookup func(ref Ref) *unstructured.Unstructured

// Target is one object that must be Ready.
type Target struct {
	Ref
	Ready Readiness
	// Needs are the objects Ready reads through its Lookup besides the target itself.
	Needs []Ref
	// Explain lists objects whose state explains this one's (a FluxInstance waits for its sync
	// source): a timeout report includes their status too.
	Explain []Target
}

// Workload uses kstatus (the library Flux's health checks use): Current means rolled out.
func Workload(u *unstructured.Unstructured, _ Lookup) (bool, string) {
	res, err := status.Compute(u)
	if err != nil {
		return false, err.Error()
	}
	msg := string(res.Status)
	if res.Message != "" {
		msg += ": " + res.Message
	}
	return res.Status == status.CurrentStatus, msg
}

// Flux is Flux's own notion: condition Ready=True for the current generation (the
// condition's observedGeneration, else status.observedGeneration).
func Flux(u *unstructured.Unstructured, _ Lookup) (bool, string) {
	cond, ok := Condition(u, "Ready")
	if !ok {
		return false, "no Ready condition yet"
	}
	observed, found, _ := unstructured.NestedInt64(cond, "observedGeneration")
	if !found {
		observed, _, _ = unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	}
	msg := fmt.Sprintf("Ready=%v %v: %v", cond["status"], cond["reason"], cond["message"])
	if observed != u.GetGeneration() {
		return false, fmt.Sprintf("generation %d not observed yet (last %s)", u.GetGeneration(), msg)
	}
	return cond["status"] == "True", msg
}

// Stalled reports whether Flux gave up on the object at its current generation: condition
// Stalled=True, which helm-controller sets once remediation retries are exhausted and the
// kustomize and source controllers set for errors no retry fixes, or kstatus' Failed. Such an
// object stays not Ready until its spec changes, so a wait on it ends now (as flux's own wait
// does).
func Stalled(u *unstructured.Unstructured) (bool, string) {
	cond, ok := Condition(u, "Stalled")
	if !ok || cond["status"] != "True" {
		return false, ""
	}
	observed, found, _ := unstructured.NestedInt64(cond, "observedGeneration")
	if !found {
		observed, found, _ = unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	}
	if found && observed != u.GetGeneration() {
		return false, ""
	}
	msg := fmt.Sprintf("Stalled=True %v: %v", cond["reason"], cond["message"])
	if ready, ok := Condition(u, "Ready"); ok && ready["status"] != "True" {
		msg += fmt.Sprintf("; Ready=%v %v: %v", ready["status"], ready["reason"], ready["message"])
	}
	return true, msg
}

// Condition returns the object's status condition of type typ.
func Condition(u *unstructured.Unstructured, typ string) (map[string]any, bool) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ {
			return m, true
		}
	}
	return nil, false
}

// All combines checks: Ready when all are; the message is the first failure's, or all of them
// joined.
func All(checks ...Readiness) Readiness {
	return func(u *unstructured.Unstructured, seen Lookup) (bool, string) {
		var msgs []string
		for _, c := range checks {
			ok, msg := c(u, seen)
			if !ok {
				return false, msg
			}
			if msg != "" {
				msgs = append(msgs, msg)
			}
		}
		return true, strings.Join(msgs, "; ")
	}
}

// Replicas checks a Deployment's replica count against the one cluster-settings asks for
// (key from): spec and ready replicas must both be want.
func Replicas(want int64, from string) Readiness {
	return func(u *unstructured.Unstructured, _ Lookup) (bool, string) {
		spec, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		ready, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
		msg := fmt.Sprintf("%d/%d replicas ready, expected %d (%s in cluster-settings)", ready, spec, want, from)
		return spec == want && ready == want, msg
	}
}

// Revision adds the source or applied revision to a Flux object's message, unless Flux's own
// message names it already. It never makes an object not Ready.
func Revision(u *unstructured.Unstructured, _ Lookup) (bool, string) {
	cond, _ := Condition(u, "Ready")
	msg, _ := cond["message"].(string)
	for _, path := range [][]string{{"status", "artifact", "revision"}, {"status", "lastAppliedRevision"}} {
		if rev, _, _ := unstructured.NestedString(u.Object, path...); rev != "" && !strings.Contains(msg, rev) {
			return true, "revision " + rev
		}
	}
	return true, ""
}

// SourceOf is the source a Kustomization reads (spec.sourceRef; its namespace defaults to the
// Kustomization's).
func SourceOf(ks *unstructured.Unstructured) (Ref, bool) {
	kind, _, _ := unstructured.NestedString(ks.Object, "spec", "sourceRef", "kind")
	name, _, _ := unstructured.NestedString(ks.Object, "spec", "sourceRef", "name")
	ns, _, _ := unstructured.NestedString(ks.Object, "spec", "sourceRef", "namespace")
	if ns == "" {
		ns = ks.GetNamespace()
	}
	if kind != "GitRepository" || name == "" {
		return Ref{}, false
	}
	return Ref{GVK: GitRepository, Namespace: ns, Name: name}, true
}

// AppliedSourceRevision: a Kustomization has applied its GitRepository's current artifact (the
// source is among the target's Needs); for other sources, that it applied any revision.
func AppliedSourceRevision(ks *unstructured.Unstructured, seen Lookup) (bool, string) {
	applied, _, _ := unstructured.NestedString(ks.Object, "status", "lastAppliedRevision")
	src, ok := SourceOf(ks)
	if !ok {
		return applied != "", "applied " + applied
	}
	u := seen(src)
	if u == nil {
		return false, "source " + src.String() + " not found"
	}
	rev, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "revision")
	if rev == "" || applied != rev {
		return false, fmt.Sprintf("applied revision %q, source is at %q", applied, rev)
	}
	return true, "applied " + applied
}

// Node returns whether the node's Ready condition is True, and the condition's message.
func Node(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			msg := fmt.Sprintf("Ready=%s", c.Status)
			if c.Reason != "" {
				msg += " " + c.Reason
			}
			if c.Message != "" {
				msg += ": " + c.Message
			}
			return c.Status == corev1.ConditionTrue, msg
		}
	}
	return false, "no Ready condition yet"
}
