/**
 * Builds the web UI into web/dist, which `lockstep serve` serves as static files.
 * Run from the repository root: `vite build --config web/vite.config.ts`.
 */
import { defineConfig } from 'vite';

const root = decodeURIComponent(new URL('.', import.meta.url).pathname);

export default defineConfig({
  root,
  base: '/',
  // Vite 8 transforms TSX with oxc; the automatic runtime imports react/jsx-runtime itself.
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: `${root}dist`,
    emptyOutDir: true,
    sourcemap: true,
  },
  server: {
    // `vite --config web/vite.config.ts` during development: the API runs on `lockstep serve --port 4000`.
    proxy: { '/api': 'http://127.0.0.1:4000' },
  },
});
