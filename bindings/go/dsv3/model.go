package dsv3

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ModelOptions are the parameters of LoadModel. The zero value (or nil)
// means the library's defaults.
type ModelOptions struct {
	Backend       Backend   // BackendAuto (default), BackendCPU, BackendCUDA
	Device        int       // GPU ordinal
	Threads       int       // loader threads; 0: number of CPUs
	Placement     Placement // where routed experts live
	NoMmap        bool      // copy raw shards instead of mapping them
	SkipChecksums bool      // do not verify content checksums
	NoMTP         bool      // do not load the multi-token-prediction module
	// LogLevel is the most verbose level passed to Logger; 0: the library's
	// default (LogWarn).
	LogLevel LogLevel
	// Logger receives log lines. It is called from library threads for as long
	// as the model or one of its contexts lives, so it must be safe for
	// concurrent use.
	Logger func(level LogLevel, msg string)
	// Progress is called on the loading goroutine a few times per second while
	// weights are read. Cancel the load through LoadModel's context.
	Progress func(stage ProgressStage, done, total uint64)
}

// ModelInfo holds facts about a loaded model (dsv3_model_info).
type ModelInfo struct {
	Flags           ModelInfoFlags
	VocabSize       int
	HiddenSize      int
	Layers          int // main decoder layers
	DenseLayers     int // leading dense layers
	Heads           int
	Experts         int // routed experts per MoE layer (0: dense model)
	ExpertsUsed     int
	MTPLayers       int
	BOS             int32 // -1 if none
	EOS             int32 // -1 if none
	MaxPosition     int
	WeightDType     DType
	Backend         Backend
	Params          uint64
	ParamsActive    uint64
	ParamsMTP       uint64
	BytesOnDisk     uint64
	BytesInMemory   uint64
	BytesPerToken   uint64
	KVBytesPerToken uint64
}

// HasTokenizer reports whether the model carries a tokenizer.
func (i *ModelInfo) HasTokenizer() bool { return i.Flags&InfoHasTokenizer != 0 }

// HasChatTemplate reports whether a chat template is known for the model.
func (i *ModelInfo) HasChatTemplate() bool { return i.Flags&InfoHasChat != 0 }

// HasMTP reports whether an MTP module is loaded.
func (i *ModelInfo) HasMTP() bool { return i.Flags&InfoHasMTP != 0 }

// Message is one chat message; Role is "system", "user" or "assistant".
type Message struct {
	Role    string
	Content string
}

// Model is a loaded model (dsv3_model): immutable and safe for concurrent
// use. Close it when done; contexts keep the model's memory alive, so it may
// be closed before them.
type Model struct {
	h    *handle
	refs int32      // Go-side owners of logH: the model and each of its contexts
	logH cgo.Handle // the Logger, alive as long as the C model may call it

	infoOnce sync.Once
	info     ModelInfo
	infoErr  error
}

type progressState struct {
	ctx   context.Context
	fn    func(ProgressStage, uint64, uint64)
	panic interface{}
}

func (s *progressState) call(ev *C.dsv3_progress_event) (stop C.int) {
	defer func() {
		if r := recover(); r != nil {
			s.panic, stop = r, 1
		}
	}()
	if s.ctx.Err() != nil {
		return 1
	}
	if s.fn != nil {
		s.fn(ProgressStage(ev.stage), uint64(ev.done), uint64(ev.total))
	}
	if s.ctx.Err() != nil {
		return 1
	}
	return 0
}

func canceledError(op string, cause error) error {
	return &Error{Code: CodeCanceled, Name: CodeCanceled.String(), Op: op,
		Message: "canceled: " + cause.Error(), cause: cause}
}

func hasNUL(s ...string) bool {
	for _, x := range s {
		if strings.IndexByte(x, 0) >= 0 {
			return true
		}
	}
	return false
}

// LoadModel loads a model directory (or its model.dsv3 file). ctx cancels
// the load (the error then matches both ErrCanceled and ctx.Err()).
func LoadModel(ctx context.Context, path string, opts *ModelOptions) (*Model, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, canceledError("dsv3_model_load", err)
	}
	if hasNUL(path) {
		return nil, fmt.Errorf("dsv3: model path contains a NUL byte: %w", ErrInvalid)
	}
	var o ModelOptions
	if opts != nil {
		o = *opts
	}
	var p C.dsv3_model_params
	if rc := C.dsv3_model_params_init(&p, C.size_t(unsafe.Sizeof(p))); rc != 0 {
		return nil, newError("dsv3_model_params_init", rc, "")
	}
	p.backend = C.int32_t(o.Backend)
	p.device = C.int32_t(o.Device)
	p.n_threads = C.int32_t(o.Threads)
	p.placement = C.int32_t(o.Placement)
	var flags ModelFlags
	if o.NoMmap {
		flags |= ModelNoMmap
	}
	if o.SkipChecksums {
		flags |= ModelSkipChecksums
	}
	if o.NoMTP {
		flags |= ModelNoMTP
	}
	p.flags = C.uint32_t(flags)
	if o.LogLevel != 0 {
		p.log_level = C.int32_t(o.LogLevel)
	}
	if err := checkInt32("Device", o.Device); err != nil {
		return nil, err
	}
	if err := checkInt32("Threads", o.Threads); err != nil {
		return nil, err
	}
	m := &Model{refs: 1}
	if o.Logger != nil {
		m.logH = cgo.NewHandle(o.Logger)
	}
	prog := &progressState{ctx: ctx, fn: o.Progress}
	progH := cgo.NewHandle(prog)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var out *C.dsv3_model
	rc := C.dsv3go_model_load(cpath, &p, C.uintptr_t(m.logH), C.uintptr_t(progH), &out)
	progH.Delete()
	if rc != 0 {
		msg := ""
		if out != nil {
			msg = C.GoString(C.dsv3_model_errmsg(out))
			C.dsv3_model_free(out)
		}
		m.unref()
		if prog.panic != nil {
			panic(prog.panic)
		}
		if Code(rc) == CodeCanceled && ctx.Err() != nil {
			return nil, canceledError("dsv3_model_load", ctx.Err())
		}
		return nil, newError("dsv3_model_load", rc, msg)
	}
	m.h = newHandle(unsafe.Pointer(out), func(ptr unsafe.Pointer) {
		C.dsv3_model_free((*C.dsv3_model)(ptr))
		m.unref()
	}, "model", false)
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

func (m *Model) ref() { atomic.AddInt32(&m.refs, 1) }

func (m *Model) unref() {
	if atomic.AddInt32(&m.refs, -1) == 0 && m.logH != 0 {
		m.logH.Delete()
	}
}

// Close releases the model. Contexts made from it stay usable. Calling
// Close again does nothing.
func (m *Model) Close() error {
	m.h.close()
	return nil
}

func (m *Model) use() (*C.dsv3_model, error) {
	p, err := m.h.acquire()
	return (*C.dsv3_model)(p), err
}

func (m *Model) errmsg(p *C.dsv3_model) string { return C.GoString(C.dsv3_model_errmsg(p)) }

// Info describes the model.
func (m *Model) Info() (ModelInfo, error) {
	m.infoOnce.Do(func() {
		p, err := m.use()
		if err != nil {
			m.infoErr = err
			return
		}
		defer m.h.release()
		var ci C.dsv3_model_info
		ci.struct_size = C.uint32_t(unsafe.Sizeof(ci))
		if rc := C.dsv3_model_info_get(p, &ci); rc != 0 {
			m.infoErr = newError("dsv3_model_info_get", rc, m.errmsg(p))
			return
		}
		m.info = ModelInfo{
			Flags: ModelInfoFlags(ci.flags), VocabSize: int(ci.vocab_size),
			HiddenSize: int(ci.hidden_size), Layers: int(ci.n_layers),
			DenseLayers: int(ci.n_dense_layers), Heads: int(ci.n_heads),
			Experts: int(ci.n_experts), ExpertsUsed: int(ci.n_experts_used),
			MTPLayers: int(ci.n_mtp_layers), BOS: int32(ci.bos_token), EOS: int32(ci.eos_token),
			MaxPosition: int(ci.max_position), WeightDType: DType(ci.weight_dtype),
			Backend: Backend(ci.backend), Params: uint64(ci.n_params),
			ParamsActive: uint64(ci.n_params_active), ParamsMTP: uint64(ci.n_params_mtp),
			BytesOnDisk: uint64(ci.bytes_on_disk), BytesInMemory: uint64(ci.bytes_in_memory),
			BytesPerToken: uint64(ci.bytes_per_token), KVBytesPerToken: uint64(ci.kv_bytes_per_token),
		}
	})
	return m.info, m.infoErr
}

// Tokenize splits UTF-8 text into token ids like the model's Hugging Face
// tokenizer. Invalid UTF-8 fails with ErrUTF8.
func (m *Model) Tokenize(text string, flags TokenizeFlags) ([]int32, error) {
	p, err := m.use()
	if err != nil {
		return nil, err
	}
	defer m.h.release()
	b := []byte(text)
	var src *C.char
	if len(b) > 0 {
		src = (*C.char)(unsafe.Pointer(&b[0]))
	}
	buf := make([]int32, len(b)+2)
	for i := 0; i < 3; i++ {
		var n C.size_t
		rc := C.dsv3_tokenize(p, src, C.size_t(len(b)), C.uint32_t(flags),
			(*C.int32_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		if Code(rc) == CodeNoSpace && int(n) > len(buf) {
			buf = make([]int32, int(n))
			continue
		}
		if rc != 0 {
			return nil, newError("dsv3_tokenize", rc, m.errmsg(p))
		}
		return buf[:n:n], nil
	}
	return nil, fmt.Errorf("dsv3: dsv3_tokenize kept asking for a larger buffer: %w", ErrInternal)
}

// textCall runs a (buf, cap, len) text call, growing the buffer on ErrNoSpace.
func textCall(op string, guess int, call func(buf *C.char, cap C.size_t, n *C.size_t) C.int,
	errmsg func() string) (string, error) {
	buf := make([]byte, guess)
	for i := 0; i < 3; i++ {
		var n C.size_t
		rc := call((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		if Code(rc) == CodeNoSpace && int(n)+1 > len(buf) {
			buf = make([]byte, int(n)+1)
			continue
		}
		if rc != 0 {
			return "", newError(op, rc, errmsg())
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("dsv3: %s kept asking for a larger buffer: %w", op, ErrInternal)
}

// Detokenize turns token ids back into text: the exact bytes of the tokens,
// which may end inside a UTF-8 character (see TokenBytes for streaming).
func (m *Model) Detokenize(tokens []int32, flags DetokenizeFlags) (string, error) {
	p, err := m.use()
	if err != nil {
		return "", err
	}
	defer m.h.release()
	var src *C.int32_t
	if len(tokens) > 0 {
		src = (*C.int32_t)(unsafe.Pointer(&tokens[0]))
	}
	return textCall("dsv3_detokenize", 8*len(tokens)+16,
		func(buf *C.char, cap C.size_t, n *C.size_t) C.int {
			return C.dsv3_detokenize(p, src, C.size_t(len(tokens)), C.uint32_t(flags), buf, cap, n)
		}, func() string { return m.errmsg(p) })
}

// TokenBytes returns the raw bytes of one token (may be part of a UTF-8 character).
func (m *Model) TokenBytes(token int32) ([]byte, error) {
	p, err := m.use()
	if err != nil {
		return nil, err
	}
	defer m.h.release()
	var b *C.char
	var n C.size_t
	if rc := C.dsv3_token_bytes(p, C.int32_t(token), &b, &n); rc != 0 {
		return nil, newError("dsv3_token_bytes", rc, m.errmsg(p))
	}
	return C.GoBytes(unsafe.Pointer(b), C.int(n)), nil
}

// ApplyChatTemplate renders messages with the model's chat template. The
// result already starts with BOS: tokenize it without TokenizeAddBOS.
func (m *Model) ApplyChatTemplate(msgs []Message, addGenerationPrompt bool) (string, error) {
	size := 256
	cmsgs := make([]C.dsv3_chat_message, len(msgs)+1)
	for i, msg := range msgs {
		if hasNUL(msg.Role, msg.Content) {
			return "", fmt.Errorf("dsv3: chat message %d contains a NUL byte: %w", i, ErrInvalid)
		}
		cmsgs[i].role = C.CString(msg.Role)
		cmsgs[i].content = C.CString(msg.Content)
		size += len(msg.Role) + len(msg.Content)
	}
	defer func() {
		for i := range msgs {
			C.free(unsafe.Pointer(cmsgs[i].role))
			C.free(unsafe.Pointer(cmsgs[i].content))
		}
	}()
	var flags ChatFlags
	if addGenerationPrompt {
		flags |= ChatAddGenerationPrompt
	}
	p, err := m.use()
	if err != nil {
		return "", err
	}
	defer m.h.release()
	return textCall("dsv3_chat_apply", size, func(buf *C.char, cap C.size_t, n *C.size_t) C.int {
		return C.dsv3_chat_apply(p, &cmsgs[0], C.size_t(len(msgs)), C.uint32_t(flags), buf, cap, n)
	}, func() string { return m.errmsg(p) })
}
