package loadtest

import "slices"

// capViolations counts the impressions beyond a frequency cap of n impressions per window in one
// user's impression times of one campaign (any order; unix nanoseconds). The rule is the one a
// bidder can keep from its own impression log: a window opens at the user's first impression and,
// once it has closed, at the next impression after it; it covers [open, open+window); at most n
// impressions may fall in it. Every impression past the n-th in its window is one violation.
func capViolations(times []int64, n int, window int64) int {
	if len(times) <= n {
		return 0
	}
	slices.Sort(times)
	var violations, count int
	open := times[0]
	for _, t := range times {
		if t >= open+window {
			open, count = t, 0
		}
		count++
		if count > n {
			violations++
		}
	}
	return violations
}
