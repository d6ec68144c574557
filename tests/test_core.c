/* SPDX-License-Identifier: MIT */
/* test_core.c — status strings, error messages, ISA dispatch, thread pool,
 * the split sgemm wrapper (thread-count identity of every split path). */
#include "core/core.h"
#include "kernels/gemm.h"
#include "testutil.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

static void square_task(void *ctx, int64_t t, int tid) {
    int64_t *out = ctx;
    out[t] = t * t + tid * 0; /* every task writes only its own slot */
}

/* n tasks of square_task on the pool; 1 if every slot is right. */
static int squares_ok(int64_t n) {
    int64_t *out = calloc((size_t)n, sizeof *out);
    if (!out) return 0;
    for (int64_t i = 0; i < n; i++) out[i] = -1;
    attn__parallel_for(n, 0, square_task, out);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= out[i] == i * i;
    free(out);
    return ok;
}

#include <pthread.h>
static void *squares_loop(void *arg) {
    int *ok = arg;
    for (int i = 0; i < 200; i++) *ok &= squares_ok(97);
    return NULL;
}

/* attn_threads_release: the pool stops and restarts (results unchanged),
 * twice in a row, with no workers, and while another thread's calls run
 * (they wait for it or run serially: TSan checks the hand-over). */
static void test_release(void) {
    const int nt0 = attn_get_num_threads();
    attn_set_num_threads(4);
    CHECK(squares_ok(150), "pool before release");
    attn_threads_release();
    CHECK(squares_ok(150), "pool restarts after release");
    attn_threads_release();
    attn_threads_release();
    CHECK(squares_ok(150), "after a double release");
    int ok = 1;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, squares_loop, &ok) == 0, "helper thread");
    for (int i = 0; i < 50; i++) attn_threads_release();
    pthread_join(th, NULL);
    CHECK(ok, "calls concurrent with releases gave the right results");
    attn_set_num_threads(nt0);
}

/* attn__sgemm on shapes taking each path of gemm.c (one call, split along M,
 * split along N, the long-K split): bit-identical for 1, 2 and 3 threads,
 * and each sampled entry within fp32 rounding of a double dot product. */
static void test_gemm(void) {
    static const struct { int ta, tb; int64_t M, N, K; const char *what; } cs[] = {
        {0, 1, 96, 80, 70, "one block"},
        {0, 0, 1600, 100, 200, "split along M"},
        {1, 1, 64, 1700, 150, "split along N, both transposed"},
        {1, 0, 512, 520, 2048, "long K (weight gradient), split along N"},
        {1, 0, 530, 512, 2048, "long K, split along M"},
    };
    const int nt0 = attn_get_num_threads();
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        const int64_t M = cs[c].M, N = cs[c].N, K = cs[c].K;
        const int64_t lda = cs[c].ta ? M : K, ldb = cs[c].tb ? K : N; /* A (M,K) or (K,M); B (K,N) or (N,K) */
        float *A = malloc(sizeof(float) * M * K), *Bm = malloc(sizeof(float) * K * N);
        float *C[3];
        tu_rng r = {11 + c};
        tu_fill(&r, A, M * K, 1.0f);
        tu_fill(&r, Bm, K * N, 1.0f);
        for (int t = 0; t < 3; t++) {
            C[t] = malloc(sizeof(float) * M * N);
            attn_set_num_threads(t + 1);
            attn__sgemm(cs[c].ta, cs[c].tb, M, N, K, 0.5f, A, lda, Bm, ldb, 0.0f, C[t], N);
        }
        attn_set_num_threads(nt0);
        CHECK(memcmp(C[0], C[1], sizeof(float) * M * N) == 0 && memcmp(C[0], C[2], sizeof(float) * M * N) == 0,
              "gemm %s: bit-identical for 1, 2, 3 threads", cs[c].what);
        double worst = 0;
        for (int64_t i = 0; i < M; i += 37)
            for (int64_t j = 0; j < N; j += 41) {
                double ref = 0, mag = 0;
                for (int64_t p = 0; p < K; p++) {
                    double a = cs[c].ta ? A[p * lda + i] : A[i * lda + p];
                    double b = cs[c].tb ? Bm[j * ldb + p] : Bm[p * ldb + j];
                    ref += a * b;
                    mag += fabs(a * b);
                }
                double e = fabs(C[0][i * N + j] - 0.5 * ref) / (0.5 * mag + 1e-30);
                if (e > worst) worst = e;
            }
        CHECK(worst < 1e-5, "gemm %s: max error %.3g relative to sum |a b|", cs[c].what, worst);
        for (int t = 0; t < 3; t++) free(C[t]);
        free(A);
        free(Bm);
    }
}

int main(void) {
    test_gemm();
    CHECK(strcmp(attn_version(), ATTN_VERSION_STRING) == 0, "version %s", attn_version());
    CHECK(attn_version_number() == ATTN_VERSION_NUMBER, "version number");
    for (int s = 0; s > -ATTN_STATUS_COUNT; s--)
        CHECK(strncmp(attn_status_str((attn_status)s), "ATTN_", 5) == 0, "status %d has a name", s);
    CHECK(strstr(attn_status_str((attn_status)-999), "unknown") != NULL, "unknown status");

    attn_status st = attn__fail(ATTN_ERR_SHAPE, "seq_q = %d", -3);
    CHECK(st == ATTN_ERR_SHAPE, "fail returns its status");
    CHECK(strcmp(attn_last_error(), "seq_q = -3") == 0, "message '%s'", attn_last_error());
    attn_clear_error();
    CHECK(attn_last_error()[0] == 0, "cleared");

    attn_isa det = attn_isa_detected();
    CHECK(attn_isa_active() <= det, "active <= detected");
    CHECK(attn_isa_set(ATTN_ISA_GENERIC) == ATTN_OK, "can always force generic");
    CHECK(attn_isa_active() == ATTN_ISA_GENERIC, "forced generic");
    CHECK(attn_isa_set((attn_isa)7) == ATTN_ERR_OPTION, "bad isa rejected");
    CHECK(attn_isa_set(det) == ATTN_OK, "restore");

    CHECK(attn_set_num_threads(0) == ATTN_ERR_OPTION, "0 threads rejected");
    CHECK(attn_set_num_threads(100000) == ATTN_ERR_OPTION, "too many threads rejected");
    for (int nt = 1; nt <= 8; nt++) {
        CHECK(attn_set_num_threads(nt) == ATTN_OK, "set %d threads", nt);
        CHECK(attn_get_num_threads() == nt, "get %d threads", nt);
        for (int64_t n = 0; n < 200; n += 37) {
            int64_t *out = calloc((size_t)n + 1, sizeof *out);
            for (int64_t i = 0; i < n; i++) out[i] = -1;
            attn__parallel_for(n, 0, square_task, out);
            int ok = 1;
            for (int64_t i = 0; i < n; i++) ok &= out[i] == i * i;
            CHECK(ok, "parallel_for n=%lld threads=%d", (long long)n, nt);
            free(out);
        }
    }
    test_release();
    int ok = 1;
    size_t dummy = attn__mul_size(SIZE_MAX / 2, 3, &ok);
    CHECK(!ok && dummy == 0, "overflow detected");
    void *p = attn__malloc(100);
    CHECK(p != NULL && ((uintptr_t)p % 64) == 0, "aligned malloc");
    attn__free(p);
    CHECK(attn__malloc(0) == NULL, "malloc(0) is NULL");
    return test_summary("test_core");
}
