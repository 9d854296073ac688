package dsv3

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// ConvertOptions are the parameters of Convert; the zero value (or nil)
// means the library's defaults.
type ConvertOptions struct {
	Weights   DType  // element type of matrices; DTypeDefault: as stored
	Level     int    // zstd level; 0: 3; -1: uncompressed shards
	ShardSize uint64 // bytes per shard file; 0: 2 GiB
	Threads   int    // compression threads; 0: number of CPUs
	LogLevel  LogLevel
	Logger    func(level LogLevel, msg string)
	Progress  func(stage ProgressStage, done, total uint64)
}

// Convert turns a Hugging Face DeepSeek checkpoint directory (config.json,
// safetensors, tokenizer files) into a libdsv3 model directory. ctx cancels it.
func Convert(ctx context.Context, hfDir, outDir string, opts *ConvertOptions) error {
	if err := CheckABI(); err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return canceledError("dsv3_convert", err)
	}
	if hasNUL(hfDir, outDir) {
		return fmt.Errorf("dsv3: path contains a NUL byte: %w", ErrInvalid)
	}
	var o ConvertOptions
	if opts != nil {
		o = *opts
	}
	if err := checkInt32("Level", o.Level); err != nil {
		return err
	}
	if err := checkInt32("Threads", o.Threads); err != nil {
		return err
	}
	var p C.dsv3_convert_params
	if rc := C.dsv3_convert_params_init(&p, C.size_t(unsafe.Sizeof(p))); rc != 0 {
		return newError("dsv3_convert_params_init", rc, "")
	}
	p.weights = C.int32_t(o.Weights)
	p.level = C.int32_t(o.Level)
	p.shard_size = C.uint64_t(o.ShardSize)
	p.n_threads = C.int32_t(o.Threads)
	if o.LogLevel != 0 {
		p.log_level = C.int32_t(o.LogLevel)
	}
	var logH cgo.Handle
	if o.Logger != nil {
		logH = cgo.NewHandle(o.Logger)
		defer logH.Delete()
	}
	prog := &progressState{ctx: ctx, fn: o.Progress}
	progH := cgo.NewHandle(prog)
	defer progH.Delete()
	src, dst := C.CString(hfDir), C.CString(outDir)
	defer C.free(unsafe.Pointer(src))
	defer C.free(unsafe.Pointer(dst))
	errbuf := (*C.char)(C.calloc(1024, 1))
	defer C.free(unsafe.Pointer(errbuf))
	rc := C.dsv3go_convert(src, dst, &p, C.uintptr_t(logH), C.uintptr_t(progH), errbuf, 1024)
	if prog.panic != nil {
		panic(prog.panic)
	}
	if rc != 0 {
		if Code(rc) == CodeCanceled && ctx.Err() != nil {
			return canceledError("dsv3_convert", ctx.Err())
		}
		return newError("dsv3_convert", rc, C.GoString(errbuf))
	}
	return nil
}
