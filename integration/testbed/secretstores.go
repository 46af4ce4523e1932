package testbed

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/bootcore-dev/bootcore/internal/status"
)

// EMULATION of External Secrets' store validation, for the lab's stand-in external-secrets
// chart (which runs no controller: kwok pods run no containers). The real controller marks a
// (Cluster)SecretStore Ready=False when it cannot build the provider client (here: a Secret
// the provider references is missing or lacks the key) and Ready=True otherwise. Like the
// real one, its condition message does not name the Secret; `bootcore status` does.

var (
	ClusterSecretStoreGVR = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "clustersecretstores"}
	SecretStoreGVR        = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "secretstores"}
)

// runSecretStores runs until ctx is cancelled. Every Secret or store change re-validates all
// stores (a lab has one or two).
func runSecretStores(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) {
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { queue.Add("all") },
		UpdateFunc: func(_, _ any) { queue.Add("all") },
		DeleteFunc: func(any) { queue.Add("all") },
	}
	// The store CRDs appear when Talos boots the phase-0 manifests: start watching then (an
	// informer on a kind not served yet logs a failed list every few seconds).
	served := func(ctx context.Context) (bool, error) {
		_, err := client.Discovery().ServerResourcesForGroupVersion(ClusterSecretStoreGVR.GroupVersion().String())
		return err == nil, nil
	}
	if wait.PollUntilContextCancel(ctx, time.Second, true, served) != nil {
		return
	}
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	var listers []cache.GenericLister
	var synced []cache.InformerSynced
	for _, gvr := range []schema.GroupVersionResource{ClusterSecretStoreGVR, SecretStoreGVR} {
		inf := dynFactory.ForResource(gvr)
		_, _ = inf.Informer().AddEventHandler(enqueue)
		listers = append(listers, inf.Lister())
		synced = append(synced, inf.Informer().HasSynced)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	secrets := factory.Core().V1().Secrets()
	_, _ = secrets.Informer().AddEventHandler(enqueue)
	synced = append(synced, secrets.Informer().HasSynced)
	dynFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	defer dynFactory.Shutdown()
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	sync := func(ctx context.Context) error {
		for i, gvr := range []schema.GroupVersionResource{ClusterSecretStoreGVR, SecretStoreGVR} {
			objs, err := listers[i].List(labels.Everything())
			if err != nil {
				return err
			}
			for _, o := range objs {
				if err := validateStore(ctx, dyn, gvr, o.(*unstructured.Unstructured), func(ns, name string) (*corev1.Secret, error) {
					return secrets.Lister().Secrets(ns).Get(name)
				}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		for {
			key, shutdown := queue.Get()
			if shutdown {
				return
			}
			if err := sync(ctx); err != nil && ctx.Err() == nil {
				queue.AddRateLimited(key)
			} else {
				queue.Forget(key)
			}
			queue.Done(key)
		}
	}, time.Second)
	<-ctx.Done()
}

// validateStore sets the store's Ready condition from its provider's Secret references.
func validateStore(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, u *unstructured.Unstructured, get func(ns, name string) (*corev1.Secret, error)) error {
	provider, _, _ := unstructured.NestedMap(u.Object, "spec", "provider")
	st, reason, msg := "True", "Valid", "store validated"
	for _, ref := range status.SecretRefs(provider, u.GetNamespace()) {
		key, _, _ := unstructured.NestedString(provider, append(strings.Split(ref.Path, "."), "key")...)
		sec, err := get(ref.Namespace, ref.Name)
		if err != nil || (key != "" && len(sec.Data[key]) == 0) {
			st, reason, msg = "False", "InvalidProviderConfig", "unable to create client"
			break
		}
	}
	if cond, ok := status.Condition(u, "Ready"); ok && cond["status"] == st && cond["reason"] == reason {
		return nil
	}
	u = u.DeepCopy()
	cond := map[string]any{"type": "Ready", "status": st, "reason": reason, "message": msg,
		"lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}
	if err := unstructured.SetNestedSlice(u.Object, []any{cond}, "status", "conditions"); err != nil {
		return err
	}
	ri := dyn.Resource(gvr)
	var err error
	if u.GetNamespace() != "" {
		_, err = ri.Namespace(u.GetNamespace()).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	} else {
		_, err = ri.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
