// Label maps <-> PNG in the browser: the DAVIS (PASCAL VOC) palette, an indexed-PNG encoder (zlib
// through CompressionStream, so the labels read back are exact), and palette-colour decoding of a
// first-frame mask decoded by the browser (indexed PNGs come back as their palette colours).

import { InputError } from "./manifest";

/** The DAVIS palette, 256 x 3 bytes, as tracker_runtime/io.davis_palette. */
export const PALETTE: Uint8Array = (() => {
  const pal = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    let c = i;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let j = 0; j < 8; j++) {
      r |= (c & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    pal.set([r, g, b], i * 3);
  }
  return pal;
})();

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  const t = new TextEncoder().encode(type);
  out.set(t, 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32([t, data]));
  return out;
}

async function zlib(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** H x W uint8 labels -> an indexed PNG (8-bit, DAVIS palette). */
export async function encodeLabelPng(labels: Uint8Array, h: number, w: number): Promise<Uint8Array> {
  const raw = new Uint8Array(h * (w + 1)); // filter byte 0 per row
  for (let y = 0; y < h; y++) raw.set(labels.subarray(y * w, (y + 1) * w), y * (w + 1) + 1);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, w);
  v.setUint32(4, h);
  ihdr.set([8, 3, 0, 0, 0], 8); // bit depth 8, colour type 3 (palette)
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("PLTE", PALETTE),
    chunk("IDAT", await zlib(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Bytes -> base64 text. */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * RGBA pixels of a decoded mask -> H x W labels: DAVIS palette colours (an indexed PNG as the
 * browser decodes it), else greys (a greyscale label PNG: the grey level is the label).
 */
export function labelsFromRgba(rgba: Uint8ClampedArray, h: number, w: number, where: string): Uint8Array {
  const lut = new Map<number, number>();
  for (let i = 255; i >= 0; i--) lut.set((PALETTE[i * 3] << 16) | (PALETTE[i * 3 + 1] << 8) | PALETTE[i * 3 + 2], i);
  const out = new Uint8Array(h * w);
  let grey = true;
  for (let p = 0; p < h * w; p++) {
    const r = rgba[p * 4];
    const g = rgba[p * 4 + 1];
    const b = rgba[p * 4 + 2];
    if (r !== g || g !== b) grey = false;
  }
  for (let p = 0; p < h * w; p++) {
    const r = rgba[p * 4];
    const g = rgba[p * 4 + 1];
    const b = rgba[p * 4 + 2];
    const code = (r << 16) | (g << 8) | b;
    const id = lut.get(code);
    if (id !== undefined) {
      out[p] = id;
    } else if (grey) {
      out[p] = r;
    } else {
      throw new InputError(`${where}: colour (${r}, ${g}, ${b}) is not a DAVIS palette colour; save the mask as an indexed (palette) PNG with 0 = background`);
    }
  }
  if (!out.some((v) => v !== 0)) {
    throw new InputError(`${where}: the first-frame mask has no object (every pixel is 0); label objects 1, 2, ...`);
  }
  return out;
}
