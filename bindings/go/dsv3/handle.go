package dsv3

import (
	"sync"
	"unsafe"
)

// handle owns one C handle and frees it once closed and no call uses it.
//
// Calls take the pointer with acquire/release. An exclusive handle (context,
// sampler: "serialize per handle" in dsv3.h) refuses a second concurrent
// user with ErrBusy rather than racing in C. close may be called at any
// time, from any goroutine and also from inside a callback: the free is
// deferred until the running call releases the handle.
type handle struct {
	mu        sync.Mutex
	ptr       unsafe.Pointer
	free      func(unsafe.Pointer)
	what      string
	exclusive bool
	users     int
	closing   bool
}

func newHandle(ptr unsafe.Pointer, free func(unsafe.Pointer), what string, exclusive bool) *handle {
	return &handle{ptr: ptr, free: free, what: what, exclusive: exclusive}
}

func (h *handle) acquire() (unsafe.Pointer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing || h.ptr == nil {
		return nil, ErrClosed
	}
	if h.exclusive && h.users > 0 {
		return nil, busyError(h.what)
	}
	h.users++
	return h.ptr, nil
}

func (h *handle) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users--
	if h.closing && h.users == 0 {
		h.freeLocked()
	}
}

// withPtr calls f with the pointer while it cannot be freed (for cancel).
func (h *handle) withPtr(f func(unsafe.Pointer)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ptr != nil {
		f(h.ptr)
	}
}

func (h *handle) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closing = true
	if h.users == 0 {
		h.freeLocked()
	}
}

func (h *handle) closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

func (h *handle) freeLocked() {
	if p := h.ptr; p != nil {
		h.ptr = nil
		h.free(p)
	}
}
