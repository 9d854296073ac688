package dsv3

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestCodeNamesComeFromC(t *testing.T) {
	for c, name := range codeNames {
		if c.String() != name {
			t.Errorf("code %d: C names it %q, the binding %q", c, c.String(), name)
		}
		if c.Description() == "" {
			t.Errorf("code %d has no description", c)
		}
	}
	if Code(-1000).String() != "DSV3_E_UNKNOWN" || Code(-1000).Description() != "unknown error" {
		t.Errorf("unknown codes")
	}
}

func TestSentinels(t *testing.T) {
	sentinels := []*Error{ErrInvalid, ErrNoMem, ErrIO, ErrFormat, ErrChecksum, ErrVersion,
		ErrUnsupported, ErrNoDevice, ErrBackend, ErrNoSpace, ErrContextFull, ErrCanceled,
		ErrBusy, ErrMisuse, ErrInternal, ErrRange, ErrUTF8}
	if len(sentinels) != len(codeNames)-1 {
		t.Fatalf("%d sentinels for %d error codes", len(sentinels), len(codeNames)-1)
	}
	for _, s := range sentinels {
		if s.Name != s.Code.String() || s.Message != s.Code.Description() {
			t.Errorf("sentinel %v: name/message differ from C: %q %q", s, s.Code.String(),
				s.Code.Description())
		}
		e := errorFor("dsv3_x", s.Code, "detail")
		if !errors.Is(e, s) {
			t.Errorf("errors.Is(%v, %v) is false", e, s)
		}
		for _, other := range sentinels {
			if other != s && errors.Is(e, other) {
				t.Errorf("%v matches %v", e, other)
			}
		}
	}
	e := errorFor("dsv3_model_load", CodeIO, "")
	var de *Error
	if !errors.As(e, &de) || de.Op != "dsv3_model_load" || de.Message != "input/output error" {
		t.Errorf("errors.As: %#v", de)
	}
	if e.Error() != "dsv3: dsv3_model_load: DSV3_E_IO: input/output error" {
		t.Errorf("Error(): %q", e.Error())
	}
}

func TestLoadMissingModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-model")
	m, err := LoadModel(nil, path, nil)
	if m != nil || err == nil {
		t.Fatal("loading a missing model succeeded")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not a *dsv3.Error: %v", err)
	}
	// Today's library has no loader (E_UNSUPPORTED); with one this is E_IO.
	if !errors.Is(err, ErrIO) && !errors.Is(err, ErrUnsupported) {
		t.Fatalf("code %v", e.Code)
	}
	if e.Name != e.Code.String() || e.Op != "dsv3_model_load" || !strings.Contains(e.Message, path) {
		t.Errorf("error details: %#v", e)
	}
}

func TestArgumentChecks(t *testing.T) {
	if _, err := LoadModel(nil, "a\x00b", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("NUL in path: %v", err)
	}
	if _, err := LoadModel(nil, t.TempDir(), &ModelOptions{Threads: 1 << 40}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Threads 2^40: %v", err)
	}
	o := DefaultSamplerOptions()
	o.TopK = 1 << 31
	if _, err := NewSampler(&o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "TopK") {
		t.Errorf("TopK 2^31: %v", err)
	}
}

func TestConvertMissingInput(t *testing.T) {
	err := Convert(nil, filepath.Join(t.TempDir(), "missing"), t.TempDir(), nil)
	if !errors.Is(err, ErrIO) && !errors.Is(err, ErrUnsupported) {
		t.Fatalf("convert of a missing directory: %v", err)
	}
}

func TestSamplerDefaultsAreDocumented(t *testing.T) {
	// include/dsv3.h, dsv3_sampler_params: the documented defaults.
	d := DefaultSamplerOptions()
	want := SamplerOptions{Seed: 0, Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05,
		RepeatPenalty: 1, FrequencyPenalty: 0, PresencePenalty: 0, PenaltyWindow: 64}
	if d != want {
		t.Fatalf("defaults %+v, documented %+v", d, want)
	}
	if g := GreedySamplerOptions(); g.Temperature != 0 || g.TopK != 40 {
		t.Errorf("greedy options %+v", g)
	}
}

func samplerOrSkip(t *testing.T, o *SamplerOptions) *Sampler {
	t.Helper()
	s, err := NewSampler(o)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("this libdsv3 has no sampler yet (dsv3_sampler_new: %v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSamplerRejectsNaN(t *testing.T) {
	samplerOrSkip(t, nil).Close()
	o := DefaultSamplerOptions()
	o.Temperature = float32(math.NaN())
	_, err := NewSampler(&o)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalid || e.Message == "" {
		t.Fatalf("NaN temperature: %v", err)
	}
}

func TestSamplerGreedyAndBias(t *testing.T) {
	g := GreedySamplerOptions()
	s := samplerOrSkip(t, &g)
	defer s.Close()
	logits := []float32{0.5, 3, -1, 2.5}
	if tok, err := s.Sample(logits); err != nil || tok != 1 {
		t.Fatalf("greedy: %d %v", tok, err)
	}
	if err := s.SetLogitBias(1, float32(math.Inf(-1))); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Sample(logits); err != nil || tok != 3 {
		t.Fatalf("banned argmax: %d %v", tok, err)
	}
	if err := s.Accept(3); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	inf := float32(math.Inf(-1))
	if _, err := s.Sample([]float32{inf, inf}); !errors.Is(err, ErrInvalid) {
		t.Errorf("all -inf: %v", err)
	}
	s.Close()
	if _, err := s.Sample(logits); !errors.Is(err, ErrClosed) {
		t.Errorf("closed sampler: %v", err)
	}
}

func TestSamplerSeededDraws(t *testing.T) {
	o := DefaultSamplerOptions()
	o.Temperature, o.TopK, o.TopP, o.MinP, o.Seed = 1.5, 0, 1, 0, 42
	a := samplerOrSkip(t, &o)
	defer a.Close()
	b, err := NewSampler(&o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	logits := make([]float32, 64)
	for i := range logits {
		logits[i] = float32(i % 7)
	}
	draw := func(s *Sampler) []int32 {
		var out []int32
		for i := 0; i < 32; i++ {
			tok, err := s.Sample(logits)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, tok)
		}
		return out
	}
	da, db := draw(a), draw(b)
	if fmt.Sprint(da) != fmt.Sprint(db) {
		t.Fatalf("same seed, different draws: %v %v", da, db)
	}
	a.Reset()
	if fmt.Sprint(draw(a)) != fmt.Sprint(da) {
		t.Fatalf("Reset does not restart the random stream")
	}
}
