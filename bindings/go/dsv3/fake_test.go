package dsv3

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFakeLibrary tests what the binding itself does (buffer sizing,
// callbacks, goroutines, cancellation, error mapping, handle lifetimes)
// against bindings/testdata/fake_dsv3.c, a scripted stand-in for libdsv3:
// a byte tokenizer whose "model" continues a token t with t+1 ('`' -> "abc..."),
// one token every 2 ms, with real cancel and busy flags. It runs in a child
// process that loads the fake instead of the real library. The same
// scenarios against a real model are in model_test.go.
func TestFakeLibrary(t *testing.T) {
	switch os.Getenv("DSV3_GO_FAKE") {
	case "":
		runWithLibrary(t, buildFake(t), "TestFakeLibrary", "fake")
		return
	case "fake":
	default:
		t.Skip("child process for another test")
	}
	if BuildInfo() != "fake libdsv3 for binding tests" {
		t.Fatalf("the child runs on %q, not on the fake", BuildInfo())
	}
	dir := t.TempDir()
	load := func(t *testing.T) *Model {
		m, err := LoadModel(nil, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	newCtx := func(t *testing.T, m *Model, o *ContextOptions) *Context {
		c, err := m.NewContext(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	greedy := func(t *testing.T) *Sampler {
		g := GreedySamplerOptions()
		s, err := NewSampler(&g)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	const letters = "abcdefghijklmnopqrstuvwxyz"
	bt := []int32{'`'} // the fake continues it with "abc..."

	t.Run("LoadErrors", func(t *testing.T) {
		missing := filepath.Join(dir, "missing")
		_, err := LoadModel(nil, missing, nil)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrIO) {
			t.Fatalf("%v", err)
		}
		if e.Name != "DSV3_E_IO" || e.Op != "dsv3_model_load" ||
			!strings.Contains(e.Message, missing) || !strings.Contains(e.Message, "No such file") {
			t.Errorf("%#v", e)
		}
	})

	t.Run("ProgressAndLogger", func(t *testing.T) {
		var events []string
		var logs []string
		var mu sync.Mutex
		m, err := LoadModel(nil, dir, &ModelOptions{LogLevel: LogInfo,
			Logger: func(l LogLevel, msg string) {
				mu.Lock()
				logs = append(logs, l.String()+": "+msg)
				mu.Unlock()
			},
			Progress: func(st ProgressStage, done, total uint64) {
				events = append(events, fmt.Sprintf("%v %d/%d", st, done, total))
			}})
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		if fmt.Sprint(events) != "[load 0/300 load 100/300 load 200/300 load 300/300]" {
			t.Errorf("progress %v", events)
		}
		if fmt.Sprint(logs) != "[info: fake model loaded]" {
			t.Errorf("log %v", logs)
		}
	})

	t.Run("LoadCanceledByContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := LoadModel(ctx, dir, &ModelOptions{Progress: func(ProgressStage, uint64, uint64) {
			cancel()
		}})
		if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("%v", err)
		}
		if _, err := LoadModel(ctx, dir, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("already canceled: %v", err)
		}
	})

	t.Run("ProgressPanicPropagates", func(t *testing.T) {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		LoadModel(nil, dir, &ModelOptions{Progress: func(ProgressStage, uint64, uint64) {
			panic("boom")
		}})
		t.Fatal("no panic")
	})

	t.Run("Info", func(t *testing.T) {
		info, err := load(t).Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.VocabSize != 258 || info.BOS != 256 || info.EOS != 257 || !info.HasTokenizer() ||
			!info.HasChatTemplate() || info.HasMTP() || info.Backend != BackendCPU {
			t.Errorf("%+v", info)
		}
	})

	t.Run("Text", func(t *testing.T) {
		m := load(t)
		text := "héllo, 世界 🙂"
		toks, err := m.Tokenize(text, 0)
		if err != nil || len(toks) != len(text) || toks[1] != 0xC3 {
			t.Fatalf("%v %v", toks, err)
		}
		withBOS, _ := m.Tokenize(text, TokenizeAddBOS)
		if withBOS[0] != 256 || len(withBOS) != len(toks)+1 {
			t.Errorf("BOS: %v", withBOS)
		}
		if back, err := m.Detokenize(toks, 0); err != nil || back != text {
			t.Errorf("%q %v", back, err)
		}
		if s, _ := m.Detokenize([]int32{256, 'h', 257}, DetokenizeSkipSpecial); s != "h" {
			t.Errorf("skip special: %q", s)
		}
		if sp, _ := m.Tokenize("<s>x", TokenizeNoSpecial); len(sp) != 4 {
			t.Errorf("no special: %v", sp)
		}
		if b, err := m.TokenBytes(257); err != nil || string(b) != "</s>" {
			t.Errorf("token bytes %q %v", b, err)
		}
		if e, err := m.Tokenize("", 0); err != nil || len(e) != 0 {
			t.Errorf("empty: %v %v", e, err)
		}
		_, err = m.Tokenize("ok\xff", 0)
		var de *Error
		if !errors.As(err, &de) || de.Code != CodeUTF8 || de.Message != "text is not valid UTF-8" {
			t.Errorf("invalid UTF-8: %v", err)
		}
		if _, err := m.Detokenize([]int32{1, 999}, 0); !errors.Is(err, ErrRange) {
			t.Errorf("out of range: %v", err)
		}
	})

	t.Run("ChatTemplate", func(t *testing.T) {
		m := load(t)
		out, err := m.ApplyChatTemplate([]Message{{"system", "be brief"}, {"user", "hi"}}, true)
		if err != nil || out != "<s>system: be brief\nuser: hi\nassistant: " {
			t.Fatalf("%q %v", out, err)
		}
		many := make([]Message, 200) // more than the first buffer guess: E_NOSPC, retry
		for i := range many {
			many[i] = Message{"user", ""}
		}
		out, err = m.ApplyChatTemplate(many, false)
		if err != nil || out != "<s>"+strings.Repeat("user: \n", 200) {
			t.Fatalf("%d bytes, %v", len(out), err)
		}
		if _, err := m.ApplyChatTemplate([]Message{{"robot", "x"}}, true); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad role: %v", err)
		}
		if _, err := m.ApplyChatTemplate([]Message{{"user", "a\x00b"}}, true); !errors.Is(err, ErrInvalid) {
			t.Errorf("NUL: %v", err)
		}
	})

	t.Run("DecodeLogitsSample", func(t *testing.T) {
		c := newCtx(t, load(t), &ContextOptions{NCtx: 64})
		s := greedy(t)
		if err := c.Decode(nil, []int32{1, 2, 65}, 0); err != nil {
			t.Fatal(err)
		}
		if n, _ := c.NPast(); n != 3 {
			t.Errorf("n_past %d", n)
		}
		lg, err := c.Logits(-1)
		if err != nil || len(lg) != 258 || lg[66] != 1 {
			t.Fatalf("%v", err)
		}
		if tok, _ := s.Sample(lg); tok != 66 {
			t.Errorf("sample %d", tok)
		}
		s.SetLogitBias(66, float32(math.Inf(-1)))
		if tok, _ := s.Sample(lg); tok != 0 {
			t.Errorf("biased sample %d", tok)
		}
		if _, err := c.Logits(5); !errors.Is(err, ErrRange) {
			t.Errorf("row 5: %v", err)
		}
		if err := c.Decode(nil, make([]int32, 100), 0); !errors.Is(err, ErrContextFull) {
			t.Errorf("full: %v", err)
		}
		if err := c.Truncate(9); !errors.Is(err, ErrRange) {
			t.Errorf("truncate: %v", err)
		}
	})

	t.Run("ParamsAndState", func(t *testing.T) {
		c := newCtx(t, load(t), &ContextOptions{NCtx: 32, Threads: 3})
		if v, _ := c.Param(ParamNCtx); v != 32 {
			t.Errorf("n_ctx %d", v)
		}
		if err := c.SetParam(ParamThreads, 5); err != nil {
			t.Fatal(err)
		}
		if v, _ := c.Param(ParamThreads); v != 5 {
			t.Errorf("threads %d", v)
		}
		if err := c.SetParam(ParamThreads, 0); !errors.Is(err, ErrRange) {
			t.Errorf("threads 0: %v", err)
		}
		if lo, hi, err := ParamBounds(ParamThreads); lo != 1 || hi != 1024 || err != nil {
			t.Errorf("bounds %d %d %v", lo, hi, err)
		}
		c.Decode(nil, []int32{7, 8}, 0)
		st, err := c.SaveState()
		if err != nil {
			t.Fatal(err)
		}
		c.Clear()
		if err := c.LoadState(st); err != nil {
			t.Fatal(err)
		}
		if n, _ := c.NPast(); n != 2 {
			t.Errorf("restored n_past %d", n)
		}
		if err := c.LoadState([]byte("nonsense")); !errors.Is(err, ErrFormat) {
			t.Errorf("bad state: %v", err)
		}
	})

	t.Run("Generate", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		s := greedy(t)
		r, err := c.Generate(nil, s, []int32{256, '`'}, &GenerateOptions{MaxTokens: 5}, nil)
		if err != nil || r.Text != "abcde" || r.StopReason != StopMaxTokens || r.Prompt != 2 ||
			r.Generated != 5 || fmt.Sprint(r.Tokens) != "[97 98 99 100 101]" {
			t.Fatalf("%+v %v", r, err)
		}
		if n, _ := c.NPast(); n != 7 {
			t.Errorf("n_past %d", n)
		}
		r, _ = c.Generate(nil, s, nil, nil, nil)
		if r.Text != letters[5:] || r.StopReason != StopEOS {
			t.Errorf("to EOS: %+v", r)
		}
		r, _ = c.Generate(nil, s, bt, &GenerateOptions{Stop: []string{"d"}}, nil)
		if r.Text != "abc" || r.StopReason != StopString {
			t.Errorf("stop string: %+v", r)
		}
		var seen []Token
		r, err = c.Generate(nil, s, bt, nil, func(tok Token) error {
			seen = append(seen, tok)
			if len(seen) == 3 {
				return ErrStop
			}
			return nil
		})
		if err != nil || r.StopReason != StopCallback || len(seen) != 3 || seen[2].Index != 2 ||
			seen[2].Text != "c" {
			t.Errorf("ErrStop: %+v %v", r, err)
		}
		r, _ = c.Generate(nil, s, bt, &GenerateOptions{MaxTokens: 28, IgnoreEOS: true,
			ShowSpecial: true}, nil)
		if r.Text != letters+"</s>a" {
			t.Errorf("ignore EOS: %q", r.Text)
		}
		mine := errors.New("mine")
		_, err = c.Generate(nil, nil, bt, nil, func(Token) error { return mine })
		if err != mine {
			t.Errorf("callback error: %v", err)
		}
		if _, err := c.Generate(nil, s, bt, &GenerateOptions{MaxTokens: -1}, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("MaxTokens -1: %v", err)
		}
		if _, err := c.Generate(nil, s, bt, &GenerateOptions{Stop: []string{""}}, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty stop: %v", err)
		}
	})

	t.Run("GenerateCallbackPanic", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		func() {
			defer func() {
				if r := recover(); r != "in callback" {
					t.Fatalf("recovered %v", r)
				}
			}()
			c.Generate(nil, nil, bt, nil, func(Token) error { panic("in callback") })
		}()
		if r, err := c.Generate(nil, nil, bt, &GenerateOptions{MaxTokens: 1}, nil); err != nil || r.Text != "a" {
			t.Errorf("context after a panic: %v %v", r, err)
		}
	})

	t.Run("Stream", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		before := runtime.NumGoroutine()
		st, err := c.Stream(nil, greedy(t), bt, &GenerateOptions{MaxTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		for st.Next() {
			text.WriteString(st.Token().Text)
		}
		if st.Err() != nil || text.String() != "abcdefghij" ||
			st.Result().StopReason != StopMaxTokens || len(st.Result().Tokens) != 10 {
			t.Fatalf("%q %v %+v", text.String(), st.Err(), st.Result())
		}
		st.Close()
		st, _ = c.Stream(nil, nil, bt, &GenerateOptions{MaxTokens: 3})
		var chText string
		for tok := range st.C() {
			chText += tok.Text
		}
		if chText != "abc" || st.Err() != nil {
			t.Errorf("channel: %q %v", chText, st.Err())
		}
		waitGoroutines(t, before)
	})

	t.Run("StreamCloseEarly", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		st, _ := c.Stream(nil, nil, bt, &GenerateOptions{IgnoreEOS: true}) // unbounded otherwise
		st.Next()
		st.Next()
		t0 := time.Now()
		st.Close()
		st.Close()
		if time.Since(t0) > 2*time.Second || st.Err() != nil || st.Result().Generated > 1000 {
			t.Errorf("close: %v %v", time.Since(t0), st.Err())
		}
		if st.Next() {
			t.Errorf("Next after Close")
		}
		// the context is free again right away
		if r, err := c.Generate(nil, nil, bt, &GenerateOptions{MaxTokens: 1}, nil); err != nil || r.Text != "a" {
			t.Errorf("after close: %v %v", r, err)
		}
	})

	t.Run("Backpressure", func(t *testing.T) {
		// A slow consumer slows the generation down: it runs at most a buffer ahead.
		c := newCtx(t, load(t), nil)
		st, _ := c.Stream(nil, nil, bt, &GenerateOptions{IgnoreEOS: true})
		st.Next()
		time.Sleep(300 * time.Millisecond) // the fake makes a token every 2 ms
		st.Close()
		if n := st.Result().Generated; n < 1 || n > cap(st.ch)+3 {
			t.Errorf("%d tokens generated while 1 was read", n)
		}
	})

	t.Run("CloseReachesCDuringPrefill", func(t *testing.T) {
		// Token 255 makes the fake's prompt evaluation take 5 s unless
		// canceled; no token callback runs, so only dsv3_context_cancel stops it.
		c := newCtx(t, load(t), nil)
		for _, wait := range []time.Duration{200 * time.Millisecond, 0} {
			t0 := time.Now()
			st, _ := c.Stream(nil, nil, []int32{255}, nil)
			time.Sleep(wait) // 0: the cancel may come before the C call starts
			st.Close()
			if d := time.Since(t0); d > wait+2*time.Second {
				t.Fatalf("close after %v took %v", wait, d)
			}
			if r := st.Result().StopReason; r != StopNone && r != StopCanceled {
				t.Errorf("stop reason %v", r)
			}
		}
	})

	t.Run("ContextCancelsStream", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st, _ := c.Stream(ctx, nil, bt, &GenerateOptions{IgnoreEOS: true})
		defer st.Close()
		n := 0
		for st.Next() {
			if n++; n == 2 {
				cancel()
			}
		}
		err := st.Err()
		if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) || n < 2 {
			t.Fatalf("%d tokens, %v", n, err)
		}
		if st.Result().Generated < n {
			t.Errorf("result %+v", st.Result())
		}
		// the same during the prompt (no callbacks then)
		ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel2()
		t0 := time.Now()
		_, err = c.Generate(ctx2, nil, []int32{255}, nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 2*time.Second {
			t.Errorf("prefill: %v after %v", err, time.Since(t0))
		}
		before, _ := c.NPast()
		t0 = time.Now()
		ctx3, cancel3 := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel3()
		err = c.Decode(ctx3, []int32{1, 255}, 0)
		if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.DeadlineExceeded) ||
			time.Since(t0) > 2*time.Second {
			t.Errorf("decode: %v after %v", err, time.Since(t0))
		}
		if n, _ := c.NPast(); n != before {
			t.Errorf("n_past %d after a canceled decode, %d before", n, before)
		}
	})

	t.Run("ContextCancel", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		st, _ := c.Stream(nil, nil, bt, &GenerateOptions{IgnoreEOS: true})
		defer st.Close()
		n := 0
		for st.Next() {
			if n++; n == 2 {
				go c.Cancel()
			}
		}
		if err := st.Err(); !errors.Is(err, ErrCanceled) || errors.Is(err, context.Canceled) {
			t.Fatalf("%v", err)
		}
		st2, _ := c.Stream(nil, nil, bt, &GenerateOptions{IgnoreEOS: true})
		defer st2.Close()
		st2.Next()
		st2.Cancel()
		for st2.Next() {
		}
		if !errors.Is(st2.Err(), ErrCanceled) {
			t.Fatalf("Stream.Cancel: %v", st2.Err())
		}
		_, err := c.Generate(nil, nil, bt, &GenerateOptions{IgnoreEOS: true}, func(Token) error {
			done := make(chan struct{})
			go func() { c.Cancel(); close(done) }()
			<-done
			return nil
		})
		if !errors.Is(err, ErrCanceled) {
			t.Fatalf("Generate: %v", err)
		}
	})

	t.Run("BusyWhileStreaming", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		s := greedy(t)
		st, _ := c.Stream(nil, s, bt, &GenerateOptions{IgnoreEOS: true})
		st.Next()
		err := c.Decode(nil, []int32{1}, 0)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBusy || e.Name != "DSV3_E_BUSY" {
			t.Errorf("decode while streaming: %v", err)
		}
		if _, err := s.Sample([]float32{1, 2}); !errors.Is(err, ErrBusy) {
			t.Errorf("sampler while streaming: %v", err)
		}
		if _, err := c.Stream(nil, nil, bt, nil); !errors.Is(err, ErrBusy) {
			t.Errorf("second stream: %v", err)
		}
		st.Close()
		if err := c.Decode(nil, []int32{1}, 0); err != nil {
			t.Errorf("after close: %v", err)
		}
		if tok, err := s.Sample([]float32{1, 2}); err != nil || tok != 1 {
			t.Errorf("sampler after close: %v", err)
		}
	})

	t.Run("CloseContextDuringStream", func(t *testing.T) {
		c, _ := load(t).NewContext(nil)
		st, _ := c.Stream(nil, nil, bt, &GenerateOptions{IgnoreEOS: true})
		st.Next()
		c.Close() // cancels; freed once the generation lets go
		for st.Next() {
		}
		if st.Result() == nil || st.Result().Generated > 1000 {
			t.Errorf("%+v", st.Result())
		}
		if _, err := c.NPast(); !errors.Is(err, ErrClosed) {
			t.Errorf("after close: %v", err)
		}
	})

	t.Run("FreeOrder", func(t *testing.T) {
		m, _ := LoadModel(nil, dir, &ModelOptions{Logger: func(LogLevel, string) {}})
		c, err := m.NewContext(nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		if _, err := m.Tokenize("x", 0); !errors.Is(err, ErrClosed) {
			t.Errorf("closed model: %v", err)
		}
		if atomic.LoadInt32(&m.refs) != 1 {
			t.Errorf("refs %d: the context keeps the Logger alive", m.refs)
		}
		if r, err := c.Generate(nil, nil, bt, &GenerateOptions{MaxTokens: 3}, nil); err != nil || r.Text != "abc" {
			t.Errorf("%v %v", r, err)
		}
		c.Close()
		if atomic.LoadInt32(&m.refs) != 0 {
			t.Errorf("refs %d after the last close", m.refs)
		}
	})

	t.Run("DroppedStreamIsStopped", func(t *testing.T) {
		c := newCtx(t, load(t), nil)
		func() {
			st, _ := c.Stream(nil, nil, bt, &GenerateOptions{IgnoreEOS: true})
			st.Next()
		}()
		deadline := time.Now().Add(5 * time.Second)
		for {
			runtime.GC()
			err := c.Decode(nil, []int32{1}, 0)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
				t.Fatalf("the dropped stream still holds the context: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before", runtime.NumGoroutine(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
