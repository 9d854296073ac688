package dsv3

/*
#include "shim.h"
*/
import "C"

import "unsafe"

// structLayout is the size and field offsets of a C struct as cgo compiles it.
type structLayout struct {
	Size   uintptr
	Fields []fieldOffset // in declaration order
}

type fieldOffset struct {
	Name   string
	Offset uintptr
}

func layoutOf(size uintptr, kv ...interface{}) structLayout {
	l := structLayout{Size: size}
	for i := 0; i < len(kv); i += 2 {
		l.Fields = append(l.Fields, fieldOffset{kv[i].(string), kv[i+1].(uintptr)})
	}
	return l
}

// cLayouts lists every public struct of dsv3.h with the fields this binding
// knows, measured with unsafe.Sizeof/Offsetof on the C types. The tests
// compare it with the ABI suite's layout dump: a struct or field added,
// removed or moved in C without updating the binding fails them.
func cLayouts() map[string]structLayout {
	var a C.dsv3_allocator
	var pe C.dsv3_progress_event
	var mp C.dsv3_model_params
	var mi C.dsv3_model_info
	var cm C.dsv3_chat_message
	var cp C.dsv3_context_params
	var sp C.dsv3_sampler_params
	var te C.dsv3_token_event
	var gp C.dsv3_generate_params
	var gr C.dsv3_generate_result
	var cv C.dsv3_convert_params
	return map[string]structLayout{
		"dsv3_allocator": layoutOf(unsafe.Sizeof(a),
			"struct_size", unsafe.Offsetof(a.struct_size),
			"flags", unsafe.Offsetof(a.flags),
			"alloc", unsafe.Offsetof(a.alloc),
			"free", unsafe.Offsetof(a.free),
			"user_data", unsafe.Offsetof(a.user_data),
		),
		"dsv3_progress_event": layoutOf(unsafe.Sizeof(pe),
			"struct_size", unsafe.Offsetof(pe.struct_size),
			"stage", unsafe.Offsetof(pe.stage),
			"done", unsafe.Offsetof(pe.done),
			"total", unsafe.Offsetof(pe.total),
		),
		"dsv3_model_params": layoutOf(unsafe.Sizeof(mp),
			"struct_size", unsafe.Offsetof(mp.struct_size),
			"flags", unsafe.Offsetof(mp.flags),
			"backend", unsafe.Offsetof(mp.backend),
			"device", unsafe.Offsetof(mp.device),
			"n_threads", unsafe.Offsetof(mp.n_threads),
			"placement", unsafe.Offsetof(mp.placement),
			"log_level", unsafe.Offsetof(mp.log_level),
			"reserved0", unsafe.Offsetof(mp.reserved0),
			"log_fn", unsafe.Offsetof(mp.log_fn),
			"log_user_data", unsafe.Offsetof(mp.log_user_data),
			"progress_fn", unsafe.Offsetof(mp.progress_fn),
			"progress_user_data", unsafe.Offsetof(mp.progress_user_data),
			"allocator", unsafe.Offsetof(mp.allocator),
		),
		"dsv3_model_info": layoutOf(unsafe.Sizeof(mi),
			"struct_size", unsafe.Offsetof(mi.struct_size),
			"flags", unsafe.Offsetof(mi.flags),
			"vocab_size", unsafe.Offsetof(mi.vocab_size),
			"hidden_size", unsafe.Offsetof(mi.hidden_size),
			"n_layers", unsafe.Offsetof(mi.n_layers),
			"n_dense_layers", unsafe.Offsetof(mi.n_dense_layers),
			"n_heads", unsafe.Offsetof(mi.n_heads),
			"n_experts", unsafe.Offsetof(mi.n_experts),
			"n_experts_used", unsafe.Offsetof(mi.n_experts_used),
			"n_mtp_layers", unsafe.Offsetof(mi.n_mtp_layers),
			"bos_token", unsafe.Offsetof(mi.bos_token),
			"eos_token", unsafe.Offsetof(mi.eos_token),
			"max_position", unsafe.Offsetof(mi.max_position),
			"weight_dtype", unsafe.Offsetof(mi.weight_dtype),
			"backend", unsafe.Offsetof(mi.backend),
			"reserved0", unsafe.Offsetof(mi.reserved0),
			"n_params", unsafe.Offsetof(mi.n_params),
			"n_params_active", unsafe.Offsetof(mi.n_params_active),
			"n_params_mtp", unsafe.Offsetof(mi.n_params_mtp),
			"bytes_on_disk", unsafe.Offsetof(mi.bytes_on_disk),
			"bytes_in_memory", unsafe.Offsetof(mi.bytes_in_memory),
			"bytes_per_token", unsafe.Offsetof(mi.bytes_per_token),
			"kv_bytes_per_token", unsafe.Offsetof(mi.kv_bytes_per_token),
		),
		"dsv3_chat_message": layoutOf(unsafe.Sizeof(cm),
			"role", unsafe.Offsetof(cm.role),
			"content", unsafe.Offsetof(cm.content),
		),
		"dsv3_context_params": layoutOf(unsafe.Sizeof(cp),
			"struct_size", unsafe.Offsetof(cp.struct_size),
			"flags", unsafe.Offsetof(cp.flags),
			"n_ctx", unsafe.Offsetof(cp.n_ctx),
			"n_threads", unsafe.Offsetof(cp.n_threads),
			"n_batch", unsafe.Offsetof(cp.n_batch),
			"kv_dtype", unsafe.Offsetof(cp.kv_dtype),
		),
		"dsv3_sampler_params": layoutOf(unsafe.Sizeof(sp),
			"struct_size", unsafe.Offsetof(sp.struct_size),
			"flags", unsafe.Offsetof(sp.flags),
			"seed", unsafe.Offsetof(sp.seed),
			"temperature", unsafe.Offsetof(sp.temperature),
			"top_k", unsafe.Offsetof(sp.top_k),
			"top_p", unsafe.Offsetof(sp.top_p),
			"min_p", unsafe.Offsetof(sp.min_p),
			"repeat_penalty", unsafe.Offsetof(sp.repeat_penalty),
			"frequency_penalty", unsafe.Offsetof(sp.frequency_penalty),
			"presence_penalty", unsafe.Offsetof(sp.presence_penalty),
			"penalty_window", unsafe.Offsetof(sp.penalty_window),
			"allocator", unsafe.Offsetof(sp.allocator),
		),
		"dsv3_token_event": layoutOf(unsafe.Sizeof(te),
			"struct_size", unsafe.Offsetof(te.struct_size),
			"token", unsafe.Offsetof(te.token),
			"index", unsafe.Offsetof(te.index),
			"reserved0", unsafe.Offsetof(te.reserved0),
			"text", unsafe.Offsetof(te.text),
			"text_len", unsafe.Offsetof(te.text_len),
		),
		"dsv3_generate_params": layoutOf(unsafe.Sizeof(gp),
			"struct_size", unsafe.Offsetof(gp.struct_size),
			"flags", unsafe.Offsetof(gp.flags),
			"max_tokens", unsafe.Offsetof(gp.max_tokens),
			"n_stop", unsafe.Offsetof(gp.n_stop),
			"stop", unsafe.Offsetof(gp.stop),
		),
		"dsv3_generate_result": layoutOf(unsafe.Sizeof(gr),
			"struct_size", unsafe.Offsetof(gr.struct_size),
			"stop_reason", unsafe.Offsetof(gr.stop_reason),
			"n_prompt", unsafe.Offsetof(gr.n_prompt),
			"n_generated", unsafe.Offsetof(gr.n_generated),
			"prompt_seconds", unsafe.Offsetof(gr.prompt_seconds),
			"generate_seconds", unsafe.Offsetof(gr.generate_seconds),
			"n_drafted", unsafe.Offsetof(gr.n_drafted),
			"n_accepted", unsafe.Offsetof(gr.n_accepted),
		),
		"dsv3_convert_params": layoutOf(unsafe.Sizeof(cv),
			"struct_size", unsafe.Offsetof(cv.struct_size),
			"flags", unsafe.Offsetof(cv.flags),
			"weights", unsafe.Offsetof(cv.weights),
			"level", unsafe.Offsetof(cv.level),
			"shard_size", unsafe.Offsetof(cv.shard_size),
			"n_threads", unsafe.Offsetof(cv.n_threads),
			"log_level", unsafe.Offsetof(cv.log_level),
			"log_fn", unsafe.Offsetof(cv.log_fn),
			"log_user_data", unsafe.Offsetof(cv.log_user_data),
			"progress_fn", unsafe.Offsetof(cv.progress_fn),
			"progress_user_data", unsafe.Offsetof(cv.progress_user_data),
		),
	}
}
