// The two-frame memory driver in TypeScript: tracker_runtime/driver.py and the fitting part of
// tracker_runtime/segment.py, step for step, in float32 where NumPy computes in float32.
// Per frame: key_encoder(image) -> key, f16c, f16, f8, f4; the first frame memorises the user's
// mask (slots "first" and "last"); every other frame decodes each object against both slots,
// applies sigmoid, soft aggregation and the per-object tracker, argmaxes the labels (padding
// cropped) and memorises its own soft-aggregated maps in slot "last".
// Shapes: planes are Hp x Wp float32 (padded network input); label maps H x W uint8.

import { downscaleLabels, fitSize, type Frame, type Pads, preprocess, upscaleLabels } from "./preprocess";
import type { BoxTracker } from "./trackers";

/** A backend running one exported graph: named float32 inputs -> named float32 outputs. */
export interface Graphs {
  run(graph: "key_encoder" | "value_encoder" | "decoder", inputs: Record<string, Float32Array>): Promise<Record<string, Float32Array>>;
}

/** Milliseconds spent per stage of the last frame. */
export interface StageTimes {
  preprocess: number;
  key_encoder: number;
  decoder: number;
  postprocess: number;
  value_encoder: number;
  total: number;
}

const LO = Math.fround(1e-7);
const HI = Math.fround(1 - 1e-7);

/** Logistic function rounded as NumPy's float32 passes: 1 / (1 + exp(-x)). */
export function sigmoidInPlace(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    x[i] = 1 / Math.fround(1 + Math.fround(Math.exp(-x[i])));
  }
}

/** STCN soft aggregation: K object planes -> K+1 planes (0 = background), in float32. */
export function softAggregate(prob: Float32Array[]): Float32Array[] {
  const k = prob.length;
  const n = prob[0].length;
  const out = [new Float32Array(n), ...prob.map((p) => Float32Array.from(p))];
  const bg = out[0];
  for (let i = 0; i < n; i++) {
    let b = Math.fround(1 - prob[0][i]);
    for (let j = 1; j < k; j++) b = Math.fround(b * Math.fround(1 - prob[j][i]));
    bg[i] = b;
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j <= k; j++) {
      let v = out[j][i];
      v = v < LO ? LO : v > HI ? HI : v;
      v = Math.fround(v / Math.fround(1 - v));
      out[j][i] = v;
      s = Math.fround(s + v);
    }
    for (let j = 0; j <= k; j++) out[j][i] = out[j][i] / s;
  }
  return out;
}

/** argmax over planes, ties to the lower index, as driver.argmax0. */
export function argmax0(planes: Float32Array[]): Uint8Array {
  const n = planes[0].length;
  const idx = new Uint8Array(n);
  const best = Float32Array.from(planes[0]);
  for (let c = 1; c < planes.length; c++) {
    const p = planes[c];
    for (let i = 0; i < n; i++) {
      if (p[i] > best[i]) {
        best[i] = p[i];
        idx[i] = c;
      }
    }
  }
  return idx;
}

/** A plane's H x W region inside the padding (a copy). */
function unpadCopy(plane: Float32Array, Wp: number, pads: Pads, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    const s = (y + pads[0]) * Wp + pads[2];
    out.set(plane.subarray(s, s + w), y * w);
  }
  return out;
}

interface Slot {
  key: Float32Array;
  values: Float32Array[];
}

/** Semi-supervised VOS with a first+last two-frame memory over any `Graphs` backend. */
export class SegmentationDriver {
  objectIds: number[] = [];
  trackers: BoxTracker[] = [];
  first: Slot | null = null;
  last: Slot | null = null;
  times: StageTimes = { preprocess: 0, key_encoder: 0, decoder: 0, postprocess: 0, value_encoder: 0, total: 0 };

  constructor(
    readonly graphs: Graphs,
    readonly size: [number, number],
    readonly trackerFactory: (() => BoxTracker) | null,
  ) {}

  reset(): void {
    this.objectIds = [];
    this.trackers = [];
    this.first = null;
    this.last = null;
  }

  /** Segment one h x w frame (the first with its h x w labels) -> h x w labels. */
  async step(frame: Frame, mask: Uint8Array | null): Promise<Uint8Array> {
    const t0 = performance.now();
    const [Hp, Wp] = this.size;
    const { height: h, width: w } = frame;
    const { image, pads } = preprocess(frame, this.size);
    const t1 = performance.now();
    const feats = await this.graphs.run("key_encoder", { image });
    const t2 = performance.now();
    const times: StageTimes = { preprocess: t1 - t0, key_encoder: t2 - t1, decoder: 0, postprocess: 0, value_encoder: 0, total: 0 };
    let labels: Uint8Array;
    if (mask) {
      labels = mask;
      this.objectIds = [...new Set(mask)].filter((v) => v !== 0).sort((a, b) => a - b);
      this.trackers = this.trackerFactory ? this.objectIds.map(() => this.trackerFactory!()) : [];
      const prob = this.objectIds.map((id) => {
        const p = new Float32Array(Hp * Wp);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) if (mask[y * w + x] === id) p[(y + pads[0]) * Wp + x + pads[2]] = 1;
        }
        return p;
      });
      this.trackers.forEach((tr, k) => {
        tr.reset();
        tr.step(unpadCopy(prob[k], Wp, pads, h, w), h, w);
      });
      const t3 = performance.now();
      const slot = await this.memorise(feats, prob);
      times.value_encoder = performance.now() - t3;
      this.first = slot;
      this.last = slot;
    } else {
      if (!this.first || !this.last) throw new Error("the first frame needs a mask");
      const logits: Float32Array[] = [];
      for (let k = 0; k < this.objectIds.length; k++) {
        const out = await this.graphs.run("decoder", {
          qk: feats.key,
          mk_first: this.first.key,
          mk_last: this.last.key,
          mv_first: this.first.values[k],
          mv_last: this.last.values[k],
          f16c: feats.f16c,
          f8: feats.f8,
          f4: feats.f4,
        });
        logits.push(out.logits);
      }
      const t3 = performance.now();
      logits.forEach(sigmoidInPlace);
      const agg = softAggregate(logits);
      this.trackers.forEach((tr, k) => {
        const region = unpadCopy(agg[k + 1], Wp, pads, h, w);
        tr.step(region, h, w);
        for (let y = 0; y < h; y++) agg[k + 1].set(region.subarray(y * w, (y + 1) * w), (y + pads[0]) * Wp + pads[2]);
      });
      const cls = argmax0(agg);
      const lut = Uint8Array.from([0, ...this.objectIds]);
      labels = new Uint8Array(h * w);
      for (let y = 0; y < h; y++) {
        const row = (y + pads[0]) * Wp + pads[2];
        for (let x = 0; x < w; x++) labels[y * w + x] = lut[cls[row + x]];
      }
      const t4 = performance.now();
      this.last = await this.memorise(feats, agg.slice(1));
      times.decoder = t3 - t2;
      times.postprocess = t4 - t3;
      times.value_encoder = performance.now() - t4;
    }
    times.total = performance.now() - t0;
    this.times = times;
    return labels;
  }

  private async memorise(feats: Record<string, Float32Array>, prob: Float32Array[]): Promise<Slot> {
    const values: Float32Array[] = [];
    for (const p of prob) values.push((await this.graphs.run("value_encoder", { mask: p, f16: feats.f16 })).value);
    return { key: feats.key, values };
  }
}

/**
 * A whole video at its own size, as tracker_runtime/segment.py: frames larger than the export's
 * input are given to the driver downscaled (aspect kept; the caller resizes them to `fit`), the
 * first mask by area, and the labels are upscaled back (nearest).
 */
export class VideoSegmenter {
  readonly fit: [number, number];
  private index = 0;

  constructor(
    readonly driver: SegmentationDriver,
    readonly H: number,
    readonly W: number,
    readonly mask: Uint8Array,
  ) {
    this.fit = fitSize([H, W], driver.size);
    driver.reset();
  }

  /** Segment the next frame, already at `fit` size -> H x W labels. */
  async next(frame: Frame): Promise<Uint8Array> {
    const [h, w] = this.fit;
    if (frame.height !== h || frame.width !== w) throw new Error(`frame ${this.index} is ${frame.height}x${frame.width}, expected ${h}x${w}`);
    const first = this.index === 0;
    this.index++;
    if (first) {
      await this.driver.step(frame, downscaleLabels(this.mask, this.H, this.W, h, w));
      return this.mask;
    }
    return upscaleLabels(await this.driver.step(frame, null), h, w, this.H, this.W);
  }
}
