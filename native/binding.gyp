{
  "targets": [
    { "target_name": "bkv_aes_gcm", "sources": ["aes_gcm.c"], "cflags": ["-Wall", "-Wextra"] },
    { "target_name": "bkv_fallocate", "sources": ["fallocate.c"], "cflags": ["-Wall", "-Wextra"] }
  ]
}
