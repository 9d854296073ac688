// Package dsv3 is the Go binding of libdsv3, a C library that runs
// DeepSeek-V3-architecture language models (DeepSeek-V3/R1, V2/V2-Lite and
// derivatives) on your own machine.
//
// It is a thin cgo layer over the stable C ABI (dsv3.h): Model, Context and
// Sampler wrap the C handles and are io.Closers; errors are *Error values
// carrying the C status code, its name and the handle's message, and match
// the sentinels ErrIO, ErrCanceled ... with errors.Is; context.Context
// cancels loads, decodes and generations (through dsv3_context_cancel).
//
//	m, err := dsv3.LoadModel(ctx, "models/tiny", nil)
//	...
//	c, err := m.NewContext(nil)
//	prompt, err := m.Tokenize("Once upon a time", dsv3.TokenizeAddBOS)
//	s, err := c.Stream(ctx, nil, prompt, &dsv3.GenerateOptions{MaxTokens: 64})
//	defer s.Close()
//	for s.Next() {
//		fmt.Print(s.Token().Text)
//	}
//	err = s.Err()
//
// Building: by default the package finds libdsv3 with pkg-config
// (libdsv3.pc of an installed library). To build against a build tree or a
// library without pkg-config, use the build tag dsv3_nopkgconfig and point
// CGO_CFLAGS (-I for dsv3.h and dsv3_version.h) and CGO_LDFLAGS (-L) at it.
//
// The package is written for libdsv3 ABI 0 (libdsv3.so.0): compiling against
// another dsv3.h fails, and every constructor returns an *ABIError when the
// library linked at run time reports another ABI (see CheckABI).
package dsv3
