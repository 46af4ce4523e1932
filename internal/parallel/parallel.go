// Package parallel runs independent pieces of CPU-bound work on every core and hands back
// their results as a sequential loop would: in order, with the first error by position; or one
// piece in the background while the caller goes on (Later).
package parallel

import (
	"runtime"
	"sync"
)

// Map returns f(0), …, f(n-1), computed on up to GOMAXPROCS goroutines. Its error is that of
// the lowest i whose f failed, the one a loop from 0 would have stopped at; f must not depend on
// the others having run, since all of them run.
func Map[T any](n int, f func(i int) (T, error)) ([]T, error) {
	out := make([]T, n)
	errs := make([]error, n)
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			if out[i], errs[i] = f(i); errs[i] != nil {
				return nil, errs[i]
			}
		}
		return out, nil
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Future is a result computed on a goroutine of its own (Later).
type Future[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// Later starts f and returns its Future at once.
func Later[T any](f func() (T, error)) *Future[T] {
	r := &Future[T]{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.v, r.err = f()
	}()
	return r
}

// Wait returns f's result once it has one.
func (r *Future[T]) Wait() (T, error) {
	<-r.done
	return r.v, r.err
}
