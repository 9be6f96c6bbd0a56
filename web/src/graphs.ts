// The LiteRT.js backend of the driver: loads the three .tflite files the manifest names (sha256
// checked against the manifest), compiles them for `webgpu` or `wasm`, warms each up once, and
// runs them with named float32 inputs, checking every tensor's name and shape against the manifest.

import { type CompiledModel, loadAndCompile, loadLiteRt, supportsFeature, Tensor } from "@litertjs/core";
import type { Graphs } from "./driver";
import { GRAPH_NAMES, type GraphName, InputError, type Manifest } from "./manifest";

export type Accelerator = "wasm" | "webgpu";

/** The loaded WebAssembly runtime: whether it is the threaded build, and its thread count. */
export interface Runtime {
  /** The threaded build (relaxed SIMD + pthreads) is loaded: the page is cross-origin isolated. */
  threaded: boolean;
  /**
   * The CPU thread count LiteRT.js itself defaults `cpuOptions.numThreads` to: its pthread pool
   * size (navigator.hardwareConcurrency) in the threaded build, 1 in the others.
   */
  poolThreads: number;
}

/** At most this many CPU threads by default, about a phone's big cores (LiteRT.js takes one per core). */
export const MAX_DEFAULT_THREADS = 4;

let loaded: Promise<Runtime> | null = null;

/** Load the LiteRT.js WebAssembly runtime once (threaded when the page is cross-origin isolated). */
export function loadRuntime(wasmDir: string): Promise<Runtime> {
  if (!loaded) {
    loaded = (async () => {
      const threaded =
        (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true &&
        (await supportsFeature("relaxedSimd")) &&
        (await supportsFeature("threads"));
      const liteRt = await loadLiteRt(wasmDir, { threads: threaded });
      return { threaded, poolThreads: Math.max(1, liteRt.liteRtWasm.getThreadCount()) };
    })();
  }
  return loaded;
}

/**
 * The CPU thread count to compile with: `requested` (the page's `threads=N`) when given, else
 * LiteRT.js's own default capped at MAX_DEFAULT_THREADS; never more than LiteRT.js's pthread pool
 * (one worker per core): a thread beyond it has no worker to start on while the page's thread
 * waits inside a run.
 */
export function cpuThreads(runtime: Runtime, requested: number | null): number {
  const want = requested ?? Math.min(MAX_DEFAULT_THREADS, runtime.poolThreads);
  return Math.max(1, Math.min(want, runtime.poolThreads));
}

/** Whether a WebGPU adapter can be had here (a one-line reason when not). */
export async function webgpuProblem(): Promise<string | null> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return "WebGPU is not available in this browser (navigator.gpu is missing); use accelerator wasm";
  try {
    const adapter = (await gpu.requestAdapter()) as { info?: Record<string, unknown> } | null;
    if (!adapter) return "WebGPU is available but no GPU adapter was found; use accelerator wasm";
    const info = adapter.info ?? {};
    (window as unknown as { __vosxAdapter: unknown }).__vosxAdapter = {
      vendor: info.vendor, architecture: info.architecture, description: info.description, fallback: info.isFallbackAdapter,
    };
  } catch (e) {
    return `WebGPU adapter request failed (${(e as Error).message}); use accelerator wasm`;
  }
  return null;
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Fetch a file as bytes, with a one-line error naming it. */
export async function fetchBytes(url: string, what: string): Promise<Uint8Array<ArrayBuffer>> {
  let resp: Response;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new InputError(`${url}: ${what} could not be fetched (${(e as Error).message})`);
  }
  if (!resp.ok) throw new InputError(`${url}: ${what} is missing (HTTP ${resp.status}); re-run \`vosx export\``);
  return new Uint8Array(await resp.arrayBuffer());
}

interface Loaded {
  model: CompiledModel;
  inputOrder: string[];
  outputOrder: string[];
}

/** The three compiled graphs of an export folder. */
export class LiteRtGraphs implements Graphs {
  /** Milliseconds spent moving tensors in and out of LiteRT.js since the last takeCopyMs(). */
  private copyMs = 0;

  private constructor(
    private models: Map<GraphName, Loaded>,
    readonly accelerator: Accelerator,
    readonly precision: string,
    readonly threads: number,
  ) {}

  /**
   * Load, check and compile the graphs.
   *
   * @param manifest The checked manifest.
   * @param base URL of the export folder (ending in "/").
   */
  static async open(manifest: Manifest, base: string, accelerator: Accelerator, precision = "fp32", threads = 1): Promise<LiteRtGraphs> {
    const models = new Map<GraphName, Loaded>();
    for (const name of GRAPH_NAMES) {
      const spec = manifest.graphs[name];
      const entry = spec.files[precision];
      if (!entry) throw new InputError(`manifest.json: no ${precision} file for ${name}; re-export with --precision ${precision}`);
      const url = base + entry.path.split("/").map(encodeURIComponent).join("/");
      const bytes = await fetchBytes(url, `the ${name} graph`);
      if (bytes.length !== entry.bytes || (await sha256Hex(bytes)) !== entry.sha256) {
        throw new InputError(`${url}: sha256 does not match the manifest (file changed or corrupt); re-run \`vosx export\``);
      }
      let model: CompiledModel;
      try {
        model = await loadAndCompile(bytes, { accelerator, cpuOptions: { numThreads: threads } });
      } catch (e) {
        throw new InputError(`${url}: LiteRT.js cannot compile it for ${accelerator} (${String((e as Error).message).split("\n")[0]})`);
      }
      const check = (kind: "inputs" | "outputs", details: readonly { name: string; shape: Int32Array }[]) => {
        const specs = spec[kind];
        const byName = new Map(details.map((d) => [d.name, d]));
        const order: string[] = [];
        details.forEach((d, i) => {
          // Names as the manifest lists them; positional when the file's names differ.
          const s = specs.find((t) => t.name === d.name) ?? (byName.size === specs.length && !specs.some((t) => byName.has(t.name)) ? specs[i] : undefined);
          if (!s || s.shape.length !== d.shape.length || s.shape.some((v, j) => v !== d.shape[j])) {
            throw new InputError(`${url}: tensor ${d.name} [${[...d.shape]}] is not in the manifest's ${name} ${kind}; re-run \`vosx export\``);
          }
          order.push(s.name);
        });
        if (order.length !== specs.length) throw new InputError(`${url}: has ${order.length} ${kind}, the manifest lists ${specs.length}; re-run \`vosx export\``);
        return order;
      };
      models.set(name, { model, inputOrder: check("inputs", model.getInputDetails()), outputOrder: check("outputs", model.getOutputDetails()) });
    }
    return new LiteRtGraphs(models, accelerator, precision, threads);
  }

  /** Whether LiteRT.js runs each graph wholly on the chosen accelerator (no wasm fallback). */
  fullyAccelerated(): Record<string, boolean> {
    const out: Record<string, boolean> = {};
    for (const [name, g] of this.models) out[name] = g.model.isFullyAccelerated;
    return out;
  }

  /**
   * Run every graph once on zeros, so that the first frames are timed like the others: the first
   * run of a compiled model sets up XNNPACK's workspace (WebGPU: its shaders) and V8 first runs
   * the WebAssembly kernels as baseline (Liftoff) code, tiering the hot ones up while they run.
   *
   * @returns The milliseconds it took.
   */
  async warmUp(): Promise<number> {
    const t0 = performance.now();
    for (const [name, g] of this.models) {
      const zeros: Record<string, Float32Array> = {};
      g.model.getInputDetails().forEach((d, i) => {
        zeros[g.inputOrder[i]] = new Float32Array(d.shape.reduce((a, b) => a * b, 1));
      });
      await this.run(name, zeros);
    }
    this.copyMs = 0;
    return performance.now() - t0;
  }

  /** Milliseconds spent copying inputs in and outputs out since the last call (then reset). */
  takeCopyMs(): number {
    const ms = this.copyMs;
    this.copyMs = 0;
    return ms;
  }

  async run(graph: GraphName, inputs: Record<string, Float32Array>): Promise<Record<string, Float32Array>> {
    const g = this.models.get(graph)!;
    const details = g.model.getInputDetails();
    const owned: Tensor[] = [];
    let t0 = performance.now();
    try {
      const moved: Tensor[] = [];
      for (let i = 0; i < details.length; i++) {
        // One copy into the wasm heap (plus one to the GPU on webgpu).
        const t = new Tensor(inputs[g.inputOrder[i]], details[i].shape);
        owned.push(t);
        const m = this.accelerator === "webgpu" ? await t.copyTo("webgpu") : t;
        if (m !== t) owned.push(m);
        moved.push(m);
      }
      this.copyMs += performance.now() - t0;
      const outs = await g.model.run(moved);
      owned.push(...outs);
      t0 = performance.now();
      const result: Record<string, Float32Array> = {};
      for (let i = 0; i < outs.length; i++) {
        const cpu = this.accelerator === "webgpu" ? await outs[i].moveTo("wasm") : outs[i];
        if (cpu !== outs[i]) owned.push(cpu);
        // toTypedArray() already copies out of the wasm heap: the array is ours.
        const data = cpu.toTypedArray();
        if (!(data instanceof Float32Array)) throw new Error(`${graph}: output ${g.outputOrder[i]} is not float32`);
        result[g.outputOrder[i]] = data;
      }
      this.copyMs += performance.now() - t0;
      return result;
    } finally {
      for (const t of owned) if (!t.deleted) t.delete();
    }
  }

  delete(): void {
    for (const g of this.models.values()) g.model.delete();
  }
}
