// Build script of the vosx browser app: bundles src/app.ts with esbuild and copies the page and
// the LiteRT.js WebAssembly runtime (from node_modules, never a CDN) into ../vosx/web_app/, the
// package data `vosx web` serves. Run through `npm run build` (`make web` / `make install`).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "vosx", "web_app");
const wasmSrc = join(here, "node_modules", "@litertjs", "core", "wasm");
// The three variants LiteRT.js picks from without JSPI: relaxed SIMD, threaded (relaxed SIMD +
// cross-origin isolation) and compat (no relaxed SIMD). The JSPI one (WebNN only) is left out.
const WASM = [
  "litert_wasm_internal",
  "litert_wasm_threaded_internal",
  "litert_wasm_compat_internal",
];

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "wasm"), { recursive: true });
await build({
  entryPoints: [join(here, "src", "app.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
copyFileSync(join(here, "index.html"), join(out, "index.html"));
copyFileSync(join(here, "style.css"), join(out, "style.css"));
for (const name of WASM) {
  for (const ext of [".js", ".wasm"]) {
    copyFileSync(join(wasmSrc, name + ext), join(out, "wasm", name + ext));
  }
}
const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const version = (name) => lock.packages[`node_modules/${name}`]?.version ?? "unknown";
writeFileSync(
  join(out, "BUILD.json"),
  JSON.stringify(
    { litertjs: version("@litertjs/core"), esbuild: version("esbuild"), wasm: WASM },
    null,
    2,
  ) + "\n",
);
console.log(`built ${out}`);
