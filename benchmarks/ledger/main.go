// Command ledger is the exchange's side of benchmarks/faults.sh: a notice relay in front of each
// bidder that retries a notice until the bidder answers it (as exchanges retry nurl and burl) and
// writes down every billing notice a bidder acknowledged, with the event id the bidder gives it. The
// script compares that ledger with the billing events on Kafka and the pacer's spend: a bill in
// the ledger missing from Kafka is money lost.
//
//	go run ./benchmarks/ledger --relay 127.0.0.1:18501=http://127.0.0.1:18511,… --out bills.log
//
// Each line of --out: unix milliseconds of the acknowledgement, event id, HTTP status,
// attempts. Only 2xx answers are written; a notice the bidder refuses (4xx) is not retried.
//
//	go run ./benchmarks/ledger --dlq 127.0.0.1:18590
//
// prints the dead letters of rtb.dlq, one line each as a Markdown table row: the topic the message
// came from, the consumer group that refused it, and the first line of the reason.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"rtb/events"
)

func main() {
	relays := flag.String("relay", "", "LISTEN=TARGET_BASE_URL pairs, comma-separated")
	out := flag.String("out", "bills.log", "file the acknowledged billing notices are appended to")
	retryFor := flag.Duration("retry-for", 2*time.Minute, "longest a notice is retried (a bidder restarting, a broker outage)")
	dlq := flag.String("dlq", "", "print the dead letters on this broker's rtb.dlq and exit")
	flag.Parse()
	if *dlq != "" {
		if err := printDLQ(*dlq); err != nil {
			log.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	w := &ledger{w: bufio.NewWriter(f)}
	go func() {
		for range time.Tick(200 * time.Millisecond) {
			w.flush()
		}
	}()
	client := &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: 256},
	}
	var wg sync.WaitGroup
	for _, pair := range strings.Split(*relays, ",") {
		listen, target, ok := strings.Cut(pair, "=")
		if !ok {
			log.Fatalf("--relay %q: want LISTEN=TARGET", pair)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				relay(rw, r, client, strings.TrimRight(target, "/"), *retryFor, w)
			})
			log.Fatal(http.ListenAndServe(listen, h))
		}()
	}
	wg.Wait()
}

type ledger struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *ledger) add(id string, status, attempts int) {
	l.mu.Lock()
	fmt.Fprintf(l.w, "%d %s %d %d\n", time.Now().UnixMilli(), id, status, attempts)
	l.mu.Unlock()
}

func (l *ledger) flush() {
	l.mu.Lock()
	if err := l.w.Flush(); err != nil {
		log.Fatal(err)
	}
	l.mu.Unlock()
}

// relay sends the notice to the bidder until it answers below 500 (or retryFor passes) and hands
// the answer back. The relayed request is not the caller's: a caller that gives up does not stop
// the retries, as an exchange's retry queue would not.
func relay(rw http.ResponseWriter, r *http.Request, client *http.Client, target string, retryFor time.Duration, l *ledger) {
	u := target + r.URL.RequestURI()
	deadline := time.Now().Add(retryFor)
	for attempt := 1; ; attempt++ {
		resp, err := client.Get(u)
		if err == nil && resp.StatusCode < 500 {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if r.URL.Path == "/bill" && resp.StatusCode < 300 {
				l.add(eventID("bill", r.URL.Query().Get("t")), resp.StatusCode, attempt)
			}
			for _, k := range []string{"Location", "Content-Type", "Cache-Control"} {
				if v := resp.Header.Get(k); v != "" {
					rw.Header().Set(k, v)
				}
			}
			rw.WriteHeader(resp.StatusCode)
			rw.Write(body)
			return
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			http.Error(rw, "bidder did not answer", http.StatusBadGateway)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventID is the id the bidder gives the event of a notice (bidder/notices.go): the first 16
// bytes of SHA-256 over the notice type, a zero byte and the token, in hex.
func eventID(typ, token string) string {
	h := sha256.Sum256([]byte(typ + "\x00" + token))
	return hex.EncodeToString(h[:16])
}

// printDLQ prints every dead letter of rtb.dlq on broker: topic | group | first line of the reason.
func printDLQ(broker string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		return err
	}
	parts, err := conn.ReadPartitions(events.TopicDLQ)
	conn.Close()
	if err != nil {
		return err
	}
	for _, p := range parts {
		lc, err := kafka.DialLeader(ctx, "tcp", broker, events.TopicDLQ, p.ID)
		if err != nil {
			return err
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			return err
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: events.TopicDLQ, Partition: p.ID, MaxBytes: 8 << 20})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return fmt.Errorf("%s/%d: %w", events.TopicDLQ, p.ID, err)
			}
			h := map[string]string{}
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			reason, _, _ := strings.Cut(h[events.HeaderDLQError], "\n")
			if len(reason) > 100 {
				reason = reason[:100] + "…"
			}
			fmt.Printf("| %s | %s | %s |\n", h[events.HeaderDLQTopic], h[events.HeaderDLQGroup], strings.ReplaceAll(reason, "|", "\\|"))
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return nil
}
