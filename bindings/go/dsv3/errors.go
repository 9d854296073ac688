package dsv3

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Code is a libdsv3 status code: 0 is success, errors are negative.
type Code int32

// Status codes (enum dsv3_status). Values are pinned by the C ABI.
const (
	CodeOK          Code = 0
	CodeInvalid     Code = -1  // DSV3_E_INVAL
	CodeNoMem       Code = -2  // DSV3_E_NOMEM
	CodeIO          Code = -3  // DSV3_E_IO
	CodeFormat      Code = -4  // DSV3_E_FORMAT
	CodeChecksum    Code = -5  // DSV3_E_CHECKSUM
	CodeVersion     Code = -6  // DSV3_E_VERSION
	CodeUnsupported Code = -7  // DSV3_E_UNSUPPORTED
	CodeNoDevice    Code = -8  // DSV3_E_NODEV
	CodeBackend     Code = -9  // DSV3_E_BACKEND
	CodeNoSpace     Code = -10 // DSV3_E_NOSPC
	CodeContextFull Code = -11 // DSV3_E_CTX_FULL
	CodeCanceled    Code = -12 // DSV3_E_CANCELED
	CodeBusy        Code = -13 // DSV3_E_BUSY
	CodeMisuse      Code = -14 // DSV3_E_MISUSE
	CodeInternal    Code = -15 // DSV3_E_INTERNAL
	CodeRange       Code = -16 // DSV3_E_RANGE
	CodeUTF8        Code = -17 // DSV3_E_UTF8
)

// codeNames are the C names of the codes; the binding tests compare them
// with the library's dsv3_err_name and with the ABI suite's layout dump.
var codeNames = map[Code]string{
	CodeOK: "DSV3_OK", CodeInvalid: "DSV3_E_INVAL", CodeNoMem: "DSV3_E_NOMEM",
	CodeIO: "DSV3_E_IO", CodeFormat: "DSV3_E_FORMAT", CodeChecksum: "DSV3_E_CHECKSUM",
	CodeVersion: "DSV3_E_VERSION", CodeUnsupported: "DSV3_E_UNSUPPORTED",
	CodeNoDevice: "DSV3_E_NODEV", CodeBackend: "DSV3_E_BACKEND", CodeNoSpace: "DSV3_E_NOSPC",
	CodeContextFull: "DSV3_E_CTX_FULL", CodeCanceled: "DSV3_E_CANCELED",
	CodeBusy: "DSV3_E_BUSY", CodeMisuse: "DSV3_E_MISUSE", CodeInternal: "DSV3_E_INTERNAL",
	CodeRange: "DSV3_E_RANGE", CodeUTF8: "DSV3_E_UTF8",
}

// String is the C name of the code as the library gives it (dsv3_err_name),
// e.g. "DSV3_E_IO"; unknown codes are "DSV3_E_UNKNOWN".
func (c Code) String() string { return C.GoString(C.dsv3_err_name(C.int(c))) }

// Description is the library's text for the code (dsv3_strerror).
func (c Code) Description() string { return C.GoString(C.dsv3_strerror(C.int(c))) }

// Error is a failed libdsv3 call. Compare it with the sentinel values:
//
//	if errors.Is(err, dsv3.ErrIO) { ... }
//
// or get the details with errors.As:
//
//	var e *dsv3.Error
//	if errors.As(err, &e) { fmt.Println(e.Code, e.Name, e.Message) }
type Error struct {
	Code    Code   // the negative status code
	Name    string // its C name, e.g. "DSV3_E_IO" (dsv3_err_name)
	Message string // the handle's message for the failed call (dsv3_*_errmsg)
	Op      string // the C function that failed, e.g. "dsv3_model_load"; "" for sentinels
	cause   error  // e.g. context.Canceled when a context.Context ended the call
}

func (e *Error) Error() string {
	s := "dsv3: "
	if e.Op != "" {
		s += e.Op + ": "
	}
	s += e.Name
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is an *Error with the same code, so that every
// error of a code matches that code's sentinel (ErrIO, ErrCanceled ...).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Unwrap gives the cause: context.Canceled or context.DeadlineExceeded when a
// context.Context stopped the call.
func (e *Error) Unwrap() error { return e.cause }

func sentinel(c Code, msg string) *Error { return &Error{Code: c, Name: codeNames[c], Message: msg} }

// Sentinel errors, one per status code, for errors.Is.
var (
	ErrInvalid     = sentinel(CodeInvalid, "invalid argument")
	ErrNoMem       = sentinel(CodeNoMem, "out of memory")
	ErrIO          = sentinel(CodeIO, "input/output error")
	ErrFormat      = sentinel(CodeFormat, "malformed or unsupported file contents")
	ErrChecksum    = sentinel(CodeChecksum, "checksum mismatch")
	ErrVersion     = sentinel(CodeVersion, "unsupported format or ABI version")
	ErrUnsupported = sentinel(CodeUnsupported, "operation or value not supported")
	ErrNoDevice    = sentinel(CodeNoDevice, "no such device or backend")
	ErrBackend     = sentinel(CodeBackend, "backend failure")
	ErrNoSpace     = sentinel(CodeNoSpace, "buffer too small")
	ErrContextFull = sentinel(CodeContextFull, "context is full")
	ErrCanceled    = sentinel(CodeCanceled, "operation canceled")
	ErrBusy        = sentinel(CodeBusy, "handle is in use by another call")
	ErrMisuse      = sentinel(CodeMisuse, "library misuse")
	ErrInternal    = sentinel(CodeInternal, "internal error")
	ErrRange       = sentinel(CodeRange, "value out of range")
	ErrUTF8        = sentinel(CodeUTF8, "invalid UTF-8")
)

// ErrABIMismatch matches every *ABIError.
var ErrABIMismatch = errors.New("dsv3: libdsv3 ABI mismatch")

// ErrClosed is returned by calls on a closed Model, Context or Sampler.
var ErrClosed = errors.New("dsv3: handle is closed")

// ErrStop, returned by a Generate callback, ends the generation without an error.
var ErrStop = errors.New("dsv3: stop generation")

// newError builds the error of a failed call; msg "" takes dsv3_strerror's text.
func newError(op string, rc C.int, msg string) error {
	c := Code(rc)
	if msg == "" {
		msg = c.Description()
	}
	return &Error{Code: c, Name: c.String(), Message: msg, Op: op}
}

// errorFor is newError for a Go Code.
func errorFor(op string, c Code, msg string) error { return newError(op, C.int(c), msg) }

func busyError(what string) error {
	return &Error{Code: CodeBusy, Name: CodeBusy.String(), Op: "dsv3",
		Message: fmt.Sprintf("the %s is in use by another call (a running generation or "+
			"another goroutine); one call at a time per %s", what, what)}
}
