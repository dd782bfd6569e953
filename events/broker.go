package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TopicSpec describes a topic rtb uses.
type TopicSpec struct {
	Name       string
	Partitions int
	Compact    bool // state topics keep the last value per key
}

// Topics are the topics rtb creates where they do not exist. Event topics are keyed by campaign id,
// so their partition count bounds how many pacers can share the work.
func Topics(partitions int) []TopicSpec {
	if partitions <= 0 {
		partitions = 8
	}
	return []TopicSpec{
		{TopicBids, partitions, false},
		{TopicWins, partitions, false},
		{TopicImpressions, partitions, false},
		{TopicClicks, partitions, false},
		{TopicLosses, partitions, false},
		{TopicPacing, partitions, true},
		{TopicModels, partitions, true},
		{TopicDLQ, 1, false},
	}
}

// EnsureTopics creates the topics of specs that do not exist yet on the cluster at brokers; existing
// topics are left as they are. It works against any Kafka-protocol cluster.
func EnsureTopics(ctx context.Context, brokers []string, specs []TopicSpec) error {
	if len(brokers) == 0 {
		return errors.New("ensure topics: no brokers")
	}
	d := &kafka.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("ensure topics: dial %s: %w", brokers[0], err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("ensure topics: find controller: %w", err)
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("ensure topics: dial controller: %w", err)
	}
	defer cc.Close()
	existing := map[string]bool{}
	if parts, err := cc.ReadPartitions(); err == nil {
		for _, p := range parts {
			existing[p.Topic] = true
		}
	}
	var cfgs []kafka.TopicConfig
	for _, s := range specs {
		if existing[s.Name] {
			continue
		}
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: -1}
		if s.Compact {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		cfgs = append(cfgs, tc)
	}
	if len(cfgs) == 0 {
		return nil
	}
	if err := cc.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("ensure topics: create: %w", err)
	}
	return nil
}

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	Addr       string // host:port to listen on; default 127.0.0.1:9092
	DataDir    string // where the log persists across restarts; "" keeps it in memory only
	Partitions int    // partitions of the event topics; default 8
	Logger     *slog.Logger
}

// Broker is the embedded Kafka-protocol broker (kfake): one node, on loopback, persisting under a
// data dir. It is for one machine (`rtb serve`, development, tests); production names a real cluster.
type Broker struct {
	c       *kfake.Cluster
	compact []string // the state topics, compacted
	mu      sync.Mutex
	clean   map[string]int64 // bytes of each state topic after its last compaction; mu
	done    chan struct{}
	close   sync.Once
}

// StartBroker starts the embedded broker and creates rtb's topics on it.
func StartBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:9092"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	_, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: port: %w", cfg.Addr, err)
	}
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.ClusterID("rtb-embedded"),
		// kfake listens on 127.0.0.1:port; honour the host asked for.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, cfg.Addr) }),
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("broker data dir %s: %w", cfg.DataDir, err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.Addr, err)
	}
	b := &Broker{c: c, clean: map[string]int64{}, done: make(chan struct{})}
	specs := Topics(cfg.Partitions)
	for _, s := range specs {
		if s.Compact {
			b.compact = append(b.compact, s.Name)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := EnsureTopics(tctx, c.ListenAddrs(), specs); err != nil {
		c.Close()
		return nil, err
	}
	go b.compactLoop()
	cfg.Logger.Info("embedded broker started", "addr", c.ListenAddrs(), "data_dir", cfg.DataDir)
	return b, nil
}

// compactLoop applies retention every minute and compacts the state topics when they are dirty
// enough (compactIfDirty), as a real cluster's log cleaner would.
func (b *Broker) compactLoop() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !b.compactIfDirty() {
				b.c.ApplyRetention()
			}
		case <-b.done:
			return
		}
	}
}

// compactIfDirty compacts the state topics (and applies retention everywhere) once one of them has
// had as many bytes written since its last compaction as that compaction kept: Kafka's default
// min.cleanable.dirty.ratio, 0.5. The broker serves no request while it compacts, and compacting
// rewrites every record kept: at 100,000 campaigns a compaction of rtb.pacing every minute took
// 180 ms of the broker's loop for a few hundred changed states. It reports whether it compacted.
func (b *Broker) compactIfDirty() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	dirty := false
	for _, t := range b.compact {
		if size := b.topicBytes(t); size > 0 && size >= 2*b.clean[t] {
			dirty = true
		}
	}
	if !dirty {
		return false
	}
	b.c.Compact()
	for _, t := range b.compact {
		b.clean[t] = b.topicBytes(t)
	}
	return true
}

// topicBytes is how many bytes the broker holds of topic.
func (b *Broker) topicBytes(topic string) int64 {
	var n int64
	for _, p := range b.c.PartitionInfos(topic) {
		n += p.NumBytes
	}
	return n
}

// Addrs are the broker's addresses, for clients.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker, persisting its state when it has a data dir. Closing twice is harmless.
func (b *Broker) Close() {
	b.close.Do(func() {
		close(b.done)
		b.c.Close()
	})
}
