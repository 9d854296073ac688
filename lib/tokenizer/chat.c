/*
 * chat.c - the chat templates of the DeepSeek models, rendered in C exactly
 * as their Jinja templates render them.
 *
 * DeepSeek-V3 (tokenizer_config.json of DeepSeek-V3):
 *   BOS + all system contents joined with "\n\n", then per message
 *     user       "<｜User｜>" content
 *     assistant  "<｜Assistant｜>" content "<｜end▁of▁sentence｜>", or, right after
 *                tool output, "<｜tool▁outputs▁end｜>" content "<｜end▁of▁sentence｜>"
 *     tool       "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" content
 *                "<｜tool▁output▁end｜>" for the first tool message of the
 *                conversation, "\n<｜tool▁output▁begin｜>" content
 *                "<｜tool▁output▁end｜>" for later ones (the template never
 *                resets its "first output" flag)
 *   then "<｜tool▁outputs▁end｜>" if the last message is tool output, else
 *   "<｜Assistant｜>" when a generation prompt is asked for.
 *   Assistant tool calls (content null + tool_calls) cannot be expressed
 *   with dsv3_chat_message and are not rendered.
 * DeepSeek-V2 / V2-Lite (and DeepSeek LLM):
 *   BOS, then system: content "\n\n"; user: "User: " content "\n\n";
 *   assistant: "Assistant: " content EOS; generation prompt "Assistant:".
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "tok_priv.h"

#define V3_USER "<｜User｜>"
#define V3_ASSISTANT "<｜Assistant｜>"
#define V3_EOS "<｜end▁of▁sentence｜>"
#define V3_OUTPUTS_BEGIN "<｜tool▁outputs▁begin｜>"
#define V3_OUTPUTS_END "<｜tool▁outputs▁end｜>"
#define V3_OUTPUT_BEGIN "<｜tool▁output▁begin｜>"
#define V3_OUTPUT_END "<｜tool▁output▁end｜>"

typedef struct out_buf {
    char *buf;
    size_t cap;
    size_t len;
} out_buf;

static void put(out_buf *o, const char *s, size_t n)
{
    if (o->len + n <= o->cap && n)
        memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(out_buf *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_token(out_buf *o, const dsv3_tokenizer *t, int32_t id)
{
    const char *s;
    size_t n;
    if (t && id >= 0 && dsv3__tokenizer_token_bytes(t, id, &s, &n) == DSV3_OK)
        put(o, s, n);
}

enum { R_SYSTEM, R_USER, R_ASSISTANT, R_TOOL };

static int check_messages(int32_t kind, const dsv3_chat_message *msgs, size_t n,
                          dsv3__err *err)
{
    static const char *const names[] = {"system", "user", "assistant", "tool"};
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role, *c = msgs[i].content;
        if (!role || !c)
            return dsv3__seterr(err, DSV3_E_INVAL, "chat: message %zu has a NULL %s", i,
                                role ? "content" : "role");
        int r = -1;
        for (int k = 0; k < 4 && r < 0; k++)
            if (!strcmp(role, names[k]))
                r = k;
        if (r < 0 || (r == R_TOOL && kind != DSV3__CHAT_KIND_V3))
            return dsv3__seterr(err, DSV3_E_INVAL, "chat: message %zu has unknown role '%.64s'",
                                i, role);
        size_t bad;
        if (!dsv3__utf8_check(c, strlen(c), &bad))
            return dsv3__seterr(err, DSV3_E_UTF8, "chat: message %zu: invalid UTF-8 at byte "
                                "offset %zu", i, bad);
    }
    return DSV3_OK;
}

static int role_of(const dsv3_chat_message *m)
{
    switch (m->role[0]) {
    case 's':
        return R_SYSTEM;
    case 'u':
        return R_USER;
    case 'a':
        return R_ASSISTANT;
    default:
        return R_TOOL;
    }
}

static void render_v3(const dsv3_tokenizer *t, const dsv3_chat_message *msgs, size_t n,
                      bool gen, out_buf *o)
{
    put_token(o, t, t ? t->bos : -1);
    bool first_sys = true;
    for (size_t i = 0; i < n; i++) {
        if (role_of(&msgs[i]) != R_SYSTEM)
            continue;
        if (!first_sys)
            puts_(o, "\n\n");
        puts_(o, msgs[i].content);
        first_sys = false;
    }
    bool is_tool = false, output_first = true;
    for (size_t i = 0; i < n; i++) {
        const char *c = msgs[i].content;
        switch (role_of(&msgs[i])) {
        case R_USER:
            is_tool = false;
            puts_(o, V3_USER);
            puts_(o, c);
            break;
        case R_ASSISTANT:
            puts_(o, is_tool ? V3_OUTPUTS_END : V3_ASSISTANT);
            puts_(o, c);
            puts_(o, V3_EOS);
            is_tool = false;
            break;
        case R_TOOL:
            is_tool = true;
            puts_(o, output_first ? V3_OUTPUTS_BEGIN V3_OUTPUT_BEGIN : "\n" V3_OUTPUT_BEGIN);
            puts_(o, c);
            puts_(o, V3_OUTPUT_END);
            output_first = false;
            break;
        default:
            break;
        }
    }
    if (is_tool)
        puts_(o, V3_OUTPUTS_END);
    if (gen && !is_tool)
        puts_(o, V3_ASSISTANT);
}

static void render_v2(const dsv3_tokenizer *t, const dsv3_chat_message *msgs, size_t n,
                      bool gen, out_buf *o)
{
    put_token(o, t, t ? t->bos : -1);
    for (size_t i = 0; i < n; i++) {
        const char *c = msgs[i].content;
        switch (role_of(&msgs[i])) {
        case R_USER:
            puts_(o, "User: ");
            puts_(o, c);
            puts_(o, "\n\n");
            break;
        case R_ASSISTANT:
            puts_(o, "Assistant: ");
            puts_(o, c);
            put_token(o, t, t ? t->eos : -1);
            break;
        default: /* system */
            puts_(o, c);
            puts_(o, "\n\n");
            break;
        }
    }
    if (gen)
        puts_(o, "Assistant:");
}

int dsv3__chat_render(const dsv3_tokenizer *t, int32_t kind, const dsv3_chat_message *msgs,
                      size_t n_msgs, uint32_t flags, char *text, size_t cap, size_t *len,
                      dsv3__err *err)
{
    if (!len || (n_msgs && !msgs) || (cap && !text))
        return dsv3__seterr(err, DSV3_E_INVAL, "chat: NULL argument");
    *len = 0;
    if (flags & ~(uint32_t)DSV3_CHAT_ADD_GENERATION_PROMPT)
        return dsv3__seterr(err, DSV3_E_INVAL, "chat: unknown flags 0x%x", flags);
    if (kind != DSV3__CHAT_KIND_V3 && kind != DSV3__CHAT_KIND_V2)
        return dsv3__seterr(err, DSV3_E_UNSUPPORTED, "chat: the model has no known chat template");
    int rc = check_messages(kind, msgs, n_msgs, err);
    if (rc)
        return rc;
    out_buf o = {text, cap, 0};
    bool gen = flags & DSV3_CHAT_ADD_GENERATION_PROMPT;
    if (kind == DSV3__CHAT_KIND_V3)
        render_v3(t, msgs, n_msgs, gen, &o);
    else
        render_v2(t, msgs, n_msgs, gen, &o);
    *len = o.len;
    if (o.len > cap)
        return dsv3__seterr(err, DSV3_E_NOSPC, "chat: the text needs %zu bytes", o.len + 1);
    if (o.len < cap)
        text[o.len] = '\0';
    return DSV3_OK;
}

/* The V3 family writes its role markers literally; V2's template writes
 * "User: " / "Assistant: " around bos_token/eos_token. */
int32_t dsv3__chat_detect(const char *tmpl, size_t len)
{
    if (!tmpl)
        return DSV3__CHAT_KIND_NONE;
    bool user3 = false, asst3 = false, user2 = false, asst2 = false;
    const char *end = tmpl + len;
    for (const char *p = tmpl; p < end; p++) {
        size_t left = (size_t)(end - p);
#define AT(lit) (left >= sizeof lit - 1 && !memcmp(p, lit, sizeof lit - 1))
        user3 |= AT(V3_USER);
        asst3 |= AT(V3_ASSISTANT);
        user2 |= AT("'User: '");
        asst2 |= AT("'Assistant: '");
#undef AT
    }
    if (user3 && asst3)
        return DSV3__CHAT_KIND_V3;
    if (user2 && asst2)
        return DSV3__CHAT_KIND_V2;
    return DSV3__CHAT_KIND_NONE;
}
