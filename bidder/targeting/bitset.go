package targeting

import "math/bits"

// bitset is a dense set of campaign ranks. Dense sets make intersection a word-wise AND that the
// bid path can evaluate lazily, one 64-campaign word at a time, and stop as soon as the auction
// has its answer.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int) { b[i>>6] |= 1 << (uint(i) & 63) }

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }

func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

func trailingZeros(x uint64) int { return bits.TrailingZeros64(x) }
