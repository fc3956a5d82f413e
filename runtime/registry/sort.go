package registry

import (
	"slices"
	"strings"
)

// SortByName sorts specs by function name, the order every listing uses.
func SortByName(s []*Spec) {
	slices.SortFunc(s, func(a, b *Spec) int { return strings.Compare(a.Name, b.Name) })
}
