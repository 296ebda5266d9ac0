/*
 * In-place AES-256-GCM for the parallel backup path (src/node/native-aes-gcm.ts).
 *
 * node:crypto's Cipher.update returns a fresh buffer for every call: for AES-GCM it allocates and
 * zero-fills one buffer a byte too long, encrypts into it, then allocates, zero-fills and copies
 * into a second one of the right length. On large files that costs as much as the AES itself.
 * This addon only binds OpenSSL's EVP interface (the OpenSSL inside the running Node process) so
 * that a chunk is encrypted or decrypted where it already is. No cryptography is implemented here.
 *
 * JavaScript interface (every argument checked; misuse throws, never crashes):
 *   create() -> handle                       a reusable AES-256-GCM context
 *   start(handle, encrypt, key, nonce, aad)  key: 32 bytes, nonce: 12 bytes, aad: any length
 *   update(handle, data)                     encrypts or decrypts data in place
 *   finishSeal(handle, tag)                  writes the 16-byte tag (after start(encrypt=true))
 *   finishOpen(handle, tag) -> boolean       true only if the 16-byte tag verifies
 * Byte arguments are Uint8Arrays (Buffers included).
 */
#define NAPI_VERSION 8
#include <limits.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>

enum state { IDLE, SEALING, OPENING };

/* Tells our contexts from other externals handed in by mistake. */
#define MAGIC 0x626b7667u

typedef struct {
  unsigned magic;
  EVP_CIPHER_CTX *ctx;
  enum state state;
} gcm_context;

static napi_value fail(napi_env env, const char *code, const char *message, bool type) {
  if (type) napi_throw_type_error(env, code, message);
  else napi_throw_error(env, code, message);
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  gcm_context *g = data;
  g->magic = 0;
  EVP_CIPHER_CTX_free(g->ctx);
  free(g);
}

/* Reads argument `i` as a Uint8Array; false (with a TypeError pending) if it is not one. */
static bool bytes_arg(napi_env env, napi_value v, const char *what, unsigned char **data, size_t *len) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) {
    fail(env, "ERR_INVALID_ARG_TYPE", what, true);
    return false;
  }
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    fail(env, "ERR_INVALID_ARG_TYPE", what, true);
    return false;
  }
  *data = p;
  return true;
}

static bool context_arg(napi_env env, napi_value v, gcm_context **g) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, (void **)g) != napi_ok ||
      *g == NULL || (*g)->magic != MAGIC) {
    fail(env, "ERR_INVALID_ARG_TYPE", "expected an AES-GCM context from create()", true);
    return false;
  }
  return true;
}

/* Fetches exactly `want` arguments; the first must be a context. */
static bool args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, gcm_context **g) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    fail(env, "ERR_MISSING_ARGS", "missing arguments", true);
    return false;
  }
  return g == NULL || context_arg(env, argv[0], g);
}

static napi_value create(napi_env env, napi_callback_info info) {
  (void)info;
  gcm_context *g = calloc(1, sizeof *g);
  if (g == NULL) return fail(env, "ERR_MEMORY", "out of memory", false);
  g->magic = MAGIC;
  g->ctx = EVP_CIPHER_CTX_new();
  /* The cipher is chosen once; start() only sets the direction, key and nonce (12 bytes, the default). */
  if (g->ctx == NULL || EVP_CipherInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, 1) != 1) {
    EVP_CIPHER_CTX_free(g->ctx);
    free(g);
    return fail(env, "ERR_CRYPTO", "OpenSSL could not set up AES-256-GCM", false);
  }
  napi_value handle;
  if (napi_create_external(env, g, finalize, NULL, &handle) != napi_ok) {
    finalize(env, g, NULL);
    return fail(env, "ERR_MEMORY", "could not create the context", false);
  }
  return handle;
}

static napi_value start(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  gcm_context *g;
  if (!args(env, info, 5, argv, &g)) return NULL;
  bool encrypt;
  if (napi_get_value_bool(env, argv[1], &encrypt) != napi_ok) return fail(env, "ERR_INVALID_ARG_TYPE", "encrypt must be a boolean", true);
  unsigned char *key, *nonce, *aad;
  size_t key_len, nonce_len, aad_len;
  if (!bytes_arg(env, argv[2], "key must be a Uint8Array", &key, &key_len)) return NULL;
  if (!bytes_arg(env, argv[3], "nonce must be a Uint8Array", &nonce, &nonce_len)) return NULL;
  if (!bytes_arg(env, argv[4], "aad must be a Uint8Array", &aad, &aad_len)) return NULL;
  if (key_len != 32) return fail(env, "ERR_INVALID_ARG_VALUE", "key must be 32 bytes", false);
  if (nonce_len != 12) return fail(env, "ERR_INVALID_ARG_VALUE", "nonce must be 12 bytes", false);
  if (aad_len > INT_MAX) return fail(env, "ERR_INVALID_ARG_VALUE", "aad too long", false);
  g->state = IDLE;
  int out_len;
  if (EVP_CipherInit_ex(g->ctx, NULL, NULL, key, nonce, encrypt ? 1 : 0) != 1 ||
      (aad_len > 0 && EVP_CipherUpdate(g->ctx, NULL, &out_len, aad, (int)aad_len) != 1)) {
    return fail(env, "ERR_CRYPTO", "OpenSSL refused the key, nonce or associated data", false);
  }
  g->state = encrypt ? SEALING : OPENING;
  return NULL;
}

static napi_value update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  gcm_context *g;
  if (!args(env, info, 2, argv, &g)) return NULL;
  unsigned char *data;
  size_t len;
  if (!bytes_arg(env, argv[1], "data must be a Uint8Array", &data, &len)) return NULL;
  if (g->state == IDLE) return fail(env, "ERR_CRYPTO_INVALID_STATE", "update() before start()", false);
  if (len > INT_MAX) return fail(env, "ERR_INVALID_ARG_VALUE", "data too long for one update", false);
  if (len == 0) return NULL;
  int out_len = 0;
  /* GCM is a stream mode: OpenSSL writes exactly len bytes and buffers nothing, so in place is safe. */
  if (EVP_CipherUpdate(g->ctx, data, &out_len, data, (int)len) != 1 || (size_t)out_len != len) {
    g->state = IDLE;
    return fail(env, "ERR_CRYPTO", "OpenSSL AES-GCM update failed", false);
  }
  return NULL;
}

/*
 * The arguments of finishSeal/finishOpen: a context in state `want` and a 16-byte tag. On success
 * the context is back to IDLE (one finish per message); false with an exception pending otherwise.
 */
static bool finish_args(napi_env env, napi_callback_info info, enum state want, const char *misuse, gcm_context **g,
                        unsigned char **tag) {
  napi_value argv[2];
  size_t tag_len;
  if (!args(env, info, 2, argv, g)) return false;
  if (!bytes_arg(env, argv[1], "tag must be a Uint8Array", tag, &tag_len)) return false;
  if (tag_len != 16) {
    fail(env, "ERR_INVALID_ARG_VALUE", "tag must be 16 bytes", false);
    return false;
  }
  if ((*g)->state != want) {
    fail(env, "ERR_CRYPTO_INVALID_STATE", misuse, false);
    return false;
  }
  (*g)->state = IDLE;
  return true;
}

static napi_value finish_seal(napi_env env, napi_callback_info info) {
  gcm_context *g;
  unsigned char *tag;
  if (!finish_args(env, info, SEALING, "finishSeal() without start(encrypt = true)", &g, &tag)) return NULL;
  unsigned char rest[16];
  int out_len = 0;
  if (EVP_EncryptFinal_ex(g->ctx, rest, &out_len) != 1 || out_len != 0 ||
      EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
    return fail(env, "ERR_CRYPTO", "OpenSSL AES-GCM finish failed", false);
  }
  return NULL;
}

static napi_value finish_open(napi_env env, napi_callback_info info) {
  gcm_context *g;
  unsigned char *tag;
  if (!finish_args(env, info, OPENING, "finishOpen() without start(encrypt = false)", &g, &tag)) return NULL;
  unsigned char rest[16];
  int out_len = 0;
  bool ok = EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
            EVP_DecryptFinal_ex(g->ctx, rest, &out_len) == 1 && out_len == 0;
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static bool export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!export_fn(env, exports, "create", create) || !export_fn(env, exports, "start", start) ||
      !export_fn(env, exports, "update", update) || !export_fn(env, exports, "finishSeal", finish_seal) ||
      !export_fn(env, exports, "finishOpen", finish_open)) {
    return NULL;
  }
  return exports;
}
