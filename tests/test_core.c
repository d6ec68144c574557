/* test_core.c — status strings, error messages, ISA dispatch, thread pool. */
#include "core/core.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void square_task(void *ctx, int64_t t, int tid) {
    int64_t *out = ctx;
    out[t] = t * t + tid * 0; /* every task writes only its own slot */
}

int main(void) {
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
    int ok = 1;
    size_t dummy = attn__mul_size(SIZE_MAX / 2, 3, &ok);
    CHECK(!ok && dummy == 0, "overflow detected");
    void *p = attn__malloc(100);
    CHECK(p != NULL && ((uintptr_t)p % 64) == 0, "aligned malloc");
    attn__free(p);
    CHECK(attn__malloc(0) == NULL, "malloc(0) is NULL");
    return test_summary("test_core");
}
