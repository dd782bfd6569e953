package events

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestPartitionRanges: where the Replayer, Follower and StateReader start reading a partition, for
// no start time, a time within the partition's messages, one after all of them, and one before.
func TestPartitionRanges(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t, "")
	brokers := b.Addrs()
	now := time.Now().UTC().Truncate(time.Millisecond)
	key := []byte("c-1")
	var msgs []kafka.Message
	for i, age := range []time.Duration{3 * time.Hour, 3 * time.Hour, 3 * time.Hour, time.Hour, time.Hour, 0, 0} {
		e := flImp("imp-"+string(rune('a'+i)), "c-1", now.Add(-age))
		msgs = append(msgs, kafka.Message{Topic: TopicWins, Key: key, Value: e.AppendJSON(nil), Time: e.TS})
	}
	rpProduce(t, brokers, msgs...)
	full := (&kafka.Hash{}).Balance(kafka.Message{Key: key}, 0, 1, 2, 3)
	empty := (full + 1) % 4

	cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		from  time.Time
		start int64
	}{
		{"no start time: from the first offset", time.Time{}, 0},
		{"before every message", now.Add(-24 * time.Hour), 0},
		{"between: the first message at or after it", now.Add(-2 * time.Hour), 3},
		{"after every message: the end", now.Add(time.Hour), 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := partitionRanges(ctx, cl, map[string][]int{TopicWins: {full, empty}}, tc.from)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("%d ranges, want the 2 asked for: %v", len(got), got)
			}
			if r := got[topicPartition{TopicWins, full}]; r != (offsetRange{tc.start, 7}) {
				t.Errorf("partition with 7 messages: %+v, want start %d end 7", r, tc.start)
			}
			if r := got[topicPartition{TopicWins, empty}]; r != (offsetRange{0, 0}) {
				t.Errorf("empty partition: %+v", r)
			}
		})
	}
	if got, err := partitionRanges(ctx, cl, nil, now); got != nil || err != nil {
		t.Errorf("nothing asked: %v, %v", got, err)
	}
	if _, err := partitionRanges(ctx, cl, map[string][]int{TopicWins: {9}}, time.Time{}); err == nil || !strings.Contains(err.Error(), TopicWins) {
		t.Errorf("a partition that does not exist: %v, want an error naming it", err)
	}
}
