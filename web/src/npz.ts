// A small reader of NumPy .npz files (uncompressed zip of .npy arrays, zip64 included), enough for
// the PT tracker weights: little-endian float32/float64/int32/int64 and unicode scalars, C order.

export interface NpyArray {
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array;
  text?: string;
}

function fail(what: string): never {
  throw new Error(`not a readable .npz file (${what})`);
}

function parseNpy(bytes: Uint8Array): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (!magic.every((b, i) => bytes[i] === b)) fail("bad .npy magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined || fortran) fail("unsupported .npy header");
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const body = bytes.slice(start + headerLen); // copy: aligned for typed arrays
  const need = (n: number) => {
    if (body.byteLength < n) fail("truncated array");
  };
  switch (descr) {
    case "<f4":
      need(count * 4);
      return { shape, data: new Float32Array(body.buffer, 0, count) };
    case "<f8":
      need(count * 8);
      return { shape, data: new Float64Array(body.buffer, 0, count) };
    case "<i4":
      need(count * 4);
      return { shape, data: new Int32Array(body.buffer, 0, count) };
    case "<i8":
      need(count * 8);
      return { shape, data: new BigInt64Array(body.buffer, 0, count) };
    default: {
      const u = /^<U(\d+)$/.exec(descr);
      if (!u || count !== 1) fail(`unsupported dtype ${descr}`);
      const n = Number(u[1]);
      need(n * 4);
      const cps = new Uint32Array(body.buffer, 0, n);
      const text = String.fromCodePoint(...[...cps].filter((c) => c !== 0));
      return { shape, data: new Float32Array(0), text };
    }
  }
}

/** The arrays of an .npz file by name (without the .npy suffix). */
export function readNpz(bytes: Uint8Array): Map<string, NpyArray> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail("no zip directory");
  const entries = view.getUint16(eocd + 10, true);
  let p = view.getUint32(eocd + 16, true);
  const out = new Map<string, NpyArray>();
  for (let e = 0; e < entries; e++) {
    if (view.getUint32(p, true) !== 0x02014b50) fail("bad zip directory entry");
    const method = view.getUint16(p + 10, true);
    let csize = view.getUint32(p + 20, true);
    let usize = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    let offset = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    let q = p + 46 + nameLen;
    const extraEnd = q + extraLen;
    while (q + 4 <= extraEnd) {
      const id = view.getUint16(q, true);
      const size = view.getUint16(q + 2, true);
      if (id === 0x0001) {
        let r = q + 4;
        const next = () => {
          const v = Number(view.getBigUint64(r, true));
          r += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = next();
        if (csize === 0xffffffff) csize = next();
        if (offset === 0xffffffff) offset = next();
      }
      q += 4 + size;
    }
    if (method !== 0) fail(`${name} is compressed; save with np.savez, not savez_compressed`);
    if (view.getUint32(offset, true) !== 0x04034b50) fail("bad zip local header");
    const dataStart = offset + 30 + view.getUint16(offset + 26, true) + view.getUint16(offset + 28, true);
    if (dataStart + csize > bytes.length) fail("truncated");
    out.set(name.replace(/\.npy$/, ""), parseNpy(bytes.subarray(dataStart, dataStart + csize)));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}
