package events

import (
	"context"
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
