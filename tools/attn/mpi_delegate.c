/* SPDX-License-Identifier: MIT */
/* mpi_delegate.c — `attn train --mpi` and `attn bench --mpi`: the attn tool
 * never links MPI (it must build and run where MPI is absent); these
 * commands are run by attn-mpi, the binary built next to it with libattn_mpi
 * (tools/attn_mpi, docs/mpi.md). Started under mpirun, each attn process
 * replaces itself with attn-mpi (exec keeps the process, hence its place in
 * the MPI job), which calls MPI_Init. */
#include "args.h"
#include "mpi_delegate.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_has_flag(int argc, char **argv, const char *flag) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0) return 1;
    return 0;
}

int cli_mpi_delegate(const char *sub, int argc, char **argv) {
    char self[PATH_MAX], tool[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return cli_fail(sub, "--mpi: cannot locate this executable (/proc/self/exe): %s", strerror(errno));
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) slash[1] = 0;
    snprintf(tool, sizeof tool, "%sattn-mpi", slash ? self : "./");
    if (access(tool, X_OK) != 0)
        return cli_fail(sub, "--mpi: this attn was built without MPI (no attn-mpi next to it: %s); install Open MPI "
                        "(libopenmpi-dev) and build with -DATTN_MPI=ON, then run 'mpirun -np N attn %s --mpi ...'",
                        tool, sub);
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) return cli_fail(sub, "out of memory");
    args[0] = tool;
    args[1] = (char *)sub;
    for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
    fflush(NULL);
    execv(tool, args);
    int e = errno;
    free(args);
    return cli_fail(sub, "--mpi: cannot run %s: %s", tool, strerror(e));
}
