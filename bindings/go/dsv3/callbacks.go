package dsv3

/*
#include "shim.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// The exported trampolines that shim.c installs as libdsv3 callbacks. The
// user_data pointer carries a runtime/cgo.Handle of the Go state; this file
// holds only declarations in its preamble (a cgo rule for //export files).

//export dsv3goLog
func dsv3goLog(level C.int32_t, msg *C.char, ud unsafe.Pointer) {
	fn := cgo.Handle(uintptr(ud)).Value().(func(LogLevel, string))
	defer func() { _ = recover() }() // a panicking logger must not unwind through C
	fn(LogLevel(level), C.GoString(msg))
}

//export dsv3goProgress
func dsv3goProgress(ev *C.dsv3_progress_event, ud unsafe.Pointer) C.int {
	return cgo.Handle(uintptr(ud)).Value().(*progressState).call(ev)
}

//export dsv3goToken
func dsv3goToken(ev *C.dsv3_token_event, ud unsafe.Pointer) C.int {
	return cgo.Handle(uintptr(ud)).Value().(*generation).onToken(ev)
}
