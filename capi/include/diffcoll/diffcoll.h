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
#define DIFFCOLL_VERSION_MINOR 1
#define DIFFCOLL_VERSION_PATCH 0
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
  DIFFCOLL_FLOAT32 = 3,
  DIFFCOLL_FLOAT64 = 4,
  DIFFCOLL_INT8 = 5,
  DIFFCOLL_UINT8 = 6,
  DIFFCOLL_INT32 = 7,
  DIFFCOLL_INT64 = 8
} diffcoll_dtype_t;

/** Where a tensor lives; the values are DLPack's device types. */
typedef enum diffcoll_device_type_t {
  DIFFCOLL_DEVICE_CPU = 1,
  DIFFCOLL_DEVICE_CUDA = 2
} diffcoll_device_type_t;

/** Reduction operators. */
typedef enum diffcoll_red_op_t {
  DIFFCOLL_SUM = 0,
  DIFFCOLL_PROD = 1,
  DIFFCOLL_MIN = 2,
  DIFFCOLL_MAX = 3,
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
  void* data;
  int32_t dtype;
  int32_t device_type;
  int32_t device_id;
  int32_t ndim;
  int64_t shape[DIFFCOLL_MAX_DIMS];
  int64_t strides[DIFFCOLL_MAX_DIMS];
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
   * DIFFCOLL_HOST, else 127.0.0.1 for local:// rendezvous, else the address
   * the machine's host name resolves to. The string is copied. */
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

/* @@section-end@@ (capabilities added later go above this line) */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DIFFCOLL_DIFFCOLL_H_ */
