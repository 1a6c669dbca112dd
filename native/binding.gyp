{
  "targets": [
    {
      "target_name": "ext4ts_native",
      "sources": ["ext4ts_native.c"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
