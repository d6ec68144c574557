/* SPDX-License-Identifier: MIT */
/* bench_pypeer.c — see bench_pypeer.h. */
#include "bench_pypeer.h"

#include "bench_util.h"
#include "core/core.h"
#include "io/json.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ATTN_SOURCE_DIR
#define ATTN_SOURCE_DIR "."
#endif

static const char *const NAMES[PYPEER_N] = { "torch", "ort" };
const char *pypeer_name(int peer) { return peer >= 0 && peer < PYPEER_N ? NAMES[peer] : "?"; }

static int write_npy(const pypeer_dir *pd, const char *name, const float *x, int64_t a, int64_t b, int64_t c,
                     int64_t d) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s.npy", pd->path, name);
    const int64_t shape[4] = { a, b, c, d };
    return attn_npy_write(path, x, 4, shape) != ATTN_OK;
}

int pypeer_begin(pypeer_dir *pd, const attn_sdpa_dims *d, int kv_head_major, const float *q, const float *k,
                 const float *v, const float *dO, char *err, size_t errlen) {
    memset(pd, 0, sizeof *pd);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 32) tmp = "/tmp";
    snprintf(pd->path, sizeof pd->path, "%s/attn-peer-XXXXXX", tmp);
    if (!mkdtemp(pd->path)) {
        snprintf(err, errlen, "cannot create a temporary directory in %s", tmp);
        pd->path[0] = 0;
        return 1;
    }
    pd->kv_head_major = kv_head_major;
    pd->has_do = dO != NULL;
    const int64_t B = d->batch, Sq = d->seq_q, Sk = d->seq_k, Hq = d->heads_q, Hkv = d->heads_kv, D = d->head_dim;
    const int64_t k1 = kv_head_major ? Hkv : Sk, k2 = kv_head_major ? Sk : Hkv;
    if (write_npy(pd, "q", q, B, Sq, Hq, D) || write_npy(pd, "k", k, B, k1, k2, D) || write_npy(pd, "v", v, B, k1, k2, D) ||
        (dO && write_npy(pd, "do", dO, B, Sq, Hq, D))) {
        snprintf(err, errlen, "writing the peers' inputs: %s", attn_last_error());
        pypeer_end(pd);
        return 1;
    }
    return 0;
}

static const char *script_path(char *buf, size_t n) {
    const char *env = getenv("ATTN_BENCH_SDPA_PEER");
    if (env && *env) return env;
    snprintf(buf, n, "%s/bench/sdpa_peer.py", ATTN_SOURCE_DIR);
    return buf;
}

/* One line of the script's output: {"variant": ..., "ms": ... | "skip": ...} */
static void take_line(const char *line, const char *const *variants, int n, pypeer_res *res) {
    attn_json root, v;
    if (attn__json_parse(line, strlen(line), &root, NULL) != 0 || root.type != ATTN_JSON_OBJECT) return;
    if (attn__json_get(root, "variant", &v) != 1 || v.type != ATTN_JSON_STRING) return;
    for (int i = 0; i < n; i++) {
        if (!attn__json_str_eq(v, variants[i])) continue;
        pypeer_res *r = &res[i];
        char skip[160] = "";
        bu_json_text(root, "skip", skip, sizeof skip);
        if (skip[0]) { snprintf(r->note, sizeof r->note, "n/a: %s", skip); return; }
        r->ms = bu_json_number(root, "ms", -1);
        r->best_ms = bu_json_number(root, "best_ms", r->ms);
        r->cpu_share = bu_json_number(root, "cpu_share", 0);
        r->runs = (int)bu_json_number(root, "runs", 0);
        bu_json_text(root, "op", r->op, sizeof r->op);
        bu_json_text(root, "version", r->version, sizeof r->version);
        if (r->ms > 0) { r->ran = 1; r->note[0] = 0; }
        return;
    }
}

static void shell_quote(char *dst, size_t n, const char *s) {
    size_t j = 0;
    if (j + 1 < n) dst[j++] = '\'';
    for (; *s && j + 5 < n; s++) {
        if (*s == '\'') { memcpy(dst + j, "'\\''", 4); j += 4; }
        else dst[j++] = *s;
    }
    if (j + 1 < n) dst[j++] = '\'';
    dst[j] = 0;
}

void pypeer_run(int peer, const pypeer_dir *pd, const char *const *variants, int n, const pypeer_timing *tc,
                pypeer_res *res) {
    for (int i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        snprintf(res[i].note, sizeof res[i].note, "n/a: %s gave no result", NAMES[peer]);
    }
    char sbuf[4096], qs[4200], list[256] = "";
    const char *script = script_path(sbuf, sizeof sbuf);
    const char *why = NULL;
    if (!pd->path[0]) why = "no input directory";
    else if (!bu_which("python3")) why = "python3 not found";
    else if (access(script, R_OK) != 0) why = "peer script not found";
    if (why) {
        for (int i = 0; i < n; i++) snprintf(res[i].note, sizeof res[i].note, "n/a: %s", why);
        return;
    }
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? "," : "", variants[i]);
    }
    shell_quote(qs, sizeof qs, script);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 %s --peer %s --dir '%s' --variants %s%s --dtype %s --threads %d --runs %d --min-time %g "
             "--max-time %g 2>/dev/null",
             qs, NAMES[peer], pd->path, list, pd->kv_head_major ? " --kv-head-major" : "",
             pd->dtype ? pd->dtype : "f32", tc->threads, tc->runs, tc->min_time, tc->max_time);
    fflush(NULL);
    FILE *f = popen(cmd, "r");
    if (!f) return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        take_line(line, variants, n, res);
    }
    int st = pclose(f);
    int code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code == 0) return;
    for (int i = 0; i < n; i++) {
        if (res[i].ran || strncmp(res[i].note, "n/a: ", 5) || strstr(res[i].note, "gave no result") == NULL) continue;
        if (code == 2) snprintf(res[i].note, sizeof res[i].note, "n/a: %s not importable", peer == PYPEER_TORCH ? "torch" : "onnxruntime/onnx");
        else snprintf(res[i].note, sizeof res[i].note, "n/a: peer script failed (exit status %d)", code);
    }
}

const float *pypeer_load(int peer, const pypeer_dir *pd, const char *variant, const char *name, int64_t n,
                         attn_npy *arr) {
    char path[160];
    memset(arr, 0, sizeof *arr);
    snprintf(path, sizeof path, "%s/%s.%s.%s.npy", pd->path, NAMES[peer], variant, name);
    if (attn_npy_read(path, arr) != ATTN_OK) return NULL;
    if (arr->numel != n) { attn_npy_free(arr); return NULL; }
    return arr->data;
}

void pypeer_end(pypeer_dir *pd) {
    if (!pd->path[0]) return;
    DIR *dir = opendir(pd->path);
    if (dir) {
        struct dirent *e;
        char path[384];
        while ((e = readdir(dir)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", pd->path, e->d_name);
            unlink(path);
        }
        closedir(dir);
    }
    rmdir(pd->path);
    pd->path[0] = 0;
}
