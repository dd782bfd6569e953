// Command timers measures how late this machine's timers fire: it sleeps a short time over and over
// and prints how far past the asked time each sleep woke (p50, p99, max). An open-loop load
// generator paces its requests by such timers, so when they fire a millisecond late no server can
// show a sub-millisecond p99 on that machine; run it before trusting a benchmarks/run.sh latency.
package main

import (
	"flag"
	"fmt"
	"slices"
	"time"
)

func main() {
	d := flag.Duration("sleep", 500*time.Microsecond, "how long each sleep asks for")
	n := flag.Int("n", 2000, "how many sleeps")
	flag.Parse()
	if *n < 1 {
		*n = 1
	}
	late := make([]time.Duration, *n)
	for i := range late {
		t := time.Now()
		time.Sleep(*d)
		late[i] = time.Since(t) - *d
	}
	slices.Sort(late)
	fmt.Printf("time.Sleep(%s) × %d: late by p50 %s, p99 %s, max %s\n", *d, *n,
		late[len(late)/2].Round(time.Microsecond), late[len(late)*99/100].Round(time.Microsecond), late[len(late)-1].Round(time.Microsecond))
}
