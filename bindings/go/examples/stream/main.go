// Command stream prints a model's continuation of a prompt as it is generated.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/libdsv3/libdsv3/bindings/go/dsv3"
)

func main() {
	ctx := context.Background()
	m, err := dsv3.LoadModel(ctx, os.Args[1], nil)
	check(err)
	c, err := m.NewContext(nil)
	check(err)
	prompt, err := m.Tokenize("Once upon a time", dsv3.TokenizeAddBOS)
	check(err)
	s, err := c.Stream(ctx, nil, prompt, &dsv3.GenerateOptions{MaxTokens: 64})
	check(err)
	for s.Next() {
		fmt.Print(s.Token().Text)
	}
	check(s.Err())
	fmt.Println()
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
