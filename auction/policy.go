package auction

import "strings"

// CategoryBlocked reports whether any of cats falls under a blocked category. Blocking a tier-1
// IAB category ("IAB7") blocks its tier-2 children ("IAB7-39").
func CategoryBlocked(bcat, cats []string) bool {
	for _, b := range bcat {
		for _, c := range cats {
			if c == b || (len(c) > len(b) && c[len(b)] == '-' && strings.HasPrefix(c, b)) {
				return true
			}
		}
	}
	return false
}

// DomainBlocked reports whether the advertiser domain is blocked, itself or as a subdomain of a
// blocked domain.
func DomainBlocked(badv []string, domain string) bool {
	for _, b := range badv {
		if len(b) == 0 {
			continue
		}
		if strings.EqualFold(domain, b) {
			return true
		}
		if len(domain) > len(b) && domain[len(domain)-len(b)-1] == '.' && strings.EqualFold(domain[len(domain)-len(b):], b) {
			return true
		}
	}
	return false
}

// AttrBlocked reports whether the creative has an attribute the placement forbids.
func AttrBlocked(battr, attrs []int) bool {
	for _, b := range battr {
		for _, a := range attrs {
			if a == b {
				return true
			}
		}
	}
	return false
}
