package dsv3

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// GenerateOptions are the parameters of Generate and Stream; nil means the defaults.
type GenerateOptions struct {
	MaxTokens   int      // stop after this many tokens; 0: until the context is full
	Stop        []string // stop strings; their text is not delivered
	IgnoreEOS   bool     // keep going after the end-of-sequence token
	ShowSpecial bool     // include special tokens' text in Token.Text
}

// Token is one generated token. Text is the new complete UTF-8 text it adds;
// it may be empty while a character or a possible stop string is incomplete.
type Token struct {
	ID    int32
	Index int // 0 for the first generated token
	Text  string
}

// Result describes what a generation did.
type Result struct {
	Tokens       []int32
	Text         string
	StopReason   StopReason
	Prompt       int // prompt tokens evaluated
	Generated    int // tokens produced
	PromptTime   time.Duration
	GenerateTime time.Duration
	Drafted      uint64 // MTP draft tokens proposed
	Accepted     uint64 // MTP draft tokens accepted
}

// generation is one dsv3_generate call. It holds the context and the
// sampler from begin until finish.
type generation struct {
	c      *Context
	smp    *Sampler
	ownSmp bool
	cptr   *C.dsv3_context
	sptr   *C.dsv3_sampler
	ctx    context.Context
	sink   func(Token) error // on the generating goroutine; ErrStop stops quietly
	prompt []int32
	params C.dsv3_generate_params
	stops  []*C.char
	carr   unsafe.Pointer
	done   chan struct{}

	mu         sync.Mutex
	running    bool
	stop       bool
	userCancel bool

	sinkErr  error
	panicVal interface{}
	tokens   []int32
	text     strings.Builder
	raw      C.dsv3_generate_result
	rc       C.int
	errmsg   string
	finished bool
}

func (c *Context) begin(ctx context.Context, smp *Sampler, prompt []int32,
	opts *GenerateOptions) (*generation, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	var o GenerateOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxTokens < 0 {
		return nil, fmt.Errorf("dsv3: MaxTokens=%d is negative: %w", o.MaxTokens, ErrInvalid)
	}
	if err := checkInt32("MaxTokens", o.MaxTokens); err != nil {
		return nil, err
	}
	for i, s := range o.Stop {
		if s == "" || hasNUL(s) {
			return nil, fmt.Errorf("dsv3: stop string %d is empty or contains a NUL byte: %w",
				i, ErrInvalid)
		}
	}
	g := &generation{c: c, smp: smp, ctx: ctx, prompt: prompt, done: make(chan struct{}),
		sink: func(Token) error { return nil }}
	if smp == nil {
		var err error
		if g.smp, err = NewSampler(nil); err != nil {
			return nil, err
		}
		g.ownSmp = true
	}
	cp, err := c.h.acquire()
	if err != nil {
		g.closeOwnSampler()
		return nil, err
	}
	sp, err := g.smp.h.acquire()
	if err != nil {
		c.h.release()
		g.closeOwnSampler()
		return nil, err
	}
	g.cptr, g.sptr = (*C.dsv3_context)(cp), (*C.dsv3_sampler)(sp)
	C.dsv3_generate_params_init(&g.params, C.size_t(unsafe.Sizeof(g.params)))
	g.params.max_tokens = C.int32_t(o.MaxTokens)
	var flags GenerateFlags
	if o.IgnoreEOS {
		flags |= GenerateIgnoreEOS
	}
	if o.ShowSpecial {
		flags |= GenerateShowSpecial
	}
	g.params.flags = C.uint32_t(flags)
	if n := len(o.Stop); n > 0 {
		g.carr = C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(uintptr(0))))
		arr := unsafe.Slice((**C.char)(g.carr), n)
		for i, s := range o.Stop {
			arr[i] = C.CString(s)
			g.stops = append(g.stops, arr[i])
		}
		g.params.n_stop = C.uint32_t(n)
		g.params.stop = (**C.char)(g.carr)
	}
	c.amu.Lock()
	c.active = g
	c.amu.Unlock()
	watchCancel(ctx, g.done, func() { g.requestStop(false) })
	return g, nil
}

func (g *generation) closeOwnSampler() {
	if g.ownSmp {
		g.smp.Close()
	}
}

// requestStop stops the run from any goroutine; userCancel reports it as ErrCanceled.
func (g *generation) requestStop(userCancel bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stop = true
	if userCancel {
		g.userCancel = true
	}
	if g.running {
		C.dsv3_context_cancel(g.cptr)
	}
}

func (g *generation) stopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stop
}

func (g *generation) onToken(ev *C.dsv3_token_event) (ret C.int) {
	if g.stopped() || g.ctx.Err() != nil {
		return 1
	}
	tok := Token{ID: int32(ev.token), Index: int(ev.index),
		Text: C.GoStringN(ev.text, C.int(ev.text_len))}
	g.tokens = append(g.tokens, tok.ID)
	g.text.WriteString(tok.Text)
	defer func() {
		if r := recover(); r != nil { // never unwind through C
			g.panicVal, ret = r, 1
			g.requestStop(false)
		}
	}()
	if err := g.sink(tok); err != nil {
		if !errors.Is(err, ErrStop) {
			g.sinkErr = err
		}
		g.requestStop(false)
		return 1
	}
	return 0
}

// run makes the C call on the calling goroutine.
func (g *generation) run() {
	g.mu.Lock()
	if g.stop {
		g.mu.Unlock()
		g.rc = C.int(CodeCanceled)
		return
	}
	g.running = true
	g.mu.Unlock()
	h := cgo.NewHandle(g)
	var src *C.int32_t
	if len(g.prompt) > 0 {
		src = (*C.int32_t)(unsafe.Pointer(&g.prompt[0]))
	}
	g.raw.struct_size = C.uint32_t(unsafe.Sizeof(g.raw))
	rc := C.dsv3go_generate(g.cptr, g.sptr, src, C.size_t(len(g.prompt)), &g.params,
		C.uintptr_t(h), &g.raw)
	h.Delete()
	g.mu.Lock()
	g.running = false
	g.mu.Unlock()
	g.rc = rc
	if rc != 0 {
		g.errmsg = C.GoString(C.dsv3_context_errmsg(g.cptr))
	}
}

// finish gives the context and the sampler back (once).
func (g *generation) finish() {
	if g.finished {
		return
	}
	g.finished = true
	for _, s := range g.stops {
		C.free(unsafe.Pointer(s))
	}
	if g.carr != nil {
		C.free(g.carr)
	}
	g.c.amu.Lock()
	if g.c.active == g {
		g.c.active = nil
	}
	g.c.amu.Unlock()
	g.c.h.release()
	g.smp.h.release()
	g.closeOwnSampler()
	close(g.done)
}

func (g *generation) result() *Result {
	return &Result{
		Tokens: append([]int32(nil), g.tokens...), Text: g.text.String(),
		StopReason: StopReason(g.raw.stop_reason), Prompt: int(g.raw.n_prompt),
		Generated:    int(g.raw.n_generated),
		PromptTime:   time.Duration(float64(g.raw.prompt_seconds) * float64(time.Second)),
		GenerateTime: time.Duration(float64(g.raw.generate_seconds) * float64(time.Second)),
		Drafted:      uint64(g.raw.n_drafted), Accepted: uint64(g.raw.n_accepted),
	}
}

// outcome is the result, with the error that ended the run, if any.
func (g *generation) outcome() (*Result, error) {
	res := g.result()
	if g.panicVal != nil {
		panic(g.panicVal)
	}
	if g.sinkErr != nil {
		return res, g.sinkErr
	}
	canceled := Code(g.rc) == CodeCanceled || res.StopReason == StopCallback ||
		res.StopReason == StopCanceled
	if err := g.ctx.Err(); err != nil && canceled {
		return res, canceledError("dsv3_generate", err)
	}
	if g.userCancel && canceled {
		msg := g.errmsg
		if msg == "" {
			msg = "generation canceled"
		}
		return res, &Error{Code: CodeCanceled, Name: CodeCanceled.String(), Message: msg,
			Op: "dsv3_generate"}
	}
	if g.rc != 0 {
		if Code(g.rc) == CodeCanceled && g.stopped() {
			return res, nil // stopped by its consumer (Stream.Close, ErrStop)
		}
		return res, newError("dsv3_generate", g.rc, g.errmsg)
	}
	return res, nil
}

// Generate evaluates prompt at the context's current position, then
// produces tokens until a stop condition, on the calling goroutine.
//
// smp nil uses a sampler with the library's defaults. fn (may be nil) gets
// each token; returning ErrStop ends the generation normally, any other
// error ends it and is returned. ctx cancels (the error then matches
// ErrCanceled and ctx.Err()); so does Context.Cancel (ErrCanceled). The
// Result is returned also with an error, holding what was produced.
func (c *Context) Generate(ctx context.Context, smp *Sampler, prompt []int32,
	opts *GenerateOptions, fn func(Token) error) (*Result, error) {
	g, err := c.begin(ctx, smp, prompt, opts)
	if err != nil {
		return nil, err
	}
	if fn != nil {
		g.sink = fn
	}
	func() {
		defer g.finish()
		g.run()
	}()
	return g.outcome()
}

// Stream is a generation running on its own goroutine. Iterate with Next
// and Token (or receive from C), then check Err:
//
//	for s.Next() {
//		fmt.Print(s.Token().Text)
//	}
//	if err := s.Err(); err != nil { ... }
//
// Close stops the generation early and waits until the context is free
// again; always call it (defer s.Close()).
type Stream struct {
	*streamState
}

type streamState struct {
	g      *generation
	ch     chan Token
	stopCh chan struct{}
	end    chan struct{} // closed once res and err are set
	once   sync.Once
	cur    Token
	res    *Result
	err    error
}

// Stream starts a generation on a new goroutine; arguments as for Generate.
// A slow consumer slows the generation down (tokens are handed over through
// a small buffer); ctx or Close stop it.
func (c *Context) Stream(ctx context.Context, smp *Sampler, prompt []int32,
	opts *GenerateOptions) (*Stream, error) {
	g, err := c.begin(ctx, smp, prompt, opts)
	if err != nil {
		return nil, err
	}
	st := &streamState{g: g, ch: make(chan Token, 16), stopCh: make(chan struct{}),
		end: make(chan struct{})}
	g.sink = func(t Token) error {
		select {
		case st.ch <- t:
			return nil
		case <-st.stopCh:
			return ErrStop
		case <-g.ctx.Done():
			return ErrStop
		}
	}
	go func() {
		func() {
			defer g.finish()
			g.run()
		}()
		st.res, st.err = g.outcome()
		close(st.end)
		close(st.ch)
	}()
	s := &Stream{st}
	// A Stream dropped without Close must not keep its goroutine blocked.
	runtime.SetFinalizer(s, func(s *Stream) { s.stopAsync() })
	return s, nil
}

// Next waits for the next token; false at the end (see Err).
func (s *Stream) Next() bool {
	t, ok := <-s.ch
	if ok {
		s.cur = t
	}
	return ok
}

// Token is the token read by the last successful Next.
func (s *Stream) Token() Token { return s.cur }

// C is the channel the tokens arrive on; it is closed at the end (then see
// Err). Use either C or Next, not both.
func (s *Stream) C() <-chan Token { return s.ch }

func (s *streamState) isEnded() bool {
	select {
	case <-s.end:
		return true
	default:
		return false
	}
}

// Err is the error that ended the stream once it has ended (Next returned
// false, C was closed, or Close returned); nil for a normal end or a Close.
func (s *Stream) Err() error {
	if s.isEnded() {
		return s.err
	}
	return nil
}

// Result describes the generation once the stream has ended, else nil.
func (s *Stream) Result() *Result {
	if s.isEnded() {
		return s.res
	}
	return nil
}

// Cancel stops the generation from any goroutine; the stream then ends with ErrCanceled.
func (s *Stream) Cancel() { s.g.requestStop(true) }

func (s *streamState) stopAsync() {
	s.once.Do(func() { close(s.stopCh) })
	s.g.requestStop(false)
}

// Close stops the generation and waits for its goroutine, so that the
// context is free again when it returns. Calling Close again does nothing.
func (s *Stream) Close() error {
	s.stopAsync()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.end:
			return nil
		case <-t.C:
			s.g.requestStop(false) // see watchCancel
		}
	}
}
