package dsv3

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// ContextOptions are the parameters of Model.NewContext. The zero value (or
// nil) means the library's defaults.
type ContextOptions struct {
	NCtx           int   // positions the cache holds; 0: min(4096, the model's maximum)
	Threads        int   // compute threads; 0: number of CPUs
	Batch          int   // tokens per internal forward chunk; 0: 256
	KVDType        DType // DTypeF32 (default) or DTypeBF16
	MTP            bool  // speculative decoding with the model's MTP module
	NaiveAttention bool  // decompressed MLA (slow; for testing)
}

// Context is one sequence on a model (dsv3_context): latent KV cache,
// position and generation state. One call at a time: while a generation
// or stream runs, other calls fail with ErrBusy; Cancel and Close work from
// any goroutine at any time.
type Context struct {
	model  *Model
	h      *handle
	nVocab int

	amu    sync.Mutex
	active *generation
}

// NewContext creates a context on the model. The context holds a reference
// to the model, so the model may be closed first.
func (m *Model) NewContext(opts *ContextOptions) (*Context, error) {
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	var o ContextOptions
	if opts != nil {
		o = *opts
	}
	for _, a := range []struct {
		name string
		v    int
		u    bool
	}{{"NCtx", o.NCtx, true}, {"Threads", o.Threads, false}, {"Batch", o.Batch, true}} {
		check := checkInt32
		if a.u {
			check = checkUint32
		}
		if err := check(a.name, a.v); err != nil {
			return nil, err
		}
	}
	var p C.dsv3_context_params
	if rc := C.dsv3_context_params_init(&p, C.size_t(unsafe.Sizeof(p))); rc != 0 {
		return nil, newError("dsv3_context_params_init", rc, "")
	}
	p.n_ctx = C.uint32_t(o.NCtx)
	p.n_threads = C.int32_t(o.Threads)
	p.n_batch = C.uint32_t(o.Batch)
	p.kv_dtype = C.int32_t(o.KVDType)
	var flags ContextFlags
	if o.MTP {
		flags |= ContextMTP
	}
	if o.NaiveAttention {
		flags |= ContextNaiveAttn
	}
	p.flags = C.uint32_t(flags)
	mp, err := m.use()
	if err != nil {
		return nil, err
	}
	defer m.h.release()
	var out *C.dsv3_context
	if rc := C.dsv3_context_new(mp, &p, &out); rc != 0 {
		msg := ""
		if out != nil {
			msg = C.GoString(C.dsv3_context_errmsg(out))
			C.dsv3_context_free(out)
		} else {
			msg = m.errmsg(mp)
		}
		return nil, newError("dsv3_context_new", rc, msg)
	}
	m.ref() // the C context holds the C model, which may call the Logger
	c := &Context{model: m, nVocab: info.VocabSize}
	c.h = newHandle(unsafe.Pointer(out), func(ptr unsafe.Pointer) {
		C.dsv3_context_free((*C.dsv3_context)(ptr))
		m.unref()
	}, "context", true)
	runtime.SetFinalizer(c, (*Context).Close)
	return c, nil
}

// Model is the model the context was created on.
func (c *Context) Model() *Model { return c.model }

// Close releases the context. A running generation is canceled and the
// context is freed as soon as it has stopped. Calling Close again does nothing.
func (c *Context) Close() error {
	c.amu.Lock()
	g := c.active
	c.amu.Unlock()
	if g != nil {
		g.requestStop(false)
	}
	c.h.close()
	return nil
}

// Cancel stops a running decode or generation on this context (any
// goroutine). The interrupted call fails with ErrCanceled; the context stays
// usable. Nothing happens when nothing runs.
func (c *Context) Cancel() {
	c.amu.Lock()
	g := c.active
	c.amu.Unlock()
	if g != nil {
		g.requestStop(true)
	}
	c.h.withPtr(func(p unsafe.Pointer) { C.dsv3_context_cancel((*C.dsv3_context)(p)) })
}

func (c *Context) errmsg(p *C.dsv3_context) string { return C.GoString(C.dsv3_context_errmsg(p)) }

// call runs f with the context held; errors get the context's message.
func (c *Context) call(op string, f func(p *C.dsv3_context) C.int) error {
	ptr, err := c.h.acquire()
	if err != nil {
		return err
	}
	defer c.h.release()
	p := (*C.dsv3_context)(ptr)
	if rc := f(p); rc != 0 {
		return newError(op, rc, c.errmsg(p))
	}
	return nil
}

// watchCancel calls cancel when ctx ends, again every 50 ms until done is
// closed: a cancel that arrives just before a C call starts is forgotten
// by the library.
func watchCancel(ctx context.Context, done <-chan struct{}, cancel func()) {
	if ctx.Done() == nil {
		return
	}
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			cancel()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
}

// Decode evaluates tokens at the current position and appends them to the
// cache. ctx cancels the evaluation (the error then matches ErrCanceled and ctx.Err()).
func (c *Context) Decode(ctx context.Context, tokens []int32, flags DecodeFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return canceledError("dsv3_context_decode", err)
	}
	ptr, err := c.h.acquire()
	if err != nil {
		return err
	}
	defer c.h.release()
	p := (*C.dsv3_context)(ptr)
	var src *C.int32_t
	if len(tokens) > 0 {
		src = (*C.int32_t)(unsafe.Pointer(&tokens[0]))
	}
	var mu sync.Mutex // no cancel may reach C after this call returned
	running := true
	done := make(chan struct{})
	watchCancel(ctx, done, func() {
		mu.Lock()
		defer mu.Unlock()
		if running {
			C.dsv3_context_cancel(p)
		}
	})
	rc := C.dsv3_context_decode(p, src, C.size_t(len(tokens)), C.uint32_t(flags))
	mu.Lock()
	running = false
	mu.Unlock()
	close(done)
	if rc != 0 {
		if Code(rc) == CodeCanceled && ctx.Err() != nil {
			return canceledError("dsv3_context_decode", ctx.Err())
		}
		return newError("dsv3_context_decode", rc, c.errmsg(p))
	}
	return nil
}

// Logits returns a copy of the logits of the last Decode: row -1 for its
// last token, or a token index with DecodeAllLogits.
func (c *Context) Logits(row int) ([]float32, error) {
	if err := checkInt32("row", row); err != nil {
		return nil, err
	}
	var out []float32
	err := c.call("dsv3_context_logits", func(p *C.dsv3_context) C.int {
		var lp *C.float
		rc := C.dsv3_context_logits(p, C.int32_t(row), &lp)
		if rc == 0 {
			out = make([]float32, c.nVocab)
			copy(out, unsafe.Slice((*float32)(unsafe.Pointer(lp)), c.nVocab))
		}
		return rc
	})
	return out, err
}

// NPast is the number of positions in the cache.
func (c *Context) NPast() (int, error) {
	var n int
	err := c.call("dsv3_context_n_past", func(p *C.dsv3_context) C.int {
		n = int(C.dsv3_context_n_past(p))
		return 0
	})
	return n, err
}

// Truncate drops cached positions nKeep and later (rollback).
func (c *Context) Truncate(nKeep int) error {
	if err := checkUint32("nKeep", nKeep); err != nil {
		return err
	}
	return c.call("dsv3_context_truncate", func(p *C.dsv3_context) C.int {
		return C.dsv3_context_truncate(p, C.uint32_t(nKeep))
	})
}

// Clear empties the cache and resets the counters.
func (c *Context) Clear() error {
	return c.call("dsv3_context_clear", func(p *C.dsv3_context) C.int {
		return C.dsv3_context_clear(p)
	})
}

// Param reads a knob or counter.
func (c *Context) Param(key ContextParam) (int64, error) {
	var v C.int64_t
	err := c.call("dsv3_context_get_param", func(p *C.dsv3_context) C.int {
		return C.dsv3_context_get_param(p, C.int32_t(key), &v)
	})
	return int64(v), err
}

// SetParam sets a writable knob (ParamThreads, ParamMTP).
func (c *Context) SetParam(key ContextParam, value int64) error {
	return c.call("dsv3_context_set_param", func(p *C.dsv3_context) C.int {
		return C.dsv3_context_set_param(p, C.int32_t(key), C.int64_t(value))
	})
}

// ParamBounds returns the range of a writable knob.
func ParamBounds(key ContextParam) (min, max int64, err error) {
	var lo, hi C.int64_t
	if rc := C.dsv3_context_param_bounds(C.int32_t(key), &lo, &hi); rc != 0 {
		return 0, 0, newError("dsv3_context_param_bounds", rc, "")
	}
	return int64(lo), int64(hi), nil
}

// SaveState returns the sequence state (cache rows, position, last logits).
func (c *Context) SaveState() ([]byte, error) {
	var out []byte
	err := c.call("dsv3_context_state_save", func(p *C.dsv3_context) C.int {
		var need C.size_t
		rc := C.dsv3_context_state_save(p, nil, 0, &need)
		if rc != 0 && Code(rc) != CodeNoSpace {
			return rc
		}
		buf := C.malloc(need + 1)
		defer C.free(buf)
		if rc = C.dsv3_context_state_save(p, buf, need, &need); rc == 0 {
			out = C.GoBytes(buf, C.int(need))
		}
		return rc
	})
	return out, err
}

// LoadState restores a state written by SaveState (same model).
func (c *Context) LoadState(state []byte) error {
	return c.call("dsv3_context_state_load", func(p *C.dsv3_context) C.int {
		if len(state) == 0 {
			return C.dsv3_context_state_load(p, nil, 0)
		}
		return C.dsv3_context_state_load(p, unsafe.Pointer(&state[0]), C.size_t(len(state)))
	})
}
