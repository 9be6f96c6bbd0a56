// The export folder's manifest.json, checked in the browser exactly as vosx/manifest.py checks it
// (format and version, input size, the three graphs, their files and tensor specs, the full-size
// tensors): an export folder is untrusted input. Every problem is one line naming the field and
// the fix. Mirrors vosx/manifest.py; keep the two in step.

export const FORMAT_NAME = "vosx-trickvos-tflite";
export const FORMAT_VERSION = 1;
export const GRAPH_NAMES = ["key_encoder", "value_encoder", "decoder"] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];
export const PRECISIONS = ["fp32", "fp16", "int8"] as const;
const MAX_MANIFEST_BYTES = 1 << 20;
const MAX_INPUT_SIDE = 4096;
const MAX_DIM = 1 << 16;
const MAX_ELEMENTS = 1 << 27;
const MAX_RANK = 4;
const MAX_TENSORS = 64;
const MAX_NAME = 128;
const MAX_PATH = 1024;
const MAX_FILE_BYTES = 2 ** 40;
const INPUT_MULTIPLE = 16;
const DTYPES = ["float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"];
export const GRAPH_IO: Record<GraphName, [string[], string[]]> = {
  key_encoder: [["image"], ["key", "f16c", "f16", "f8", "f4"]],
  value_encoder: [["mask", "f16"], ["value"]],
  decoder: [["qk", "mk_first", "mk_last", "mv_first", "mv_last", "f16c", "f8", "f4"], ["logits"]],
};
const FULL_SIZE: [GraphName, "inputs" | "outputs", string, number][] = [
  ["key_encoder", "inputs", "image", 3],
  ["value_encoder", "inputs", "mask", 1],
  ["decoder", "outputs", "logits", 1],
];
// Which output feeds which input (the driver's wiring): each pair must have one shape and dtype.
const GRAPH_WIRING: [[GraphName, string], [GraphName, string]][] = [
  [["key_encoder", "key"], ["decoder", "qk"]],
  [["key_encoder", "key"], ["decoder", "mk_first"]],
  [["key_encoder", "key"], ["decoder", "mk_last"]],
  [["key_encoder", "f16c"], ["decoder", "f16c"]],
  [["key_encoder", "f8"], ["decoder", "f8"]],
  [["key_encoder", "f4"], ["decoder", "f4"]],
  [["key_encoder", "f16"], ["value_encoder", "f16"]],
  [["value_encoder", "value"], ["decoder", "mv_first"]],
  [["value_encoder", "value"], ["decoder", "mv_last"]],
  [["decoder", "logits"], ["value_encoder", "mask"]],
];
const REEXPORT = "re-export with `vosx export`";
const SHA256 = /^[0-9a-f]{64}$/;
const TENSOR_NAME = /^[A-Za-z0-9_.:/-]+$/;

export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: string;
}

export interface FileEntry {
  path: string;
  sha256: string;
  bytes: number;
}

export interface GraphSpec {
  onnx: string;
  files: Record<string, FileEntry>;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface Manifest {
  format: string;
  format_version: number;
  input: { height: number; width: number };
  graphs: Record<GraphName, GraphSpec>;
  /** Optional: PT tracker weights (.npz) inside the export folder. */
  pt_tracker?: { path: string };
  [key: string]: unknown;
}

/** A problem with the user's input: shown as one line on the page. */
export class InputError extends Error {}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return "a boolean";
  if (typeof value === "string") return `the string '${value.slice(0, 40)}'`;
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "number" && !Number.isInteger(value)) return `the number ${value}`;
  return String(value).slice(0, 40);
}

/** Why `rel` is not a safe relative path inside an export folder (null when it is). */
export function pathProblem(rel: unknown): string | null {
  if (typeof rel !== "string") return `is ${describe(rel)}, not a path`;
  if (!rel || rel === "." || rel === "./") return "is empty, not a file path";
  if (rel.length > MAX_PATH) return `is longer than ${MAX_PATH} characters`;
  if (rel.includes("\0") || rel.includes("\\")) return "contains a NUL byte or a backslash";
  if (rel.startsWith("/") || /^[A-Za-z]:/.test(rel)) {
    return "is an absolute path; files must be named relative to the export folder";
  }
  if (rel.split("/").includes("..")) {
    return "has a '..' component; files must lie inside the export folder";
  }
  return null;
}

type Json = Record<string, unknown>;

class Checker {
  constructor(private where: string) {}

  fail(field: string, what: string): never {
    throw new InputError(`${this.where}: ${field} ${what}; ${REEXPORT}`);
  }

  obj(parent: Json, key: string, field: string): Json {
    if (!(key in parent)) this.fail(field, "is missing");
    const v = parent[key];
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      this.fail(field, `is ${describe(v)}, must be a JSON object`);
    }
    return v as Json;
  }

  lst(parent: Json, key: string, field: string, most: number): unknown[] {
    if (!(key in parent)) this.fail(field, "is missing");
    const v = parent[key];
    if (!Array.isArray(v)) this.fail(field, `is ${describe(v)}, must be a list`);
    if (v.length === 0) this.fail(field, "is empty");
    if (v.length > most) this.fail(field, `has ${v.length} entries, at most ${most} are allowed`);
    return v;
  }

  intValue(v: unknown, field: string, lo: number, hi: number, must = ""): number {
    must = must || `an integer from ${lo} to ${hi}`;
    if (typeof v !== "number" || !Number.isInteger(v)) this.fail(field, `is ${describe(v)}, must be ${must}`);
    if (v < lo || v > hi) this.fail(field, `is ${v}, must be ${must}`);
    return v;
  }

  str(parent: Json, key: string, field: string): string {
    if (!(key in parent)) this.fail(field, "is missing");
    const v = parent[key];
    if (typeof v !== "string") this.fail(field, `is ${describe(v)}, must be a string`);
    return v;
  }

  path(parent: Json, key: string, field: string): string {
    const v = this.str(parent, key, field);
    const problem = pathProblem(v);
    if (problem) this.fail(field, `'${v.slice(0, 80)}' ${problem}`);
    return v;
  }

  tensor(t: unknown, field: string): TensorSpec {
    if (typeof t !== "object" || t === null || Array.isArray(t)) {
      this.fail(field, `is ${describe(t)}, must be a JSON object`);
    }
    const o = t as Json;
    const name = this.str(o, "name", `${field}.name`);
    if (!(name.length <= MAX_NAME && TENSOR_NAME.test(name))) {
      this.fail(`${field}.name`, `'${name.slice(0, 40)}' is not a tensor name ([A-Za-z0-9_.:/-]+)`);
    }
    const shape = this.lst(o, "shape", `${field}.shape`, MAX_RANK);
    let n = 1;
    shape.forEach((d, i) => {
      n *= this.intValue(d, `${field}.shape[${i}]`, 1, MAX_DIM);
    });
    if (n > MAX_ELEMENTS) {
      this.fail(`${field}.shape`, `[${shape}] has ${n} elements, more than ${MAX_ELEMENTS}`);
    }
    const dtype = this.str(o, "dtype", `${field}.dtype`);
    if (!DTYPES.includes(dtype)) {
      this.fail(`${field}.dtype`, `'${dtype.slice(0, 40)}' is not one of ${DTYPES.join(", ")}`);
    }
    return { name, shape: shape as number[], dtype };
  }

  tensors(g: Json, graph: string, kind: string, expected: string[]): Map<string, TensorSpec> {
    const field = `graphs.${graph}.${kind}`;
    const specs = this.lst(g, kind, field, MAX_TENSORS);
    const byName = new Map<string, TensorSpec>();
    specs.forEach((raw, i) => {
      const t = this.tensor(raw, `${field}[${i}]`);
      if (byName.has(t.name)) this.fail(`${field}[${i}].name`, `'${t.name}' appears twice`);
      byName.set(t.name, t);
    });
    const names = [...byName.keys()];
    const same = names.length === expected.length && expected.every((n) => byName.has(n));
    if (!same) {
      const missing = expected.filter((n) => !byName.has(n));
      const extra = names.filter((n) => !expected.includes(n));
      const what = [
        missing.length ? `lack ${missing.join(", ")}` : "",
        extra.length ? `have unexpected ${extra.join(", ")}` : "",
      ]
        .filter(Boolean)
        .join(" and ");
      this.fail(
        field,
        `${what} (must be exactly ${expected.join(", ")}, the names the runtime driver feeds)`,
      );
    }
    return byName;
  }

  files(g: Json, graph: string): void {
    const field = `graphs.${graph}.files`;
    const files = this.obj(g, "files", field);
    if (Object.keys(files).length === 0) this.fail(field, "is empty: no .tflite file is listed");
    for (const [prec, entry] of Object.entries(files)) {
      const f = `${field}.${prec}`;
      if (!(PRECISIONS as readonly string[]).includes(prec)) {
        this.fail(f, `is not a precision (one of ${PRECISIONS.join(", ")})`);
      }
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        this.fail(f, `is ${describe(entry)}, must be a JSON object`);
      }
      const e = entry as Json;
      this.path(e, "path", `${f}.path`);
      const sha = this.str(e, "sha256", `${f}.sha256`);
      if (!SHA256.test(sha)) this.fail(`${f}.sha256`, `'${sha.slice(0, 80)}' is not 64 lowercase hex digits`);
      if (!("bytes" in e)) this.fail(`${f}.bytes`, "is missing");
      this.intValue(e.bytes, `${f}.bytes`, 0, MAX_FILE_BYTES);
    }
  }

  manifest(data: unknown): Manifest {
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw new InputError(`${this.where}: the top level is ${describe(data)}, must be a JSON object; ${REEXPORT}`);
    }
    const d = data as Json;
    if (d.format !== FORMAT_NAME || d.format_version !== FORMAT_VERSION) {
      throw new InputError(
        `${this.where}: format ${JSON.stringify(d.format ?? null).slice(0, 40)} ` +
          `v${JSON.stringify(d.format_version ?? null).slice(0, 20)} is not ${FORMAT_NAME} ` +
          `v${FORMAT_VERSION}; re-export with this vosx version`,
      );
    }
    const inp = this.obj(d, "input", "input");
    const side = `a positive integer multiple of ${INPUT_MULTIPLE} up to ${MAX_INPUT_SIDE}`;
    const size: number[] = [];
    for (const key of ["height", "width"]) {
      if (!(key in inp)) this.fail(`input.${key}`, "is missing");
      const v = this.intValue(inp[key], `input.${key}`, INPUT_MULTIPLE, MAX_INPUT_SIDE, side);
      if (v % INPUT_MULTIPLE) this.fail(`input.${key}`, `is ${v}, must be ${side}`);
      size.push(v);
    }
    const graphs = this.obj(d, "graphs", "graphs");
    const missing = GRAPH_NAMES.filter((g) => !(g in graphs));
    if (missing.length) {
      throw new InputError(`${this.where}: graphs missing: ${missing.join(", ")}; re-run \`vosx export\``);
    }
    for (const name of Object.keys(graphs)) {
      if (!(GRAPH_NAMES as readonly string[]).includes(name)) {
        this.fail(`graphs.${name.slice(0, 40)}`, `is not a graph (${GRAPH_NAMES.join(", ")})`);
      }
    }
    const io: Record<string, { inputs: Map<string, TensorSpec>; outputs: Map<string, TensorSpec> }> = {};
    for (const name of GRAPH_NAMES) {
      const g = this.obj(graphs, name, `graphs.${name}`);
      this.path(g, "onnx", `graphs.${name}.onnx`);
      this.files(g, name);
      const [ins, outs] = GRAPH_IO[name];
      io[name] = {
        inputs: this.tensors(g, name, "inputs", ins),
        outputs: this.tensors(g, name, "outputs", outs),
      };
    }
    const [h, w] = size;
    for (const [graph, kind, tname, channels] of FULL_SIZE) {
      const shape = io[graph][kind].get(tname)!.shape;
      const want = [1, h, w, channels];
      if (shape.length !== 4 || shape.some((v, i) => v !== want[i])) {
        this.fail(
          `graphs.${graph}.${kind}.${tname}.shape`,
          `is [${shape.join(", ")}], but input is ${h}x${w} so it must be [${want.join(", ")}]`,
        );
      }
    }
    for (const [[src, out], [dst, inp]] of GRAPH_WIRING) {
      const a = io[src].outputs.get(out)!;
      const b = io[dst].inputs.get(inp)!;
      if (JSON.stringify(a.shape) !== JSON.stringify(b.shape) || a.dtype !== b.dtype) {
        this.fail(
          `graphs.${dst}.inputs.${inp}`,
          `is [${b.shape.join(", ")}] ${b.dtype}, but ${src} output ${out}, which the driver feeds into it, ` +
            `is [${a.shape.join(", ")}] ${a.dtype}; the graphs do not fit together`,
        );
      }
    }
    if ("pt_tracker" in d) {
      const pt = this.obj(d, "pt_tracker", "pt_tracker");
      this.path(pt, "path", "pt_tracker.path");
    }
    return d as unknown as Manifest;
  }
}

/**
 * Parse and check manifest.json text (at most 1 MiB).
 *
 * @param text The file's bytes as text.
 * @param where How the file is named in messages (its URL).
 * @throws InputError One line naming the field and the fix.
 */
export function parseManifest(text: string, where: string): Manifest {
  if (new TextEncoder().encode(text).length > MAX_MANIFEST_BYTES) {
    throw new InputError(`${where}: larger than ${MAX_MANIFEST_BYTES} bytes; ${REEXPORT}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const why = String((e as Error).message).split(/\s+/).join(" ").slice(0, 120);
    throw new InputError(`${where}: not valid JSON (${why}); re-run \`vosx export\``);
  }
  return new Checker(where).manifest(data);
}

/** Precisions present for every graph, in PRECISIONS order. */
export function precisions(m: Manifest): string[] {
  return PRECISIONS.filter((p) => GRAPH_NAMES.every((g) => p in m.graphs[g].files));
}

/** The shape of a named tensor of a graph. */
export function shapeOf(m: Manifest, graph: GraphName, kind: "inputs" | "outputs", name: string): number[] {
  const t = m.graphs[graph][kind].find((s) => s.name === name);
  if (!t) throw new InputError(`manifest.json: graphs.${graph}.${kind} has no ${name}; ${REEXPORT}`);
  return t.shape;
}
