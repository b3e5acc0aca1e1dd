// Runs ONNX models in ONNX Runtime (onnxruntime-node, CPU) on .npy inputs and writes every output as .npy.
// Usage: node ort_run.mjs JOBS.json   where JOBS.json = [{"model": M, "inputs": [a.npy, ...], "out": DIR}, ...]
// Inputs are fed in the order of the session's input names; outputs are written as DIR/output_K.npy in the
// session's output order (float32 / int64 / bool as int64). One process for all jobs (ORT loads once).
// A job with "repeat": R (and optionally "threads": T) is timed instead: one warm-up run, then R runs; it prints
// one JSON line {"model", "threads", "best_s", "mean_s"} (bench/ort_speed.py) and writes no outputs unless "out".
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
const require = createRequire(path.join(process.cwd(), 'x.js'));  // resolve from the install folder (cwd)
const ort = require('onnxruntime-node');

function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not an .npy file');
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = (major === 1 ? 10 : 12) + hlen;
  const h = b.toString('latin1', major === 1 ? 10 : 12, off);
  const descr = /'descr':\s*'([^']+)'/.exec(h)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(h)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  if (/True/.test(/'fortran_order':\s*(\w+)/.exec(h)[1])) throw new Error(file + ': fortran order');
  const raw = b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length);
  if (descr === '<f4') return new ort.Tensor('float32', new Float32Array(raw.slice(0)), shape);
  if (descr === '<i8') return new ort.Tensor('int64', new BigInt64Array(raw.slice(0)), shape);
  if (descr === '|b1') return new ort.Tensor('bool', new Uint8Array(raw.slice(0)), shape);
  throw new Error(file + ': dtype ' + descr + ' not handled');
}

function writeNpy(file, t) {
  let descr, data;
  if (t.type === 'float32') { descr = '<f4'; data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength); }
  else if (t.type === 'int64') { descr = '<i8'; data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength); }
  else if (t.type === 'bool' || t.type === 'int32') {
    descr = '<i8'; data = Buffer.from(BigInt64Array.from(Array.from(t.data, v => BigInt(Number(v)))).buffer);
  } else throw new Error(file + ': output type ' + t.type + ' not handled');
  const dims = t.dims.length === 1 ? `${t.dims[0]},` : t.dims.join(', ');
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  h += ' '.repeat(63 - ((h.length + 10) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1'); head[6] = 1; head[7] = 0; head.writeUInt16LE(h.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(h, 'latin1'), data]));
}

const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
for (const j of jobs) {
  const s = await ort.InferenceSession.create(j.model, { intraOpNumThreads: j.threads || 1, interOpNumThreads: 1,
                                                      graphOptimizationLevel: j.optimization || 'all' });
  if (s.inputNames.length !== j.inputs.length) throw new Error(`${j.model}: takes ${s.inputNames.length} inputs, got ${j.inputs.length}`);
  const feeds = {};
  s.inputNames.forEach((n, k) => { feeds[n] = readNpy(j.inputs[k]); });
  let out = await s.run(feeds);
  if (j.repeat) {
    let best = Infinity, total = 0;
    for (let r = 0; r < j.repeat; ++r) {
      const t0 = process.hrtime.bigint();
      out = await s.run(feeds);
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      best = Math.min(best, dt); total += dt;
    }
    console.log(JSON.stringify({ model: j.model, threads: j.threads || 1, best_s: best, mean_s: total / j.repeat }));
    if (!j.out) continue;
  }
  fs.mkdirSync(j.out, { recursive: true });
  s.outputNames.forEach((n, k) => writeNpy(path.join(j.out, `output_${k}.npy`), out[n]));
  if (!j.repeat) console.log(`ort: ${path.basename(j.model)}: ${s.outputNames.length} outputs`);
}
