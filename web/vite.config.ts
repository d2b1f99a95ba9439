/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The output is committed (web/dist) and embedded in the sluice binary, and scripts/test.sh
// rebuilds it and fails on any difference: it must be a pure function of the sources.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // The Content-Security-Policy allows no inline scripts or styles, and no data: scripts.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
    reportCompressedSize: false,
    chunkSizeWarningLimit: 800,
  },
  // The unit tests; web/e2e holds the browser flows, run by node's own test runner against a
  // real `sluice serve` (crates/sluice-cli/tests/browser.rs).
  test: {
    include: ["src/**/*.test.ts"],
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8080",
    },
  },
});
