// Command idle is bench/agent's baseline: a Go process that does nothing
// but an HTTP GET on an interval, the least an agent checking in can do.
package main

import (
	"net/http"
	"os"
	"time"
)

func main() {
	every, err := time.ParseDuration(os.Args[2])
	if err != nil {
		os.Exit(2)
	}
	for {
		if resp, err := http.Get(os.Args[1]); err == nil {
			resp.Body.Close()
		}
		time.Sleep(every)
	}
}
