package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bootcore-dev/bootcore/integration/chartmirror"
	"github.com/bootcore-dev/bootcore/internal/gen"
)

// fleetClusters is the size of the fleet BenchmarkGenFleet compares with a one-cluster fleet:
// 50 (the fleet), 3 in the smoke (one cluster per flavour), BENCH_FLEET to override.
func fleetClusters(b *testing.B) int {
	if v := os.Getenv("BENCH_FLEET"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_FLEET=%q: want a number of clusters", v)
		}
		return n
	}
	if smoke {
		return 3
	}
	return 50
}

var fleets = struct {
	sync.Mutex
	mirror *chartmirror.Mirror
	dirs   map[fleetKey]string
}{dirs: map[fleetKey]string{}}

type fleetKey struct {
	n    int
	opts FleetOptions
}

// fleetRepo writes the fleet of n clusters once (WriteFleet, its own loopback chart mirror)
// and commits gen's output into it as a user would: the patches, and the lock whose digests let
// the timed runs load every chart from the warm cache without the network.
func fleetRepo(b *testing.B, n int, opts FleetOptions) string {
	b.Helper()
	fleets.Lock()
	defer fleets.Unlock()
	if dir, ok := fleets.dirs[fleetKey{n, opts}]; ok {
		return dir
	}
	if fleets.mirror == nil {
		charts, err := filepath.Abs(upstreamCharts)
		if err != nil {
			b.Fatal(err)
		}
		if fleets.mirror, err = chartmirror.Start("127.0.0.1:0", charts, filepath.Join(scratch, "fleet-mirror"), chartmirror.Upstreams); err != nil {
			b.Fatal(err)
		}
	}
	dir := filepath.Join(scratch, fmt.Sprintf("fleet-%d-mesh-%t", n, opts.ClusterMesh))
	if _, err := WriteFleet(dir, n, fleets.mirror.Addr, opts); err != nil {
		b.Fatal(err)
	}
	out, err := gen.Run(context.Background(), gen.Options{Repo: dir, CacheDir: filepath.Join(scratch, "cache")})
	if err == nil {
		_, err = out.Write(dir)
	}
	if err != nil {
		b.Fatalf("gen on the fleet of %d clusters: %v", n, err)
	}
	fleets.dirs[fleetKey{n, opts}] = dir
	return dir
}

func closeFleets() {
	if fleets.mirror != nil {
		fleets.mirror.Close()
	}
}

// BenchmarkGenFleet: gen.Run on a fleet of 50 clusters sharing 3 chart sets (WriteFleet, 3
// flavours) against gen.Run on a fleet of one, alternating, in one process; ratio-fleet/single
// is the median of the per-pair ratios time(50 clusters) / time(1 cluster). What the fleet adds
// over one cluster is what gen cannot share between clusters.
func BenchmarkGenFleet(b *testing.B) { benchFleet(b, FleetOptions{}) }

// BenchmarkGenFleetMesh is BenchmarkGenFleet on the fleet whose clusters each have their own
// Cilium identity (FleetOptions.ClusterMesh): 50 distinct CNI renders and Talos configs.
func BenchmarkGenFleetMesh(b *testing.B) { benchFleet(b, FleetOptions{ClusterMesh: true}) }

func benchFleet(b *testing.B, opts FleetOptions) {
	n := fleetClusters(b)
	many, one := fleetRepo(b, n, opts), fleetRepo(b, 1, opts)
	// CPU time too: on a shared machine the wall time of the fleet's concurrent clusters depends
	// on how many cores the other jobs leave, its CPU time much less.
	cpu := map[string]map[int]float64{"fleet": {}, "single": {}}
	run := func(name, dir string) contender {
		return contender{name, func(i int) error {
			before := cpuTime()
			_, err := gen.Run(context.Background(), gen.Options{Repo: dir, CacheDir: filepath.Join(scratch, "cache")})
			cpu[name][i] = float64(cpuTime()-before) / 1e6
			return err
		}}
	}
	pairs(b, run("fleet", many), run("single", one))
	b.ReportMetric(float64(n), "clusters")
	var fleetCPU, singleCPU, ratios []float64
	for i := 0; i < b.N; i++ {
		fleetCPU, singleCPU = append(fleetCPU, cpu["fleet"][i]), append(singleCPU, cpu["single"][i])
		ratios = append(ratios, cpu["fleet"][i]/cpu["single"][i])
	}
	b.ReportMetric(median(fleetCPU), "fleet-cpu-ms")
	b.ReportMetric(median(singleCPU), "single-cpu-ms")
	b.ReportMetric(median(ratios), "cpu-ratio-fleet/single")
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
