/*
 * cmd_tokenize.c - dsv3 tokenize / dsv3 detokenize: text to token ids and back
 * with a model's tokenizer.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const char tokenize_usage[] =
    "usage: dsv3 tokenize -m MODEL [--bos] [--no-special] [--] TEXT\n\n"
    "Print the token ids of TEXT, comma-separated on one line. Added and special\n"
    "tokens written in the text become single tokens, and no BOS is added, as in\n"
    "the model's Hugging Face tokenizer pipeline.\n\n"
    "  -m, --model MODEL  the model directory\n"
    "      --bos          put the BOS token first\n"
    "      --no-special   treat special and added token text as plain text\n";

static const char detokenize_usage[] =
    "usage: dsv3 detokenize -m MODEL [--skip-special] [--] IDS\n\n"
    "Print the text of token ids given as a comma-separated list (e.g. 0,19923,2058).\n\n"
    "  -m, --model MODEL   the model directory\n"
    "      --skip-special  leave out special tokens (BOS, EOS, ...)\n";

/* The model's message without a leading "cmd: " (cli_error adds its own). */
static const char *model_msg(const dsv3_model *m, const char *cmd)
{
    const char *msg = dsv3_model_errmsg(m);
    size_t n = strlen(cmd);
    if (!strncmp(msg, cmd, n) && msg[n] == ':' && msg[n + 1] == ' ')
        msg += n + 2;
    return msg;
}

static dsv3_model *load_model(const char *cmd, const char *path)
{
    dsv3_model *m = NULL;
    int rc = dsv3_model_load(path, NULL, &m);
    if (rc) {
        cli_error(cmd, "%s", m ? dsv3_model_errmsg(m) : dsv3_strerror(rc));
        dsv3_model_free(m);
        return NULL;
    }
    return m;
}

int cmd_tokenize(int argc, char **argv)
{
    cli_opts o;
    cli_opts_init(&o, argc, argv);
    const char *opt, *model = NULL;
    uint32_t flags = 0;
    while ((opt = cli_next(&o, "h,help|m,model:|bos|no-special"))) {
        if (!strcmp(opt, "?"))
            return 1;
        if (!strcmp(opt, "help")) {
            fputs(tokenize_usage, stdout);
            return 0;
        }
        if (!strcmp(opt, "model"))
            model = o.value;
        else if (!strcmp(opt, "bos"))
            flags |= DSV3_TOKENIZE_ADD_BOS;
        else if (!strcmp(opt, "no-special"))
            flags |= DSV3_TOKENIZE_NO_SPECIAL;
    }
    if (!model)
        return cli_error("tokenize", "no model given (-m MODEL)");
    if (o.n_positional == 0)
        return cli_error("tokenize", "no TEXT given");
    if (o.n_positional > 1)
        return cli_error("tokenize", "expected one TEXT, got %d arguments (quote the text)",
                         o.n_positional);
    const char *text = o.positional[0];
    size_t len = strlen(text), n = 0;
    int32_t *ids = malloc((len + 2) * sizeof *ids); /* at most one token per byte, plus BOS */
    if (!ids)
        return cli_error("tokenize", "out of memory");
    dsv3_model *m = load_model("tokenize", model);
    if (!m) {
        free(ids);
        return 1;
    }
    int rc = dsv3_tokenize(m, text, len, flags, ids, len + 2, &n);
    if (rc) {
        cli_error("tokenize", "%s", model_msg(m, "tokenize"));
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? "," : "", (int)ids[i]);
        putchar('\n');
    }
    free(ids);
    dsv3_model_free(m);
    return rc ? 1 : 0;
}

/* Parse "1,2, 3" into ids (malloc'ed). false after a message on bad input. */
static bool parse_ids(const char *s, int32_t **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        cli_error("detokenize", "out of memory");
        return false;
    }
    *n = 0;
    const char *p = s;
    while (*p == ' ')
        p++;
    if (*p == '\0') { /* no ids at all */
        *out = ids;
        return true;
    }
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX) {
            cli_error("detokenize", "IDS: expected comma-separated integers, got '%s'", s);
            free(ids);
            return false;
        }
        ids[(*n)++] = (int32_t)v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (*p != ',') {
            cli_error("detokenize", "IDS: expected comma-separated integers, got '%s'", s);
            free(ids);
            return false;
        }
        p++;
    }
    *out = ids;
    return true;
}

int cmd_detokenize(int argc, char **argv)
{
    cli_opts o;
    cli_opts_init(&o, argc, argv);
    const char *opt, *model = NULL;
    uint32_t flags = 0;
    while ((opt = cli_next(&o, "h,help|m,model:|skip-special"))) {
        if (!strcmp(opt, "?"))
            return 1;
        if (!strcmp(opt, "help")) {
            fputs(detokenize_usage, stdout);
            return 0;
        }
        if (!strcmp(opt, "model"))
            model = o.value;
        else if (!strcmp(opt, "skip-special"))
            flags |= DSV3_DETOKENIZE_SKIP_SPECIAL;
    }
    if (!model)
        return cli_error("detokenize", "no model given (-m MODEL)");
    if (o.n_positional == 0)
        return cli_error("detokenize", "no IDS given");
    if (o.n_positional > 1)
        return cli_error("detokenize", "expected one IDS list, got %d arguments",
                         o.n_positional);
    int32_t *ids;
    size_t n, len = 0;
    if (!parse_ids(o.positional[0], &ids, &n))
        return 1;
    dsv3_model *m = load_model("detokenize", model);
    if (!m) {
        free(ids);
        return 1;
    }
    char *text = NULL;
    int rc = dsv3_detokenize(m, ids, n, flags, NULL, 0, &len);
    if (rc == DSV3_E_NOSPC || rc == DSV3_OK) {
        text = malloc(len + 1);
        rc = text ? dsv3_detokenize(m, ids, n, flags, text, len + 1, &len) : DSV3_E_NOMEM;
    }
    if (rc) {
        cli_error("detokenize", "%s", rc == DSV3_E_NOMEM && !text ? "out of memory"
                                                                  : model_msg(m, "detokenize"));
    } else {
        fwrite(text, 1, len, stdout);
        putchar('\n');
    }
    free(text);
    free(ids);
    dsv3_model_free(m);
    return rc ? 1 : 0;
}
