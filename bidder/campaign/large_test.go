package campaign_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"rtb/bidder/campaign"
	"rtb/bidder/campaign/campaigntest"
)

// writeSynthetic writes n synthetic campaigns as a JSON campaign file, indented as benchmarks/campaigns
// writes them or, cheaper to write, on one line, and returns its path.
func writeSynthetic(tb testing.TB, n int, indent bool) string {
	tb.Helper()
	set := campaigntest.Synthetic(n, 1)
	top := struct {
		Campaigns []*campaign.Campaign `json:"campaigns"`
	}{set.Campaigns}
	data, err := json.Marshal(top)
	if indent {
		data, err = json.MarshalIndent(top, "", " ")
	}
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), fmt.Sprintf("c%d.json", n))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkLoad is what `rtb serve --campaigns FILE` and every reload pay to read a file of that many
// campaigns.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		path := writeSynthetic(b, n, true)
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("campaigns=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(fi.Size())
			for b.Loop() {
				s, err := campaign.Load(path)
				if err != nil {
					b.Fatal(err)
				}
				if len(s.Campaigns) != n {
					b.Fatalf("%d campaigns", len(s.Campaigns))
				}
			}
		})
	}
}

// A file of many campaigns loads, and the walk that guards against alias bombs lets it through
// because its bound grows with the file, while the bomb, a few hundred bytes, is still refused.
func TestLargeFile(t *testing.T) {
	const n = 20_000
	s, err := campaign.Load(writeSynthetic(t, n, false))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Campaigns) != n || s.ByID("syn-19999") == nil {
		t.Fatalf("%d campaigns", len(s.Campaigns))
	}

	// With the fixed part of the bound far below what the file visits, only the part proportional
	// to the file's size can let it through the checked path (the one every YAML file and every
	// refused JSON file takes).
	defer campaign.SetMinVisits(10_000)()
	data, err := os.ReadFile(writeSynthetic(t, 1_000, true))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := campaign.ParseChecked(data, "c1000.json"); err != nil || len(s.Campaigns) != 1_000 {
		t.Fatalf("the checked path refuses 1,000 campaigns: %v", err)
	}
	if _, err := campaign.Load("testdata/alias-bomb.bad.yaml"); err == nil || !strings.Contains(err.Error(), "the file expands to too many values") {
		t.Fatalf("alias bomb: %v", err)
	}
}

// A problem in a large file is still reported with campaign, field and line.
func TestLargeFileProblem(t *testing.T) {
	data, err := os.ReadFile(writeSynthetic(t, 1_000, true))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(data, []byte(`"daily": 1000`))
	bad := append(append(append([]byte(nil), data[:i]...), `"daily": 0`...), data[i+len(`"daily": 1000`):]...)
	line := 1 + bytes.Count(data[:i], []byte("\n"))
	_, err = campaign.Parse(bad, "c1000.json", "")
	want := fmt.Sprintf(`c1000.json: campaign "syn-00999": budget.daily: required, > 0 (currency units per day) (line %d)`, line)
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}
