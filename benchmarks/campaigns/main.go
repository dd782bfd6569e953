// Command campaigns writes a file of N synthetic campaigns (campaigntest.Synthetic) that both
// `rtb serve --campaigns FILE` and `benchmarks/baseline --campaigns FILE` load, for the many-campaign
// rows of benchmarks/run.sh:
//
//	go run ./benchmarks/campaigns -n 1000 -seed 1 -o /tmp/c1000.json
//
// Synthetic names its targeting values in its own vocabulary (sites "site17.com", publishers "pub-3",
// deals "deal-5"), which `rtb loadgen`'s traffic never sends, so every campaign with a site allow list,
// a publisher list or deals could never bid. With -loadgen-vocab (the default) those values are
// renamed into the load generator's vocabulary (sites "site0017.example.com", publishers "pub003",
// deals "AB-Agency2-0006"), keeping Synthetic's Zipf spread, so those targeting paths are exercised
// and can match. Campaigns that need user segments stay as drawn: the baseline has no user store and
// skips them; rtb bids on them only for users its feature store puts in those segments.
//
// The file is JSON (the same schema as YAML), written with encoding/json and checked by loading it
// back with campaign.Load, the function both servers call. A summary goes to stderr.
//
// A measuring instrument for benchmarks/run.sh, not part of the product.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"rtb/bidder/campaign"
	"rtb/bidder/campaign/campaigntest"
)

// agencies are the deal owners of `rtb loadgen`'s private-market imps ("AB-<agency>-<0001..0020>").
var agencies = []string{"Agency1", "Agency2", "Agency3", "Agency4"}

func main() {
	n := flag.Int("n", 1000, "number of synthetic campaigns")
	seed := flag.Uint64("seed", 1, "seed of campaigntest.Synthetic")
	out := flag.String("o", "", "output FILE (.json); required")
	vocab := flag.Bool("loadgen-vocab", true, "rename sites, publishers and deals into rtb loadgen's vocabulary so those rules can match its traffic")
	flag.Parse()
	if *out == "" || *n <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	set := campaigntest.Synthetic(*n, *seed)
	if *vocab {
		for _, c := range set.Campaigns {
			t := &c.Targeting
			for i, s := range t.Sites.Allow {
				t.Sites.Allow[i] = renum(s, "site", ".com", "site%04d.example.com")
			}
			for i, p := range t.Publishers {
				t.Publishers[i] = renum(p, "pub-", "", "pub%03d")
			}
			for i, d := range t.Deals {
				if k, err := strconv.Atoi(strings.TrimPrefix(d, "deal-")); err == nil {
					t.Deals[i] = fmt.Sprintf("AB-%s-%04d", agencies[k%len(agencies)], 1+(k/len(agencies))%20)
				}
			}
			// Synthetic may draw the same site or deal twice; renaming keeps them equal, and the
			// loader refuses nothing for that, but dedupe so the lists read cleanly.
			t.Sites.Allow = dedupe(t.Sites.Allow)
			t.Publishers = dedupe(t.Publishers)
			t.Deals = dedupe(t.Deals)
		}
	}
	b, err := json.MarshalIndent(struct {
		Campaigns []*campaign.Campaign `json:"campaigns"`
	}{set.Campaigns}, "", " ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	loaded, err := campaign.Load(*out)
	if err != nil {
		log.Fatalf("the written file does not load: %v", err)
	}
	var sites, pubs, deals, segs, geo int
	for _, c := range loaded.Campaigns {
		t := &c.Targeting
		if len(t.Sites.Allow) > 0 {
			sites++
		}
		if len(t.Publishers) > 0 {
			pubs++
		}
		if len(t.Deals) > 0 {
			deals++
		}
		if len(t.Segments) > 0 {
			segs++
		}
		if len(t.Countries) > 0 {
			geo++
		}
	}
	fmt.Fprintf(os.Stderr, "campaigns: wrote %d synthetic campaigns (seed %d, loadgen vocabulary %v) to %s: %d with countries, %d with a site allow list, %d with publishers, %d deal-only, %d needing user segments\n",
		len(loaded.Campaigns), *seed, *vocab, *out, geo, sites, pubs, deals, segs)
}

// renum turns prefix<N>suffix into format(N); anything else is returned unchanged.
func renum(s, prefix, suffix, format string) string {
	if !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, suffix) {
		return s
	}
	k, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(s, prefix), suffix))
	if err != nil {
		return s
	}
	return fmt.Sprintf(format, k)
}

func dedupe(l []string) []string {
	seen := make(map[string]bool, len(l))
	out := l[:0]
	for _, v := range l {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
