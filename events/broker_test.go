package events

import (
	"context"
	"fmt"
	"net"
	"testing"
)

// startTestBroker starts an embedded broker on a free loopback port, with its log in dir ("" for
// memory only), and closes it when the test ends.
func startTestBroker(t testing.TB, dir string) *Broker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	b, err := StartBroker(context.Background(), BrokerConfig{Addr: addr, DataDir: dir, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestBrokerCreatesTopics(t *testing.T) {
	b := startTestBroker(t, t.TempDir())
	for _, spec := range Topics(4) {
		info := b.c.TopicInfo(spec.Name)
		if info == nil {
			t.Errorf("topic %s missing", spec.Name)
			continue
		}
		if n := len(b.c.PartitionInfos(spec.Name)); n != spec.Partitions {
			t.Errorf("topic %s has %d partitions, want %d", spec.Name, n, spec.Partitions)
		}
		if p := info.Configs["cleanup.policy"]; spec.Compact != (p != nil && *p == "compact") {
			t.Errorf("topic %s cleanup.policy %v, want compact=%v", spec.Name, p, spec.Compact)
		}
	}
	// A second call finds them all and creates nothing.
	if err := EnsureTopics(context.Background(), b.Addrs(), Topics(4)); err != nil {
		t.Fatal(err)
	}
}

// The state topics are compacted when as much has been written since the last compaction as it
// kept, not on every tick: a compaction rewrites every record kept, and at 100,000 campaigns the
// broker then answered nothing for 180 ms, once a minute, for a few hundred changed states.
func TestBrokerCompactsWhenDirty(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), rpWait)
	defer cancel()
	w := NewStateWriter(brokers, TopicPacing)
	defer w.Close()
	const keys = 100
	round := func(n, r int) {
		t.Helper()
		for k := range n { // one write a key: each its own batch, as kfake compacts batches
			if err := w.Write(ctx, KV{fmt.Sprintf("c-%d", k), fmt.Appendf(nil, `{"round":%d}`, r)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	round(keys, 0)
	round(keys, 1)
	if !b.compactIfDirty() {
		t.Fatal("the first look did not compact two rounds of every key")
	}
	kept := len(stRecords(t, brokers, TopicPacing))
	if kept > keys+4 { // kfake keeps each partition's last batch
		t.Fatalf("%d records after compacting two rounds of %d keys", kept, keys)
	}
	round(keys/10, 2)
	if b.compactIfDirty() {
		t.Error("compacted after a tenth of the keys changed")
	}
	if got := len(stRecords(t, brokers, TopicPacing)); got != kept+keys/10 {
		t.Errorf("%d records after %d more, want %d: something was compacted", got, keys/10, kept+keys/10)
	}
	round(keys, 3)
	if !b.compactIfDirty() {
		t.Error("did not compact once every key changed again")
	}
	if got := len(stRecords(t, brokers, TopicPacing)); got > keys+4 {
		t.Errorf("%d records after the second compaction, want about %d", got, keys)
	}
}
