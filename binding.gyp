{
  "targets": [
    {
      "target_name": "extrema",
      "sources": [
        "native/addon.cc",
        "native/autograd.cc",
        "native/convert.cc",
        "native/dispatch.cc",
        "native/runtime.cc",
        "native/tensor_data.cc",
        "native/tensor_table.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/torch-locate.js include)"
      ],
      "libraries": ["<!@(node scripts/torch-locate.js libs)"],
      "conditions": [
        ["OS=='linux'", { "ldflags": ["-Wl,-rpath,'$$ORIGIN/torch-lib'"] }],
        ["OS=='mac'", { "xcode_settings": { "OTHER_LDFLAGS": ["-Wl,-rpath,@loader_path/torch-lib"] } }]
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "_GLIBCXX_USE_CXX11_ABI=1"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=c++17"],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "GCC_ENABLE_CPP_RTTI": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++20"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++20"] }
      }
    }
  ]
}
