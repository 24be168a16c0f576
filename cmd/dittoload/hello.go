package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// helloBody is a fixed thing, about the size of the benchmark thing.
var helloBody = []byte(`{"thingId":"load:thing-0","policyId":"load:thing-0",` +
	`"attributes":{"manufacturer":"ACME","serialNo":"0"},` +
	`"features":{"coffee-brewer":{"properties":{"brewed-coffees":0}}}}`)

func helloHandler() http.Handler {
	size := strconv.Itoa(len(helloBody))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", size)
		_, _ = w.Write(helloBody) // the client went away; nothing to do
	})
}

// serveHello serves helloHandler on cfg.listen until ctx is done.
func serveHello(ctx context.Context, cfg config, stdout io.Writer) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: helloHandler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }() // ends when Shutdown returns or Serve fails
	fmt.Fprintf(stdout, "hello: listening on http://%s/\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
