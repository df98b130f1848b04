package main

import "testing"

// faultRow is one row of the fault matrix: an operation, the fault it
// meets, and what the test shows to hold.
type faultRow struct {
	name  string // the subtest of TestFaultMatrix
	op    string
	fault string
	holds string
	run   func(t *testing.T)
}

// faultMatrix is the fault matrix; docs/reliability.md shows it.
var faultMatrix []faultRow

// TestFaultMatrix runs every row of the fault matrix.
func TestFaultMatrix(t *testing.T) {
	for _, r := range faultMatrix {
		t.Run(r.name, r.run)
	}
}
