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
	c     *kfake.Cluster
	done  chan struct{}
	close sync.Once
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
	b := &Broker{c: c, done: make(chan struct{})}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := EnsureTopics(tctx, c.ListenAddrs(), Topics(cfg.Partitions)); err != nil {
		c.Close()
		return nil, err
	}
	go b.compactLoop()
	cfg.Logger.Info("embedded broker started", "addr", c.ListenAddrs(), "data_dir", cfg.DataDir)
	return b, nil
}

// compactLoop compacts the state topics now and then, as a real cluster's log cleaner would.
func (b *Broker) compactLoop() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.c.Compact()
		case <-b.done:
			return
		}
	}
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
