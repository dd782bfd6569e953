package events

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// offsetRange is where reading one partition starts and where it ended when asked.
type offsetRange struct {
	start, end int64
}

// partitionRanges asks the brokers for the range to read of each partition in parts (topic →
// partition numbers): from the first offset to the end, or, with from set, from the first message
// at or after from, kept within [first, end] (end when no message is that recent). Every partition
// asked must answer, or it is an error.
//
// The Replayer, the Follower and the StateReader all start this way; one answer for all three keeps
// their starting points, and so their states, consistent with each other.
func partitionRanges(ctx context.Context, cl *kafka.Client, parts map[string][]int, from time.Time) (map[topicPartition]offsetRange, error) {
	want := 0
	ends := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	at := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for topic, ps := range parts {
		for _, p := range ps {
			want++
			ends.Topics[topic] = append(ends.Topics[topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
			at.Topics[topic] = append(at.Topics[topic], kafka.TimeOffsetOf(p, from))
		}
	}
	if want == 0 {
		return nil, nil
	}
	// The ends first, then the offsets for from: a message appended in between is then either
	// found by the time query or read as part of the tail, never skipped.
	res, err := cl.ListOffsets(ctx, ends)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := make(map[topicPartition]offsetRange, want)
	for topic, pos := range res.Topics {
		for _, po := range pos {
			if po.Error != nil {
				return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			if asked(parts, topic, po.Partition) {
				out[topicPartition{topic, po.Partition}] = offsetRange{start: po.FirstOffset, end: po.LastOffset}
			}
		}
	}
	if len(out) != want {
		return nil, fmt.Errorf("list offsets: %d of %d partitions answered", len(out), want)
	}
	if from.IsZero() {
		return out, nil
	}
	res, err = cl.ListOffsets(ctx, at)
	if err != nil {
		return nil, fmt.Errorf("list offsets at %s: %w", from.Format(time.RFC3339), err)
	}
	answered := 0
	for topic, pos := range res.Topics {
		for _, po := range pos {
			if po.Error != nil {
				return nil, fmt.Errorf("offset of %s/%d at %s: %w", topic, po.Partition, from.Format(time.RFC3339), po.Error)
			}
			tp := topicPartition{topic, po.Partition}
			r, ok := out[tp]
			if !ok {
				continue
			}
			// kafka-go files the answer under the time asked for; -1 means no message is that
			// recent.
			for off := range po.Offsets {
				answered++
				if off < 0 {
					r.start = r.end
				} else {
					r.start = min(max(off, r.start), r.end)
				}
			}
			out[tp] = r
		}
	}
	if answered != want {
		return nil, fmt.Errorf("list offsets at %s: %d of %d partitions answered", from.Format(time.RFC3339), answered, want)
	}
	return out, nil
}

func asked(parts map[string][]int, topic string, partition int) bool {
	return slices.Contains(parts[topic], partition)
}
