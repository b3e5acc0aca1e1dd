# Sourced by scripts/fuzz: the model loaders (ONNX importer, llama2.c checkpoint + tokenizer, GGUF reader).
nn_core="src/nn/graph.cpp src/nn/ops.cpp src/nn/recipe.cpp src/nn/act_quant.cpp src/format/element.cpp src/format/format.cpp src/format/named.cpp src/format/groups.cpp src/kernels/quantize.cpp src/kernels/reference.cpp src/kernels/thread_pool.cpp src/kernels/blas.cpp fuzz/reference_only.cpp"
targets[onnx]="fuzz/onnx_fuzz.cpp src/nn/onnx_import.cpp $nn_core"
extra_libs[onnx]="-lonnx_proto -lprotobuf -lyaml-cpp"
gguf_io="src/io/gguf.cpp src/io/gguf_types.cpp src/io/sniff.cpp"
targets[llama2c]="fuzz/llama2c_fuzz.cpp src/nn/llama.cpp src/nn/llama_gguf.cpp src/io/safetensors.cpp $gguf_io $nn_core"
targets[gguf]="fuzz/gguf_fuzz.cpp $gguf_io $nn_core"
extra_libs[gguf]="-lyaml-cpp"
extra_libs[llama2c]="-lyaml-cpp"
