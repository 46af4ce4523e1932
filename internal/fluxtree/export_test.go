package fluxtree

// SetFlatChunk sets the chunk size of flat kustomization builds (flat.go) for a test and
// returns the function that puts the default back; FlatBuilds counts the chunked builds taken.
func SetFlatChunk(n int) (restore func()) {
	old := flatChunk
	flatChunk = n
	return func() { flatChunk = old }
}

func FlatBuilds() int64 { return flatBuilds.Load() }

// ReadSnapshots counts the repository snapshots read by walks.
func ReadSnapshots() int64 { return readSnapshots.Load() }
