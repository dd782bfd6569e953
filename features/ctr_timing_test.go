package features

import (
	"strconv"
	"testing"
)

func BenchmarkCTREstimate(b *testing.B) {
	c, err := NewCTRs(CTRConfig{})
	if err != nil {
		b.Fatal(err)
	}
	camps := make([]string, 1000)
	segs := []string{"banner-300x250|site", "banner-728x90|site", "video|app", "native|app"}
	for i := range camps {
		camps[i] = "campaign-" + strconv.Itoa(i)
		for _, s := range segs {
			c.Impression(camps[i], s)
		}
	}
	c.Flush()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Estimate(camps[i%1000], segs[i%4], 0.001)
			i++
		}
	})
}
