package cli

import (
	"os"
	"path/filepath"
	"sort"
)

// discoverFunctions lists the function folders under src: subfolders
// holding Go files.
func discoverFunctions(src string) ([]string, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(src, e.Name(), "*.go")); len(m) > 0 {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
