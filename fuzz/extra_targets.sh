# Sourced by scripts/fuzz: the model loaders (ONNX importer, llama2.c checkpoint + tokenizer).
nn_core="src/nn/graph.cpp src/nn/ops.cpp src/nn/recipe.cpp src/nn/act_quant.cpp src/format/element.cpp src/format/format.cpp src/kernels/quantize.cpp src/kernels/reference.cpp src/kernels/thread_pool.cpp src/kernels/blas.cpp fuzz/reference_only.cpp"
targets[onnx]="fuzz/onnx_fuzz.cpp src/io/onnx.cpp $nn_core"
extra_libs[onnx]="-lonnx_proto -lprotobuf -lyaml-cpp"
targets[llama2c]="fuzz/llama2c_fuzz.cpp src/nn/llama.cpp src/io/safetensors.cpp $nn_core"
extra_libs[llama2c]="-lyaml-cpp"
