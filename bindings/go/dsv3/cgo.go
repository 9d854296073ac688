package dsv3

/*
#cgo !dsv3_nopkgconfig pkg-config: libdsv3
#cgo dsv3_nopkgconfig LDFLAGS: -ldsv3
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync"
)

// ExpectedABI is the libdsv3 ABI number (the SONAME number, libdsv3.so.0)
// this package is written for. Every constructor checks the linked library
// with CheckABI first.
const ExpectedABI = 0

// headerABI is DSV3_ABI_VERSION of the dsv3.h this package was compiled
// with (shim.h refuses to compile against another).
const headerABI = C.DSV3_ABI_VERSION

// libABIVersion asks the linked library; a variable so that tests can
// pretend another ABI.
var libABIVersion = func() uint32 { return uint32(C.dsv3_abi_version()) }

var (
	abiOnce sync.Once
	abiErr  error
)

// ABIError reports a linked libdsv3 with another ABI number than
// ExpectedABI. errors.Is(err, ErrABIMismatch) and errors.Is(err, ErrVersion)
// hold for it.
type ABIError struct {
	Expected uint32 // ABI this package is written for
	Found    uint32 // what dsv3_abi_version() of the linked library returned
}

func (e *ABIError) Error() string {
	return fmt.Sprintf("dsv3: the linked libdsv3 has ABI %d, but this Go binding was written for "+
		"ABI %d; link libdsv3.so.%d or use a binding for ABI %d", e.Found, e.Expected, e.Expected,
		e.Found)
}

// Is makes errors.Is(err, ErrABIMismatch) and errors.Is(err, ErrVersion) true.
func (e *ABIError) Is(target error) bool {
	if target == ErrABIMismatch {
		return true
	}
	t, ok := target.(*Error)
	return ok && t.Code == CodeVersion
}

// CheckABI reports an *ABIError when the linked library's ABI number is not
// ExpectedABI. The check runs once per process.
func CheckABI() error {
	abiOnce.Do(func() {
		if found := libABIVersion(); found != ExpectedABI {
			abiErr = &ABIError{Expected: ExpectedABI, Found: found}
		}
	})
	return abiErr
}

// Version is the linked library's version string, e.g. "0.1.0".
func Version() string { return C.GoString(C.dsv3_version_string()) }

// VersionNumber is the linked library's version as major*10000 + minor*100 + patch.
func VersionNumber() uint32 { return uint32(C.dsv3_version()) }

// ABIVersion is the linked library's ABI number (dsv3_abi_version).
func ABIVersion() uint32 { return libABIVersion() }

// BuildInfo describes what the linked library build contains, in one line.
func BuildInfo() string { return C.GoString(C.dsv3_build_info()) }

// BackendName is the name of a backend ("cpu", "cuda"), or "" for an unknown id.
func BackendName(b Backend) string {
	s := C.dsv3_backend_name(C.int32_t(b))
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// BackendAvailable reports whether a backend is compiled in and usable here.
func BackendAvailable(b Backend) bool { return C.dsv3_backend_available(C.int32_t(b)) != 0 }
