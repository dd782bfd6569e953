package main

import "testing"

func TestLoadgenHelp(t *testing.T) {
	if code := run([]string{"loadgen", "--help"}); code != 0 {
		t.Fatalf("rtb loadgen --help exited %d", code)
	}
}
