/*
 * Preallocation of an output file's blocks (src/node/preallocate.ts), which Node's fs lacks.
 *
 * The parallel backup path knows the exact size of its output before it writes a byte. Reserving
 * the blocks at once lets a full disk fail the job before any work, and makes each later write
 * cheaper (no per-page delayed-allocation bookkeeping while the writing threads take turns).
 *
 * JavaScript interface:
 *   preallocate(fd, length) -> 0 or an errno value (ENOSPC, EFBIG, EOPNOTSUPP, ...)
 * Only Linux's fallocate(2) is used: posix_fallocate would write zeros where the file system
 * cannot reserve blocks, which costs more than it saves. Elsewhere it returns ENOSYS.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>

static napi_value preallocate(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  int64_t length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "preallocate(fd, length) takes two numbers");
    return NULL;
  }
  if (fd < 0 || length < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd and length must not be negative");
    return NULL;
  }
  int result = ENOSYS;
#ifdef __linux__
  if (length == 0) result = 0;
  else {
    int r;
    do r = fallocate(fd, 0, 0, (off_t)length);
    while (r != 0 && errno == EINTR);
    result = r == 0 ? 0 : errno;
  }
#endif
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "preallocate", NAPI_AUTO_LENGTH, preallocate, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "preallocate", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}
