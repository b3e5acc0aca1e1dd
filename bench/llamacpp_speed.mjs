// llama.cpp's speed on a GGUF file (node-llama-cpp 3.21.1's prebuilt CPU build, installed by
// tests/llamacpp/run.sh into tests/llamacpp/node_modules): prompt processing of N_PROMPT tokens in one batch,
// and greedy generation of N_GEN tokens after BOS, with THREADS threads. Prints one JSON line
// {"pp_tokens_per_second", "tg_tokens_per_second"} (best of REPEAT runs each). bench/llama_speed.py runs it.
// Usage: node bench/llamacpp_speed.mjs FILE THREADS N_PROMPT N_GEN [REPEAT]
import {createRequire} from "node:module";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "tests", "llamacpp", "package.json"));
const {getLlama, LlamaLogLevel} = await import(require.resolve("node-llama-cpp"));

const [file, threads_s, n_prompt_s, n_gen_s, repeat_s] = process.argv.slice(2);
const threads = Number(threads_s), n_prompt = Number(n_prompt_s), n_gen = Number(n_gen_s), repeat = Number(repeat_s ?? 3);
const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, maxThreads: 0,
                              logLevel: LlamaLogLevel.error, progressLogs: false});
const model = await llama.loadModel({modelPath: file});
const context = await model.createContext({contextSize: model.trainContextSize, batchSize: Math.max(n_prompt, 1),
                                           threads, sequences: 1});
const seq = context.getSequence();
// A fixed prompt of ordinary tokens (ids 3..258, cycled; every LLaMA vocabulary has them): speed does not
// depend on their meaning.
const prompt = [model.tokens.bos, ...Array.from({length: n_prompt - 1}, (_, i) => 3 + ((i * 37) % 256))];
let pp = 0, tg = 0;
for (let r = 0; r < repeat + 1; ++r) {  // the first run warms up
  await seq.clearHistory();
  let t0 = process.hrtime.bigint();
  await seq.evaluateWithoutGeneratingNewTokens(prompt);
  const pp_s = Number(process.hrtime.bigint() - t0) / 1e9;
  await seq.clearHistory();
  t0 = process.hrtime.bigint();
  let n = 0;
  for await (const _ of seq.evaluate([model.tokens.bos], {temperature: 0})) {
    if (++n >= n_gen) break;
  }
  const tg_s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r > 0) {
    pp = Math.max(pp, n_prompt / pp_s);
    tg = Math.max(tg, n / tg_s);
  }
}
console.log(JSON.stringify({file, threads, n_prompt, n_gen, pp_tokens_per_second: pp, tg_tokens_per_second: tg}));
await context.dispose();
await model.dispose();
await llama.dispose();
