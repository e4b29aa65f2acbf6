/// <reference types="vitest" />
import { defineConfig } from 'vitest/config'

// Port and host come from the environment so the local stack can move them.
const port = Number(process.env.WEB_PORT ?? 3000)
const host = process.env.WEB_HOST ?? 'localhost'

export default defineConfig({
  // esbuild's own JSX transform; no @vitejs/plugin-react needed.
  esbuild: { jsx: 'automatic' },
  server: { port, host, strictPort: true },
  preview: { port, host, strictPort: true },
  build: { outDir: 'dist', sourcemap: true },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
})
