// A Lambda runtime written against the Runtime API with Go's standard library only.
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
	client := &http.Client{}
	for {
		resp, err := client.Get(api + "next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "next:", err)
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		var event map[string]interface{}
		json.Unmarshal(body, &event)
		fmt.Fprintf(os.Stderr, "go handling %s\n", id)
		if reason, ok := event["fail"]; ok {
			failure, _ := json.Marshal(map[string]interface{}{
				"errorType": "GoError", "errorMessage": reason, "stackTrace": []string{"main.go"},
			})
			req, _ := http.NewRequest("POST", api+id+"/error", bytes.NewReader(failure))
			req.Header.Set("Lambda-Runtime-Function-Error-Type", "GoError")
			r, _ := client.Do(req)
			r.Body.Close()
			continue
		}
		out, _ := json.Marshal(map[string]interface{}{
			"runtime":  "go",
			"event":    event,
			"id":       id,
			"deadline": resp.Header.Get("Lambda-Runtime-Deadline-Ms"),
			"arn":      resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn"),
			"trace":    resp.Header.Get("Lambda-Runtime-Trace-Id"),
			"function": os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
			"memory":   os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
			"handler":  os.Getenv("_HANDLER"),
		})
		r, err := client.Post(api+id+"/response", "application/json", bytes.NewReader(out))
		if err != nil {
			os.Exit(1)
		}
		r.Body.Close()
	}
}
