package auction

import "testing"

func TestCategoryBlocked(t *testing.T) {
	tests := []struct {
		name       string
		bcat, cats []string
		want       bool
	}{
		{"exact tier 1", []string{"IAB7"}, []string{"IAB7"}, true},
		{"exact tier 2", []string{"IAB7-39"}, []string{"IAB7-39"}, true},
		{"tier 1 blocks its tier 2", []string{"IAB7"}, []string{"IAB7-39"}, true},
		{"tier 1 blocks its tier 2 among others", []string{"IAB1", "IAB7"}, []string{"IAB3-1", "IAB7-39"}, true},
		{"tier 2 does not block a longer sibling", []string{"IAB7-3"}, []string{"IAB7-39"}, false},
		{"tier 2 does not block its parent", []string{"IAB7-39"}, []string{"IAB7"}, false},
		{"tier 2 does not block a sibling", []string{"IAB7-39"}, []string{"IAB7-38"}, false},
		{"IAB1 does not block IAB10", []string{"IAB1"}, []string{"IAB10"}, false},
		{"IAB1 does not block IAB10-1", []string{"IAB1"}, []string{"IAB10-1"}, false},
		{"IAB1 blocks IAB1-5", []string{"IAB1"}, []string{"IAB1-5"}, true},
		{"prefix without dash", []string{"IAB7"}, []string{"IAB7X"}, false},
		{"case sensitive", []string{"iab7"}, []string{"IAB7"}, false},
		{"no blocks", nil, []string{"IAB7"}, false},
		{"no categories", []string{"IAB7"}, nil, false},
		{"both empty", nil, nil, false},
		{"empty block entry", []string{""}, []string{"IAB7"}, false},
	}
	for _, tt := range tests {
		if got := CategoryBlocked(tt.bcat, tt.cats); got != tt.want {
			t.Errorf("%s: CategoryBlocked(%q, %q) = %v, want %v", tt.name, tt.bcat, tt.cats, got, tt.want)
		}
	}
}

func TestDomainBlocked(t *testing.T) {
	tests := []struct {
		name   string
		badv   []string
		domain string
		want   bool
	}{
		{"exact", []string{"apple.com"}, "apple.com", true},
		{"case insensitive", []string{"Apple.COM"}, "apple.com", true},
		{"case insensitive domain", []string{"apple.com"}, "APPLE.com", true},
		{"subdomain", []string{"apple.com"}, "store.apple.com", true},
		{"deep subdomain", []string{"apple.com"}, "a.b.store.apple.com", true},
		{"subdomain mixed case", []string{"APPLE.com"}, "Store.Apple.Com", true},
		{"suffix is not a subdomain", []string{"apple.com"}, "notapple.com", false},
		{"parent is not blocked by child", []string{"store.apple.com"}, "apple.com", false},
		{"sibling", []string{"store.apple.com"}, "music.apple.com", false},
		{"other tld", []string{"apple.com"}, "apple.co", false},
		{"later entry", []string{"pear.com", "apple.com"}, "apple.com", true},
		{"empty entries ignored", []string{"", ""}, "apple.com", false},
		{"empty entry then match", []string{"", "apple.com"}, "store.apple.com", true},
		{"empty entry, empty domain", []string{""}, "", false},
		{"empty domain", []string{"apple.com"}, "", false},
		{"no blocks", nil, "apple.com", false},
		{"leading dot: blocked (erring on the safe side)", []string{"apple.com"}, ".apple.com", true},
	}
	for _, tt := range tests {
		if got := DomainBlocked(tt.badv, tt.domain); got != tt.want {
			t.Errorf("%s: DomainBlocked(%q, %q) = %v, want %v", tt.name, tt.badv, tt.domain, got, tt.want)
		}
	}
}

func TestAttrBlocked(t *testing.T) {
	tests := []struct {
		battr, attrs []int
		want         bool
	}{
		{[]int{1, 2, 3}, []int{3}, true},
		{[]int{3}, []int{1, 2, 3}, true},
		{[]int{1, 2}, []int{3, 4}, false},
		{nil, []int{1}, false},
		{[]int{1}, nil, false},
		{nil, nil, false},
		{[]int{0}, []int{0}, true},
	}
	for _, tt := range tests {
		if got := AttrBlocked(tt.battr, tt.attrs); got != tt.want {
			t.Errorf("AttrBlocked(%v, %v) = %v, want %v", tt.battr, tt.attrs, got, tt.want)
		}
	}
}
