/* fs_isa_undef.h -- ends a SIMD path's parameters in fs_kernels.c (after both dtypes of fs_kernels_impl.h), so that
   the next path can define its own. */
#undef FS_ISA
#undef FS_PATH_NAME
#undef FS_T
#undef VF
#undef VD
#undef VIF
#undef VLD
#undef NF
#undef ND
#undef FS_FMA
#undef FS_AVX512
#undef VFMA_F
#undef VFMA_D
#undef VMAX_F
#undef VMAX_D
#undef VMIN_F
#undef VMIN_D
#undef CVT_LO_F
#undef CVT_HI_F
#undef PACK_D_F
#undef UF32
#undef UF64
#undef TILE_F32
#undef TILE_F64
