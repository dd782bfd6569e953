package events

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// PartitionCount is how many partitions topic has. With PartitionOf it tells which partition a key
// lands on, for writers that group the data of many keys into one message per partition (traffic
// reports) and for readers that must know which pacer vouches for a campaign (pacing heartbeats).
func PartitionCount(ctx context.Context, brokers []string, topic string) (int, error) {
	transport := &kafka.Transport{DialTimeout: 5 * time.Second}
	defer transport.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: replayRequestTimeout, Transport: transport}
	ctx, cancel := context.WithTimeout(ctx, replayRequestTimeout)
	defer cancel()
	counts, err := topicPartitionCounts(ctx, cl, []string{topic})
	if err != nil {
		return 0, err
	}
	return counts[topic], nil
}
