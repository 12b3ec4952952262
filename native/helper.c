/*
 * gpusvm-helper: the target process of gpusvm's native machine.
 *
 * It runs a workload given as commands on stdin (one per line) and forwards
 * userfaultfd events as JSON lines on stdout. Three threads:
 *
 *  - control (main): reads stdin. Workload commands (mmap, munmap, mprotect,
 *    madvise, mremap, mlock, munlock, rd, wr, fork, forkc, exit) are queued to the worker;
 *    control commands (ping, reg, unreg, wp, copy, zero, wake, dontneed,
 *    populate, kill) run at once, so they can resolve a fault the worker is
 *    blocked in.
 *  - worker: executes workload commands one at a time. Before replying to a
 *    command that may raise uffd events it waits until the reader has written
 *    every event already dequeued, so Node always sees a command's events
 *    before its reply.
 *  - reader: polls the userfaultfd and writes one JSON line per event.
 *
 * Request:  "<id> <cmd> <args...>" (decimal integers).
 * Reply:    {"id":N,"ok":1,...} or {"id":N,"ok":0,"errno":E,"err":"NAME"}.
 * Events:   {"ev":"unmap"|"remove","start":S,"end":E}
 *           {"ev":"remap","from":F,"to":T,"len":L}
 *           {"ev":"fork","fd":FD}
 *           {"ev":"pf","addr":A,"flags":F,"tid":T}
 *           {"ev":"child","pid":P,"code":C,"signal":S}  (a forkc child reaped)
 * The first line is {"hello":1,...} with the pid, the uffd status and the
 * addresses of the two staging buffers Node fills/reads via /proc/<pid>/mem.
 *
 * stdin EOF (Node went away) or a dead parent (PR_SET_PDEATHSIG) ends it.
 *
 * forkc forks a child that keeps serving (child_main): a copy-on-write copy
 * with its own uffd and threads, talking to Node over the abstract Unix socket
 * "gpusvm-helper-<pid>" instead of stdin/stdout. This process tracks it, kills
 * it on request (kill: only a child not reaped yet, never a reused pid) and
 * reaps it (a reaper thread per child).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Newer constants that older kernel headers (Debian 12: 6.1) lack. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_THREAD_ID
#define UFFD_FEATURE_THREAD_ID (1 << 8)
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

#define STAGING (4UL << 20)
#define QCAP 256

static int uffd = -1;
static int uffd_errno = 0;
static const char *uffd_mode = "none";
static uint64_t uffd_features = 0;
static int fork_events = 0;
static unsigned char *io_stage;   /* worker rd/wr staging */
static unsigned char *fill_stage; /* control UFFDIO_COPY source */
static int flush_pipe[2];
/* Node's channel: stdin/stdout of the first helper; a fork child's connected socket (forkc) */
static int out_fd = 1;
static FILE *cmd_in;
/* Node's pid (the first helper's parent): the only peer a fork child accepts */
static pid_t node_pid;

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- output ---- */
static void out_line(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  pthread_mutex_lock(&out_mu);
  int off = 0;
  while (off < n) {
    ssize_t w = write(out_fd, buf + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(3); /* Node is gone */
    }
    off += (int)w;
  }
  pthread_mutex_unlock(&out_mu);
}

static const char *errname(int e) {
  switch (e) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case EAGAIN: return "EAGAIN";
    case EBUSY: return "EBUSY";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case ENOSYS: return "ENOSYS";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    default: return "EOTHER";
  }
}

static void reply_err(uint64_t id, int e) { out_line("{\"id\":%llu,\"ok\":0,\"errno\":%d,\"err\":\"%s\"}", (unsigned long long)id, e, errname(e)); }
static void reply_ok(uint64_t id) { out_line("{\"id\":%llu,\"ok\":1}", (unsigned long long)id); }

/* ---- flush handshake: worker waits until the reader wrote every dequeued event ---- */
static pthread_mutex_t fl_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fl_cv = PTHREAD_COND_INITIALIZER;
static uint64_t fl_asked = 0, fl_done = 0;

static void flush_events(void) {
  if (uffd < 0) return;
  pthread_mutex_lock(&fl_mu);
  uint64_t me = ++fl_asked;
  pthread_mutex_unlock(&fl_mu);
  char c = 1;
  while (write(flush_pipe[1], &c, 1) < 0 && errno == EINTR) {}
  pthread_mutex_lock(&fl_mu);
  while (fl_done < me) pthread_cond_wait(&fl_cv, &fl_mu);
  pthread_mutex_unlock(&fl_mu);
}

/* ---- reader ---- */
static void drain_uffd(void) {
  struct uffd_msg msgs[16];
  for (;;) {
    ssize_t n = read(uffd, msgs, sizeof msgs);
    if (n < 0) {
      if (errno == EINTR) continue;
      return; /* EAGAIN: drained */
    }
    int k = (int)(n / (ssize_t)sizeof msgs[0]);
    for (int i = 0; i < k; i++) {
      struct uffd_msg *m = &msgs[i];
      switch (m->event) {
        case UFFD_EVENT_PAGEFAULT:
          out_line("{\"ev\":\"pf\",\"addr\":%llu,\"flags\":%llu,\"tid\":%u}", (unsigned long long)m->arg.pagefault.address,
                   (unsigned long long)m->arg.pagefault.flags, (unsigned)m->arg.pagefault.feat.ptid);
          break;
        case UFFD_EVENT_UNMAP:
          out_line("{\"ev\":\"unmap\",\"start\":%llu,\"end\":%llu}", (unsigned long long)m->arg.remove.start, (unsigned long long)m->arg.remove.end);
          break;
        case UFFD_EVENT_REMOVE:
          out_line("{\"ev\":\"remove\",\"start\":%llu,\"end\":%llu}", (unsigned long long)m->arg.remove.start, (unsigned long long)m->arg.remove.end);
          break;
        case UFFD_EVENT_REMAP:
          out_line("{\"ev\":\"remap\",\"from\":%llu,\"to\":%llu,\"len\":%llu}", (unsigned long long)m->arg.remap.from, (unsigned long long)m->arg.remap.to,
                   (unsigned long long)m->arg.remap.len);
          break;
        case UFFD_EVENT_FORK:
          out_line("{\"ev\":\"fork\",\"fd\":%u}", (unsigned)m->arg.fork.ufd);
          close((int)m->arg.fork.ufd); /* the child is not mirrored */
          break;
        default:
          out_line("{\"ev\":\"other\",\"code\":%u}", (unsigned)m->event);
      }
    }
  }
}

static void *reader_main(void *arg) {
  (void)arg;
  struct pollfd p[2] = {{.fd = uffd, .events = POLLIN}, {.fd = flush_pipe[0], .events = POLLIN}};
  for (;;) {
    int r = poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      _exit(4);
    }
    drain_uffd();
    if (p[1].revents & POLLIN) {
      char buf[64];
      ssize_t n = read(flush_pipe[0], buf, sizeof buf);
      if (n > 0) {
        drain_uffd();
        pthread_mutex_lock(&fl_mu);
        fl_done += (uint64_t)n;
        pthread_cond_broadcast(&fl_cv);
        pthread_mutex_unlock(&fl_mu);
      }
    }
  }
  return NULL;
}

/* ---- worker: guarded memory access ---- */
static __thread sigjmp_buf access_jmp;
static __thread volatile sig_atomic_t in_access = 0;

static void on_fault(int sig, siginfo_t *si, void *uc) {
  (void)si;
  (void)uc;
  if (in_access) {
    in_access = 0;
    siglongjmp(access_jmp, sig);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* memcpy that reports SIGSEGV/SIGBUS as EFAULT instead of dying */
static int guarded_copy(void *dst, const void *src, size_t len) {
  if (sigsetjmp(access_jmp, 1) != 0) return EFAULT;
  in_access = 1;
  memcpy(dst, src, len);
  in_access = 0;
  return 0;
}

struct cmd {
  uint64_t id;
  char name[16];
  uint64_t a[6];
  int n;
};

static struct cmd queue[QCAP];
static int q_head = 0, q_len = 0;
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_space = PTHREAD_COND_INITIALIZER;

static void fork_serving(uint64_t id);

static void run_worker(struct cmd *c) {
  uint64_t *a = c->a;
  if (!strcmp(c->name, "mmap")) {
    /* len addr flags(1 shared, 2 fixed, 4 hugetlb, 8 noreplace, 16 locked) prot */
    int fl = (a[2] & 1) ? MAP_SHARED : MAP_PRIVATE;
    fl |= MAP_ANONYMOUS;
    if (a[2] & 2) fl |= MAP_FIXED;
    if (a[2] & 4) fl |= MAP_HUGETLB;
    if (a[2] & 8) fl |= MAP_FIXED_NOREPLACE;
    if (a[2] & 16) fl |= MAP_LOCKED; /* VM_LOCKED, then mm_populate (errors ignored), kernel-semantics 11.17 */
    void *p = mmap((void *)(uintptr_t)a[1], a[0], (int)a[3], fl, -1, 0);
    int e = errno;
    if (a[2] & 2) flush_events();
    if (p == MAP_FAILED) return reply_err(c->id, e);
    out_line("{\"id\":%llu,\"ok\":1,\"addr\":%llu}", (unsigned long long)c->id, (unsigned long long)(uintptr_t)p);
  } else if (!strcmp(c->name, "munmap")) {
    int r = munmap((void *)(uintptr_t)a[0], a[1]);
    int e = errno;
    flush_events();
    if (r) return reply_err(c->id, e);
    reply_ok(c->id);
  } else if (!strcmp(c->name, "mprotect")) {
    int r = mprotect((void *)(uintptr_t)a[0], a[1], (int)a[2]);
    if (r) return reply_err(c->id, errno);
    reply_ok(c->id);
  } else if (!strcmp(c->name, "madvise")) {
    int r = madvise((void *)(uintptr_t)a[0], a[1], (int)a[2]);
    int e = errno;
    flush_events();
    if (r) return reply_err(c->id, e);
    reply_ok(c->id);
  } else if (!strcmp(c->name, "mremap")) {
    /* addr oldlen newlen flags(1 fixed, 2 dontunmap) newaddr */
    int fl = MREMAP_MAYMOVE;
    if (a[3] & 1) fl |= MREMAP_FIXED;
    if (a[3] & 2) fl |= MREMAP_DONTUNMAP;
    void *p = mremap((void *)(uintptr_t)a[0], a[1], a[2], fl, (void *)(uintptr_t)a[4]);
    int e = errno;
    flush_events();
    if (p == MAP_FAILED) return reply_err(c->id, e);
    out_line("{\"id\":%llu,\"ok\":1,\"addr\":%llu}", (unsigned long long)c->id, (unsigned long long)(uintptr_t)p);
  } else if (!strcmp(c->name, "mlock") || !strcmp(c->name, "munlock")) {
    /*
     * addr len: mlock(2) sets VM_LOCKED and populates (__mm_populate, in this
     * thread); munlock(2) clears it. Node migrates device-resident (MISSING-
     * registered) pages of the window back first and holds its mmap write lock,
     * so the populate meets no userfaultfd-handled fault: WP-registered pages
     * are never write-protected outside a migration, which that lock excludes.
     */
    int r = !strcmp(c->name, "mlock") ? mlock((void *)(uintptr_t)a[0], a[1]) : munlock((void *)(uintptr_t)a[0], a[1]);
    if (r) return reply_err(c->id, errno);
    reply_ok(c->id);
  } else if (!strcmp(c->name, "rd") || !strcmp(c->name, "wr")) {
    if (a[1] > STAGING) return reply_err(c->id, EINVAL);
    int w = c->name[0] == 'w';
    int e = w ? guarded_copy((void *)(uintptr_t)a[0], io_stage, a[1]) : guarded_copy(io_stage, (void *)(uintptr_t)a[0], a[1]);
    if (e) return reply_err(c->id, e);
    reply_ok(c->id);
  } else if (!strcmp(c->name, "fork")) {
    /* a child that exits at once: the FORK event (COW write-protects the parent's private pages) */
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    int e = errno;
    if (pid > 0) waitpid(pid, NULL, 0);
    flush_events();
    if (pid < 0) return reply_err(c->id, e);
    out_line("{\"id\":%llu,\"ok\":1,\"addr\":%d}", (unsigned long long)c->id, (int)pid);
  } else if (!strcmp(c->name, "forkc")) {
    fork_serving(c->id);
  } else if (!strcmp(c->name, "exit")) {
    flush_events();
    reply_ok(c->id);
    _exit((int)a[0]);
  } else {
    reply_err(c->id, ENOSYS);
  }
}

static void *worker_main(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&q_mu);
    while (q_len == 0) pthread_cond_wait(&q_cv, &q_mu);
    struct cmd c = queue[q_head];
    q_head = (q_head + 1) % QCAP;
    q_len--;
    pthread_cond_signal(&q_space);
    pthread_mutex_unlock(&q_mu);
    run_worker(&c);
  }
  return NULL;
}

/* ---- serving fork children (forkc): table, reaper, kill ---- */
#define MAXCH 64
static pthread_mutex_t ch_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t children[MAXCH]; /* serving children not reaped yet; 0 = free slot */

/* Waits for child `arg` without reaping (WNOWAIT), then, under ch_mu, forgets and reaps it: kill_child never signals a reused pid. */
static void *reaper_main(void *arg) {
  pid_t pid = (pid_t)(intptr_t)arg;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
  int status = 0;
  pthread_mutex_lock(&ch_mu);
  for (int i = 0; i < MAXCH; i++)
    if (children[i] == pid) children[i] = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  pthread_mutex_unlock(&ch_mu);
  out_line("{\"ev\":\"child\",\"pid\":%d,\"code\":%d,\"signal\":%d}", (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return NULL;
}

static int track_child(pid_t pid) {
  pthread_mutex_lock(&ch_mu);
  int slot = -1;
  for (int i = 0; i < MAXCH && slot < 0; i++)
    if (children[i] == 0) slot = i;
  if (slot >= 0) children[slot] = pid;
  pthread_mutex_unlock(&ch_mu);
  if (slot < 0) return EAGAIN;
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  int e = pthread_create(&t, &at, reaper_main, (void *)(intptr_t)pid);
  pthread_attr_destroy(&at);
  if (e) {
    pthread_mutex_lock(&ch_mu);
    children[slot] = 0;
    pthread_mutex_unlock(&ch_mu);
  }
  return e;
}

static int kill_child(pid_t pid, int sig) {
  int e = ESRCH;
  pthread_mutex_lock(&ch_mu);
  for (int i = 0; i < MAXCH; i++)
    if (pid > 0 && children[i] == pid) e = kill(pid, sig) ? errno : 0;
  pthread_mutex_unlock(&ch_mu);
  return e;
}

/* ---- control commands ---- */
static int uffd_ioctl(unsigned long req, void *arg) {
  if (uffd < 0) return ENOSYS;
  for (;;) {
    if (ioctl(uffd, req, arg) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

static void run_control(struct cmd *c) {
  uint64_t *a = c->a;
  if (!strcmp(c->name, "ping")) return reply_ok(c->id);
  if (!strcmp(c->name, "reg")) { /* addr len mode(1 missing, 2 wp) */
    struct uffdio_register r = {.range = {.start = a[0], .len = a[1]}, .mode = 0};
    if (a[2] & 1) r.mode |= UFFDIO_REGISTER_MODE_MISSING;
    if (a[2] & 2) r.mode |= UFFDIO_REGISTER_MODE_WP;
    int e = uffd_ioctl(UFFDIO_REGISTER, &r);
    return e ? reply_err(c->id, e) : reply_ok(c->id);
  }
  if (!strcmp(c->name, "unreg")) {
    struct uffdio_range r = {.start = a[0], .len = a[1]};
    int e = uffd_ioctl(UFFDIO_UNREGISTER, &r);
    return e ? reply_err(c->id, e) : reply_ok(c->id);
  }
  if (!strcmp(c->name, "wp")) { /* addr len on */
    struct uffdio_writeprotect w = {.range = {.start = a[0], .len = a[1]}, .mode = a[2] ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
    int e = uffd_ioctl(UFFDIO_WRITEPROTECT, &w);
    return e ? reply_err(c->id, e) : reply_ok(c->id);
  }
  if (!strcmp(c->name, "copy")) { /* dst len: from fill_stage; EEXIST pages are skipped (a lost race) */
    uint64_t dst = a[0], len = a[1], done = 0, skipped = 0;
    if (len > STAGING) return reply_err(c->id, EINVAL);
    while (done < len) {
      struct uffdio_copy cp = {.dst = dst + done, .src = (uint64_t)(uintptr_t)(fill_stage + done), .len = len - done, .mode = 0};
      int e = uffd_ioctl(UFFDIO_COPY, &cp);
      if (e == 0) {
        done = len;
        break;
      }
      if (cp.copy > 0) done += (uint64_t)cp.copy;
      if (e == EAGAIN) continue;
      if (e == EEXIST) {
        if (cp.copy <= 0) {
          done += 4096;
          skipped++;
        }
        continue;
      }
      return reply_err(c->id, e);
    }
    return out_line("{\"id\":%llu,\"ok\":1,\"skipped\":%llu}", (unsigned long long)c->id, (unsigned long long)skipped);
  }
  if (!strcmp(c->name, "zero")) {
    struct uffdio_zeropage z = {.range = {.start = a[0], .len = a[1]}, .mode = 0};
    int e = uffd_ioctl(UFFDIO_ZEROPAGE, &z);
    return e && e != EEXIST ? reply_err(c->id, e) : reply_ok(c->id);
  }
  if (!strcmp(c->name, "wake")) {
    struct uffdio_range r = {.start = a[0], .len = a[1]};
    int e = uffd_ioctl(UFFDIO_WAKE, &r);
    return e ? reply_err(c->id, e) : reply_ok(c->id);
  }
  if (!strcmp(c->name, "dontneed")) {
    /* MADV_DONTNEED refuses VM_LOCKED VMAs (EINVAL); MADV_DONTNEED_LOCKED (5.18+) zaps those too */
    int r = madvise((void *)(uintptr_t)a[0], a[1], MADV_DONTNEED);
    if (r && errno == EINVAL) r = madvise((void *)(uintptr_t)a[0], a[1], MADV_DONTNEED_LOCKED);
    return r ? reply_err(c->id, errno) : reply_ok(c->id);
  }
  if (!strcmp(c->name, "populate")) { /* addr len write: MADV_POPULATE_(READ|WRITE), EFAULT like hmm_range_fault */
    int r = madvise((void *)(uintptr_t)a[0], a[1], a[2] ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
    return r ? reply_err(c->id, errno) : reply_ok(c->id);
  }
  if (!strcmp(c->name, "kill")) { /* pid sig: only a serving fork child this process has not reaped yet (no pid reuse) */
    int e = kill_child((pid_t)a[0], (int)a[1]);
    return e ? reply_err(c->id, e) : reply_ok(c->id);
  }
  reply_err(c->id, ENOSYS);
}

static int is_control(const char *n) {
  return !strcmp(n, "ping") || !strcmp(n, "reg") || !strcmp(n, "unreg") || !strcmp(n, "wp") || !strcmp(n, "copy") || !strcmp(n, "zero") ||
         !strcmp(n, "wake") || !strcmp(n, "dontneed") || !strcmp(n, "populate") || !strcmp(n, "kill");
}

/* ---- userfaultfd setup ---- */
static int uffd_api(int fd, uint64_t want) {
  struct uffdio_api api = {.api = UFFD_API, .features = want};
  if (ioctl(fd, UFFDIO_API, &api) == 0) {
    uffd_features = api.features;
    return 0;
  }
  return errno;
}

static void open_uffd(void) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd >= 0) {
    uffd_mode = "user-mode-only";
  } else {
    uffd_errno = errno;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
      fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
      if (fd < 0) uffd_errno = errno;
      else uffd_mode = "dev";
      close(dev);
    } else if (uffd_errno == ENOSYS) {
      /* keep ENOSYS: the syscall itself is missing */
    } else {
      uffd_errno = errno;
    }
  }
  if (fd < 0) return;
  uint64_t base = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID |
                  UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_MISSING_SHMEM;
  int e = uffd_api(fd, base | UFFD_FEATURE_EVENT_FORK);
  if (e == 0) {
    fork_events = 1;
  } else {
    /* EVENT_FORK needs CAP_SYS_PTRACE; UFFDIO_API may only be called once per fd, so start over */
    close(fd);
    fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | (strcmp(uffd_mode, "dev") ? UFFD_USER_MODE_ONLY : 0));
    if (fd < 0 && !strcmp(uffd_mode, "dev")) {
      int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
      if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        close(dev);
      }
    }
    if (fd < 0 || (e = uffd_api(fd, base)) != 0) {
      uffd_errno = fd < 0 ? errno : e;
      if (fd >= 0) close(fd);
      uffd_mode = "none";
      return;
    }
  }
  uffd = fd;
}

static int parse(char *line, struct cmd *c) {
  char *save = NULL;
  char *tok = strtok_r(line, " \t\r\n", &save);
  if (!tok) return 0;
  c->id = strtoull(tok, NULL, 10);
  tok = strtok_r(NULL, " \t\r\n", &save);
  if (!tok) return 0;
  snprintf(c->name, sizeof c->name, "%s", tok);
  c->n = 0;
  memset(c->a, 0, sizeof c->a);
  while (c->n < 6 && (tok = strtok_r(NULL, " \t\r\n", &save))) c->a[c->n++] = strtoull(tok, NULL, 10);
  return 1;
}

static void serve(void) __attribute__((noreturn));

/*
 * A serving fork child (forkc), on the forking worker's thread: a copy-on-write
 * copy of the parent made by fork(2). Only this thread exists here; the locks
 * the parent's other threads may have held are reset, the parent's channel,
 * uffd and flush pipe are closed. It listens on the abstract socket
 * "gpusvm-helper-<pid>" (ready), waits for the parent's go (the parent's
 * reader has closed the FORK event's uffd by then, so no registration of the
 * parent's is left on the child's VMAs), accepts Node (SO_PEERCRED pid ==
 * Node's), opens its own userfaultfd and serves like the first helper.
 */
static void child_main(pid_t parent, int ready_w, int go_r) __attribute__((noreturn));
static void child_main(pid_t parent, int ready_w, int go_r) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(5);
  pthread_mutex_t m0 = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c0 = PTHREAD_COND_INITIALIZER;
  out_mu = m0, fl_mu = m0, q_mu = m0, ch_mu = m0;
  fl_cv = c0, q_cv = c0, q_space = c0;
  q_head = 0, q_len = 0, fl_asked = 0, fl_done = 0;
  memset(children, 0, sizeof children);
  close(0);
  close(1);
  if (uffd >= 0) close(uffd);
  uffd = -1;
  close(flush_pipe[0]);
  close(flush_pipe[1]);
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0) _exit(8);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  int n = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "gpusvm-helper-%d", (int)getpid());
  if (bind(ls, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) || listen(ls, 4)) _exit(9);
  char b = 1;
  while (write(ready_w, &b, 1) < 0 && errno == EINTR) {}
  close(ready_w);
  ssize_t r;
  while ((r = read(go_r, &b, 1)) < 0 && errno == EINTR) {}
  if (r != 1) _exit(0);
  close(go_r);
  int s = -1;
  while (s < 0) {
    s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) {
      if (errno == EINTR) continue;
      _exit(10);
    }
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) || cr.pid != node_pid) {
      close(s); /* never serve anyone but Node */
      s = -1;
    }
  }
  close(ls);
  out_fd = s;
  cmd_in = fdopen(s, "r");
  if (cmd_in == NULL) _exit(11);
  uffd_mode = "none";
  uffd_errno = 0;
  uffd_features = 0;
  fork_events = 0;
  serve();
}

/* forkc: fork a child that keeps serving (child_main); reply with its pid once it listens */
static void fork_serving(uint64_t id) {
  int ready[2], go[2];
  if (pipe2(ready, O_CLOEXEC)) return reply_err(id, errno);
  if (pipe2(go, O_CLOEXEC)) {
    int e = errno;
    close(ready[0]);
    close(ready[1]);
    return reply_err(id, e);
  }
  pid_t me = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    close(go[1]);
    child_main(me, ready[1], go[0]);
  }
  int e = errno;
  close(ready[1]);
  close(go[0]);
  /* the FORK event (EVENT_FORK) is read, printed and its uffd closed before this returns */
  flush_events();
  if (pid < 0) {
    close(ready[0]);
    close(go[1]);
    return reply_err(id, e);
  }
  char b = 0;
  ssize_t r;
  while ((r = read(ready[0], &b, 1)) < 0 && errno == EINTR) {}
  close(ready[0]);
  if (r != 1 || (e = track_child(pid)) != 0) {
    close(go[1]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return reply_err(id, r != 1 ? ECHILD : e);
  }
  while (write(go[1], &b, 1) < 0 && errno == EINTR) {}
  close(go[1]);
  out_line("{\"id\":%llu,\"ok\":1,\"addr\":%d}", (unsigned long long)id, (int)pid);
}

/* The helper proper: uffd, threads, hello, then the control loop on cmd_in (the first helper's main and a fork child). */
static void serve(void) {
  if (pipe2(flush_pipe, O_CLOEXEC)) _exit(7);
  open_uffd();
  pthread_t rt, wt;
  if (uffd >= 0) pthread_create(&rt, NULL, reader_main, NULL);
  pthread_create(&wt, NULL, worker_main, NULL);

  out_line("{\"hello\":1,\"pid\":%d,\"uffd\":%d,\"uffdMode\":\"%s\",\"uffdErrno\":%d,\"uffdErr\":\"%s\",\"features\":%llu,\"fork\":%d,\"io\":%llu,\"fill\":%llu,"
           "\"staging\":%lu}",
           (int)getpid(), uffd >= 0, uffd_mode, uffd_errno, uffd_errno ? errname(uffd_errno) : "", (unsigned long long)uffd_features, fork_events,
           (unsigned long long)(uintptr_t)io_stage, (unsigned long long)(uintptr_t)fill_stage, STAGING);

  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, cmd_in)) > 0) {
    struct cmd c;
    if (!parse(line, &c)) continue;
    if (is_control(c.name)) {
      run_control(&c);
      continue;
    }
    pthread_mutex_lock(&q_mu);
    while (q_len == QCAP) pthread_cond_wait(&q_space, &q_mu);
    queue[(q_head + q_len) % QCAP] = c;
    q_len++;
    pthread_cond_signal(&q_cv);
    pthread_mutex_unlock(&q_mu);
  }
  _exit(0);
}

int main(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 5;
  node_pid = getppid();
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);

  io_stage = mmap(NULL, STAGING, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  fill_stage = mmap(NULL, STAGING, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (io_stage == MAP_FAILED || fill_stage == MAP_FAILED) return 6;
  memset(io_stage, 0, STAGING);
  memset(fill_stage, 0, STAGING);
  cmd_in = stdin;
  serve();
}
