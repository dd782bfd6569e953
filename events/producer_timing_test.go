package events

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// Timing of the producer. Run with
//
//	go test -run '^$' -bench 'Publish|ProducerThroughput' -benchtime 2s ./events/
//
// allocs/op counts every allocation of the process while the timer runs, the background goroutines'
// (kafka-go's batches) included, so it is the amortised figure per event.

// ptBenchBroker starts an embedded broker on a free port; the caller closes it.
func ptBenchBroker(b *testing.B) *Broker {
	b.Helper()
	br, err := StartBroker(context.Background(), BrokerConfig{Addr: ptFreeAddr(b), Partitions: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return br
}

var ptBenchCampaigns = func() []string {
	out := make([]string, 64)
	for i := range out {
		out[i] = fmt.Sprintf("campaign-%d", i)
	}
	return out
}()

// BenchmarkPublish is the cost of Publish on the request goroutine, Kafka up and the producer
// keeping up: every 8192 events the timer stops until Kafka acknowledged them, so that the queue
// never fills and the figure is the normal path's (not the cheaper drop path or the spill).
func BenchmarkPublish(b *testing.B) {
	for _, typ := range []Type{Bid, Win} {
		b.Run(string(typ), func(b *testing.B) {
			br := ptBenchBroker(b)
			defer br.Close()
			p, _ := ptProducer(b, ProducerConfig{Brokers: br.Addrs()})
			defer p.Close(context.Background())
			e := ptEvent(typ, 1, "campaign-42")
			e.CreativeID, e.DealID = "creative-7", "deal-9"
			ti := prodTopicIndex(typ)
			const chunk = 8192
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.CampaignID = ptBenchCampaigns[i%len(ptBenchCampaigns)]
				p.Publish(&e)
				if i%chunk == chunk-1 {
					b.StopTimer()
					want := float64(i + 1)
					ptWaitUntil(b, time.Minute, "acknowledged", func() bool { return ptVal(p.m.published[ti]) >= want })
					b.StartTimer()
				}
			}
			b.StopTimer()
			b.ReportMetric(ptSumDropped(p)/float64(b.N), "dropped/op")
			b.ReportMetric(ptSum(p.m.spilled)/float64(b.N), "spilled/op")
		})
	}
}

// BenchmarkPublishParallel is Publish from many request goroutines at once, as fast as they can:
// the queue fills and bids are dropped (dropped/op says how many), which is the overload path.
func BenchmarkPublishParallel(b *testing.B) {
	br := ptBenchBroker(b)
	defer br.Close()
	p, _ := ptProducer(b, ProducerConfig{Brokers: br.Addrs()})
	defer p.Close(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := ptEvent(Bid, 1, "campaign-42")
		i := 0
		for pb.Next() {
			e.CampaignID = ptBenchCampaigns[i%len(ptBenchCampaigns)]
			p.Publish(&e)
			i++
		}
	})
	b.StopTimer()
	b.ReportMetric(ptSumDropped(p)/float64(b.N), "dropped/op")
}

// BenchmarkProducerThroughput is events per second from Publish to Kafka's acknowledgement
// (acks=all, lz4) through the embedded broker. The publisher waits while the queue is half full,
// so the figure is Kafka's pace, not the drop or spill path's.
func BenchmarkProducerThroughput(b *testing.B) {
	for _, typ := range []Type{Bid, Win} {
		b.Run(string(typ), func(b *testing.B) {
			br := ptBenchBroker(b)
			defer br.Close()
			p, _ := ptProducer(b, ProducerConfig{Brokers: br.Addrs()})
			defer p.Close(context.Background())
			ti := prodTopicIndex(typ)
			e := ptEvent(typ, 1, "campaign-42")
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for len(p.moneyCh)+len(p.otherCh) > p.cfg.QueueSize/2 {
					time.Sleep(20 * time.Microsecond)
				}
				e.CampaignID = ptBenchCampaigns[i%len(ptBenchCampaigns)]
				e.BidMicros = int64(i)
				p.Publish(&e)
			}
			want := float64(b.N)
			ptWaitUntil(b, 5*time.Minute, "all acknowledged", func() bool { return ptVal(p.m.published[ti]) >= want })
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(ptSumDropped(p)/float64(b.N), "dropped/op")
			b.ReportMetric(ptSum(p.m.spilled)/float64(b.N), "spilled/op")
		})
	}
}

func ptSumDropped(p *Producer) float64 {
	n := 0.0
	for i := range p.m.dropped {
		for j := range p.m.dropped[i] {
			n += ptVal(p.m.dropped[i][j])
		}
	}
	return n
}
