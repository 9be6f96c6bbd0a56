// Trick 3 box trackers (constant velocity and the parametric MLP), ported from
// tracker_runtime/boxes.py and tracker_runtime/trackers.py with the same rules: the box of a map is
// the inclusive bounds of prob > 0.5; two consecutive boxes are needed before filtering; the
// predicted box is grown by `margin` per side, rounded outward (snapping within 1e-6 of a whole
// pixel) and clipped; the output is prob times the window's 0/1 map; a missing box resets.
// PT weights come from a vosx-pt-tracker .npz (read by npz.ts); the MLP runs in float64 with an
// exact-to-double erf, as the NumPy forward does.

import { readNpz } from "./npz";

export const DEFAULT_MARGIN_CV = 0.4;
export const DEFAULT_MARGIN_PT = 0.6;
const THRESHOLD = 0.5;
const SNAP = 1e-6;
const PT_FORMAT = "vosx-pt-tracker";
const NUM_LAYERS = 5;

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}
/** Half-open window (y0, y1, x0, x1). */
export type Window = [number, number, number, number];
type Motion = [number, number, number, number];

/** The box of map > 0.5 inside a window of an H x W map (row stride W), or null. */
export function boxInWindow(prob: Float32Array, W: number, win: Window): Box | null {
  const [y0, y1, x0, x1] = win;
  if (y1 <= y0 || x1 <= x0) return null;
  let r0 = -1;
  let r1 = -1;
  let c0 = x1;
  let c1 = x0 - 1;
  for (let y = y0; y < y1; y++) {
    const row = y * W;
    let first = -1;
    for (let x = x0; x < x1; x++) {
      if (prob[row + x] > THRESHOLD) {
        first = x;
        break;
      }
    }
    if (first < 0) continue;
    let last = first;
    for (let x = x1 - 1; x > first; x--) {
      if (prob[row + x] > THRESHOLD) {
        last = x;
        break;
      }
    }
    if (r0 < 0) r0 = y;
    r1 = y;
    if (first < c0) c0 = first;
    if (last > c1) c1 = last;
  }
  if (r0 < 0) return null;
  return { x: c0, y: r0, w: c1 - c0 + 1, h: r1 - r0 + 1 };
}

function snapFloor(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - r) <= SNAP ? r : Math.floor(v);
}

function snapCeil(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - r) <= SNAP ? r : Math.ceil(v);
}

/** The attention window of a predicted (x, y, w, h) grown by margin, rounded out, clipped. */
export function predictedWindow(box: Motion, margin: number, H: number, W: number): Window {
  const [x, y, w, h] = box;
  if (w <= 0 || h <= 0) return [0, 0, 0, 0];
  let x0 = snapFloor(x - margin * w);
  let x1 = snapCeil(x + w + margin * w);
  let y0 = snapFloor(y - margin * h);
  let y1 = snapCeil(y + h + margin * h);
  y0 = Math.min(Math.max(y0, 0), H);
  y1 = Math.min(Math.max(y1, 0), H);
  x0 = Math.min(Math.max(x0, 0), W);
  x1 = Math.min(Math.max(x1, 0), W);
  if (y1 <= y0 || x1 <= x0) return [0, 0, 0, 0];
  return [y0, y1, x0, x1];
}

/** One tracker per object: `step` filters one H x W map in place (the caller's copy). */
export abstract class BoxTracker {
  private prev: Box | null = null;
  private last: Box | null = null;
  window: Window | null = null;

  constructor(readonly margin: number) {
    if (!Number.isFinite(margin) || margin < 0) throw new Error(`tracker margin ${margin}: must be >= 0`);
  }

  reset(): void {
    this.prev = null;
    this.last = null;
    this.window = null;
  }

  abstract predictMotion(t: Motion, H: number, W: number): Motion;

  /** Filter `prob` (H x W, modified in place: zero outside the window). */
  step(prob: Float32Array, H: number, W: number): void {
    const { prev, last } = this;
    if (prev === null || last === null) {
      this.window = null;
      this.prev = last;
      this.last = boxInWindow(prob, W, [0, H, 0, W]);
      return;
    }
    const t: Motion = [last.x - prev.x, last.y - prev.y, last.w - prev.w, last.h - prev.h];
    const d = this.predictMotion(t, H, W);
    const win = predictedWindow([last.x + d[0], last.y + d[1], last.w + d[2], last.h + d[3]], this.margin, H, W);
    this.window = win;
    this.prev = last;
    this.last = boxInWindow(prob, W, win);
    const [y0, y1, x0, x1] = win;
    for (let y = 0; y < H; y++) {
      const row = y * W;
      if (y < y0 || y >= y1) {
        prob.fill(0, row, row + W);
      } else {
        prob.fill(0, row, row + x0);
        prob.fill(0, row + x1, row + W);
      }
    }
  }
}

/** CV: the next motion equals the last one. */
export class ConstantVelocityTracker extends BoxTracker {
  constructor(margin = DEFAULT_MARGIN_CV) {
    super(margin);
  }

  predictMotion(t: Motion): Motion {
    return t;
  }
}

/** erf(x) to about 1e-15: a series with positive terms below |x| = 3, a continued fraction above. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x);
  let r: number;
  if (ax < 3) {
    // erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))
    const x2 = ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
  } else {
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz)
    const tiny = 1e-300;
    let f = ax;
    let C = ax;
    let D = 0;
    for (let n = 1; n < 300; n++) {
      const a = n / 2;
      D = ax + a * D;
      D = D === 0 ? tiny : D;
      C = ax + a / C;
      C = C === 0 ? tiny : C;
      D = 1 / D;
      const delta = C * D;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

/** The PT network: 5 linear layers with exact GELU between them, in float64. */
export class MotionMLP {
  constructor(
    readonly weights: Float64Array[],
    readonly shapes: [number, number][],
    readonly biases: Float64Array[],
    readonly motionScale: Float64Array,
  ) {
    let n = 4;
    if (weights.length !== NUM_LAYERS || biases.length !== NUM_LAYERS) throw new Error("PT weights need 5 layers");
    shapes.forEach(([rows, cols], i) => {
      if (rows !== n || biases[i].length !== cols) throw new Error("PT layer shapes do not chain");
      n = cols;
    });
    if (n !== 4) throw new Error("PT network must output 4 values");
    if (!motionScale.every((v) => v > 0) || motionScale.length !== 4) throw new Error("PT motion_scale must be 4 positive values");
  }

  /** Read a vosx-pt-tracker v1 .npz. */
  static fromNpz(bytes: Uint8Array): MotionMLP {
    const arrays = readNpz(bytes);
    const fmt = arrays.get("format");
    const version = arrays.get("version");
    if (!fmt || fmt.text !== PT_FORMAT || !version || Number(version.data[0]) !== 1) {
      throw new Error(`not a ${PT_FORMAT} v1 weights file`);
    }
    const weights: Float64Array[] = [];
    const shapes: [number, number][] = [];
    const biases: Float64Array[] = [];
    for (let i = 0; i < NUM_LAYERS; i++) {
      const w = arrays.get(`w${i}`);
      const b = arrays.get(`b${i}`);
      if (!w || !b || w.shape.length !== 2) throw new Error(`malformed PT weights (layer ${i})`);
      weights.push(Float64Array.from(w.data as Float32Array));
      shapes.push([w.shape[0], w.shape[1]]);
      biases.push(Float64Array.from(b.data as Float32Array));
    }
    const ms = arrays.get("motion_scale");
    if (!ms) throw new Error("malformed PT weights (motion_scale)");
    return new MotionMLP(weights, shapes, biases, Float64Array.from(ms.data as Float32Array));
  }

  forward(u: number[]): number[] {
    let x = u;
    for (let i = 0; i < NUM_LAYERS; i++) {
      const [rows, cols] = this.shapes[i];
      const w = this.weights[i];
      const y = new Array<number>(cols);
      for (let c = 0; c < cols; c++) {
        let s = 0;
        for (let r = 0; r < rows; r++) s += x[r] * w[r * cols + c];
        y[c] = s + this.biases[i][c];
      }
      x = i < NUM_LAYERS - 1 ? y.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))) : y;
    }
    return x;
  }

  predict(t: Motion, H: number, W: number): Motion {
    const size = [W, H, W, H];
    const u = t.map((v, i) => v / size[i] / this.motionScale[i]);
    const v = this.forward(u);
    return v.map((p, i) => p * this.motionScale[i] * size[i]) as Motion;
  }
}

/** PT: the MLP predicts the next motion from the last one. */
export class ParametricTracker extends BoxTracker {
  constructor(
    readonly mlp: MotionMLP,
    margin = DEFAULT_MARGIN_PT,
  ) {
    super(margin);
  }

  predictMotion(t: Motion, H: number, W: number): Motion {
    return this.mlp.predict(t, H, W);
  }
}

export type TrackerKind = "none" | "cv" | "pt";

/** One tracker per object, or null for "none". */
export function trackerFactory(kind: TrackerKind, mlp: MotionMLP | null): (() => BoxTracker) | null {
  if (kind === "none") return null;
  if (kind === "cv") return () => new ConstantVelocityTracker();
  if (!mlp) throw new Error("the PT tracker needs its weights");
  return () => new ParametricTracker(mlp);
}
