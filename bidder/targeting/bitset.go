package targeting

import "math/bits"

// bitset is a dense set of campaign ranks. Dense sets make intersection a word-wise AND that the
// bid path can evaluate lazily, one 64-campaign word at a time, and stop as soon as the auction
// has its answer.
type bitset []uint64

func (b bitset) set(i int) { b[i>>6] |= 1 << (uint(i) & 63) }

func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

func trailingZeros(x uint64) int { return bits.TrailingZeros64(x) }
