package agent

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// waker watches the objects a wait is waiting for and signals on every change to one of
// them, so waitTargets re-checks within milliseconds of an object turning Ready instead of at
// the next poll (issue #8: detection p95 ≤ 250 ms; a 500 ms poll alone averages 250 ms).
// The poll stays as the fallback: for kinds not served yet (a CRD installed during the wait)
// and after a watch ends, the watch is started again at the next poll.
type waker struct {
	s    *state
	ctx  context.Context
	C    chan struct{} // one pending signal at most
	mu   sync.Mutex
	live map[string]bool // target -> its watch is running
}

func (s *state) newWaker(ctx context.Context) *waker {
	return &waker{s: s, ctx: ctx, C: make(chan struct{}, 1), live: map[string]bool{}}
}

// ensure starts a watch for every target that has none running. Call it before reading the
// targets, so no change between the read and the watch's start is missed.
func (w *waker) ensure(targets []target) {
	for _, t := range targets {
		key := t.String()
		w.mu.Lock()
		running := w.live[key]
		w.mu.Unlock()
		if running {
			continue
		}
		ri, _, err := w.s.k.resourceFor(t.GVK, t.Namespace)
		if err != nil {
			continue // not served yet: the poll covers it, the next ensure retries
		}
		wi, err := ri.Watch(w.ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", t.Name).String()})
		if err != nil {
			continue
		}
		w.mu.Lock()
		w.live[key] = true
		w.mu.Unlock()
		go func() {
			defer wi.Stop()
			for range wi.ResultChan() {
				select {
				case w.C <- struct{}{}:
				default:
				}
			}
			w.mu.Lock()
			delete(w.live, key)
			w.mu.Unlock()
		}()
	}
}

// allLive says whether every target has a running watch.
func (w *waker) allLive(targets []target) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range targets {
		if !w.live[t.String()] {
			return false
		}
	}
	return true
}
