{
  "targets": [
    {
      "target_name": "tunekit_native",
      "sources": [
        "native/addon.cc",
        "native/runtime.cc",
        "native/gemm.cc",
        "native/gemm_half.cc",
        "native/gemv.cc",
        "native/conv.cc",
        "native/pool.cc",
        "native/elementwise.cc",
        "native/reduce.cc",
        
        "native/norm.cc",
        "native/batchnorm.cc",
        "native/softmax.cc",
        "native/attention.cc",
        "native/adamw.cc",
        "native/index.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20", "-O2", "-O0"],
      "cflags": ["-O3", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unused-function", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"], "GCC_ENABLE_CPP_EXCEPTIONS": "YES" },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
    }
  ]
}
