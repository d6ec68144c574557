/* SPDX-License-Identifier: MIT */
/* mpi_delegate.h — see mpi_delegate.c. */
#ifndef ATTN_MPI_DELEGATE_H
#define ATTN_MPI_DELEGATE_H

/* 1 if argv[1..] holds exactly `flag`. */
int cli_has_flag(int argc, char **argv, const char *flag);
/* Replaces the process with `attn-mpi <sub> argv[1..]` (found next to this
 * executable); returns (exit code 1, one error line) only if that fails,
 * e.g. when attn was built without MPI. */
int cli_mpi_delegate(const char *sub, int argc, char **argv);

#endif
