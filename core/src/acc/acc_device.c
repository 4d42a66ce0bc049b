/* The device: worker threads, streams (in-order op queues), events, busy-time accounting.
 *
 * One mutex guards all queues and counters: workers hold it only to pick or retire a piece of work
 * (chunks are thousands of products, so the lock is taken a few thousand times per second at most),
 * never while running one. Idle workers and waiting hosts sleep on condition variables (no spinning:
 * ranks may share cores).
 */
#define _GNU_SOURCE
#include "acc.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum op_kind { OP_COPY, OP_FILL, OP_STACK, OP_HOST, OP_RECORD, OP_WAIT, OP_FAULT };
enum op_state { ST_NEW, ST_PREPARING, ST_READY };

/* Bytes per copy/fill chunk: large enough to stream, small enough that several workers share one. */
#define COPY_CHUNK ((int64_t)1 << 21)

typedef struct acc_op {
  struct acc_op *next;
  int kind, state;
  uint64_t seq;
  int64_t nchunks, claimed, done;
  int failed;
  int64_t err_id;
  char msg[ACC_MSG_LEN];
  union {
    struct { char *dst; const char *src; int value; int64_t nbytes; } mem;
    struct { acc_kernel kern; acc_stack st; int64_t grain; } stack;
    struct { acc_host_fn fn; void *ctx; } host;
    struct { acc_event *ev; uint64_t value; } event;
  } u;
} acc_op;

struct acc_stream {
  acc_device *dev;
  acc_op *head, *tail;
  uint64_t submitted, completed;
  int64_t err_id;        /* sticky error (0: none) until the host collects it */
  char msg[ACC_MSG_LEN];
  acc_stream *prev, *next;
};

typedef struct worker {
  acc_device *dev;
  pthread_t thread;
  acc_scratch scratch;
  int started;
} worker;

struct acc_device {
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  int nworkers, shutdown;
  worker *workers;
  cpu_set_t cpus;
  int use_cpus;
  acc_stream *streams, *cursor;
  int64_t next_err_id;
  /* statistics */
  int active;
  double busy_since, busy, thread_busy, t_copy, t_compute, t_host;
  int64_t ops, chunks;
  double *intervals;
  int64_t nintervals, cap_intervals;
};

double acc_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- op life cycle (all with dev->mu held) ---- */

static void stream_fail(acc_stream *s, int64_t err_id, const char *msg)
{
  if (s->err_id) return;   /* the first error is the one reported */
  s->err_id = err_id;
  snprintf(s->msg, ACC_MSG_LEN, "%s", msg);
}

static void retire_head(acc_device *dev, acc_stream *s)
{
  acc_op *op = s->head;
  if (op->failed) {
    stream_fail(s, op->err_id ? op->err_id : ++dev->next_err_id, op->msg);
  }
  s->head = op->next;
  if (!s->head) s->tail = NULL;
  s->completed = op->seq;
  ++dev->ops;
  free(op);
  pthread_cond_broadcast(&dev->done_cv);
  if (s->head) pthread_cond_broadcast(&dev->work_cv);
}

/* Ops that need no worker time: done on the spot. Returns 1 if the head was retired. */
static int settle_head(acc_device *dev, acc_stream *s)
{
  acc_op *op = s->head;
  if (op->kind == OP_RECORD) {
    acc_event *ev = op->u.event.ev;
    if (op->u.event.value > ev->completed) ev->completed = op->u.event.value;
    ev->err_id = s->err_id;
    memcpy(ev->msg, s->msg, ACC_MSG_LEN);
    retire_head(dev, s);
    return 1;
  }
  if (op->kind == OP_WAIT) {
    acc_event *ev = op->u.event.ev;
    if (ev->completed < op->u.event.value) return 0;
    if (ev->err_id && !s->err_id) {
      op->failed = 1;
      op->err_id = ev->err_id;
      snprintf(op->msg, ACC_MSG_LEN, "%s", ev->msg);
    }
    retire_head(dev, s);
    return 1;
  }
  if (s->err_id && op->state == ST_NEW) {
    /* A failed stream skips its remaining work: results past an error would be wrong anyway. */
    retire_head(dev, s);
    return 1;
  }
  if (op->state == ST_READY && op->nchunks == 0) {
    retire_head(dev, s);
    return 1;
  }
  return 0;
}

typedef struct task {
  acc_stream *s;
  acc_op *op;
  int64_t chunk;   /* -1: prepare (stack check), else chunk index */
} task;

static int find_task(acc_device *dev, task *t)
{
  if (!dev->streams) return 0;
  for (;;) {
    /* Settling a record can release a wait in a stream this pass has already looked at: scan
     * again until a pass changes nothing, or a sleeping worker could miss runnable work. */
    int progress = 0;
    acc_stream *start = dev->cursor ? dev->cursor : dev->streams;
    acc_stream *s = start;
    do {
      while (s->head && settle_head(dev, s)) progress = 1;
      acc_op *op = s->head;
      if (op) {
        if (op->state == ST_NEW) {
          op->state = ST_PREPARING;
          t->s = s; t->op = op; t->chunk = -1;
          dev->cursor = s->next;
          return 1;
        }
        if (op->state == ST_READY && op->claimed < op->nchunks) {
          t->s = s; t->op = op; t->chunk = op->claimed++;
          /* stay on this stream while it has chunks: one stack at a time keeps its data in cache */
          dev->cursor = s;
          return 1;
        }
      }
      s = s->next ? s->next : dev->streams;
    } while (s != start);
    if (!progress) return 0;
  }
}

/* ---- running work (without the lock) ---- */

static void op_prepare(acc_device *dev, acc_op *op)
{
  switch (op->kind) {
  case OP_COPY: case OP_FILL:
    op->nchunks = (op->u.mem.nbytes + COPY_CHUNK - 1) / COPY_CHUNK;
    break;
  case OP_STACK: {
    if (op->u.stack.grain <= 0) op->u.stack.grain = acc_default_grain(op->u.stack.st.count, dev->nworkers);
    op->nchunks = (op->u.stack.st.count + op->u.stack.grain - 1) / op->u.stack.grain;
    break;
  }
  case OP_HOST:
    op->nchunks = 1;
    break;
  case OP_FAULT:
    op->failed = 1;
    op->nchunks = 0;
    break;
  default:
    op->nchunks = 0;
  }
}

static int op_run_chunk(acc_op *op, int64_t chunk, acc_scratch *scratch, int64_t *err_id, char *msg)
{
  switch (op->kind) {
  case OP_COPY: case OP_FILL: {
    const int64_t lo = chunk * COPY_CHUNK;
    const int64_t len = op->u.mem.nbytes - lo < COPY_CHUNK ? op->u.mem.nbytes - lo : COPY_CHUNK;
    if (op->kind == OP_COPY) memcpy(op->u.mem.dst + lo, op->u.mem.src + lo, (size_t)len);
    else memset(op->u.mem.dst + lo, op->u.mem.value, (size_t)len);
    return 0;
  }
  case OP_STACK: {
    const int64_t g = op->u.stack.grain, lo = chunk * g;
    const int64_t hi = lo + g < op->u.stack.st.count ? lo + g : op->u.stack.st.count;
    return acc_stack_run_range(&op->u.stack.kern, &op->u.stack.st, lo, hi, scratch, msg);
  }
  case OP_HOST:
    return op->u.host.fn(op->u.host.ctx, err_id, msg);
  default:
    return 0;
  }
}

static void account_start(acc_device *dev)
{
  if (dev->active++ == 0) dev->busy_since = acc_now();
}

static void account_end(acc_device *dev, int kind, double t0, double t1)
{
  const double dt = t1 - t0;
  dev->thread_busy += dt;
  if (kind == OP_COPY || kind == OP_FILL) dev->t_copy += dt;
  else if (kind == OP_STACK) dev->t_compute += dt;
  else if (kind == OP_HOST) dev->t_host += dt;
  if (--dev->active == 0) {
    dev->busy += t1 - dev->busy_since;
    if (dev->nintervals == dev->cap_intervals) {
      const int64_t cap = dev->cap_intervals ? 2 * dev->cap_intervals : 1024;
      double *p = (double *)realloc(dev->intervals, (size_t)cap * 2 * sizeof(double));
      if (p) { dev->intervals = p; dev->cap_intervals = cap; }
    }
    if (dev->nintervals < dev->cap_intervals) {
      dev->intervals[2 * dev->nintervals] = dev->busy_since;
      dev->intervals[2 * dev->nintervals + 1] = t1;
      ++dev->nintervals;
    }
  }
}

static void *worker_main(void *arg)
{
  worker *w = (worker *)arg;
  acc_device *dev = w->dev;
  if (dev->use_cpus) pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), &dev->cpus);
  char msg[ACC_MSG_LEN];
  pthread_mutex_lock(&dev->mu);
  while (!dev->shutdown) {
    task t;
    if (!find_task(dev, &t)) {
      pthread_cond_wait(&dev->work_cv, &dev->mu);
      continue;
    }
    acc_op *op = t.op;
    account_start(dev);
    pthread_mutex_unlock(&dev->mu);
    const double t0 = acc_now();
    int rc = 0;
    int64_t err_id = 0;
    msg[0] = '\0';
    if (t.chunk < 0) op_prepare(dev, op);
    else rc = op_run_chunk(op, t.chunk, &w->scratch, &err_id, msg);
    const double t1 = acc_now();
    pthread_mutex_lock(&dev->mu);
    account_end(dev, op->kind, t0, t1);
    if (t.chunk < 0) {
      op->state = ST_READY;
      if (op->nchunks > 1) pthread_cond_broadcast(&dev->work_cv);
    } else {
      ++dev->chunks;
      ++op->done;
      if (rc && !op->failed) {
        op->failed = 1;
        op->err_id = err_id;
        memcpy(op->msg, msg, ACC_MSG_LEN);
      }
      if (op->failed && op->claimed < op->nchunks) {   /* the rest of a failed op is not run */
        op->done += op->nchunks - op->claimed;
        op->claimed = op->nchunks;
      }
    }
    if (op->state == ST_READY && op->done == op->nchunks && t.s->head == op) retire_head(dev, t.s);
  }
  pthread_mutex_unlock(&dev->mu);
  acc_scratch_free(&w->scratch);
  return NULL;
}

/* ---- device ---- */

acc_device *acc_device_create(int nworkers, const int *cpus, int ncpus, char *msg)
{
  if (nworkers < 1) {
    snprintf(msg, ACC_MSG_LEN, "a device needs at least one worker thread, got %d", nworkers);
    return NULL;
  }
  acc_device *dev = (acc_device *)calloc(1, sizeof(acc_device));
  if (!dev || !(dev->workers = (worker *)calloc((size_t)nworkers, sizeof(worker)))) {
    free(dev);
    snprintf(msg, ACC_MSG_LEN, "out of memory creating a device");
    return NULL;
  }
  pthread_mutex_init(&dev->mu, NULL);
  pthread_cond_init(&dev->work_cv, NULL);
  pthread_cond_init(&dev->done_cv, NULL);
  dev->nworkers = nworkers;
  CPU_ZERO(&dev->cpus);
  for (int i = 0; i < ncpus; ++i) {
    if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) { CPU_SET(cpus[i], &dev->cpus); dev->use_cpus = 1; }
  }
  for (int i = 0; i < nworkers; ++i) {
    dev->workers[i].dev = dev;
    const int rc = pthread_create(&dev->workers[i].thread, NULL, worker_main, &dev->workers[i]);
    if (rc) {
      snprintf(msg, ACC_MSG_LEN, "cannot start device worker %d: %s", i, strerror(rc));
      dev->nworkers = i;
      acc_device_destroy(dev);
      return NULL;
    }
    dev->workers[i].started = 1;
  }
  return dev;
}

int acc_device_workers(const acc_device *dev)
{
  return dev->nworkers;
}

static int all_idle(acc_device *dev)
{
  for (acc_stream *s = dev->streams; s; s = s->next)
    if (s->completed != s->submitted) return 0;
  return 1;
}

void acc_device_synchronize(acc_device *dev)
{
  pthread_mutex_lock(&dev->mu);
  while (!all_idle(dev)) pthread_cond_wait(&dev->done_cv, &dev->mu);
  pthread_mutex_unlock(&dev->mu);
}

void acc_device_destroy(acc_device *dev)
{
  if (!dev) return;
  acc_device_synchronize(dev);
  pthread_mutex_lock(&dev->mu);
  dev->shutdown = 1;
  pthread_cond_broadcast(&dev->work_cv);
  pthread_mutex_unlock(&dev->mu);
  for (int i = 0; i < dev->nworkers; ++i)
    if (dev->workers[i].started) pthread_join(dev->workers[i].thread, NULL);
  /* Streams still registered belong to their owners; detach them so they do not touch freed memory. */
  for (acc_stream *s = dev->streams; s; s = s->next) s->dev = NULL;
  pthread_cond_destroy(&dev->work_cv);
  pthread_cond_destroy(&dev->done_cv);
  pthread_mutex_destroy(&dev->mu);
  free(dev->intervals);
  free(dev->workers);
  free(dev);
}

void acc_device_get_stats(acc_device *dev, acc_stats *out)
{
  pthread_mutex_lock(&dev->mu);
  out->busy = dev->busy + (dev->active ? acc_now() - dev->busy_since : 0.0);
  out->thread_busy = dev->thread_busy;
  out->copy = dev->t_copy;
  out->compute = dev->t_compute;
  out->host = dev->t_host;
  out->ops = dev->ops;
  out->chunks = dev->chunks;
  out->intervals = dev->nintervals;
  pthread_mutex_unlock(&dev->mu);
}

int64_t acc_device_get_intervals(acc_device *dev, double *out, int64_t max)
{
  pthread_mutex_lock(&dev->mu);
  const int64_t n = dev->nintervals;
  const int64_t c = n < max ? n : max;
  if (c > 0) memcpy(out, dev->intervals, (size_t)c * 2 * sizeof(double));
  pthread_mutex_unlock(&dev->mu);
  return n;
}

void acc_device_reset_stats(acc_device *dev)
{
  pthread_mutex_lock(&dev->mu);
  dev->busy = dev->thread_busy = dev->t_copy = dev->t_compute = dev->t_host = 0.0;
  dev->ops = dev->chunks = 0;
  dev->nintervals = 0;
  if (dev->active) dev->busy_since = acc_now();
  pthread_mutex_unlock(&dev->mu);
}

int64_t acc_device_new_error_id(acc_device *dev)
{
  pthread_mutex_lock(&dev->mu);
  const int64_t id = ++dev->next_err_id;
  pthread_mutex_unlock(&dev->mu);
  return id;
}

/* ---- streams ---- */

acc_stream *acc_stream_create(acc_device *dev)
{
  acc_stream *s = (acc_stream *)calloc(1, sizeof(acc_stream));
  if (!s) return NULL;
  s->dev = dev;
  pthread_mutex_lock(&dev->mu);
  s->next = dev->streams;
  if (dev->streams) dev->streams->prev = s;
  dev->streams = s;
  pthread_mutex_unlock(&dev->mu);
  return s;
}

void acc_stream_destroy(acc_stream *s)
{
  if (!s) return;
  acc_device *dev = s->dev;
  if (dev) {
    pthread_mutex_lock(&dev->mu);
    while (s->completed != s->submitted) pthread_cond_wait(&dev->done_cv, &dev->mu);
    if (s->prev) s->prev->next = s->next;
    else dev->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    if (dev->cursor == s) dev->cursor = NULL;
    pthread_mutex_unlock(&dev->mu);
  }
  free(s);
}

static acc_op *new_op(int kind)
{
  acc_op *op = (acc_op *)calloc(1, sizeof(acc_op));
  if (op) op->kind = kind;
  return op;
}

static int enqueue(acc_stream *s, acc_op *op)
{
  acc_device *dev = s->dev;
  if (!op) return -1;
  if (!dev) { free(op); return -1; }
  pthread_mutex_lock(&dev->mu);
  if (dev->shutdown) {
    pthread_mutex_unlock(&dev->mu);
    free(op);
    return -1;
  }
  op->seq = ++s->submitted;
  if (op->kind == OP_RECORD || op->kind == OP_WAIT) op->state = ST_READY;
  if (op->kind == OP_RECORD) op->u.event.value = ++op->u.event.ev->recorded;
  if (s->tail) s->tail->next = op;
  else s->head = op;
  s->tail = op;
  /* A record or wait at the head may settle at once; workers do that when they look for work. */
  pthread_cond_signal(&dev->work_cv);
  if (op->kind == OP_STACK || op->kind == OP_COPY || op->kind == OP_FILL) pthread_cond_broadcast(&dev->work_cv);
  pthread_mutex_unlock(&dev->mu);
  return 0;
}

int acc_enqueue_copy(acc_stream *s, void *dst, const void *src, int64_t nbytes)
{
  acc_op *op = new_op(OP_COPY);
  if (op) { op->u.mem.dst = (char *)dst; op->u.mem.src = (const char *)src; op->u.mem.nbytes = nbytes; }
  return enqueue(s, op);
}

int acc_enqueue_fill(acc_stream *s, void *dst, int value, int64_t nbytes)
{
  acc_op *op = new_op(OP_FILL);
  if (op) { op->u.mem.dst = (char *)dst; op->u.mem.value = value; op->u.mem.nbytes = nbytes; }
  return enqueue(s, op);
}

int acc_enqueue_stack(acc_stream *s, const acc_kernel *k, const acc_stack *st, int64_t grain)
{
  acc_op *op = new_op(OP_STACK);
  if (op) { op->u.stack.kern = *k; op->u.stack.st = *st; op->u.stack.grain = grain; }
  return enqueue(s, op);
}

int acc_enqueue_host(acc_stream *s, acc_host_fn fn, void *ctx)
{
  acc_op *op = new_op(OP_HOST);
  if (op) { op->u.host.fn = fn; op->u.host.ctx = ctx; }
  return enqueue(s, op);
}

int acc_enqueue_record(acc_stream *s, acc_event *ev)
{
  acc_op *op = new_op(OP_RECORD);
  if (op) op->u.event.ev = ev;
  return enqueue(s, op);
}

int acc_enqueue_wait(acc_stream *s, acc_event *ev)
{
  acc_op *op = new_op(OP_WAIT);
  if (!op) return -1;
  op->u.event.ev = ev;
  if (!s->dev) { free(op); return -1; }
  pthread_mutex_lock(&s->dev->mu);
  op->u.event.value = ev->recorded;   /* the record current at enqueue time, as CUDA's */
  pthread_mutex_unlock(&s->dev->mu);
  return enqueue(s, op);
}

int acc_enqueue_fault(acc_stream *s, const char *msg)
{
  acc_op *op = new_op(OP_FAULT);
  if (op) snprintf(op->msg, ACC_MSG_LEN, "%s", msg);
  return enqueue(s, op);
}

uint64_t acc_stream_submitted(acc_stream *s)
{
  if (!s->dev) return s->submitted;
  pthread_mutex_lock(&s->dev->mu);
  const uint64_t v = s->submitted;
  pthread_mutex_unlock(&s->dev->mu);
  return v;
}

uint64_t acc_stream_completed(acc_stream *s)
{
  if (!s->dev) return s->submitted;
  pthread_mutex_lock(&s->dev->mu);
  const uint64_t v = s->completed;
  pthread_mutex_unlock(&s->dev->mu);
  return v;
}

int64_t acc_stream_wait(acc_stream *s, uint64_t seq, char *msg)
{
  acc_device *dev = s->dev;
  if (!dev) return 0;
  pthread_mutex_lock(&dev->mu);
  while (s->completed < seq) pthread_cond_wait(&dev->done_cv, &dev->mu);
  int64_t id = 0;
  if (s->err_id) {
    id = s->err_id;
    memcpy(msg, s->msg, ACC_MSG_LEN);
    s->err_id = 0;
    s->msg[0] = '\0';
  }
  pthread_mutex_unlock(&dev->mu);
  return id;
}

int acc_stream_idle(acc_stream *s)
{
  acc_device *dev = s->dev;
  if (!dev) return 1;
  pthread_mutex_lock(&dev->mu);
  const int idle = s->completed == s->submitted;
  pthread_mutex_unlock(&dev->mu);
  return idle;
}

/* ---- events ---- */

void acc_event_init(acc_event *ev, acc_device *dev)
{
  memset(ev, 0, sizeof(*ev));
  ev->dev = dev;
}

int64_t acc_event_wait(acc_event *ev, char *msg)
{
  acc_device *dev = ev->dev;
  pthread_mutex_lock(&dev->mu);
  const uint64_t target = ev->recorded;
  while (ev->completed < target) pthread_cond_wait(&dev->done_cv, &dev->mu);
  const int64_t id = ev->err_id;
  if (id) memcpy(msg, ev->msg, ACC_MSG_LEN);
  pthread_mutex_unlock(&dev->mu);
  return id;
}

int acc_event_done(acc_event *ev)
{
  acc_device *dev = ev->dev;
  pthread_mutex_lock(&dev->mu);
  const int done = ev->completed >= ev->recorded;
  pthread_mutex_unlock(&dev->mu);
  return done;
}
