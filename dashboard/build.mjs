// Builds the dashboard into dist/dashboard: content-hashed JS and CSS under assets/ (served
// with a one-year immutable cache) and an index.html naming them (served no-cache).
// `npm run build` runs it after tsc; `node dashboard/build.mjs --watch` rebuilds on change.
import { build, context } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'dashboard');
const watch = process.argv.includes('--watch');

const options = {
  entryPoints: { app: join(here, 'src', 'main.tsx') },
  bundle: true,
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
  minify: !watch,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
  plugins: [{ name: 'index-html', setup: (b) => b.onEnd((result) => result.errors.length === 0 && writeIndex(result.metafile)) }],
};

function writeIndex(metafile) {
  const files = Object.keys(metafile.outputs).map((f) => '/' + relative(out, f).split('\\').join('/'));
  const js = files.find((f) => /\/app-[^/]+\.js$/.test(f));
  const css = files.find((f) => /\/app-[^/]+\.css$/.test(f));
  const html = readFileSync(join(here, 'index.html'), 'utf8')
    .replace('<!-- styles -->', css ? `<link rel="stylesheet" href="${css}">` : '')
    .replace('<!-- script -->', `<script type="module" src="${js}"></script>`);
  writeFileSync(join(out, 'index.html'), html);
  writeFileSync(join(out, 'favicon.svg'), readFileSync(join(here, 'favicon.svg')));
  if (!watch) report();
}

/** Every file of the bundle with its size and gzip size (what the README quotes). */
function report() {
  const rows = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const file = join(dir, name);
      if (statSync(file).isDirectory()) walk(file);
      else {
        const body = readFileSync(file);
        rows.push([relative(out, file), body.length, gzipSync(body, { level: 9 }).length]);
      }
    }
  };
  walk(out);
  rows.sort((a, b) => a[0].localeCompare(b[0]));
  const served = rows.filter(([f]) => !f.endsWith('.map') && !f.endsWith('.LEGAL.txt'));
  const total = served.reduce((a, r) => [a[0] + r[1], a[1] + r[2]], [0, 0]);
  if (process.env.SLUICE_DASHBOARD_QUIET) return;
  console.log(`dashboard: ${served.length} files loaded by the page, ${(total[0] / 1024).toFixed(1)} KiB (${(total[1] / 1024).toFixed(1)} KiB gzip)`);
  for (const [f, size, gz] of rows) console.log(`  ${f.padEnd(40)} ${String(size).padStart(8)} B ${String(gz).padStart(7)} B gzip`);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
if (watch) {
  const ctx = await context(options);
  await ctx.watch();
  console.log(`watching dashboard/src -> ${out}`);
} else {
  await build(options);
}
