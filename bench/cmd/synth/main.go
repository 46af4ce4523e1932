// Command synth writes the benchmarks' synthetic repositories, for looking at them or running
// bootcore on them by hand:
//
//	go run ./bench/cmd/synth -out /tmp/charts            # the chart set (bench.WriteChartRepo)
//	go run ./bench/cmd/synth -out /tmp/tree -tree 2000   # a scale tree (bench.WriteScaleTree)
//	go run ./cmd/bootcore gen --repo /tmp/charts --out /tmp/charts-out
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/bootcore-dev/bootcore/bench"
)

func main() {
	out := flag.String("out", "", "directory to write (must not exist or be empty)")
	tree := flag.Int("tree", 0, "write a scale tree with this many Kustomizations instead of the chart set")
	scale := flag.Float64("crd-scale", 1, "CRD size factor of the chart set")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "synth: -out is required")
		os.Exit(2)
	}
	if *tree > 0 {
		if err := bench.WriteScaleTree(*out, *tree); err != nil {
			fmt.Fprintln(os.Stderr, "synth:", err)
			os.Exit(1)
		}
		return
	}
	info, err := bench.WriteChartRepo(*out, bench.ChartRepoConfig{CRDScale: *scale})
	if err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
	for _, c := range info.Charts {
		fmt.Printf("chart %-17s %4d templates  %3d CRDs  %9d CRD bytes  %9d bytes\n", c.Name, c.Templates, c.CRDs, c.CRDBytes, c.Bytes)
	}
}
