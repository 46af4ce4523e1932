package testbed

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// The lab controller plays the part of each kwok node's kubelet for one
// condition: a kubelet reports NotReady ("cni plugin not initialized") until
// a CNI is running on its node. Here "a CNI is running" means a Ready pod of
// the cilium DaemonSet is bound to the node. It owns the node's Ready
// condition after kwok's one-shot initialize stage has run.

const (
	ciliumNamespace = "kube-system"
	ciliumName      = "cilium"

	reasonNotReady  = "KubeletNotReady"
	messageNoCNI    = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
	reasonReady     = "KubeletReady"
	messageReady    = "kubelet is posting ready status"
	podNodeIndexKey = "nodeName"
)

type labController struct {
	client kubernetes.Interface
	nodes  corelisters.NodeLister
	pods   cache.Indexer
	queue  workqueue.TypedRateLimitingInterface[string]
	logf   func(string, ...any)
}

// runLabController runs until ctx is cancelled.
func runLabController(ctx context.Context, client kubernetes.Interface, logf func(string, ...any)) {
	factory := informers.NewSharedInformerFactory(client, 0)
	podFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ciliumNamespace))
	nodeInformer := factory.Core().V1().Nodes().Informer()
	podInformer := podFactory.Core().V1().Pods().Informer()
	_ = podInformer.AddIndexers(cache.Indexers{podNodeIndexKey: func(obj any) ([]string, error) {
		return []string{obj.(*corev1.Pod).Spec.NodeName}, nil
	}})

	lc := &labController{
		client: client,
		nodes:  factory.Core().V1().Nodes().Lister(),
		pods:   podInformer.GetIndexer(),
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		logf:   logf,
	}
	defer lc.queue.ShutDown()

	_, _ = nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { lc.queue.Add(obj.(*corev1.Node).Name) },
		UpdateFunc: func(_, obj any) { lc.queue.Add(obj.(*corev1.Node).Name) },
	})
	enqueuePodNode := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName != "" {
			lc.queue.Add(pod.Spec.NodeName)
		}
	}
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueuePodNode,
		UpdateFunc: func(old, obj any) { enqueuePodNode(old); enqueuePodNode(obj) },
		DeleteFunc: enqueuePodNode,
	})

	factory.Start(ctx.Done())
	podFactory.Start(ctx.Done())
	defer factory.Shutdown()
	defer podFactory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nodeInformer.HasSynced, podInformer.HasSynced) {
		return
	}
	go wait.UntilWithContext(ctx, lc.worker, time.Second)
	<-ctx.Done()
}

func (lc *labController) worker(ctx context.Context) {
	for {
		name, shutdown := lc.queue.Get()
		if shutdown {
			return
		}
		if err := lc.sync(ctx, name); err != nil && ctx.Err() == nil {
			lc.queue.AddRateLimited(name)
		} else {
			lc.queue.Forget(name)
		}
		lc.queue.Done(name)
	}
}

// sync sets the Ready condition of one kwok node from its cilium pod.
func (lc *labController) sync(ctx context.Context, name string) error {
	node, err := lc.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if node.Annotations[kwokNodeAnnotation] == "" || node.Status.Phase != corev1.NodeRunning {
		return nil // not ours, or kwok has not initialised it yet
	}

	status, reason, message := corev1.ConditionFalse, reasonNotReady, messageNoCNI
	if lc.cniReady(name) {
		status, reason, message = corev1.ConditionTrue, reasonReady, messageReady
	}
	cur := readyCondition(node)
	if cur != nil && cur.Status == status && cur.Reason == reason {
		return nil
	}

	node = node.DeepCopy()
	now := metav1.Now()
	cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: status, Reason: reason, Message: message,
		LastHeartbeatTime: now, LastTransitionTime: now}
	if cur := readyCondition(node); cur != nil {
		if cur.Status == status {
			cond.LastTransitionTime = cur.LastTransitionTime
		}
		*cur = cond
	} else {
		node.Status.Conditions = append(node.Status.Conditions, cond)
	}
	if _, err := lc.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return err // conflicts included: the next node event re-queues anyway
	}
	lc.logf("testbed: node %s Ready=%s (%s)", name, status, reason)
	return nil
}

// cniReady reports whether a Ready cilium pod runs on the node.
func (lc *labController) cniReady(nodeName string) bool {
	objs, _ := lc.pods.ByIndex(podNodeIndexKey, nodeName)
	for _, obj := range objs {
		pod := obj.(*corev1.Pod)
		if isCiliumPod(pod) && pod.DeletionTimestamp == nil && podReady(pod) {
			return true
		}
	}
	return false
}

func isCiliumPod(pod *corev1.Pod) bool {
	if pod.Namespace != ciliumNamespace {
		return false
	}
	if pod.Labels["k8s-app"] == ciliumName {
		return true
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == "DaemonSet" && ref.Name == ciliumName {
			return true
		}
	}
	return false
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
