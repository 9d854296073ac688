package dsv3

/*
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// SamplerOptions are the parameters of a sampler chain. The chain runs:
// logit bias -> repetition/frequency/presence penalties over the last
// PenaltyWindow tokens -> (Temperature <= 0: greedy argmax) -> top-k ->
// softmax with temperature -> top-p -> min-p -> seeded random draw.
//
// Start from DefaultSamplerOptions (the zero value is not the default: it
// turns top-k and top-p off and the repetition penalty to 0, which the
// library rejects).
type SamplerOptions struct {
	Seed             uint64
	Temperature      float32 // <= 0: greedy
	TopK             int     // 0: off
	TopP             float32 // 1: off
	MinP             float32 // 0: off
	RepeatPenalty    float32 // 1: off
	FrequencyPenalty float32 // 0: off
	PresencePenalty  float32 // 0: off
	PenaltyWindow    int     // tokens looked back on
}

func initSamplerParams() C.dsv3_sampler_params {
	var p C.dsv3_sampler_params
	C.dsv3_sampler_params_init(&p, C.size_t(unsafe.Sizeof(p)))
	return p
}

// DefaultSamplerOptions are the library's defaults (dsv3_sampler_params_init).
func DefaultSamplerOptions() SamplerOptions {
	p := initSamplerParams()
	return SamplerOptions{
		Seed: uint64(p.seed), Temperature: float32(p.temperature), TopK: int(p.top_k),
		TopP: float32(p.top_p), MinP: float32(p.min_p), RepeatPenalty: float32(p.repeat_penalty),
		FrequencyPenalty: float32(p.frequency_penalty), PresencePenalty: float32(p.presence_penalty),
		PenaltyWindow: int(p.penalty_window),
	}
}

// GreedySamplerOptions are the defaults with temperature 0: always the most likely token.
func GreedySamplerOptions() SamplerOptions {
	o := DefaultSamplerOptions()
	o.Temperature = 0
	return o
}

// Sampler is a sampler chain (dsv3_sampler). One call at a time: a running
// generation holds it, and other calls meanwhile fail with ErrBusy.
type Sampler struct {
	h *handle
}

// NewSampler creates a sampler; nil options mean DefaultSamplerOptions.
// Invalid values (NaN, out of range) fail with ErrInvalid.
func NewSampler(opts *SamplerOptions) (*Sampler, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	p := initSamplerParams()
	if opts != nil {
		o := opts
		if err := checkInt32("TopK", o.TopK); err != nil {
			return nil, err
		}
		if err := checkInt32("PenaltyWindow", o.PenaltyWindow); err != nil {
			return nil, err
		}
		p.seed = C.uint64_t(o.Seed)
		p.temperature = C.float(o.Temperature)
		p.top_k = C.int32_t(o.TopK)
		p.top_p = C.float(o.TopP)
		p.min_p = C.float(o.MinP)
		p.repeat_penalty = C.float(o.RepeatPenalty)
		p.frequency_penalty = C.float(o.FrequencyPenalty)
		p.presence_penalty = C.float(o.PresencePenalty)
		p.penalty_window = C.int32_t(o.PenaltyWindow)
	}
	var out *C.dsv3_sampler
	if rc := C.dsv3_sampler_new(&p, &out); rc != 0 {
		msg := ""
		if out != nil {
			msg = C.GoString(C.dsv3_sampler_errmsg(out))
			C.dsv3_sampler_free(out)
		}
		return nil, newError("dsv3_sampler_new", rc, msg)
	}
	s := &Sampler{h: newHandle(unsafe.Pointer(out), func(ptr unsafe.Pointer) {
		C.dsv3_sampler_free((*C.dsv3_sampler)(ptr))
	}, "sampler", true)}
	runtime.SetFinalizer(s, (*Sampler).Close)
	return s, nil
}

// Close releases the sampler (deferred while a generation uses it).
// Calling Close again does nothing.
func (s *Sampler) Close() error {
	s.h.close()
	return nil
}

func (s *Sampler) call(op string, f func(p *C.dsv3_sampler) C.int) error {
	ptr, err := s.h.acquire()
	if err != nil {
		return err
	}
	defer s.h.release()
	p := (*C.dsv3_sampler)(ptr)
	if rc := f(p); rc != 0 {
		return newError(op, rc, C.GoString(C.dsv3_sampler_errmsg(p)))
	}
	return nil
}

// SetLogitBias adds bias to a token's logit (0 removes it, -Inf bans the token).
func (s *Sampler) SetLogitBias(token int32, bias float32) error {
	return s.call("dsv3_sampler_set_logit_bias", func(p *C.dsv3_sampler) C.int {
		return C.dsv3_sampler_set_logit_bias(p, C.int32_t(token), C.float(bias))
	})
}

// Sample picks a token from logits (not modified). It does not record the
// token: call Accept with the token used.
func (s *Sampler) Sample(logits []float32) (int32, error) {
	var tok C.int32_t
	var src *C.float
	if len(logits) > 0 {
		src = (*C.float)(unsafe.Pointer(&logits[0]))
	}
	err := s.call("dsv3_sampler_sample", func(p *C.dsv3_sampler) C.int {
		return C.dsv3_sampler_sample(p, src, C.size_t(len(logits)), &tok)
	})
	return int32(tok), err
}

// Accept records a token in the penalty history.
func (s *Sampler) Accept(token int32) error {
	return s.call("dsv3_sampler_accept", func(p *C.dsv3_sampler) C.int {
		return C.dsv3_sampler_accept(p, C.int32_t(token))
	})
}

// Reset forgets the history and restarts the random stream from the seed.
func (s *Sampler) Reset() error {
	return s.call("dsv3_sampler_reset", func(p *C.dsv3_sampler) C.int {
		return C.dsv3_sampler_reset(p)
	})
}
