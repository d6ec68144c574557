/* SPDX-License-Identifier: MIT */
/* bench_plot.c — `attn bench --plot FILE.png|.svg`: GFLOP/s vs S per
 * (model, variant) of the sdpa rows, attn solid, the naive peer dashed in the
 * same colour (gnuplot, bench_util.c). */
#include "bench_cmd.h"
#include "args.h"

#include <stdio.h>

int bench_plot(const char *path, const bench_env *env, const bench_row *rows, int nsdpa, double peak) {
    /* series (model, variant, side): xs / ys its points, one per length (at most 16) */
    bu_series ser[NMODELS * 4 * 2];
    double xs[NMODELS * 4 * 2][16], ys[NMODELS * 4 * 2][16];
    char titles[NMODELS * 4 * 2][64];
    int ns = 0;
    for (int mi = 0; mi < NMODELS; mi++)
        for (int v = 0; v < 4; v++)
            for (int side = 0; side < 2; side++) {
                int n = 0;
                for (int i = 0; i < nsdpa; i++) {
                    const bench_row *r = &rows[i];
                    if (r->m != &MODELS[mi] || r->variant != v || !r->ran || n == 16) continue;
                    xs[ns][n] = (double)r->Sq;
                    ys[ns][n] = r->flops / (side ? r->tp.median_s : r->ta.median_s) * 1e-9;
                    n++;
                }
                if (!n) continue;
                snprintf(titles[ns], sizeof titles[ns], "%s %s%s", MODELS[mi].name, VNAMES[v], side ? " (peer)" : "");
                ser[ns] = (bu_series){ titles[ns], n, xs[ns], ys[ns], side, 1 + mi * 4 + v };
                ns++;
            }
    char title[256], err[512];
    snprintf(title, sizeof title, "attn sdpa, batch 1, %lld threads, %s (peak %.0f GFLOP/s); dashed: naive OpenBLAS (%s)",
             (long long)env->threads, env->cpu->brand, peak, env->core);
    if (!ns) return cli_fail(BENCH_SUB, "--plot: no sdpa rows to plot");
    if (bu_plot(path, title, "sequence length S", "GFLOP/s", ser, ns, err, sizeof err)) return cli_fail(BENCH_SUB, "%s", err);
    printf("wrote %s\n", path);
    return 0;
}
