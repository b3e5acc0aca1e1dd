// llama.cpp itself checks the GGUF files qcast writes: for every ggml type qcast writes, quantize
// stories260K (and, for the k-quants, a 256-wide random model written here) with `qcast quantize --out X.gguf`, load X.gguf in llama.cpp (node-llama-cpp 3.21.1's prebuilt
// CPU build), and compare llama.cpp's perplexity on the TinyStories excerpt with `qcast eval X.gguf` on the
// same stories. Asserts, per file: llama.cpp loads it; the tensors have the ggml type asked for; llama.cpp's
// tokenizer (from the GGUF) gives as many tokens as qcast's over the stories; llama.cpp's next-token
// distributions are full softmaxes (every vocabulary entry, summing to 1); and the two perplexities agree
// within the tolerance of the type: 1 % for the quantized types, whose dot products llama.cpp computes on
// activations rounded to 8 bits (Q8_0 blocks) while qcast keeps them in fp32; 0.01 % for F32 weights, which
// llama.cpp multiplies in float (docs/models.md, "Checked by llama.cpp"). qcast's low-bit kernels (eval
// --kernel lowbit: activations in Q8_0 blocks, llama.cpp's own arithmetic) must agree within 0.2 % for the
// 32-block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4; NVFP4's 16-blocks) and within 0.5 % for the
// k-quants, whose activations llama.cpp rounds per 256 (Q8_K) where the kernels round per 32 (measured up to
// 0.14 % and 0.28 %).
// Usage: node check.mjs QCAST_CLI SHARED_DIR WORK_DIR [STORIES]
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {getLlama, LlamaLogLevel, readGgufFileInfo} from "node-llama-cpp";

const [cli, shared, work, stories_s] = process.argv.slice(2);
const n_stories = Number(stories_s ?? 10);
const model_bin = path.join(shared, "models/stories260K.bin");
const tokenizer = path.join(shared, "models/tok512.bin");
const text = path.join(shared, "data/tinystories/valid-excerpt.txt");

// A second model whose rows are whole 256-blocks, so that the k-quants are stored as themselves (stories260K's
// rows of 64 and 172 take llama.cpp's fallback types: Q5_0 / Q5_1 / Q8_0 / IQ4_NL, and F16 for rows of 172): a llama2.c checkpoint with random weights (dim 256,
// hidden 512, 2 layers, 8 heads, vocabulary 512 for tok512), written here from a fixed seed. Its weights are
// drawn wide enough (sd 0.08) that the next-token distributions are far from uniform, so that quantization
// error moves the perplexity.
function write_random_llama(file) {
  const dim = 256, hidden = 512, layers = 2, heads = 8, vocab = 512, seq_len = 512;
  let s = 0x9e3779b9 >>> 0;
  const uniform = () => {  // xorshift32
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const parts = [Buffer.from(new Int32Array([dim, hidden, layers, heads, heads, vocab, seq_len]).buffer)];
  const w = (n, sd) => parts.push(Buffer.from(Float32Array.from({length: n}, () => normal() * sd).buffer));
  const ones = (n) => parts.push(Buffer.from(new Float32Array(n).fill(1).buffer));
  w(vocab * dim, 0.08);
  ones(layers * dim);
  for (let k = 0; k < 4; ++k) w(layers * dim * dim, 0.08);  // wq wk wv wo
  ones(layers * dim);
  for (let k = 0; k < 3; ++k) w(layers * hidden * dim, 0.08);  // w1 w2 w3
  ones(dim);
  parts.push(Buffer.from(new Float32Array(2 * seq_len * (dim / heads / 2)).buffer));  // legacy freq_cis (unused)
  fs.writeFileSync(file, Buffer.concat(parts));
}
const random_bin = path.join(work, "random256.bin");
// Whether qcast's tiled low-bit kernel runs here (src/kernels/lowbit_vnni.cpp checks the same CPU features).
const cpu_flags = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "";
const tiled_cpu = ["avx512f", "avx512bw", "avx512vl", "avx512_vnni", "f16c", "fma"].every((f) => new RegExp(`\\b${f}\\b`).test(cpu_flags));
write_random_llama(random_bin);

// weights format given to qcast, the model, the ggml type its attn_q weights must be stored as, and the largest
// relative perplexity difference allowed.
const cases = [
  {weights: "fp32", type: "F32", tol: 1e-4},
  {weights: "q8_0", type: "Q8_0", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q4_0", type: "Q4_0", tol: 0.01, lowbit_tol: 0.002},
  {weights: "mxfp4", type: "MXFP4", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q8_0_ggml", type: "Q8_0", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q4_0_ggml", type: "Q4_0", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q4_1", type: "Q4_1", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q5_0", type: "Q5_0", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q5_1", type: "Q5_1", tol: 0.01, lowbit_tol: 0.002},
  // k-quants on rows of 64 / 172: llama.cpp's fallback types (Q5_0 / Q8_0, and F16 for ffn_down).
  {weights: "q4_k", type: "Q5_0", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q6_k", type: "Q8_0", tol: 0.01, lowbit_tol: 0.002},
  {weights: "q3_k", type: "IQ4_NL", tol: 0.01, lowbit_tol: 0.002},
  {weights: "iq4_nl", type: "IQ4_NL", tol: 0.01, lowbit_tol: 0.002},
  {weights: "mxfp4_ggml", type: "MXFP4", tol: 0.01, lowbit_tol: 0.002},
  {weights: "nvfp4_ggml", type: "NVFP4", tol: 0.01, lowbit_tol: 0.002},
  // k-quants stored as themselves.
  {weights: "fp32", model: random_bin, type: "F32", tol: 1e-4},
  {weights: "q2_k", model: random_bin, type: "Q2_K", tol: 0.01, lowbit_tol: 0.005},
  {weights: "q3_k", model: random_bin, type: "Q3_K", tol: 0.01, lowbit_tol: 0.005},
  // llama.cpp rounds the activations of a Q4_K product per 256 (Q8_K), qcast's kernel per 32 (Q8_0): measured
  // -0.26 % against llama.cpp (the fp32 path: -0.10 %).
  {weights: "q4_k", model: random_bin, type: "Q4_K", tol: 0.01, lowbit_tol: 0.005},
  {weights: "q5_k", model: random_bin, type: "Q5_K", tol: 0.01, lowbit_tol: 0.005},
  {weights: "q6_k", model: random_bin, type: "Q6_K", tol: 0.01, lowbit_tol: 0.005},
];

function split_stories(t) {  // as qcast's io::split_stories
  return t.split("<|endoftext|>").map((s) => s.replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, "")).filter((s) => s.length > 0);
}
const stories = split_stories(fs.readFileSync(text, "utf8")).slice(0, n_stories);

const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true,
                              logLevel: LlamaLogLevel.error, progressLogs: false});

async function llama_perplexity(file) {
  const model = await llama.loadModel({modelPath: file});
  const n_ctx = model.trainContextSize;
  const context = await model.createContext({contextSize: n_ctx, batchSize: n_ctx, threads: 2, sequences: 1});
  const seq = context.getSequence();
  // temperature 1 and every truncating sampler off: the probabilities are the softmax of llama.cpp's logits.
  const opts = {generateNext: {probabilities: true, options: {temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1}}};
  let nll = 0, tokens = 0, dist_min = Infinity, psum_err = 0;
  const per_story = [];
  for (const story of stories) {
    const toks = [model.tokens.bos, ...model.tokenize(story)].slice(0, n_ctx);
    await seq.clearHistory();
    const out = await seq.controlledEvaluate(toks.slice(0, -1).map((t) => [t, opts]));
    for (let i = 0; i + 1 < toks.length; ++i) {
      const probs = out[i].next.probabilities;
      let sum = 0;
      for (const p of probs.values()) sum += p;
      psum_err = Math.max(psum_err, Math.abs(sum - 1));
      dist_min = Math.min(dist_min, probs.size);
      const p = probs.get(toks[i + 1]);
      if (!(p > 0)) throw new Error(`${file}: llama.cpp gives token ${toks[i + 1]} probability ${p}`);
      nll -= Math.log(p);
    }
    tokens += toks.length - 1;
    per_story.push(toks.length - 1);
  }
  await context.dispose();
  await model.dispose();
  return {perplexity: Math.exp(nll / tokens), tokens, per_story, dist_min, psum_err};
}

function qcast(args) {
  return execFileSync(cli, args, {encoding: "utf8", stdio: ["ignore", "pipe", "inherit"]});
}

let failures = 0;
const fail = (m) => { console.log(`FAIL: ${m}`); ++failures; };
console.log(`${stories.length} stories of ${text}`);
console.log("model       | weights   | type   | qcast ppl  | llama.cpp ppl | rel. diff  | tokens");
for (const c of cases) {
  const file = path.join(work, `${path.basename(c.model ?? model_bin, ".bin")}.${c.weights}.gguf`);
  qcast(["quantize", c.model ?? model_bin, "--tokenizer", tokenizer, "--weights", c.weights, "--method", "rtn", "--calib", `text:${text}`,
         "--calib-samples", "1", "--calib-tokens", "16", "--out", file, "--quiet"]);
  // The ggml types in the file, read by node-llama-cpp's own GGUF parser.
  const info = await readGgufFileInfo(file, {readTensorInfo: true});
  const types = new Map();
  for (const t of info.fullTensorInfo ?? info.tensorInfo) {
    if (t.name.startsWith("blk.") && t.name.endsWith("attn_q.weight")) types.set(t.ggmlType, (types.get(t.ggmlType) ?? 0) + 1);
  }
  const want = {F32: 0, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13, Q6_K: 14, IQ4_NL: 20, NVFP4: 40,
                MXFP4: 39}[c.type];  // ggml.h enum ggml_type
  if (!(types.size === 1 && types.has(want))) fail(`${file}: attn_q tensors stored as ggml types ${[...types.keys()]}, expected ${c.type} (${want})`);

  const q = JSON.parse(qcast(["eval", file, "--data", `text:${text}`, "--limit", String(stories.length), "--json"]));
  const l = await llama_perplexity(file);
  const rel = l.perplexity / q.perplexity - 1;
  console.log(`${(c.model ? "random256" : "stories260K").padEnd(11)} | ${c.weights.padEnd(9)} | ${c.type.padEnd(6)} | ${q.perplexity.toFixed(6).padStart(10)} | ${l.perplexity.toFixed(6).padStart(13)} | ` +
              `${(rel * 100).toFixed(4).padStart(8)} % | ${l.tokens}`);
  if (l.tokens !== q.tokens) fail(`${c.type}: llama.cpp tokenized ${l.tokens} tokens (${l.per_story}), qcast ${q.tokens}`);
  if (l.dist_min !== 512) fail(`${c.type}: llama.cpp gave a distribution over ${l.dist_min} tokens, not the vocabulary of 512`);
  if (l.psum_err > 1e-4) fail(`${c.type}: llama.cpp's probabilities sum to 1 +- ${l.psum_err}`);
  if (!(Math.abs(rel) <= c.tol)) fail(`${c.type}: perplexity ${l.perplexity} (llama.cpp) vs ${q.perplexity} (qcast): ${(rel * 100).toFixed(4)} % > ${c.tol * 100} %`);
  if (c.lowbit_tol !== undefined && !tiled_cpu && !["Q8_0", "Q4_0", "Q4_1", "Q4_K"].includes(c.type)) {
    // The 8-bit unpacked types run on the tiled kernel only (AVX-512 VNNI); elsewhere they stay fp32.
    console.log(`${"".padEnd(11)} | ${"".padEnd(9)} | lowbit | not checked: this CPU has no AVX-512 VNNI, so ${c.type} layers stay fp32`);
  } else if (c.lowbit_tol !== undefined) {
    // qcast's low-bit kernels (packed weights, activations in Q8_0 blocks as llama.cpp computes them) against
    // llama.cpp: measured 0.02-0.09 % on 10 stories (the fp32 path: 0.003-0.10 %). The activation rounding is
    // not what is left: an f16 KV cache (llama.cpp's default; qcast --kv fp16) does not close it either.
    // Allowed: 0.2 %, a fifth of the fp32 path's allowance.
    const k = JSON.parse(qcast(["eval", file, "--data", `text:${text}`, "--limit", String(stories.length), "--json", "--kernel", "lowbit"]));
    const rel_k = l.perplexity / k.perplexity - 1;
    console.log(`${"".padEnd(11)} | ${"".padEnd(9)} | lowbit | ${k.perplexity.toFixed(6).padStart(10)} | ${"".padStart(13)} | ${(rel_k * 100).toFixed(4).padStart(8)} % |`);
    if (!(k.lowbit_layers > 0)) fail(`${c.type}: qcast eval --kernel lowbit ran no layer on the low-bit kernels`);
    if (!(Math.abs(rel_k) <= c.lowbit_tol))
      fail(`${c.type}: perplexity ${l.perplexity} (llama.cpp) vs ${k.perplexity} (qcast --kernel lowbit): ${(rel_k * 100).toFixed(4)} % > ${c.lowbit_tol * 100} %`);
  }
}
await llama.dispose();
if (failures) {
  console.log(`${failures} failure(s)`);
  process.exit(1);
}
console.log("llama.cpp agrees with qcast on every type");
