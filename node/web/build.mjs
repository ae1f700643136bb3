// Builds the web pages and the verifier's command-line driver with esbuild, after a
// type check with tsc. node/build.rs runs this in a copy of this folder under cargo's
// OUT_DIR (npm ci there), so nothing built is ever written beside the sources.
//   node build.mjs OUT_DIR
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import * as esbuild from "esbuild";

const out = process.argv[2];
if (!out) throw new Error("usage: node build.mjs OUT_DIR");
mkdirSync(out, { recursive: true });

const require = createRequire(import.meta.url);
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "--noEmit", "-p", "."], {
  stdio: "inherit",
});

const common = { bundle: true, target: "es2022", legalComments: "none", logLevel: "warning" };
await esbuild.build({
  ...common,
  entryPoints: ["src/app/main.ts"],
  outfile: join(out, "app.js"),
  platform: "browser",
  format: "iife",
  minify: true,
});
await esbuild.build({
  ...common,
  entryPoints: ["src/cli/verify-cli.ts"],
  outfile: join(out, "verify-cli.mjs"),
  platform: "node",
  format: "esm",
});
// The end-to-end driver stays beside node_modules, where it finds playwright-core.
for (const [entry, outfile] of [["src/e2e/run.ts", "e2e.mjs"], ["src/e2e/page-time.ts", "page-time.mjs"]])
  await esbuild.build({ ...common, entryPoints: [entry], outfile, platform: "node", format: "esm", external: ["playwright-core"] });
for (const f of ["index.html", "style.css"]) copyFileSync(join("src/app", f), join(out, f));
