/* Whether this build has OpenMP: gcc defines _OPENMP under -fopenmp. Without it the kernels run single-threaded
   and the prange loops compile to plain loops. */
#ifndef FS_OPENMP_H
#define FS_OPENMP_H
#ifdef _OPENMP
#include <omp.h>
static int fs_openmp_available(void) { return 1; }
static int fs_openmp_max_threads(void) { return omp_get_max_threads(); }
#else
static int fs_openmp_available(void) { return 0; }
static int fs_openmp_max_threads(void) { return 1; }
#endif
#endif
