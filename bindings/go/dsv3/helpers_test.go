package dsv3

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Environment (set by `meson test --suite bindings`; defaults for a manual
// `go test` from a checkout with a build directory):
//
//	DSV3_SOURCE_DIR, DSV3_BUILD_DIR  the checkout and its build directory
//	DSV3_DUMP_LAYOUT                 the ABI suite's layout dumper
//	DSV3_TEST_MODEL                  a small model for the end-to-end tests
//	CC                               compiler for the scripted fake library

func sourceDir() string {
	if d := os.Getenv("DSV3_SOURCE_DIR"); d != "" {
		return d
	}
	d, _ := filepath.Abs("../../..")
	return d
}

func buildDir() string {
	if d := os.Getenv("DSV3_BUILD_DIR"); d != "" {
		return d
	}
	return filepath.Join(sourceDir(), "build")
}

type layoutDump struct {
	ABIVersion int `json:"abi_version"`
	Structs    map[string]struct {
		Size   uintptr            `json:"size"`
		Fields map[string]uintptr `json:"fields"`
	} `json:"structs"`
	Enums map[string]int64 `json:"enums"`
	order map[string][]string
}

func loadLayout(t *testing.T) *layoutDump {
	t.Helper()
	exe := os.Getenv("DSV3_DUMP_LAYOUT")
	if exe == "" {
		exe = filepath.Join(buildDir(), "tests", "abi", "dump_layout")
	}
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatalf("running %s: %v", exe, err)
	}
	var d layoutDump
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("parsing the layout dump: %v", err)
	}
	d.order = fieldOrder(t, out)
	return &d
}

// fieldOrder reads the field names of each struct in the dump's order
// (encoding/json maps lose it).
func fieldOrder(t *testing.T, raw []byte) map[string][]string {
	var top struct {
		Structs map[string]struct {
			Fields json.RawMessage `json:"fields"`
		} `json:"structs"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	res := map[string][]string{}
	for name, s := range top.Structs {
		dec := json.NewDecoder(strings.NewReader(string(s.Fields)))
		dec.Token() // {
		for dec.More() {
			tok, _ := dec.Token()
			res[name] = append(res[name], tok.(string))
			var v json.Number
			dec.Decode(&v)
		}
	}
	return res
}

// buildFake compiles bindings/testdata/fake_dsv3.c as dir/libdsv3.so.0 with
// the library's symbol versions, so that the test binary can run on it.
func buildFake(t *testing.T, defines ...string) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	dir := t.TempDir()
	src := sourceDir()
	args := append([]string{"-std=c11", "-D_DEFAULT_SOURCE", "-shared", "-fPIC", "-O1",
		"-I", filepath.Join(src, "include"), "-I", filepath.Join(buildDir(), "include")},
		defines...)
	args = append(args, filepath.Join(src, "bindings", "testdata", "fake_dsv3.c"),
		"-o", filepath.Join(dir, "libdsv3.so.0"), "-Wl,-soname,libdsv3.so.0",
		"-Wl,--version-script,"+filepath.Join(src, "lib", "libdsv3.sym"), "-lm")
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("building the fake library: %v\n%s", err, out)
	}
	return dir
}

// runWithLibrary runs the test named test in a child process of this test
// binary whose dynamic loader finds libdsv3.so.0 in dir first; mode goes to
// the child in DSV3_GO_FAKE.
func runWithLibrary(t *testing.T, dir, test, mode string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "DSV3_GO_FAKE="+mode,
		"LD_LIBRARY_PATH="+dir+string(os.PathListSeparator)+os.Getenv("LD_LIBRARY_PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child test on %s failed: %v\n%s", dir, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("child test did not run:\n%s", out)
	}
	if testing.Verbose() {
		t.Logf("child:\n%s", out)
	}
}
