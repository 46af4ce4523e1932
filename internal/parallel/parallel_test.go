package parallel

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

func TestMapKeepsOrder(t *testing.T) {
	for _, procs := range []int{1, 4} {
		t.Run(fmt.Sprint(procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			got, err := Map(100, func(i int) (int, error) { return i * i, nil })
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range got {
				if v != i*i {
					t.Fatalf("result %d is %d, want %d", i, v, i*i)
				}
			}
		})
	}
}

// The error a caller sees is the one a loop would have stopped at, whichever failed first in time.
func TestMapReturnsTheFirstErrorByPosition(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var ran atomic.Int32
	release := make(chan struct{})
	_, err := Map(8, func(i int) (struct{}, error) {
		ran.Add(1)
		switch i {
		case 2:
			<-release // fails last in time
			return struct{}{}, errors.New("piece 2")
		case 5:
			defer close(release)
			return struct{}{}, errors.New("piece 5")
		}
		return struct{}{}, nil
	})
	if err == nil || err.Error() != "piece 2" {
		t.Fatalf("error %v, want piece 2", err)
	}
	if ran.Load() != 8 {
		t.Fatalf("%d pieces ran, want 8", ran.Load())
	}
}

func TestMapOfNothing(t *testing.T) {
	got, err := Map(0, func(int) (int, error) { t.Fatal("called"); return 0, nil })
	if err != nil || len(got) != 0 {
		t.Fatalf("Map(0) = %v, %v", got, err)
	}
}

func TestLaterWaitsForItsResult(t *testing.T) {
	release := make(chan struct{})
	f := Later(func() (int, error) { <-release; return 7, errors.New("seven") })
	close(release)
	for range 2 { // every Wait gets the one result
		if v, err := f.Wait(); v != 7 || err == nil || err.Error() != "seven" {
			t.Fatalf("Wait() = %d, %v; want 7, seven", v, err)
		}
	}
}
