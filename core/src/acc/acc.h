/* core.acc: an accelerator-style device made of host threads (see docs/cp2k.md, "the offload path").
 *
 * A device owns a pool of worker threads that is not any OpenMP team; work reaches it through
 * streams (in-order queues of operations: copies, fills, stack processing, host functions, event
 * records and waits). Operations of one stream run one after the other; operations of different
 * streams may run at the same time, and one operation may be split into chunks that several
 * workers run at once. Errors inside a worker never stop the device: they are recorded on the
 * stream (sticky until the host collects them) and on events recorded after them.
 *
 * The stack executor (acc_stack_*) is shared by the device and by synchronous host execution
 * (acc_stack_run_host, an OpenMP team): a stack is cut into chunks of entries; a chunk checks its
 * entries' bounds, then processes them run by run (a run = consecutive entries with the same C
 * block) with a "run function" that accumulates target += alpha * sum_e op(A_e) op(B_e) into one
 * block. Every write to a C block holds that block's (hashed) lock, so any stack is race-free,
 * sorted or not, also against stacks of other streams. A run that continues into a neighbouring
 * chunk is summed in a zeroed private block first (the chunks then work at once and only the
 * addition is serialised: the sample's scheme); any other run is computed straight into C.
 */
#ifndef SMM_ACC_H
#define SMM_ACC_H
#include <stdint.h>
#include <stddef.h>

#define ACC_MSG_LEN 240

/* Accumulate into one target block: c += alpha * sum_{e < count} op(a[e]) * op(b[e]).
 * pa/pb/pc: first operands of the next call (prefetch hints, may be NULL). 0 on success; otherwise
 * a negative code, with a message written to msg (ACC_MSG_LEN bytes). */
typedef int (*acc_run_fn)(const void *ctx, const void *const *a, const void *const *b, void *c,
                          int64_t count, const void *pa, const void *pb, const void *pc, char *msg);

typedef struct acc_kernel {
  acc_run_fn run;
  const void *ctx;
  int32_t m, n, k, lda, ldb, ldc;
  int8_t trans_a, trans_b;
  int8_t elsize;            /* 4 (f32) or 8 (f64) */
  int8_t pad_[5];
} acc_kernel;

/* A stack: entry e multiplies the blocks at element offsets idx[0][e*stride[0]] - base (A),
 * idx[1][...] (B) into idx[2][...] (C). Index arrays are int32 or int64 (idx64). */
typedef struct acc_stack {
  const void *idx[3];
  int64_t stride[3];
  int64_t count, base;
  int idx64;
  const char *a, *b;
  char *c;
  int64_t a_size, b_size, c_size;  /* buffer lengths in elements */
} acc_stack;

/* Per-thread scratch of the executor (pointer arrays for one piece of a run, one private block). */
typedef struct acc_scratch {
  const void **a_ptrs, **b_ptrs;
  void *temp;
  int64_t temp_bytes;
} acc_scratch;

/* Entries gathered per run-function call: long runs are cut into pieces of this many, or fewer
 * when their A and B blocks would outgrow the bytes acc_set_reduce_bytes sets (core.acc passes
 * core.smm's reduce_bytes(), a quarter of the L2), since every register tile of the target block
 * sweeps all the products of a call. */
#define ACC_PIECE 256
void acc_set_reduce_bytes(int64_t bytes);

/* Checks that the blocks of entries [lo, hi) lie inside their buffers: 0, or -1 with a message
 * naming the first bad entry. */
int acc_stack_check(const acc_kernel *k, const acc_stack *st, int64_t lo, int64_t hi, char *msg);
/* Checks, then processes entries [lo, hi): 0, or a negative code with msg (nothing of the range
 * is written when its check fails). */
int acc_stack_run_range(const acc_kernel *k, const acc_stack *st, int64_t lo, int64_t hi,
                        acc_scratch *scratch, char *msg);
void acc_scratch_free(acc_scratch *s);
/* The whole stack on an OpenMP team of nthreads, chunks of `grain` entries (0: default). A bad
 * entry fails its chunk; other chunks may have been applied (the caller reports the error). */
int acc_stack_run_host(const acc_kernel *k, const acc_stack *st, int nthreads, int64_t grain, char *msg);
/* Chunk length used when the caller gives none (several chunks per worker, not too small). */
int64_t acc_default_grain(int64_t count, int nworkers);

/* ---- device, streams, events ---- */
typedef struct acc_device acc_device;
typedef struct acc_stream acc_stream;

typedef struct acc_event {
  acc_device *dev;
  uint64_t recorded, completed;   /* record generations: complete when completed >= recorded */
  int64_t err_id;                 /* error of its stream when it completed (0: none) */
  char msg[ACC_MSG_LEN];
} acc_event;

/* A host function run by a worker (it takes the GIL itself). 0 on success; otherwise it sets
 * *err_id (an id the caller can map back to a Python exception) and msg. */
typedef int (*acc_host_fn)(void *ctx, int64_t *err_id, char *msg);

typedef struct acc_stats {
  double busy;          /* time at least one worker was working (union over workers), s */
  double thread_busy;   /* sum over workers of working time, s */
  double copy, compute, host;  /* worker time by kind, s */
  int64_t ops, chunks, intervals;
} acc_stats;

/* nworkers >= 1; cpus: optional affinity set of the workers (ncpus 0: inherit). NULL on failure
 * (msg says why). */
acc_device *acc_device_create(int nworkers, const int *cpus, int ncpus, char *msg);
/* Waits until every stream is idle, stops and joins the workers, frees. */
void acc_device_destroy(acc_device *dev);
int acc_device_workers(const acc_device *dev);
void acc_device_synchronize(acc_device *dev);
void acc_device_get_stats(acc_device *dev, acc_stats *out);
/* Copies up to max (start, end) busy intervals; returns how many there are. */
int64_t acc_device_get_intervals(acc_device *dev, double *out, int64_t max);
void acc_device_reset_stats(acc_device *dev);
int64_t acc_device_new_error_id(acc_device *dev);

acc_stream *acc_stream_create(acc_device *dev);
void acc_stream_destroy(acc_stream *s);     /* waits for the stream's work first */
/* Enqueue: 0, or -1 when out of memory / device closing. Pointers must stay valid until done. */
int acc_enqueue_copy(acc_stream *s, void *dst, const void *src, int64_t nbytes);
int acc_enqueue_fill(acc_stream *s, void *dst, int value, int64_t nbytes);
int acc_enqueue_stack(acc_stream *s, const acc_kernel *k, const acc_stack *st, int64_t grain);
int acc_enqueue_host(acc_stream *s, acc_host_fn fn, void *ctx);
int acc_enqueue_record(acc_stream *s, acc_event *ev);
int acc_enqueue_wait(acc_stream *s, acc_event *ev);
/* An operation that fails on the worker with the given message (fault injection for tests). */
int acc_enqueue_fault(acc_stream *s, const char *msg);
/* Sequence number of the last enqueued op / of the last completed op. */
uint64_t acc_stream_submitted(acc_stream *s);
uint64_t acc_stream_completed(acc_stream *s);
/* Blocks until the stream's ops up to `seq` are done. Then, if the stream carries an error, copies
 * it out, clears it and returns its id (> 0); else 0. */
int64_t acc_stream_wait(acc_stream *s, uint64_t seq, char *msg);
/* 1 if every submitted op is done. */
int acc_stream_idle(acc_stream *s);

void acc_event_init(acc_event *ev, acc_device *dev);
/* Blocks until the last record is done; returns its error id (0: none) with msg. */
int64_t acc_event_wait(acc_event *ev, char *msg);
int acc_event_done(acc_event *ev);

double acc_now(void);   /* CLOCK_MONOTONIC seconds (the clock of the busy intervals) */

#endif
