package dsv3

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

func TestReadmeShowsTheExamples(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(sourceDir(), "bindings", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)<!-- file: (bindings/go/\\S+) -->\n```go\n(.*?)```").
		FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("bindings/README.md shows no Go example")
	}
	for _, b := range blocks {
		file, err := os.ReadFile(filepath.Join(sourceDir(), string(b[1])))
		if err != nil || string(file) != string(b[2]) {
			t.Errorf("README copy of %s is stale (%v)", b[1], err)
		}
	}
}

func buildExample(t *testing.T, name string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the example")
	}
	exe := filepath.Join(t.TempDir(), name)
	build := exec.Command(goTool, "build", "-o", exe, "../examples/"+name)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// TestStreamExampleOnFake builds examples/stream and runs it on the
// scripted fake library, which continues "Once upon a time" with "fgh...z".
func TestStreamExampleOnFake(t *testing.T) {
	if os.Getenv("DSV3_GO_FAKE") != "" {
		t.Skip("child process for another test")
	}
	exe := buildExample(t, "stream")
	run := exec.Command(exe, t.TempDir())
	run.Env = append(os.Environ(), "LD_LIBRARY_PATH="+buildFake(t)+":"+os.Getenv("LD_LIBRARY_PATH"))
	out, err := run.Output()
	if err != nil || string(out) != "fghijklmnopqrstuvwxyz\n" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestStreamExampleOnModel(t *testing.T) {
	m, _ := testModel(t)
	if info, _ := m.Info(); !info.HasTokenizer() {
		t.Skip("the test model has no tokenizer (the example prompts with text)")
	}
	out, err := exec.Command(buildExample(t, "stream"), os.Getenv("DSV3_TEST_MODEL")).Output()
	if err != nil || len(out) < 2 {
		t.Fatalf("%q %v", out, err)
	}
}
