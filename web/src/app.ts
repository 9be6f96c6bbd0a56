// The vosx browser app: loads an export folder through its manifest, runs the two-frame driver
// over LiteRT.js (webgpu or wasm) on a user's video (or a served frame folder), draws the overlay
// live and shows per-stage milliseconds and FPS.
//
// Automation entry (documented in README.md): `/?clip=/clip/&accelerator=wasm|webgpu&tracker=
// none|cv|pt&auto=1[&threads=N][&labels=0]` segments the served clip without a click and resolves
// `window.vosxDone` to {labels: [base64 indexed PNG per frame], timings, accelerator};
// `window.vosxFrameEnds` lists when each frame so far was done (Unix epoch ms).
// `bench=1&frames=N&accelerators=webgpu,wasm` times N frames per accelerator and POSTs the result to /bench/result (vosx bench
// --runtime browser). Bad input rejects vosxDone and shows one visible line.

import { SegmentationDriver, type StageTimes, VideoSegmenter } from "./driver";
import { type Accelerator, cpuThreads, fetchBytes, LiteRtGraphs, loadRuntime, webgpuProblem } from "./graphs";
import { InputError, type Manifest, parseManifest, precisions } from "./manifest";
import { encodeLabelPng, labelsFromRgba, PALETTE, toBase64 } from "./png";
import type { Frame } from "./preprocess";
import { MotionMLP, type TrackerKind, trackerFactory } from "./trackers";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const STAGES: (keyof StageTimes)[] = ["preprocess", "key_encoder", "decoder", "postprocess", "value_encoder", "total"];

interface Summary {
  frames: number;
  objects: number;
  mean_ms: Record<string, number>;
  per_frame_ms: StageTimes[];
  fps: number;
  threads: boolean;
  precision: string;
  fully_accelerated?: Record<string, boolean>;
  /** CPU threads the graphs were compiled with (cpuOptions.numThreads). */
  cpu_threads?: number;
  /** Milliseconds of the load-time warm-up run of the three graphs. */
  warmup_ms?: number;
  /** Mean milliseconds per frame (frames 2..N) spent copying tensors in and out of LiteRT.js. */
  copy_ms?: number;
}

interface Done {
  labels: string[];
  timings: Summary;
  accelerator: string;
}

let resolveDone!: (v: unknown) => void;
let rejectDone!: (e: Error) => void;
(window as unknown as { vosxDone: Promise<unknown> }).vosxDone = new Promise((res, rej) => {
  resolveDone = res;
  rejectDone = rej;
});
// Unhandled rejections would be noise when nobody awaits the promise.
(window as unknown as { vosxDone: Promise<unknown> }).vosxDone.catch(() => undefined);

/** Show one line: an error (red) or a status. */
function show(text: string, error = false): void {
  const el = $("message");
  el.textContent = text.split("\n")[0];
  el.className = error ? "error" : "status";
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An image (Blob) -> RGBA pixels, exactly as stored (no colour management). */
async function decodeImage(blob: Blob, where: string): Promise<ImageData> {
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new InputError(`${where}: the browser cannot decode this image; use PNG or JPEG`);
  }
  const canvas = new OffscreenCanvas(bmp.width, bmp.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

/** A source image drawn at (h, w) (the driver's size when frames are larger than the export). */
function toFrame(src: CanvasImageSource, sw: number, sh: number, h: number, w: number): Frame {
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(src, 0, 0, sw, sh, 0, 0, w, h);
  const img = ctx.getImageData(0, 0, w, h);
  return { data: img.data, height: h, width: w, channels: 4 };
}

function imageDataFrame(img: ImageData): Frame {
  return { data: img.data, height: img.height, width: img.width, channels: 4 };
}

/** Draw frame + 50% label colours on the visible canvas. */
function drawOverlay(frame: ImageData, labels: Uint8Array): void {
  const canvas = $<HTMLCanvasElement>("view");
  canvas.width = frame.width;
  canvas.height = frame.height;
  const out = new ImageData(frame.width, frame.height);
  const s = frame.data;
  const d = out.data;
  for (let p = 0; p < labels.length; p++) {
    const l = labels[p];
    for (let c = 0; c < 3; c++) d[p * 4 + c] = l ? Math.round(s[p * 4 + c] * 0.5 + PALETTE[l * 3 + c] * 0.5) : s[p * 4 + c];
    d[p * 4 + 3] = 255;
  }
  canvas.getContext("2d")!.putImageData(out, 0, 0);
}

/** The frames the means are over: 2..N (frame 1 only memorises its mask; no decoder). */
function steadyFrames<T>(per: T[]): T[] {
  return per.length > 1 ? per.slice(1) : per;
}

function meanOf(values: number[]): number {
  return values.reduce((a, v) => a + v, 0) / Math.max(1, values.length);
}

function summarise(per: StageTimes[], objects: number, threads: boolean, precision: string): Summary {
  const steady = steadyFrames(per);
  const mean: Record<string, number> = {};
  for (const s of STAGES) mean[s] = meanOf(steady.map((t) => t[s]));
  return { frames: per.length, objects, mean_ms: mean, per_frame_ms: per, fps: mean.total > 0 ? 1000 / mean.total : 0, threads, precision };
}

function showStats(per: StageTimes[], objects: number, accelerator: string): void {
  const s = summarise(per, objects, false, "");
  const rows = STAGES.map((k) => `<tr><td>${k}</td><td>${s.mean_ms[k].toFixed(1)}</td><td>${per[per.length - 1][k].toFixed(1)}</td></tr>`);
  $("stats").innerHTML =
    `<table><tr><th>stage</th><th>mean ms</th><th>last ms</th></tr>${rows.join("")}</table>` +
    `<p>${accelerator}, K = ${objects} object(s), frame ${per.length}: <b>${s.fps.toFixed(1)} FPS</b></p>`;
}

/** The export folder: manifest (checked) and PT weights. */
async function loadExport(base: string): Promise<{ manifest: Manifest; mlp: MotionMLP | null }> {
  const url = base + "manifest.json";
  const text = new TextDecoder().decode(await fetchBytes(url, "manifest.json"));
  const manifest = parseManifest(text, url);
  let mlp: MotionMLP | null = null;
  const ptUrl = manifest.pt_tracker ? base + manifest.pt_tracker.path : "assets/pt_tracker.npz";
  try {
    mlp = MotionMLP.fromNpz(await fetchBytes(ptUrl, "PT tracker weights"));
  } catch (e) {
    mlp = null;
    console.warn(`PT weights ${ptUrl}: ${messageOf(e)}`);
    ptProblem = `${ptUrl}: ${messageOf(e)}`;
  }
  return { manifest, mlp };
}
let ptProblem = "";

interface Options {
  exportBase: string;
  accelerator: Accelerator;
  tracker: TrackerKind;
  precision: string;
  collectLabels: boolean;
  maxFrames: number;
  /** CPU threads (`threads=N`); null: LiteRT.js's default, at most MAX_DEFAULT_THREADS. */
  threads: number | null;
}

/** A source of frames at the video's own size, plus the first mask. */
interface Video {
  height: number;
  width: number;
  frames: AsyncGenerator<{ source: CanvasImageSource; image: ImageData | null }>;
}

async function openGraphs(opts: Options, manifest: Manifest): Promise<{ graphs: LiteRtGraphs; threads: boolean }> {
  const runtime = await loadRuntime("wasm/");
  if (opts.accelerator === "webgpu") {
    const problem = await webgpuProblem();
    if (problem) throw new InputError(problem);
  }
  if (!precisions(manifest).includes(opts.precision)) {
    throw new InputError(`manifest.json: no ${opts.precision} graphs (have ${precisions(manifest).join(", ")}); re-export with --precision ${opts.precision}`);
  }
  const n = cpuThreads(runtime, opts.threads);
  return { graphs: await LiteRtGraphs.open(manifest, opts.exportBase, opts.accelerator, opts.precision, n), threads: runtime.threaded };
}

/** Segment a video; returns the labels (base64 PNGs when collected) and timings. */
async function segmentVideo(opts: Options, video: Video, mask: Uint8Array, exp: { manifest: Manifest; mlp: MotionMLP | null }): Promise<Done> {
  if (opts.tracker === "pt" && !exp.mlp) throw new InputError(`the PT tracker's weights could not be read (${ptProblem}); use tracker cv or none`);
  show(`loading graphs for ${opts.accelerator}...`);
  const { graphs, threads } = await openGraphs(opts, exp.manifest);
  try {
    show(`warming up the graphs on ${opts.accelerator}...`);
    const warmupMs = await graphs.warmUp();
    const size: [number, number] = [exp.manifest.input.height, exp.manifest.input.width];
    const driver = new SegmentationDriver(graphs, size, trackerFactory(opts.tracker, exp.mlp));
    const seg = new VideoSegmenter(driver, video.height, video.width, mask);
    const [h, w] = seg.fit;
    const labels: string[] = [];
    const per: StageTimes[] = [];
    const copies: number[] = [];
    let index = 0;
    const progress = window as unknown as { vosxFrameEnds: number[] };
    progress.vosxFrameEnds = [];
    for await (const { source, image } of video.frames) {
      if (index >= opts.maxFrames) break;
      const frame = image && h === video.height && w === video.width ? imageDataFrame(image) : toFrame(source, video.width, video.height, h, w);
      const out = await seg.next(frame);
      per.push({ ...driver.times });
      copies.push(graphs.takeCopyMs());
      const full = image ?? (toFrame(source, video.width, video.height, video.height, video.width) as unknown as ImageData);
      drawOverlay(full as ImageData, out);
      showStats(per, driver.objectIds.length, opts.accelerator);
      if (opts.collectLabels) labels.push(toBase64(await encodeLabelPng(out, video.height, video.width)));
      show(`frame ${index + 1} segmented (${opts.accelerator}, tracker ${opts.tracker})`);
      index++;
      progress.vosxFrameEnds.push(performance.timeOrigin + performance.now());
      await new Promise((r) => setTimeout(r, 0)); // let the page paint
    }
    if (index === 0) throw new InputError("the video has no frame");
    show(`done: ${index} frames, ${summarise(per, driver.objectIds.length, threads, opts.precision).fps.toFixed(1)} FPS (${opts.accelerator})`);
    const timings: Summary = {
      ...summarise(per, driver.objectIds.length, threads, opts.precision),
      fully_accelerated: graphs.fullyAccelerated(),
      cpu_threads: graphs.threads,
      warmup_ms: warmupMs,
      copy_ms: meanOf(steadyFrames(copies)),
    };
    return { labels, timings, accelerator: opts.accelerator };
  } finally {
    graphs.delete();
  }
}

/** A served frame folder: `index.json` lists the frames and the first mask. */
async function openClip(base: string): Promise<{ video: Video; mask: Uint8Array }> {
  const url = base + "index.json";
  let index: { frames?: unknown; mask?: unknown };
  try {
    index = JSON.parse(new TextDecoder().decode(await fetchBytes(url, "the clip's index.json")));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${url}: not valid JSON; serve the clip with \`vosx web --clip\``);
  }
  const raw = index.frames;
  if (!Array.isArray(raw) || raw.length === 0 || !raw.every((n) => typeof n === "string") || typeof index.mask !== "string") {
    throw new InputError(`${url}: must list "frames" (file names) and "mask"; serve the clip with \`vosx web --clip\``);
  }
  const names = raw as string[];
  const maskUrl = base + index.mask;
  const maskImg = await decodeImage(new Blob([await fetchBytes(maskUrl, "the first mask")]), maskUrl);
  const mask = labelsFromRgba(maskImg.data, maskImg.height, maskImg.width, maskUrl);
  const firstUrl = base + names[0];
  const first = await decodeImage(new Blob([await fetchBytes(firstUrl, "frame 0")]), firstUrl);
  if (first.height !== maskImg.height || first.width !== maskImg.width) {
    throw new InputError(`${maskUrl}: the mask is ${maskImg.width}x${maskImg.height} but the video is ${first.width}x${first.height}; give the first frame's mask`);
  }
  async function* frames() {
    for (let i = 0; i < names.length; i++) {
      const u = base + names[i];
      const img = i === 0 ? first : await decodeImage(new Blob([await fetchBytes(u, `frame ${i}`)]), u);
      if (img.height !== first.height || img.width !== first.width) {
        throw new InputError(`${u}: frame ${i} is ${img.width}x${img.height} but the video is ${first.width}x${first.height}; all frames must have one size`);
      }
      const canvas = new OffscreenCanvas(img.width, img.height);
      canvas.getContext("2d")!.putImageData(img, 0, 0);
      yield { source: canvas as CanvasImageSource, image: img };
    }
  }
  return { video: { height: first.height, width: first.width, frames: frames() }, mask };
}

/** A user's video file, decoded by the browser, frame by frame (paused at each presented frame). */
async function openVideoFile(file: File): Promise<Video> {
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.src = URL.createObjectURL(file);
  await new Promise<void>((res, rej) => {
    video.onloadeddata = () => res();
    video.onerror = () => rej(new InputError(`${file.name}: the browser cannot decode this video; convert it to H.264 MP4 or WebM`));
  });
  if (!video.videoWidth || !video.videoHeight) throw new InputError(`${file.name}: the browser cannot decode this video; convert it to H.264 MP4 or WebM`);
  const width = video.videoWidth;
  const height = video.videoHeight;
  async function* frames() {
    yield { source: video as CanvasImageSource, image: null }; // the first frame, as loaded
    for (;;) {
      const next = new Promise<boolean>((res) => {
        video.requestVideoFrameCallback(() => res(true));
        video.onended = () => res(false);
      });
      await video.play();
      const more = await next;
      video.pause();
      if (!more || video.ended) return;
      yield { source: video as CanvasImageSource, image: null };
    }
  }
  return { height, width, frames: frames() };
}

async function maskFromFile(file: File, height: number, width: number): Promise<Uint8Array> {
  const img = await decodeImage(file, file.name);
  if (img.height !== height || img.width !== width) {
    throw new InputError(`${file.name}: the mask is ${img.width}x${img.height} but the video is ${width}x${height}; give the first frame's mask`);
  }
  return labelsFromRgba(img.data, img.height, img.width, file.name);
}

function options(): Options {
  const acc = (params.get("accelerator") ?? $<HTMLSelectElement>("accelerator").value) as Accelerator;
  const tracker = (params.get("tracker") ?? $<HTMLSelectElement>("tracker").value) as TrackerKind;
  if (acc !== "wasm" && acc !== "webgpu") throw new InputError(`accelerator '${acc}': use wasm or webgpu`);
  if (!["none", "cv", "pt"].includes(tracker)) throw new InputError(`tracker '${tracker}': use none, cv or pt`);
  let base = params.get("export") ?? "export/";
  if (!base.endsWith("/")) base += "/";
  const frames = Number(params.get("frames") ?? "0");
  const threads = params.get("threads");
  if (threads !== null && !/^[1-9][0-9]?$/.test(threads)) throw new InputError(`threads '${threads}': use a whole number from 1 to 99`);
  return {
    exportBase: base,
    accelerator: acc,
    tracker,
    precision: params.get("precision") ?? "fp32",
    collectLabels: params.get("auto") === "1" && params.get("labels") !== "0",
    maxFrames: frames > 0 ? frames : Number.POSITIVE_INFINITY,
    threads: threads === null ? null : Number(threads),
  };
}

/** `auto=1`: segment the served clip and resolve window.vosxDone. */
async function automate(): Promise<void> {
  const opts = options();
  const exp = await loadExport(opts.exportBase);
  const { video, mask } = await openClip(clipBase());
  resolveDone(await segmentVideo(opts, video, mask, exp));
}

function clipBase(): string {
  let base = params.get("clip") ?? "clip/";
  if (!base.endsWith("/")) base += "/";
  return base;
}

/** `bench=1`: N frames per accelerator, posted to /bench/result (vosx bench --runtime browser). */
async function bench(): Promise<void> {
  const base = options();
  const accs = (params.get("accelerators") ?? "webgpu,wasm").split(",").filter(Boolean) as Accelerator[];
  const results: Record<string, unknown>[] = [];
  const exp = await loadExport(base.exportBase);
  for (const acc of accs) {
    try {
      const { video, mask } = await openClip(clipBase());
      const done = await segmentVideo({ ...base, accelerator: acc, collectLabels: false, tracker: base.tracker }, video, mask, exp);
      results.push({ accelerator: acc, ...done.timings, per_frame_ms: done.timings.per_frame_ms });
    } catch (e) {
      results.push({ accelerator: acc, error: messageOf(e) });
    }
  }
  const report = { token: params.get("token") ?? "", user_agent: navigator.userAgent, cross_origin_isolated: crossOriginIsolated, results };
  await fetch("bench/result", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(report) });
  show(`bench done: ${results.map((r) => `${r.accelerator} ${r.error ? "unavailable" : `${(r.fps as number).toFixed(1)} FPS`}`).join(", ")}`);
  resolveDone(report);
}

async function startFromUi(): Promise<void> {
  const videoFile = $<HTMLInputElement>("video").files?.[0];
  const maskFile = $<HTMLInputElement>("mask").files?.[0];
  const opts = options();
  const exp = await loadExport(opts.exportBase);
  if (!videoFile || !maskFile) {
    if (params.get("clip")) {
      const { video, mask } = await openClip(clipBase());
      await segmentVideo(opts, video, mask, exp);
      return;
    }
    throw new InputError("choose a video file and its first-frame mask PNG first");
  }
  const video = await openVideoFile(videoFile);
  const mask = await maskFromFile(maskFile, video.height, video.width);
  await segmentVideo({ ...opts, collectLabels: false }, video, mask, exp);
}

function main(): void {
  for (const id of ["accelerator", "tracker"]) {
    const v = params.get(id);
    if (v) $<HTMLSelectElement>(id).value = v;
  }
  $("start").addEventListener("click", () => {
    startFromUi().catch((e) => show(messageOf(e), true));
  });
  const run = params.get("bench") === "1" ? bench : params.get("auto") === "1" ? automate : null;
  if (run) {
    run().catch((e) => {
      show(messageOf(e), true);
      rejectDone(new Error(messageOf(e)));
    });
  } else {
    show("choose a video and its first-frame mask, then Start");
  }
}

main();
