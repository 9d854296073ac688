package dsv3

import "fmt"

// LogLevel is a log level, most severe first (enum dsv3_log_level).
type LogLevel int32

const (
	LogNone  LogLevel = 0
	LogError LogLevel = 1
	LogWarn  LogLevel = 2
	LogInfo  LogLevel = 3
	LogDebug LogLevel = 4
)

func (l LogLevel) String() string {
	return enumName(int64(l), "LogLevel", "none", "error", "warn", "info", "debug")
}

// ProgressStage is what a progress report is about.
type ProgressStage int32

const (
	ProgressLoad    ProgressStage = 1 // reading and decompressing weights
	ProgressConvert ProgressStage = 2 // converting a checkpoint
)

func (s ProgressStage) String() string {
	return enumName(int64(s), "ProgressStage", "", "load", "convert")
}

// DType is an element type of weights and caches.
type DType int32

const (
	DTypeDefault DType = 0
	DTypeF32     DType = 1
	DTypeF16     DType = 2
	DTypeBF16    DType = 3
	DTypeFP8E4M3 DType = 4
	DTypeQ8_0    DType = 5
	DTypeQ4      DType = 6
)

func (d DType) String() string {
	return enumName(int64(d), "DType", "default", "f32", "f16", "bf16", "fp8_e4m3", "q8_0", "q4")
}

// Backend is a compute backend.
type Backend int32

const (
	BackendAuto Backend = 0 // CUDA when a device exists, else CPU
	BackendCPU  Backend = 1
	BackendCUDA Backend = 2
)

func (b Backend) String() string { return enumName(int64(b), "Backend", "auto", "cpu", "cuda") }

// ModelFlags are flags of model loading (set through ModelOptions).
type ModelFlags uint32

const (
	ModelNoMmap        ModelFlags = 1 << 0
	ModelSkipChecksums ModelFlags = 1 << 1
	ModelNoMTP         ModelFlags = 1 << 2
)

// Placement says where routed experts live.
type Placement int32

const (
	PlaceDefault      Placement = 0 // everything on the chosen backend
	PlaceExpertsOnCPU Placement = 1 // routed experts in CPU memory
)

// ModelInfoFlags are flags of ModelInfo.
type ModelInfoFlags uint32

const (
	InfoHasMTP        ModelInfoFlags = 1 << 0
	InfoHasTokenizer  ModelInfoFlags = 1 << 1
	InfoHasChat       ModelInfoFlags = 1 << 2
	InfoQLoRA         ModelInfoFlags = 1 << 3
	InfoSigmoidRouter ModelInfoFlags = 1 << 4
)

// TokenizeFlags are flags of Model.Tokenize.
type TokenizeFlags uint32

const (
	TokenizeAddBOS    TokenizeFlags = 1 << 0 // prepend the BOS token
	TokenizeNoSpecial TokenizeFlags = 1 << 1 // special token text is plain text
)

// DetokenizeFlags are flags of Model.Detokenize.
type DetokenizeFlags uint32

const (
	DetokenizeSkipSpecial DetokenizeFlags = 1 << 0 // drop special tokens
)

// ChatFlags are flags of chat template rendering (see Model.ApplyChatTemplate).
type ChatFlags uint32

const (
	ChatAddGenerationPrompt ChatFlags = 1 << 0
)

// ContextFlags are flags of context creation (set through ContextOptions).
type ContextFlags uint32

const (
	ContextMTP       ContextFlags = 1 << 0
	ContextNaiveAttn ContextFlags = 1 << 1
)

// DecodeFlags are flags of Context.Decode.
type DecodeFlags uint32

const (
	DecodeAllLogits DecodeFlags = 1 << 0 // keep the logits of every position
)

// ContextParam is a key of Context.Param / Context.SetParam.
type ContextParam int32

const (
	ParamThreads     ContextParam = 1 // rw: compute threads
	ParamMTP         ContextParam = 2 // rw: speculative decoding on (1) or off (0)
	ParamNCtx        ContextParam = 3 // ro: positions the cache holds
	ParamNPast       ContextParam = 4 // ro: positions in the cache
	ParamMTPDrafted  ContextParam = 5 // ro: draft tokens proposed
	ParamMTPAccepted ContextParam = 6 // ro: draft tokens accepted
)

// StopReason says why a generation ended.
type StopReason int32

const (
	StopNone        StopReason = 0
	StopEOS         StopReason = 1 // the model produced its end-of-sequence token
	StopString      StopReason = 2 // a stop string appeared
	StopMaxTokens   StopReason = 3 // MaxTokens produced
	StopContextFull StopReason = 4 // the context has no room left
	StopCallback    StopReason = 5 // the token callback asked to stop
	StopCanceled    StopReason = 6 // canceled
	StopError       StopReason = 7
)

func (r StopReason) String() string {
	return enumName(int64(r), "StopReason", "none", "eos", "string", "max_tokens",
		"context_full", "callback", "canceled", "error")
}

// GenerateFlags are flags of generation (set through GenerateOptions).
type GenerateFlags uint32

const (
	GenerateIgnoreEOS   GenerateFlags = 1 << 0
	GenerateShowSpecial GenerateFlags = 1 << 1
)

func enumName(v int64, typ string, names ...string) string {
	if v >= 0 && v < int64(len(names)) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

// cEnumerators maps every C enumerator of dsv3.h to the value this package
// uses for it; the tests compare it with the ABI suite's layout dump.
func cEnumerators() map[string]int64 {
	m := map[string]int64{}
	for c, n := range codeNames {
		m[n] = int64(c)
	}
	add := func(prefix string, kv ...interface{}) {
		for i := 0; i < len(kv); i += 2 {
			m[prefix+kv[i].(string)] = toInt64(kv[i+1])
		}
	}
	add("DSV3_LOG_", "NONE", LogNone, "ERROR", LogError, "WARN", LogWarn, "INFO", LogInfo,
		"DEBUG", LogDebug)
	add("DSV3_PROGRESS_", "LOAD", ProgressLoad, "CONVERT", ProgressConvert)
	add("DSV3_DTYPE_", "DEFAULT", DTypeDefault, "F32", DTypeF32, "F16", DTypeF16, "BF16",
		DTypeBF16, "FP8_E4M3", DTypeFP8E4M3, "Q8_0", DTypeQ8_0, "Q4", DTypeQ4)
	add("DSV3_BACKEND_", "AUTO", BackendAuto, "CPU", BackendCPU, "CUDA", BackendCUDA)
	add("DSV3_MODEL_", "NO_MMAP", ModelNoMmap, "SKIP_CHECKSUMS", ModelSkipChecksums,
		"NO_MTP", ModelNoMTP)
	add("DSV3_PLACE_", "DEFAULT", PlaceDefault, "EXPERTS_ON_CPU", PlaceExpertsOnCPU)
	add("DSV3_INFO_", "HAS_MTP", InfoHasMTP, "HAS_TOKENIZER", InfoHasTokenizer, "HAS_CHAT",
		InfoHasChat, "Q_LORA", InfoQLoRA, "SIGMOID_ROUTER", InfoSigmoidRouter)
	add("DSV3_TOKENIZE_", "ADD_BOS", TokenizeAddBOS, "NO_SPECIAL", TokenizeNoSpecial)
	add("DSV3_DETOKENIZE_", "SKIP_SPECIAL", DetokenizeSkipSpecial)
	add("DSV3_CHAT_", "ADD_GENERATION_PROMPT", ChatAddGenerationPrompt)
	add("DSV3_CONTEXT_", "MTP", ContextMTP, "NAIVE_ATTN", ContextNaiveAttn)
	add("DSV3_DECODE_", "ALL_LOGITS", DecodeAllLogits)
	add("DSV3_CTX_PARAM_", "N_THREADS", ParamThreads, "MTP", ParamMTP, "N_CTX", ParamNCtx,
		"N_PAST", ParamNPast, "MTP_DRAFTED", ParamMTPDrafted, "MTP_ACCEPTED", ParamMTPAccepted)
	add("DSV3_STOP_", "NONE", StopNone, "EOS", StopEOS, "STRING", StopString, "MAX_TOKENS",
		StopMaxTokens, "CTX_FULL", StopContextFull, "CALLBACK", StopCallback, "CANCELED",
		StopCanceled, "ERROR", StopError)
	add("DSV3_GENERATE_", "IGNORE_EOS", GenerateIgnoreEOS, "SHOW_SPECIAL", GenerateShowSpecial)
	return m
}

func toInt64(v interface{}) int64 {
	switch x := v.(type) {
	case LogLevel:
		return int64(x)
	case ProgressStage:
		return int64(x)
	case DType:
		return int64(x)
	case Backend:
		return int64(x)
	case ModelFlags:
		return int64(x)
	case Placement:
		return int64(x)
	case ModelInfoFlags:
		return int64(x)
	case TokenizeFlags:
		return int64(x)
	case DetokenizeFlags:
		return int64(x)
	case ChatFlags:
		return int64(x)
	case ContextFlags:
		return int64(x)
	case DecodeFlags:
		return int64(x)
	case ContextParam:
		return int64(x)
	case StopReason:
		return int64(x)
	case GenerateFlags:
		return int64(x)
	}
	panic(fmt.Sprintf("dsv3: no enum conversion for %T", v))
}
