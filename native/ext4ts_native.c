/*
 * ext4ts_native: the few Linux syscalls Node.js does not expose, as a plain
 * N-API (node_api.h) addon in C. Every function is synchronous, like the rest of
 * the ext4ts core (see DESIGN.md): the caller runs it on whatever thread it is on.
 * One exception, the file writer (fileWriter*), makes its syscalls on threads of
 * its own, for `ext4ts get` (see "background new files" below).
 *
 *   flock(fd, op, nonBlocking)            op: 0 = LOCK_SH, 1 = LOCK_EX, 2 = LOCK_UN
 *   fallocate(fd, mode, offset, length)
 *   blockDeviceSize(fd) -> bytes           ioctl BLKGETSIZE64
 *   blockSectorSize(fd) -> bytes           ioctl BLKSSZGET (logical sector size)
 *   blockDiscard(fd, offset, length)       ioctl BLKDISCARD
 *   blockZeroout(fd, offset, length)       ioctl BLKZEROOUT
 *   sendFd(socketFd, fd)                   sendmsg with SCM_RIGHTS (one data byte)
 *   recvFd(socketFd) -> fd                 blocking recvmsg, SCM_RIGHTS, MSG_CMSG_CLOEXEC
 *   socketpair() -> [fd, fd]               AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC
 *   lutimens(path, aSec, aNsec, mSec, mNsec) utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW)
 *   mknod(path, mode, major, minor)        mknod(path, mode, makedev(major, minor))
 *   lsetxattr(path, name, value)           lsetxattr(path, name, value, size, 0)
 *   lgetxattr(path, name) -> Buffer | undefined
 *                                          lgetxattr; undefined when the attribute is
 *                                          absent (ENODATA) or the filesystem has none
 *                                          (EOPNOTSUPP)
 *   writeNewFile(path, data, mode, aSec, aNsec, mSec, mNsec)
 *                                          a new regular file in one call: open with
 *                                          O_CREAT|O_EXCL and `mode` (the umask applies),
 *                                          write all of data, futimens, close (a file
 *                                          not fully written is removed again)
 *   pwriteBatch(fd, buffers, offsets)      pwrite of each buffers[i] in full at offsets[i]
 *                                          (a Float64Array), in order; one call into C
 *                                          for a whole write-back instead of one per block
 *   fileWriterCreate() -> writer         a writer of new files on its own threads
 *   fileWriterAdd(writer, path, data, mode, aSec, aNsec, mSec, mNsec) -> waiting
 *                                          queues what writeNewFile would do (data
 *                                          copied); returns how many failures wait
 *   fileWriterAddFromFd(writer, path, fd, offset, length, source, mode, aSec, aNsec, mSec, mNsec) -> waiting
 *                                          the same, the data read by the writer's
 *                                          thread from fd (pread) just before; `source`
 *                                          names it if that read fails
 *   fileWriterTake(writer) -> failures     the failures so far, without waiting
 *   fileWriterDrain(writer) -> failures    waits until every queued file is written,
 *                                          then the failures: [{path (Buffer), code,
 *                                          errno, syscall, message, source (Buffer, only
 *                                          when reading the source failed)}]
 *   adviseWillNeed(fd, offset, length)     posix_fadvise(POSIX_FADV_WILLNEED): the kernel
 *                                          starts reading the range into the page cache
 *                                          and the call returns at once
 *   clockCoarse(out)                       out[0], out[1] = seconds, nanoseconds of
 *                                          CLOCK_REALTIME_COARSE (the kernel's inode clock);
 *                                          out is a Float64Array, nothing is allocated
 *   inodeChecksumsOk(records, inodeSize, fsSeed, firstIno, out) -> count
 *                                          metadata_csum check of every inode record in
 *                                          `records` (a run of an inode table; record i is
 *                                          inode firstIno + i): out[i] = 1 when its stored
 *                                          checksum matches, else 0; returns how many
 *                                          matched. Pure computation, no syscall: one call
 *                                          per inode-table block instead of one CRC call
 *                                          (and a copy of the record) per inode
 *
 * Paths are a string (encoded as UTF-8) or a Buffer/Uint8Array of raw bytes (names
 * that are not UTF-8); they must not contain a NUL byte (EINVAL) and must be shorter
 * than PATH_MAX bytes (ENAMETOOLONG, as the kernel would say).
 *
 * Errors: a failed syscall throws an Error with `code` = errno name ("EAGAIN"),
 * `errno` = the positive errno number, `syscall` = the syscall's name, and a message
 * "EAGAIN: Resource temporarily unavailable, flock". Bad arguments (not an integer,
 * negative, above 2^53) throw the same shape with code "EINVAL" and syscall set to
 * the function's name, before any syscall is made; a non-number argument throws a
 * TypeError with code "ERR_INVALID_ARG_TYPE".
 *
 * Byte offsets and lengths are JS numbers: integers in [0, 2^53] are exact in a
 * double and in an int64, so they convert without loss; anything else is rejected.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif

#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* 2^53: the largest integer below which every integer is exact in a double. */
#define MAX_EXACT 9007199254740992.0

/* ---------------------------------------------------------------- errors */

/* errno number -> name. A table of our own rather than strerrorname_np (glibc
 * 2.32+ only) or uv_err_name (which says ENOTSUP for EOPNOTSUPP). Where two names
 * share a number on Linux (EAGAIN/EWOULDBLOCK, EOPNOTSUPP/ENOTSUP, EDEADLK/EDEADLOCK)
 * the first listed wins. */
static const char *errno_name(int err) {
  switch (err) {
#define NAME(e) case e: return #e;
    NAME(EPERM) NAME(ENOENT) NAME(ESRCH) NAME(EINTR) NAME(EIO) NAME(ENXIO)
    NAME(E2BIG) NAME(ENOEXEC) NAME(EBADF) NAME(ECHILD) NAME(EAGAIN) NAME(ENOMEM)
    NAME(EACCES) NAME(EFAULT) NAME(ENOTBLK) NAME(EBUSY) NAME(EEXIST) NAME(EXDEV)
    NAME(ENODEV) NAME(ENOTDIR) NAME(EISDIR) NAME(EINVAL) NAME(ENFILE) NAME(EMFILE)
    NAME(ENOTTY) NAME(ETXTBSY) NAME(EFBIG) NAME(ENOSPC) NAME(ESPIPE) NAME(EROFS)
    NAME(EMLINK) NAME(EPIPE) NAME(EDOM) NAME(ERANGE) NAME(EDEADLK)
    NAME(ENAMETOOLONG) NAME(ENOLCK) NAME(ENOSYS) NAME(ENOTEMPTY) NAME(ELOOP)
    NAME(ENOMSG) NAME(ENODATA) NAME(EPROTO) NAME(EOVERFLOW) NAME(EBADFD)
    NAME(ENOTSOCK) NAME(EDESTADDRREQ) NAME(EMSGSIZE) NAME(EPROTOTYPE)
    NAME(ENOPROTOOPT) NAME(EPROTONOSUPPORT) NAME(EOPNOTSUPP) NAME(EAFNOSUPPORT)
    NAME(EADDRINUSE) NAME(ENETDOWN) NAME(ECONNABORTED) NAME(ECONNRESET)
    NAME(ENOBUFS) NAME(EISCONN) NAME(ENOTCONN) NAME(ETIMEDOUT) NAME(ECONNREFUSED)
    NAME(EALREADY) NAME(EINPROGRESS) NAME(ESTALE) NAME(EUCLEAN) NAME(EDQUOT)
    NAME(ENOMEDIUM) NAME(ECANCELED) NAME(ENOKEY) NAME(EOWNERDEAD)
#undef NAME
    default: return NULL;
  }
}

/* The errno's name, or "E<number>" written into `buf` (32 bytes) for one without. */
static const char *errno_code(int err, char *buf) {
  const char *code = errno_name(err);
  if (code != NULL) return code;
  snprintf(buf, 32, "E%d", err);
  return buf;
}

/* Throw Error{code, errno, syscall}. Returns NULL so callers can `return throw_...`. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *detail) {
  char codebuf[32];
  const char *code = errno_code(err, codebuf);
  char message[512];
  if (detail != NULL) {
    snprintf(message, sizeof message, "%s: %s, %s", code, detail, syscall);
  } else {
    snprintf(message, sizeof message, "%s: %s, %s", code, strerror(err), syscall);
  }

  napi_value js_code, js_message, js_error, js_errno, js_syscall;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) != napi_ok ||
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &js_message) != napi_ok ||
      napi_create_error(env, js_code, js_message, &js_error) != napi_ok ||
      napi_create_int32(env, err, &js_errno) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall) != napi_ok ||
      napi_set_named_property(env, js_error, "errno", js_errno) != napi_ok ||
      napi_set_named_property(env, js_error, "syscall", js_syscall) != napi_ok) {
    /* Could not build the error object (an exception may already be pending). */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, code, message);
    return NULL;
  }
  napi_throw(env, js_error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *fn, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", fn, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* ---------------------------------------------------------------- arguments */

#define MAX_ARGS 12

/* Fetch exactly `want` arguments. Returns 0 on success, -1 with an exception thrown. */
static int get_args(napi_env env, napi_callback_info info, const char *fn, size_t want, napi_value *argv) {
  size_t argc = MAX_ARGS;
  napi_value all[MAX_ARGS];
  if (napi_get_cb_info(env, info, &argc, all, NULL, NULL) != napi_ok) {
    throw_type(env, fn, "cannot read arguments");
    return -1;
  }
  if (argc < want) {
    char what[96];
    snprintf(what, sizeof what, "expected %zu arguments, got %zu", want, argc);
    throw_type(env, fn, what);
    return -1;
  }
  for (size_t i = 0; i < want; i++) argv[i] = all[i];
  return 0;
}

/* A non-negative integer no larger than `max` (itself <= 2^53). */
static int get_uint(napi_env env, napi_value value, const char *fn, const char *name, double max, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) {
    char what[96];
    snprintf(what, sizeof what, "%s must be a number", name);
    throw_type(env, fn, what);
    return -1;
  }
  double d;
  napi_get_value_double(env, value, &d);
  if (!isfinite(d) || d != floor(d) || d < 0 || d > max) {
    char what[128];
    snprintf(what, sizeof what, "%s must be an integer in [0, %.0f], got %.17g", name, max, d);
    throw_errno(env, EINVAL, fn, what);
    return -1;
  }
  *out = d;
  return 0;
}

static int get_fd(napi_env env, napi_value value, const char *fn, const char *name, int *out) {
  double d;
  if (get_uint(env, value, fn, name, 2147483647.0, &d) != 0) return -1;
  *out = (int)d;
  return 0;
}

static int get_bool(napi_env env, napi_value value, const char *fn, const char *name, bool *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_boolean) {
    char what[96];
    snprintf(what, sizeof what, "%s must be a boolean", name);
    throw_type(env, fn, what);
    return -1;
  }
  napi_get_value_bool(env, value, out);
  return 0;
}

/* offset and length in bytes, each an integer in [0, 2^53], and offset+length <= 2^53. */
static int get_range(napi_env env, napi_value *argv, const char *fn, uint64_t *offset, uint64_t *length) {
  double off, len;
  if (get_uint(env, argv[0], fn, "offset", MAX_EXACT, &off) != 0) return -1;
  if (get_uint(env, argv[1], fn, "length", MAX_EXACT, &len) != 0) return -1;
  /* In integers: the double sum rounds (2^53 + 1 comes out as 2^53). */
  if ((uint64_t)off + (uint64_t)len > (uint64_t)MAX_EXACT) {
    throw_errno(env, EINVAL, fn, "offset + length exceeds 2^53");
    return -1;
  }
  *offset = (uint64_t)off;
  *length = (uint64_t)len;
  return 0;
}

/* An integer in [-2^53, 2^53] (seconds since the epoch, which may be negative). */
static int get_int(napi_env env, napi_value value, const char *fn, const char *name, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) {
    char what[96];
    snprintf(what, sizeof what, "%s must be a number", name);
    throw_type(env, fn, what);
    return -1;
  }
  double d;
  napi_get_value_double(env, value, &d);
  if (!isfinite(d) || d != floor(d) || d < -MAX_EXACT || d > MAX_EXACT) {
    char what[128];
    snprintf(what, sizeof what, "%s must be an integer in [-2^53, 2^53], got %.17g", name, d);
    throw_errno(env, EINVAL, fn, what);
    return -1;
  }
  *out = d;
  return 0;
}

/* The bytes of a Buffer/Uint8Array (any TypedArray view of bytes). Returns 1 with
 * the data pointer and byte length set, 0 when `value` is not such a view (nothing thrown). */
static int get_byte_view(napi_env env, napi_value value, const void **data, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  size_t count;
  void *ptr;
  if (napi_get_typedarray_info(env, value, &type, &count, &ptr, NULL, NULL) != napi_ok) return 0;
  if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array) return 0;
  *data = ptr;
  *length = count;
  return 1;
}

/* The elements of a Float64Array. Returns 1 with the data pointer and element count
 * set, 0 when `value` is not one (nothing thrown). */
static int get_f64_view(napi_env env, napi_value value, double **data, size_t *count) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  void *ptr;
  if (napi_get_typedarray_info(env, value, &type, count, &ptr, NULL, NULL) != napi_ok || type != napi_float64_array) return 0;
  *data = ptr;
  return 1;
}

/* A path as a NUL-terminated string in `out` (PATH_MAX bytes): a string (UTF-8) or a
 * Buffer/Uint8Array of raw bytes. */
static int get_path(napi_env env, napi_value value, const char *fn, const char *syscall, char *out) {
  const void *data;
  size_t length;
  if (get_byte_view(env, value, &data, &length)) {
    if (length >= PATH_MAX) {
      throw_errno(env, ENAMETOOLONG, syscall, NULL);
      return -1;
    }
    if (length > 0) memcpy(out, data, length);
    out[length] = '\0';
  } else {
    napi_valuetype type;
    if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
      throw_type(env, fn, "path must be a string, a Buffer or a Uint8Array");
      return -1;
    }
    /* Ask for the length first: a longer string would be silently truncated. */
    if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
      throw_type(env, fn, "cannot read the path");
      return -1;
    }
    if (length >= PATH_MAX) {
      throw_errno(env, ENAMETOOLONG, syscall, NULL);
      return -1;
    }
    napi_get_value_string_utf8(env, value, out, PATH_MAX, &length);
  }
  if (memchr(out, '\0', length) != NULL) {
    throw_errno(env, EINVAL, fn, "path must not contain a NUL byte");
    return -1;
  }
  return 0;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

/* ---------------------------------------------------------------- flock */

static napi_value js_flock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  double op;
  bool non_blocking;
  if (get_args(env, info, "flock", 3, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "flock", "fd", &fd) != 0) return NULL;
  if (get_uint(env, argv[1], "flock", "op", 2, &op) != 0) return NULL;
  if (get_bool(env, argv[2], "flock", "nonBlocking", &non_blocking) != 0) return NULL;

  int operation = op == 0 ? LOCK_SH : op == 1 ? LOCK_EX : LOCK_UN;
  if (non_blocking) operation |= LOCK_NB;
  int rc;
  do rc = flock(fd, operation); while (rc != 0 && errno == EINTR);
  if (rc != 0) return throw_errno(env, errno, "flock", NULL);
  return undefined(env);
}

/* ---------------------------------------------------------------- fallocate */

static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  double mode;
  uint64_t offset, length;
  if (get_args(env, info, "fallocate", 4, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "fallocate", "fd", &fd) != 0) return NULL;
  if (get_uint(env, argv[1], "fallocate", "mode", 2147483647.0, &mode) != 0) return NULL;
  if (get_range(env, argv + 2, "fallocate", &offset, &length) != 0) return NULL;

  int rc;
  do rc = fallocate(fd, (int)mode, (off_t)offset, (off_t)length); while (rc != 0 && errno == EINTR);
  if (rc != 0) return throw_errno(env, errno, "fallocate", NULL);
  return undefined(env);
}

/* ---------------------------------------------------------------- block device ioctls */

static napi_value js_block_device_size(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (get_args(env, info, "blockDeviceSize", 1, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "blockDeviceSize", "fd", &fd) != 0) return NULL;
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) return throw_errno(env, errno, "ioctl(BLKGETSIZE64)", NULL);
  if (size > (uint64_t)MAX_EXACT) return throw_errno(env, EOVERFLOW, "ioctl(BLKGETSIZE64)", "device size exceeds 2^53 bytes");
  return number(env, (double)size);
}

static napi_value js_block_sector_size(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (get_args(env, info, "blockSectorSize", 1, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "blockSectorSize", "fd", &fd) != 0) return NULL;
  int size = 0;
  if (ioctl(fd, BLKSSZGET, &size) != 0) return throw_errno(env, errno, "ioctl(BLKSSZGET)", NULL);
  return number(env, (double)size);
}

static napi_value block_range_ioctl(napi_env env, napi_callback_info info, const char *fn,
                                    unsigned long request, const char *syscall) {
  napi_value argv[3];
  int fd;
  uint64_t offset, length;
  if (get_args(env, info, fn, 3, argv) != 0) return NULL;
  if (get_fd(env, argv[0], fn, "fd", &fd) != 0) return NULL;
  if (get_range(env, argv + 1, fn, &offset, &length) != 0) return NULL;
  uint64_t range[2] = {offset, length};
  if (ioctl(fd, request, range) != 0) return throw_errno(env, errno, syscall, NULL);
  return undefined(env);
}

static napi_value js_block_discard(napi_env env, napi_callback_info info) {
  return block_range_ioctl(env, info, "blockDiscard", BLKDISCARD, "ioctl(BLKDISCARD)");
}

static napi_value js_block_zeroout(napi_env env, napi_callback_info info) {
  return block_range_ioctl(env, info, "blockZeroout", BLKZEROOUT, "ioctl(BLKZEROOUT)");
}

/* ---------------------------------------------------------------- fd passing */

static napi_value js_send_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int sock, fd;
  if (get_args(env, info, "sendFd", 2, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "sendFd", "socketFd", &sock) != 0) return NULL;
  if (get_fd(env, argv[1], "sendFd", "fd", &fd) != 0) return NULL;

  char byte = 0;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendmsg", NULL);
  return undefined(env);
}

static napi_value js_recv_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int sock;
  if (get_args(env, info, "recvFd", 1, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "recvFd", "socketFd", &sock) != 0) return NULL;

  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  /* Room for a few descriptors so that extra ones a peer sends are received (and
   * closed below) instead of being dropped with MSG_CTRUNC. */
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(8 * sizeof(int))];
  } control;
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;

  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "recvmsg", NULL);

  int received = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int one;
      memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (received < 0) received = one;
      else close(one); /* keep the first, never leak the rest */
    }
  }
  if (received < 0) {
    if (n == 0) return throw_errno(env, ENOMSG, "recvmsg", "peer closed the socket without sending a file descriptor");
    if (msg.msg_flags & MSG_CTRUNC) return throw_errno(env, ENOMSG, "recvmsg", "control message truncated, no file descriptor received");
    return throw_errno(env, ENOMSG, "recvmsg", "message carried no file descriptor");
  }
  return number(env, (double)received);
}

static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return throw_errno(env, errno, "socketpair", NULL);
  napi_value array, a, b;
  if (napi_create_array_with_length(env, 2, &array) != napi_ok ||
      napi_create_int32(env, fds[0], &a) != napi_ok ||
      napi_create_int32(env, fds[1], &b) != napi_ok ||
      napi_set_element(env, array, 0, a) != napi_ok ||
      napi_set_element(env, array, 1, b) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ENOMEM", "socketpair: cannot build the result array");
    return NULL;
  }
  return array;
}

/* ---------------------------------------------------------------- file metadata */

static napi_value js_lutimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char path[PATH_MAX];
  double a_sec, a_nsec, m_sec, m_nsec;
  if (get_args(env, info, "lutimens", 5, argv) != 0) return NULL;
  if (get_path(env, argv[0], "lutimens", "utimensat", path) != 0) return NULL;
  if (get_int(env, argv[1], "lutimens", "atimeSec", &a_sec) != 0) return NULL;
  if (get_uint(env, argv[2], "lutimens", "atimeNsec", 999999999.0, &a_nsec) != 0) return NULL;
  if (get_int(env, argv[3], "lutimens", "mtimeSec", &m_sec) != 0) return NULL;
  if (get_uint(env, argv[4], "lutimens", "mtimeNsec", 999999999.0, &m_nsec) != 0) return NULL;

  struct timespec ts[2];
  ts[0].tv_sec = (time_t)a_sec;
  ts[0].tv_nsec = (long)a_nsec;
  ts[1].tv_sec = (time_t)m_sec;
  ts[1].tv_nsec = (long)m_nsec;
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, errno, "utimensat", NULL);
  return undefined(env);
}

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[PATH_MAX];
  double mode, major_, minor_;
  if (get_args(env, info, "mknod", 4, argv) != 0) return NULL;
  if (get_path(env, argv[0], "mknod", "mknod", path) != 0) return NULL;
  if (get_uint(env, argv[1], "mknod", "mode", 4294967295.0, &mode) != 0) return NULL;
  if (get_uint(env, argv[2], "mknod", "major", 4294967295.0, &major_) != 0) return NULL;
  if (get_uint(env, argv[3], "mknod", "minor", 4294967295.0, &minor_) != 0) return NULL;

  if (mknod(path, (mode_t)mode, makedev((unsigned int)major_, (unsigned int)minor_)) != 0) {
    return throw_errno(env, errno, "mknod", NULL);
  }
  return undefined(env);
}

/* XATTR_NAME_MAX (255) bytes and a NUL; longer names are refused with ERANGE, as the kernel does. */
#define NAME_BUF 256

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[PATH_MAX];
  char name[NAME_BUF];
  if (get_args(env, info, "lsetxattr", 3, argv) != 0) return NULL;
  if (get_path(env, argv[0], "lsetxattr", "lsetxattr", path) != 0) return NULL;

  napi_valuetype type;
  size_t name_len;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_string) return throw_type(env, "lsetxattr", "name must be a string");
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &name_len) != napi_ok) return throw_type(env, "lsetxattr", "cannot read the name");
  if (name_len >= NAME_BUF) return throw_errno(env, ERANGE, "lsetxattr", NULL);
  napi_get_value_string_utf8(env, argv[1], name, sizeof name, &name_len);
  if (memchr(name, '\0', name_len) != NULL) return throw_errno(env, EINVAL, "lsetxattr", "name must not contain a NUL byte");

  const void *value;
  size_t size;
  if (!get_byte_view(env, argv[2], &value, &size)) return throw_type(env, "lsetxattr", "value must be a Buffer or a Uint8Array");
  static const char empty = 0;
  if (value == NULL) value = &empty; /* a zero-length view may have no storage */

  if (lsetxattr(path, name, value, size, 0) != 0) return throw_errno(env, errno, "lsetxattr", NULL);
  return undefined(env);
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX];
  char name[NAME_BUF];
  if (get_args(env, info, "lgetxattr", 2, argv) != 0) return NULL;
  if (get_path(env, argv[0], "lgetxattr", "lgetxattr", path) != 0) return NULL;

  napi_valuetype type;
  size_t name_len;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_string) return throw_type(env, "lgetxattr", "name must be a string");
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &name_len) != napi_ok) return throw_type(env, "lgetxattr", "cannot read the name");
  if (name_len >= NAME_BUF) return throw_errno(env, ERANGE, "lgetxattr", NULL);
  napi_get_value_string_utf8(env, argv[1], name, sizeof name, &name_len);
  if (memchr(name, '\0', name_len) != NULL) return throw_errno(env, EINVAL, "lgetxattr", "name must not contain a NUL byte");

  /* XATTR_SIZE_MAX is 64 KiB: one buffer of that size holds any value (on the heap:
   * the addon may run on several threads at once). */
  char *value = malloc(65536);
  if (value == NULL) return throw_errno(env, ENOMEM, "lgetxattr", NULL);
  ssize_t size = lgetxattr(path, name, value, 65536);
  if (size < 0) {
    int err = errno;
    free(value);
    if (err == ENODATA || err == EOPNOTSUPP) return undefined(env);
    return throw_errno(env, err, "lgetxattr", NULL);
  }
  napi_value result;
  void *copy;
  napi_status status = napi_create_buffer_copy(env, (size_t)size, value, &copy, &result);
  free(value);
  if (status != napi_ok) return throw_errno(env, ENOMEM, "lgetxattr", NULL);
  return result;
}

/* ---------------------------------------------------------------- new files */

/* pwrite (`writing`) or pread all of `length` bytes at `offset` on, retrying EINTR and
 * going on after short counts; 0, or -1 with errno set (EIO when nothing more moves:
 * the file ends first, or the device takes nothing). */
static int io_all(int fd, char *buf, size_t length, uint64_t offset, bool writing) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = writing ? pwrite(fd, buf + done, length - done, (off_t)(offset + done)) : pread(fd, buf + done, length - done, (off_t)(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    done += (size_t)n;
  }
  return 0;
}

/* ---------------------------------------------------------------- background new files */

/* A writer of new files on threads of its own: `ext4ts get` hands it each small file
 * (path, data, mode, times) and goes on reading the image while the thread makes the
 * syscalls (open O_CREAT|O_EXCL, write, futimens, close: those of writeNewFile). On a
 * machine with two CPUs the image side (user time) and the destination side (system
 * time) then overlap; two writer threads, because the syscalls alone took longer than
 * the image side (`get` of the read benchmark's tree: 0.88 s with two, ~1.0 with one,
 * 1.17 without the writer). Files are handed over in batches (one wakeup per batch, not
 * per file); at most FW_MAX_QUEUED batches are unfinished, after which `add` blocks:
 * memory stays bounded (FW_MAX_QUEUED + 1 arenas of FW_BATCH_BYTES, for files of up to
 * a few MiB). Batches are written in parallel: files of different batches in no set
 * order (the caller drains before anything that needs a file to exist). A file whose
 * data could not all be written is removed (we created it: O_EXCL), so it does not
 * stay behind looking copied. After ENOSPC, EDQUOT or EROFS nothing more is tried (the
 * destination cannot take more): the rest is dropped, and only the first such failure
 * is reported (the other thread may meet one too).
 *
 * The threads make syscalls on their own copies only; they never call into N-API. */

#include <pthread.h>

#define FW_BATCH_FILES 256
#define FW_BATCH_BYTES (2u << 20)
#define FW_THREADS 2
#define FW_MAX_QUEUED (FW_THREADS + 4)
/* The largest file one item takes (its data is held in memory once or twice). */
#define FW_MAX_FILE (16u << 20)

/* One file in a batch's arena: this header, the path (NUL-terminated), then either the
 * data, or (src_fd >= 0) the source's path (NUL-terminated, for error messages): the
 * data is then read by the thread, data_length bytes at src_offset of src_fd. */
typedef struct {
  uint32_t path_length; /* without the NUL */
  uint32_t data_length;
  uint32_t mode;
  int32_t src_fd;
  uint32_t src_path_length;
  uint64_t src_offset;
  struct timespec times[2];
} fw_item;

typedef struct fw_batch {
  struct fw_batch *next;
  char *arena;
  size_t used, capacity;
  uint32_t count;
  /* Where the items read from a source lie: [src_start, src_end) of src_fd, src_bytes
   * of it wanted (src_fd -1: none; -2: several descriptors). See fw_advise. */
  int src_fd;
  uint64_t src_start, src_end, src_bytes;
  bool advised; /* fw_advise done (under the lock) */
} fw_batch;

/* A batch's source data is read ahead (POSIX_FADV_WILLNEED) when it lies this densely:
 * the span at most twice the bytes wanted plus this much, and at most FW_ADVISE_MAX. */
#define FW_ADVISE_SLACK (256u << 10)
#define FW_ADVISE_MAX (64u << 20)

typedef struct {
  char *path;
  char *source; /* the item's source path when reading it failed, else NULL */
  int err;
  const char *syscall;
} fw_failure;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t work; /* the threads wait for a batch */
  pthread_cond_t done; /* `add` and `drain` wait for the threads */
  pthread_t threads[FW_THREADS];
  uint32_t started; /* threads running */
  bool quit;
  fw_batch *building;        /* being filled by `add` (JS thread only) */
  fw_batch *head, *tail;     /* handed over, not yet taken by the thread */
  fw_batch *spare;           /* finished batches kept for reuse: their memory is
                                already faulted in (a fresh 2 MiB arena per batch cost
                                more in page faults than the copying itself) */
  uint32_t queued;           /* batches handed over and not finished */
  bool stopped;              /* the destination is full or read-only */
  fw_failure *failures;
  uint32_t failure_count, failure_capacity;
  uint32_t unrecorded; /* failures that could not be recorded (out of memory) */
} file_writer;

/* The destination cannot take more (get.ts's DEST_FATAL, the same three). */
static bool fw_fatal(int err) {
  return err == ENOSPC || err == EDQUOT || err == EROFS;
}

/* Records a failure (under the lock). When even that record cannot be allocated, the
 * failure is counted in `unrecorded`, and `take` reports the count as one more
 * failure (ENOMEM, path "(unknown)"): never silently dropped. */
static void fw_fail(file_writer *w, const char *path, const char *source, int err, const char *syscall) {
  if (w->failure_count == w->failure_capacity) {
    uint32_t capacity = w->failure_capacity == 0 ? 16 : w->failure_capacity * 2;
    fw_failure *grown = realloc(w->failures, capacity * sizeof *grown);
    if (grown == NULL) {
      w->unrecorded++;
      return;
    }
    w->failures = grown;
    w->failure_capacity = capacity;
  }
  char *copy = strdup(path);
  char *source_copy = source == NULL ? NULL : strdup(source);
  if (copy == NULL || (source != NULL && source_copy == NULL)) {
    free(copy);
    free(source_copy);
    w->unrecorded++;
    return;
  }
  w->failures[w->failure_count++] = (fw_failure){copy, source_copy, err, syscall};
}

/* One file: returns 0, or the errno with *syscall set. */
static int fw_write_one(const char *path, const char *data, const fw_item *item, const char **syscall) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)item->mode);
  if (fd < 0) {
    *syscall = "open";
    return errno;
  }
  if (item->data_length > 0 && io_all(fd, (char *)data, item->data_length, 0, true) != 0) {
    int err = errno;
    close(fd);
    unlink(path);
    *syscall = "write";
    return err;
  }
  if (futimens(fd, item->times) != 0) {
    int err = errno;
    close(fd);
    *syscall = "futimens";
    return err;
  }
  if (close(fd) != 0) {
    *syscall = "close";
    return errno;
  }
  return 0;
}

/* Writes the files of one batch (without the lock), reading from a source where an
 * item says so into *read_buffer (grown as needed, kept by the caller). */
static void fw_process(file_writer *w, const fw_batch *b, char **read_buffer, size_t *read_capacity) {
  size_t at = 0;
  for (uint32_t i = 0; i < b->count; i++) {
    if (__atomic_load_n(&w->stopped, __ATOMIC_RELAXED)) break;
    fw_item item;
    memcpy(&item, b->arena + at, sizeof item);
    const char *path = b->arena + at + sizeof item;
    const char *data = path + item.path_length + 1;
    const char *source = NULL;
    if (item.src_fd >= 0) {
      source = data;
      at += sizeof item + item.path_length + 1 + item.src_path_length + 1;
    } else {
      at += sizeof item + item.path_length + 1 + item.data_length;
    }
    const char *syscall = NULL;
    int err = 0;
    bool read_failed = false; /* reading the source failed (not writing the file) */
    if (source != NULL) {
      /* The data comes from the source: read it all before creating anything. */
      if (item.data_length > *read_capacity) {
        char *grown = realloc(*read_buffer, item.data_length);
        if (grown == NULL) {
          err = ENOMEM;
          syscall = "read";
        } else {
          *read_buffer = grown;
          *read_capacity = item.data_length;
        }
      }
      if (err == 0 && io_all(item.src_fd, *read_buffer, item.data_length, item.src_offset, false) != 0) {
        err = errno;
        syscall = "read";
      }
      read_failed = err != 0;
      data = *read_buffer;
    }
    if (err == 0) err = fw_write_one(path, data, &item, &syscall);
    if (err != 0) {
      pthread_mutex_lock(&w->lock);
      if (read_failed || !fw_fatal(err)) {
        fw_fail(w, path, read_failed ? source : NULL, err, syscall);
      } else if (!w->stopped) {
        fw_fail(w, path, NULL, err, syscall);
        __atomic_store_n(&w->stopped, true, __ATOMIC_RELAXED);
      }
      pthread_mutex_unlock(&w->lock);
    }
  }
}

/* A batch's source span, copied out of it under the lock (see fw_advise). */
typedef struct {
  int fd;
  uint64_t start, end, bytes;
} fw_span;

/* The span to advise for batch `b` (under the lock, once per batch); fd -1 if none. */
static fw_span fw_advice(fw_batch *b) {
  fw_span none = {-1, 0, 0, 0};
  if (b == NULL || b->advised) return none;
  b->advised = true;
  if (b->src_fd < 0 || b->src_end <= b->src_start) return none;
  return (fw_span){b->src_fd, b->src_start, b->src_end, b->src_bytes};
}

/* Asks the kernel to read a batch's source data ahead, in large requests, when it lies
 * densely enough in one descriptor (files copied out of an image lie mostly in the
 * order they are written): a thread's reads then find it arriving instead of waiting
 * for the disk file by file, the two threads' interleaved reads not being sequential
 * enough for the kernel's own read-ahead. Advice only: a failure changes nothing. */
static void fw_advise(fw_span span) {
  if (span.fd < 0) return;
  uint64_t length = span.end - span.start;
  if (length > FW_ADVISE_MAX || length > 2 * span.bytes + FW_ADVISE_SLACK) return;
  (void)posix_fadvise(span.fd, (off_t)span.start, (off_t)length, POSIX_FADV_WILLNEED);
}

static void *fw_thread(void *arg) {
  file_writer *w = arg;
  char *read_buffer = NULL; /* for files read from a source descriptor */
  size_t read_capacity = 0;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (w->head == NULL && !w->quit) pthread_cond_wait(&w->work, &w->lock);
    if (w->head == NULL) break; /* quit, nothing left */
    fw_batch *b = w->head;
    w->head = b->next;
    if (w->head == NULL) w->tail = NULL;
    /* Read ahead this batch's data and the next one's (so that its disk reads overlap
     * this batch's writing), each once; copied under the lock (another thread may take
     * the next batch at once). */
    fw_span mine = fw_advice(b);
    fw_span next = fw_advice(w->head);
    pthread_mutex_unlock(&w->lock);
    fw_advise(mine);
    fw_advise(next);
    fw_process(w, b, &read_buffer, &read_capacity);
    pthread_mutex_lock(&w->lock);
    b->next = w->spare;
    w->spare = b;
    w->queued--;
    pthread_cond_broadcast(&w->done);
  }
  pthread_mutex_unlock(&w->lock);
  free(read_buffer);
  return NULL;
}

/* Hands the batch being built to the threads (starting one more while all are busy, up
 * to FW_THREADS); blocks while FW_MAX_QUEUED batches are unfinished. When not even one
 * thread can be started, writes the batch on the calling thread instead: slower, but
 * nothing queued is lost. */
static void fw_submit(file_writer *w) {
  fw_batch *b = w->building;
  if (b == NULL) return;
  w->building = NULL;
  pthread_mutex_lock(&w->lock);
  if (w->started < FW_THREADS && w->queued >= w->started) {
    if (pthread_create(&w->threads[w->started], NULL, fw_thread, w) == 0) w->started++;
  }
  if (w->started == 0) {
    pthread_mutex_unlock(&w->lock);
    char *read_buffer = NULL;
    size_t read_capacity = 0;
    fw_process(w, b, &read_buffer, &read_capacity);
    free(read_buffer);
    pthread_mutex_lock(&w->lock);
    b->next = w->spare;
    w->spare = b;
    pthread_mutex_unlock(&w->lock);
    return;
  }
  while (w->queued >= FW_MAX_QUEUED) pthread_cond_wait(&w->done, &w->lock);
  b->next = NULL;
  if (w->tail == NULL) w->head = b;
  else w->tail->next = b;
  w->tail = b;
  w->queued++;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->lock);
}

/* Waits until every batch handed over is finished. */
static void fw_wait_idle(file_writer *w) {
  pthread_mutex_lock(&w->lock);
  while (w->queued > 0) pthread_cond_wait(&w->done, &w->lock);
  pthread_mutex_unlock(&w->lock);
}

static void fw_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  file_writer *w = data;
  if (w->building != NULL) {
    free(w->building->arena);
    free(w->building);
    w->building = NULL;
  }
  if (w->started > 0) {
    /* The threads finish what was handed over, then exit. */
    pthread_mutex_lock(&w->lock);
    w->quit = true;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
    for (uint32_t i = 0; i < w->started; i++) pthread_join(w->threads[i], NULL);
  }
  while (w->spare != NULL) {
    fw_batch *next = w->spare->next;
    free(w->spare->arena);
    free(w->spare);
    w->spare = next;
  }
  for (uint32_t i = 0; i < w->failure_count; i++) {
    free(w->failures[i].path);
    free(w->failures[i].source);
  }
  free(w->failures);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->work);
  pthread_cond_destroy(&w->done);
  free(w);
}

static napi_value js_file_writer_create(napi_env env, napi_callback_info info) {
  (void)info;
  file_writer *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, ENOMEM, "fileWriterCreate", NULL);
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->work, NULL);
  pthread_cond_init(&w->done, NULL);
  napi_value external;
  if (napi_create_external(env, w, fw_finalize, NULL, &external) != napi_ok) {
    fw_finalize(env, w, NULL);
    return throw_errno(env, ENOMEM, "fileWriterCreate", NULL);
  }
  return external;
}

static int get_writer(napi_env env, napi_value value, const char *fn, file_writer **out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external || napi_get_value_external(env, value, (void **)out) != napi_ok) {
    throw_type(env, fn, "writer must come from fileWriterCreate");
    return -1;
  }
  return 0;
}

/* How many failures wait to be taken (read under the lock). */
static napi_value failures_waiting(napi_env env, file_writer *w) {
  pthread_mutex_lock(&w->lock);
  uint32_t n = w->failure_count;
  pthread_mutex_unlock(&w->lock);
  return number(env, (double)n);
}

/* Appends an item (its header, path and `tail`: the data, or the source path with its
 * NUL) to the batch being built, handing the batch over first when it is full. NULL
 * with an exception thrown on failure. */
static napi_value fw_append(napi_env env, file_writer *w, fw_item *item, const char *path, const void *tail, size_t tail_length) {
  size_t path_length = strlen(path);
  item->path_length = (uint32_t)path_length;
  size_t need = sizeof *item + path_length + 1 + tail_length;
  fw_batch *b = w->building;
  if (b != NULL && (b->count >= FW_BATCH_FILES || b->used + need > FW_BATCH_BYTES)) {
    fw_submit(w);
    b = NULL;
  }
  if (b == NULL) {
    pthread_mutex_lock(&w->lock);
    b = w->spare;
    if (b != NULL) w->spare = b->next;
    pthread_mutex_unlock(&w->lock);
    if (b == NULL) {
      b = calloc(1, sizeof *b);
      if (b == NULL) return throw_errno(env, ENOMEM, "fileWriterAdd", NULL);
    }
    b->next = NULL;
    b->used = 0;
    b->count = 0;
    b->src_fd = -1;
    b->src_start = b->src_end = b->src_bytes = 0;
    b->advised = false;
    w->building = b;
  }
  if (b->used + need > b->capacity) {
    size_t capacity = b->capacity == 0 ? FW_BATCH_BYTES : b->capacity;
    while (capacity < b->used + need) capacity *= 2;
    char *grown = realloc(b->arena, capacity);
    if (grown == NULL) return throw_errno(env, ENOMEM, "fileWriterAdd", NULL);
    b->arena = grown;
    b->capacity = capacity;
  }
  char *at = b->arena + b->used;
  memcpy(at, item, sizeof *item);
  memcpy(at + sizeof *item, path, path_length + 1);
  if (tail_length > 0) memcpy(at + sizeof *item + path_length + 1, tail, tail_length);
  b->used += need;
  b->count++;
  if (item->src_fd >= 0 && item->data_length > 0) {
    uint64_t start = item->src_offset, end = item->src_offset + item->data_length;
    if (b->src_fd == -1) {
      b->src_fd = item->src_fd;
      b->src_start = start;
      b->src_end = end;
    } else if (b->src_fd != item->src_fd) {
      b->src_fd = -2;
    }
    if (start < b->src_start) b->src_start = start;
    if (end > b->src_end) b->src_end = end;
    b->src_bytes += item->data_length;
  }
  return failures_waiting(env, w);
}

/* mode, atime and mtime from argv[0..4] into `item`. */
static int get_mode_times(napi_env env, napi_value *argv, const char *fn, fw_item *item) {
  double mode, a_sec, a_nsec, m_sec, m_nsec;
  if (get_uint(env, argv[0], fn, "mode", 4095.0, &mode) != 0) return -1;
  if (get_int(env, argv[1], fn, "atimeSec", &a_sec) != 0) return -1;
  if (get_uint(env, argv[2], fn, "atimeNsec", 999999999.0, &a_nsec) != 0) return -1;
  if (get_int(env, argv[3], fn, "mtimeSec", &m_sec) != 0) return -1;
  if (get_uint(env, argv[4], fn, "mtimeNsec", 999999999.0, &m_nsec) != 0) return -1;
  item->mode = (uint32_t)mode;
  item->times[0].tv_sec = (time_t)a_sec;
  item->times[0].tv_nsec = (long)a_nsec;
  item->times[1].tv_sec = (time_t)m_sec;
  item->times[1].tv_nsec = (long)m_nsec;
  return 0;
}

/* A new file holding `data`, with `mode` and the given times, on the calling thread:
 * what the background writer does for one file (fw_write_one: open O_EXCL, never an
 * existing file nor through a symlink; write; futimens; close). A failure throws,
 * naming the syscall; a file whose data could not all be written is removed; after a
 * futimens failure the data is complete and the file stays. */
/* path, data, mode, aSec, aNsec, mSec, mNsec from argv[0..6]: into `path`, `*data` and
 * `item` (src_fd -1: the data is given). -1 with an exception thrown. */
static int get_new_file(napi_env env, napi_value *argv, const char *fn, size_t max_length, char *path, const void **data, fw_item *item) {
  size_t length;
  memset(item, 0, sizeof *item);
  item->src_fd = -1;
  if (get_path(env, argv[0], fn, "open", path) != 0) return -1;
  if (!get_byte_view(env, argv[1], data, &length)) {
    throw_type(env, fn, "data must be a Buffer or a Uint8Array");
    return -1;
  }
  if (length > max_length) {
    throw_errno(env, EFBIG, fn, "data larger than this call takes");
    return -1;
  }
  if (get_mode_times(env, argv + 2, fn, item) != 0) return -1;
  item->data_length = (uint32_t)length;
  return 0;
}

static napi_value js_write_new_file(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  char path[PATH_MAX];
  const void *data;
  fw_item item;
  if (get_args(env, info, "writeNewFile", 7, argv) != 0) return NULL;
  if (get_new_file(env, argv, "writeNewFile", UINT32_MAX, path, &data, &item) != 0) return NULL;
  const char *syscall = NULL;
  int err = fw_write_one(path, data, &item, &syscall);
  if (err != 0) return throw_errno(env, err, syscall, NULL);
  return undefined(env);
}

static napi_value js_file_writer_add(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  file_writer *w;
  char path[PATH_MAX];
  const void *data;
  fw_item item;
  if (get_args(env, info, "fileWriterAdd", 8, argv) != 0) return NULL;
  if (get_writer(env, argv[0], "fileWriterAdd", &w) != 0) return NULL;
  if (get_new_file(env, argv + 1, "fileWriterAdd", FW_MAX_FILE, path, &data, &item) != 0) return NULL;
  return fw_append(env, w, &item, path, data, item.data_length);
}

/* Like fileWriterAdd, the data being `length` bytes at `offset` of `fd`, read by the
 * writer's thread (pread) just before it creates the file; `source` names them in the
 * failure if that read fails. The caller keeps `fd` open until `drain`. */
static napi_value js_file_writer_add_from_fd(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  file_writer *w;
  char path[PATH_MAX];
  char source[PATH_MAX];
  int fd;
  uint64_t offset, length;
  fw_item item;
  memset(&item, 0, sizeof item);
  if (get_args(env, info, "fileWriterAddFromFd", 11, argv) != 0) return NULL;
  if (get_writer(env, argv[0], "fileWriterAddFromFd", &w) != 0) return NULL;
  if (get_path(env, argv[1], "fileWriterAddFromFd", "open", path) != 0) return NULL;
  if (get_fd(env, argv[2], "fileWriterAddFromFd", "fd", &fd) != 0) return NULL;
  if (get_range(env, argv + 3, "fileWriterAddFromFd", &offset, &length) != 0) return NULL;
  if (length > FW_MAX_FILE) return throw_errno(env, EFBIG, "fileWriterAddFromFd", "data larger than the writer takes");
  if (get_path(env, argv[5], "fileWriterAddFromFd", "fileWriterAddFromFd", source) != 0) return NULL;
  if (get_mode_times(env, argv + 6, "fileWriterAddFromFd", &item) != 0) return NULL;
  item.src_fd = fd;
  item.src_offset = offset;
  item.data_length = (uint32_t)length;
  size_t source_length = strlen(source);
  item.src_path_length = (uint32_t)source_length;
  return fw_append(env, w, &item, path, source, source_length + 1);
}

/* One failure as JS sees it: {path (Buffer), code, errno, syscall, message "CODE: text,
 * syscall", source (Buffer) when given}. */
static napi_status failure_object(napi_env env, const char *path, const char *source, int err, const char *syscall, const char *text, napi_value *out) {
  char codebuf[32];
  const char *code = errno_code(err, codebuf);
  char message[512];
  snprintf(message, sizeof message, "%s: %s, %s", code, text, syscall);
  napi_value entry, js_path, js_code, js_errno, js_syscall, js_message;
  void *bytes;
  napi_status status = napi_create_object(env, &entry);
  if (status == napi_ok) status = napi_create_buffer_copy(env, strlen(path), path, &bytes, &js_path);
  if (status == napi_ok) status = napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code);
  if (status == napi_ok) status = napi_create_int32(env, err, &js_errno);
  if (status == napi_ok) status = napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall);
  if (status == napi_ok) status = napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &js_message);
  if (status == napi_ok) status = napi_set_named_property(env, entry, "path", js_path);
  if (status == napi_ok) status = napi_set_named_property(env, entry, "code", js_code);
  if (status == napi_ok) status = napi_set_named_property(env, entry, "errno", js_errno);
  if (status == napi_ok) status = napi_set_named_property(env, entry, "syscall", js_syscall);
  if (status == napi_ok) status = napi_set_named_property(env, entry, "message", js_message);
  if (status == napi_ok && source != NULL) {
    napi_value js_source;
    status = napi_create_buffer_copy(env, strlen(source), source, &bytes, &js_source);
    if (status == napi_ok) status = napi_set_named_property(env, entry, "source", js_source);
  }
  *out = entry;
  return status;
}

/* The failures recorded so far, taken out of the writer (see failure_object). */
static napi_value take_failures(napi_env env, file_writer *w) {
  pthread_mutex_lock(&w->lock);
  fw_failure *list = w->failures;
  uint32_t count = w->failure_count;
  uint32_t unrecorded = w->unrecorded;
  w->failures = NULL;
  w->failure_count = w->failure_capacity = 0;
  w->unrecorded = 0;
  pthread_mutex_unlock(&w->lock);
  napi_value array, entry;
  napi_status status = napi_create_array_with_length(env, count + (unrecorded > 0 ? 1 : 0), &array);
  for (uint32_t i = 0; i < count && status == napi_ok; i++) {
    status = failure_object(env, list[i].path, list[i].source, list[i].err, list[i].syscall, strerror(list[i].err), &entry);
    if (status == napi_ok) status = napi_set_element(env, array, i, entry);
  }
  for (uint32_t i = 0; i < count; i++) {
    free(list[i].path);
    free(list[i].source);
  }
  free(list);
  if (status == napi_ok && unrecorded > 0) {
    char text[128];
    snprintf(text, sizeof text, "%u failure(s) of the file writer could not be recorded (out of memory)", unrecorded);
    status = failure_object(env, "(unknown)", NULL, ENOMEM, "fileWriter", text, &entry);
    if (status == napi_ok) status = napi_set_element(env, array, count, entry);
  }
  if (status != napi_ok) return throw_errno(env, ENOMEM, "fileWriterTake", NULL);
  return array;
}

static napi_value js_file_writer_take(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_writer *w;
  if (get_args(env, info, "fileWriterTake", 1, argv) != 0) return NULL;
  if (get_writer(env, argv[0], "fileWriterTake", &w) != 0) return NULL;
  return take_failures(env, w);
}

static napi_value js_file_writer_drain(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  file_writer *w;
  if (get_args(env, info, "fileWriterDrain", 1, argv) != 0) return NULL;
  if (get_writer(env, argv[0], "fileWriterDrain", &w) != 0) return NULL;
  fw_submit(w);
  fw_wait_idle(w);
  return take_failures(env, w);
}

/* ---------------------------------------------------------------- batched writes */

/* pwrite(fd, buffers[i], offsets[i]) for every i, each in full (short writes go on,
 * EINTR is retried). Stops at the first failure and throws it, with the item's index
 * in the message: the caller then knows nothing about the items from there on. */
static napi_value js_pwrite_batch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  if (get_args(env, info, "pwriteBatch", 3, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "pwriteBatch", "fd", &fd) != 0) return NULL;
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return throw_type(env, "pwriteBatch", "buffers must be an array");
  if (napi_get_array_length(env, argv[1], &count) != napi_ok) return throw_type(env, "pwriteBatch", "cannot read the buffers' length");
  double *offsets = NULL;
  size_t offset_count = 0;
  if (!get_f64_view(env, argv[2], &offsets, &offset_count)) return throw_type(env, "pwriteBatch", "offsets must be a Float64Array");
  if (offset_count < count) return throw_errno(env, EINVAL, "pwriteBatch", "fewer offsets than buffers");
  for (uint32_t i = 0; i < count; i++) {
    double at = offsets[i];
    if (!(at >= 0 && at <= MAX_EXACT) || at != (double)(int64_t)at) return throw_errno(env, EINVAL, "pwriteBatch", "an offset is not an integer in [0, 2^53]");
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    const void *data;
    size_t length;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || !get_byte_view(env, item, &data, &length)) {
      return throw_type(env, "pwriteBatch", "every buffer must be a Buffer or a Uint8Array");
    }
    size_t done = 0;
    while (done < length) {
      ssize_t n = pwrite(fd, (const char *)data + done, length - done, (off_t)((int64_t)offsets[i] + (int64_t)done));
      if (n < 0) {
        if (errno == EINTR) continue;
        char detail[64];
        snprintf(detail, sizeof detail, "item %u of %u", i, count);
        return throw_errno(env, errno, "pwrite", detail);
      }
      if (n == 0) {
        char detail[64];
        snprintf(detail, sizeof detail, "item %u of %u wrote nothing", i, count);
        return throw_errno(env, EIO, "pwrite", detail);
      }
      done += (size_t)n;
    }
  }
  return undefined(env);
}

/* ---------------------------------------------------------------- inode checksums */

/* CRC32C (Castagnoli, reflected polynomial 0x82f63b78) as ext4 uses it: the raw
 * register update, without pre- or post-inversion. Hardware instruction on x86-64
 * with SSE4.2 (checked at run time), else a byte-wise table. */
static uint32_t crc32c_table[256];
static int crc32c_hw_ok = -1; /* -1: not yet probed */

static void crc32c_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    crc32c_table[i] = c;
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  crc32c_hw_ok = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
  crc32c_hw_ok = 0;
#endif
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (n > 0) {
    c32 = __builtin_ia32_crc32qi(c32, *p++);
    n--;
  }
  return c32;
}
#endif

static uint32_t crc32c_raw(uint32_t crc, const uint8_t *p, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (crc32c_hw_ok == 1) return crc32c_hw(crc, p, n);
#endif
  return crc32c_sw(crc, p, n);
}

static uint32_t le16_at(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

/* Offsets in an inode record (see src/ondisk/inode.ts, INODE_OFFSETS). */
#define INODE_GENERATION 0x64
#define INODE_CHECKSUM_LO 0x7c
#define INODE_EXTRA_ISIZE 0x80
#define INODE_CHECKSUM_HI 0x82
#define GOOD_OLD_INODE_SIZE 128

/* Whether one record's stored checksum is the one computed: crc32c from the per-inode
 * seed (fs seed, then the inode number and i_generation as little-endian 32-bit
 * words) over the record with i_checksum_lo, and i_checksum_hi when i_extra_isize
 * covers it, read as zero. 32 bits compared with the high half, else 16. */
static int inode_checksum_ok(const uint8_t *rec, size_t size, uint32_t fs_seed, uint32_t ino) {
  static const uint8_t zero[2] = {0, 0};
  uint8_t word[4];
  word[0] = (uint8_t)ino;
  word[1] = (uint8_t)(ino >> 8);
  word[2] = (uint8_t)(ino >> 16);
  word[3] = (uint8_t)(ino >> 24);
  uint32_t crc = crc32c_raw(fs_seed, word, 4);
  crc = crc32c_raw(crc, rec + INODE_GENERATION, 4);
  int with_hi = 0;
  if (size > GOOD_OLD_INODE_SIZE && size >= INODE_CHECKSUM_HI + 2) {
    uint32_t extra = le16_at(rec + INODE_EXTRA_ISIZE);
    with_hi = INODE_CHECKSUM_HI + 2 <= GOOD_OLD_INODE_SIZE + extra;
  }
  crc = crc32c_raw(crc, rec, INODE_CHECKSUM_LO);
  crc = crc32c_raw(crc, zero, 2);
  uint32_t stored = le16_at(rec + INODE_CHECKSUM_LO);
  if (with_hi) {
    crc = crc32c_raw(crc, rec + INODE_CHECKSUM_LO + 2, INODE_CHECKSUM_HI - (INODE_CHECKSUM_LO + 2));
    crc = crc32c_raw(crc, zero, 2);
    crc = crc32c_raw(crc, rec + INODE_CHECKSUM_HI + 2, size - (INODE_CHECKSUM_HI + 2));
    stored |= le16_at(rec + INODE_CHECKSUM_HI) << 16;
    return crc == stored;
  }
  crc = crc32c_raw(crc, rec + INODE_CHECKSUM_LO + 2, size - (INODE_CHECKSUM_LO + 2));
  return (crc & 0xffff) == stored;
}

static napi_value js_inode_checksums_ok(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (get_args(env, info, "inodeChecksumsOk", 5, argv) != 0) return NULL;
  const void *records;
  size_t length;
  if (!get_byte_view(env, argv[0], &records, &length)) return throw_type(env, "inodeChecksumsOk", "records must be a Buffer or a Uint8Array");
  double inode_size, fs_seed, first_ino;
  if (get_uint(env, argv[1], "inodeChecksumsOk", "inodeSize", 65536.0, &inode_size) != 0) return NULL;
  if (get_uint(env, argv[2], "inodeChecksumsOk", "fsSeed", 4294967295.0, &fs_seed) != 0) return NULL;
  if (get_uint(env, argv[3], "inodeChecksumsOk", "firstIno", 4294967295.0, &first_ino) != 0) return NULL;
  void *out;
  size_t out_length;
  if (!get_byte_view(env, argv[4], (const void **)&out, &out_length)) return throw_type(env, "inodeChecksumsOk", "out must be a Buffer or a Uint8Array");
  size_t size = (size_t)inode_size;
  if (size < GOOD_OLD_INODE_SIZE || size % 4 != 0) return throw_errno(env, EINVAL, "inodeChecksumsOk", "inodeSize must be a multiple of 4, at least 128");
  size_t count = length / size;
  if (out_length < count) return throw_errno(env, EINVAL, "inodeChecksumsOk", "out is shorter than the number of records");
  if (first_ino + (double)count - 1 > 4294967295.0) return throw_errno(env, EINVAL, "inodeChecksumsOk", "inode numbers past 2^32");
  if (crc32c_hw_ok < 0) crc32c_init();
  uint8_t *flags = out;
  uint32_t ok = 0;
  for (size_t i = 0; i < count; i++) {
    int match = inode_checksum_ok((const uint8_t *)records + i * size, size, (uint32_t)fs_seed, (uint32_t)first_ino + (uint32_t)i);
    flags[i] = (uint8_t)match;
    ok += (uint32_t)match;
  }
  napi_value result;
  if (napi_create_uint32(env, ok, &result) != napi_ok) return NULL;
  return result;
}

/* ---------------------------------------------------------------- clockCoarse */

/*
 * clockCoarse(out): out[0] = seconds, out[1] = nanoseconds of CLOCK_REALTIME_COARSE,
 * the clock the kernel stamps inodes with (current_time). Returns nothing; `out` is a
 * Float64Array of at least 2 elements, reused by the caller, so nothing is allocated.
 */
static napi_value js_clock_coarse(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, "clockCoarse", 1, argv) != 0) return NULL;
  double *out;
  size_t length;
  if (!get_f64_view(env, argv[0], &out, &length) || length < 2) return throw_type(env, "clockCoarse", "out must be a Float64Array of at least 2 elements");
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0) return throw_errno(env, errno, "clock_gettime", NULL);
  out[0] = (double)ts.tv_sec;
  out[1] = (double)ts.tv_nsec;
  return undefined(env);
}

/* ---------------------------------------------------------------- adviseWillNeed */

/*
 * adviseWillNeed(fd, offset, length): posix_fadvise(POSIX_FADV_WILLNEED). The kernel
 * queues reads of the range's missing pages and returns without waiting for them, so
 * a caller that knows what it reads next can have the device work on it meanwhile.
 * posix_fadvise returns the error number instead of setting errno.
 */
static napi_value js_advise_will_need(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  uint64_t offset, length;
  if (get_args(env, info, "adviseWillNeed", 3, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "adviseWillNeed", "fd", &fd) != 0) return NULL;
  if (get_range(env, argv + 1, "adviseWillNeed", &offset, &length) != 0) return NULL;
  int rc = posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_WILLNEED);
  if (rc != 0) return throw_errno(env, rc, "posix_fadvise", NULL);
  return undefined(env);
}

/* ---------------------------------------------------------------- readSpin */

/*
 * readSpin(fd, buffer, spinMicros) -> bytes: read(2) into `buffer` that, when nothing is
 * there yet, keeps trying for up to `spinMicros` (yielding the CPU between tries) before
 * it blocks in poll(2). Made for a FUSE server's /dev/fuse: a client sends its next
 * request a few microseconds after the reply to the last one, and a server thread that
 * went to sleep in the meantime has to be woken by the kernel, which on a virtual
 * machine costs an interrupt between CPUs. The descriptor must be non-blocking
 * (setNonBlocking, once: not a fcntl per request); a blocking one would sleep in read(2)
 * without looking. Errors are thrown with their errno code (EINTR is retried).
 */
static napi_value js_read_spin(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  double spin_us;
  void *data;
  size_t length;
  if (get_args(env, info, "readSpin", 3, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "readSpin", "fd", &fd) != 0) return NULL;
  if (!get_byte_view(env, argv[1], (const void **)&data, &length) || length == 0) return throw_type(env, "readSpin", "buffer must be a non-empty Uint8Array");
  if (get_uint(env, argv[2], "readSpin", "spinMicros", 1000000.0, &spin_us) != 0) return NULL;
  struct timespec start = {0, 0};
  bool spinning = spin_us > 0;
  bool started = false;
  for (;;) {
    ssize_t n = read(fd, data, length);
    if (n >= 0) {
      napi_value out;
      napi_create_double(env, (double)n, &out);
      return out;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return throw_errno(env, errno, "read", NULL);
    if (spinning) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (!started) {
        start = now;
        started = true;
      }
      double elapsed_us = (double)(now.tv_sec - start.tv_sec) * 1e6 + (double)(now.tv_nsec - start.tv_nsec) / 1e3;
      if (elapsed_us < spin_us) {
        sched_yield();
        continue;
      }
      spinning = false;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return throw_errno(env, errno, "poll", NULL);
  }
}

/* setNonBlocking(fd): set O_NONBLOCK on the open file description (for readSpin). */
static napi_value js_set_non_blocking(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (get_args(env, info, "setNonBlocking", 1, argv) != 0) return NULL;
  if (get_fd(env, argv[0], "setNonBlocking", "fd", &fd) != 0) return NULL;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return throw_errno(env, errno, "fcntl", NULL);
  if ((flags & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return throw_errno(env, errno, "fcntl", NULL);
  return undefined(env);
}

/* ---------------------------------------------------------------- module */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
    {"readSpin", NULL, js_read_spin, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setNonBlocking", NULL, js_set_non_blocking, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_enumerable, NULL},
    {"blockDeviceSize", NULL, js_block_device_size, NULL, NULL, NULL, napi_enumerable, NULL},
    {"blockSectorSize", NULL, js_block_sector_size, NULL, NULL, NULL, napi_enumerable, NULL},
    {"blockDiscard", NULL, js_block_discard, NULL, NULL, NULL, napi_enumerable, NULL},
    {"blockZeroout", NULL, js_block_zeroout, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sendFd", NULL, js_send_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"recvFd", NULL, js_recv_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"socketpair", NULL, js_socketpair, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lutimens", NULL, js_lutimens, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pwriteBatch", NULL, js_pwrite_batch, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"writeNewFile", NULL, js_write_new_file, NULL, NULL, NULL, napi_enumerable, NULL},
    {"inodeChecksumsOk", NULL, js_inode_checksums_ok, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fileWriterCreate", NULL, js_file_writer_create, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fileWriterAdd", NULL, js_file_writer_add, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fileWriterAddFromFd", NULL, js_file_writer_add_from_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fileWriterTake", NULL, js_file_writer_take, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fileWriterDrain", NULL, js_file_writer_drain, NULL, NULL, NULL, napi_enumerable, NULL},
    {"clockCoarse", NULL, js_clock_coarse, NULL, NULL, NULL, napi_enumerable, NULL},
    {"adviseWillNeed", NULL, js_advise_will_need, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
