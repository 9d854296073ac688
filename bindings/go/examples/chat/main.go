// Command chat talks with a model: each turn is rendered with the model's
// chat template and answered greedily; Ctrl-C stops the answer, not the
// program, through context cancellation.
//
// usage: chat MODEL_DIR
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/libdsv3/libdsv3/bindings/go/dsv3"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: chat MODEL_DIR")
	}
	m, err := dsv3.LoadModel(context.Background(), os.Args[1], &dsv3.ModelOptions{
		Progress: func(_ dsv3.ProgressStage, done, total uint64) {
			fmt.Fprintf(os.Stderr, "\rloading %d%%", 100*done/max(total, 1))
		}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Fprintln(os.Stderr)
	c, err := m.NewContext(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	opts := dsv3.GreedySamplerOptions()
	smp, err := dsv3.NewSampler(&opts)
	if err != nil {
		log.Fatal(err)
	}
	defer smp.Close()

	history := []dsv3.Message{{Role: "system", Content: "You are a helpful assistant."}}
	in := bufio.NewScanner(os.Stdin)
	for fmt.Print("> "); in.Scan(); fmt.Print("> ") {
		history = append(history, dsv3.Message{Role: "user", Content: in.Text()})
		text, err := m.ApplyChatTemplate(history, true)
		if err != nil {
			log.Fatal(err)
		}
		prompt, err := m.Tokenize(text, 0) // the template output starts with BOS
		if err != nil {
			log.Fatal(err)
		}
		if err := c.Clear(); err != nil { // re-evaluate the whole conversation
			log.Fatal(err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		res, err := c.Generate(ctx, smp, prompt, &dsv3.GenerateOptions{MaxTokens: 512},
			func(tok dsv3.Token) error {
				fmt.Print(tok.Text)
				return nil
			})
		stop()
		fmt.Println()
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Fatal(err)
		}
		history = append(history, dsv3.Message{Role: "assistant", Content: res.Text})
	}
}

func max(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
