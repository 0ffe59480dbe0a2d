// grpcload drives unary gRPC load (helloworld.Greeter/SayHello, the gRPC
// fixture's service) at one address from C goroutines over one client
// connection for a fixed time and prints the JSON line benches/loadgen
// prints: requests, errors, requests/s and latency (mean, p50, p99) in
// microseconds; total counts every answered call, warm-up included.
// benches/attach.sh builds it (scenario grpc) against a gRPC from the
// module proxy.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	addr := flag.String("addr", "", "server address")
	conc := flag.Int("c", 4, "concurrent callers")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warm := flag.Duration("warmup", time.Second, "unmeasured warm-up")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "grpcload: -addr is required")
		os.Exit(2)
	}
	cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcload:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var lat []time.Duration
	errs, total := 0, 0
	start := time.Now().Add(*warm)
	end := start.Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myErrs, myTotal := 0, 0
			for {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				out := new(wrapperspb.StringValue)
				err := cc.Invoke(context.Background(), "/helloworld.Greeter/SayHello", wrapperspb.String("load"), out)
				if err == nil {
					myTotal++
				}
				if t0.After(start) {
					if err != nil {
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
	res := map[string]interface{}{"requests": len(lat), "errors": errs, "rps": float64(len(lat)) / dur.Seconds(), "total": total}
	if len(lat) > 0 {
		res["mean_us"] = us(sum / time.Duration(len(lat)))
		res["p50_us"] = us(lat[len(lat)/2])
		res["p99_us"] = us(lat[len(lat)*99/100])
	}
	json.NewEncoder(os.Stdout).Encode(res)
}
