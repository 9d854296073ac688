// Command info prints what the linked libdsv3 has and what a model is made of.
//
// usage: info [MODEL_DIR]
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/libdsv3/libdsv3/bindings/go/dsv3"
)

func main() {
	fmt.Println(dsv3.BuildInfo())
	fmt.Println("ABI", dsv3.ABIVersion(), "version", dsv3.Version())
	for _, b := range []dsv3.Backend{dsv3.BackendCPU, dsv3.BackendCUDA} {
		fmt.Printf("backend %v: %v\n", b, dsv3.BackendAvailable(b))
	}
	if len(os.Args) < 2 {
		return
	}
	m, err := dsv3.LoadModel(context.Background(), os.Args[1], nil)
	var e *dsv3.Error
	if errors.As(err, &e) {
		fmt.Fprintf(os.Stderr, "%s: %s: %s\n", os.Args[1], e.Name, e.Message)
		os.Exit(1)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%+v\n", info)
}
