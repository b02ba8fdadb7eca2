/* moequant kernels: a C API over raw pointers, with no framework headers.
 *
 * Each operation exists twice with the same arguments: `mq_cpu_*` (host pointers, multithreaded)
 * and `mq_cuda_*` (device pointers, asynchronous on `stream`, the last argument). Both write
 * exactly the bytes of docs/formats.md; the scalar rounding rules live in numerics.h and are
 * shared. Matrices are row-major and contiguous: `w` is [rows, cols] = [out, in]. Every function
 * returns MQ_OK or an error code; mq_last_error() gives the message (thread-local). The mq_cuda_*
 * functions return MQ_ERR_NO_CUDA in builds without CUDA.
 */
#ifndef MOEQUANT_KERNELS_KERNELS_H_
#define MOEQUANT_KERNELS_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same type as cudaStream_t, declared without the CUDA headers. NULL is the default stream. */
typedef struct CUstream_st* mq_stream_t;

/* Element type of an input weight. */
typedef enum { MQ_DTYPE_BF16 = 0, MQ_DTYPE_F16 = 1, MQ_DTYPE_F32 = 2 } mq_dtype;

typedef enum {
  MQ_OK = 0,
  MQ_ERR_INVALID = 1, /* bad argument (shape, null pointer, dtype) */
  MQ_ERR_CUDA = 2,    /* a CUDA call failed; message names it */
  MQ_ERR_RANGE = 3,   /* a value does not fit its format (INT4 fp16 scale overflow) */
  MQ_ERR_NO_CUDA = 4  /* CUDA entry point called in a build without CUDA */
} mq_status;

/* Message of the last failed call on this thread ("" if none). */
const char* mq_last_error(void);

/* ---- multi-tensor amax ------------------------------------------------------------------- */

/* One tensor to observe. Results are MAX-combined into `slots[slot]` (per-tensor) or into
 * `slots[slot + r]` for each row r (per-channel, axis 0), so several tensors may share a slot
 * (the experts of a grouped linear share their quantizer's slot). */
typedef struct {
  const void* data; /* [rows, cols], row-major, contiguous */
  int64_t rows;
  int64_t cols;
  mq_dtype dtype;
  int32_t slot;
  int32_t per_channel; /* 0: one value; 1: one value per row */
} mq_amax_item;

/* amax over every item in ONE pass. `slots` must hold initial values (0, or a running amax):
 * the results are MAX-combined into them (amax >= 0, so combining is order-independent).
 * `nonfinite[i]` is set to 1 when item i holds a NaN or Inf (and left untouched otherwise);
 * callers zero it first. `items` is a HOST array in both variants; for mq_cuda_multi_amax the
 * data pointers, `slots` and `nonfinite` are device pointers. */
mq_status mq_cpu_multi_amax(const mq_amax_item* items, int32_t num_items, float* slots,
                            int32_t* nonfinite);
mq_status mq_cuda_multi_amax(const mq_amax_item* items, int32_t num_items, float* slots,
                             int32_t* nonfinite, mq_stream_t stream);

/* ---- quantize (docs/formats.md) -------------------------------------------------------------- */

/* FP8 per-tensor (`per_row` = 0, scales[0]) or per-row (`per_row` = 1, scales[rows]):
 * out[i] = e4m3(w[i] / scale). `scales` (weight_scale = amax/448, 1 if amax is 0) lives where
 * `w` lives. out: rows*cols bytes. */
mq_status mq_cpu_quantize_fp8(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                              const float* scales, int32_t per_row, uint8_t* out);
mq_status mq_cuda_quantize_fp8(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                               const float* scales, int32_t per_row, uint8_t* out,
                               mq_stream_t stream);

/* NVFP4, blocks of 16 along cols (cols % 16 == 0). `scale2` = weight_scale_2 (host value).
 * packed: rows*cols/2 bytes (element 2j in the low nibble of byte j); block_scales:
 * rows*cols/16 e4m3 bytes. */
mq_status mq_cpu_quantize_nvfp4(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                float scale2, uint8_t* packed, uint8_t* block_scales);
mq_status mq_cuda_quantize_nvfp4(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                 float scale2, uint8_t* packed, uint8_t* block_scales,
                                 mq_stream_t stream);

/* FP8 block 128x128 (edge tiles smaller). out: rows*cols bytes; tile_scales (weight_scale_inv):
 * ceil(rows/128)*ceil(cols/128) floats, row-major. */
mq_status mq_cpu_quantize_fp8_block(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                    uint8_t* out, float* tile_scales);
mq_status mq_cuda_quantize_fp8_block(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                     uint8_t* out, float* tile_scales, mq_stream_t stream);

/* INT4 GPTQ v1, groups of 128 along cols (rows % 8 == 0, cols % 8 == 0). G = ceil(cols/128).
 * qweight: [cols/8, rows] int32; scales: [G, rows] fp16 bits; qzeros: [G, rows/8] int32
 * (0x77777777); g_idx: [cols] int32. MQ_ERR_RANGE when a scale overflows fp16. */
mq_status mq_cpu_quantize_int4(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                               int32_t* qweight, uint16_t* scales, int32_t* qzeros, int32_t* g_idx);
mq_status mq_cuda_quantize_int4(const void* w, mq_dtype dtype, int64_t rows, int64_t cols,
                                int32_t* qweight, uint16_t* scales, int32_t* qzeros, int32_t* g_idx,
                                mq_stream_t stream);

/* ---- batched quantize: many matrices, one call ------------------------------------------- */

/* The format of a batched call (the integers are part of the ABI). */
typedef enum {
  MQ_FORMAT_FP8 = 1,       /* per-tensor fp8 (per-row fp8: mq_*_quantize_fp8) */
  MQ_FORMAT_NVFP4 = 2,     /* nvfp4, blocks of 16 along cols */
  MQ_FORMAT_FP8_BLOCK = 3, /* fp8, 128x128 tiles */
  MQ_FORMAT_INT4 = 4       /* GPTQ v1 int4, groups of 128 along cols */
} mq_format;

/* One matrix of a batched call: exactly the arguments of the per-matrix function of its format,
 * with the same shape rules and output sizes (see above). Unused pointers may be NULL. */
typedef struct {
  const void* w; /* [rows, cols] row-major, aligned to its element size */
  int64_t rows;
  int64_t cols;
  float scale;     /* fp8: weight_scale (a host value here); nvfp4: weight_scale_2; else unused */
  void* out;       /* fp8, fp8_block: e4m3 codes; nvfp4: packed nibbles; int4: qweight (int32) */
  void* scales;    /* nvfp4: e4m3 block scales; fp8_block: float tile scales; int4: fp16 scales;
                      fp8: unused */
  int32_t* qzeros; /* int4 only */
  int32_t* g_idx;  /* int4 only */
} mq_quant_item;

/* Quantizes items[0..n) (n > 0, all of one format and input dtype); every item gets exactly the
 * bytes of the per-matrix function. `items` is a HOST array in both variants; for
 * mq_cuda_quantize_batched every pointer in it is a device pointer and the whole batch is ONE
 * kernel launch on `stream`, asynchronous (the descriptors are uploaded from cached pinned
 * memory), except for int4, which waits for the kernel once to report an fp16 scale overflow
 * (MQ_ERR_RANGE) as mq_cuda_quantize_int4 does. Errors name the item index. */
mq_status mq_cpu_quantize_batched(mq_format format, mq_dtype dtype, const mq_quant_item* items,
                                  int32_t n);
mq_status mq_cuda_quantize_batched(mq_format format, mq_dtype dtype, const mq_quant_item* items,
                                   int32_t n, mq_stream_t stream);

/* ---- dequantize to float32 [rows, cols] --------------------------------------------------- */

mq_status mq_cpu_dequantize_fp8(const uint8_t* q, int64_t rows, int64_t cols, const float* scales,
                                int32_t per_row, float* out);
mq_status mq_cuda_dequantize_fp8(const uint8_t* q, int64_t rows, int64_t cols, const float* scales,
                                 int32_t per_row, float* out, mq_stream_t stream);
mq_status mq_cpu_dequantize_nvfp4(const uint8_t* packed, const uint8_t* block_scales, float scale2,
                                  int64_t rows, int64_t cols, float* out);
mq_status mq_cuda_dequantize_nvfp4(const uint8_t* packed, const uint8_t* block_scales, float scale2,
                                   int64_t rows, int64_t cols, float* out, mq_stream_t stream);
mq_status mq_cpu_dequantize_fp8_block(const uint8_t* q, const float* tile_scales, int64_t rows,
                                      int64_t cols, float* out);
mq_status mq_cuda_dequantize_fp8_block(const uint8_t* q, const float* tile_scales, int64_t rows,
                                       int64_t cols, float* out, mq_stream_t stream);
/* out[o, i] = (q - 8) * scale, q from qweight, scale from `scales` (zero point 8, GPTQ v1). */
mq_status mq_cpu_dequantize_int4(const int32_t* qweight, const uint16_t* scales, int64_t rows,
                                 int64_t cols, float* out);
mq_status mq_cuda_dequantize_int4(const int32_t* qweight, const uint16_t* scales, int64_t rows,
                                  int64_t cols, float* out, mq_stream_t stream);

/* ---- FP8 block sources (DeepSeek-V3/R1, Kimi-K2 releases; docs/formats.md) ----------------
 * out[r, c] = bf16(float(e4m3 q[r, c]) * tile_scales[r / 128, c / 128]), rounded to nearest even:
 * the bf16 weight DeepSeek's own conversion writes. tile_scales is [ceil(rows/128),
 * ceil(cols/128)] float32; out holds bf16 bits. */
mq_status mq_cpu_dequantize_fp8_block_bf16(const uint8_t* q, const float* tile_scales, int64_t rows,
                                           int64_t cols, uint16_t* out);
mq_status mq_cuda_dequantize_fp8_block_bf16(const uint8_t* q, const float* tile_scales,
                                            int64_t rows, int64_t cols, uint16_t* out,
                                            mq_stream_t stream);

/* ---- MXFP4 sources (GPT-OSS releases; docs/formats.md) -------------------------------------
 * out[r, c] = bf16 bits of e2m1(nibble) * 2^(scales[r, c / 32] - 127), exact (numerics.h,
 * mxfp4_to_bf16): the nibble of element c is the low one of byte blocks[r, c / 2] for even c, the
 * high one for odd c. blocks holds rows * cols / 2 bytes, scales rows * cols / 32;
 * cols % 32 == 0. */
mq_status mq_cpu_dequantize_mxfp4_bf16(const uint8_t* blocks, const uint8_t* scales, int64_t rows,
                                       int64_t cols, uint16_t* out);
mq_status mq_cuda_dequantize_mxfp4_bf16(const uint8_t* blocks, const uint8_t* scales, int64_t rows,
                                        int64_t cols, uint16_t* out, mq_stream_t stream);
/* *amax = max |value| that mq_cpu_dequantize_mxfp4_bf16 gives over `rows` rows of `nblk` blocks,
 * read from the codes without decoding them (a float; Inf where a value overflows bf16, NaN when
 * a scale read is 255). Row r's 16-byte blocks start at blocks + r * pitch * 16, its scales at
 * scales + r * pitch (pitch >= nblk: a column range of a wider matrix, or pitch = 2 * width for
 * every other row of an interleaved gate/up tensor). CPU only: the sources it reads are mapped. */
mq_status mq_cpu_mxfp4_amax(const uint8_t* blocks, const uint8_t* scales, int64_t rows,
                            int64_t nblk, int64_t pitch, float* amax);

/* NVFP4 of bf16 w [rows, cols] (cols % 16 == 0) with weight_scale_2 = `scale2`, a power of two,
 * keeping exactly every 16-block whose values are e2m1 codes times one power of two 2^g for which
 * e4m3 holds 2^g / scale2 (2^-9 .. 2^8): block scale 2^g / scale2, each code the value / 2^g (the
 * smallest such g above amax / 6, or up to three more). An MXFP4 source's values are of that form
 * (ModelOpt's cast of MXFP4 to NVFP4 keeps them too). Other blocks take mq_cpu_quantize_nvfp4's
 * rule with the same scale2; *requantized_blocks counts them. Layout as mq_cpu_quantize_nvfp4. */
mq_status mq_cpu_quantize_nvfp4_exact(const uint16_t* w, int64_t rows, int64_t cols, float scale2,
                                      uint8_t* packed, uint8_t* block_scales,
                                      int64_t* requantized_blocks);

/* 1 when this build has CUDA kernels and a CUDA device is visible. */
int32_t mq_cuda_available(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOEQUANT_KERNELS_KERNELS_H_ */
