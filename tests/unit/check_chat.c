/*
 * check_chat.c - chat templates through dsv3_chat_apply: renderings compared
 * with the Jinja templates as rendered by a reference engine
 * (tests/data/tokenizer/chat_cases.json, written by make_cases.js), template
 * detection, buffers and bad messages.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tok_fixture.h"

static dsv3_json_doc g_doc;
static const dsv3_json *g_list;
static dsv3_model *M;

static void setup(void)
{
    M = tf_model_new(tf_v3_tokenizer(), DSV3_CHAT_DEEPSEEK_V3);
}

static void teardown(void)
{
    tf_model_free(M);
    M = NULL;
}

START_TEST(reference_renderings)
{
    size_t n_v2 = 0, n_tool = 0;
    for (size_t k = 0; k < g_list->n_children; k++) {
        const dsv3_json *c = &g_list->children[k];
        const dsv3_json *msgs = dsv3__json_get(c, "messages");
        const dsv3_json *want = dsv3__json_get(c, "text");
        bool gen = false, v2 = dsv3__json_streq(dsv3__json_get(c, "kind"), "v2");
        ck_assert(dsv3__json_bool(dsv3__json_get(c, "add_generation_prompt"), &gen));
        M->chat_kind = v2 ? DSV3_CHAT_DEEPSEEK_V2 : DSV3_CHAT_DEEPSEEK_V3;
        n_v2 += v2;
        dsv3_chat_message m[16];
        ck_assert_uint_le(msgs->n_children, 16);
        for (size_t i = 0; i < msgs->n_children; i++) {
            m[i].role = dsv3__json_string(dsv3__json_get(&msgs->children[i], "role"));
            m[i].content = dsv3__json_string(dsv3__json_get(&msgs->children[i], "content"));
            n_tool += !strcmp(m[i].role, "tool");
        }
        char out[2048];
        size_t len = 0;
        int rc = dsv3_chat_apply(M, m, msgs->n_children,
                                 gen ? DSV3_CHAT_ADD_GENERATION_PROMPT : 0, out, sizeof out, &len);
        ck_assert_msg(rc == DSV3_OK, "case %zu: %s", k, dsv3_model_errmsg(M));
        ck_assert_msg(len == want->str_len && !memcmp(out, want->str, len) && out[len] == '\0',
                      "case %zu: got '%s', want '%s'", k, out, want->str);
    }
    ck_assert_uint_gt(n_v2, 10);
    ck_assert_uint_gt(n_tool, 5);
}
END_TEST

START_TEST(rendered_prompt_tokens)
{
    const dsv3_chat_message m[] = {{"system", "Be brief."}, {"user", "Hi"}};
    char out[256];
    size_t len, n;
    ck_assert_int_eq(dsv3_chat_apply(M, m, 2, DSV3_CHAT_ADD_GENERATION_PROMPT, out, sizeof out,
                                     &len), DSV3_OK);
    int32_t ids[64];
    ck_assert_int_eq(dsv3_tokenize(M, out, len, 0, ids, 64, &n), DSV3_OK);
    ck_assert_int_eq(ids[0], 0);            /* BOS once, from the template */
    ck_assert_int_eq(ids[n - 1], 128804);   /* <｜Assistant｜> */
    int users = 0, bos = 0;
    for (size_t i = 0; i < n; i++) {
        users += ids[i] == 128803;
        bos += ids[i] == 0;
    }
    ck_assert_int_eq(users, 1);
    ck_assert_int_eq(bos, 1);
}
END_TEST

START_TEST(buffers)
{
    const dsv3_chat_message m[] = {{"user", "Hello"}};
    const char *want = "<｜begin▁of▁sentence｜><｜User｜>Hello";
    size_t wl = strlen(want), len = 0;
    char out[128];
    ck_assert_int_eq(dsv3_chat_apply(M, m, 1, 0, NULL, 0, &len), DSV3_E_NOSPC);
    ck_assert_uint_eq(len, wl);
    ck_assert_int_eq(dsv3_chat_apply(M, m, 1, 0, out, wl - 1, &len), DSV3_E_NOSPC);
    ck_assert_uint_eq(len, wl);
    memset(out, 'x', sizeof out);
    ck_assert_int_eq(dsv3_chat_apply(M, m, 1, 0, out, wl, &len), DSV3_OK);
    ck_assert(!memcmp(out, want, wl) && out[wl] == 'x');
    ck_assert_int_eq(dsv3_chat_apply(M, m, 1, 0, out, wl + 1, &len), DSV3_OK);
    ck_assert_str_eq(out, want);
    /* no messages: just BOS (and the prompt) */
    ck_assert_int_eq(dsv3_chat_apply(M, NULL, 0, DSV3_CHAT_ADD_GENERATION_PROMPT, out,
                                     sizeof out, &len), DSV3_OK);
    ck_assert_str_eq(out, "<｜begin▁of▁sentence｜><｜Assistant｜>");
}
END_TEST

START_TEST(bad_messages)
{
    char out[256];
    size_t len;
    const dsv3_chat_message unknown[] = {{"user", "a"}, {"narrator", "b"}};
    ck_assert_int_eq(dsv3_chat_apply(M, unknown, 2, 0, out, sizeof out, &len), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(M), "message 1 has unknown role 'narrator'"));
    const dsv3_chat_message null_content[] = {{"user", NULL}};
    ck_assert_int_eq(dsv3_chat_apply(M, null_content, 1, 0, out, sizeof out, &len), DSV3_E_INVAL);
    const dsv3_chat_message null_role[] = {{NULL, "x"}};
    ck_assert_int_eq(dsv3_chat_apply(M, null_role, 1, 0, out, sizeof out, &len), DSV3_E_INVAL);
    const dsv3_chat_message bad_utf8[] = {{"user", "ok"}, {"assistant", "caf\xc3"}};
    ck_assert_int_eq(dsv3_chat_apply(M, bad_utf8, 2, 0, out, sizeof out, &len), DSV3_E_UTF8);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(M), "message 1"));
    const dsv3_chat_message ok[] = {{"user", "x"}};
    ck_assert_int_eq(dsv3_chat_apply(M, NULL, 1, 0, out, sizeof out, &len), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_chat_apply(M, ok, 1, 0, out, sizeof out, NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_chat_apply(M, ok, 1, 1u << 4, out, sizeof out, &len), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_chat_apply(NULL, ok, 1, 0, out, sizeof out, &len), DSV3_E_INVAL);
    /* "tool" exists only in the V3 template */
    const dsv3_chat_message tool[] = {{"user", "x"}, {"tool", "y"}};
    M->chat_kind = DSV3_CHAT_DEEPSEEK_V2;
    ck_assert_int_eq(dsv3_chat_apply(M, tool, 2, 0, out, sizeof out, &len), DSV3_E_INVAL);
    M->chat_kind = DSV3_CHAT_NONE;
    ck_assert_int_eq(dsv3_chat_apply(M, ok, 1, 0, out, sizeof out, &len), DSV3_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(M), "no known chat template"));
}
END_TEST

START_TEST(no_tokenizer)
{
    /* a template kind without a tokenizer renders without BOS/EOS text */
    dsv3_model *bare = tf_model_new(NULL, DSV3_CHAT_DEEPSEEK_V2);
    const dsv3_chat_message m[] = {{"user", "q"}, {"assistant", "a"}};
    char out[64];
    size_t len;
    ck_assert_int_eq(dsv3_chat_apply(bare, m, 2, DSV3_CHAT_ADD_GENERATION_PROMPT, out,
                                     sizeof out, &len), DSV3_OK);
    ck_assert_str_eq(out, "User: q\n\nAssistant: aAssistant:");
    tf_model_free(bare);
}
END_TEST

/* DeepSeek-V2-Chat's published template (tokenizer_config.json). */
static const char v2_template[] =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
    "{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'Assistant:' }}{% endif %}";

START_TEST(detect)
{
    ck_assert_int_eq(dsv3__chat_detect(v2_template, strlen(v2_template)), DSV3_CHAT_DEEPSEEK_V2);
    const char *chatml = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                         "<|im_end|>\n{% endfor %}";
    ck_assert_int_eq(dsv3__chat_detect(chatml, strlen(chatml)), DSV3_CHAT_NONE);
    ck_assert_int_eq(dsv3__chat_detect(NULL, 0), DSV3_CHAT_NONE);
    const char *v3 = "{{bos_token}}{{'<｜User｜>' + c}}{{'<｜Assistant｜>'}}";
    ck_assert_int_eq(dsv3__chat_detect(v3, strlen(v3)), DSV3_CHAT_DEEPSEEK_V3);
    /* only half of the markers: not recognised */
    ck_assert_int_eq(dsv3__chat_detect(v3, strlen(v3) - 24), DSV3_CHAT_NONE);
    /* the V3 blob recorded its kind from tokenizer_config.json */
    ck_assert_int_eq(dsv3__tokenizer_chat_kind(M->tok), DSV3_CHAT_DEEPSEEK_V3);
}
END_TEST

static Suite *chat_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("templates");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, reference_renderings);
    tcase_add_test(tc, rendered_prompt_tokens);
    tcase_add_test(tc, detect);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, buffers);
    tcase_add_test(tc, bad_messages);
    tcase_add_test(tc, no_tokenizer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    size_t bl;
    if (!tf_v3_blob(&bl) || tf_json_load("tests/data/tokenizer/chat_cases.json", &g_doc))
        return 1;
    g_list = dsv3__json_get(g_doc.root, "cases");
    if (!g_list || g_list->type != DSV3_JSON_ARRAY) {
        fprintf(stderr, "chat_cases.json: unexpected layout\n");
        return 1;
    }
    int rc = tu_run_suite(chat_suite());
    dsv3__json_free(&g_doc);
    return rc;
}
