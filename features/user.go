package features

import "github.com/cespare/xxhash/v2"

// UserKey is the key of a user in frequency caps and in events: a 64-bit hash of the exchange's user
// id (user.buyeruid, else user.id). It is the same in every process, so an impression recorded by one
// bidder caps the user in all of them; 0 means "no user" and is never the key of an id.
func UserKey(id string) uint64 {
	if id == "" {
		return 0
	}
	if k := xxhash.Sum64String(id); k != 0 {
		return k
	}
	return 1
}
