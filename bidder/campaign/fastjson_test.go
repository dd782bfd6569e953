package campaign

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unsafe"
)

// checked parses data the slow way, as Parse does when the one-pass decoder refuses a file.
func checked(data []byte) (*Set, error) {
	return parseChecked(data, data, "t.json", FormatJSON)
}

// sameSets reports how two loaded sets differ, "" when they do not: every field, including the
// compiled ones the file formats do not carry (zones, daypart masks), and nil against empty slices.
func sameSets(a, b *Set) string {
	if len(a.Campaigns) != len(b.Campaigns) {
		return "campaign counts differ"
	}
	for i := range a.Campaigns {
		ca, cb := *a.Campaigns[i], *b.Campaigns[i]
		if ca.Budget.Location.String() != cb.Budget.Location.String() {
			return ca.ID + ": budget zones differ"
		}
		ca.Budget.Location, cb.Budget.Location = nil, nil
		if da, db := ca.Targeting.Dayparts, cb.Targeting.Dayparts; da != nil && db != nil {
			if da.Location.String() != db.Location.String() {
				return ca.ID + ": daypart zones differ"
			}
			xa, xb := *da, *db
			xa.Location, xb.Location = nil, nil
			ca.Targeting.Dayparts, cb.Targeting.Dayparts = &xa, &xb
		}
		if !reflect.DeepEqual(ca, cb) {
			ja, _ := json.Marshal(ca)
			jb, _ := json.Marshal(cb)
			return "campaign " + ca.ID + " differs:\n" + string(ja) + "\n" + string(jb)
		}
	}
	return ""
}

// agree checks the one-pass decoder against the checked path on one input: it may refuse what the
// checked path accepts (that only costs time), never accept what it refuses, and what it accepts it
// must decode to the same campaigns.
func agree(t *testing.T, what string, data []byte) (fast bool) {
	t.Helper()
	slow, slowErr := checked(data)
	got := parseJSONFast(data, "t.json")
	switch {
	case got != nil && slowErr != nil:
		t.Errorf("%s: the one-pass decoder accepts what the checked path refuses with %v:\n%s", what, slowErr, data)
	case got != nil:
		if diff := sameSets(got, slow); diff != "" {
			t.Errorf("%s: the paths decode differently: %s", what, diff)
		}
	}
	return got != nil
}

func TestFastPathAgrees(t *testing.T) {
	var inputs [][]byte
	for _, path := range []string{"testdata/full.good.json", "testdata/sniffed-json.good.conf"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, data)
	}
	full, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Set{Samples(), full} {
		data, err := json.MarshalIndent(file{Campaigns: s.Campaigns}, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, data)
	}
	for i, data := range inputs {
		if !agree(t, "good file", data) {
			t.Errorf("input %d: the one-pass decoder refuses a good file", i)
		}
	}
	// A file the decoder reads must not need the checked path (else large files would be slow).
	for _, extra := range []string{
		`{"x-defaults": {"a": [1, "b", null, true, false, {"c": -1.5e3}]}, "campaigns": ` + campaignJSON + `}`,
		`{"campaigns": [` + strings.Replace(campaignJSON[1:len(campaignJSON)-1], `"categories": ["IAB19"]`, `"categories": [], "name": null, "seat": null, "end": null, "app_bundle": null`, 1) + `]}`,
		`{"campaigns": [` + strings.Replace(campaignJSON[1:len(campaignJSON)-1], `"example.org"`, `"ex\u0061mple.org"`, 1) + `]}`,
	} {
		if !agree(t, "good variant", []byte(extra)) {
			t.Errorf("the one-pass decoder refuses %s", extra)
		}
	}
}

// campaignJSON is a one-campaign "campaigns" list.
const campaignJSON = `[{"id": "j1", "advertiser_domain": "example.org", "categories": ["IAB19"],
	"creatives": [{"id": "b1", "type": "banner", "w": 300, "h": 250, "html": "<a href=\"{{CLICK_URL}}\">\u00e9</a>", "landing_url": "https://example.org/"}],
	"targeting": {"countries": ["usa"], "dayparts": {"timezone": "Asia/Tokyo", "windows": [{"days": ["mon"], "from": 9, "to": 17}]}},
	"bid": {"type": "target_cpc", "cpc": 0.29, "ctr": 0.002, "max_bid": "1.00"},
	"budget": {"daily": 1e2, "total": 1000, "timezone": "Europe/Berlin"},
	"frequency_cap": {"impressions": 3, "window": "30m"}, "start": "2026-03-01T00:00:00+01:00"}]`

var jsonScalar = regexp.MustCompile(`("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)`)

// TestFastPathRefuses mutates every scalar of a file, and the file's structure, into what a hand
// edit could make of it: whatever the checked path refuses, the one-pass decoder must refuse too.
func TestFastPathRefuses(t *testing.T) {
	base := `{"campaigns": ` + campaignJSON + `}`
	values := []string{`null`, `""`, `"x"`, `0`, `1`, `-1`, `1.5`, `1e2`, `-0`, `true`, `[]`, `{}`, `"2.50"`, `"24h"`,
		`99999999999999999999`, `"\ud83d\ude00"`, `"\ud800"`, `"a\u0000b"`, `"IAB\u0031"`, `0.0000001`, `"2026-01-01"`}
	n := 0
	for _, m := range jsonScalar.FindAllStringIndex(base, -1) {
		for _, v := range values {
			n++
			agree(t, "value "+v+" at "+base[max(0, m[0]-20):m[0]], []byte(base[:m[0]]+v+base[m[1]:]))
		}
	}
	for _, variant := range []string{
		strings.Replace(base, `"daily"`, `"Daily"`, 1),
		strings.Replace(base, `"daily"`, `"d\u0061ily"`, 1),
		strings.Replace(base, `"total": 1000`, `"daily": 1000`, 1),
		strings.Replace(base, `"w": 300`, `"w": 300, "weight": 1`, 1),
		strings.Replace(base, `"campaigns"`, `"x-campaigns"`, 1),
		strings.Replace(base, `{"campaigns"`, `{"x-a": 1, "x-a": 2, "campaigns"`, 1),
		strings.Replace(base, `{"campaigns"`, `{"x-a": {"k": 1, "k": 2}, "campaigns"`, 1),
		strings.Replace(base, `{"campaigns"`, `{"x-a": [{"k": 1, "k": 2}], "campaigns"`, 1),
		strings.Replace(base, `{"campaigns"`, `{"<<": {}, "campaigns"`, 1),
		strings.Replace(base, `"creatives": [`, `"creatives": [null, `, 1),
		`{"campaigns": [null]}`, `{"campaigns": []}`, `{"campaigns": null}`, `{}`, `[]`, ``, `{"campaigns": ` + campaignJSON,
		base + `x`, base + ` {}`, strings.Replace(base, `,`, ``, 1), strings.Replace(base, `]`, `,]`, 1),
		strings.Replace(base, `"id": "j1"`, `"id": "j1", "id": "j2"`, 1),
		strings.Replace(base, `"id": "j1"`, `"id": 1`, 1),
		strings.Replace(base, `"id": "j1"`, "\"id\": \"j\xff1\"", 1),
		`{"x-deep": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `, "campaigns": ` + campaignJSON + `}`,
	} {
		n++
		agree(t, "variant", []byte(variant))
	}
	t.Logf("%d variants", n)
}

// TestFastPathCoversTheSchema makes a field of a new type fail here rather than quietly send every
// file that uses it down the slow path.
func TestFastPathCoversTheSchema(t *testing.T) {
	var check func(p *typePlan, path string)
	seen := map[*typePlan]bool{}
	check = func(p *typePlan, path string) {
		if seen[p] {
			return
		}
		seen[p] = true
		switch p.kind {
		case kindUnsupported:
			t.Errorf("%s: the one-pass decoder cannot read a %s", path, p.typ)
		case kindPointer, kindSlice:
			check(p.elem, path+"[]")
		case kindStruct:
			for _, f := range p.fields {
				check(f.plan, path+"."+f.name)
			}
		}
	}
	check(fileFields(), "file")
}

// Equal strings are stored once: that is most of what a large file's heap would otherwise hold.
func TestFastPathInterns(t *testing.T) {
	two := `{"campaigns": [` + campaignJSON[1:len(campaignJSON)-1] + `, ` + strings.Replace(campaignJSON[1:len(campaignJSON)-1], `"j1"`, `"j2"`, 1) + `]}`
	s := parseJSONFast([]byte(two), "two.json")
	if s == nil {
		t.Fatal("refused")
	}
	a, b := s.Campaigns[0], s.Campaigns[1]
	if unsafe.StringData(a.Creatives[0].HTML) != unsafe.StringData(b.Creatives[0].HTML) ||
		unsafe.StringData(a.AdvertiserDomain) != unsafe.StringData(b.AdvertiserDomain) {
		t.Error("equal strings are stored twice")
	}
}
