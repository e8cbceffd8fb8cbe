"""The C API of the SIMD kernels (src_cython/simd/fs_kernels.h), declared once for every Cython module."""

cdef extern from "fs_kernels.h" nogil:
    ctypedef struct fs_dd:
        double hi
        double lo
    void fs_init()
    const char *fs_simd_path()
    const char *fs_cpu_features()
    void fs_softmax_row_f32(const float *x, float *y, Py_ssize_t n, double temperature)
    void fs_softmax_row_f64(const double *x, double *y, Py_ssize_t n, double temperature)
    void fs_log_softmax_row_f32(const float *x, float *y, Py_ssize_t n, double temperature)
    void fs_log_softmax_row_f64(const double *x, double *y, Py_ssize_t n, double temperature)
    float fs_logsumexp_row_f32(const float *x, Py_ssize_t n)
    double fs_logsumexp_row_f64(const double *x, Py_ssize_t n)
    void fs_softmax_cols_f32(const float *x, float *y, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t ld, double temperature)
    void fs_softmax_cols_f64(const double *x, double *y, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t ld, double temperature)
    void fs_log_softmax_cols_f32(const float *x, float *y, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t ld,
                                 double temperature)
    void fs_log_softmax_cols_f64(const double *x, double *y, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t ld,
                                 double temperature)
    void fs_logsumexp_cols_f32(const float *x, float *y, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t ld)
    void fs_logsumexp_cols_f64(const double *x, double *y, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t ld)
    fs_dd fs_slice_max_sumexp_f32(const float *x, Py_ssize_t n, double temperature, float *max_out)
    fs_dd fs_slice_max_sumexp_f64(const double *x, Py_ssize_t n, double temperature, double *max_out)
    double fs_merge_slices(const double *maxima, const fs_dd *sums, Py_ssize_t k, double temperature, fs_dd *sum_out)
    double fs_log_sum(fs_dd s)
    void fs_slice_exp_scale_f32(const float *x, float *y, Py_ssize_t n, float max, fs_dd sum, double temperature)
    void fs_slice_exp_scale_f64(const double *x, double *y, Py_ssize_t n, double max, fs_dd sum, double temperature)
    void fs_slice_log_softmax_f32(const float *x, float *y, Py_ssize_t n, float max, double log_sum,
                                  double temperature)
    void fs_slice_log_softmax_f64(const double *x, double *y, Py_ssize_t n, double max, double log_sum,
                                  double temperature)
    float fs_lse_finish_f32(float max, fs_dd sum)
    double fs_lse_finish_f64(double max, fs_dd sum)
    # slices that store exp(x - max) (used by the training kernels)
    float fs_slice_max_f32(const float *x, Py_ssize_t n)
    double fs_slice_max_f64(const double *x, Py_ssize_t n)
    fs_dd fs_slice_sumexp_f32(const float *x, float *y, Py_ssize_t n, float max)
    fs_dd fs_slice_sumexp_f64(const double *x, double *y, Py_ssize_t n, double max)
