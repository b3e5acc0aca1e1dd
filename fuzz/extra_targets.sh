# Sourced by scripts/fuzz: the model loaders (ONNX importer, llama2.c checkpoint + tokenizer, GGUF reader).
nn_core="src/nn/graph.cpp src/nn/logits.cpp src/nn/ops.cpp src/nn/ops_rnn.cpp src/nn/ops_quant.cpp src/nn/ops_index.cpp src/nn/ops_control.cpp src/nn/conv_fast.cpp src/kernels/dnnl.cpp src/nn/recipe.cpp src/nn/act_quant.cpp src/format/element.cpp src/format/format.cpp src/format/named.cpp src/format/groups.cpp src/kernels/quantize.cpp src/kernels/ggml_quants.cpp src/kernels/reference.cpp src/kernels/thread_pool.cpp src/kernels/blas.cpp fuzz/reference_only.cpp"
targets[onnx]="fuzz/onnx_fuzz.cpp src/nn/onnx_import.cpp src/hw/skips.cpp $nn_core"  # skips: cost --skips walks the graph
extra_libs[onnx]="-lonnx_proto -lprotobuf -lyaml-cpp"
gguf_io="src/io/gguf.cpp src/io/gguf_types.cpp src/io/sniff.cpp"
# llama.cpp runs linear layers on the low-bit kernels when asked (instrumented, they compile for the generic target only).
targets[llama2c]="fuzz/llama2c_fuzz.cpp src/nn/llama.cpp src/nn/llama_gguf.cpp src/io/safetensors.cpp src/kernels/lowbit.cpp src/kernels/lowbit_simd.cpp src/kernels/lowbit_vnni.cpp $gguf_io $nn_core"
targets[gguf]="fuzz/gguf_fuzz.cpp $gguf_io $nn_core"
extra_libs[gguf]="-lyaml-cpp"
extra_libs[llama2c]="-lyaml-cpp"

# Inputs beyond the file readers (issue 19): the hardware YAML readers, the reuse loop-nest text, the
# format-name parser, recipes, dataset specs and the packed-metadata reader.
fmt_core="src/format/element.cpp src/format/format.cpp src/format/named.cpp src/format/groups.cpp src/kernels/quantize.cpp src/kernels/ggml_quants.cpp src/kernels/reference.cpp src/kernels/packing.cpp src/kernels/thread_pool.cpp fuzz/reference_only.cpp"
targets[hw_yaml]="fuzz/hw_yaml_fuzz.cpp src/hw/arch.cpp src/hw/problem.cpp src/hw/mapping.cpp src/hw/analysis.cpp src/hw/mapper.cpp src/hw/mac.cpp src/hw/npu.cpp $nn_core"  # arch.cpp reads recipes (nn)
extra_libs[hw_yaml]="-lyaml-cpp"
targets[reuse]="fuzz/reuse_fuzz.cpp src/hw/reuse.cpp"
targets[format_name]="fuzz/format_name_fuzz.cpp $fmt_core"
targets[recipe]="fuzz/recipe_fuzz.cpp $nn_core"
extra_libs[recipe]="-lyaml-cpp"
# src/*/dataset.cpp: the dataset reader is moving from src/io to src/nn.
targets[dataset_spec]="fuzz/dataset_spec_fuzz.cpp $(echo src/*/dataset.cpp) src/io/npy.cpp $nn_core"
extra_libs[dataset_spec]="-lyaml-cpp -lz"
targets[packed]="fuzz/packed_fuzz.cpp src/io/packed.cpp src/io/safetensors.cpp $fmt_core"
# Seed folders gathered at run time (files referenced where they live, never copied into fuzz/seeds).
seed_globs[hw_yaml]="examples/arch/*.yaml examples/problems/*.yaml ../shared/conformance/timeloop/*/*/*.yaml ../shared/conformance/timeloop-designs/*/*.yaml ../shared/conformance/timeloop-designs/_include/*.yaml ../shared/conformance/timeloop-designs/_components/*.yaml"
seed_globs[recipe]="examples/recipes/*"
seed_globs[dataset_spec]="examples/data/*.yaml"
