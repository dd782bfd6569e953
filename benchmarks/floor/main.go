// Command floor is the HTTP floor of the benchmarks: a minimal fasthttp server that answers every
// POST to /openrtb2/bid with 200 and the same fixed, realistic ~1 KB BidResponse, without reading the
// request. It does no decision work at all, so its latency and throughput are what the machine, the
// kernel's loopback and the HTTP stack cost; rtb's numbers divided by these say how much of the
// budget rtb's own work takes.
//
// It is a measuring instrument for benchmarks/run.sh, not part of the product. With --admin it also
// serves /debug/pprof/ there, so that run.sh can take the same execution trace of it as of rtb: the
// control that says which stalls the machine makes whatever the server does.
package main

import (
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof" // /debug/pprof/ on --admin's DefaultServeMux

	"github.com/valyala/fasthttp"
)

// response is a plausible banner BidResponse of about 1 KB, the size rtb answers with.
const response = `{"id":"floor-request","seatbid":[{"bid":[{"id":"b-6f1c2a9e4d7b3f80","impid":"1","price":1.85,` +
	`"nurl":"http://localhost:8090/win?id=b-6f1c2a9e4d7b3f80&price=${AUCTION_PRICE}&c=camp-01&cr=cr-01&sig=Zm9vYmFyYmF6cXV4cXV1eA",` +
	`"burl":"http://localhost:8090/bill?id=b-6f1c2a9e4d7b3f80&price=${AUCTION_PRICE}&c=camp-01&cr=cr-01&sig=Zm9vYmFyYmF6cXV4cXV1eA",` +
	`"lurl":"http://localhost:8090/loss?id=b-6f1c2a9e4d7b3f80&reason=${AUCTION_LOSS}&c=camp-01&sig=Zm9vYmFyYmF6cXV4cXV1eA",` +
	`"adm":"<a href=\"http://localhost:8090/click?id=b-6f1c2a9e4d7b3f80&c=camp-01&cr=cr-01\"><img src=\"https://cdn.example.com/creatives/cr-01-300x250.png\" width=\"300\" height=\"250\" alt=\"\"></a><img src=\"http://localhost:8090/imp?id=b-6f1c2a9e4d7b3f80&c=camp-01&cr=cr-01\" width=\"1\" height=\"1\" alt=\"\">",` +
	`"adid":"cr-01","adomain":["shoes.example.com"],"bundle":"","iurl":"https://cdn.example.com/creatives/cr-01-300x250.png",` +
	`"cid":"camp-01","crid":"cr-01","cat":["IAB18-3"],"attr":[],"w":300,"h":250,"mtype":1}],"seat":"rtb"}],` +
	`"bidid":"b-6f1c2a9e4d7b3f80","cur":"USD"}`

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	admin := flag.String("admin", "", "address for /debug/pprof/ (net/http); empty: none")
	flag.Parse()

	if *admin != "" {
		go func() {
			if err := http.ListenAndServe(*admin, nil); err != nil {
				log.Fatalf("floor: admin %s: %v", *admin, err)
			}
		}()
	}

	body := []byte(response)
	handler := func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != "/openrtb2/bid" || !ctx.IsPost() {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("X-Openrtb-Version", "2.6")
		ctx.SetBody(body)
	}
	srv := &fasthttp.Server{Handler: handler, Name: "floor"}
	log.Printf("floor: listening on %s (%d-byte response)", *listen, len(body))
	if err := srv.ListenAndServe(*listen); err != nil {
		log.Fatal(err)
	}
}
