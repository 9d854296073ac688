package dsv3

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestABINumbers(t *testing.T) {
	d := loadLayout(t)
	if ExpectedABI != headerABI || uint32(ExpectedABI) != ABIVersion() || d.ABIVersion != ExpectedABI {
		t.Fatalf("ABI: binding %d, header %d, library %d, layout dump %d", ExpectedABI,
			headerABI, ABIVersion(), d.ABIVersion)
	}
	if err := CheckABI(); err != nil {
		t.Fatal(err)
	}
}

func TestVersions(t *testing.T) {
	v := Version()
	var a, b, c uint32
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &a, &b, &c); err != nil {
		t.Fatalf("version %q: %v", v, err)
	}
	if VersionNumber() != a*10000+b*100+c {
		t.Errorf("VersionNumber %d vs %q", VersionNumber(), v)
	}
	if !strings.Contains(BuildInfo(), v) {
		t.Errorf("BuildInfo %q lacks %q", BuildInfo(), v)
	}
	if BackendName(BackendCPU) != "cpu" || BackendName(Backend(12345)) != "" {
		t.Errorf("BackendName")
	}
	if !BackendAvailable(BackendCPU) {
		t.Errorf("the CPU backend is always available")
	}
	if BackendCUDA.String() != "cuda" || Backend(9).String() != "Backend(9)" {
		t.Errorf("Backend.String")
	}
}

func TestStructLayouts(t *testing.T) {
	d := loadLayout(t)
	mine := cLayouts()
	var cNames, goNames []string
	for n := range d.Structs {
		if !strings.HasPrefix(n, "dsv3_uv") { // the libuv bridge is C-only
			cNames = append(cNames, n)
		}
	}
	for n := range mine {
		goNames = append(goNames, n)
	}
	sort.Strings(cNames)
	sort.Strings(goNames)
	if fmt.Sprint(cNames) != fmt.Sprint(goNames) {
		t.Fatalf("structs: C has %v, the binding %v", cNames, goNames)
	}
	for name, l := range mine {
		want := d.Structs[name]
		if l.Size != want.Size {
			t.Errorf("%s: size %d in cgo, %d in the dump", name, l.Size, want.Size)
		}
		var order []string
		for _, f := range l.Fields {
			order = append(order, f.Name)
			if off, ok := want.Fields[f.Name]; !ok || off != f.Offset {
				t.Errorf("%s.%s: offset %d in cgo, %d (present %v) in the dump", name, f.Name,
					f.Offset, off, ok)
			}
		}
		if fmt.Sprint(order) != fmt.Sprint(d.order[name]) {
			t.Errorf("%s: fields %v in the binding, %v in the dump", name, order, d.order[name])
		}
	}
}

func TestEnumValues(t *testing.T) {
	d := loadLayout(t)
	mine := cEnumerators()
	for name, v := range d.Enums {
		if strings.HasPrefix(name, "DSV3_UV") {
			continue
		}
		got, ok := mine[name]
		if !ok {
			t.Errorf("%s = %d is not known to the binding", name, v)
		} else if got != v {
			t.Errorf("%s: %d in the binding, %d in C", name, got, v)
		}
	}
	for name := range mine {
		if _, ok := d.Enums[name]; !ok {
			t.Errorf("the binding has %s, C does not", name)
		}
	}
}

func TestEveryFunctionIsDeclared(t *testing.T) {
	// Every exported C function is reached by the binding (a grep of the
	// sources for C.<name> or the shim's use of it).
	sym, err := os.ReadFile(filepath.Join(sourceDir(), "lib", "libdsv3.sym"))
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	files, _ := filepath.Glob("*.go")
	cfiles, _ := filepath.Glob("*.c")
	for _, f := range append(files, cfiles...) {
		if !strings.HasSuffix(f, "_test.go") {
			b, _ := os.ReadFile(f)
			src.Write(b)
		}
	}
	for _, name := range regexp.MustCompile(`\bdsv3_\w+`).FindAllString(string(sym), -1) {
		if strings.HasPrefix(name, "dsv3_uv") { // the libuv bridge is C-only
			continue
		}
		if !regexp.MustCompile(`\b` + name + `\(`).MatchString(src.String()) {
			t.Errorf("%s is not used by the Go binding", name)
		}
	}
}

// pretendABI makes CheckABI see another ABI number for the duration of a test.
func pretendABI(t *testing.T, abi uint32) {
	old := libABIVersion
	libABIVersion = func() uint32 { return abi }
	abiOnce, abiErr = sync.Once{}, nil
	t.Cleanup(func() {
		libABIVersion = old
		abiOnce, abiErr = sync.Once{}, nil
	})
}

func checkABIError(t *testing.T, err error, found uint32) {
	t.Helper()
	var ae *ABIError
	if !errors.As(err, &ae) || ae.Found != found || ae.Expected != ExpectedABI {
		t.Fatalf("want an ABIError for ABI %d, got %v", found, err)
	}
	if !errors.Is(err, ErrABIMismatch) || !errors.Is(err, ErrVersion) {
		t.Errorf("ABIError does not match ErrABIMismatch and ErrVersion")
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("ABI %d", found)) ||
		!strings.Contains(msg, fmt.Sprintf("ABI %d", ExpectedABI)) {
		t.Errorf("unclear message: %s", msg)
	}
}

func TestABIMismatchIsRefused(t *testing.T) {
	pretendABI(t, 999)
	checkABIError(t, CheckABI(), 999)
	_, err := LoadModel(nil, "/nonexistent", nil)
	checkABIError(t, err, 999)
	_, err = NewSampler(nil)
	checkABIError(t, err, 999)
	checkABIError(t, Convert(nil, "/a", "/b", nil), 999)
}

// TestABIMismatchLibrary runs the binding on a library that really reports
// ABI 999 (a fake libdsv3.so.0 found first by the dynamic loader).
func TestABIMismatchLibrary(t *testing.T) {
	switch os.Getenv("DSV3_GO_FAKE") {
	case "":
		runWithLibrary(t, buildFake(t, "-DFAKE_ABI=999"), "TestABIMismatchLibrary", "abi999")
	case "abi999":
		if ABIVersion() != 999 {
			t.Fatalf("the child runs on ABI %d, not on the fake", ABIVersion())
		}
		_, err := LoadModel(nil, t.TempDir(), nil)
		checkABIError(t, err, 999)
		_, err = NewSampler(nil)
		checkABIError(t, err, 999)
	default:
		t.Skip("child process for another test")
	}
}
