package dsv3

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// End to end against the real library and a small model (DSV3_TEST_MODEL).
// Expected tokens come from the library's own lower-level calls (Decode +
// Logits + argmax here), not from stored output: greedy Generate, Stream and
// a cancelled stream must agree with that reference.

const nGen = 6 // tokens generated per check; keeps the suite fast

var (
	e2eOnce  sync.Once
	e2eModel *Model
	e2eRef   []int32
	e2eErr   error
)

func testModel(t *testing.T) (*Model, []int32) {
	t.Helper()
	path := os.Getenv("DSV3_TEST_MODEL")
	if path == "" {
		t.Skip("no test model: set DSV3_TEST_MODEL to a model directory (meson sets it once " +
			"tests/meson.build defines dsv3_test_model)")
	}
	e2eOnce.Do(func() {
		e2eModel, e2eErr = LoadModel(context.Background(), path, &ModelOptions{Threads: 2})
		if e2eErr != nil {
			return
		}
		e2eRef, e2eErr = greedyReference(e2eModel)
	})
	if e2eErr != nil {
		t.Fatal(e2eErr)
	}
	return e2eModel, e2eRef
}

func promptFor(m *Model) ([]int32, error) {
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	if info.HasTokenizer() {
		return m.Tokenize("The quick brown fox", TokenizeAddBOS)
	}
	v := int32(info.VocabSize)
	return []int32{1 % v, 17 % v, 42 % v, 7 % v}, nil
}

func prompt(t *testing.T, m *Model) []int32 {
	p, err := promptFor(m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

func greedyReference(m *Model) ([]int32, error) {
	p, err := promptFor(m)
	if err != nil {
		return nil, err
	}
	c, err := m.NewContext(&ContextOptions{NCtx: 128})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Decode(nil, p, 0); err != nil {
		return nil, err
	}
	var out []int32
	for i := 0; i < nGen; i++ {
		lg, err := c.Logits(-1)
		if err != nil {
			return nil, err
		}
		tok := argmax(lg)
		out = append(out, tok)
		if err := c.Decode(nil, []int32{tok}, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func greedySampler(t *testing.T) *Sampler {
	g := GreedySamplerOptions()
	s, err := NewSampler(&g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func nCtx(t *testing.T, m *Model) int {
	info, _ := m.Info()
	if info.MaxPosition < 4096 {
		return info.MaxPosition
	}
	return 4096
}

func TestModelInfo(t *testing.T) {
	m, _ := testModel(t)
	info, err := m.Info()
	if err != nil || info.VocabSize <= 0 || info.Layers <= 0 || info.Params == 0 ||
		info.Backend == BackendAuto {
		t.Fatalf("%+v %v", info, err)
	}
}

func TestModelTokenizer(t *testing.T) {
	m, _ := testModel(t)
	info, _ := m.Info()
	if !info.HasTokenizer() {
		t.Skip("the test model has no tokenizer")
	}
	text := "Hello, world! héllo 日本語 🙂\n  tabs\tand spaces"
	toks, err := m.Tokenize(text, 0)
	if err != nil || len(toks) == 0 {
		t.Fatal(err)
	}
	if back, err := m.Detokenize(toks, 0); err != nil || back != text {
		t.Errorf("round trip %q %v", back, err)
	}
	var raw []byte
	for _, tok := range toks {
		b, err := m.TokenBytes(tok)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	if string(raw) != text {
		t.Errorf("token bytes %q", raw)
	}
	if _, err := m.Tokenize("bad \xff byte", 0); !errors.Is(err, ErrUTF8) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	if _, err := m.Detokenize([]int32{int32(info.VocabSize)}, 0); !errors.Is(err, ErrRange) {
		t.Errorf("out of range: %v", err)
	}
}

func TestModelChatTemplate(t *testing.T) {
	m, _ := testModel(t)
	info, _ := m.Info()
	if !info.HasChatTemplate() {
		t.Skip("the test model has no chat template")
	}
	text, err := m.ApplyChatTemplate([]Message{{"system", "Be brief."}, {"user", "Name a color."}}, true)
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(text, "Be brief."), strings.Index(text, "Name a color.")
	if i < 0 || j < i {
		t.Errorf("%q", text)
	}
	if info.HasTokenizer() && info.BOS >= 0 {
		if toks, _ := m.Tokenize(text, 0); len(toks) == 0 || toks[0] != info.BOS {
			t.Errorf("rendered chat does not start with BOS: %v", toks)
		}
	}
}

func TestModelGreedyGenerate(t *testing.T) {
	m, ref := testModel(t)
	c, err := m.NewContext(&ContextOptions{NCtx: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := prompt(t, m)
	r, err := c.Generate(nil, greedySampler(t), p, &GenerateOptions{MaxTokens: nGen,
		IgnoreEOS: true, ShowSpecial: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Tokens) != fmt.Sprint(ref) || r.StopReason != StopMaxTokens ||
		r.Generated != nGen || r.Prompt != len(p) {
		t.Fatalf("%+v, reference %v", r, ref)
	}
	if n, _ := c.NPast(); n != len(p)+nGen {
		t.Errorf("n_past %d", n)
	}
	if info, _ := m.Info(); info.HasTokenizer() {
		if want, _ := m.Detokenize(ref, 0); r.Text != want {
			t.Errorf("text %q, detokenized %q", r.Text, want)
		}
	}
}

func TestModelStream(t *testing.T) {
	m, ref := testModel(t)
	c, err := m.NewContext(&ContextOptions{NCtx: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Stream(nil, greedySampler(t), prompt(t, m), &GenerateOptions{MaxTokens: nGen,
		IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []int32
	for st.Next() {
		if st.Token().Index != len(got) {
			t.Errorf("index %d", st.Token().Index)
		}
		got = append(got, st.Token().ID)
	}
	if st.Err() != nil || fmt.Sprint(got) != fmt.Sprint(ref) {
		t.Fatalf("%v %v, reference %v", got, st.Err(), ref)
	}
}

func TestModelCancelMidGenerate(t *testing.T) {
	// Deterministic: the cancel is made while the token callback runs, so it
	// reaches a running dsv3_generate.
	m, ref := testModel(t)
	c, err := m.NewContext(&ContextOptions{NCtx: nCtx(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []int32
	r, err := c.Generate(ctx, greedySampler(t), prompt(t, m), &GenerateOptions{IgnoreEOS: true},
		func(tok Token) error {
			got = append(got, tok.ID)
			if len(got) == 2 {
				cancel()
			}
			return nil
		})
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(ref[:2]) || fmt.Sprint(r.Tokens) != fmt.Sprint(got) {
		t.Errorf("%v / %v, reference %v", got, r.Tokens, ref)
	}
}

func TestModelCancelMidStream(t *testing.T) {
	m, ref := testModel(t)
	c, err := m.NewContext(&ContextOptions{NCtx: nCtx(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := prompt(t, m)
	// The stream hands tokens over through a small buffer, so the generation
	// cannot run far ahead of this loop before the cancel.
	st, err := c.Stream(nil, greedySampler(t), p, &GenerateOptions{IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []int32
	for st.Next() {
		if got = append(got, st.Token().ID); len(got) == 1 {
			c.Cancel()
		}
	}
	if !errors.Is(st.Err(), ErrCanceled) || got[0] != ref[0] {
		t.Fatalf("%v after %v", st.Err(), got)
	}
	// the context is usable: start over and get the reference again
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Generate(nil, greedySampler(t), p, &GenerateOptions{MaxTokens: nGen, IgnoreEOS: true}, nil)
	if err != nil || fmt.Sprint(r.Tokens) != fmt.Sprint(ref) {
		t.Fatalf("%v %v", r, err)
	}
}

func TestModelCloseEarlyAndRollback(t *testing.T) {
	m, ref := testModel(t)
	c, err := m.NewContext(&ContextOptions{NCtx: nCtx(t, m)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := prompt(t, m)
	st, err := c.Stream(nil, greedySampler(t), p, &GenerateOptions{IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Next()
	st.Next()
	st.Close()
	n, err := c.NPast() // no ErrBusy: the generation has stopped
	if err != nil || n < len(p)+2 || n > nCtx(t, m) {
		t.Fatalf("n_past %d %v", n, err)
	}
	if err := c.Truncate(len(p) - 1); err != nil { // back to before the last prompt token
		t.Fatal(err)
	}
	r, err := c.Generate(nil, greedySampler(t), p[len(p)-1:], &GenerateOptions{MaxTokens: nGen,
		IgnoreEOS: true}, nil)
	if err != nil || fmt.Sprint(r.Tokens) != fmt.Sprint(ref) {
		t.Fatalf("%v %v", r, err)
	}
}

func TestModelFreeOrder(t *testing.T) {
	_, ref := testModel(t)
	m, err := LoadModel(nil, os.Getenv("DSV3_TEST_MODEL"), &ModelOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	p := prompt(t, m)
	c, err := m.NewContext(&ContextOptions{NCtx: 64})
	if err != nil {
		t.Fatal(err)
	}
	m.Close() // the context keeps the model alive in C
	r, err := c.Generate(nil, greedySampler(t), p, &GenerateOptions{MaxTokens: 2, IgnoreEOS: true}, nil)
	if err != nil || fmt.Sprint(r.Tokens) != fmt.Sprint(ref[:2]) {
		t.Fatalf("%v %v", r, err)
	}
	c.Close()
	if _, err := c.NPast(); !errors.Is(err, ErrClosed) {
		t.Errorf("closed context: %v", err)
	}
}

func TestModelProgress(t *testing.T) {
	testModel(t)
	var last [2]uint64
	calls := 0
	m, err := LoadModel(nil, os.Getenv("DSV3_TEST_MODEL"), &ModelOptions{Threads: 2,
		Progress: func(st ProgressStage, done, total uint64) {
			if st != ProgressLoad || done > total {
				t.Errorf("progress %v %d/%d", st, done, total)
			}
			calls++
			last = [2]uint64{done, total}
		}})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if calls == 0 || last[0] != last[1] {
		t.Errorf("%d progress calls, last %v", calls, last)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = LoadModel(ctx, os.Getenv("DSV3_TEST_MODEL"), &ModelOptions{
		Progress: func(ProgressStage, uint64, uint64) { cancel() }})
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled load: %v", err)
	}
}

func TestModelStateRoundTrip(t *testing.T) {
	m, ref := testModel(t)
	a, _ := m.NewContext(&ContextOptions{NCtx: 128})
	defer a.Close()
	b, _ := m.NewContext(&ContextOptions{NCtx: 128})
	defer b.Close()
	p := prompt(t, m)
	if err := a.Decode(nil, p, 0); err != nil {
		t.Fatal(err)
	}
	st, err := a.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.LoadState(st); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.NPast(); n != len(p) {
		t.Errorf("n_past %d", n)
	}
	if lg, err := b.Logits(-1); err != nil || argmax(lg) != ref[0] {
		t.Errorf("restored logits: %v", err)
	}
}
