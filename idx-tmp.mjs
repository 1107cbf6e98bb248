import { SnapshotIndex } from './dist/engine/snapshot-index.js';
const N = 1000000, P = 10000;
const keys = []; for (let i = 1; i <= N; i++) keys.push(`[${i}]`); keys.sort();
const pages = [];
for (let s = 0; s < N; s += P) { const ks = keys.slice(s, s + P); pages.push({ count: ks.length, keys: ks.join('\n'), hashes: ks.map(() => '0123456789abcdef').join('') }); }
for (let r = 0; r < 7; r++) { const t = performance.now(); const idx = new SnapshotIndex(N, 1 << 30); for (const p of pages) idx.addPage(p); const t2 = performance.now(); let found = 0; for (let i = 1; i <= N; i++) if (idx.visit(`[${i}]`) >= 0) found++; console.log('load', (t2 - t).toFixed(0), 'visit', (performance.now() - t2).toFixed(0), found); }
