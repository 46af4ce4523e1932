package main

import (
	"runtime/debug"
	"testing"
)

// Without -X main.version, a binary says what the go command recorded in it; the build infos
// below are what `go version -m` prints for such binaries.
func TestBuildVersion(t *testing.T) {
	parse := func(s string) *debug.BuildInfo {
		t.Helper()
		info, err := debug.ParseBuildInfo(s)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	const head = "go\tgo1.26.8\npath\tgithub.com/bootcore-dev/bootcore/cmd/bootcore\n"
	cases := []struct {
		name, stamped, info, want string
	}{
		{"stamped wins", "v0.3.0", head + "mod\tgithub.com/bootcore-dev/bootcore\tv0.2.0\t\n", "v0.3.0"},
		{"go install at a version", "", head + "mod\tgithub.com/bootcore-dev/bootcore\tv0.2.0\th1:abc=\n", "v0.2.0"},
		{"pseudo-version from VCS", "", head + "mod\tgithub.com/bootcore-dev/bootcore\tv0.0.0-20261204020000-95ef1eeedc92+dirty\t\n", "v0.0.0-20261204020000-95ef1eeedc92+dirty"},
		{"devel with revision, modified", "", head + "mod\tgithub.com/bootcore-dev/bootcore\t(devel)\t\n" +
			"build\tvcs=git\nbuild\tvcs.revision=95ef1eeedc924e642b00690a5ce4f003b4d11a80\nbuild\tvcs.modified=true\n", "dev-95ef1eeedc92-dirty"},
		{"devel with revision, clean", "", head + "mod\tgithub.com/bootcore-dev/bootcore\t(devel)\t\n" +
			"build\tvcs.revision=95ef1eeedc924e642b00690a5ce4f003b4d11a80\nbuild\tvcs.modified=false\n", "dev-95ef1eeedc92"},
		{"-buildvcs=false", "", head + "mod\tgithub.com/bootcore-dev/bootcore\t(devel)\t\nbuild\t-buildvcs=false\n", "dev"},
	}
	for _, tc := range cases {
		if got := buildVersion(tc.stamped, parse(tc.info), true); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := buildVersion("", nil, false); got != "dev" {
		t.Errorf("no build info: %q", got)
	}
}
