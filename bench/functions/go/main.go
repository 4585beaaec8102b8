// The bench's Go function: a Lambda runtime written against the Runtime API with Go's standard
// library, whose handler decodes the event and answers {"ok": true}, as `noop` does for Python.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	client := &http.Client{} // one keep-alive connection, reused for every call
	answer := []byte(`{"ok":true}`)
	for {
		resp, err := client.Get(api + "next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "next:", err)
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var event interface{}
		if err := json.Unmarshal(body, &event); err != nil {
			fmt.Fprintln(os.Stderr, "event:", err)
		}
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		r, err := client.Post(api+id+"/response", "application/json", bytes.NewReader(answer))
		if err != nil {
			fmt.Fprintln(os.Stderr, "response:", err)
			os.Exit(1)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
}
