/* SPDX-License-Identifier: MIT */
/* cli_out.c — see cli_out.h. */
#include "cli_out.h"

#include "core/core.h"
#include "io/file.h"

#include <stdlib.h>
#include <string.h>

FILE *cli_out_open(cli_out *o) {
    memset(o, 0, sizeof *o);
    o->f = open_memstream(&o->buf, &o->len);
    return o->f;
}

attn_status cli_out_commit(cli_out *o, const char *path) {
    int bad = ferror(o->f);
    if (fclose(o->f) != 0) bad = 1;
    o->f = NULL;
    attn_status s;
    if (bad) {
        s = attn__fail(ATTN_ERR_NOMEM, "%s: out of memory building the file", path);
    } else {
        attn_afile a;
        s = attn__afile_open(&a, path);
        if (s == ATTN_OK) {
            attn__afile_write(&a, o->buf, o->len);
            s = attn__afile_commit(&a);
        }
    }
    free(o->buf);
    o->buf = NULL;
    return s;
}
