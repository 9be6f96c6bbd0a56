// Frame normalisation, STCN symmetric padding and frame/mask fitting, as
// tracker_runtime/preprocess.py and tracker_runtime/segment.py do them in NumPy.
// Shapes: frames are RGBA ImageData-like H x W x 4 uint8 (alpha ignored); the network input is
// 1 x Hp x Wp x 3 float32 NHWC; label maps are H x W uint8 (0 = background).

export const MEAN = [0.485, 0.456, 0.406];
export const STD = [0.229, 0.224, 0.225];
export const PAD_MULTIPLE = 16;
// (x / 255 - mean) / std = x * scale - shift, both rounded to float32 as NumPy's constants are.
const SCALE = STD.map((s) => Math.fround(1 / (255 * s)));
const SHIFT = MEAN.map((m, i) => Math.fround(m / STD[i]));

/** (top, bottom, left, right) padding. */
export type Pads = [number, number, number, number];

/** An RGB(A) frame: `data` holds H x W x `channels` uint8 values. */
export interface Frame {
  data: Uint8ClampedArray | Uint8Array;
  height: number;
  width: number;
  channels: number;
}

/** (top, bottom, left, right) padding that centres an H x W frame in `size`. */
export function placement(h: number, w: number, size: [number, number]): Pads {
  const [th, tw] = size;
  if (th < h || tw < w) throw new Error(`frame ${h}x${w} is larger than the network input ${th}x${tw}`);
  const top = Math.floor((th - h) / 2);
  const left = Math.floor((tw - w) / 2);
  return [top, th - h - top, left, tw - w - left];
}

/**
 * uint8 frame -> (1 x Hp x Wp x 3 float32 network input, pads), zero outside the frame.
 * Each step is rounded to float32 as NumPy's in-place float32 passes are.
 */
export function preprocess(frame: Frame, size: [number, number]): { image: Float32Array; pads: Pads } {
  const { height: h, width: w, data, channels: c } = frame;
  const [th, tw] = size;
  const out = new Float32Array(th * tw * 3);
  const pads = placement(h, w, size);
  for (let y = 0; y < h; y++) {
    let src = y * w * c;
    let dst = ((y + pads[0]) * tw + pads[2]) * 3;
    for (let x = 0; x < w; x++, src += c, dst += 3) {
      out[dst] = Math.fround(data[src] * SCALE[0]) - SHIFT[0];
      out[dst + 1] = Math.fround(data[src + 1] * SCALE[1]) - SHIFT[1];
      out[dst + 2] = Math.fround(data[src + 2] * SCALE[2]) - SHIFT[2];
    }
  }
  return { image: out, pads };
}

/** The (h, w) frames are given to the driver at: unchanged when they fit, else downscaled. */
export function fitSize(hw: [number, number], size: [number, number]): [number, number] {
  const [h, w] = hw;
  const [th, tw] = size;
  if (h <= th && w <= tw) return [h, w];
  const scale = Math.min(th / h, tw / w);
  // Python's round() rounds halves to even; products here are never exact halves in practice.
  return [Math.max(1, Math.min(th, Math.round(h * scale))), Math.max(1, Math.min(tw, Math.round(w * scale)))];
}

/**
 * H x W labels -> h x w labels by area (each label's box-filter coverage, then argmax; an object
 * that never wins keeps the pixel where it covers most), as segment.downscale_labels.
 */
export function downscaleLabels(labels: Uint8Array, H: number, W: number, h: number, w: number): Uint8Array {
  if (H === h && W === w) return labels;
  const ids = [...new Set(labels)].sort((a, b) => a - b);
  const index = new Int32Array(256).fill(-1);
  ids.forEach((id, k) => (index[id] = k));
  const cover = ids.map(() => new Float64Array(h * w));
  const sy = H / h;
  const sx = W / w;
  for (let oy = 0; oy < h; oy++) {
    const y0 = oy * sy;
    const y1 = y0 + sy;
    for (let iy = Math.floor(y0); iy < Math.min(H, Math.ceil(y1)); iy++) {
      const wy = Math.min(y1, iy + 1) - Math.max(y0, iy);
      for (let ox = 0; ox < w; ox++) {
        const x0 = ox * sx;
        const x1 = x0 + sx;
        for (let ix = Math.floor(x0); ix < Math.min(W, Math.ceil(x1)); ix++) {
          const wx = Math.min(x1, ix + 1) - Math.max(x0, ix);
          cover[index[labels[iy * W + ix]]][oy * w + ox] += wy * wx;
        }
      }
    }
  }
  const out = new Uint8Array(h * w);
  for (let p = 0; p < h * w; p++) {
    let best = 0;
    for (let k = 1; k < ids.length; k++) if (cover[k][p] > cover[best][p]) best = k;
    out[p] = ids[best];
  }
  ids.forEach((id, k) => {
    if (id === 0 || out.includes(id)) return;
    let bp = 0;
    for (let p = 1; p < h * w; p++) if (cover[k][p] > cover[k][bp]) bp = p;
    out[bp] = id;
  });
  return out;
}

/** h x w labels -> H x W with nearest-neighbour sampling (Pillow's NEAREST pixel centres). */
export function upscaleLabels(labels: Uint8Array, h: number, w: number, H: number, W: number): Uint8Array {
  if (H === h && W === w) return labels;
  const out = new Uint8Array(H * W);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / H));
    for (let x = 0; x < W; x++) {
      out[y * W + x] = labels[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / W))];
    }
  }
  return out;
}
