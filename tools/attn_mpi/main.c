/* SPDX-License-Identifier: MIT */
/* main.c — `attn-mpi`: the attn commands that run under mpirun (a separate
 * binary so that the main `attn` command never links MPI; `attn bench --mpi`
 * and `attn train --mpi` run it, see tools/attn/mpi_delegate.c, docs/mpi.md).
 *   mpirun -np N attn-mpi bench [options]   ring attention: per-rank figures
 *   mpirun -np N attn-mpi train [options]   the demo LM, sequence-parallel
 * MPI is initialised here (MPI_THREAD_FUNNELED: only this thread calls MPI;
 * the kernels' own threads never do). */
#include "args.h"
#include "attn_mpi.h"

#include <stdio.h>
#include <string.h>

int cmd_mpi_bench(int argc, char **argv);
int cmd_mpi_train(int argc, char **argv);

int main(int argc, char **argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int rc;
    if (argc >= 2 && strcmp(argv[1], "bench") == 0) {
        rc = cmd_mpi_bench(argc - 1, argv + 1);
    } else if (argc >= 2 && strcmp(argv[1], "train") == 0) {
        rc = cmd_mpi_train(argc - 1, argv + 1);
    } else {
        if (rank == 0)
            fprintf(argc >= 2 ? stderr : stdout,
                    "usage: mpirun -np N attn-mpi bench [options]   (= attn bench --mpi; attn-mpi bench --help)\n"
                    "       mpirun -np N attn-mpi train [options]   (= attn train --mpi; attn-mpi train --help)\n"
                    "bench: ring attention over MPI (libattn_mpi): per-rank compute time, bytes, hidden communication\n"
                    "train: the demo LM of attn train, sequence-parallel, gradients averaged over the ranks\n");
        rc = argc >= 2 ? 2 : 0;
    }
    MPI_Finalize();
    return rc;
}
