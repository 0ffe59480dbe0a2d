// loadgen drives HTTP GET load at one URL from C keep-alive connections
// for a fixed time and prints one JSON line: requests, errors, requests/s
// and latency (mean, p50, p99) in microseconds; total counts every
// answered request, warm-up included (what a tracer should have seen). benches/attach.sh uses it
// to compare a server with and without probes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to GET")
	conc := flag.Int("c", 4, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warm := flag.Duration("warmup", time.Second, "unmeasured warm-up")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url is required")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	total := 0
	start := time.Now().Add(*warm)
	end := start.Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myErrs := 0
			myTotal := 0
			for {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				resp, err := client.Get(*url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					myTotal++
				}
				if t0.After(start) {
					if err != nil || resp.StatusCode != 200 {
						myErrs++
					} else {
						mine = append(mine, time.Since(t0))
					}
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += myErrs
			total += myTotal
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	out := map[string]interface{}{"requests": len(lat), "errors": errs, "rps": float64(len(lat)) / dur.Seconds(), "total": total}
	if len(lat) > 0 {
		out["mean_us"] = us(sum / time.Duration(len(lat)))
		out["p50_us"] = us(lat[len(lat)/2])
		out["p99_us"] = us(lat[len(lat)*99/100])
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
