// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

/*
 * diffcoll: the communication layer of multi-GPU diffusion inference.
 *
 * This is the only public header. It is plain C99 and is usable from C, C++,
 * SWIG and bindgen. Every function returns a diffcoll_status_t; on failure
 * diffcoll_last_error() returns a thread-local message that says what went
 * wrong. No C++ exception ever crosses this boundary.
 *
 * Ownership and threads, for every function below unless it says otherwise:
 *  - A communicator is used by one thread at a time (as with NCCL); distinct
 *    communicators are independent and may be used from different threads.
 *    Its operations on CUDA tensors share its device staging memory and
 *    counters, so they must also run in order on the device: one stream, or
 *    streams ordered by events.
 *  - Tensor descriptors are read during the call only; diffcoll keeps no
 *    pointer to them. The memory they describe must stay valid until the call
 *    returns (host tensors) or until the stream reaches the operation (CUDA
 *    tensors).
 *  - Handles returned through an out-pointer are owned by the caller and are
 *    released by the matching destroy function.
 */
#ifndef DIFFCOLL_DIFFCOLL_H_
#define DIFFCOLL_DIFFCOLL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the functions the library exports (everything else is hidden). */
#if defined(__GNUC__) || defined(__clang__)
#define DIFFCOLL_API __attribute__((visibility("default")))
#else
#define DIFFCOLL_API
#endif

/** Library version this header describes. */
#define DIFFCOLL_VERSION_MAJOR 0
#define DIFFCOLL_VERSION_MINOR 1 /**< Minor version of the library this header describes. */
#define DIFFCOLL_VERSION_PATCH 0 /**< Patch level of the library this header describes. */
/** The version as one number: major * 10000 + minor * 100 + patch. */
#define DIFFCOLL_VERSION                                               \
  (DIFFCOLL_VERSION_MAJOR * 10000 + DIFFCOLL_VERSION_MINOR * 100 +     \
   DIFFCOLL_VERSION_PATCH)
/** ABI major version: the number in the soname (libdiffcoll.so.0). */
#define DIFFCOLL_ABI_VERSION 0
/** Most dimensions a tensor descriptor can have. */
#define DIFFCOLL_MAX_DIMS 8

/** Result of every diffcoll call. */
typedef enum diffcoll_status_t {
  DIFFCOLL_SUCCESS = 0,              /**< The call did what it was asked. */
  DIFFCOLL_ERR_INVALID_ARGUMENT = 1, /**< A bad argument: null pointer, bad shape, dtype, rank, overlapping tensor. */
  DIFFCOLL_ERR_INVALID_HANDLE = 2,   /**< A null, unknown or already destroyed handle. */
  DIFFCOLL_ERR_UNSUPPORTED = 3,      /**< Valid but not supported here, e.g. a CUDA tensor on a host-only communicator. */
  DIFFCOLL_ERR_MISMATCH = 4,         /**< Ranks passed different shapes, dtypes, strides or ops (DIFFCOLL_CHECK=1). */
  DIFFCOLL_ERR_TIMEOUT = 5,          /**< A blocking call ran past the communicator's timeout. */
  DIFFCOLL_ERR_REMOTE = 6,           /**< A peer failed or went away; the communicator is unusable afterwards. */
  DIFFCOLL_ERR_SYSTEM = 7,           /**< The operating system, a store or the transport failed. */
  DIFFCOLL_ERR_OUT_OF_MEMORY = 8,    /**< Host or device memory could not be allocated. */
  DIFFCOLL_ERR_CUDA = 9,             /**< A CUDA runtime call failed. */
  DIFFCOLL_ERR_NCCL = 10,            /**< An NCCL call failed. */
  DIFFCOLL_ERR_IN_CAPTURE = 11,      /**< The call needs work that is not allowed inside a CUDA graph capture. */
  DIFFCOLL_ERR_VERSION = 12,         /**< An unknown API or struct version was requested. */
  DIFFCOLL_ERR_INTERNAL = 13         /**< A bug in diffcoll; please report it with diffcoll_last_error(). */
} diffcoll_status_t;

/** Element types. Values are fixed and never reused. */
typedef enum diffcoll_dtype_t {
  DIFFCOLL_FLOAT16 = 1,  /**< IEEE 754 binary16 */
  DIFFCOLL_BFLOAT16 = 2, /**< bfloat16 (8-bit exponent, 7-bit mantissa) */
  DIFFCOLL_FLOAT32 = 3, /**< IEEE 754 binary32 */
  DIFFCOLL_FLOAT64 = 4, /**< IEEE 754 binary64 */
  DIFFCOLL_INT8 = 5, /**< signed 8-bit integer */
  DIFFCOLL_UINT8 = 6, /**< unsigned 8-bit integer */
  DIFFCOLL_INT32 = 7, /**< signed 32-bit integer */
  DIFFCOLL_INT64 = 8 /**< signed 64-bit integer */
} diffcoll_dtype_t;

/** Where a tensor lives; the values are DLPack's device types. */
typedef enum diffcoll_device_type_t {
  DIFFCOLL_DEVICE_CPU = 1, /**< Host memory (DLPack's kDLCPU). */
  DIFFCOLL_DEVICE_CUDA = 2 /**< CUDA device memory (DLPack's kDLCUDA). */
} diffcoll_device_type_t;

/** Reduction operators. */
typedef enum diffcoll_red_op_t {
  DIFFCOLL_SUM = 0, /**< Elementwise sum. */
  DIFFCOLL_PROD = 1, /**< Elementwise product. */
  DIFFCOLL_MIN = 2, /**< Elementwise minimum. */
  DIFFCOLL_MAX = 3, /**< Elementwise maximum. */
  /** Sum divided by the group size (integer division for integer dtypes). */
  DIFFCOLL_AVG = 4,
  /** Each rank's input is multiplied by its own scalar, then summed. */
  DIFFCOLL_PREMUL_SUM = 5
} diffcoll_red_op_t;

/**
 * A tensor as it crosses the ABI (DLPack's conventions).
 *
 * Element (i0, ..., i{ndim-1}) lives at data + sum(ik * strides[k]) elements.
 * Strides are in elements, not bytes, and may be any value, zero and negative
 * included; tensors whose elements overlap are rejected for writes. ndim may
 * be 0 (a scalar); only the first ndim entries of shape and strides are read.
 * dtype takes a diffcoll_dtype_t and device_type a diffcoll_device_type_t;
 * device_id is the CUDA ordinal (ignored for CPU tensors).
 */
typedef struct diffcoll_tensor_t {
  void* data; /**< Address of the element at index (0, ..., 0). */
  int32_t dtype; /**< Element type: a diffcoll_dtype_t value. */
  int32_t device_type; /**< Where the memory lives: a diffcoll_device_type_t value. */
  int32_t device_id; /**< CUDA device ordinal; ignored for CPU tensors. */
  int32_t ndim; /**< Number of dimensions, 0 (a scalar) to DIFFCOLL_MAX_DIMS. */
  int64_t shape[DIFFCOLL_MAX_DIMS]; /**< Extent of each dimension (first ndim entries). */
  int64_t strides[DIFFCOLL_MAX_DIMS]; /**< Step between neighbours along each dimension, in elements, not bytes (first ndim entries). */
} diffcoll_tensor_t;

/** An opaque communicator: a group of ranks with a host side and, when built
 * with CUDA and created with a device, a device side. */
typedef struct diffcoll_comm diffcoll_comm_t;

/**
 * Options for creating a world communicator. Always start from
 * DIFFCOLL_CONFIG_INIT so that fields added later get their defaults.
 */
typedef struct diffcoll_config_t {
  /** sizeof(diffcoll_config_t) as the caller compiled it. */
  size_t struct_size;
  /** Bound on every blocking call of this communicator and of the groups made
   * from it, in milliseconds (rendezvous, collectives, waits). > 0. */
  int32_t timeout_ms;
  /** CUDA device for the device side, or -1 for a host-only communicator. */
  int32_t device_id;
  /** 1: verify on every collective that all ranks passed the same shape,
   * dtype, strides and arguments; 0: do not; -1: read the DIFFCOLL_CHECK
   * environment variable. */
  int32_t check;
  /** Address this rank listens on (a host name or IP). NULL: the variable
   * DIFFCOLL_HOST, else the interface named by DIFFCOLL_SOCKET_IFNAME, else
   * 127.0.0.1 for local:// rendezvous, else the address the machine's host
   * name resolves to. The string is copied. */
  const char* host;
} diffcoll_config_t;

/** Default configuration: 30 s timeout, host only, check from environment. */
#define DIFFCOLL_CONFIG_INIT {sizeof(diffcoll_config_t), 30000, -1, -1, NULL}

/** Traffic counters of one communicator (see diffcoll_comm_get_stats). */
typedef struct diffcoll_stats_t {
  /** sizeof(diffcoll_stats_t) as the caller compiled it. */
  size_t struct_size;
  /** Bytes gathered from strided tensors into staging buffers. */
  uint64_t bytes_packed;
  /** Bytes scattered from staging buffers back into strided tensors. */
  uint64_t bytes_unpacked;
  /** Operations that completed on this communicator. */
  uint64_t ops;
} diffcoll_stats_t;

/** Initializer of diffcoll_stats_t: sets struct_size, counters zero. */
#define DIFFCOLL_STATS_INIT {sizeof(diffcoll_stats_t), 0, 0, 0}

/** Colour that makes diffcoll_comm_split return no communicator. */
#define DIFFCOLL_SPLIT_NOCOLOR (-1)

/* ------------------------------------------------------------------------ */
/* Library                                                                   */
/* ------------------------------------------------------------------------ */

/** The version of the library actually loaded, as DIFFCOLL_VERSION encodes it.
 * Thread-safe. */
DIFFCOLL_API uint32_t diffcoll_version(void);

/** A static English description of a status code; never NULL. Thread-safe. */
DIFFCOLL_API const char* diffcoll_status_string(diffcoll_status_t status);

/** The message of the last failed call on this thread ("" if none). The
 * string belongs to diffcoll and stays valid until the next diffcoll call on
 * the same thread. */
DIFFCOLL_API const char* diffcoll_last_error(void);

/* ------------------------------------------------------------------------ */
/* Communicators                                                             */
/* ------------------------------------------------------------------------ */

/**
 * Create the world communicator of `size` ranks; every rank calls it with its
 * own `rank` and the same `rendezvous`. Blocks until all ranks have joined or
 * the timeout passes.
 *
 * `rendezvous` names the store the ranks meet through:
 *  - "local://NAME": an in-process store, for ranks that are threads of one
 *    process;
 *  - "file:///DIR": a directory shared by the ranks' processes (created if
 *    missing; use a fresh one per run);
 *  - "redis://HOST:PORT[/PREFIX]": a Redis server, for ranks on several
 *    machines (use a fresh PREFIX per run: keys are never overwritten).
 *
 * @param config NULL for DIFFCOLL_CONFIG_INIT.
 * @param out    receives the communicator; set to NULL on failure.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_create(const char* rendezvous, int32_t rank,
                                       int32_t size,
                                       const diffcoll_config_t* config,
                                       diffcoll_comm_t** out);

/**
 * Create the world communicator from environment variables in torchrun's
 * style: RANK, WORLD_SIZE and DIFFCOLL_STORE (a rendezvous string as for
 * diffcoll_comm_create). LOCAL_RANK picks the CUDA device when
 * config->device_id is -2.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_create_from_env(const diffcoll_config_t* config,
                                                diffcoll_comm_t** out);

/**
 * Split `parent` into groups by colour: ranks that pass the same colour form
 * one group, ordered by `key` (ties by parent rank). Collective over every rank
 * of `parent`. A rank passing DIFFCOLL_SPLIT_NOCOLOR gets *out = NULL.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_split(diffcoll_comm_t* parent, int32_t color,
                                      int32_t key, diffcoll_comm_t** out);

/**
 * Create a group of the listed global (world) ranks, all members of `parent`;
 * local rank i is global rank ranks[i]. Collective over the listed ranks only;
 * a rank not in the list may call it too and gets *out = NULL at once.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_create_group(diffcoll_comm_t* parent,
                                             const int32_t* ranks,
                                             int32_t count,
                                             diffcoll_comm_t** out);

/**
 * Create a world communicator around an NCCL communicator the caller already
 * has (e.g. PyTorch's): rank, size and CUDA device come from `nccl_comm` (an
 * ncclComm_t), the host side meets at `rendezvous` as for
 * diffcoll_comm_create. diffcoll never destroys `nccl_comm`; it must outlive
 * the returned communicator. Collective over the NCCL communicator's ranks.
 * DIFFCOLL_ERR_UNSUPPORTED in a build without CUDA.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_wrap_nccl(void* nccl_comm, const char* rendezvous,
                                                       const diffcoll_config_t* config,
                                                       diffcoll_comm_t** out);

/** Destroy a communicator. Not collective: safe on every rank in any order;
 * peers still using it see DIFFCOLL_ERR_REMOTE. NULL is accepted. */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_destroy(diffcoll_comm_t* comm);

/** Number of ranks in the communicator. */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_size(const diffcoll_comm_t* comm, int32_t* size);

/** This rank's local rank in the communicator. */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_rank(const diffcoll_comm_t* comm, int32_t* rank);

/** The global (world) rank of `local_rank` in the communicator. */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_global_rank(const diffcoll_comm_t* comm,
                                            int32_t local_rank,
                                            int32_t* global_rank);

/** Grow the communicator's staging arenas (host, and device if it has a device
 * side) to at least `bytes` now, so that no later operation needs to allocate:
 * inside a CUDA graph capture an operation that would need more fails with
 * DIFFCOLL_ERR_IN_CAPTURE. Local (not collective). */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_reserve(diffcoll_comm_t* comm, size_t bytes);

/** Read the traffic counters. `stats->struct_size` must be set by the caller
 * (use DIFFCOLL_STATS_INIT). */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_get_stats(const diffcoll_comm_t* comm,
                                          diffcoll_stats_t* stats);

/** Set the traffic counters back to zero. */
DIFFCOLL_API diffcoll_status_t diffcoll_comm_reset_stats(diffcoll_comm_t* comm);

/* ------------------------------------------------------------------------ */
/* Collectives                                                               */
/*                                                                           */
/* All of them are collective over the communicator: every rank calls the    */
/* same operation in the same order with the same shape, dtype and strides   */
/* (strides may differ where a function says so). Roots and peers are local  */
/* ranks. Tensors may have any strides: contiguous and dense tensors (a      */
/* permutation of a contiguous block) are used in place with no copy; those  */
/* with gaps are packed once and unpacked back into the caller's memory.     */
/* `stream` is a cudaStream_t for CUDA tensors and is ignored for host       */
/* tensors (pass NULL). Host operations return when they are complete.       */
/* A rank alone already holds the result of all_reduce and reduce with any   */
/* op but DIFFCOLL_PREMUL_SUM, and of broadcast: those calls validate their  */
/* arguments and enqueue nothing (NCCL does the same).                       */
/* ------------------------------------------------------------------------ */

/** Reduce `tensor` across ranks in place. `scalar` is this rank's factor for
 * DIFFCOLL_PREMUL_SUM and is ignored otherwise. */
DIFFCOLL_API diffcoll_status_t diffcoll_all_reduce(diffcoll_comm_t* comm,
                                      const diffcoll_tensor_t* tensor,
                                      int32_t op, double scalar, void* stream);

/** Copy `tensor` from `root` to every rank, in place. */
DIFFCOLL_API diffcoll_status_t diffcoll_broadcast(diffcoll_comm_t* comm,
                                     const diffcoll_tensor_t* tensor,
                                     int32_t root, void* stream);

/** Reduce `tensor` across ranks into root's `tensor`, in place. The tensors
 * of the other ranks are left unchanged. */
DIFFCOLL_API diffcoll_status_t diffcoll_reduce(diffcoll_comm_t* comm,
                                  const diffcoll_tensor_t* tensor, int32_t op,
                                  double scalar, int32_t root, void* stream);

/** Concatenate every rank's `input` along `axis` into `output`, whose shape is
 * the input's with dimension `axis` multiplied by the group size. Input and
 * output may have different strides. */
DIFFCOLL_API diffcoll_status_t diffcoll_all_gather(diffcoll_comm_t* comm,
                                      const diffcoll_tensor_t* input,
                                      const diffcoll_tensor_t* output,
                                      int32_t axis, void* stream);

/** Reduce `input` across ranks and leave on rank r the r-th of the group-size
 * equal blocks along `axis` in `output`. input.shape[axis] must be the group
 * size times output.shape[axis]. `input` is not modified unless it overlaps
 * `output`. */
DIFFCOLL_API diffcoll_status_t diffcoll_reduce_scatter(diffcoll_comm_t* comm,
                                          const diffcoll_tensor_t* input,
                                          const diffcoll_tensor_t* output,
                                          int32_t axis, int32_t op,
                                          double scalar, void* stream);

/** Split `input` along `scatter_axis` into group-size blocks, send block j to
 * rank j, and concatenate the blocks received from ranks 0..P-1 along
 * `gather_axis` of `output`. output.shape equals input.shape except that
 * dimension scatter_axis is divided by P and dimension gather_axis multiplied
 * by P (equal axes: same shape). */
DIFFCOLL_API diffcoll_status_t diffcoll_all_to_all(diffcoll_comm_t* comm,
                                      const diffcoll_tensor_t* input,
                                      const diffcoll_tensor_t* output,
                                      int32_t scatter_axis,
                                      int32_t gather_axis, void* stream);

/** Concatenate every rank's `input` along `axis` into root's `output` (shape
 * as for diffcoll_all_gather). `output` is read on the root only and may be
 * NULL elsewhere. */
DIFFCOLL_API diffcoll_status_t diffcoll_gather(diffcoll_comm_t* comm,
                                  const diffcoll_tensor_t* input,
                                  const diffcoll_tensor_t* output, int32_t axis,
                                  int32_t root, void* stream);

/** Split root's `input` along `axis` into group-size blocks; rank r receives
 * block r in `output`. `input` is read on the root only and may be NULL
 * elsewhere. */
DIFFCOLL_API diffcoll_status_t diffcoll_scatter(diffcoll_comm_t* comm,
                                   const diffcoll_tensor_t* input,
                                   const diffcoll_tensor_t* output,
                                   int32_t axis, int32_t root, void* stream);

/** Send `tensor` to local rank `peer`, which calls diffcoll_recv with the same
 * shape and dtype (the strides of the two sides may differ: elements travel in
 * row-major order). Blocking unless inside diffcoll_group_start/end. */
DIFFCOLL_API diffcoll_status_t diffcoll_send(diffcoll_comm_t* comm,
                                const diffcoll_tensor_t* tensor, int32_t peer,
                                void* stream);

/** Receive into `tensor` from local rank `peer` (see diffcoll_send). */
DIFFCOLL_API diffcoll_status_t diffcoll_recv(diffcoll_comm_t* comm,
                                const diffcoll_tensor_t* tensor, int32_t peer,
                                void* stream);

/** Start a group of point-to-point operations: diffcoll_send and
 * diffcoll_recv calls until diffcoll_group_end are only recorded, then posted
 * together, so exchanges in both directions cannot deadlock. Groups do not
 * nest; other operations inside a group fail with
 * DIFFCOLL_ERR_INVALID_ARGUMENT. */
DIFFCOLL_API diffcoll_status_t diffcoll_group_start(diffcoll_comm_t* comm);

/** Post the recorded point-to-point operations and wait for all of them (host
 * tensors) or enqueue them on their stream (CUDA tensors). The tensors
 * recorded must stay valid until this call returns. */
DIFFCOLL_API diffcoll_status_t diffcoll_group_end(diffcoll_comm_t* comm);

/** Return once every rank has entered the barrier. With a non-NULL `stream`
 * on a communicator that has a device side, the barrier is stream-ordered
 * instead (an NCCL all-reduce of one element): work queued after it on
 * `stream` starts on no rank before every rank's stream has reached it, and
 * the call returns without waiting. */
DIFFCOLL_API diffcoll_status_t diffcoll_barrier(diffcoll_comm_t* comm, void* stream);

/* ------------------------------------------------------------------------ */
/* Classifier-free guidance (CFG) policy                                     */
/*                                                                           */
/* A policy describes the guidance branches of a denoiser (cond, uncond,     */
/* perturbed, modality, ...) and the guidance formula                        */
/*     out = pred[base] + sum_k scale_k * (pred[plus_k] - pred[minus_k])     */
/* which is the linear form out = sum_i w_i * pred_i with                    */
/* w[base] += 1, w[plus_k] += scale_k, w[minus_k] -= scale_k. Examples:      */
/*  - standard CFG, uncond + g * (cond - uncond): base = uncond,             */
/*    one term {g, cond, uncond};                                            */
/*  - multi-term guidance, cond + (g-1)(cond - uncond)                       */
/*    + s_stg (cond - perturbed) + s_mod (cond - modality): base = cond,     */
/*    terms {g-1, cond, uncond}, {s_stg, cond, perturbed},                   */
/*    {s_mod, cond, modality}.                                               */
/* The combined prediction is optionally post-processed (guidance rescale,   */
/* CFG normalization, CFG-zero*; see diffcoll_cfg_options_t).                */
/*                                                                           */
/* Predictions are float16, bfloat16 or float32 tensors of one shape whose   */
/* dimension 0 is the batch ("per sample" below means per index of          */
/* dimension 0; a 0-d tensor is one sample), in host or CUDA memory.         */
/*                                                                           */
/* A policy is immutable once created: it may be used by several threads at  */
/* once (queries and combines), but must not be destroyed while in use.      */
/* ------------------------------------------------------------------------ */

/** An opaque CFG policy (see diffcoll_cfg_policy_create). */
typedef struct diffcoll_cfg_policy diffcoll_cfg_policy_t;

/** What a guidance branch is. Values are fixed and never reused; 0 is not a
 * role, so that a zero-initialised descriptor is rejected. */
typedef enum diffcoll_cfg_role_t {
  DIFFCOLL_CFG_COND = 1,      /**< Conditional prediction (the prompt). Post-processing needs exactly one. */
  DIFFCOLL_CFG_UNCOND = 2,    /**< Unconditional / negative-prompt prediction. CFG-zero* needs exactly one. */
  DIFFCOLL_CFG_PERTURBED = 3, /**< Perturbed prediction, e.g. spatio-temporal guidance (STG) skipping layers. */
  DIFFCOLL_CFG_MODALITY = 4,  /**< Prediction with one modality dropped (e.g. image-only, audio-only). */
  DIFFCOLL_CFG_OTHER = 5      /**< Any other branch. */
} diffcoll_cfg_role_t;

/** One guidance branch, as passed to diffcoll_cfg_policy_create. */
typedef struct diffcoll_cfg_branch_t {
  /** Unique, non-empty name ("cond", "uncond", ...); copied by the policy. */
  const char* name;
  /** A diffcoll_cfg_role_t value. */
  int32_t role;
} diffcoll_cfg_branch_t;

/** One guidance term: scale * (pred[plus] - pred[minus]). */
typedef struct diffcoll_cfg_term_t {
  /** Guidance scale of the term (finite). */
  double scale;
  /** Index of the branch added. */
  int32_t plus;
  /** Index of the branch subtracted (different from plus). */
  int32_t minus;
} diffcoll_cfg_term_t;

/** Arithmetic order of the combine (see diffcoll_cfg_options_t::order). */
typedef enum diffcoll_cfg_order_t {
  /** As written: acc = pred[base]; acc += scale_k * (pred[plus_k] - pred[minus_k]) for
   * k = 0, 1, ... in float32, rounded once to the dtype at the end: the formula of
   * e.g. uncond + g * (cond - uncond) with one rounding (what a fused kernel computes;
   * PyTorch eager rounds after every operation: DIFFCOLL_CFG_ORDER_TORCH). */
  DIFFCOLL_CFG_ORDER_SERIAL = 0,
  /** As a weighted sum with a rounding after every operation, in branch index
   * order: acc = round(w_0 * pred_0); acc = round(acc + round(w_i * pred_i)),
   * i = 1..n-1, products and sums in float32, round() to the dtype, e.g.
   * g * cond + (1 - g) * uncond. This is exactly what the parallel combine
   * computes when each rank holds one branch, hence bitwise reproducible
   * across serial and parallel runs (see diffcoll_cfg_combine_parallel). */
  DIFFCOLL_CFG_ORDER_PARALLEL = 1,
  /** What PyTorch eager computes for the same formula written in Python,
   * acc = pred[base]; acc = acc + scale_k * (pred[plus_k] - pred[minus_k]), with
   * tensors of the dtype and Python float scales: every operation in float32
   * (PyTorch's opmath; scales as float32) and rounded to the dtype, e.g. bf16
   * pos = 1.0, neg = 0.1, scale 7 gives 6.375 where SERIAL gives 6.40625.
   * Post-processing follows the engines' code in the dtype: CFG-zero* as
   * diffusers' cfg_zero_star_scale (float32 scale rounded to the dtype, then
   * uncond * alpha), CFG normalization then guidance rescale as SGLang's
   * CFGPolicy (diffusers' rescale_noise_cfg). The elementwise chain equals
   * PyTorch bit for bit; per-sample statistics (std, norms, CFG-zero* sums)
   * are computed in double and rounded where PyTorch rounds its float32
   * result, so they may differ by one unit in the last place of that result
   * (docs/CFG.md). Across ranks every rank gathers the predictions and runs
   * this chain (see diffcoll_cfg_combine_parallel). */
  DIFFCOLL_CFG_ORDER_TORCH = 2
} diffcoll_cfg_order_t;

/**
 * Options of a CFG policy. Always start from DIFFCOLL_CFG_OPTIONS_INIT so that
 * fields added later get their defaults (everything off, SERIAL order).
 *
 * Post-processing runs on the combined prediction in this order:
 *  1. CFG-zero* (zero_star): per sample b, s_b = <cond_b, uncond_b> /
 *     (||uncond_b||^2 + 1e-8) (in double) replaces uncond by s_b * uncond in
 *     the formula before the combine.
 *  2. Guidance rescale (rescale_phi > 0; Lin et al. 2023, section 3.4):
 *     r = out * std(cond)/std(out); out = phi * r + (1 - phi) * out, with the
 *     std per sample over all other dimensions and Bessel's correction (N-1),
 *     as torch.std; a sample whose std(out) is 0 is left unchanged.
 *  3. CFG normalization (norm_k > 0): if ||out|| > k * ||cond|| then
 *     out *= k * ||cond|| / ||out||, L2 norms over the whole tensor (all samples
 *     together), or per sample when norm_per_sample is set.
 *  4. Zero init (zero_init_steps = n > 0): the output is all zeros while the
 *     combine's step < n (independent of zero_star).
 * Statistics accumulate in double; rescale and normalization are folded into
 * one per-sample factor applied in float32 (one rounding). The TORCH order
 * instead computes them as PyTorch engines do, in the dtype, normalization
 * before rescale (see DIFFCOLL_CFG_ORDER_TORCH).
 */
typedef struct diffcoll_cfg_options_t {
  /** sizeof(diffcoll_cfg_options_t) as the caller compiled it. */
  size_t struct_size;
  /** A diffcoll_cfg_order_t value. Default DIFFCOLL_CFG_ORDER_SERIAL. */
  int32_t order;
  /** Nonzero: CFG-zero* (needs exactly one COND and one UNCOND branch). Default 0. */
  int32_t zero_star;
  /** Guidance rescale strength phi in [0, 1]; 0: off (default). Needs one COND branch
   * and at least 2 elements per sample. */
  double rescale_phi;
  /** CFG normalization bound k >= 0; 0: off (default). Needs one COND branch. */
  double norm_k;
  /** Nonzero: CFG normalization per sample instead of over the whole tensor. Default 0. */
  int32_t norm_per_sample;
  /** Output zeroed while step < zero_init_steps (>= 0). Default 0 (never). */
  int32_t zero_init_steps;
} diffcoll_cfg_options_t;

/** Default CFG options: SERIAL order, no post-processing. */
#define DIFFCOLL_CFG_OPTIONS_INIT \
  {sizeof(diffcoll_cfg_options_t), DIFFCOLL_CFG_ORDER_SERIAL, 0, 0.0, 0.0, 0, 0}

/**
 * Create a CFG policy. Local (not collective); thread-safe.
 *
 * @param branches     num_branches >= 1 descriptors; names are copied.
 * @param base         index of the base branch of the formula.
 * @param terms        num_terms >= 0 guidance terms (NULL if none); every index
 *                     within 0..num_branches-1, plus != minus.
 * @param options      NULL for DIFFCOLL_CFG_OPTIONS_INIT.
 * @param out          receives the policy, owned by the caller (release with
 *                     diffcoll_cfg_policy_destroy); set to NULL on failure.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT for an index out of range, a duplicate or
 *         empty name, an unknown role or order, an option out of range, or
 *         post-processing without the COND / UNCOND branch it needs.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_policy_create(const diffcoll_cfg_branch_t* branches,
                                                          int32_t num_branches, int32_t base,
                                                          const diffcoll_cfg_term_t* terms,
                                                          int32_t num_terms,
                                                          const diffcoll_cfg_options_t* options,
                                                          diffcoll_cfg_policy_t** out);

/** Destroy a policy. NULL is accepted. Names returned by
 * diffcoll_cfg_policy_branch become invalid. */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_policy_destroy(diffcoll_cfg_policy_t* policy);

/** Number of branches of the policy. */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_policy_num_branches(const diffcoll_cfg_policy_t* policy,
                                                                int32_t* num_branches);

/** Name and role of branch `index` (0..num_branches-1). `name` (may be NULL)
 * receives a string owned by the policy, valid until it is destroyed; `role`
 * (may be NULL) a diffcoll_cfg_role_t value. */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_policy_branch(const diffcoll_cfg_policy_t* policy,
                                                          int32_t index, const char** name,
                                                          int32_t* role);

/** Index of the branch called `name`. An unknown name is
 * DIFFCOLL_ERR_INVALID_ARGUMENT (the message lists the policy's branches) and
 * sets *index to -1. */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_policy_find_branch(const diffcoll_cfg_policy_t* policy,
                                                               const char* name, int32_t* index);

/** The linear weights w_0..w_{n-1} of the formula (before CFG-zero*, whose
 * scale depends on the data). `count` must equal the number of branches. */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_policy_weights(const diffcoll_cfg_policy_t* policy,
                                                           double* weights, int32_t count);

/** The policy's options. `options->struct_size` must be set by the caller
 * (use DIFFCOLL_CFG_OPTIONS_INIT); fields beyond it are not written. */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_policy_get_options(const diffcoll_cfg_policy_t* policy,
                                                               diffcoll_cfg_options_t* options);

/**
 * Which branches CFG rank `cfg_rank` of a CFG group of `degree` ranks runs.
 * Deterministic; every rank can compute every rank's share.
 *
 * Rank r runs the contiguous block of branch indices
 * [floor(r*n/d), floor((r+1)*n/d)) (n branches, d = degree): blocks differ in
 * size by at most one; with d > n, d - n ranks run nothing (they still call
 * diffcoll_cfg_combine_parallel, with local_count 0, and run no forward
 * pass); with d < n a rank runs several branches (and may batch them).
 * Exception, CFG-zero* on and d < n: cond and uncond go to the same rank,
 * because s = <cond, uncond> needs both. The n - 1 units {cond, uncond},
 * then every other branch in index order, are split into blocks by the same
 * formula with n - 1 units in place of n branches: the rank of
 * {cond, uncond} runs at most ceil(n/d) branches and no rank is idle. With d >= n, cond and uncond are
 * on different ranks and the combine gathers predictions instead (see
 * diffcoll_cfg_combine_parallel).
 *
 * @param branches receives the branch indices, ascending; may be NULL with
 *                 capacity 0 to ask only for the count.
 * @param capacity room in `branches`; too small is DIFFCOLL_ERR_INVALID_ARGUMENT
 *                 (with *count set to the room needed).
 * @param count    receives the number of branches of the rank (0 allowed).
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT for degree < 1 or cfg_rank outside
 *         0..degree-1.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_dispatch(const diffcoll_cfg_policy_t* policy,
                                                     int32_t degree, int32_t cfg_rank,
                                                     int32_t* branches, int32_t capacity,
                                                     int32_t* count);

/**
 * Combine all the predictions on this process ("serial" CFG).
 *
 * @param preds     num_preds (= number of branches) tensors in branch order,
 *                  same shape and dtype as `out`, any strides.
 * @param out       receives the combined, post-processed prediction; any
 *                  non-overlapping strides; may be one of `preds` (in place).
 * @param step      denoising step index (>= 0), for zero_init_steps.
 * @param stream    cudaStream_t for CUDA tensors; ignored for host tensors
 *                  (pass NULL). Host calls return when the result is written.
 *                  CUDA calls are stream-ordered on `stream` (on the tensors'
 *                  device), never synchronise the host and may be captured
 *                  into a CUDA graph; their staging is cudaMallocAsync /
 *                  cudaFreeAsync on `stream`. The result is bitwise the host
 *                  combine's. At most 32 branches and 32 terms on CUDA tensors
 *                  (DIFFCOLL_ERR_UNSUPPORTED beyond, and in a build without CUDA).
 * Not collective; thread-safe for distinct outputs.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_combine_serial(const diffcoll_cfg_policy_t* policy,
                                                           const diffcoll_tensor_t* preds,
                                                           int32_t num_preds,
                                                           const diffcoll_tensor_t* out,
                                                           int32_t step, void* stream);

/**
 * Combine predictions spread over the ranks of a CFG group ("CFG-parallel").
 * Collective over `comm`, whose size is the CFG degree and whose rank is the
 * CFG rank; every rank passes the same policy, shape, dtype and step
 * (strides may differ between ranks), and leaves the same combined,
 * post-processed prediction in its `out`.
 *
 * Each rank writes the PARALLEL-order weighted sum of its branches (negative
 * zeros if it has none: no dummy forward) into a dense image of `out`, and one
 * sum all-reduce over `comm` combines them. Guidance rescale and normalization
 * need statistics of the cond branch only: its rank computes them per sample,
 * and one all-reduce of B x 2 doubles shares them (whole tensors never
 * move for them). CFG-zero* needs <cond, uncond> per sample: when one rank
 * holds both (degree 1, or d < n, see diffcoll_cfg_dispatch) it computes the
 * scale itself and nothing more moves; otherwise no per-sample scalars can
 * give an inner product of tensors on different ranks, so the ranks all-gather
 * the predictions (each receives the d - 1 others' blocks: with d = 2 as many
 * bytes as the all-reduce it replaces, (d-1)/(2(d-1)/d) = d/2 times more for
 * larger d) and every rank runs the serial combine locally. So do the ranks
 * of a DIFFCOLL_CFG_ORDER_TORCH policy whose branches are on more than one
 * rank: no sum of partials rounds like PyTorch's serial chain. A group of one
 * rank runs the serial combine and communicates nothing.
 *
 * Serial and parallel results agree BITWISE at degree 1 and with the TORCH
 * order (any degree), and when the policy's order is
 * DIFFCOLL_CFG_ORDER_PARALLEL and either one rank holds every branch
 * (e.g. a single branch) or every rank holds at most one branch and at
 * most two ranks hold branches (n <= 2 <= d, e.g. d == n == 2): a sum of two
 * values is the same in either order, and ranks without a branch add -0, the
 * exact identity, whatever order the all-reduce adds in. The all-gather path
 * (CFG-zero* with cond and uncond on different ranks) agrees bitwise in both
 * orders and at any degree. Otherwise (SERIAL order, a rank with several
 * branches among several holders, or more than two ranks holding branches:
 * the ring all-reduce then associates the sum differently from branch index
 * order) they agree within the dtype's rounding error, a few units in the
 * last place of the largest term w_i * pred_i.
 *
 * @param comm         the CFG group.
 * @param local_preds  this rank's predictions, in the order
 *                     diffcoll_cfg_dispatch(policy, size, rank) lists their
 *                     branches; may be NULL when local_count is 0.
 * @param local_count  number of local predictions; must equal the dispatch
 *                     count (DIFFCOLL_ERR_INVALID_ARGUMENT otherwise).
 * @param out          receives the combined prediction; may be one of
 *                     `local_preds` (in place).
 * @param step         denoising step index (>= 0), the same on every rank;
 *                     while step < zero_init_steps nothing is communicated.
 * @param stream       cudaStream_t for CUDA tensors; NULL for host tensors.
 *                     CUDA tensors need a communicator with a device side;
 *                     the call is stream-ordered on `stream`, never
 *                     synchronises the host and may be captured into a CUDA
 *                     graph once the staging arena is large enough (call it
 *                     once before capturing, or diffcoll_comm_reserve;
 *                     DIFFCOLL_ERR_IN_CAPTURE otherwise). At most 32 local
 *                     predictions on CUDA tensors.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_cfg_combine_parallel(diffcoll_comm_t* comm,
                                                             const diffcoll_cfg_policy_t* policy,
                                                             const diffcoll_tensor_t* local_preds,
                                                             int32_t local_count,
                                                             const diffcoll_tensor_t* out,
                                                             int32_t step, void* stream);

/* ------------------------------------------------------------------------ */
/* Halo exchange and slabs (spatially parallel VAE decoding)                 */
/*                                                                           */
/* Ranks hold consecutive slabs of one activation, split along one tensor    */
/* axis (a 1-D chain of ranks) or two (a 2-D grid, rows x cols, row-major    */
/* over the communicator's ranks: rank = row * cols + col), each inside a    */
/* caller-allocated "padded" tensor: the slab (the interior) surrounded by   */
/* halo rows. An exchange fills every rank's halo so that its padded tensor  */
/* equals the matching window of the whole tensor padded once (by the        */
/* boundary modes below, along the row axis and the col axis). A convolution */
/* of each padded slab then gives exactly the rows of the convolution of the */
/* whole padded tensor. Slabs may be uneven (see diffcoll_split_extent).     */
/* ------------------------------------------------------------------------ */

/** How the halo beyond an end of the rank grid is filled. Values are fixed. */
typedef enum diffcoll_halo_boundary_t {
  /** Zeros (a convolution's zero padding). */
  DIFFCOLL_HALO_ZEROS = 0,
  /** Copies of the edge row of the interior (torch's 'replicate' padding). */
  DIFFCOLL_HALO_REPLICATE = 1,
  /** The rows next to the edge row, mirrored; the edge row itself is not
   * repeated (torch's 'reflect' padding): needs an interior of at least
   * width + 1 rows on the edge rank. */
  DIFFCOLL_HALO_REFLECT = 2,
  /** Wrap around: the halo comes from the rank at the other end of the grid
   * (torch's 'circular' padding); on a grid of one rank along that axis, from
   * the far end of the rank's own interior. Must be set at both ends of an
   * axis. */
  DIFFCOLL_HALO_CIRCULAR = 3,
  /** Leave the halo memory as it is: diffcoll never writes it. */
  DIFFCOLL_HALO_UNTOUCHED = 4
} diffcoll_halo_boundary_t;

/** An opaque halo exchange plan: a rank grid over one communicator, the split
 * axes, halo widths and boundary modes. Independent of tensor shapes: one plan
 * serves every tensor (every layer) with the same halo geometry. */
typedef struct diffcoll_halo_plan diffcoll_halo_plan_t;

/**
 * Geometry of a halo exchange. Always start from DIFFCOLL_HALO_CONFIG_INIT so
 * that fields added later get their defaults. "Rows" is the first grid axis
 * and "cols" the second, whatever tensor dimensions they split (H and W, or
 * T for a temporal chain). An axis whose grid extent is 1 and whose widths
 * are 0 is not used; an axis with a grid extent of 1 and nonzero widths is
 * padded by its boundary modes alone (CIRCULAR wraps within the rank).
 */
typedef struct diffcoll_halo_config_t {
  /** sizeof(diffcoll_halo_config_t) as the caller compiled it. */
  size_t struct_size;
  /** Ranks along the row axis; 0 (the default): the communicator's size
   * divided by grid_cols. grid_rows * grid_cols must equal that size. */
  int32_t grid_rows;
  /** Ranks along the col axis; 1 (the default) for a 1-D chain. */
  int32_t grid_cols;
  /** Tensor dimension split by the rows; negative counts from the end
   * (default -2: H of NCHW and NCTHW). */
  int32_t row_axis;
  /** Tensor dimension split by the cols; negative counts from the end
   * (default -1: W). Must differ from row_axis when both axes are used. */
  int32_t col_axis;
  /** Halo rows before the interior along the row axis (default 1), >= 0. */
  int32_t row_before;
  /** Halo rows after the interior along the row axis (default 1), >= 0. A
   * causal convolution uses row_before = k - 1, row_after = 0. */
  int32_t row_after;
  /** Halo rows before the interior along the col axis (default 0), >= 0. */
  int32_t col_before;
  /** Halo rows after the interior along the col axis (default 0), >= 0. */
  int32_t col_after;
  /** diffcoll_halo_boundary_t before the first grid row (default ZEROS). */
  int32_t row_boundary_before;
  /** diffcoll_halo_boundary_t after the last grid row (default ZEROS). */
  int32_t row_boundary_after;
  /** diffcoll_halo_boundary_t before the first grid column (default ZEROS). */
  int32_t col_boundary_before;
  /** diffcoll_halo_boundary_t after the last grid column (default ZEROS). */
  int32_t col_boundary_after;
  /** 1 (the default): fill the four corner blocks of a 2-D halo (from the
   * diagonal neighbours, or by the boundary modes); 0: never write them (for
   * stencils that do not read corners). */
  int32_t exchange_corners;
} diffcoll_halo_config_t;

/** Default halo geometry: a 1-D chain over all ranks along dimension -2 with
 * one halo row on each side and zero boundaries. */
#define DIFFCOLL_HALO_CONFIG_INIT                                         \
  {sizeof(diffcoll_halo_config_t), 0, 1, -2, -1, 1, 1, 0, 0,              \
   DIFFCOLL_HALO_ZEROS, DIFFCOLL_HALO_ZEROS, DIFFCOLL_HALO_ZEROS,          \
   DIFFCOLL_HALO_ZEROS, 1}

/**
 * Create a halo plan on `comm` (local: not collective, no communication).
 * Every rank of `comm` creates one with the same config. Validates the
 * config: grid_rows * grid_cols == comm size, widths >= 0, known boundary
 * modes, CIRCULAR at both ends of an axis or neither, distinct axes. The plan
 * refers to `comm`, which must outlive it; it is used, like `comm`, by one
 * thread at a time.
 *
 * @param config NULL for DIFFCOLL_HALO_CONFIG_INIT.
 * @param out    receives the plan; set to NULL on failure.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_halo_plan_create(diffcoll_comm_t* comm,
                                                         const diffcoll_halo_config_t* config,
                                                         diffcoll_halo_plan_t** out);

/** Destroy a plan (local). NULL is accepted; a plan that was already
 * destroyed gives DIFFCOLL_ERR_INVALID_HANDLE. */
DIFFCOLL_API diffcoll_status_t diffcoll_halo_plan_destroy(diffcoll_halo_plan_t* plan);

/**
 * Fill the halo of `padded` from the neighbouring ranks. Collective over the
 * plan's communicator.
 *
 * `padded` is this rank's slab with its halo: along the row axis it has
 * row_before + L + row_after rows, where the L interior rows are the rank's
 * slab (L may differ between ranks: uneven splits); likewise along the col
 * axis. Every other dimension, the dtype and the memory layout (strides up to
 * the split extents) are the same on every rank; ranks in one grid row hold
 * the same number of rows, ranks in one grid column the same number of
 * columns. The interior is read, never written or copied. After the call, the
 * halo equals the matching rows of the whole tensor padded once along both
 * axes by the boundary modes; corners come from the diagonal neighbours.
 * Where two boundary rules meet in a corner, UNTOUCHED wins over ZEROS and
 * ZEROS over the others. Ranks at an end of the grid fill that side locally
 * and send nothing toward it.
 *
 * A halo block that is one contiguous run of memory (e.g. channels-last rows
 * of a batch-1 activation split along H) is sent from and received into the
 * caller's memory; other blocks are packed into staging (one batched pack)
 * and unpacked from it (one batched unpack). All transfers are one grouped
 * exchange. On CUDA tensors the call is stream-ordered on `stream` and does
 * not synchronise the host; staging is reused across calls (reserve it with
 * diffcoll_comm_reserve before capturing a graph).
 *
 * Errors (DIFFCOLL_ERR_INVALID_ARGUMENT): a split axis outside the tensor, a
 * padded extent smaller than its widths, a halo wider than the interior of
 * the neighbour that supplies it (the rows would have to come from two ranks
 * away), an interior too small for REFLECT / REPLICATE / one-rank CIRCULAR, an
 * overlapping tensor. As for every collective, these are found by the rank
 * whose tensor has them, and its peers are left waiting for its transfers
 * (host tensors: until the communicator's timeout); with DIFFCOLL_CHECK=1
 * (config.check) every rank reports every rank's error at once, and ranks
 * that pass differing configs, dtypes, layouts or extents get
 * DIFFCOLL_ERR_MISMATCH.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_halo_exchange(diffcoll_halo_plan_t* plan,
                                                      const diffcoll_tensor_t* padded,
                                                      void* stream);

/**
 * Copy `input` (this rank's slab, unpadded) into the interior of
 * `padded_output`, then exchange as diffcoll_halo_exchange. For callers that
 * cannot allocate the padded buffer ahead. The copy is one raw copy when both
 * are contiguous in the output's memory order, else one unpack (or pack) when
 * one of them is, else a pack and an unpack through staging.
 * `input` must have the interior's shape and must not overlap the output,
 * unless it is the output's interior itself (then nothing is copied).
 */
DIFFCOLL_API diffcoll_status_t diffcoll_halo_exchange_into(diffcoll_halo_plan_t* plan,
                                                           const diffcoll_tensor_t* input,
                                                           const diffcoll_tensor_t* padded_output,
                                                           void* stream);

/**
 * Slab `index` of `parts` nearly equal slabs of `extent` rows (the rule of
 * torch.tensor_split): the first extent % parts slabs have
 * extent / parts + 1 rows, the others extent / parts; slab i starts where
 * slab i - 1 ends. Slabs are empty when extent < parts and index >= extent.
 * (torch.chunk differs: it gives ceil(extent / parts) rows to every slab but
 * the last and may return fewer slabs.) Thread-safe, local.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_split_extent(int64_t extent, int32_t parts,
                                                     int32_t index, int64_t* start,
                                                     int64_t* length);

/**
 * Reassemble the slabs of all ranks along `axis`: rank r's `slab` holds the
 * rows diffcoll_split_extent(whole.shape[axis], comm size, r) of the whole
 * and equals `whole` in every other dimension. `root` >= 0: the slabs are
 * written into root's `whole` (NULL elsewhere is fine); root == -1: into
 * every rank's `whole`. Collective. Slab and whole may have any strides;
 * slabs travel in row-major order, straight from / into memory where
 * contiguous, packed otherwise, as one grouped exchange of point-to-point
 * transfers (no padding to equal blocks). A rank's slab may be its own place
 * in its `whole` (then it is not copied).
 */
DIFFCOLL_API diffcoll_status_t diffcoll_gather_slabs(diffcoll_comm_t* comm,
                                                     const diffcoll_tensor_t* slab,
                                                     const diffcoll_tensor_t* whole,
                                                     int32_t axis, int32_t root,
                                                     void* stream);

/* ------------------------------------------------------------------------ */
/* Distributed GroupNorm (spatially parallel VAE decoding)                   */
/*                                                                           */
/* An activation [N, C, spatial...] split between the ranks of a            */
/* communicator along any spatial axes (the slabs of a halo plan, or any     */
/* other split) is normalised with the statistics of the whole activation,  */
/* as torch.nn.GroupNorm over the whole tensor would, at the cost of one     */
/* all-gather of 16 bytes per (sample, group) and rank. See docs/GROUPNORM.md.*/
/* ------------------------------------------------------------------------ */

/**
 * GroupNorm of this rank's slab with whole-activation statistics.
 * Collective over `comm`.
 *
 * `input` is this rank's slab, logical layout [N, C, spatial...] (channel
 * axis 1, any strides: contiguous, channels-last, gapped views, negative
 * strides). Every rank passes the same N, C, dtype, ndim, `num_groups`, `eps`
 * and the same presence and dtypes of `weight` and `bias`; the spatial
 * extents and strides may differ between ranks, and a rank's slab may be
 * empty (a spatial extent of 0: more ranks than rows), contributing nothing.
 * Each rank computes, per (sample, group), the count, mean and sum of squared
 * deviations of its elements (f32 records; host: accumulated in double, CUDA:
 * per-thread Welford merged pairwise), all ranks all-gather these records and
 * combine them in rank order (Chan's pairwise update, f32), so every rank
 * uses bit-identical statistics, and then
 *   output = (input - mean) * (1 / sqrt(var + eps)) * weight[c] + bias[c]
 * with the biased variance, computed in f32 and rounded once to the dtype.
 * The result equals GroupNorm of the whole activation within f32 rounding.
 *
 * @param comm       the communicator whose ranks hold the slabs.
 * @param input      float16, bfloat16 or float32, at least 2 dimensions;
 *                   read only (unless it is also `output`).
 * @param output     where the result goes: NULL, or `input` itself (same data
 *                   and strides), normalises in place; otherwise a tensor of
 *                   input's shape, dtype and device, any non-overlapping
 *                   strides, not overlapping `input`.
 * @param weight     NULL (1), or [C] of input's dtype or float32, any stride.
 * @param bias       NULL (0), or [C] of input's dtype or float32, any stride.
 * @param num_groups G >= 1 dividing C.
 * @param eps        added to the variance; finite and >= 0 (torch: 1e-5,
 *                   VAEs: 1e-6).
 * @param stream     cudaStream_t for CUDA tensors (NULL: the default stream),
 *                   ignored for host tensors.
 *
 * CUDA tensors need a communicator with a device side; the call is then
 * stream-ordered on `stream` (local statistics, the NCCL all-gather, the
 * combine and the normalisation are kernels and one NCCL call on it), never
 * synchronises the host, and is CUDA-graph capturable once the staging arena
 * holds (P + 1) * N * G * 16 bytes of records, at most 256 KiB of per-block
 * partials and N * C * 8 + C * 4 bytes of per-channel factors
 * (diffcoll_comm_reserve(comm, 1 << 20) before capturing covers N * G <= 256
 * with N * C <= 32K).
 * Used by one thread at a time per communicator, like every collective.
 *
 * Errors (DIFFCOLL_ERR_INVALID_ARGUMENT, with a message naming the problem):
 * fewer than 2 dimensions, an unsupported dtype, C not divisible by
 * num_groups, num_groups < 1, a bad eps, an output of another shape, dtype or
 * device, an overlapping output, a weight or bias of the wrong shape, dtype
 * or device. DIFFCOLL_ERR_UNSUPPORTED for CUDA tensors on a host-only
 * communicator. A rank whose arguments are bad fails before communicating
 * and its peers wait until the communicator's timeout; with DIFFCOLL_CHECK=1
 * ranks that disagree on N, C, dtype, groups, eps or the affine parameters
 * get DIFFCOLL_ERR_MISMATCH.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_group_norm(diffcoll_comm_t* comm,
                                                   const diffcoll_tensor_t* input,
                                                   const diffcoll_tensor_t* output,
                                                   const diffcoll_tensor_t* weight,
                                                   const diffcoll_tensor_t* bias,
                                                   int32_t num_groups, double eps,
                                                   void* stream);

/* ------------------------------------------------------------------------ */
/* Fused all-reduce + residual add + RMSNorm (tensor-parallel blocks)        */
/*                                                                           */
/* The end of every tensor-parallel transformer block, in one operation on   */
/* any group of a communicator (the world, a split or a listed subset):      */
/*   residual_out = allreduce_sum(x) + residual                              */
/*   y = residual_out / sqrt(mean(residual_out^2 over the row) + eps) * weight */
/* Tensors are rows of `hidden` elements. A workspace, created collectively  */
/* before any CUDA-graph capture, holds every resource the operation needs,  */
/* so that the operation itself allocates nothing, exchanges no handles and  */
/* can be captured.                                                          */
/* ------------------------------------------------------------------------ */

/** How diffcoll_fused_norm runs on CUDA tensors. Values are fixed. */
typedef enum diffcoll_fused_norm_path_t {
  /** Chosen by message size: one-shot for small messages, two-shot for
   * medium ones, NCCL + kernel for large ones; NCCL + kernel whenever the
   * one-kernel paths are not available (see the workspace). */
  DIFFCOLL_FUSED_NORM_AUTO = 0,
  /** One kernel: every rank reads every peer's x through NCCL symmetric
   * windows (NVLink load/store) and applies the epilogue to all rows. */
  DIFFCOLL_FUSED_NORM_ONE_SHOT = 1,
  /** One kernel: each rank reduces and normalises its share of the rows,
   * then gathers the other ranks' results (reduce-scatter + all-gather). */
  DIFFCOLL_FUSED_NORM_TWO_SHOT = 2,
  /** NCCL all-reduce, then one residual + RMSNorm kernel. Always available
   * on a communicator with a device side. */
  DIFFCOLL_FUSED_NORM_NCCL = 3
} diffcoll_fused_norm_path_t;

/** An opaque fused-norm workspace: the largest call it serves, the device
 * staging and, where the group's GPUs reach each other by NVLink, NCCL
 * symmetric windows and an NCCL device communicator. */
typedef struct diffcoll_fused_norm_workspace diffcoll_fused_norm_workspace_t;

/**
 * Options of one diffcoll_fused_norm call. Always start from
 * DIFFCOLL_FUSED_NORM_OPTIONS_INIT so that fields added later get their
 * defaults.
 */
typedef struct diffcoll_fused_norm_options_t {
  /** sizeof(diffcoll_fused_norm_options_t) as the caller compiled it. */
  size_t struct_size;
  /** A diffcoll_fused_norm_path_t (default AUTO). Ignored for host tensors,
   * which always take the host path (Gloo all-reduce, then plain loops). */
  int32_t path;
} diffcoll_fused_norm_options_t;

/** Default options: the path chosen by size. */
#define DIFFCOLL_FUSED_NORM_OPTIONS_INIT \
  {sizeof(diffcoll_fused_norm_options_t), DIFFCOLL_FUSED_NORM_AUTO}

/**
 * Create a fused-norm workspace on `comm`. Collective over `comm`: every rank
 * calls it with the same limits (DIFFCOLL_ERR_MISMATCH otherwise, on every
 * rank). Call it before capturing any CUDA graph that uses it: all set-up
 * traffic (allocation, NCCL symmetric window registration, the NCCL device
 * communicator) happens here, over the host side (the control plane), never
 * inside the operation.
 *
 * With a device side, the workspace allocates (ncclMemAlloc) and registers
 * an NCCL symmetric window of three regions of min(max_tokens * max_hidden
 * elements, 32 MiB) each and creates an NCCL device communicator, for the
 * one-kernel paths. Where a step fails on any rank, or the GPUs of the group
 * do not all reach each other by load/store (NCCL's LSA team is not the
 * whole group), those paths are not available on any rank: AUTO takes
 * NCCL + kernel, which needs no workspace memory (it reduces into y), and an
 * explicit request fails with DIFFCOLL_ERR_UNSUPPORTED and the reason. Calls
 * larger than the window take NCCL + kernel too. The workspace refers to
 * `comm`, which must outlive it; it is used, like `comm`, by one thread at a
 * time, and its calls must be ordered on the device (one stream, or streams
 * ordered by events).
 *
 * @param comm        the group the operation runs on.
 * @param max_tokens  the most rows (tokens) a call will have, >= 1.
 * @param max_hidden  the largest hidden size a call will have, >= 1.
 * @param dtype       the widest diffcoll_dtype_t a call will use: FLOAT16,
 *                    BFLOAT16 or FLOAT32 (calls may use any of these no wider).
 * @param out         receives the workspace; set to NULL on failure.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT for limits < 1 or another dtype,
 *         DIFFCOLL_ERR_MISMATCH when ranks differ, a CUDA error or a
 *         transport error (a timeout aborts the NCCL communicator).
 */
DIFFCOLL_API diffcoll_status_t diffcoll_fused_norm_workspace_create(
    diffcoll_comm_t* comm, int64_t max_tokens, int64_t max_hidden, int32_t dtype,
    diffcoll_fused_norm_workspace_t** out);

/** Destroy a workspace. NULL is accepted; a workspace already destroyed gives
 * DIFFCOLL_ERR_INVALID_HANDLE. On a communicator with a device side it is
 * collective (NCCL deregisters the symmetric windows collectively) and waits
 * for the device work queued on it; call it before destroying `comm`, outside
 * any graph capture. On a host-only communicator it is local. */
DIFFCOLL_API diffcoll_status_t diffcoll_fused_norm_workspace_destroy(
    diffcoll_fused_norm_workspace_t* workspace);

/**
 * residual_out = allreduce_sum(x) + residual; y = rmsnorm(residual_out) * weight.
 * Collective over the workspace's communicator.
 *
 * `x`, `residual`, `y` and `residual_out` are contiguous (row-major) tensors
 * of one shape [..., hidden], one dtype (FLOAT16, BFLOAT16 or FLOAT32) and one
 * device; every dimension but the last counts tokens. `weight` is a
 * contiguous [hidden] tensor of the same dtype. Arithmetic is in float32:
 * the sum of x over the ranks is rounded to the dtype (as an all-reduce
 * would return it), the residual is added and residual_out rounded to the
 * dtype, and the norm is taken of residual_out as stored (what a separate
 * RMSNorm of it would compute), then scaled by weight and rounded into y.
 * `x` is read only. Every rank passes the same residual and weight, as in
 * tensor parallelism (each rank normalises with its own, so ranks that pass
 * different ones get different y).
 *
 * Optional forms: `residual` NULL adds nothing (residual_out = allreduce(x));
 * `weight` NULL scales by 1; `residual_out` NULL does not store it. `y` may
 * be `x` itself and `residual_out` may be `residual` itself (in place); any
 * other overlap between the tensors is an error.
 *
 * Host tensors: a Gloo all-reduce into host staging and plain loops (the
 * reference implementation). CUDA tensors: by options->path (see
 * diffcoll_fused_norm_path_t), stream-ordered on `stream`, without
 * synchronising the host, and capturable into a CUDA graph (nothing is
 * allocated or exchanged: the workspace holds it all).
 *
 * @param workspace from diffcoll_fused_norm_workspace_create.
 * @param x         this rank's partial sums, [..., hidden].
 * @param residual  the residual stream, like x, or NULL.
 * @param weight    the RMSNorm weight, [hidden], or NULL.
 * @param eps       added to the mean square, finite and >= 0 (e.g. 1e-6).
 * @param y         receives the normalised rows, like x.
 * @param residual_out receives allreduce(x) + residual, like x, or NULL.
 * @param options   NULL for DIFFCOLL_FUSED_NORM_OPTIONS_INIT.
 * @param stream    a cudaStream_t for CUDA tensors; ignored (NULL) for host ones.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT for mismatched shapes, dtypes or
 *         devices, non-contiguous tensors, overlaps, a bad eps or path, or a
 *         call larger than the workspace serves (the message names both);
 *         DIFFCOLL_ERR_UNSUPPORTED for CUDA tensors on a communicator without
 *         a device side or an explicit one-kernel path that the workspace
 *         cannot run; DIFFCOLL_ERR_VERSION for a too small
 *         options->struct_size; transport errors as for every collective.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_fused_norm(
    diffcoll_fused_norm_workspace_t* workspace, const diffcoll_tensor_t* x,
    const diffcoll_tensor_t* residual, const diffcoll_tensor_t* weight, float eps,
    const diffcoll_tensor_t* y, const diffcoll_tensor_t* residual_out,
    const diffcoll_fused_norm_options_t* options, void* stream);

/* ------------------------------------------------------------------------ */
/* Sequence parallelism: Ulysses all-to-all (DeepSpeed-Ulysses, USP)         */
/*                                                                           */
/* Before attention, every rank of a Ulysses group holds a slice of the      */
/* sequence with all heads; the all-to-all gives every rank all of the       */
/* sequence with a slice of the heads, and after attention it goes back. The */
/* caller names the sequence and head dimensions (any layout: [B,S,H,D],     */
/* [B,H,S,D], [S,B,H,D], ...) and passes tensors of any strides; the layout  */
/* change happens inside diffcoll's pack and unpack, so no                   */
/* permute().contiguous() is needed on either side.                          */
/*                                                                           */
/* Uneven splits, no padding: of an extent E (sequence length or head        */
/* count) over P ranks, rank r holds diffcoll_split_extent(E, P, r) rows:    */
/* E / P + 1 rows for r < E % P, E / P for the others, consecutive from rank */
/* 0 (torch.tensor_split's rule). Padding was rejected because padded heads  */
/* cost attention work and padded tokens need an attention mask; with uneven */
/* splits every byte moved and every head attended is real. When E < P some  */
/* ranks hold 0 rows (allowed). One tensor with extents divisible by P moves */
/* by one backend all-to-all (ncclAlltoAll / Gloo alltoall); otherwise by    */
/* one grouped send/recv of one message per tensor and peer, each sent from  */
/* / received into the caller's memory when that slab is contiguous there.   */
/* Grouped-query attention: here q heads and k/v heads are split            */
/* independently, so a rank's q heads find their k/v heads on the same rank  */
/* only when P divides the k/v head count; diffcoll_ulysses_all_to_all_ex    */
/* with options.query_heads sends each rank the k/v heads its q heads attend */
/* to, for any P, with no copy of k/v up front (see its section below).      */
/* ------------------------------------------------------------------------ */

/** Direction of a Ulysses all-to-all. Values are fixed. */
typedef enum diffcoll_ulysses_direction_t {
  /** Sequence-sharded to head-sharded (before attention): input
   * [.., S_r, .., H, ..] -> output [.., S, .., H_r, ..]. */
  DIFFCOLL_ULYSSES_SEQ_TO_HEAD = 0,
  /** Head-sharded to sequence-sharded (after attention): input
   * [.., S, .., H_r, ..] -> output [.., S_r, .., H, ..]. */
  DIFFCOLL_ULYSSES_HEAD_TO_SEQ = 1
} diffcoll_ulysses_direction_t;

/**
 * Ulysses all-to-all of `count` tensors (e.g. q, k and v) as ONE exchange:
 * one batched pack of the pieces that need one into one staging buffer, one
 * all-to-all (one tensor, even splits) or one grouped send/recv, one batched
 * unpack into the outputs.
 * Collective over `comm` (the Ulysses group): every rank passes the same
 * count, axes, direction, dtype and global shapes.
 *
 * Shapes, with P the size of `comm`, r this rank, S and H the global
 * sequence length and head count of tensor t, S_r = diffcoll_split_extent(S,
 * P, r) and H_r likewise:
 *  - SEQ_TO_HEAD: inputs[t] has S_r along seq_axis and H along head_axis;
 *    outputs[t] has S and H_r. Rank r's output is the whole tensor's heads
 *    H_r (rows start..start+H_r of diffcoll_split_extent) for every token,
 *    tokens ordered by rank.
 *  - HEAD_TO_SEQ: the inverse: inputs[t] has S and H_r, outputs[t] has S_r
 *    and H. SEQ_TO_HEAD then HEAD_TO_SEQ returns the input bit for bit.
 * inputs[t] and outputs[t] agree in every other dimension; tensors of one
 * call may differ in shape (e.g. fewer k/v heads than q heads) but share one
 * dtype and one device.
 *
 * @param comm      the Ulysses group.
 * @param inputs    `count` input descriptors, any strides; only read.
 * @param outputs   `count` output descriptors, any strides without
 *                  overlapping elements; no output may share memory with an
 *                  input or another output (the all-to-all is not in place).
 * @param count     number of tensors, >= 1.
 * @param seq_axis  the sequence dimension of every tensor; negative counts
 *                  from the end.
 * @param head_axis the head dimension of every tensor; negative counts from
 *                  the end; must differ from seq_axis.
 * @param direction a diffcoll_ulysses_direction_t.
 * @param stream    CUDA tensors: the cudaStream_t the pack, the transfer and
 *                  the unpack are enqueued on, in order; the call returns
 *                  without waiting and never synchronises the host, and may
 *                  be captured into a CUDA graph when the staging it needs
 *                  (at most the bytes of all inputs plus all outputs, plus
 *                  256 per tensor and rank) was reserved beforehand
 *                  (diffcoll_comm_reserve).
 *                  Host tensors: ignored (pass NULL); the call returns when
 *                  the outputs are written.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT for a bad count, axis or direction,
 *         shapes that do not follow the split rule (the message names the
 *         tensor, the dimension and the extent expected), mixed dtypes or
 *         devices, or overlapping outputs; DIFFCOLL_ERR_MISMATCH in check
 *         mode when ranks disagree; DIFFCOLL_ERR_IN_CAPTURE when staging
 *         would have to grow inside a graph capture; transport errors as for
 *         the other collectives.
 *
 * Thread-safety: as every operation of `comm`, one thread at a time.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_ulysses_all_to_all(diffcoll_comm_t* comm,
                                                           const diffcoll_tensor_t* inputs,
                                                           const diffcoll_tensor_t* outputs,
                                                           int32_t count, int32_t seq_axis,
                                                           int32_t head_axis, int32_t direction,
                                                           void* stream);

/* ------------------------------------------------------------------------ */
/* USP process meshes                                                        */
/*                                                                           */
/* A USP (Unified Sequence Parallelism) run splits its ranks along four      */
/* axes: Ulysses (all-to-all attention), ring (ring attention), CFG          */
/* (guidance branches) and data (independent requests). The mesh gives each  */
/* rank its group along every axis, in xDiT's rank order so that a diffcoll  */
/* mesh and an xDiT / yunchang one over the same world hold the same ranks   */
/* in the same order: xDiT's RankGenerator order "tp-sp-pp-cfg-dp" with      */
/* tensor and pipeline degrees 1, and inside each sequence-parallel group    */
/* yunchang's set_seq_parallel_pg(use_ulysses_low=True). With U, R, C the    */
/* Ulysses, ring and CFG degrees, parent rank n has the coordinates          */
/*     u = n % U, r = (n / U) % R, c = (n / (U*R)) % C, d = n / (U*R*C)      */
/* (n = u + U * (r + R * (c + C * d))). Each group holds the parent ranks    */
/* that share every other coordinate, ordered by its own coordinate, which   */
/* is the rank's local rank in it:                                           */
/*  - ulysses: U consecutive ranks (u varies);                               */
/*  - ring:    R ranks U apart (r varies);                                   */
/*  - sp:      the U*R consecutive ranks of one (c, d), local rank u + U*r;  */
/*  - cfg:     C ranks U*R apart (c varies);                                 */
/*  - data:    D ranks U*R*C apart (d varies).                               */
/* E.g. 8 ranks, U=2, R=2, C=2: ulysses {0,1} {2,3} {4,5} {6,7}; ring {0,2}  */
/* {1,3} {4,6} {5,7}; sp {0,1,2,3} {4,5,6,7}; cfg {0,4} {1,5} {2,6} {3,7}.   */
/* ------------------------------------------------------------------------ */

/**
 * Degrees of a USP mesh. Always start from DIFFCOLL_USP_DEGREES_INIT so that
 * fields added later get their defaults.
 */
typedef struct diffcoll_usp_degrees_t {
  /** sizeof(diffcoll_usp_degrees_t) as the caller compiled it. */
  size_t struct_size;
  /** Ranks of one Ulysses group (default 1), >= 1. */
  int32_t ulysses;
  /** Ranks of one ring-attention group (default 1), >= 1. */
  int32_t ring;
  /** Ranks of one CFG group (default 1), >= 1. */
  int32_t cfg;
  /** Ranks of one data-parallel group (default 1), >= 1. */
  int32_t data;
} diffcoll_usp_degrees_t;

/** Default degrees: 1 along every axis. */
#define DIFFCOLL_USP_DEGREES_INIT {sizeof(diffcoll_usp_degrees_t), 1, 1, 1, 1}

/**
 * The groups of one rank in a USP mesh: communicators owned by the caller
 * (destroy them with diffcoll_usp_mesh_destroy or one by one with
 * diffcoll_comm_destroy). Always start from DIFFCOLL_USP_MESH_INIT.
 */
typedef struct diffcoll_usp_mesh_t {
  /** sizeof(diffcoll_usp_mesh_t) as the caller compiled it. */
  size_t struct_size;
  /** The Ulysses group (all-to-all attention), local rank u. */
  diffcoll_comm_t* ulysses;
  /** The ring-attention group, local rank r. */
  diffcoll_comm_t* ring;
  /** The sequence-parallel group (Ulysses x ring), local rank u + U * r. */
  diffcoll_comm_t* sp;
  /** The CFG group, local rank c. */
  diffcoll_comm_t* cfg;
  /** The data-parallel group, local rank d. */
  diffcoll_comm_t* data;
} diffcoll_usp_mesh_t;

/** An empty mesh, for diffcoll_usp_mesh_create to fill. */
#define DIFFCOLL_USP_MESH_INIT {sizeof(diffcoll_usp_mesh_t), NULL, NULL, NULL, NULL, NULL}

/**
 * Build every group of a USP mesh (see the section comment for the rank
 * order) for the calling rank of `parent`. Collective over `parent`: every
 * rank calls it with the same degrees. Each group has a host side and, when
 * `parent` has one, a device side, like diffcoll_comm_split's groups.
 *
 * @param parent  the world (or any communicator) the mesh covers.
 * @param degrees the degrees; their product must equal the size of `parent`.
 * @param mesh    a struct initialised with DIFFCOLL_USP_MESH_INIT; receives
 *                the groups (fields beyond mesh->struct_size are not
 *                written). All of them are NULL on failure.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT for a degree < 1 or degrees whose
 *         product is not the size of `parent` (before any communication);
 *         DIFFCOLL_ERR_VERSION for a struct_size too small; transport errors
 *         as for diffcoll_comm_split.
 *
 * Thread-safety: as every operation of `parent`, one thread at a time.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_usp_mesh_create(diffcoll_comm_t* parent,
                                                        const diffcoll_usp_degrees_t* degrees,
                                                        diffcoll_usp_mesh_t* mesh);

/**
 * Destroy every non-NULL communicator of `mesh` and set its field to NULL.
 * Local (not collective). NULL `mesh` is a no-op.
 *
 * @return DIFFCOLL_ERR_INVALID_HANDLE if a field holds a handle that is not
 *         live (the other fields are still destroyed).
 *
 * Thread-safety: no other thread may use the mesh's communicators meanwhile.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_usp_mesh_destroy(diffcoll_usp_mesh_t* mesh);

/* ------------------------------------------------------------------------ */
/* Ring exchange (ring attention)                                            */
/*                                                                           */
/* Ring attention keeps q on its rank and passes the (k, v) blocks around    */
/* the ring group: at each of P - 1 steps a rank sends the block it holds to */
/* rank + 1 and receives rank - 1's into the other half of a double buffer,  */
/* while attention runs on the block it holds. A ring object owns that       */
/* schedule:                                                                 */
/*     copy the own (k, v) into buffer 0                                     */
/*     for step in 0 .. P-1:                                                 */
/*         if step < P-1: diffcoll_ring_start(ring, stream)                  */
/*         attention(q, buffers[current])       -- overlaps the transfer     */
/*         if step < P-1: diffcoll_ring_wait(ring, stream, &current)         */
/* Rank n holds at step s the block of rank (n - s) mod P: every block       */
/* exactly once. Every rank's blocks have one shape (an uneven sequence is   */
/* padded by the caller to a multiple of the ring degree and masked in       */
/* attention, as ring attention implementations do).                         */
/* ------------------------------------------------------------------------ */

/** An opaque ring exchange: a double buffer of blocks on one communicator. */
typedef struct diffcoll_ring diffcoll_ring_t;

/**
 * Create a ring exchange over `comm` (local: not collective, no
 * communication). Half 0 (`buffer0`, the current half at first) and half 1
 * (`buffer1`) each hold `count` tensors (e.g. k and v); buffer0[t] and
 * buffer1[t] have one shape and dtype. The buffers are borrowed: they must
 * stay valid until the ring is destroyed. Create rings outside a CUDA graph
 * capture: on a device communicator the first ring creates the stream and
 * events the transfers run on.
 *
 * @param comm    the ring group; it must outlive the ring.
 * @param buffer0 `count` contiguous tensors, the first half.
 * @param buffer1 `count` contiguous tensors, the second half.
 * @param count   tensors per half, >= 1.
 * @param out     receives the ring; set to NULL on failure.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT for halves that differ in shape or
 *         dtype, non-contiguous buffers (blocks travel straight from and into
 *         them, with no staging), buffers that share memory or mixed devices;
 *         DIFFCOLL_ERR_UNSUPPORTED for CUDA buffers on a host-only
 *         communicator.
 *
 * Thread-safety: a ring is used, like its communicator, by one thread at a
 * time.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_ring_create(diffcoll_comm_t* comm,
                                                    const diffcoll_tensor_t* buffer0,
                                                    const diffcoll_tensor_t* buffer1,
                                                    int32_t count, diffcoll_ring_t** out);

/** Destroy a ring (NULL is a no-op). A step still in flight is completed
 * first (host) or left to finish on its stream (CUDA). Local. */
DIFFCOLL_API diffcoll_status_t diffcoll_ring_destroy(diffcoll_ring_t* ring);

/**
 * Post one step: send the current half to local rank (rank + 1) mod P and
 * receive the other half from (rank - 1) mod P (on one rank: copy the
 * current half into the other). Returns without waiting for the transfer.
 * Collective over the ring's communicator. Until diffcoll_ring_wait, the
 * current half may be read (attention) but not written, and the other half
 * is neither read nor written.
 *
 * @param stream CUDA buffers: the transfer starts after the work already on
 *               `stream` and runs on a stream of the communicator, so that
 *               work queued on `stream` afterwards (attention on the current
 *               block) overlaps it; never synchronises the host; capturable
 *               when start and wait are captured together. Host buffers:
 *               ignored; the transfer proceeds in the background.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT if a step is already in flight;
 *         transport errors as for the other collectives.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_ring_start(diffcoll_ring_t* ring, void* stream);

/**
 * Complete the step in flight and make the received half current.
 *
 * @param stream  CUDA buffers: work queued on `stream` after this call runs
 *                after the transfer (the call itself does not wait). Host
 *                buffers: ignored; returns when the transfer is complete.
 * @param current if not NULL, receives the index (0 or 1) of the half that
 *                now holds the block received.
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT if no step is in flight; transport
 *         errors (a peer that died: DIFFCOLL_ERR_REMOTE or
 *         DIFFCOLL_ERR_TIMEOUT within the communicator's timeout).
 */
DIFFCOLL_API diffcoll_status_t diffcoll_ring_wait(diffcoll_ring_t* ring, void* stream,
                                                  int32_t* current);

/* ------------------------------------------------------------------------ */
/* Ulysses for real models: grouped-query k/v sent once, FP8 on the wire      */
/*                                                                           */
/* Grouped-query attention (GQA): Q query heads share K k/v heads (K divides */
/* Q, G = Q / K); query head h attends k/v head h / G, the rule of PyTorch's */
/* scaled_dot_product_attention(enable_gqa=True) and of flash-attention.     */
/* With options.query_heads = Q, diffcoll_ulysses_all_to_all_ex treats every */
/* tensor of the call whose head count K differs from Q as k/v: SEQ_TO_HEAD  */
/* gives rank r exactly the k/v heads its query heads attend to,             */
/* diffcoll_ulysses_kv_heads(Q, K, P, r) = [qs / G, ceil((qs + qn) / G)),    */
/* where [qs, qs + qn) are its query heads (diffcoll_split_extent(Q, P, r)), */
/* in global order. A k/v head whose group spans two ranks goes to both; no  */
/* k/v head is copied up front and none travels to a rank that does not use */
/* it, for any P (even, uneven, P > K). On rank r, local query head i        */
/* attends local k/v head (qs + i) / G - qs / G. Where the rank's query      */
/* heads are whole groups (G divides qs and qn, e.g. whenever P divides K)   */
/* or lie in one group, that is local k/v head i / (qn / kn) (kn = its k/v   */
/* head count): the layout GQA kernels take as it is. Elsewhere (e.g. Q = 28,*/
/* K = 7, P = 2) run the kernel once per run of query heads that share a k/v*/
/* head. HEAD_TO_SEQ of a k/v tensor returns every k/v head from the rank    */
/* that holds its group's first query head, so SEQ_TO_HEAD then HEAD_TO_SEQ  */
/* returns k/v bit for bit; the attention output has Q heads and goes back   */
/* like any tensor.                                                          */
/*                                                                           */
/* FP8 transport (opt-in): messages between ranks travel as 8-bit floats,    */
/* quantised by the pack and dequantised by the unpack (no extra pass; the   */
/* caller's tensors keep their dtype: float16, bfloat16 or float32), with    */
/* one float32 scale per group. A group is one token block (scale_block      */
/* consecutive tokens of one message, counted from the message's first       */
/* token, the last block possibly shorter) x one index of every dimension    */
/* but the sequence and the last other dimension (one head of one batch      */
/* entry) x the whole last other dimension (the head dimension): e.g. for    */
/* [B, S, H, D], one scale per (batch entry, token block, head) over         */
/* scale_block x D values. scale = amax / F with amax the group's largest    */
/* magnitude and F the format's largest value (448 for e4m3, 57344 for       */
/* e5m2); each value x is sent as fp8(x * F / amax) (round to nearest even,  */
/* saturated) and comes back as x' = dtype(fp8 * scale). The error, per      */
/* element x of a group with scale s:                                        */
/*   e4m3:  |x' - x| <= 2^-4 |x| + 2^-10 s + r(x')                           */
/*   e5m2:  |x' - x| <= 2^-3 |x| + 2^-17 s + r(x')                           */
/* where r(x') is the rounding of x' to the tensor's dtype (half an ulp:     */
/* <= 2^-8 |x'| for bfloat16, 2^-11 |x'| for float16). The bytes per message */
/* are one per element plus 4 per group (+ 16-byte alignment), against 2 (or */
/* 4) per element natively. The slab a rank keeps for itself is copied      */
/* exactly; in an all-gather every block, the own one included, goes        */
/* through FP8, so that every rank holds the same output. Values must be    */
/* finite: a NaN stays NaN, an infinity makes its whole group NaN. Off by    */
/* default; with it off every result is bit for bit what the functions      */
/* without options return.                                                   */
/* ------------------------------------------------------------------------ */

/** How an all-to-all or all-gather moves values between ranks. Values are
 * fixed. */
typedef enum diffcoll_wire_format_t {
  /** The tensors' own dtype, bit for bit (the default). */
  DIFFCOLL_WIRE_NATIVE = 0,
  /** FP8 e4m3 (4 exponent, 3 mantissa bits, max 448) with scales. */
  DIFFCOLL_WIRE_FP8_E4M3 = 1,
  /** FP8 e5m2 (5 exponent, 2 mantissa bits, max 57344) with scales: more
   * range, less precision. */
  DIFFCOLL_WIRE_FP8_E5M2 = 2
} diffcoll_wire_format_t;

/**
 * Options of diffcoll_ulysses_all_to_all_ex. Always start from
 * DIFFCOLL_ULYSSES_OPTIONS_INIT so that fields added later get their
 * defaults. Every rank passes the same options.
 */
typedef struct diffcoll_ulysses_options_t {
  /** sizeof(diffcoll_ulysses_options_t) as the caller compiled it. */
  size_t struct_size;
  /** Grouped-query attention: the query head count Q; tensors with another
   * head count K (which must divide Q) are k/v (see the section comment).
   * 0 (default): every tensor's heads are split on their own. */
  int64_t query_heads;
  /** A diffcoll_wire_format_t (default DIFFCOLL_WIRE_NATIVE). */
  int32_t wire_format;
  /** FP8: tokens per scale, >= 1 (default 32). Ignored natively. */
  int32_t scale_block;
} diffcoll_ulysses_options_t;

/** Default options: no grouped-query attention, native wire. */
#define DIFFCOLL_ULYSSES_OPTIONS_INIT \
  {sizeof(diffcoll_ulysses_options_t), 0, DIFFCOLL_WIRE_NATIVE, 32}

/**
 * diffcoll_ulysses_all_to_all with options: grouped-query k/v heads sent
 * once to each rank that needs them, and FP8 transport (see the section
 * comment). With NULL or default options it is diffcoll_ulysses_all_to_all,
 * bit for bit.
 *
 * Shapes as for diffcoll_ulysses_all_to_all, except for the k/v tensors of
 * a GQA call (K heads, options->query_heads = Q): SEQ_TO_HEAD outputs hold
 * kn = the length of diffcoll_ulysses_kv_heads(Q, K, P, r) heads; HEAD_TO_SEQ
 * inputs hold those kn heads and outputs all K.
 *
 * Example, 32 query heads and 8 k/v heads on 3 ranks, [B, S, H, D]:
 * @code
 *   diffcoll_ulysses_options_t o = DIFFCOLL_ULYSSES_OPTIONS_INIT;
 *   o.query_heads = 32;
 *   o.wire_format = DIFFCOLL_WIRE_FP8_E4M3;        // optional
 *   int64_t kv_start, kn;                          // rank 1: heads 2..5 (4)
 *   diffcoll_ulysses_kv_heads(32, 8, 3, rank, &kv_start, &kn);
 *   diffcoll_tensor_t in[3] = {q, k, v};           // [B, S_r, 32|8, D]
 *   diffcoll_tensor_t out[3] = {q_h, k_h, v_h};    // [B, S, 11|kn, D]
 *   diffcoll_ulysses_all_to_all_ex(comm, in, out, 3, 1, 2,
 *                                  DIFFCOLL_ULYSSES_SEQ_TO_HEAD, &o, stream);
 * @endcode
 *
 * @param options NULL for DIFFCOLL_ULYSSES_OPTIONS_INIT.
 * @return as diffcoll_ulysses_all_to_all, and DIFFCOLL_ERR_INVALID_ARGUMENT
 *         for query_heads < 0, a tensor whose head count neither equals nor
 *         divides query_heads, an unknown wire_format, scale_block < 1 or
 *         FP8 with a dtype other than float16, bfloat16 and float32;
 *         DIFFCOLL_ERR_VERSION for a struct_size that does not cover the
 *         fields above. CUDA staging (reserve it before a graph capture)
 *         natively as for diffcoll_ulysses_all_to_all; with FP8 at most one
 *         byte per element and 4 per group of every message, plus 512 per
 *         tensor and rank, plus the native bytes of the slab a rank keeps
 *         when neither its input nor its output slab is contiguous.
 *
 * Thread-safety: as every operation of `comm`, one thread at a time.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_ulysses_all_to_all_ex(
    diffcoll_comm_t* comm, const diffcoll_tensor_t* inputs, const diffcoll_tensor_t* outputs,
    int32_t count, int32_t seq_axis, int32_t head_axis, int32_t direction,
    const diffcoll_ulysses_options_t* options, void* stream);

/**
 * The k/v heads rank `index` of `parts` holds after a GQA SEQ_TO_HEAD with
 * `query_heads` query heads and `kv_heads` k/v heads: [*start, *start +
 * *length) = [qs / G, ceil((qs + qn) / G)) with [qs, qs + qn) =
 * diffcoll_split_extent(query_heads, parts, index) and G = query_heads /
 * kv_heads; *length = 0 when the rank holds no query head. Local query head
 * i of the rank attends local k/v head (qs + i) / G - *start. Pure function,
 * thread-safe.
 *
 * @return DIFFCOLL_ERR_INVALID_ARGUMENT unless query_heads >= 1, kv_heads
 *         >= 1 divides query_heads, parts >= 1 and 0 <= index < parts, or
 *         for NULL start / length.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_ulysses_kv_heads(int64_t query_heads, int64_t kv_heads,
                                                         int32_t parts, int32_t index,
                                                         int64_t* start, int64_t* length);

/**
 * Options of diffcoll_all_gather_ex. Always start from
 * DIFFCOLL_ALL_GATHER_OPTIONS_INIT so that fields added later get their
 * defaults. Every rank passes the same options.
 */
typedef struct diffcoll_all_gather_options_t {
  /** sizeof(diffcoll_all_gather_options_t) as the caller compiled it. */
  size_t struct_size;
  /** A diffcoll_wire_format_t (default DIFFCOLL_WIRE_NATIVE). */
  int32_t wire_format;
  /** FP8: rows along the gather axis (tokens) per scale, >= 1 (default 32).
   * Ignored natively. */
  int32_t scale_block;
} diffcoll_all_gather_options_t;

/** Default options: native wire. */
#define DIFFCOLL_ALL_GATHER_OPTIONS_INIT \
  {sizeof(diffcoll_all_gather_options_t), DIFFCOLL_WIRE_NATIVE, 32}

/**
 * diffcoll_all_gather with options: with an FP8 wire format each rank's
 * input is quantised once into one message (groups: scale_block rows along
 * `axis` x one index of every other dimension but the last one that is not
 * `axis` x that whole dimension, e.g. for k of [B, S_r, H, D] gathered along
 * S: per batch entry, token block and head, over D), the messages are
 * all-gathered and every block, the own one included, is dequantised into
 * `output`, so all ranks hold the same output. Error bound as in the section
 * comment. With NULL or default options it is diffcoll_all_gather, bit for
 * bit.
 *
 * @code
 *   diffcoll_all_gather_options_t o = DIFFCOLL_ALL_GATHER_OPTIONS_INIT;
 *   o.wire_format = DIFFCOLL_WIRE_FP8_E4M3;
 *   diffcoll_all_gather_ex(comm, &k_shard, &k_whole, 1, &o, stream);
 * @endcode
 *
 * @param options NULL for DIFFCOLL_ALL_GATHER_OPTIONS_INIT.
 * @return as diffcoll_all_gather, and DIFFCOLL_ERR_INVALID_ARGUMENT for an
 *         unknown wire_format, scale_block < 1 or FP8 with a dtype other
 *         than float16, bfloat16 and float32; DIFFCOLL_ERR_VERSION for a
 *         struct_size that does not cover the fields above.
 *
 * Thread-safety: as every operation of `comm`, one thread at a time.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_all_gather_ex(diffcoll_comm_t* comm,
                                                      const diffcoll_tensor_t* input,
                                                      const diffcoll_tensor_t* output,
                                                      int32_t axis,
                                                      const diffcoll_all_gather_options_t* options,
                                                      void* stream);

/* @@section-end@@ (capabilities added later go above this line) */
/* The function table below stays last; new functions append their pointers. */

/* ------------------------------------------------------------------------ */
/* Function table (for programs that dlopen the library)                    */
/* ------------------------------------------------------------------------ */

/** Version 1 of the function table diffcoll_get_api returns: the only table
 * version of ABI 0 (libdiffcoll.so.0). */
#define DIFFCOLL_API_VERSION_1 1

/**
 * Every entry point of the library as a function pointer, so that a program
 * that dlopen()s libdiffcoll.so.0 needs a single dlsym("diffcoll_get_api").
 *
 * Layout rules (they keep old callers working with new libraries and new
 * callers with old ones):
 *  - struct_size and version come first, then one pointer per public
 *    function, in the order the functions are declared in this header; each
 *    field is named after its function. diffcoll_get_api has no field.
 *  - Fields are only ever appended at the end: never removed, reordered or
 *    retyped. The table version stays DIFFCOLL_API_VERSION_1 for as long as
 *    the soname is libdiffcoll.so.0. A function added to this header gets its
 *    pointer appended here (and set in capi/api_table.cc). This section
 *    stays the last of the header, so that the types every field uses are
 *    declared above it.
 *  - A table from an older library may end before fields this header
 *    declares: check DIFFCOLL_API_HAS(table, field) before calling a function
 *    newer than the oldest library you support.
 *
 * The table is read-only and owned by the library.
 */
typedef struct diffcoll_api_t {
  /** sizeof(diffcoll_api_t) as the library was compiled: the table holds
   * exactly the fields that end within struct_size bytes. */
  size_t struct_size;
  /** Version of the table layout: DIFFCOLL_API_VERSION_1. */
  uint32_t version;
  /** Points to diffcoll_version(). */
  uint32_t (*diffcoll_version)(void);
  /** Points to diffcoll_status_string(). */
  const char* (*diffcoll_status_string)(diffcoll_status_t status);
  /** Points to diffcoll_last_error(). */
  const char* (*diffcoll_last_error)(void);
  /** Points to diffcoll_comm_create(). */
  diffcoll_status_t (*diffcoll_comm_create)(const char* rendezvous, int32_t rank,
                                            int32_t size,
                                            const diffcoll_config_t* config,
                                            diffcoll_comm_t** out);
  /** Points to diffcoll_comm_create_from_env(). */
  diffcoll_status_t (*diffcoll_comm_create_from_env)(const diffcoll_config_t* config,
                                                     diffcoll_comm_t** out);
  /** Points to diffcoll_comm_split(). */
  diffcoll_status_t (*diffcoll_comm_split)(diffcoll_comm_t* parent, int32_t color,
                                           int32_t key, diffcoll_comm_t** out);
  /** Points to diffcoll_comm_create_group(). */
  diffcoll_status_t (*diffcoll_comm_create_group)(diffcoll_comm_t* parent,
                                                  const int32_t* ranks, int32_t count,
                                                  diffcoll_comm_t** out);
  /** Points to diffcoll_comm_wrap_nccl(). */
  diffcoll_status_t (*diffcoll_comm_wrap_nccl)(void* nccl_comm, const char* rendezvous,
                                               const diffcoll_config_t* config,
                                               diffcoll_comm_t** out);
  /** Points to diffcoll_comm_destroy(). */
  diffcoll_status_t (*diffcoll_comm_destroy)(diffcoll_comm_t* comm);
  /** Points to diffcoll_comm_size(). */
  diffcoll_status_t (*diffcoll_comm_size)(const diffcoll_comm_t* comm, int32_t* size);
  /** Points to diffcoll_comm_rank(). */
  diffcoll_status_t (*diffcoll_comm_rank)(const diffcoll_comm_t* comm, int32_t* rank);
  /** Points to diffcoll_comm_global_rank(). */
  diffcoll_status_t (*diffcoll_comm_global_rank)(const diffcoll_comm_t* comm,
                                                 int32_t local_rank,
                                                 int32_t* global_rank);
  /** Points to diffcoll_comm_reserve(). */
  diffcoll_status_t (*diffcoll_comm_reserve)(diffcoll_comm_t* comm, size_t bytes);
  /** Points to diffcoll_comm_get_stats(). */
  diffcoll_status_t (*diffcoll_comm_get_stats)(const diffcoll_comm_t* comm,
                                               diffcoll_stats_t* stats);
  /** Points to diffcoll_comm_reset_stats(). */
  diffcoll_status_t (*diffcoll_comm_reset_stats)(diffcoll_comm_t* comm);
  /** Points to diffcoll_all_reduce(). */
  diffcoll_status_t (*diffcoll_all_reduce)(diffcoll_comm_t* comm,
                                           const diffcoll_tensor_t* tensor, int32_t op,
                                           double scalar, void* stream);
  /** Points to diffcoll_broadcast(). */
  diffcoll_status_t (*diffcoll_broadcast)(diffcoll_comm_t* comm,
                                          const diffcoll_tensor_t* tensor, int32_t root,
                                          void* stream);
  /** Points to diffcoll_reduce(). */
  diffcoll_status_t (*diffcoll_reduce)(diffcoll_comm_t* comm,
                                       const diffcoll_tensor_t* tensor, int32_t op,
                                       double scalar, int32_t root, void* stream);
  /** Points to diffcoll_all_gather(). */
  diffcoll_status_t (*diffcoll_all_gather)(diffcoll_comm_t* comm,
                                           const diffcoll_tensor_t* input,
                                           const diffcoll_tensor_t* output,
                                           int32_t axis, void* stream);
  /** Points to diffcoll_reduce_scatter(). */
  diffcoll_status_t (*diffcoll_reduce_scatter)(diffcoll_comm_t* comm,
                                               const diffcoll_tensor_t* input,
                                               const diffcoll_tensor_t* output,
                                               int32_t axis, int32_t op, double scalar,
                                               void* stream);
  /** Points to diffcoll_all_to_all(). */
  diffcoll_status_t (*diffcoll_all_to_all)(diffcoll_comm_t* comm,
                                           const diffcoll_tensor_t* input,
                                           const diffcoll_tensor_t* output,
                                           int32_t scatter_axis, int32_t gather_axis,
                                           void* stream);
  /** Points to diffcoll_gather(). */
  diffcoll_status_t (*diffcoll_gather)(diffcoll_comm_t* comm,
                                       const diffcoll_tensor_t* input,
                                       const diffcoll_tensor_t* output, int32_t axis,
                                       int32_t root, void* stream);
  /** Points to diffcoll_scatter(). */
  diffcoll_status_t (*diffcoll_scatter)(diffcoll_comm_t* comm,
                                        const diffcoll_tensor_t* input,
                                        const diffcoll_tensor_t* output, int32_t axis,
                                        int32_t root, void* stream);
  /** Points to diffcoll_send(). */
  diffcoll_status_t (*diffcoll_send)(diffcoll_comm_t* comm,
                                     const diffcoll_tensor_t* tensor, int32_t peer,
                                     void* stream);
  /** Points to diffcoll_recv(). */
  diffcoll_status_t (*diffcoll_recv)(diffcoll_comm_t* comm,
                                     const diffcoll_tensor_t* tensor, int32_t peer,
                                     void* stream);
  /** Points to diffcoll_group_start(). */
  diffcoll_status_t (*diffcoll_group_start)(diffcoll_comm_t* comm);
  /** Points to diffcoll_group_end(). */
  diffcoll_status_t (*diffcoll_group_end)(diffcoll_comm_t* comm);
  /** Points to diffcoll_barrier(). */
  diffcoll_status_t (*diffcoll_barrier)(diffcoll_comm_t* comm, void* stream);
  /** Points to diffcoll_cfg_policy_create(). */
  diffcoll_status_t (*diffcoll_cfg_policy_create)(const diffcoll_cfg_branch_t* branches,
                                                  int32_t num_branches, int32_t base,
                                                  const diffcoll_cfg_term_t* terms,
                                                  int32_t num_terms,
                                                  const diffcoll_cfg_options_t* options,
                                                  diffcoll_cfg_policy_t** out);
  /** Points to diffcoll_cfg_policy_destroy(). */
  diffcoll_status_t (*diffcoll_cfg_policy_destroy)(diffcoll_cfg_policy_t* policy);
  /** Points to diffcoll_cfg_policy_num_branches(). */
  diffcoll_status_t (*diffcoll_cfg_policy_num_branches)(const diffcoll_cfg_policy_t* policy,
                                                        int32_t* num_branches);
  /** Points to diffcoll_cfg_policy_branch(). */
  diffcoll_status_t (*diffcoll_cfg_policy_branch)(const diffcoll_cfg_policy_t* policy,
                                                  int32_t index, const char** name,
                                                  int32_t* role);
  /** Points to diffcoll_cfg_policy_find_branch(). */
  diffcoll_status_t (*diffcoll_cfg_policy_find_branch)(const diffcoll_cfg_policy_t* policy,
                                                       const char* name,
                                                       int32_t* index);
  /** Points to diffcoll_cfg_policy_weights(). */
  diffcoll_status_t (*diffcoll_cfg_policy_weights)(const diffcoll_cfg_policy_t* policy,
                                                   double* weights, int32_t count);
  /** Points to diffcoll_cfg_policy_get_options(). */
  diffcoll_status_t (*diffcoll_cfg_policy_get_options)(const diffcoll_cfg_policy_t* policy,
                                                       diffcoll_cfg_options_t* options);
  /** Points to diffcoll_cfg_dispatch(). */
  diffcoll_status_t (*diffcoll_cfg_dispatch)(const diffcoll_cfg_policy_t* policy,
                                             int32_t degree, int32_t cfg_rank,
                                             int32_t* branches, int32_t capacity,
                                             int32_t* count);
  /** Points to diffcoll_cfg_combine_serial(). */
  diffcoll_status_t (*diffcoll_cfg_combine_serial)(const diffcoll_cfg_policy_t* policy,
                                                   const diffcoll_tensor_t* preds,
                                                   int32_t num_preds,
                                                   const diffcoll_tensor_t* out,
                                                   int32_t step, void* stream);
  /** Points to diffcoll_cfg_combine_parallel(). */
  diffcoll_status_t (*diffcoll_cfg_combine_parallel)(diffcoll_comm_t* comm,
                                                     const diffcoll_cfg_policy_t* policy,
                                                     const diffcoll_tensor_t* local_preds,
                                                     int32_t local_count,
                                                     const diffcoll_tensor_t* out,
                                                     int32_t step, void* stream);
  /** Points to diffcoll_halo_plan_create(). */
  diffcoll_status_t (*diffcoll_halo_plan_create)(diffcoll_comm_t* comm,
                                                 const diffcoll_halo_config_t* config,
                                                 diffcoll_halo_plan_t** out);
  /** Points to diffcoll_halo_plan_destroy(). */
  diffcoll_status_t (*diffcoll_halo_plan_destroy)(diffcoll_halo_plan_t* plan);
  /** Points to diffcoll_halo_exchange(). */
  diffcoll_status_t (*diffcoll_halo_exchange)(diffcoll_halo_plan_t* plan,
                                              const diffcoll_tensor_t* padded,
                                              void* stream);
  /** Points to diffcoll_halo_exchange_into(). */
  diffcoll_status_t (*diffcoll_halo_exchange_into)(diffcoll_halo_plan_t* plan,
                                                   const diffcoll_tensor_t* input,
                                                   const diffcoll_tensor_t* padded_output,
                                                   void* stream);
  /** Points to diffcoll_split_extent(). */
  diffcoll_status_t (*diffcoll_split_extent)(int64_t extent, int32_t parts,
                                             int32_t index, int64_t* start,
                                             int64_t* length);
  /** Points to diffcoll_gather_slabs(). */
  diffcoll_status_t (*diffcoll_gather_slabs)(diffcoll_comm_t* comm,
                                             const diffcoll_tensor_t* slab,
                                             const diffcoll_tensor_t* whole,
                                             int32_t axis, int32_t root, void* stream);
  /** Points to diffcoll_group_norm(). */
  diffcoll_status_t (*diffcoll_group_norm)(diffcoll_comm_t* comm,
                                           const diffcoll_tensor_t* input,
                                           const diffcoll_tensor_t* output,
                                           const diffcoll_tensor_t* weight,
                                           const diffcoll_tensor_t* bias,
                                           int32_t num_groups, double eps, void* stream);
  /** Points to diffcoll_fused_norm_workspace_create(). */
  diffcoll_status_t (*diffcoll_fused_norm_workspace_create)(
      diffcoll_comm_t* comm, int64_t max_tokens, int64_t max_hidden, int32_t dtype,
      diffcoll_fused_norm_workspace_t** out);
  /** Points to diffcoll_fused_norm_workspace_destroy(). */
  diffcoll_status_t (*diffcoll_fused_norm_workspace_destroy)(
      diffcoll_fused_norm_workspace_t* workspace);
  /** Points to diffcoll_fused_norm(). */
  diffcoll_status_t (*diffcoll_fused_norm)(
      diffcoll_fused_norm_workspace_t* workspace, const diffcoll_tensor_t* x,
      const diffcoll_tensor_t* residual, const diffcoll_tensor_t* weight, float eps,
      const diffcoll_tensor_t* y, const diffcoll_tensor_t* residual_out,
      const diffcoll_fused_norm_options_t* options, void* stream);
  /** Points to diffcoll_ulysses_all_to_all(). */
  diffcoll_status_t (*diffcoll_ulysses_all_to_all)(diffcoll_comm_t* comm,
                                                   const diffcoll_tensor_t* inputs,
                                                   const diffcoll_tensor_t* outputs,
                                                   int32_t count, int32_t seq_axis,
                                                   int32_t head_axis, int32_t direction,
                                                   void* stream);
  /** Points to diffcoll_usp_mesh_create(). */
  diffcoll_status_t (*diffcoll_usp_mesh_create)(diffcoll_comm_t* parent,
                                                const diffcoll_usp_degrees_t* degrees,
                                                diffcoll_usp_mesh_t* mesh);
  /** Points to diffcoll_usp_mesh_destroy(). */
  diffcoll_status_t (*diffcoll_usp_mesh_destroy)(diffcoll_usp_mesh_t* mesh);
  /** Points to diffcoll_ring_create(). */
  diffcoll_status_t (*diffcoll_ring_create)(diffcoll_comm_t* comm,
                                            const diffcoll_tensor_t* buffer0,
                                            const diffcoll_tensor_t* buffer1, int32_t count,
                                            diffcoll_ring_t** out);
  /** Points to diffcoll_ring_destroy(). */
  diffcoll_status_t (*diffcoll_ring_destroy)(diffcoll_ring_t* ring);
  /** Points to diffcoll_ring_start(). */
  diffcoll_status_t (*diffcoll_ring_start)(diffcoll_ring_t* ring, void* stream);
  /** Points to diffcoll_ring_wait(). */
  diffcoll_status_t (*diffcoll_ring_wait)(diffcoll_ring_t* ring, void* stream,
                                          int32_t* current);
  /** Points to diffcoll_ulysses_all_to_all_ex(). */
  diffcoll_status_t (*diffcoll_ulysses_all_to_all_ex)(
      diffcoll_comm_t* comm, const diffcoll_tensor_t* inputs,
      const diffcoll_tensor_t* outputs, int32_t count, int32_t seq_axis, int32_t head_axis,
      int32_t direction, const diffcoll_ulysses_options_t* options, void* stream);
  /** Points to diffcoll_ulysses_kv_heads(). */
  diffcoll_status_t (*diffcoll_ulysses_kv_heads)(int64_t query_heads, int64_t kv_heads,
                                                 int32_t parts, int32_t index,
                                                 int64_t* start, int64_t* length);
  /** Points to diffcoll_all_gather_ex(). */
  diffcoll_status_t (*diffcoll_all_gather_ex)(diffcoll_comm_t* comm,
                                              const diffcoll_tensor_t* input,
                                              const diffcoll_tensor_t* output, int32_t axis,
                                              const diffcoll_all_gather_options_t* options,
                                              void* stream);
} diffcoll_api_t;

/** Nonzero if `table` (a const diffcoll_api_t*) is long enough to hold the
 * function pointer `field`, i.e. the loaded library provides that function. */
#define DIFFCOLL_API_HAS(table, field) \
  ((table)->struct_size >= offsetof(diffcoll_api_t, field) + sizeof((table)->field))

/**
 * Get the library's table of function pointers. Thread-safe.
 *
 * @param version the table version the caller was written for:
 *                DIFFCOLL_API_VERSION_1.
 * @param table   receives the library's table, read-only and valid for as
 *                long as the library stays loaded; set to NULL on failure.
 * @return DIFFCOLL_ERR_VERSION if this library does not provide `version`,
 *         DIFFCOLL_ERR_INVALID_ARGUMENT if `table` is NULL.
 */
DIFFCOLL_API diffcoll_status_t diffcoll_get_api(uint32_t version,
                                                const diffcoll_api_t** table);


#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DIFFCOLL_DIFFCOLL_H_ */
