package e2e

// Least privilege (issue 7, part 5; issue 13 on the published charts): the agent runs a full
// hand-over with exactly the identity manifests/agent/rbac.yaml plus gen's
// generated/<cluster>/agent-rbac.yaml grant, and that identity cannot do what the hand-over
// does not need: widen its own Role, bind roles it does not hold, write kube-system objects
// other than the boot objects, read Secrets outside its namespaces.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/agent"
	"github.com/bootcore-dev/bootcore/internal/gen"
)

var gvrJob = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}

const (
	agentSANamespace = "kube-system"
	agentSAName      = "bootcore-agent"
)

func TestAgentLeastPrivilege(t *testing.T) {
	t.Parallel()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rbac, err := os.ReadFile(filepath.Join(root, "manifests", "agent", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := os.ReadFile(filepath.Join(root, "manifests", "agent", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := testbed.StartT(t, testbed.Options{Name: "infra"})
	l := newLab(t, map[string]*testbed.Cluster{"infra": c})
	ctx := context.Background()
	if err := c.Apply(ctx, rbac); err != nil {
		t.Fatalf("applying manifests/agent/rbac.yaml: %v", err)
	}
	// gen's per-cluster grants on the boot objects, by name (the real charts' names).
	bootRBAC, err := os.ReadFile(filepath.Join(l.repo, "generated", "infra", gen.AgentRBACFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, bootRBAC); err != nil {
		t.Fatalf("applying generated/infra/%s: %v", gen.AgentRBACFile, err)
	}
	kubeconfig := serviceAccountKubeconfig(t, c, agentSANamespace, agentSAName)

	// The Job example is valid for this API server and runs as that ServiceAccount.
	objs, err := testbed.DecodeYAML(job)
	if err != nil || len(objs) != 1 || objs[0].GetKind() != "Job" {
		t.Fatalf("manifests/agent/job.yaml: want one Job, got %d objects (%v)", len(objs), err)
	}
	if sa, _, _ := unstructured.NestedString(objs[0].Object, "spec", "template", "spec", "serviceAccountName"); sa != agentSAName || objs[0].GetNamespace() != agentSANamespace {
		t.Errorf("job.yaml runs as %s/%s, rbac.yaml grants %s/%s", objs[0].GetNamespace(), sa, agentSANamespace, agentSAName)
	}
	if _, err := c.Dynamic.Resource(gvrJob).Namespace(agentSANamespace).Apply(ctx, objs[0].GetName(), objs[0],
		metav1.ApplyOptions{FieldManager: "rbac-test", DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("job.yaml: server-side dry run: %v", err)
	}

	// What the identity must not be able to do: read Secrets elsewhere, touch nodes,
	// run pods, bind arbitrary roles, change Flux's objects outside flux-system.
	user := "system:serviceaccount:" + agentSANamespace + ":" + agentSAName
	for _, a := range []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "default"},
		{Verb: "list", Resource: "secrets", Namespace: "kube-system"},
		{Verb: "list", Resource: "secrets"},
		{Verb: "delete", Resource: "nodes"},
		{Verb: "create", Resource: "pods", Namespace: "default"},
		{Verb: "create", Resource: "pods", Namespace: "flux-system", Subresource: "exec"},
		{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "system:node"},
		{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "admin"},
		// It cannot widen its own grants.
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "bootcore-agent-write"},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "external-secrets", Name: "bootcore-agent"},
		{Verb: "delete", Resource: "namespaces", Name: "kube-system"},
		{Verb: "patch", Group: "kustomize.toolkit.fluxcd.io", Resource: "kustomizations", Namespace: "default"},
		{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: "kube-scheduler"},
		{Verb: "impersonate", Resource: "users"},
		// kube-system: nothing but the boot objects, by name; never its own Role.
		{Verb: "update", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "kube-system", Name: "bootcore-agent"},
		{Verb: "patch", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "kube-system", Name: "bootcore-agent"},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "kube-system", Name: "bootcore-agent"},
		{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "kube-system", Name: "system:controller:bootstrap-signer"},
		{Verb: "patch", Group: "apps", Resource: "daemonsets", Namespace: "kube-system", Name: "kube-proxy"},
		{Verb: "update", Resource: "configmaps", Namespace: "kube-system", Name: "kubeadm-config"},
		{Verb: "create", Resource: "pods", Namespace: "kube-system"},
		{Verb: "patch", Resource: "namespaces", Name: "kube-system"},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "bootcore-agent-boot-objects"},
	} {
		if allowed(t, c, user, a) {
			t.Errorf("%s may %s %s %s/%s%s", agentSAName, a.Verb, a.Resource, a.Namespace, a.Name, ifSub(a.Subresource))
		}
	}

	// The same, as real requests with the identity's token: the API server refuses them.
	refused(t, kubeconfig)

	// The full hand-over, from before the Talos boot, with only that identity.
	r := bootAndRunAgentAs(t, c, l, kubeconfig)
	defer dumpOnFailure(t, r)
	if r.code != 0 {
		t.Fatalf("agent as %s: exit %d: %s", user, r.code, r.result().Message)
	}
	if strings.Contains(r.stdout, "forbidden") {
		t.Errorf("the run met a Forbidden error on its way (retried or tolerated):\n%s", grepLines(r.stdout, "forbidden"))
	}
	assertHandedOver(t, c, l, "infra")

	// Run-once with the same identity.
	again := runAgent(t, l, kubeconfig, "infra")
	defer dumpOnFailure(t, again)
	if again.code != 0 || !strings.Contains(again.result().Message, "already handed over") {
		t.Errorf("re-run as %s: exit %d: %s", user, again.code, again.result().Message)
	}
}

// bootAndRunAgentAs starts the agent with kubeconfig, boots the emulated Talos nodes once it
// waits for the control plane, then starts Flux (as bootWhileAgentRuns, another identity).
func bootAndRunAgentAs(t *testing.T, c *testbed.Cluster, l *lab, kubeconfig string) agentRun {
	t.Helper()
	done := make(chan agentRun, 1)
	waiting := make(chan struct{})
	var once sync.Once
	go func() {
		done <- runAgentWatching(t, l, kubeconfig, "infra", func(e agent.Event) {
			if e.Phase == agent.PhaseWaitControlPlane || e.Type == agent.EventResult {
				once.Do(func() { close(waiting) })
			}
		})
	}()
	<-waiting
	bootTalos(t, c, l, "infra")
	startFlux(t, c)
	return <-done
}

// serviceAccountKubeconfig writes a kubeconfig holding a token of the ServiceAccount (what a
// pod of the Job mounts), for the test cluster's address and CA.
func serviceAccountKubeconfig(t *testing.T, c *testbed.Cluster, ns, name string) string {
	t.Helper()
	tok, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.LoadFromFile(c.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// refused makes, with the agent's token, the requests a compromised agent would try first:
// widen its own Role to read Secrets, read a kube-system Secret, run a pod in kube-system.
// Each must come back Forbidden from the real API server.
func refused(t *testing.T, kubeconfig string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	own := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "bootcore-agent", Namespace: "kube-system"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}},
	}
	_, err = cs.RbacV1().Roles("kube-system").Update(ctx, own, metav1.UpdateOptions{})
	wantForbidden(t, "replace its own Role kube-system/bootcore-agent", err)
	_, err = cs.RbacV1().Roles("kube-system").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "bootcore-agent-more", Namespace: "kube-system"}, Rules: own.Rules}, metav1.CreateOptions{})
	wantForbidden(t, "create a Role kube-system/bootcore-agent-more", err)
	_, err = cs.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list Secrets in kube-system", err)
	_, err = cs.CoreV1().Secrets("default").Get(ctx, "any", metav1.GetOptions{})
	wantForbidden(t, "get a Secret in default", err)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bootcore-agent-escape", Namespace: "kube-system"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	_, err = cs.CoreV1().Pods("kube-system").Create(ctx, pod, metav1.CreateOptions{})
	wantForbidden(t, "create a pod in kube-system", err)
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("as the agent, %s: want Forbidden, got %v", what, err)
	}
}

func allowed(t *testing.T, c *testbed.Cluster, user string, a authorizationv1.ResourceAttributes) bool {
	t.Helper()
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + agentSANamespace, "system:authenticated"}
	sar, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &a},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

func ifSub(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(strings.ToLower(line), sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
