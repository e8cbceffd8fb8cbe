"""The C API of the SIMD kernels (src_cython/simd/fs_kernels.h), declared once for every Cython module."""
from libc.stdint cimport int64_t

cdef extern from "fs_kernels.h" nogil:
    ctypedef struct fs_dd:
        double hi
        double lo
    enum:
        FS_SOFTMAX
        FS_LOG_SOFTMAX
        FS_LOGSUMEXP
        FS_STREAM
        FS_FLOAT32
        FS_FLOAT64
    void fs_init()
    const char *fs_simd_path()
    const char *fs_cpu_features()
    void fs_rows(int dtype, int mode, const void *x, void *y, Py_ssize_t rows, Py_ssize_t n, double temperature)
    void fs_cols(int dtype, int mode, const void *x, void *y, Py_ssize_t n, Py_ssize_t width, Py_ssize_t ld,
                 double temperature)
    fs_dd fs_slice_stats(int dtype, const void *x, Py_ssize_t n, double temperature, double *max_out)
    double fs_merge_slices(const double *maxima, const fs_dd *sums, Py_ssize_t k, double temperature,
                           fs_dd *sum_out)
    void fs_slice_finish(int dtype, int mode, const void *x, void *y, Py_ssize_t n, double max, fs_dd sum,
                         double temperature)
    double fs_log_sum(fs_dd s)
    void fs_backward_rows(int dtype, int log, const void *y, const void *g, void *out, Py_ssize_t rows,
                          Py_ssize_t n)
    void fs_backward_cols(int dtype, int log, const void *y, const void *g, void *out, Py_ssize_t n,
                          Py_ssize_t inner, double *scratch)
    double fs_cross_entropy_row(int dtype, const void *x, const void *q, int64_t target, void *grad, Py_ssize_t n,
                                const double *w, double w_total, double ls, double scale)
