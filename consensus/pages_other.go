//go:build !linux

package consensus

// dropMappedPages does nothing where /proc/self/maps is not there to find
// the mapping.
func dropMappedPages(string) error { return nil }
